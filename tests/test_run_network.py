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


def test_trained_network_tile_by_tile(tmp_path, monkeypatch):
    """The path `fmprune run --port` takes: every layer tiled to a board's memories (the
    iCEBreaker's engine, P=2, with memories of 4 KiB so that the digit network needs tiles), each
    tile a job on the engine's RTL; logits equal the golden model's."""
    from dataclasses import replace
    import numpy as np
    from fmprune.boards.top import BOARDS
    from fmprune.sim.network import stream
    from fmprune.sim.runner import SimConfig, SimTransport
    from fmprune.sw import tiling, train
    monkeypatch.setattr(train, "CHECKPOINT", tmp_path / "digitnet.pt")
    train.train(epochs=2, out=train.CHECKPOINT, echo=None)
    model, desc = train.load()
    q = train.quantise(model, desc)
    _, _, xte, _ = train.digits()
    xq = q.quantize_input(xte[:1])
    sys_cfg = replace(BOARDS["icebreaker"].system, fm_bytes=4096, w_bytes=4096, out_bytes=4096)
    limits = tiling.Limits.from_info(sys_cfg.info())
    cfg = SimConfig(lanes=sys_cfg.lanes, fm_depth=sys_cfg.fm_bytes, w_depth=sys_cfg.w_bytes // sys_cfg.lanes,
                    out_depth=sys_cfg.out_bytes, **sys_cfg.engine_args())
    logits, rows = stream(q, xq, lanes=sys_cfg.lanes, board=(SimTransport(cfg, tmp_path / "run"), limits),
                          echo=lambda *a, **k: None)
    golden, _ = q.run_int(xq, 0)
    np.testing.assert_array_equal(logits, golden)
    assert all(r["bit_exact"] for r in rows) and max(r["tiles"] for r in rows) > 1
