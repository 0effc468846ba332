"""Boards: the UART, the bridge and the host session over the board system's pins (co-simulated),
the tiled driver on the RTL, the PLL solver, and smoke builds of both bitstreams."""
import json
from dataclasses import replace

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from fmprune.boards import protocol
from fmprune.boards.bridge import Bridge
from fmprune.boards.host import check_fits, link_bytes
from fmprune.boards.top import BOARDS, BuildError, build, ecp5_pll, parse_nextpnr_log, parse_yosys_ffs, sweep
from fmprune.boards.uart import UARTRx, UARTTx, check_divisor
from fmprune.sw import driver, tiling
from fmprune.sw.analyze import nonzero_macs
from test_engine import golden, make_spec


def assert_layer_equal(name, got, want):
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        k, y, x = bad[0]
        raise AssertionError(f"{name}: {len(bad)} values differ; first at (k={k}, y={y}, x={x}): "
                             f"engine {got[k, y, x]}, golden {want[k, y, x]}")
    np.testing.assert_array_equal(got, want)


# ---- UART (Amaranth simulation) ---------------------------------------------------------------

def test_uart_loopback():
    """Bytes through the transmitter's pin into the receiver, back to back."""
    m = Module()
    m.submodules.tx = tx = UARTTx(5)
    m.submodules.rx = rx = UARTRx(5)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x00, 0xFF, 0x55, 0xA5, 0x01, 0x80]
    got = []
    overruns = []

    async def bench(ctx):
        for b in sent:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
        ctx.set(rx.data.ready, 1)

    async def sink(ctx):
        ctx.set(rx.data.ready, 1)
        for _ in range(2000):
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
                if len(got) == len(sent):
                    overruns.append(ctx.get(rx.overruns))
                    return

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(sink)
    sim.run()
    assert got == sent
    assert overruns == [0]


@pytest.mark.parametrize("pause", [10, 40])
def test_bridge_drops_a_stalled_command(pause):
    """A command whose bytes stop for the idle timeout (30 cycles here) is dropped: INFO sent
    after a 40-cycle pause is answered as INFO. After a 10-cycle pause the same byte is still the
    half-sent READ_REG's address, which the bridge answers with a register's 4 bytes."""
    info = {f: i for i, f in enumerate(protocol.INFO_FIELDS)}
    bridge = Bridge(info=info, mem_sizes=[16, 16, 16], idle_timeout=30)
    got = []

    async def bench(ctx):
        async def send(byte):
            ctx.set(bridge.rx.payload, byte)
            ctx.set(bridge.rx.valid, 1)
            await ctx.tick().until(bridge.rx.ready)
            ctx.set(bridge.rx.valid, 0)
        ctx.set(bridge.csr.r_data, 0x11223344)
        await send(protocol.CMD["READ_REG"].code)
        await ctx.tick().repeat(pause)
        await send(protocol.CMD["INFO"].code)
        ctx.set(bridge.tx.ready, 1)
        for _ in range(200):
            await ctx.tick()
            if ctx.get(bridge.tx.valid):
                got.append(ctx.get(bridge.tx.payload))

    sim = Simulator(bridge)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if pause > 30:
        assert len(got) == protocol.INFO_BYTES
        reply = protocol.parse_info(bytes(got))
        assert {f: reply[f] for f in protocol.INFO_FIELDS if f != "magic"} == \
            {f: v for f, v in info.items() if f != "magic"}
    else:
        assert got == [0x44, 0x33, 0x22, 0x11]


def test_uart_divisor_checked():
    with pytest.raises(ValueError, match="divisor"):
        check_divisor(3)


# ---- the host session over the board system's UART pins (cocotb) ---------------------------

UART_CASES = {
    # board config (memories shrunk for a short build), simulator, layers run one after another
    # on the same board (C H W K k s p dw)
    "icebreaker-icarus": ("icebreaker", None, "icarus", [(8, 6, 6, 8, 3, 1, 1, False)]),
    "ulx3s-verilator": ("ulx3s", 8 << 10, "verilator", [(16, 5, 5, 16, 3, 1, 1, True), (12, 4, 5, 10, 3, 2, 1, False)]),
}


