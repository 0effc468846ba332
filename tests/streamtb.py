"""Testbench helpers shared by the gateware tests: one producer and one consumer with random
idle / back-pressure cycles (as Glasgow's stream_put / stream_get)."""
import random


async def stream_put(ctx, stream, payloads, *, idle=0.0, seed=0):
    """Send every payload (a dict of field values, or a value) on `stream`, idling at random."""
    rng = random.Random(seed)
    for p in payloads:
        while rng.random() < idle:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        if isinstance(p, dict):
            for k, v in p.items():
                ctx.set(getattr(stream.payload, k), v)
        else:
            ctx.set(stream.payload, p)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count, *, stall=0.0, seed=1):
    """Receive `count` payloads from `stream`, refusing them at random."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        ready = rng.random() >= stall
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            out.append(payload)
    ctx.set(stream.ready, 0)
    return out


async def stream_collect(ctx, stream, cycles, *, stall=0.0, seed=1, out):
    """Every transfer on `stream` within `cycles` cycles, refusing at random, appended to `out`.
    Unlike stream_get it does not stop at a count, so a payload too many is seen too."""
    rng = random.Random(seed)
    for _ in range(cycles):
        ready = rng.random() >= stall
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            out.append(payload)


def simulate(dut, *testbenches, processes=(), until=None, period=1e-8):
    """Run `testbenches` (and `processes`) on `dut` with a clock; until: a time bound in seconds
    (a cycle budget: the run always ends), else until every testbench has returned."""
    from amaranth.sim import Simulator
    sim = Simulator(dut)
    sim.add_clock(period)
    for b in testbenches:
        sim.add_testbench(b)
    for p in processes:
        sim.add_process(p)
    if until is None:
        sim.run()
    else:
        sim.run_until(until)
