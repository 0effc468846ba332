"""The weight buffer (hw/wbuf.py) alone against its model, a Python list: filled through a port
that refuses addresses and delays data at random, then read at random addresses by a consumer
that refuses words at random while keeping at most `places` requests outstanding (the scanner's
item-queue bound). Every word read must be the word filled at that address, in order; the fill
must request exactly W_BASE .. W_BASE + w_fill - 1, once each."""
import random

import pytest
from amaranth import Module

from fmprune.hw.wbuf import WeightBuffer
from streamtb import simulate

P, DEPTH, PLACES = 4, 40, 5


@pytest.mark.parametrize("fill, stall", [(40, 0.0), (23, 0.4), (1, 0.7)])
def test_fill_then_serve(fill, stall):
    rng = random.Random(fill)
    base = 1000 + fill
    memory = {base + i: rng.randrange(1 << (8 * P)) for i in range(fill)}
    dut = WeightBuffer(P, DEPTH, PLACES)
    m = Module()
    m.submodules.dut = dut
    requested, served, reads = [], [], [rng.randrange(fill) for _ in range(300)]
    state = dict(done_cycle=None, filled=False)

    async def port(ctx):                     # the weight port: refuses addresses, data late
        pending = []
        while not state["filled"]:
            ctx.set(dut.port_addr.ready, rng.random() >= stall)
            deliver = bool(pending) and rng.random() >= stall
            ctx.set(dut.port_data.valid, deliver)
            if deliver:
                ctx.set(dut.port_data.payload, memory[pending[0]])
            _, _, a_valid, a_ready, addr = await ctx.tick().sample(dut.port_addr.valid, dut.port_addr.ready,
                                                                   dut.port_addr.payload)
            if deliver:
                pending.pop(0)
            if a_valid and a_ready:
                requested.append(addr)
                pending.append(addr)
        ctx.set(dut.port_data.valid, 0)

    async def bench(ctx):
        ctx.set(dut.desc.W_BASE, base)
        ctx.set(dut.derived.w_fill, fill)
        ctx.set(dut.begin, 1)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        ctx.set(dut.active, 1)
        for cycle in range(20 * fill + 20):
            await ctx.tick()
            if ctx.get(dut.done):
                state["done_cycle"] = cycle
                break
        assert state["done_cycle"] is not None, "the fill did not end"
        assert requested == list(range(base, base + fill)), f"fill requested {requested}"
        ctx.set(dut.active, 0)
        state["filled"] = True
        await ctx.tick()
        # serve: at most PLACES outstanding, the consumer refusing at random
        outstanding, todo = 0, list(reads)
        for _ in range(40 * len(reads)):
            offer = bool(todo) and outstanding < PLACES and rng.random() >= stall
            ctx.set(dut.r_addr.valid, offer)
            if offer:
                ctx.set(dut.r_addr.payload, todo[0])
            take = rng.random() >= stall
            ctx.set(dut.r_data.ready, take)
            _, _, a_ready, d_valid, d = await ctx.tick().sample(dut.r_addr.ready, dut.r_data.valid, dut.r_data.payload)
            if offer:
                assert a_ready, "the buffer refused an address"
                todo.pop(0)
                outstanding += 1
            if take and d_valid:
                served.append(d)
                outstanding -= 1
            if len(served) == len(reads):
                break
        ctx.set(dut.r_addr.valid, 0)

    simulate(m, bench, port)
    want = [memory[base + a] for a in reads]
    assert len(served) == len(want), f"{len(served)} words served of {len(want)}"
    for i, (got, exp) in enumerate(zip(served, want)):
        assert got == exp, f"read {i} (address {reads[i]}): 0x{got:08X} != filled 0x{exp:08X}"
