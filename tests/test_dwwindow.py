"""The depthwise window assembler (hw/dwwindow.py) alone against a model: a depthwise layer's
column walk (the sequencer's order: for each output row and channel block a control position,
then each input column with its k words, the window ends marked) over random words and masks,
padding included, stride 1 and 2, k = 1, 2, 3, dense mode; every window's eight slices (values,
masks, weights of tap ky k + kx) equal the input and the weights at their taps, each block's weight
words are asked for once, in order (prefetched for the next block, or, where the walk names none,
asked for by its own control position), and the counters are exact. Random idle cycles on the positions and the weight words, back-pressure on the
windows."""
import random

import pytest

from fmprune.hw.dwwindow import DwWindow
from fmprune.sw.layout import BLOCK, DW_TAPS
from streamtb import simulate, stream_collect, stream_put


def column_walk(C, H, W, k, s, pad, rng):
    """The positions, and the model's windows (per window: for each lane, the tap values, masks
    and weights) and counters."""
    Ho, Wo = (H + 2 * pad - k) // s + 1, (W + 2 * pad - k) // s + 1
    cb_n = -(-C // BLOCK)
    vals = [[[[rng.randrange(-128, 128) for _ in range(BLOCK)] for _ in range(W)] for _ in range(H)] for _ in range(cb_n)]
    masks = [[[rng.randrange(256) & (0xFF if C >= BLOCK * (cb + 1) else (1 << (C - BLOCK * cb)) - 1)
               for _ in range(W)] for _ in range(H)] for cb in range(cb_n)]
    wwords = {cb: [rng.randrange(1 << 64) for _ in range(k * k)] for cb in range(cb_n)}
    return Ho, Wo, cb_n, vals, masks, wwords


def run(C, H, W, k, s, pad, dense, idle, stall, seed):
    rng = random.Random(seed)
    Ho, Wo, cb_n, vals, masks, wwords = column_walk(C, H, W, k, s, pad, rng)
    lanes = 16
    base = {cb: 100 + 20 * cb for cb in range(cb_n)}      # each block's weight words
    wmem = {base[cb] + t: w for cb in range(cb_n) for t, w in enumerate(wwords[cb])}
    positions, want, macs, skipped = [], [], 0, 0
    for oy in range(Ho):
        for cb in range(cb_n):
            chmask = sum(1 << j for j in range(BLOCK) if BLOCK * cb + j < C)
            empty = dict(values=[0] * BLOCK, mask=0)
            # the next block's weights, as the sequencer names them; now and then none (the
            # next control position then asks for its own)
            nxt = (oy + (cb + 1) // cb_n, (cb + 1) % cb_n)
            has_next = nxt[0] < Ho and rng.random() < 0.8
            positions.append(dict(wstart=1, wbase=base[cb], chmask=chmask, inb=0, last=0, word=empty,
                                  inb_dw=0, words_dw=[empty] * 2, wnext=base[nxt[1]], wnext_valid=int(has_next)))
            ncols = (Wo - 1) * s + k
            for ci in range(ncols):
                ix = ci - pad
                ends = ci >= k - 1 and (ci - (k - 1)) % s == 0
                cells = []
                for r in range(3):                         # rows below k come as garbage, marked outside
                    iy = oy * s - pad + r
                    inb = r < k and 0 <= iy < H and 0 <= ix < W
                    mask = (chmask if dense else masks[cb][iy][ix]) if inb else rng.randrange(256)
                    vals_r = vals[cb][iy][ix] if inb else [rng.randrange(-128, 128) for _ in range(BLOCK)]
                    cells.append((dict(values=vals_r, mask=mask), int(inb)))
                positions.append(dict(word=cells[0][0], inb=cells[0][1], chmask=chmask, last=int(ends),
                                      inb_dw=cells[1][1] | cells[2][1] << 1, words_dw=[cells[1][0], cells[2][0]],
                                      wstart=0, wbase=0, wnext=0, wnext_valid=0))
                if ends:
                    ox = (ci - (k - 1)) // s
                    win = []
                    for j in range(BLOCK):
                        x, mk, w = [0] * DW_TAPS, 0, [0] * DW_TAPS
                        for t in range(k * k):
                            ky, kx = divmod(t, k)
                            iy, ixx = oy * s - pad + ky, ox * s - pad + kx
                            inb = 0 <= iy < H and 0 <= ixx < W
                            if inb:
                                x[t] = vals[cb][iy][ixx][j]
                                mk |= ((chmask if dense else masks[cb][iy][ixx]) >> j & 1) << t
                            elif dense and chmask >> j & 1:
                                mk |= 1 << t
                            byte = wwords[cb][t] >> 8 * j & 0xFF
                            w[t] = byte - 256 if byte & 0x80 else byte
                        win.append((x, mk, w))
                    want.append(win)
                    n_ops = sum(bin(s_[1]).count("1") for s_ in win)
                    macs += n_ops
                    skipped += k * k * bin(chmask).count("1") - n_ops
    dut = DwWindow(lanes)
    got, addrs, counts = [], [], []

    async def setup_and_positions(ctx):
        ctx.set(dut.desc.KERNEL, k)
        ctx.set(dut.desc.DENSE_MODE, int(dense))
        ctx.set(dut.derived.khkw, k * k)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await stream_put(ctx, dut.i, positions, idle=idle, seed=seed + 1)

    async def weight_memory(ctx):                          # answers each address in order, with idle cycles
        r = random.Random(seed + 2)
        pending = []
        for _ in range(60 * len(positions)):
            ctx.set(dut.w_addr.ready, 1)
            if pending and r.random() >= idle:
                ctx.set(dut.w.valid, 1)
                ctx.set(dut.w.payload, wmem[pending[0]])
            else:
                ctx.set(dut.w.valid, 0)
            _, _, av, a, wv, wr = await ctx.tick().sample(dut.w_addr.valid, dut.w_addr.payload, dut.w.valid, dut.w.ready)
            if wv and wr:
                pending.pop(0)
            if av:
                pending.append(int(a))
                addrs.append(int(a))

    async def consumer(ctx):
        await stream_collect(ctx, dut.o, 60 * len(positions), stall=stall, seed=seed + 3, out=got)

    async def counters(ctx):
        async for _, _, mc, sk in ctx.tick().sample(dut.macs, dut.skipped):
            counts.append((int(mc), int(sk)))
            if len(counts) > 60 * len(positions):
                return

    simulate(dut, setup_and_positions, weight_memory, consumer, counters)
    assert len(got) == len(want), f"{len(got)} windows, model {len(want)}"
    n = 0
    for oy in range(Ho):
        for cb in range(cb_n):
            for ox in range(Wo):
                g = got[n]
                for j in range(BLOCK):
                    x, mk, w = want[n][j]
                    gs = g[j]
                    gx = [int(v) for v in gs.x]
                    gw = [int(v) for v in gs.w]
                    assert int(gs.mask) == mk, f"window (oy, cb, ox)=({oy}, {cb}, {ox}) lane {j}: mask {int(gs.mask):09b} != model {mk:09b}"
                    for t in range(DW_TAPS):
                        if mk >> t & 1 or t < k * k:
                            assert gx[t] == x[t], f"window ({oy}, {cb}, {ox}) lane {j} tap {t}: x {gx[t]} != model {x[t]}"
                        if t < k * k:
                            assert gw[t] == w[t], f"window ({oy}, {cb}, {ox}) lane {j} tap {t}: w {gw[t]} != model {w[t]}"
                n += 1
    assert addrs == [base[cb] + t for _ in range(Ho) for cb in range(cb_n) for t in range(k * k)]
    assert sum(c[0] for c in counts) == macs, f"MACS {sum(c[0] for c in counts)} != model {macs}"
    assert sum(c[1] for c in counts) == skipped, f"VALUES_SKIPPED {sum(c[1] for c in counts)} != model {skipped}"


@pytest.mark.parametrize("C,H,W,k,s,pad,dense,idle,stall", [
    (8, 5, 6, 3, 1, 1, False, 0.0, 0.0), (13, 6, 7, 3, 2, 1, False, 0.3, 0.4), (16, 4, 5, 2, 1, 0, False, 0.2, 0.2),
    (5, 3, 4, 1, 1, 0, False, 0.0, 0.5), (8, 5, 5, 3, 1, 1, True, 0.2, 0.3), (20, 7, 6, 3, 2, 0, False, 0.0, 0.0)])
def test_dwwindow_against_model(C, H, W, k, s, pad, dense, idle, stall):
    run(C, H, W, k, s, pad, dense, idle, stall, seed=C * 7 + k + s)


def test_dwwindow_needs_a_block_of_lanes():
    with pytest.raises(ValueError, match="P >= 8"):
        DwWindow(4)
