"""The scanner (hw/scanner.py) alone against a model: for each position, one item per present
operand, lowest channel first, with its weight address (standard), or one item of the subgroup's
lanes (depthwise); an item that only ends a group when nothing is present; padding as no operand
(zero operands in dense mode); the MAC and skipped-operand counts. Random idle cycles on the
positions, back-pressure on the items and on the weight addresses."""
import random

import pytest

from fmprune.hw.scanner import Scanner
from fmprune.sw.layout import BLOCK
from streamtb import simulate, stream_collect, stream_put


def model(positions, lanes, dw, dense, khkw):
    d = min(lanes, BLOCK)
    items, waddrs, macs, skipped = [], [], 0, 0
    for p in positions:
        vals = p["word"]["values"] if p["inb"] else [0] * BLOCK
        b_mask = p["word"]["mask"] if p["inb"] else (p["chmask"] if dense else 0)
        if dw:
            mask = (b_mask >> p["dwoff"]) & ((1 << d) - 1)
            sh = vals[p["dwoff"]:] + [0] * p["dwoff"]
            skipped += bin(((p["chmask"] >> p["dwoff"]) & ((1 << d) - 1)) & ~mask).count("1")
            if mask or p["last"]:
                items.append(dict(x=[sh[i] if mask >> i & 1 else 0 for i in range(BLOCK)], mac=int(mask != 0),
                                  last=p["last"]))
            if mask:
                waddrs.append(p["wbase"])
                macs += bin(mask).count("1")
        else:
            lanes_set = [i for i in range(BLOCK) if b_mask >> i & 1]
            skipped += bin(p["chmask"] & ~b_mask).count("1")
            for n, i in enumerate(lanes_set):
                items.append(dict(x=[vals[i]], mac=1, last=int(p["last"] and n == len(lanes_set) - 1)))
                waddrs.append(p["wbase"] + i * khkw)
                macs += p["nl"]
            if not lanes_set and p["last"]:
                items.append(dict(x=None, mac=0, last=1))
    return items, waddrs, macs, skipped


@pytest.mark.parametrize("lanes,dw,dense,idle,stall", [(16, 0, 0, 0.0, 0.0), (4, 0, 0, 0.3, 0.5), (4, 0, 1, 0.2, 0.3),
                                                       (8, 1, 0, 0.4, 0.4), (4, 1, 1, 0.1, 0.6), (2, 1, 0, 0.0, 0.2)])
def test_scanner_against_model(lanes, dw, dense, idle, stall):
    rng = random.Random(lanes * 5 + dw * 2 + dense)
    d = min(lanes, BLOCK)
    khkw = 9
    positions = []
    for n in range(200):
        chmask = rng.choice([0xFF, 0x3F, 0x01, 0])
        mask = rng.choice([0, rng.randrange(256), 0xFF, 1 << rng.randrange(8)]) & chmask
        positions.append(dict(word=dict(values=[rng.randrange(-128, 128) for _ in range(BLOCK)], mask=mask),
                              inb=int(rng.random() < 0.8), last=int(rng.random() < 0.2), wbase=rng.randrange(1 << 20),
                              chmask=chmask, dwoff=rng.randrange(BLOCK // d) * d if dw else 0,
                              nl=rng.randrange(lanes + 1)))
    want_items, want_w, want_macs, want_skipped = model(positions, lanes, dw, dense, khkw)
    dut = Scanner(lanes, 8)
    items, waddrs, counts = [], [], dict(macs=0, skipped=0)

    async def producer(ctx):
        ctx.set(dut.desc.DEPTHWISE, dw)
        ctx.set(dut.desc.DENSE_MODE, dense)
        for i in range(BLOCK):
            ctx.set(dut.derived.khkw_x[i], i * khkw)
        ctx.set(dut.run, 1)
        await stream_put(ctx, dut.i, positions, idle=idle, seed=13)

    async def counters(ctx):
        async for _, _, macs, skipped in ctx.tick().sample(dut.macs, dut.skipped):
            counts["macs"] += macs
            counts["skipped"] += skipped

    async def item_sink(ctx):
        await stream_collect(ctx, dut.o, 20 * len(positions), stall=stall, seed=14, out=items)

    async def w_sink(ctx):
        await stream_collect(ctx, dut.w_addr, 20 * len(positions), stall=stall, seed=15, out=waddrs)

    simulate(dut, producer, item_sink, w_sink, processes=[counters], until=1e-8 * 20 * len(positions) + 1e-7)
    assert len(want_items) > 50            # the case exercises the scanner
    assert len(items) == len(want_items), f"{len(items)} items, model {len(want_items)}"
    for n, (g, w) in enumerate(zip(items, want_items)):
        got = dict(x=[int(v) for v in g.x][:len(w["x"]) if w["x"] is not None else 0], mac=int(g.mac), last=int(g.last))
        if w["x"] is None:
            w = dict(w, x=[])
        assert got == w, f"item {n}: {got} != model {w}"
    assert [int(a) for a in waddrs] == want_w, "weight addresses differ from the model's"
    assert counts == dict(macs=want_macs, skipped=want_skipped), (counts, want_macs, want_skipped)
