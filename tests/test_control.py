"""The control (hw/control.py) and the parameter loader (hw/params.py), each alone against a
model: the control's phases and table writes for accepted and refused descriptors, and its end
only after the last block is written; the parameter loader's word addresses, the parameter
buffer entries it writes (sw/layout.py's parameter words, read back as bias, multiplier, shift)
and its done flag, with the weight memory delaying words at random."""
import random

import numpy as np
import pytest

from fmprune.hw.control import Control
from fmprune.hw.params import ParamLoader
from fmprune.sw import driver, layout
from streamtb import simulate


@pytest.mark.parametrize("cb_in,cb_out,error,wbuf", [(1, 1, 0, 0), (3, 5, 0, 0), (6, 2, 0, 1), (2, 2, 3, 0),
                                                     (2, 2, 8, 1)])
def test_control_phases_and_tables(cb_in, cb_out, error, wbuf):
    """With WEIGHT_BUFFER = 1, FILL comes between PARAMS and RUN and lasts until the buffer is
    filled, and `serve` is high exactly while the run is on; without it there is no FILL and no
    `serve`."""
    dut = Control(4, 16)
    rng = random.Random(cb_in * 7 + cb_out)
    in_stride, out_stride, in_base, out_base = 100, 72, 5000, 9000
    log = []

    async def bench(ctx):
        for n, v in dict(cb_in=cb_in, cb_out=cb_out, in_stride=in_stride, out_stride=out_stride).items():
            ctx.set(dut.derived[n], v)
        ctx.set(dut.desc.IN_BASE, in_base)
        ctx.set(dut.desc.OUT_BASE, out_base)
        ctx.set(dut.desc.WEIGHT_BUFFER, wbuf)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        setup_left, params_left, fill_left, blocks_left = 5, 3, 6, 4
        ran = 0
        for cycle in range(200):
            ctx.set(dut.setup_done, setup_left == 0)
            ctx.set(dut.setup_error, error if setup_left == 0 else 0)
            setup_left -= 1
            if ctx.get(dut.params_active):
                params_left -= 1
            ctx.set(dut.params_done, params_left <= 0)
            if ctx.get(dut.fill_active):
                fill_left -= 1
            ctx.set(dut.fill_done, fill_left <= 0)
            if ctx.get(dut.run) and not ctx.get(dut.run_start):
                ran += 1
                blocks_left -= rng.random() < 0.3
            ctx.set(dut.out_done, ran > 0 and blocks_left <= 0)
            ctx.set(dut.out_busy, ran > 0 and blocks_left == 0)       # the last block is being written
            if blocks_left == 0 and ran > 0 and rng.random() < 0.5:
                blocks_left = -1                                       # and then it is written
            _, _, *v = await ctx.tick().sample(
                dut.in_init_en, dut.in_init_addr, dut.in_init_data, dut.out_init_en, dut.out_init_addr,
                dut.out_init_data, dut.params_begin, dut.params_active, dut.run, dut.run_start, dut.end, dut.end_error,
                dut.fill_active, dut.serve, dut.load, dut.load_start)
            log.append(dict(zip(("in_en", "in_addr", "in_data", "out_en", "out_addr", "out_data", "begin", "active",
                                 "run", "run_start", "end", "end_error", "fill", "serve", "load", "load_start"), v)))
            if v[10]:
                break

    simulate(dut, bench)
    ends = [e for e in log if e["end"]]
    assert len(ends) == 1 and ends[0]["end_error"] == error, ends
    if error:
        assert not any(e["begin"] or e["in_en"] or e["out_en"] or e["active"] or e["run"] or e["fill"] or e["load"]
                       for e in log)
        return
    ins = [(e["in_addr"], e["in_data"]) for e in log if e["in_en"]]
    outs = [(e["out_addr"], e["out_data"]) for e in log if e["out_en"]]
    assert ins == [(cb, in_base + cb * in_stride) for cb in range(cb_in)], ins
    assert outs == [(cb, out_base + cb * out_stride) for cb in range(cb_out)], outs
    assert sum(e["begin"] for e in log) == 1 and sum(e["run_start"] for e in log) == 1
    order = [i for i, e in enumerate(log) if e["in_en"] or e["out_en"]], \
        [i for i, e in enumerate(log) if e["active"]], [i for i, e in enumerate(log) if e["run"]]
    assert max(order[0]) < min(order[1]) and max(order[1]) < min(order[2]), "phases out of order"
    fills = [i for i, e in enumerate(log) if e["fill"]]
    if wbuf:
        assert len(fills) == 6 and max(order[1]) < min(fills) and max(fills) < min(order[2]), "FILL out of order"
    else:
        assert not fills
    assert all(e["serve"] == (e["run"] and wbuf) for e in log), "serve is not run with WEIGHT_BUFFER"
    assert log[-1]["run"], "the run ended before the last block was written"
    # the loader's phase: from PARAMS's first cycle (the tables written) to the run's end
    loads = [i for i, e in enumerate(log) if e["load"]]
    assert loads == list(range(min(order[1]), len(log))), "load is not PARAMS to the run's end"
    assert [i for i, e in enumerate(log) if e["load_start"]] == [min(order[1])], "load_start is not PARAMS's first cycle"


@pytest.mark.parametrize("lanes,k,stall", [(16, 5, 0.0), (4, 7, 0.4), (1, 3, 0.3), (8, 9, 0.6)])
def test_param_loader_against_layout(lanes, k, stall):
    rng = np.random.default_rng(lanes + k)
    bias = rng.integers(-2 ** 31, 2 ** 31, k)
    mult = rng.integers(0, 2 ** 31, k)
    shift = rng.integers(-31, 31, k)
    words = driver.words_to_ints(layout.pack_params(bias, mult, shift, lanes).reshape(-1, lanes).view(np.int8))
    p_base = 1234
    dut = ParamLoader(lanes, 16)
    entries, addrs = {}, []
    done_at = []
    r = random.Random(k)

    async def bench(ctx):
        ctx.set(dut.desc.OUT_K, k)
        ctx.set(dut.desc.P_BASE, p_base)
        ctx.set(dut.begin, 1)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        ctx.set(dut.prepare, 1)
        await ctx.tick()
        ctx.set(dut.prepare, 0)
        ctx.set(dut.active, 1)
        pending = []
        for cycle in range(60 * len(words)):
            ctx.set(dut.w_addr.ready, r.random() >= stall)
            valid = bool(pending) and r.random() >= stall
            ctx.set(dut.w_data.valid, valid)
            ctx.set(dut.w_data.payload, pending[0] if pending else 0)
            _, _, a_valid, a_ready, addr, d_ready, done, en, waddr, wdata = await ctx.tick().sample(
                dut.w_addr.valid, dut.w_addr.ready, dut.w_addr.payload, dut.w_data.ready, dut.done,
                dut.p_w_en, dut.p_w_addr, dut.p_w_data)
            if valid and d_ready:
                pending.pop(0)
            if a_valid and a_ready:
                addrs.append(addr)
                pending.append(words[addr - p_base])
            if en:
                entries[int(waddr)] = (int(wdata.bias), int(wdata.mult), int(wdata.shift))
            if done and not done_at:
                done_at.append(cycle)
            if done_at and cycle > done_at[0] + 2:                 # the last entry lands after done
                break

    simulate(dut, bench)
    assert addrs == list(range(p_base, p_base + len(words))), addrs
    assert done_at, "never done"
    want = {c: (int(bias[c]), int(mult[c]), int(shift[c])) for c in range(k)}
    assert entries == want, entries
