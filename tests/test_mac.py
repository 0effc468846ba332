"""The MAC lanes (hw/mac.py) alone against a model: per pixel-group, the sum over its items of
operand x weight in every lane (standard: x[0] broadcast; depthwise: x[p] in lane p, lanes from
8 on 0), wrapping at 32 bits; items that do not multiply take no weight word. Random idle cycles
on the items and the weights, back-pressure on the accumulators."""
import random

import pytest

from fmprune.hw.mac import MACLanes
from fmprune.sw import quant
from fmprune.sw.layout import BLOCK
from streamtb import simulate, stream_collect, stream_put


def model(items, words, lanes, dw):
    out, acc, w = [], [0] * lanes, iter(words)
    for it in items:
        if it["mac"]:
            word = next(w)
            for p in range(lanes):
                x = (it["x"][p] if p < BLOCK else 0) if dw else it["x"][0]
                acc[p] += x * word[p]
        if it["last"]:
            out.append([int(quant.wrap_int32(a)) for a in acc])
            acc = [0] * lanes
    return out


@pytest.mark.parametrize("lanes,dw,idle,stall", [(16, 0, 0.0, 0.0), (16, 0, 0.3, 0.6), (8, 1, 0.4, 0.3),
                                                 (4, 1, 0.2, 0.8), (1, 0, 0.5, 0.5), (16, 1, 0.1, 0.2)])
def test_mac_lanes_against_model(lanes, dw, idle, stall):
    rng = random.Random(lanes * 3 + dw)
    items = []
    for g in range(40):
        n = rng.choice([0, 1, 2, 5, 30])                # operands in the group (0: only the ending item)
        for i in range(n):
            items.append(dict(x=[rng.randrange(-128, 128) for _ in range(BLOCK)], mac=1, last=int(i == n - 1)))
        if n == 0:
            items.append(dict(x=[0] * BLOCK, mac=0, last=1))
    items[-1]["last"] = 1
    words = [[rng.randrange(-127, 128) for _ in range(lanes)] for it in items if it["mac"]]
    want = model(items, words, lanes, dw)
    dut = MACLanes(lanes)
    got = []

    async def items_in(ctx):
        ctx.set(dut.depthwise, dw)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await stream_put(ctx, dut.i, items, idle=idle, seed=10)

    async def words_in(ctx):
        await ctx.tick()
        await stream_put(ctx, dut.w, [sum((v & 0xFF) << (8 * p) for p, v in enumerate(wd)) for wd in words],
                         idle=idle, seed=11)

    async def consumer(ctx):
        await stream_collect(ctx, dut.o, 40 * len(items), stall=stall, seed=12, out=got)

    simulate(dut, items_in, words_in, consumer)
    got = [[int(v) for v in g] for g in got]
    assert len(got) == len(want), f"{len(got)} groups, model {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        bad = [p for p in range(lanes) if g[p] != w[p]]
        assert not bad, f"group {i}, lane {bad[0]}: {g[bad[0]]} != model {w[bad[0]]}"
