"""Networks trained here, deterministically, on the CPU: by default the MobileNet-style digit
network on a real labelled data set that ships inside a package (scikit-learn's handwritten
digits, 8x8 upscaled to 32x32); with `fmprune train --net NET --data DIR` a network of
sw/nets32.py on CIFAR-10's python batches or a folder of class sub-folders of images.
`make train` trains and caches build/train/digitnet.pt (never committed); every checkpoint has a
.json beside it naming its network, input channels, classes and data."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import nets32

SIZE = 32
CHECKPOINT = Path("build") / "train" / "digitnet.pt"


DigitNet = nets32.DigitNet


def digits(seed: int = 0):
    """(train x, train y, test x, test y): 80/20 split fixed by `seed`, images 1 x 32 x 32 in [-1, 1]."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False) * 2 - 1
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


_DEFAULT = object()


def dataset(data=None, seed: int = 0, channels: int | None = None):
    """(train x, train y, test x, test y, description, input channels, classes): the digits by
    default; `data` a folder of CIFAR-10's python batches or of class sub-folders of images."""
    from . import data as data_mod
    if data is None:
        xtr, ytr, xte, yte = digits(seed)
        return xtr, ytr, xte, yte, "sklearn load_digits, 8x8 upscaled to 32x32, 80/20 split", 1, 10
    folder = Path(data)
    if (folder / "test_batch").is_file():
        xtr, ytr, xte, yte = data_mod.load_cifar10(folder)
        return xtr, ytr, xte, yte, f"CIFAR-10 python batches in {folder}", 3, 10
    xtr, ytr, xte, yte, classes = data_mod.load_image_folder(folder, SIZE, seed, channels or 3)
    return xtr, ytr, xte, yte, f"image folder {folder} ({len(classes)} classes), 80/20 split", int(xtr.shape[1]), len(classes)


def train(epochs: int = 30, seed: int = 0, out=_DEFAULT, echo=print, net: str = "digitnet", data=None) -> dict:
    """Train `net` (sw/nets32.py) on the digits or `data`; save it to `out` (default CHECKPOINT
    for the digit network on the digits, None: do not save) with its .json."""
    if out is _DEFAULT:
        out = CHECKPOINT if net == "digitnet" and data is None else Path("build") / "train" / f"{net}.pt"
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    xtr, ytr, xte, yte, ddesc, in_ch, classes = dataset(data, seed)
    model = nets32.build(net, in_ch, classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    bar = _progress(epochs, echo)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            xb = xtr[idx] + 0.05 * torch.randn(xtr[idx].shape, generator=gen)     # light noise augmentation
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if bar is not None:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.update()
        if echo and (epoch + 1) % max(1, epochs // 5) == 0:
            echo(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, test accuracy {accuracy(model, xte, yte):.4f}")
    if bar is not None:
        bar.close()
    model.eval()
    acc = accuracy(model, xte, yte)
    meta = dict(net=net, in_ch=in_ch, classes=classes, epochs=epochs, seed=seed, float_accuracy=acc,
                train_s=round(time.perf_counter() - t0, 1), data=ddesc, data_dir=None if data is None else str(data))
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out)
        out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return dict(model=model, checkpoint=out, **meta)


def _progress(total, echo):
    """A tqdm bar over the epochs on a terminal (none when quiet or not a terminal)."""
    import sys
    if not echo or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="epoch", leave=False)


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def checkpoint_meta(path) -> dict:
    """The .json beside a checkpoint (a checkpoint without one is the digit network's)."""
    j = Path(path).with_suffix(".json")
    meta = json.loads(j.read_text()) if j.is_file() else {}
    return dict(net=meta.get("net", "digitnet"), in_ch=meta.get("in_ch", 1), classes=meta.get("classes", 10),
                data_dir=meta.get("data_dir"))


def load(path: Path | None = None) -> tuple[nn.Module, str]:
    path = CHECKPOINT if path is None else path       # looked up at call time (tests redirect it)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist: run `make train` first")
    from .weights import load_state_dict_checked
    m = checkpoint_meta(path)
    model = nets32.build(m["net"], m["in_ch"], m["classes"])
    desc = load_state_dict_checked(model, path)
    what = "digits" if m["data_dir"] is None else m["data_dir"]
    return model.eval(), f"{m['net']} trained here on {what} ({desc})"


def quantise(model, desc: str, seed: int = 0, calib: torch.Tensor | None = None, net: str | None = None):
    """The golden model of a network trained here, calibrated on 256 training images (the
    digits', or `calib`); its layers are named NET.convN (`net`, default the model's registry name)."""
    from .golden import QuantizedNetwork
    if calib is None:
        calib = digits(seed)[0]
    if net is None:
        net = next((n for n, (cls, _) in nets32.NETS.items() if type(model) is cls), "net")
    return QuantizedNetwork(net, calib_images=calib[:256], model=model, weights_desc=desc)


def int_accuracy(q, x, y, eps: int = 0, conv=None) -> float:
    logits, _ = q.run_int(q.quantize_input(x), eps, conv=conv)
    return float((torch.from_numpy(logits.argmax(1).astype(np.int64)) == y).float().mean())


def main(argv=None) -> int:
    """`make train` (no arguments) and `fmprune train`: train, quantise, report both accuracies."""
    import argparse
    ap = argparse.ArgumentParser(prog="fmprune train", description=TRAIN_HELP)
    add_train_args(ap)
    args = ap.parse_args(argv)
    return cmd_train(args)


TRAIN_HELP = ("Train a network of sw/nets32.py here, deterministically on the CPU: the digit network on "
              "scikit-learn's digits by default (build/train/digitnet.pt, as `make train`), or --net vgg32 / "
              "resnet32 / digitnet on --data DIR (CIFAR-10's python batches, or a folder of class sub-folders of "
              "images). Writes the checkpoint and a .json beside it (network, data, accuracies).")


def add_train_args(ap):
    ap.add_argument("--net", choices=list(nets32.NETS), default="digitnet", help="network (default digitnet)")
    ap.add_argument("--data", metavar="DIR", default=None,
                    help="CIFAR-10's python batches (data_batch_1..5, test_batch) or FOLDER/CLASS/IMAGE files; "
                         "default: scikit-learn's digits")
    ap.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    ap.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ap.add_argument("--out", metavar="FILE", default=None,
                    help="checkpoint (default build/train/digitnet.pt for the digits, else build/train/NET.pt)")


def cmd_train(args) -> int:
    if args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs}: must be at least 1")
    out = Path(args.out) if args.out else _DEFAULT
    r = train(epochs=args.epochs, seed=args.seed, out=out, net=args.net, data=args.data)
    path = r["checkpoint"]
    xtr, _, xte, yte, _, _, _ = dataset(args.data, args.seed)
    q = quantise(r["model"], f"{args.net} trained here ({hashlib.sha256(path.read_bytes()).hexdigest()[:12]})",
                 calib=xtr, net=args.net)
    ia = int_accuracy(q, xte, yte)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["int_accuracy"] = ia
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"held-out accuracy: float {r['float_accuracy']:.4f}, integer {ia:.4f} ({len(yte)} images); "
          f"trained in {r['train_s']} s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
