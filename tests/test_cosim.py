"""Co-simulation of the generated Verilog (engine + Verilog memory models) on Verilator and
Icarus through cocotb, bit-exact against the golden model; counters against the memories'."""
import numpy as np
import pytest

from fmprune.sim.runner import SimConfig, run
from fmprune.sw import driver, regs
from test_engine import check_counters_against_memories, golden, make_spec

pytestmark = pytest.mark.cosim

CFG = dict(lanes=8, fm_depth=1 << 16, w_depth=1 << 14, out_depth=1 << 16, linebuf_depth=1024,
           max_channels=256, max_blocks=256)

CASES = {
    #                 C   H   W   K  k  s  p  dw
    "std_3x3_s2_p1": (6, 9, 8, 10, 3, 2, 1, False),
    "std_5x5_p2":    (3, 7, 7, 5, 5, 1, 2, False),
    "depthwise":     (16, 6, 6, 16, 3, 1, 1, True),
    "pointwise":     (24, 5, 5, 20, 1, 1, 0, False),
    "fc":            (64, 1, 1, 12, 1, 1, 0, False),
}


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("case", list(CASES))
def test_cosim_layer(simulator, case, tmp_path):
    c, h, w, ko, k, s, p, dw = CASES[case]
    spec, act = make_spec(len(case) * 7 + 1, c, h, w, ko, k, s, p, dw, name=case)
    want = golden(spec, act)
    job = driver.prepare(spec, 8)
    r = run(job, SimConfig(simulator=simulator, **CFG), tmp_path, stall_percent=20, budget=200_000)
    assert not r["timeout"] and r["error"] == 0
    assert r["id"] == regs.engine_id(8) and r["status_at_start"] & 0b11 == 0b01, (r["id"], r["status_at_start"])
    got = driver.decode_output(job, r["out"])
    diff = np.argwhere(got != want)
    assert diff.size == 0, (f"{case} on {simulator}: first mismatch at (k, y, x)={tuple(diff[0])}: "
                            f"RTL {got[tuple(diff[0])]} != expected {want[tuple(diff[0])]}")
    check_counters_against_memories(r["counters"], r["memory"], 8)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cosim_illegal_descriptor_ends(simulator, tmp_path):
    spec, act = make_spec(5, 6, 4, 4, 8, 3, 1, 1, False)
    job = driver.prepare(spec, 8)
    job.regs["OUT_H"] = 7
    r = run(job, SimConfig(simulator=simulator, **CFG), tmp_path, budget=1000)
    assert not r["timeout"] and r["error"] == 3 and r["memory"]["out_writes"] == r["memory"]["out_bytes"] == 0
