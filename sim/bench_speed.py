"""Simulation speed (figures, no asserts): `fmprune sim LAYER` on Verilator cold (build included)
and warm, its simulated cycles per second, against the same Verilator model running the same
layer from a C++ main with no Python at all. `python -m fmprune.sim.bench_speed [LAYER]`;
writes build/bench/simspeed.json."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..sw import regs
from ..sw import driver
from .layer import simulate_layer
from .runner import RTL, ROOT, SimConfig, _env, _hw_hash, _write_hex, engine_verilog, fm_beats

RAW_MAIN = Path(__file__).parent / "raw" / "main.cpp"


def build_raw(cfg: SimConfig) -> Path:
    bdir = ROOT / "build" / "simbuild" / f"raw-P{cfg.lanes}-{_hw_hash(cfg)}"
    exe = bdir / "sim_top_raw"
    if exe.exists():
        return exe
    bdir.mkdir(parents=True, exist_ok=True)
    src = [engine_verilog(cfg, bdir / "rtl"), RTL / "fmprune_readmem.v", RTL / "fmprune_writemem.v", RTL / "sim_top.v"]
    env = _env()
    cmd = [str(Path(env["PATH"].split(os.pathsep)[0]) / "verilator"), "--cc", "--exe", "--build", "-j", "2",
           "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "sim_top", "-Mdir", str(bdir / "obj"),
           "-o", str(exe), f"-GLANES={cfg.lanes}", f"-GFM_BYTES={cfg.fm_bytes}", f"-GOUT_BYTES={cfg.out_bytes}", f"-GFM_DEPTH={cfg.fm_depth}", f"-GW_DEPTH={cfg.w_depth}",
           f"-GOUT_DEPTH={cfg.out_depth}", "-GINTERNAL_CLOCK=0", str(RAW_MAIN)] + [str(s) for s in src]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return exe


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    layer = argv[0] if argv else "mobilenet.conv3"
    cfg = SimConfig(lanes=16)
    out = ROOT / "build" / "bench" / "simspeed"
    # cold: no cached simulator build
    for d in (ROOT / "build" / "simbuild").glob(f"verilator-P16-{_hw_hash(cfg)}"):
        shutil.rmtree(d)
    quiet = lambda *a, **k: None  # noqa: E731
    t = time.perf_counter()
    cold = simulate_layer(layer, lanes=16, out_dir=out / "cold", echo=quiet)
    cold_wall = time.perf_counter() - t
    t = time.perf_counter()
    warm = simulate_layer(layer, lanes=16, out_dir=out / "warm", echo=quiet)
    warm_wall = time.perf_counter() - t
    # raw: the same memories and registers, a C++ main, no Python
    exe = build_raw(cfg)
    spec = driver.LayerSpec.from_files(out / "warm")
    job = driver.prepare(spec, 16)
    rd = out / "raw"
    rd.mkdir(parents=True, exist_ok=True)
    _write_hex(rd / "fm.hex", fm_beats(job.fm_image, cfg.fm_bytes), 8 * cfg.fm_bytes)
    _write_hex(rd / "w.hex", job.w_words, 8 * 16)
    lines = [f"{regs.ADDR[n]} {v & 0xFFFF_FFFF}" for n, v in job.regs.items()] + [f"{regs.ADDR['CTRL']} 1"]
    (rd / "regs.txt").write_text("\n".join(lines) + "\n")
    t = time.perf_counter()
    p = subprocess.run([str(exe), f"+fm_mem={rd / 'fm.hex'}", f"+w_mem={rd / 'w.hex'}", f"+out_mem={rd / 'out.hex'}",
                        f"+out_mem_len={job.out_bytes}", f"+regs={rd / 'regs.txt'}"],
                       check=True, capture_output=True, text=True)
    raw_wall = time.perf_counter() - t
    raw = json.loads(p.stdout.strip().splitlines()[-1])
    raw_cps = raw["cycles"] / raw["seconds"]
    command_cps = warm["counters"]["CYCLES"] / warm_wall        # the whole command, golden export included
    run_cps = warm["sim_cycles_per_s"]
    result = dict(layer=layer, cycles=warm["cycles"], raw_cycles=raw["cycles"],
                  cold_wall_s=round(cold_wall, 1), cold_build_s=cold["build_s"], warm_wall_s=round(warm_wall, 1),
                  raw_loop_s=round(raw["seconds"], 2), raw_process_s=round(raw_wall, 2),
                  raw_cycles_per_s=round(raw_cps), cocotb_run_cycles_per_s=run_cps,
                  warm_command_cycles_per_s=round(command_cps),
                  cocotb_vs_raw=round(run_cps / raw_cps, 3), bit_exact=warm["bit_exact"] and cold["bit_exact"])
    (out.parent / "simspeed.json").write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:28s} {v}")
    print(f"wrote {out.parent / 'simspeed.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
