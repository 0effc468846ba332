"""The requantiser gateware against sw/quant.py, bit for bit, with random idle and stall cycles."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from fmprune.hw.requant import Requantizer
from fmprune.sw import quant
from streamtb import stream_get, stream_put

EDGE = [(quant.INT32_MIN, quant.INT32_MIN, 0), (quant.INT32_MIN, quant.INT32_MIN, -5),
        (quant.INT32_MAX, quant.INT32_MAX, -31), (quant.INT32_MIN, 1 << 30, -31), (1, 1 << 30, 30),
        (2, 1 << 30, 30), (-1, 1 << 30, 0), (3, 1 << 30, -1), (-3, 1 << 30, -1), (0, 0, 0),
        (12345, 0, -3), (-(1 << 30), (1 << 31) - 1, -31)]


def _vectors(n, seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(quant.INT32_MIN, quant.INT32_MAX, n, endpoint=True)
    small = rng.random(n) < 0.5
    acc[small] = rng.integers(-(1 << 20), 1 << 20, small.sum())
    mult = rng.integers(1 << 30, quant.INT32_MAX, n, endpoint=True)
    shift = rng.integers(quant.SHIFT_MIN, quant.SHIFT_MAX, n, endpoint=True)
    typical = rng.random(n) < 0.6                     # the shifts real layers use
    shift[typical] = rng.integers(-16, 1, typical.sum())
    rows = [tuple(map(int, r)) for r in zip(acc, mult, shift)]
    return EDGE + rows


ACT_SEEDS = {"none": 11, "relu": 12, "relu6": 13}


@pytest.mark.parametrize("act,idle,stall", [("none", 0.0, 0.0), ("relu", 0.3, 0.4), ("relu6", 0.5, 0.2)])
def test_requantizer_bit_exact(act, idle, stall):
    vecs = _vectors(400, ACT_SEEDS[act])
    a = quant.Activation.make(act, 6 / 100)
    want = quant.requantize(np.array([v[0] for v in vecs]).reshape(-1, 1, 1),
                            np.array([v[1] for v in vecs]), np.array([v[2] for v in vecs]), a)
    dut = Requantizer()
    got = []

    async def producer(ctx):
        ctx.set(dut.lo, a.lo)
        ctx.set(dut.hi, a.hi)
        await stream_put(ctx, dut.i, [dict(acc=v[0], multiplier=v[1], shift=v[2]) for v in vecs],
                         idle=idle, seed=2)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.o, len(vecs), stall=stall, seed=3))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 20 * len(vecs))     # cycle budget: far more than needed, never hangs
    assert len(got) == len(vecs), f"only {len(got)} of {len(vecs)} results within the cycle budget"
    got = np.array(got, dtype=np.int64)
    bad = np.flatnonzero(got != want.ravel())
    assert bad.size == 0, (f"requantiser item {bad[0]}: acc={vecs[bad[0]][0]} M={vecs[bad[0]][1]} "
                           f"shift={vecs[bad[0]][2]}: RTL {got[bad[0]]} != golden {want.ravel()[bad[0]]}")
    assert len(set(got.tolist())) > 10


def test_requantizer_throughput():
    """Without idles or stalls the pipeline takes one item per cycle after LATENCY cycles."""
    vecs = _vectors(50, 9)
    dut = Requantizer()
    cycles = {}

    async def producer(ctx):
        ctx.set(dut.lo, -128)
        ctx.set(dut.hi, 127)
        await stream_put(ctx, dut.i, [dict(acc=v[0], multiplier=v[1], shift=v[2]) for v in vecs])

    async def consumer(ctx):
        n = 0
        ctx.set(dut.o.ready, 1)
        for cycle in range(1000):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                cycles.setdefault("first", cycle)
                n += 1
                if n == len(vecs):
                    cycles["last"] = cycle
                    return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert cycles["last"] - cycles["first"] == len(vecs) - 1
    assert cycles["first"] == Requantizer.LATENCY     # sampled at the LATENCY-th edge after the first item


def test_requantizer_zero_flag():
    """`zero` forces 0 whatever the other fields (a lane past K, with stale parameters in block
    RAM); items without it, interleaved, are unaffected."""
    vecs = _vectors(60, 21)
    zero = np.arange(len(vecs)) % 3 == 0
    a = quant.Activation.make("none", 1.0)
    want = quant.requantize(np.array([v[0] for v in vecs]).reshape(-1, 1, 1), np.array([v[1] for v in vecs]),
                            np.array([v[2] for v in vecs]), a).ravel()
    want[zero] = 0
    dut = Requantizer()
    got = []

    async def producer(ctx):
        ctx.set(dut.lo, a.lo)
        ctx.set(dut.hi, a.hi)
        await stream_put(ctx, dut.i, [dict(acc=v[0], multiplier=v[1], shift=v[2], zero=int(z))
                                      for v, z in zip(vecs, zero)])

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.o, len(vecs)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 20 * len(vecs))     # cycle budget
    assert len(got) == len(vecs), f"only {len(got)} of {len(vecs)} results within the cycle budget"
    np.testing.assert_array_equal(np.array(got, dtype=np.int64), want, err_msg="requantiser with the zero flag")
    assert np.count_nonzero(want[~zero]) > 10 and np.count_nonzero(quant.requantize(
        np.array([v[0] for v in vecs]).reshape(-1, 1, 1), np.array([v[1] for v in vecs]),
        np.array([v[2] for v in vecs]), a).ravel()[zero]) > 5     # the flag has non-zero results to hide
