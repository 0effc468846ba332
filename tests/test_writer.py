"""The packer and the writer (hw/writer.py) alone, each against a small model, with random idle
cycles on their input streams and random back-pressure on their outputs."""
import random

import pytest

from fmprune.hw import model as hw_model
from fmprune.hw.writer import Packer, Writer
from fmprune.sw.layout import BLOCK
from streamtb import simulate, stream_collect, stream_put

CLOCK = 1e-8


def writer_model(table, blocks, compressed):
    """The byte writes of `blocks` (dicts), from the block pointers in `table` (updated)."""
    writes = []
    for b in blocks:
        if not b["keep"]:
            continue
        ptr = table[b["cb"]]
        if compressed:
            lanes = [i for i in range(BLOCK) if b["mask"] >> i & 1]
            data = [b["mask"]] + [b["values"][i] & 0xFF for i in lanes]
            writes += [(ptr + n, v) for n, v in enumerate(data)]
            table[b["cb"]] = ptr + len(data)
        else:
            writes += [(ptr + b["off"] + i, b["values"][i] & 0xFF) for i in range(BLOCK)]
    return writes


def beats_model(table, blocks, compressed, b):
    """The beats the blocks' records occupy: each record's own, from its first byte's beat on."""
    n = 0
    for blk in blocks:
        if not blk["keep"]:
            continue
        ptr = table[blk["cb"]]
        first = ptr if compressed else ptr + blk["off"]
        size = 1 + bin(blk["mask"]).count("1") if compressed else BLOCK
        n += (first + size + b - 1) // b - first // b
        if compressed:
            table[blk["cb"]] = ptr + size
    return n


@pytest.mark.parametrize("compressed,idle,stall,out_bytes", [(1, 0.0, 0.0, 1), (1, 0.4, 0.5, 8), (0, 0.3, 0.6, 4),
                                                             (0, 0.0, 0.0, 16), (1, 0.0, 0.2, 2), (1, 0.2, 0.0, 16)])
def test_writer_against_model(compressed, idle, stall, out_bytes):
    """Every beat's strobed bytes, in order, are the model's byte writes; each record takes its
    own beats only (no beat without a byte to write)."""
    rng = random.Random(compressed * 10 + int(idle * 10) + out_bytes)
    n_blocks = 6
    table = {cb: 1000 * cb + rng.randrange(50) for cb in range(n_blocks)}
    blocks = [dict(values=[rng.randrange(-128, 128) for _ in range(BLOCK)],
                   mask=rng.choice([0, 0xFF, rng.randrange(256), 1 << rng.randrange(8)]) if compressed else 0xFF,
                   cb=rng.randrange(n_blocks), off=0 if compressed else BLOCK * rng.randrange(100),
                   keep=int(rng.random() < 0.9)) for _ in range(150)]
    want = writer_model(dict(table), blocks, compressed)
    want_beats = beats_model(dict(table), blocks, compressed, out_bytes)
    dut = Writer(16, out_bytes)
    got = []

    async def producer(ctx):
        ctx.set(dut.compressed, compressed)
        for cb, ptr in table.items():
            ctx.set(dut.init_en, 1)
            ctx.set(dut.init_addr, cb)
            ctx.set(dut.init_data, ptr)
            await ctx.tick()
        ctx.set(dut.init_en, 0)
        await stream_put(ctx, dut.i, blocks, idle=idle, seed=4)

    async def consumer(ctx):
        await stream_collect(ctx, dut.out, 40 * len(blocks), stall=stall, seed=5, out=got)

    simulate(dut, producer, consumer)
    assert len(got) == want_beats, f"{len(got)} beats, the records occupy {want_beats}"
    assert all(int(p.strobe) for p in got), "a beat with no byte to write"
    got = [(int(p.addr) * out_bytes + i, int(p.data) >> 8 * i & 0xFF) for p in got
           for i in range(out_bytes) if int(p.strobe) >> i & 1]
    assert len(got) == len(want), f"{len(got)} byte writes, model {len(want)}"
    bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert not bad, f"write {bad[0]}: (addr, data) {got[bad[0]]} != model {want[bad[0]]}"


def packer_model(values, flags, recs, cb_out, compressed):
    """The blocks from the values (in the groups' channel order) and their records (one per block,
    as the output stage issues them: hw/model.groups order, a record at each multiple of 8)."""
    blocks = []
    for n, rec in enumerate(recs):
        v, f = values[BLOCK * n:BLOCK * (n + 1)], flags[BLOCK * n:BLOCK * (n + 1)]
        mask = sum(b << i for i, b in enumerate(f)) if compressed else 0xFF
        blocks.append(dict(values=v, mask=mask, cb=rec["cb"], off=0 if compressed else rec["off"],
                           keep=int(rec["cb"] < cb_out)))
    return blocks


def block_records(r, lanes):
    return [dict(cb=(g["k0"] + lane) // BLOCK, off=BLOCK * g["pix"], last=int(g["lastpix"] and lane + BLOCK >= g["lanes"]))
            for g in hw_model.groups(r, lanes) for lane in range(g["lanes"]) if (g["k0"] + lane) % BLOCK == 0]


@pytest.mark.parametrize("lanes,dw,k,compressed,idle,stall", [(16, 0, 20, 1, 0.3, 0.5), (4, 0, 13, 0, 0.0, 0.0),
                                                             (8, 1, 12, 1, 0.5, 0.3), (16, 0, 16, 0, 0.2, 0.7),
                                                             (1, 0, 9, 1, 0.3, 0.3), (2, 1, 10, 0, 0.3, 0.3)])
def test_packer_against_model(lanes, dw, k, compressed, idle, stall):
    rng = random.Random(lanes + k)
    ho, wo = 3, 4
    cb_out = -(-k // BLOCK)
    recs = block_records(dict(OUT_K=k, OUT_H=ho, OUT_W=wo, DEPTHWISE=dw), lanes)
    assert sum(r["last"] for r in recs) == 1 and recs[-1]["last"]
    n = BLOCK * len(recs)
    values = [rng.randrange(-128, 128) for _ in range(n)]
    flags = [int(rng.random() < 0.6) for _ in range(n)]
    want = packer_model(values, flags, recs, cb_out, compressed)
    dut = Packer(lanes)
    got, done_at = [], []

    async def producer(ctx):
        ctx.set(dut.desc.OUT_LAYOUT, compressed)
        ctx.set(dut.derived.cb_out, cb_out)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert not ctx.get(dut.done)
        words = [(v & 0xFF) | f << 8 for v, f in zip(values, flags)]   # R a step (the output stage's)
        R = dut.R
        await stream_put(ctx, dut.i, [words[i:i + R] for i in range(0, n, R)], idle=idle, seed=6)
        for _ in range(4):
            await ctx.tick()
        done_at.append(ctx.get(dut.done))

    async def records(ctx):
        await stream_put(ctx, dut.meta, recs, idle=idle, seed=8)

    async def consumer(ctx):
        await stream_collect(ctx, dut.o, 12 * n, stall=stall, seed=7, out=got)

    simulate(dut, producer, records, consumer)
    got = [dict(values=[int(x) for x in p.values], mask=int(p.mask), cb=int(p.cb), off=int(p.off), keep=int(p.keep))
           for p in got]
    assert len(got) == len(want), f"{len(got)} blocks, model {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"block {i}: {g} != model {w}"
    assert done_at == [1], "done not raised after the last block"
