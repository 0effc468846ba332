"""A MobileNet-style network trained here on a real labelled data set that ships inside a package
(scikit-learn's handwritten digits, 8x8 upscaled to 32x32), deterministically, on the CPU.
`make train` trains and caches build/train/digitnet.pt (never committed)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SIZE = 32
CHECKPOINT = Path("build") / "train" / "digitnet.pt"


def _dw_sep(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitNet(nn.Module):
    """Depthwise-separable, ReLU: a small MobileNet for 1 x 32 x 32 digits."""
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)),
            _dw_sep(16, 32, 2), _dw_sep(32, 64, 2), _dw_sep(64, 64, 1), _dw_sep(64, 128, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


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


def train(epochs: int = 30, seed: int = 0, out=_DEFAULT, echo=print) -> dict:
    """Train DigitNet; save it to `out` (default CHECKPOINT, None: do not save)."""
    out = CHECKPOINT if out is _DEFAULT else out
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    xtr, ytr, xte, yte = digits(seed)
    model = DigitNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
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
        if echo and (epoch + 1) % max(1, epochs // 5) == 0:
            echo(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, test accuracy {accuracy(model, xte, yte):.4f}")
    model.eval()
    acc = accuracy(model, xte, yte)
    meta = dict(epochs=epochs, seed=seed, float_accuracy=acc, train_s=round(time.perf_counter() - t0, 1),
                data="sklearn load_digits, 8x8 upscaled to 32x32, 80/20 split")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out)
        out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return dict(model=model, **meta)


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def load(path: Path | None = None) -> tuple[DigitNet, str]:
    path = CHECKPOINT if path is None else path       # looked up at call time (tests redirect it)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist: run `make train` first")
    from .weights import load_state_dict_checked
    model = DigitNet()
    desc = load_state_dict_checked(model, path)
    return model.eval(), f"trained here on digits ({desc})"


def quantise(model, desc: str, seed: int = 0):
    """The golden model of a trained DigitNet, calibrated on 256 training images."""
    from .golden import QuantizedNetwork
    xtr, _, _, _ = digits(seed)
    return QuantizedNetwork("digitnet", calib_images=xtr[:256], model=model, weights_desc=desc)


def int_accuracy(q, x, y, eps: int = 0, conv=None) -> float:
    logits, _ = q.run_int(q.quantize_input(x), eps, conv=conv)
    return float((torch.from_numpy(logits.argmax(1).astype(np.int64)) == y).float().mean())


def main() -> int:
    r = train()
    q = quantise(r["model"], f"trained here on digits ({hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()[:12]})")
    _, _, xte, yte = digits()
    ia = int_accuracy(q, xte, yte)
    meta = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    meta["int_accuracy"] = ia
    CHECKPOINT.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"held-out accuracy: float {r['float_accuracy']:.4f}, integer {ia:.4f} ({len(yte)} images); "
          f"trained in {r['train_s']} s; wrote {CHECKPOINT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
