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
