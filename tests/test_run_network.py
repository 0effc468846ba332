"""Whole networks through the simulated engine (slow tier: `make test-slow`)."""
import json

import pytest

from fmprune.sw import cli

pytestmark = [pytest.mark.slow, pytest.mark.cosim]


@pytest.mark.parametrize("net", ["mobilenet", "squeezenet1_1"])
def test_run_network_bit_exact(net, tmp_path, capsys):
    out = tmp_path / f"{net}.json"
    code = cli.main(["run", net, "--out", str(out)])
    assert code == 0, capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["top5_identical"] and r["logits_identical"] and r["bit_exact"]
    assert len(r["layers"]) > 20
    assert any(layer["chained_input"] for layer in r["layers"])   # compressed output fed straight in
    assert r["fm_bytes_read"] < r["fm_bytes_dense"]


def test_trained_network_through_the_engine(tmp_path, monkeypatch):
    from fmprune.sim.network import hardware_check
    from fmprune.sw import train
    monkeypatch.setattr(train, "CHECKPOINT", tmp_path / "digitnet.pt")
    train.train(epochs=3, out=train.CHECKPOINT, echo=None)
    r = hardware_check(3, 2, echo=lambda *a: None)
    assert r["predictions_identical"] and r["bit_exact"]
    assert r["fm_bytes_read"] == r["model_fm_bytes"] and r["nonzero_macs"] == r["model_macs"]