@pytest.mark.cosim
@pytest.mark.parametrize("case", list(UART_CASES))
def test_uart_layer(case, tmp_path):
    from fmprune.sim import uart
    board, mem, simulator, shapes = UART_CASES[case]
    cfg = BOARDS[board].system
    if mem:
        cfg = replace(cfg, fm_bytes=mem, w_bytes=mem, out_bytes=mem)
    cfg = uart.sim_config(cfg, divisor=8)
    specs = []
    for i, (c, h, w, k_out, k, s, p, dw) in enumerate(shapes):
        specs.append(make_spec(len(case) + i, c, h, w, k_out, k, s, p, dw, name=f"{case} layer {i}"))
    jobs = [driver.prepare(spec, cfg.lanes) for spec, _ in specs]
    results = uart.run(jobs, cfg, simulator, tmp_path)
    assert len(results) == len(jobs)
    for (spec, act), job, r in zip(specs, jobs, results):
        assert not r["timeout"] and r["error"] == 0, (spec.name, r)
        assert r["info"]["lanes"] == cfg.lanes and r["info"]["fm_bytes"] == cfg.fm_bytes
        assert_layer_equal(spec.name, driver.check_run(spec.name, job, r), golden(spec, act))
        # what crossed the link is host.link_bytes plus the polls (STATUS and CYCLES while busy,
        # the last STATUS read): the feature map's unread block tails were not sent
        lb = link_bytes(job, cfg.lanes)
        assert r["link_bytes"] == lb["total"] + 6 + 12 * r["polls"], (spec.name, r["polls"])
        assert r["exchanges"] == lb["exchanges"] + 1 + 2 * r["polls"], (spec.name, r["polls"])
        assert r["counters"]["MACS"] == nonzero_macs(spec.input, spec.weight.shape, spec.stride, spec.padding,
                                                     spec.input.shape[0] if spec.depthwise else 1)


