"""`fmprune analyze`: the sparsity and bandwidth study of Liang et al. (arXiv 1812.09922) for a
network and its weights: per layer, the traffic of input feature map, weights and output; zero
weights; zero and near-zero input activations; the channel-granular pruning rule; the bytes the
compressed layout would read; MACs skipped. Tables (CSV, JSON, text) and PNG plots."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import fmformat
from .data import SAMPLE_NAMES, load_image, preprocess
from .golden import QuantizedNetwork
from .zoo import INPUT_SIZE

PAPER_NETS = ["alexnet", "mobilenet", "resnet50", "squeezenet", "tinynet", "vgg16"]
DETERMINISTIC_CAVEAT = ("deterministic (seeded, untrained) weights: zero fractions are not those of trained "
                        "ImageNet weights; give --weights for the paper's study")


def image_list(images_dir=None) -> list[str]:
    if images_dir is None:
        return list(SAMPLE_NAMES)
    d = Path(images_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"--images {images_dir} is not a folder")
    files = sorted(str(p) for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    if not files:
        raise FileNotFoundError(f"no .jpg/.jpeg/.png/.bmp images in {images_dir}")
    return files


def nonzero_macs(x, weight_shape, stride, padding, groups, eps=0) -> int:
    """MACs whose activation operand survives eps pruning, for one C x H x W int8 input
    (a convolution of the survivors' indicator; independent of the engine's model)."""
    keep = torch.from_numpy((np.abs(x.astype(np.int16)) > eps).astype(np.float64))[None]
    k_out, cg, kh, kw = weight_shape
    ones = torch.ones(groups, cg, kh, kw, dtype=torch.float64)
    kept = float(F.conv2d(keep, ones, None, stride, padding, 1, groups).sum())
    return int(round(kept)) * (k_out // groups)


def skipped_macs(x, layer, eps) -> int:
    """MACs of a golden-model layer whose activation operand is within eps."""
    return layer.macs - nonzero_macs(x, layer.weight.shape, layer.stride, layer.padding, layer.groups, eps)


def layer_stats(x, layer, eps_list, channel_threshold):
    """Statistics of one layer for one input x (C x H x W int8)."""
    c, h, w = x.shape
    mag = np.abs(x.astype(np.int16))
    row = dict(zero=float(np.mean(x == 0)))
    for e in eps_list:
        within = mag <= e
        row[f"within_eps{e}"] = float(within.mean())
        per_channel = within.reshape(c, -1).mean(axis=1)
        row[f"channels_pruned_eps{e}"] = float(np.mean(per_channel >= channel_threshold))
        stored = int((~within).sum())
        row[f"fm_bytes_compressed_eps{e}"] = fmformat.blocks(c) * h * w + stored
        row[f"macs_skipped_eps{e}"] = skipped_macs(x, layer, e)
    return row


def analyze(net, *, weights=None, images_dir=None, eps_list=(0, 1, 2, 4, 8), channel_threshold=0.99,
            out_root="build/analysis", plots=True) -> dict:
    eps_list = sorted(set(int(e) for e in eps_list))
    if any(e < 0 or e > 127 for e in eps_list):
        raise ValueError("every eps must be in 0..127")
    if not 0 < channel_threshold <= 1:
        raise ValueError("the channel threshold must be in (0, 1]")
    q = QuantizedNetwork(net, weights)
    imgs = image_list(images_dir)
    x = torch.stack([preprocess(load_image(i), INPUT_SIZE) for i in imgs])
    _, captured = q.run_int(q.quantize_input(x), 0, capture=set(q.layers))
    rows = []
    for name, layer in q.layers.items():
        xin, _ = captured[name]
        per_image = [layer_stats(xin[i], layer, eps_list, channel_threshold) for i in range(len(imgs))]
        stats = {k: float(np.mean([p[k] for p in per_image])) for k in per_image[0]}
        c, h, w = layer.in_shape
        in_b = c * h * w
        w_b = int(layer.weight.size)
        out_b = int(np.prod(layer.out_shape))
        total = in_b + w_b + out_b
        row = dict(layer=f"{net}.{name}", kind=layer.kind, input_bytes=in_b, weight_bytes=w_b, output_bytes=out_b,
                   input_share=in_b / total, weight_share=w_b / total, output_share=out_b / total,
                   zero_weights=float(np.mean(layer.weight == 0)), macs=layer.macs,
                   fm_bytes_dense=fmformat.region_bytes(c, h, w, "dense"))
        row.update(stats)
        rows.append(row)
    tot_in = sum(r["input_bytes"] for r in rows)
    tot_w = sum(r["weight_bytes"] for r in rows)
    tot_out = sum(r["output_bytes"] for r in rows)
    macs = sum(r["macs"] for r in rows)
    totals = dict(input_bytes=tot_in, weight_bytes=tot_w, output_bytes=tot_out,
                  input_share=tot_in / (tot_in + tot_w + tot_out), macs=macs,
                  zero_weights=sum(r["zero_weights"] * r["weight_bytes"] for r in rows) / tot_w)
    for e in eps_list:
        totals[f"within_eps{e}"] = sum(r[f"within_eps{e}"] * r["input_bytes"] for r in rows) / tot_in
        totals[f"macs_skipped_eps{e}"] = sum(r[f"macs_skipped_eps{e}"] for r in rows) / macs
        totals[f"fm_bytes_compressed_eps{e}"] = sum(r[f"fm_bytes_compressed_eps{e}"] for r in rows)
        totals[f"channels_pruned_eps{e}"] = (sum(r[f"channels_pruned_eps{e}"] * r["input_bytes"] for r in rows)
                                             / tot_in)
    totals["fm_bytes_dense"] = sum(r["fm_bytes_dense"] for r in rows)
    result = dict(network=net, weights=q.weights_desc, images=imgs, eps=eps_list,
                  channel_threshold=channel_threshold, layers=rows, totals=totals,
                  caveat=None if weights else DETERMINISTIC_CAVEAT)
    out = Path(out_root) / net
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out / "analysis.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    if plots:
        result["plots"] = _plots(result, out)
    return result


def _save(fig, path: Path, paths: list) -> None:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))


def _plots(result, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["layers"]
    names = [r["layer"].split(".", 1)[1] for r in rows]
    idx = np.arange(len(rows))
    paths = []
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.28), 4))
    bottom = np.zeros(len(rows))
    for key, label in (("input_share", "input feature map"), ("weight_share", "weights"), ("output_share", "output feature map")):
        v = np.array([r[key] for r in rows])
        ax.bar(idx, v, bottom=bottom, label=label)
        bottom += v
    for i, r in enumerate(rows):
        ax.text(i, 1.01, r["kind"][0].upper(), ha="center", fontsize=6)
    ax.set_xticks(idx, names, rotation=90, fontsize=6)
    ax.set_ylabel("share of the layer's traffic")
    ax.set_title(f"{result['network']}: traffic per layer (S standard, D depthwise, P pointwise, F fc)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, out / "traffic.png", paths)
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.28), 4))
    ax.bar(idx, [r["zero"] for r in rows], label="input activations = 0")
    ax.plot(idx, [r["zero_weights"] for r in rows], "k.", label="weights = 0")
    ax.set_xticks(idx, names, rotation=90, fontsize=6)
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1)
    ax.set_title(f"{result['network']}: zero fraction per layer", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, out / "zeros.png", paths)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    eps = result["eps"]
    t = result["totals"]
    ax.plot(eps, [t[f"within_eps{e}"] for e in eps], "o-", label="input values removed (value rule)")
    ax.plot(eps, [t[f"macs_skipped_eps{e}"] for e in eps], "s-", label="MACs skipped")
    ax.plot(eps, [t[f"channels_pruned_eps{e}"] for e in eps], "^-",
            label=f"values in pruned channels ({result['channel_threshold']:.0%} rule)")
    ax.set_xlabel("eps (int8 units)")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1)
    ax.set_title(f"{result['network']}: pruning against eps", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, out / "eps.png", paths)
    return paths


def print_table(result, echo=print):
    e0, eps = result["eps"][0], result["eps"]
    echo(f"{result['network']}: weights {result['weights']}")
    if result.get("caveat"):
        echo(f"NOTE: {result['caveat']}")
    hdr = (f"{'layer':20s} {'kind':9s} {'in%':>5s} {'w%':>5s} {'out%':>5s} {'w=0':>5s} {'x=0':>5s} "
           + " ".join(f"{'<=' + str(e):>5s}" for e in eps) + f" {'ch' + str(e0):>5s} {'fm cmp/dense':>13s} {'MAC skip':>8s}")
    echo(hdr)
    for r in result["layers"]:
        echo(f"{r['layer']:20s} {r['kind']:9s} {r['input_share']:5.0%} {r['weight_share']:5.0%} {r['output_share']:5.0%} "
             f"{r['zero_weights']:5.1%} {r['zero']:5.1%} "
             + " ".join(f"{r[f'within_eps{e}']:5.1%}" for e in eps)
             + f" {r[f'channels_pruned_eps{e0}']:5.1%} {r[f'fm_bytes_compressed_eps{e0}'] / r['fm_bytes_dense']:13.2f}"
             f" {r[f'macs_skipped_eps{e0}'] / r['macs']:8.1%}")
    t = result["totals"]
    echo(f"total: input feature maps {t['input_share']:.1%} of traffic; weights = 0: {t['zero_weights']:.1%}; "
         + "; ".join(f"eps {e}: {t[f'within_eps{e}']:.1%} of input values removable, "
                     f"{t[f'macs_skipped_eps{e}']:.1%} of MACs" for e in eps))


def analyze_all(**kw) -> dict:
    results = {}
    for net in PAPER_NETS:
        results[net] = analyze(net, **kw)
    out = Path(kw.get("out_root", "build/analysis"))
    summary = []
    for net, r in results.items():
        t = r["totals"]
        summary.append(dict(network=net, weights=r["weights"], input_share=t["input_share"],
                            zero_weights=t["zero_weights"],
                            **{f"within_eps{e}": t[f"within_eps{e}"] for e in r["eps"]},
                            **{f"macs_skipped_eps{e}": t[f"macs_skipped_eps{e}"] for e in r["eps"]}))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "summary.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(summary[0]))
        wr.writeheader()
        wr.writerows(summary)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    eps = next(iter(results.values()))["eps"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    nets = list(results)
    axes[0].bar(nets, [s["input_share"] for s in summary], label="input feature maps")
    axes[0].bar(nets, [s["zero_weights"] for s in summary], alpha=0.6, label="zero weights")
    axes[0].set_ylabel("fraction")
    axes[0].set_title("input-feature-map share of traffic; zero weights", fontsize=9)
    axes[0].tick_params(axis="x", labelrotation=30)
    axes[0].legend(fontsize=7)
    for s in summary:
        axes[1].plot(eps, [s[f"within_eps{e}"] for e in eps], "o-", label=s["network"])
    axes[1].set_xlabel("eps (int8 units)")
    axes[1].set_ylabel("input values removable")
    axes[1].set_title("feature-map values within eps", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=120)
    plt.close(fig)
    return dict(results=results, summary=summary, figure=str(out / "summary.png"))
