"""The sequencer's back half (hw/sequencer.PositionPipe) alone: every issued position comes out
in order with the line-buffer word at its address two cycles after the address (hw/ram.py), the
real output channels clamped from K - k0, and each group's record with its last position; the
issue side sees a credit flag that never lets the position queue overflow, whatever the consumer
does."""
import random

import pytest
from amaranth import Module

from fmprune.hw.ram import RegisteredRAM
from fmprune.hw.scanner import Word
from fmprune.hw.sequencer import PositionPipe
from fmprune.sw.layout import BLOCK
from streamtb import simulate, stream_collect, stream_put

DEPTH = 64


@pytest.mark.parametrize("lanes,idle,stall", [(4, 0.0, 0.0), (16, 0.3, 0.6), (8, 0.5, 0.9)])
def test_position_pipe_against_model(lanes, idle, stall):
    rng = random.Random(lanes)
    words = [dict(values=[rng.randrange(-128, 128) for _ in range(BLOCK)], mask=rng.randrange(256)) for _ in range(DEPTH)]
    issues = [dict(inb=rng.randrange(2), last=int(rng.random() < 0.3), chmask=rng.randrange(256),
                   wbase=rng.randrange(1 << 32), dwoff=rng.randrange(8), kleft=rng.randrange(-20, 40),
                   raddr=rng.randrange(DEPTH), group=dict(k0=rng.randrange(1 << 16), pix=rng.randrange(1 << 32),
                                                          lastpix=rng.randrange(2)))
              for _ in range(300)]
    want = [dict(word=words[i["raddr"]], inb=i["inb"], last=i["last"], wbase=i["wbase"], chmask=i["chmask"],
                 dwoff=i["dwoff"], nl=max(0, min(i["kleft"], lanes))) for i in issues]
    want_groups = [i["group"] for i in issues if i["last"]]
    m = Module()
    m.submodules.pipe = pipe = PositionPipe(lanes, linebuf_depth=DEPTH, group_depth=len(want_groups) + 1)
    m.submodules.lb = lb = RegisteredRAM(Word(), DEPTH)
    m.d.comb += [lb.r_addr.eq(pipe.lb_r_addr), pipe.lb_r_data.eq(lb.r_data)]
    got, groups = [], []

    async def producer(ctx):
        for a, wd in enumerate(words):
            ctx.set(lb.w_en, 1)
            ctx.set(lb.w_addr, a)
            ctx.set(lb.w_data, wd)
            await ctx.tick()
        ctx.set(lb.w_en, 0)
        await stream_put(ctx, pipe.i, issues, idle=idle, seed=3)

    async def consumer(ctx):
        await stream_collect(ctx, pipe.o, 40 * len(issues) + DEPTH, stall=stall, seed=4, out=got)

    async def group_sink(ctx):
        await stream_collect(ctx, pipe.groups, 40 * len(issues) + DEPTH, seed=5, out=groups)

    simulate(m, producer, consumer, group_sink)
    got = [dict(word=dict(values=[int(v) for v in p.word.values], mask=int(p.word.mask)), inb=int(p.inb),
                last=int(p.last), wbase=int(p.wbase), chmask=int(p.chmask), dwoff=int(p.dwoff), nl=int(p.nl))
           for p in got]
    assert len(got) == len(want), f"{len(got)} positions, model {len(want)} (a queue overflowed or stuck)"
    for n, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"position {n}: {g} != model {w}"
    assert [dict(k0=int(g.k0), pix=int(g.pix), lastpix=int(g.lastpix)) for g in groups] == want_groups
