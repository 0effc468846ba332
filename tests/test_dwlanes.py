"""The decoupled depthwise lanes (hw/dwlanes.py) alone against a model: every window's L sums,
each the sum over its present taps of value x weight, in window order; random idle cycles on the
windows and back-pressure on the sums; masks from empty to full, mixed so that the lanes of a
group have very different work; each lane takes a different channel of successive windows (the
rotation), so the sums come back in channel order only if it is undone. The lanes' issued taps are
counted exactly (a tap a cycle, an
empty slice one). (How close the decoupled lanes come to the busiest lane's work is a figure for
the benchmark, not a test.)"""
import random

import pytest

from fmprune.hw.dwlanes import DwLanes
from fmprune.sw.layout import DW_TAPS
from streamtb import simulate, stream_collect, stream_put


def model(windows):
    return [[sum(x * w for t, (x, w) in enumerate(zip(s["x"], s["w"])) if s["mask"] >> t & 1) for s in win]
            for win in windows]


def lane_work(windows, G):
    """Cycles each lane issues: a tap a cycle, one for a slice with no tap."""
    L = len(windows[0])
    work = [0] * (G * L)
    for n, win in enumerate(windows):
        for j, s in enumerate(win):
            work[(n % G) * L + j] += max(1, bin(s["mask"]).count("1"))
    return work


def make_windows(rng, n, L, density):
    wins = []
    for i in range(n):
        win = []
        for j in range(L):
            d = density if density is not None else rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
            mask = sum(1 << t for t in range(DW_TAPS) if rng.random() < d)
            win.append(dict(x=[rng.choice([-128, 127, rng.randrange(-128, 128)]) for _ in range(DW_TAPS)],
                            w=[rng.choice([-128, 127, rng.randrange(-128, 128)]) for _ in range(DW_TAPS)], mask=mask))
        wins.append(win)
    return wins


@pytest.mark.parametrize("lanes,density,idle,stall", [
    (16, None, 0.0, 0.0), (16, 0.5, 0.3, 0.5), (8, None, 0.2, 0.3), (32, 0.3, 0.0, 0.2), (4, None, 0.3, 0.0),
    (1, 0.6, 0.0, 0.0), (16, 0.0, 0.0, 0.9)])
def test_dwlanes_against_model(lanes, density, idle, stall):
    rng = random.Random(lanes * 31 + int(10 * (density or 0.7)))
    dut = DwLanes(lanes)
    L, G = dut.L, dut.G
    windows = make_windows(rng, 60, L, density)
    want = model(windows)
    got, issued = [], []

    async def producer(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await stream_put(ctx, dut.i, windows, idle=idle, seed=3)

    async def consumer(ctx):
        budget = 200 + (DW_TAPS + 2) * len(windows) * (4 if stall else 1)
        await stream_collect(ctx, dut.o, budget, stall=stall, seed=4, out=got)

    async def counter(ctx):
        n = 0
        async for _, _, issued_n in ctx.tick().sample(dut.issued):
            issued.append(issued_n)
            n += 1
            if n > 200 + (DW_TAPS + 2) * len(windows) * (4 if stall else 1):
                return

    simulate(dut, producer, consumer, counter)
    got = [[int(v) for v in s] for s in got]
    assert len(got) == len(want), f"{len(got)} windows' sums, model {len(want)}"
    for n, (g, w) in enumerate(zip(got, want)):
        for j in range(L):
            assert g[j] == w[j], f"window {n}, channel {j} (group {n % G}): RTL {g[j]} != model {w[j]}"
    work = lane_work(windows, G)
    assert sum(issued) == sum(work), f"lane issues: RTL {sum(issued)} != model {sum(work)}"


def test_dwlanes_depth_checked():
    with pytest.raises(ValueError, match="at least 3"):
        DwLanes(16, depth=2)
