"""The descriptor set-up stage (hw/setup.py) alone against its model (hw/model.setup): every
derived value, the error code and the cycle its `done` comes, for real layers' descriptors, each
rule broken on its own, and random register values."""
import random

import pytest

from fmprune.hw.model import setup as setup_model
from fmprune.hw.setup import Derived, Setup
from fmprune.sw import driver, regs
from fmprune.sw.layout import LOADER_WAYS
from streamtb import simulate
from test_engine import KINDS, make_spec

BUFFERS = dict(linebuf_depth=512, max_channels=64, max_blocks=16, wbuf_words=100)
WIDTH = {r.name: r.width for r in regs.REGISTERS}


def legal(seed, lanes):
    rng = random.Random(seed)
    kind = rng.choice(sorted(KINDS))
    c, h, w, ko, k, s, p, dw = KINDS[kind]
    spec, _ = make_spec(seed, c, h, w, ko, k, s, p, dw, name=kind)
    job = driver.prepare(spec, lanes, in_layout=rng.choice(["dense", "compressed"]),
                         out_layout=rng.choice(["dense", "compressed"]), in_base=rng.randrange(1 << 20))
    return dict(job.regs) | dict(EPS_IN=rng.randrange(128), EPS_OUT=rng.randrange(128),
                                 WEIGHT_BUFFER=rng.randrange(2))


# one descriptor per rule, each breaking it alone (from a legal standard 3x3 layer)
BROKEN = {
    "ZERO_SIZE": dict(OUT_W=0), "RANGE": dict(CLAMP_HI=0x80), "SHAPE": dict(OUT_H=3),
    "GROUPS": dict(DEPTHWISE=1), "LINE_BUFFER": dict(IN_W=300, OUT_W=300), "CHANNELS": dict(OUT_K=80),
    "ADDRESS": dict(P_BASE=0xFFFF_FFFF), "WEIGHT_BUFFER": dict(WEIGHT_BUFFER=1, IN_C=100),
}


def descriptors(lanes):
    out = [(f"legal{i}", legal(i, lanes)) for i in range(12)]
    base = legal(100, lanes) | dict(KERNEL=3, STRIDE=1, PAD=1, IN_C=6, IN_H=5, IN_W=6, OUT_K=10, OUT_H=5,
                                     OUT_W=6, DEPTHWISE=0)
    out += [(rule, base | change) for rule, change in BROKEN.items()]
    rng = random.Random(lanes)
    for i in range(12):                      # random register values, mostly illegal
        out.append((f"random{i}", {n: rng.randrange(1 << WIDTH[n]) for n in regs.DESCRIPTOR}))
    return out


def run_setup(dut, desc, budget=2000):
    result = {}

    async def bench(ctx):
        for name, value in desc.items():
            ctx.set(dut.desc[name], value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(1, budget):
            if ctx.get(dut.done):
                result.update(cycle=cycle, error=ctx.get(dut.error),
                              derived={n: ctx.get(dut.derived[n]) for n in Derived(dut.P).members})
                break
            await ctx.tick()

    simulate(dut, bench)
    return result


@pytest.mark.parametrize("ways", LOADER_WAYS)
@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_setup_against_model(lanes, ways):
    dut = Setup(lanes, **BUFFERS, ways=ways)
    for name, desc in descriptors(lanes):
        want = setup_model(desc, lanes, **BUFFERS, ways=ways)
        got = run_setup(dut, desc)
        assert got, f"{name}: no done within 2000 cycles"
        assert got["error"] == want["error"], \
            f"{name} P={lanes}: error {regs.ERRORS[got['error']][0]} != model {regs.ERRORS[want['error']][0]}"
        if name in BROKEN:
            assert regs.ERRORS[got["error"]][0] == name, f"{name}: ended with {regs.ERRORS[got['error']][0]}"
        # done in the set-up's last cycle: the start cycle is the engine's IDLE, counted by check_cycles
        assert got["cycle"] == want["cycles"] - 1, f"{name} P={lanes}: done at cycle {got['cycle']}, model {want['cycles'] - 1}"
        for field, value in got["derived"].items():
            if isinstance(want[field], list):
                value = list(value)
            assert value == want[field], f"{name} P={lanes}: {field} {value} != model {want[field]}"
