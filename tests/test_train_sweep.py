import json

import pytest
import torch

from fmprune.sw import sweep, train


def test_training_smoke_is_deterministic():
    a = train.train(epochs=3, out=None, echo=None)
    b = train.train(epochs=3, out=None, echo=None)
    for (k, va), vb in zip(a["model"].state_dict().items(), b["model"].state_dict().values()):
        assert torch.equal(va, vb), k
    assert a["float_accuracy"] > 0.5
    q = train.quantise(a["model"], "smoke")
    _, _, xte, yte = train.digits()
    assert abs(train.int_accuracy(q, xte, yte) - a["float_accuracy"]) < 0.05


def test_sweep_on_a_short_training(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "CHECKPOINT", tmp_path / "digitnet.pt")
    train.train(epochs=2, out=train.CHECKPOINT, echo=None)
    r = sweep.sweep(max_drop=0.02, out_dir=tmp_path / "sweep", echo=lambda *a: None)
    rows = r["rows"]
    assert rows[0]["eps"] == 0 and len(rows) >= 2
    v0 = rows[0]["value"]
    assert v0["values_removed"] > 0.3                       # exact zeros after ReLU
    assert v0["accuracy"] == r["base_accuracy"]
    removed = [row["value"]["values_removed"] for row in rows]
    assert removed == sorted(removed)                         # more eps, more pruned
    assert r["base_accuracy"] - rows[-1]["value"]["accuracy"] > 0.02 or rows[-1]["eps"] == 127
    assert (tmp_path / "sweep" / "sweep.png").exists()
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["summary"]["value_no_loss"] >= saved["summary"]["channel_no_loss"]


@pytest.mark.slow
def test_full_training(tmp_path):
    r = train.train(out=tmp_path / "digitnet.pt", echo=None)
    assert r["float_accuracy"] > 0.97
    q = train.quantise(r["model"], "full")
    _, _, xte, yte = train.digits()
    assert train.int_accuracy(q, xte, yte) > r["float_accuracy"] - 0.01
