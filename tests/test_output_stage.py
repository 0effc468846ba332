"""The output stage (hw/output.py) alone against a model: each pixel-group's accumulators, lane by
lane in the groups' order, with their channel's bias, multiplier and shift, requantised and
clamped as sw/quant.py does (0 past OUT_K), each with its |y| > EPS_OUT flag; random idle cycles
on the accumulators' stream and back-pressure on the values'."""
import random

import numpy as np
import pytest

from fmprune.hw import model as hw_model
from fmprune.hw.output import OutputStage
from fmprune.sw import quant
from fmprune.sw.layout import BLOCK
from streamtb import simulate, stream_put


def model(accs, recs, params, k, lo, hi, eps_out):
    """The values, and the block records: one per block start (a channel that is a multiple of 8)."""
    out, blocks = [], []
    for acc, g in zip(accs, recs):
        for lane in range(g["lanes"]):
            ch = g["k0"] + lane
            if ch >= k:
                y = 0
            else:
                bias, mult, shift = params[ch]
                y = int(np.clip(quant.mbqm(np.int64(quant.wrap_int32(acc[lane] + bias)), mult, shift), lo, hi))
            out.append((y, int(abs(y) > eps_out)))
            if ch % BLOCK == 0:
                blocks.append(dict(cb=ch // BLOCK, off=BLOCK * g["pix"], last=int(g["lastpix"] and lane + BLOCK >= g["lanes"])))
    return out, blocks


@pytest.mark.parametrize("lanes,dw,k,act,eps_out,idle,stall", [
    (4, 0, 10, "relu", 0, 0.0, 0.0), (16, 0, 20, "none", 3, 0.3, 0.5), (8, 1, 12, "relu6", 1, 0.5, 0.3),
    (2, 1, 5, "none", 0, 0.2, 0.7), (16, 0, 40, "relu", 0, 0.0, 0.95), (8, 1, 16, "relu", 0, 0.0, 0.95),
    (16, 0, 40, "relu", 0, 0.0, 0.0), (8, 1, 16, "none", 2, 0.0, 0.0)])
def test_output_stage_against_model(lanes, dw, k, act, eps_out, idle, stall):
    rng = random.Random(lanes * 7 + k)
    d, q = min(lanes, BLOCK), max(lanes, BLOCK)
    wo, rows = 3, 2
    n_bg = -(-k // BLOCK) if dw else -(-k // q)
    n_sg = BLOCK // d if dw else q // lanes
    n_lanes = d if dw else lanes
    a = quant.Activation.make(act, 0.05)
    params = [(rng.randrange(-4096, 4096), rng.randrange(1 << 30, (1 << 31) - 1), rng.randrange(-13, -6))
              for _ in range(64)]
    recs = list(hw_model.groups(dict(OUT_K=k, OUT_H=rows, OUT_W=wo, DEPTHWISE=dw), lanes))
    assert len(recs) == rows * n_bg * wo * n_sg
    groups = [[rng.randrange(-(1 << 15), 1 << 15) for _ in range(lanes)] for _ in recs]
    want, want_blocks = model(groups, recs, params, k, a.lo, a.hi, eps_out)
    dut = OutputStage(lanes, 64)
    got, blocks, when = [], [], []

    async def producer(ctx):
        for name, v in dict(OUT_K=k, OUT_W=wo, DEPTHWISE=dw, CLAMP_LO=a.lo & 0xFF, CLAMP_HI=a.hi & 0xFF,
                            EPS_OUT=eps_out).items():
            ctx.set(dut.desc[name], v)
        for name, v in dict(n_lanes=n_lanes, n_sg=n_sg, n_bg=n_bg, neg_eps_out=-eps_out).items():
            ctx.set(dut.derived[name], v)
        for ch, (bias, mult, shift) in enumerate(params):
            ctx.set(dut.param_w_en, 1)
            ctx.set(dut.param_w_addr, ch)
            ctx.set(dut.param_w_data, dict(bias=bias, mult=mult, shift=shift))
            await ctx.tick()
        ctx.set(dut.param_w_en, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.tick().repeat(3)                  # the loop flags settle (as in RUN's first cycles)
        await stream_put(ctx, dut.i, groups, idle=idle, seed=8)

    async def records(ctx):                         # the sequencer's group records, ahead of the sums
        await stream_put(ctx, dut.groups, [dict(k0=g["k0"], pix=g["pix"], lastpix=int(g["lastpix"])) for g in recs])

    async def consumer(ctx):
        # as the packer: a step a cycle when not refused at random, and a block's record taken
        # with its last step (so the records queue up behind held values, as in the engine)
        rng = random.Random(9)
        spb, n = BLOCK // dut.R, 0
        for cycle in range(100 + (12 + int(40 * stall)) * len(want)):
            ready = rng.random() >= stall
            need = n % spb == spb - 1
            bv = ctx.get(dut.blocks.valid)
            ctx.set(dut.o.ready, ready and (not need or bv))
            ctx.set(dut.blocks.ready, ready and need and bv and ctx.get(dut.o.valid))
            _, _, ov, op, bp = await ctx.tick().sample(dut.o.valid, dut.o.payload, dut.blocks.payload)
            if ov and ready and (not need or bv):
                got.append(op)
                when.append(cycle)
                n += 1
                if need:
                    blocks.append(bp)
        assert not ctx.get(dut.blocks.valid), "a block record left over"

    simulate(dut, producer, records, consumer)
    assert dut.R == min(lanes, BLOCK)
    got = [int(step[j]) for step in got for j in range(dut.R)]   # R values a step
    got = [((v & 0xFF) - (256 if v & 0x80 else 0), v >> 8) for v in got]
    assert len(want) > 20 and len({w[0] for w in want}) > 5
    assert len(got) == len(want), f"{len(got)} values, model {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"value {i} (group {i // n_lanes}, lane {i % n_lanes}): (y, flag) {g} != model {w}"
    blocks = [dict(cb=int(b.cb), off=int(b.off), last=int(b.last)) for b in blocks]
    assert blocks == want_blocks, f"block records {blocks[:3]}... != model {want_blocks[:3]}..."
    assert sum(b["last"] for b in blocks) == 1
    if idle == 0 and stall == 0:
        # fed a group whenever it takes one and never held, the stage gives a step every cycle from
        # its first (its credits cover every place between the parameter read and the queue)
        gaps = [(i, b - a) for i, (a, b) in enumerate(zip(when, when[1:])) if b - a != 1]
        assert not gaps, f"{len(when)} steps over {when[-1] - when[0] + 1} cycles; first gaps (step, cycles) {gaps[:4]}"
