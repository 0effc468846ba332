"""The engine's small building blocks on their own (hw/queues.py, hw/arith.py), each against a
model: the stream stages with random idle and back-pressure cycles on both sides, the credit
counter, the lowest-set-bit encoder and the shift-and-add multiplier."""
import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from fmprune.hw.arith import SeqMul, lowest_set, popcount, times_const
from fmprune.hw.queues import PipeRegister, TwoPlaceQueue, credits
from streamtb import stream_get, stream_put

CLOCK = 1e-8


def run(dut, *benches, cycles):
    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    for b in benches:
        sim.add_testbench(b)
    sim.run_until(CLOCK * cycles)             # cycle budget: every bench ends long before


@pytest.mark.parametrize("cls", [PipeRegister, TwoPlaceQueue])
@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.4, 0.0), (0.0, 0.5), (0.3, 0.6)])
def test_stream_stage_keeps_every_item_in_order(cls, idle, stall):
    """Model: a stream stage delivers exactly what it was given, in order."""
    dut = cls(16)
    sent = [random.Random(7).randrange(1 << 16) for _ in range(300)]
    got = []

    async def producer(ctx):
        await stream_put(ctx, dut.i, sent, idle=idle, seed=2)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.o, len(sent), stall=stall, seed=3))

    run(dut, producer, consumer, cycles=20 * len(sent))
    assert len(got) == len(sent), f"{cls.__name__}: {len(got)} of {len(sent)} items within the budget"
    bad = [i for i, (a, b) in enumerate(zip(got, sent)) if a != b]
    assert not bad, f"{cls.__name__}: item {bad[0]} is {got[bad[0]]}, sent {sent[bad[0]]}"


@pytest.mark.parametrize("cls", [PipeRegister, TwoPlaceQueue])
def test_stream_stage_full_throughput(cls):
    """With no idle and no back-pressure, N items pass in N cycles after one of latency."""
    dut = cls(8)
    n = 50
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, 0)
        for cycle in range(n + 3):
            ctx.set(dut.i.valid, cycle < n)
            ctx.set(dut.i.payload, cycle)
            _, _, ready, valid, payload = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload)
            if cycle < n:
                assert ready, f"{cls.__name__}: input refused at cycle {cycle}"
            if valid:
                seen.append((cycle, payload))

    run(dut, bench, cycles=n + 10)
    assert [p for _, p in seen] == list(range(n))
    assert seen[0][0] == 1 and seen[-1][0] == n, seen[:2]


@pytest.mark.parametrize("late", [False, True])
def test_credits_against_a_count(late):
    """Model: places - claims + returns; the flag is `a place left` (late: two left), one cycle
    after the claim and the return."""
    m = Module()
    take, give = Signal(), Signal()
    places = 5
    left = credits(m, places, "q", take, give, late=late)
    rng = random.Random(11)

    async def bench(ctx):
        count = places
        for cycle in range(2000):
            t = rng.random() < 0.5 and count > (1 if late else 0)
            g = rng.random() < 0.5 and count < places
            ctx.set(take, t)
            ctx.set(give, g)
            await ctx.tick()
            count += g - t
            want = count > 1 if late else count != 0
            assert ctx.get(left) == want, f"cycle {cycle}: {count} credits, flag {ctx.get(left)}"

    run(m, bench, cycles=2010)


def test_lowest_set_and_popcount_exhaustive():
    m = Module()
    mask = Signal(8)
    low = lowest_set(m, mask, 8)
    ones = Signal(4)
    m.d.comb += ones.eq(popcount(mask, 8))

    async def bench(ctx):
        for v in range(256):
            ctx.set(mask, v)
            want_low = (v & -v).bit_length() - 1 if v else 0
            assert ctx.get(low) == want_low, f"mask {v:08b}: lowest {ctx.get(low)} != {want_low}"
            assert ctx.get(ones) == bin(v).count("1"), f"mask {v:08b}: popcount {ctx.get(ones)}"

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_times_const():
    m = Module()
    v = Signal(8)
    outs = [Signal(11, name=f"x{c}") for c in range(8)]
    m.d.comb += [o.eq(times_const(v, c)) for c, o in enumerate(outs)]

    async def bench(ctx):
        for x in range(256):
            ctx.set(v, x)
            for c, o in enumerate(outs):
                assert ctx.get(o) == x * c, f"{x} * {c}: {ctx.get(o)}"

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_seqmul_products_and_cycles():
    """Model: p = a * b, `done` exactly b.bit_length() + 1 cycles after the start cycle."""
    dut = SeqMul(40, 16)
    rng = random.Random(5)
    cases = [(0, 0), (1, 0), (0, 1), ((1 << 40) - 1, (1 << 16) - 1), (12345, 1), (7, 2)] + \
            [(rng.randrange(1 << 40), rng.randrange(1 << rng.randrange(17))) for _ in range(60)]

    async def bench(ctx):
        for a, b in cases:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            waited = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                waited += 1
                assert waited < 40, f"{a} * {b}: no done"
            assert ctx.get(dut.p) == a * b, f"{a} * {b}: {ctx.get(dut.p)}"
            assert waited == b.bit_length() + 1, f"{a} * {b}: done after {waited} cycles"

    run(dut, bench, cycles=40 * len(cases))
