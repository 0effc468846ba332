"""Co-simulation of a board's system (boards/system.py) through its UART pins: the host session of
boards/host.py talks to the generated Verilog bit by bit, as it talks to a board."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

from .runner import ROOT, _env, build_lock, icarus_time_zero

PERIOD_NS = 10


def system_verilog(cfg, out_dir: Path, simulator: str) -> Path:
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    from amaranth.back import verilog
    from ..boards.system import BoardSystem
    text = verilog.convert(BoardSystem(cfg), name="board_system")
    if simulator == "icarus":
        text = icarus_time_zero(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "board_system.v"
    path.write_text(text)
    return path


def _hash(cfg, simulator) -> str:
    h = hashlib.sha256(repr((asdict(cfg), simulator)).encode())
    gateware = sorted((ROOT / "boards").glob("*.py")) + sorted((ROOT / "hw").glob("*.py"))
    for f in gateware + [ROOT / "sw" / "layout.py", ROOT / "sw" / "quant.py"]:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def build(cfg, simulator: str, build_root: Path = ROOT / "build" / "simbuild") -> Path:
    bdir = build_root / f"uart-{simulator}-P{cfg.lanes}-{_hash(cfg, simulator)}"
    if (bdir / ".built").exists():
        return bdir
    with build_lock(bdir):
        if (bdir / ".built").exists():       # built by another process while this one waited
            return bdir
        if bdir.exists():
            shutil.rmtree(bdir)
        from cocotb_tools.runner import get_runner
        os.environ.update(_env())
        src = [system_verilog(cfg, bdir / "rtl", simulator)]
        kw = dict(sources=src, hdl_toplevel="board_system", build_dir=bdir, always=True)
        if simulator == "verilator":
            kw["build_args"] = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
        else:
            kw["timescale"] = ("1ns", "1ps")
        get_runner(simulator).build(**kw)
        (bdir / ".built").write_text("ok\n")
    return bdir


def sim_config(cfg, divisor: int = 8):
    """`cfg` with the UART at `divisor` clock cycles a bit (the simulated clock is 100 MHz)."""
    return replace(cfg, clk_hz=100_000_000, baud=100_000_000 // divisor)


def run(job, cfg, simulator: str, run_dir: Path, *, budget: int = 1_000_000):
    """Run a driver.Job on the simulated board system over its UART; returns the session's result.
    A list of jobs runs one after another on the same board, as tiles do (a list of results)."""
    jobs = job if isinstance(job, list) else [job]
    bdir = build(cfg, simulator)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / "result.json"
    if result_path.exists():
        result_path.unlink()
    (run_dir / "job.json").write_text(json.dumps(dict(
        jobs=[dict(regs=j.regs, fm_image=j.fm_image.hex(), w_words=[int(w) for w in j.w_words], out_bytes=j.out_bytes,
                   out_base=j.extra["out_base"]) for j in jobs],
        lanes=cfg.lanes, divisor=cfg.divisor, budget=budget, result=str(result_path))))
    from cocotb_tools.runner import get_runner
    os.environ.update(_env())
    t = time.perf_counter()
    get_runner(simulator).test(
        test_module="fmprune.sim.cocotb_uart", hdl_toplevel="board_system", hdl_toplevel_lang="verilog",
        build_dir=bdir, test_dir=run_dir, results_xml=str(run_dir / "results.xml"),
        extra_env=dict(FMPRUNE_UART_JOB=str(run_dir / "job.json"),
                       COCOTB_REWRITE_ASSERTION_FILES=str(Path(__file__).parent / "cocotb_uart.py"),
                       COCOTB_LOG_LEVEL=os.environ.get("COCOTB_LOG_LEVEL", "WARNING")))
    if not result_path.exists():
        from cocotb_tools.check_results import get_results
        raise RuntimeError(f"the UART co-simulation ended without a result ({get_results(run_dir / 'results.xml')} "
                           f"(tests, failures)); see {run_dir}")
    results = json.loads(result_path.read_text())
    for r in results:
        r["out"] = bytes.fromhex(r["out"])
    results[-1]["wall_s"] = time.perf_counter() - t
    return results if isinstance(job, list) else results[0]