@pytest.mark.parametrize("shape", [(20, 6, 7, 8, 3, 1, 1, False), (1024, 1, 1, 10, 1, 1, 0, False)])
def test_host_sends_what_the_engine_reads(shape):
    """The session's feature-map writes cover every byte the engine reads (fmformat.read_ranges),
    and of the rest only gaps shorter than a command's own bytes (a 1 x 1 layer's blocks then go
    as one write); the weights go whole. link_bytes counts the same writes."""
    from fmprune.boards.host import CHUNK, memory_writes
    from fmprune.sw import fmformat
    c, h, w, k_out, k, s, p, dw = shape
    spec, _ = make_spec(7, c, h, w, k_out, k, s, p, dw)
    job = driver.prepare(spec, 8, in_base=40)
    writes = memory_writes(job, 8)
    fm = [(a, a + len(d)) for m, a, d in writes if m == protocol.MEM["FM"]]
    assert all(job.fm_image[a:a + len(d)] == d for m, a, d in writes if m == protocol.MEM["FM"])
    sent = np.zeros(len(job.fm_image), bool)
    for a, b in fm:
        sent[a:b] = True
    read = np.zeros(len(job.fm_image), bool)
    for a, b in fmformat.read_ranges(job.fm_image[40:], c, h, w):
        read[40 + a:40 + b] = True
    assert sent[read].all() and not sent[:40].any()
    gap = len(protocol.write_mem(0, 0, b"")) + 1
    extra = np.flatnonzero(sent & ~read)
    runs = np.split(extra, np.flatnonzero(np.diff(extra) != 1) + 1) if extra.size else []
    assert all(len(r) <= gap for r in runs), "a gap longer than a command was sent"
    if h * w == 1:
        assert len(fm) == -(-(len(job.fm_image) - 40) // CHUNK), fm
    else:
        assert sent.sum() < len(job.fm_image) - 40, "the blocks' tails were sent"
    wts = b"".join(d for m, a, d in writes if m == protocol.MEM["WEIGHTS"])
    assert wts == b"".join(int(x).to_bytes(8, "little") for x in job.w_words)
    lb = link_bytes(job, 8)
    assert lb["fm"] == sum(len(protocol.write_mem(0, a, b"")) + (b - a) + 1 for a, b in fm)


def test_link_budget():
    """`make bench-link`'s figures add up: each layer's tiles are the tiler's, each part the sum
    of the tiles' link_bytes, and sending whole feature-map regions costs more."""
    from fmprune.sim.link_budget import LATENCY_S, PARTS, budget
    r = budget("tinynet", "ulx3s", echo=lambda *a: None)
    t = r["totals"]
    assert t["tiles"] == sum(row["tiles"] for row in r["layers"]) > len(r["layers"])
    assert t["total"] == sum(t[p] for p in PARTS) == sum(row["total"] for row in r["layers"])
    assert r["whole_regions_total"] == t["total"] - t["fm"] + t["whole_region_fm"] > t["total"]
    assert r["link_s"] == round(t["total"] * 10 / r["baud"], 1)
    assert t["exchanges"] == sum(row["exchanges"] for row in r["layers"]) > 10 * t["tiles"]
    assert r["latency_s"] == {k: round(t["exchanges"] * v, 1) for k, v in LATENCY_S.items()}


def test_baud_rates():
    """--baud: the divisor's rate within 2 % and at least 4 cycles a bit, or a message with the limit."""
    from fmprune.boards.top import board_config
    for board, baud, divisor in (("ulx3s", 3_000_000, 33), ("icebreaker", 3_000_000, 4), ("ulx3s", 115_200, 868)):
        _, cfg = board_config(board, baud=baud)
        assert (cfg.baud, cfg.divisor) == (baud, divisor)
    with pytest.raises(ValueError, match="at least 4 clock cycles a bit.*at most 3,000,000 baud"):
        board_config("icebreaker", baud=5_000_000)
    with pytest.raises(ValueError, match=r"makes 3,000,000 baud at the nearest.*11.1% off"):
        board_config("icebreaker", baud=2_700_000)


def test_serial_transport_says_what_is_wrong(tmp_path):
    """SerialTransport on a port that does not exist, and on one where nothing answers (a
    pseudo-terminal, which has no low-latency mode: the transport goes on without it)."""
    import os
    from fmprune.boards.host import SerialTransport
    with pytest.raises(RuntimeError, match="cannot open serial port"):
        SerialTransport(str(tmp_path / "ttyNONE"), 16)
    master, slave = os.openpty()
    try:
        t = SerialTransport(os.ttyname(slave), 16, reply_timeout_s=0.2)
        assert t.low_latency is False
        with pytest.raises(RuntimeError, match=r"sent 0 of \d+ bytes within 0.2 s: is the fmprune bitstream loaded"):
            t.info()
        t.link.close()
    finally:
        os.close(master)
        os.close(slave)


def test_host_refuses_a_layer_that_does_not_fit():
    spec, _ = make_spec(3, 64, 20, 20, 64, 3, 1, 1, False)
    job = driver.prepare(spec, 16)
    info = dict(BOARDS["ulx3s"].system.info(), fm_bytes=1024)
    with pytest.raises(ValueError, match="feature map .* of 1,024 bytes.*tiled"):
        check_fits(job, 16, info)
    with pytest.raises(ValueError, match="pass --lanes 16"):
        check_fits(job, 8, BOARDS["ulx3s"].system.info())


# ---- tiles on the RTL ----------------------------------------------------------------------

TILE_LIMITS = tiling.Limits(lanes=8, fm_bytes=1200, w_bytes=2048, out_bytes=1200, linebuf_words=256,
                            max_channels=16, max_blocks=8)


@pytest.mark.cosim
@pytest.mark.parametrize("shape", [(12, 13, 11, 24, 3, 1, 1, False), (24, 12, 12, 24, 3, 2, 1, True)],
                         ids=["standard", "depthwise_s2"])
def test_tiled_layer(shape, tmp_path):
    from fmprune.sim.runner import SimConfig, SimTransport
    c, h, w, k_out, k, s, p, dw = shape
    spec, act = make_spec(sum(shape[:5]), c, h, w, k_out, k, s, p, dw, name="tiled")
    kt, th, tw = tiling.plan(spec, TILE_LIMITS)
    n_tiles = len(list(tiling.tiles(spec, TILE_LIMITS)))
    assert n_tiles > 2, (kt, th, tw)
    # the engine of tests/test_cosim.py (one simulator build for both): the tiles must fit
    # TILE_LIMITS, which are smaller than its memories and buffers
    from test_cosim import CFG
    assert all(getattr(TILE_LIMITS, f) <= CFG[f] for f in ("max_channels", "max_blocks")) and \
        TILE_LIMITS.linebuf_words <= CFG["linebuf_depth"] and TILE_LIMITS.fm_bytes <= CFG["fm_depth"]
    cfg = SimConfig(**CFG)
    y, info = tiling.run_tiled(spec, SimTransport(cfg, tmp_path), TILE_LIMITS)
    assert info["tiles"] == n_tiles
    assert_layer_equal(spec.name, y, golden(spec, act))


def test_tiling_refuses_what_cannot_fit():
    spec, _ = make_spec(4, 16, 8, 8, 8, 3, 1, 1, False)
    with pytest.raises(ValueError, match="even one output pixel"):
        tiling.plan(spec, replace(TILE_LIMITS, linebuf_words=4))
    big, _ = make_spec(4, 64, 8, 8, 8, 3, 1, 1, False)
    with pytest.raises(ValueError, match="weights of even 8 output channels"):
        tiling.plan(big, TILE_LIMITS)


# ---- PLL and reports -----------------------------------------------------------------------

@pytest.mark.parametrize("f", [100.0, 50.0, 62.5, 75.0])
def test_ecp5_pll(f):
    p = ecp5_pll(25.0, f)
    assert p["f_out_mhz"] == pytest.approx(f)
    assert p["f_out_mhz"] == pytest.approx(25.0 / p["CLKI_DIV"] * p["CLKFB_DIV"])
    assert 400 <= p["f_out_mhz"] * p["CLKOP_DIV"] <= 800


def test_protocol_table_in_docs():
    from pathlib import Path
    text = (Path(__file__).parent.parent / "docs" / "boards.md").read_text()
    assert protocol.markdown() in text, "docs/boards.md: regenerate the table with python -m fmprune.boards.protocol"


SMOKE = {"ulx3s": 1, "icebreaker": 1}
# what each smoke build must report: the ULX3S holds the engine; the iCEBreaker's UP5K holds it at
# no P (docs/boards.md), so its build must say it does not fit, with the logic cells over their total
SMOKE_FITS = {"ulx3s": True, "icebreaker": False}


# the ULX3S's build (place and route on the 85k-LUT device) takes about five minutes: in the slow
# tier, so that the default one stays near 15 minutes; the iCEBreaker's exercises the same flow
@pytest.mark.bitstream
@pytest.mark.parametrize("board", [pytest.param("ulx3s", marks=pytest.mark.slow), "icebreaker"])
def test_bitstream_smoke(board, tmp_path):
    """A real build with a small P: the report holds the tools' own figures. A design that does
    not fit must say so (fits false, the resource over its total, the tool's error lines)."""
    try:
        r = build(board, lanes=SMOKE[board], seed=7, baud=3_000_000, build_root=tmp_path, echo=lambda *a: None)
    except BuildError as e:
        r = e.report
        assert not r["fits"] and r["errors"] and r["bitstream"] is None
    saved = json.loads((tmp_path / board / "report.json").read_text())
    assert saved == r
    assert r["device"] == BOARDS[board].device and r["lanes"] == SMOKE[board]
    script = (tmp_path / board / "build_top.sh").read_text()
    assert r["seed"] == 7 and "--seed 7" in script
    assert r["router"] == BOARDS[board].router and f"--router {r['router']}" in script
    assert ("--tmg-ripup" in script) == (r["router"] == "router2")
    assert r["baud"] == 3_000_000
    tim = (tmp_path / board / "top.tim").read_text()
    again = parse_nextpnr_log(tim, BOARDS[board].resources)
    for kind in ("luts", "dsps", "brams"):
        u = r["utilisation"][kind]
        assert u == again["utilisation"][kind] and u["total"] > 0 and u["used"] >= 0, (kind, u)
    if BOARDS[board].resources["ffs"] is None:          # iCE40: flip-flops from Yosys's statistics
        assert r["utilisation"]["ffs"]["used"] == parse_yosys_ffs((tmp_path / board / "top.rpt").read_text()) > 0
    over = [k for k, u in r["utilisation"].items() if u["used"] > u["total"]]
    assert r["fits"] == (not over and r["bitstream"] is not None)
    assert r["fits"] == SMOKE_FITS[board], (f"{board} at P={SMOKE[board]}: the report says fits={r['fits']} "
                                            f"(over: {over}; errors: {r.get('errors')})")
    if not SMOKE_FITS[board]:
        assert "luts" in over, over
    if r["fits"]:
        assert r["fmax_mhz"] == again["clocks"][r["clock"]]["fmax_mhz"] > 0
        assert r["timing_met"] == (r["fmax_mhz"] >= r["clk_target_mhz"])
        assert r["build_s"] > 0 and r["bitstream_bytes"] > 10_000


def test_build_refuses_an_unknown_router(tmp_path):
    with pytest.raises(ValueError, match="--router router3: nextpnr's routers are router1 and router2"):
        build("ulx3s", router="router3", build_root=tmp_path)
    assert not (tmp_path / "ulx3s").exists(), "nothing is built before the options are checked"


@pytest.mark.slow
@pytest.mark.bitstream
def test_timing_sweep(tmp_path):
    """`fmprune bitstream --sweep`: one real build per seed; sweep.json is each build's own report
    figures and the count of those that met timing."""
    res = sweep("ulx3s", 2, lanes=SMOKE["ulx3s"], jobs=2, build_root=tmp_path, echo=lambda *a: None)
    assert json.loads((tmp_path / "ulx3s" / "sweep.json").read_text()) == res
    assert [b["seed"] for b in res["builds"]] == [None, 1] and res["failed"] == 0
    for row in res["builds"]:
        rpt = json.loads(open(row["report"]).read())
        assert rpt["seed"] == row["seed"] and rpt["fmax_mhz"] == row["fmax_mhz"] > 0
        assert rpt["timing_met"] == row["timing_met"] and rpt["lanes"] == SMOKE["ulx3s"]
    fmax = [b["fmax_mhz"] for b in res["builds"]]
    assert res["met"] == sum(b["timing_met"] for b in res["builds"])
    assert (res["fmax_min_mhz"], res["fmax_max_mhz"]) == (min(fmax), max(fmax))
    assert res["fmax_median_mhz"] == round(sum(fmax) / 2, 2)
    with pytest.raises(ValueError, match="at least one build"):
        sweep("ulx3s", 0, build_root=tmp_path)
