"""`fmprune sim` end to end on a cropped real layer, on both simulators; and its bad input."""
import json

import numpy as np
import pytest

from fmprune.sw import cli

pytestmark = pytest.mark.cosim


@pytest.mark.parametrize("simulator,layer,extra", [
    ("verilator", "mobilenet.conv3", ["--crop", "6", "--stall", "20"]),
    ("icarus", "mobilenet.conv2", ["--crop", "6", "--eps", "2"]),
    ("verilator", "squeezenet1_1.conv2", ["--crop", "5", "--dense"]),
])
def test_sim_cli(tmp_path, capsys, simulator, layer, extra):
    code = cli.main(["sim", layer, "--sim", simulator, "--out", str(tmp_path)] + extra)
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("layer", "simulator", "lanes", "eps", "dense_mode", "weights", "macs", "nonzero_macs", "cycles",
                "cycles_sparse_bound", "cycles_dense_bound", "utilisation", "fm_bytes_dense", "fm_bytes_read",
                "fm_bytes_limit", "values_skipped", "mismatches", "bit_exact", "wall_s", "build_s",
                "sim_cycles_per_s"):
        assert key in report, key
    assert report["bit_exact"] and report["mismatches"] == 0 and report["counters_agree_with_memories"]
    assert report["simulator"] == simulator
    if "--dense" not in extra:
        assert report["fm_bytes_read"] == report["fm_bytes_limit"]
        assert report["counters"]["MACS"] == report["nonzero_macs"]      # independent count of non-zero MACs
    else:
        assert report["counters"]["MACS"] == report["macs"]
    out_arr = np.load(tmp_path / "output.npy")
    assert out_arr.dtype == np.int8 and out_arr.ndim == 3
    assert "BIT-EXACT" in out


@pytest.mark.parametrize("argv,needle", [
    (["sim", "mobilenet.conv99"], "Nearest: mobilenet.conv9"),
    (["sim", "tinynet.conv1", "--crop", "4"], "leaky ReLU is not fused"),
])
def test_sim_cli_bad_input(tmp_path, capsys, argv, needle):
    code = cli.main(argv + ["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_sim_cli_bad_lanes(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["sim", "mobilenet.conv3", "--lanes", "6"])
    assert e.value.code == 2 and "P must divide 8" in capsys.readouterr().err
