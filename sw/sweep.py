"""`fmprune sweep-eps`: accuracy of the trained digit network against the feature-map fetches and
MACs that pruning removes, for eps = 0, 1, 2, ... until accuracy falls by more than 5 points;
value-granular skipping (the engine's) beside the paper's channel-granular rule."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import fmformat, train
from .analyze import skipped_macs


class _Counter:
    """A conv hook for QuantizedNetwork.run_int that prunes (by value or by channel) and counts."""

    def __init__(self, q, rule, threshold):
        self.q, self.rule, self.threshold = q, rule, threshold
        self.per_layer = {}

    def __call__(self, op, x, eps):
        layer = self.q.layers[op.layer]
        n, c, h, w = x.shape
        mag = np.abs(x.astype(np.int16))
        if self.rule == "value":
            removed = mag <= eps
            xin = x
            use_eps = eps
        else:
            within = (mag <= eps).reshape(n, c, -1).mean(axis=2) >= self.threshold       # n x c channels
            removed = np.broadcast_to(within[:, :, None, None], x.shape)
            xin = np.where(removed, 0, x).astype(np.int8)
            use_eps = 0
        y = layer.forward(xin, use_eps)
        d = self.per_layer.setdefault(op.layer, dict(values=0, removed=0, bytes_dense=0, bytes_read=0, macs=0, skipped=0))
        d["values"] += x.size
        d["removed"] += int(removed.sum())
        d["bytes_dense"] += n * fmformat.region_bytes(c, h, w, "dense")
        if self.rule == "value":                   # compressed layout: bitmap + stored values
            d["bytes_read"] += n * fmformat.blocks(c) * h * w + int((~removed).sum())
        else:                                      # whole channels not fetched, the rest dense
            d["bytes_read"] += int((~removed).sum())
        d["macs"] += n * layer.macs
        d["skipped"] += sum(skipped_macs(xin[i], layer, use_eps) for i in range(n))
        return y


def sweep(max_drop=0.05, channel_threshold=0.99, out_dir="build/sweep", echo=print) -> dict:
    if not train.CHECKPOINT.exists():
        echo(f"{train.CHECKPOINT} is missing: training it first (as `make train`)")
        train.main()
    model, desc = train.load()
    q = train.quantise(model, desc)
    _, _, xte, yte = train.digits()
    rows = []
    base = None
    for eps in range(0, 128):
        row = dict(eps=eps)
        for rule in ("value", "channel"):
            hook = _Counter(q, rule, channel_threshold)
            acc = train.int_accuracy(q, xte, yte, eps, conv=hook)
            tot = {k: sum(d[k] for d in hook.per_layer.values()) for k in next(iter(hook.per_layer.values()))}
            row[rule] = dict(accuracy=acc, values_removed=tot["removed"] / tot["values"],
                             bytes_removed=1 - tot["bytes_read"] / tot["bytes_dense"],
                             macs_removed=tot["skipped"] / tot["macs"],
                             per_layer={k: dict(values_removed=d["removed"] / d["values"],
                                                bytes_removed=1 - d["bytes_read"] / d["bytes_dense"],
                                                macs_removed=d["skipped"] / d["macs"])
                                        for k, d in hook.per_layer.items()})
        base = row["value"]["accuracy"] if base is None else base
        rows.append(row)
        v, ch = row["value"], row["channel"]
        echo(f"eps {eps:3d}: value rule top-1 {v['accuracy']:.4f}, values removed {v['values_removed']:.1%}, "
             f"bytes removed {v['bytes_removed']:.1%}, MACs removed {v['macs_removed']:.1%} | channel rule top-1 "
             f"{ch['accuracy']:.4f}, values removed {ch['values_removed']:.1%}")
        if base - v["accuracy"] > max_drop:
            break

    def best(rule, tol):
        ok = [r[rule] for r in rows if r[rule]["accuracy"] >= base - tol]
        return max(ok, key=lambda r: r["values_removed"]) if ok else None

    summary = {f"{rule}_{name}": best(rule, tol)["values_removed"] if best(rule, tol) else None
               for rule in ("value", "channel") for name, tol in (("no_loss", 0.0), ("1pt_loss", 0.01))}
    result = dict(weights=desc, test_images=int(len(yte)), base_accuracy=base, channel_threshold=channel_threshold,
                  rows=rows, summary=summary,
                  paper=dict(no_loss_removed=0.10, one_point_loss_removed=0.15))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, out / "sweep.png")
    echo(f"fetches removed at no loss: value rule {summary['value_no_loss']:.1%}, channel rule "
         f"{summary['channel_no_loss']:.1%}; at <= 1 point loss: value {summary['value_1pt_loss']:.1%}, channel "
         f"{summary['channel_1pt_loss']:.1%} (paper: 10% at no loss, 15% at 1% loss)")
    echo(f"weights: {desc}")
    echo(f"wrote {out}/sweep.json and sweep.png")
    return result


def _plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for rule, mk in (("value", "o-"), ("channel", "s--")):
        xs = [r[rule]["values_removed"] for r in result["rows"]]
        ys = [r[rule]["accuracy"] for r in result["rows"]]
        ax.plot(xs, ys, mk, label=f"{rule}-granular", markersize=3)
    b = result["base_accuracy"]
    ax.plot([0.10], [b], "k*", markersize=12, label="paper: 10% at no loss")
    ax.plot([0.15], [b - 0.01], "r*", markersize=12, label="paper: +5% at 1% loss")
    ax.set_xlabel("share of feature-map values not fetched")
    ax.set_ylabel("integer top-1 (held-out digits)")
    ax.set_title("accuracy against dynamic pruning (eps sweep)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
