"""The loader (hw/loader.py) alone against a model: a feature map in memory (both layouts) into
the line buffer, one input row of one channel block (a segment) after another: each word's values
(absent ones 0) and its mask (|x| > EPS_IN and channel < C; every channel < C in dense mode), at
its row slot's address. The memory delivers beats of 1 to 16 bytes, refuses addresses and delays
data at random, the "sequencer" starts some cycles after the loader (the run before's rows_released
ignored until then) and releases rows at random, and the ring of row slots must never be
overrun; the bitmap and value bytes counted exactly, the beats read exactly in dense layout and
within the read-ahead's bound in compressed layout, every beat inside the feature map."""
import random

import numpy as np
import pytest

from fmprune.hw import model as hw_model
from fmprune.hw.loader import Loader
from fmprune.sw import driver, fmformat, traffic
from fmprune.sw.layout import BLOCK, LOADER_WAYS, linebuf_cb
from streamtb import simulate
from test_engine import make_spec

MAX_BLOCKS = 8


def words_model(x, eps, dense_mode, rows, row_words, ways):
    """Each bank's line-buffer writes, (address, values, mask, row) in the loader's order: way j
    (bank j) loads blocks j, j + ways, ... of each row, block cb of pixel xx at word
    xx cb_lb + cb // ways of the row's slot."""
    c, h, w = x.shape
    nb = -(-c // BLOCK)
    cb_lb = linebuf_cb(c, ways)
    out = [[] for _ in range(ways)]
    for y in range(h):
        for cb in range(nb):
            for xx in range(w):
                vals = [int(x[cb * BLOCK + i, y, xx]) if cb * BLOCK + i < c else 0 for i in range(BLOCK)]
                valid = sum(1 << i for i in range(BLOCK) if cb * BLOCK + i < c)
                big = sum(1 << i for i, v in enumerate(vals) if abs(v) > eps)
                mask = valid & (0xFF if dense_mode else big)
                out[cb % ways].append(((y % rows) * row_words + xx * cb_lb + cb // ways, vals, mask, y))
    return out


def segments_model(x, layout, base, stride):
    """(first byte, bytes) of every segment (input row of one channel block), in order."""
    c, h, w = x.shape
    nb = -(-c // BLOCK)
    out = []
    for cb in range(nb):
        ptr = base + cb * stride
        for y in range(h):
            size = sum(1 + int(np.count_nonzero(x[cb * BLOCK:(cb + 1) * BLOCK, y, xx])) for xx in range(w)) \
                if layout == "compressed" else BLOCK * w
            out.append((y, cb, ptr, size))
            ptr += size
    return [(p, n) for _, _, p, n in sorted(out)]


def beats(first, size, b):
    return (first + size + b - 1) // b - first // b


@pytest.mark.parametrize("c,h,w,layout,eps,dense_mode,stall,fm_bytes", [
    (6, 5, 4, "compressed", 0, 0, 0.0, 1), (12, 6, 3, "compressed", 3, 0, 0.4, 8), (8, 4, 5, "dense", 2, 0, 0.3, 4),
    (20, 3, 2, "dense", 0, 1, 0.5, 16), (5, 7, 2, "compressed", 0, 1, 0.2, 2), (17, 4, 6, "compressed", 1, 0, 0.0, 16),
    (9, 3, 7, "dense", 0, 0, 0.0, 8), (6, 6, 5, "compressed", 0, 0, 0.3, 4), (40, 3, 5, "compressed", 0, 0, 0.2, 8)])
@pytest.mark.parametrize("ways", LOADER_WAYS)
def test_loader_against_model(c, h, w, layout, eps, dense_mode, stall, fm_bytes, ways):
    run_loader(c, h, w, layout, eps, dense_mode, stall, fm_bytes, ways)


@pytest.mark.parametrize("c,h,stall,fm_bytes", [(16, 3, 0.3, 8), (24, 4, 0.0, 4), (8, 3, 0.2, 16)])
@pytest.mark.parametrize("ways", LOADER_WAYS)
def test_loader_reads_no_more_than_records_can_hold(c, h, stall, fm_bytes, ways):
    """A compressed segment's fetch stops at its largest possible end given the records parsed
    so far (9 bytes a record left). Each row here starts with 6 all-zero pixels (1-byte records)
    and ends with 20 pixels with no zero (9-byte records, full blocks): once the parser is past the
    zeros the bound is the segment's exact end, and the 180 bytes after them are more than the
    loader holds ahead of its parser (window, P, Q and the beats in flight, at 16 bytes a beat),
    so it reads exactly the beats its segments hold, as in the dense layout. Without the bound
    it read as far ahead at each segment's end as its window and `ahead` allowed."""
    reads, least = run_loader(c, h, 26, "compressed", 0, 0, stall, fm_bytes, ways, zero=0.0, zero_cols=6)
    assert reads == least, f"{reads} beats read, the segments hold {least}"


def run_loader(c, h, w, layout, eps, dense_mode, stall, fm_bytes, ways, zero=0.5, zero_cols=0):
    """Run the case; return (beats read, beats the segments hold). zero=0: no zero value but in
    the first `zero_cols` columns, which are all zero."""
    spec, _ = make_spec(c * h + w, c, h, w, 4, 1, 1, 0, False, zero=zero)
    if zero:
        spec.input[0, 0, :] = np.arange(w) % 5 - 2               # values around eps
    else:
        spec.input[spec.input == 0] = 1
        spec.input[:, :, :zero_cols] = 0
    job = driver.prepare(spec, 4, in_layout=layout, eps=eps, dense_mode=bool(dense_mode), in_base=5)
    regs = job.regs
    buf = dict(linebuf_depth=ways * (2 * w * linebuf_cb(c, ways) + 1), max_blocks=MAX_BLOCKS)     # two row slots
    dv = hw_model.setup(regs, 4, max_channels=64, ways=ways, **buf)
    assert dv["error"] == 0
    rows, row_words = dv["rows"], dv["row_words"]
    assert rows < h, "the case must wrap the ring of row slots"
    want = words_model(spec.input, eps, dense_mode, rows, row_words, ways)
    _, fm_traffic = fmformat.encode(spec.input, layout)
    mem = job.fm_image + bytes(fm_bytes)
    B = fm_bytes
    segs = segments_model(spec.input, layout, regs["IN_BASE"], dv["in_stride"])
    dut = Loader(4, **buf, fm_bytes=B, ways=ways)
    got, reads, counts = [[] for _ in range(ways)], [], dict(bitmap=0, value=0, beats=0)
    n_want = sum(map(len, want))
    rng = random.Random(c + h)

    async def bench(ctx):
        for name, v in regs.items():
            ctx.set(dut.desc[name], v)
        for name in ("cb_in", "cb_lb", "row_words", "in_stride", "rows", "neg_eps_in"):
            ctx.set(dut.derived[name], dv[name])
        nb = dv["cb_in"]
        for cb in range(nb):                                     # the control stage's table set-up
            ctx.set(dut.init_en, 1)
            ctx.set(dut.init_addr, cb)
            ctx.set(dut.init_data, regs["IN_BASE"] + cb * dv["in_stride"])
            await ctx.tick()
        ctx.set(dut.init_en, 0)
        ctx.set(dut.load, 1)
        ctx.set(dut.load_start, 1)
        # the run before's rows_released until the sequencer starts, some cycles later: ignored
        ctx.set(dut.rows_released, 0xFFFF)
        await ctx.tick()
        ctx.set(dut.load_start, 0)
        pending, released = [], 0
        # the sequencer's start: late in half the cases (the loader fills the ring before it)
        seq_at = 8 * n_want + 64 if (c + h + w + ways) % 2 == 0 else (c + w) % 2
        for cycle in range(40 * n_want * BLOCK):
            ctx.set(dut.seq_start, cycle == seq_at)
            ctx.set(dut.fm_addr.ready, rng.random() >= stall)
            data_valid = bool(pending) and rng.random() >= stall
            ctx.set(dut.fm_data.valid, data_valid)
            ctx.set(dut.fm_data.payload, int.from_bytes(mem[pending[0] * B:(pending[0] + 1) * B], "little")
                    if pending else 0)
            loaded = ctx.get(dut.rows_loaded)
            assert loaded <= released + rows, f"cycle {cycle}: {loaded} rows loaded, {released} released, {rows} slots"
            if released < loaded and cycle > seq_at and rng.random() < 0.02:   # a slow sequencer: the ring fills
                released += 1
            ctx.set(dut.rows_released, released if cycle >= seq_at else 0xFFFF)
            _, _, a_valid, a_ready, addr, d_ready, en, waddr, wdata, bm, vb, pb = await ctx.tick().sample(
                dut.fm_addr.valid, dut.fm_addr.ready, dut.fm_addr.payload, dut.fm_data.ready,
                dut.lb_w_en, dut.lb_w_addr, dut.lb_w_data, dut.bitmap_byte, dut.value_bytes, dut.port_beat)
            if data_valid and d_ready:
                pending.pop(0)
            if a_valid and a_ready:
                reads.append(addr)
                pending.append(addr)
            counts["bitmap"] += bm
            counts["value"] += vb
            counts["beats"] += pb
            for j in range(ways):
                if en >> j & 1:
                    got[j].append((int(waddr[j]), [int(v) for v in wdata[j].values], int(wdata[j].mask), released))
            if sum(map(len, got)) == n_want and not pending and not ctx.get(dut.busy):
                break
        # the last row is reported loaded from the cycle after its last word's write
        await ctx.tick().repeat(3)
        assert ctx.get(dut.rows_loaded) == h

    simulate(dut, bench)
    for j in range(ways):
        assert len(got[j]) == len(want[j]), f"bank {j}: {len(got[j])} line-buffer writes, model {len(want[j])}"
        for n, ((a, v, mk, rel), (wa, wv, wm, y)) in enumerate(zip(got[j], want[j])):
            assert (a, v, mk) == (wa, wv, wm), \
                f"bank {j}, word {n} (row {y}): (addr, values, mask) {(a, v, mk)} != model {(wa, wv, wm)}"
            assert y < rel + rows, f"bank {j}, word {n}: row {y} written while only {rel} rows were released ({rows} slots)"
    assert (counts["bitmap"], counts["value"]) == (fm_traffic.bitmap_bytes, fm_traffic.value_bytes), counts
    assert counts["beats"] == len(reads), f"{counts['beats']} beats counted, {len(reads)} read"
    least = sum(beats(p, n, B) for p, n in segs)
    assert least == traffic.fm_port_beats(spec.input, layout, B, regs["IN_BASE"]), "sw/traffic.py's beats"
    if layout == "dense":
        assert len(reads) == least, f"{len(reads)} beats read, the segments hold {least}"
    else:                                # read-ahead: the beats in flight, in Q and P and in the window, each segment
        most = least + len(segs) * (dut.ahead + 2 + -(-dut.window // B))
        assert most == least + traffic.read_ahead_beats(spec.input, B)
        assert least <= len(reads) <= most, f"{len(reads)} beats read, the segments hold {least} (at most {most})"
    lo, hi = regs["IN_BASE"] // B, -(-(regs["IN_BASE"] + dv["cb_in"] * dv["in_stride"]) // B)
    assert all(lo <= a < hi for a in reads), f"a beat outside the feature map's beats [{lo}, {hi})"
    return len(reads), least
