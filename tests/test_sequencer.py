"""The sequencer (hw/sequencer.py) alone against a model of the loop nest (hw/model.groups): every position of
every output group in the order oy > block group > ox > subgroup > (channel block, ky, kx), with
its padding flag, last flag, weight address, channel mask, depthwise lane offset, real output
channels and, inside the input, the line-buffer word of that input pixel and block. A behavioural
loader fills the ring of row slots (fewer slots than input rows) only as the sequencer releases
rows, at random speed; the positions' consumer refuses at random. Depthwise layers with k <= 3 at P >= 8
take the column walk (a control position, then a position a column with its k words, rows 1 and 2
from the line buffer's copies) instead."""
import random

import pytest
from amaranth import Module

from fmprune.hw import model as hw_model
from fmprune.hw.linebuf import LineBuffer
from fmprune.hw.sequencer import Sequencer
from fmprune.sw import driver
from fmprune.sw.layout import BLOCK, LOADER_WAYS, dw_colwalk, linebuf_cb
from streamtb import simulate
from test_engine import KINDS, make_spec


def positions_model(r, dv, lanes, words):
    """Every position, in the loop order of hw/model.groups, and every group's record."""
    k, s, pad, dw = r["KERNEL"], r["STRIDE"], r["PAD"], r["DEPTHWISE"]
    c, h, w, kout = (r[n] for n in ("IN_C", "IN_H", "IN_W", "OUT_K"))
    d = min(lanes, BLOCK)
    g_stride = dv["khkw"] if dw else dv["c_khkw"]
    out, recs = [], []
    if dw and dw_colwalk(lanes, k):
        return colwalk_model(r, dv, lanes, words)
    for g in hw_model.groups(r, lanes):
        oy, bg, ox, sg, k0 = g["oy"], g["bg"], g["ox"], g["sg"], g["k0"]
        recs.append(dict(k0=k0, pix=g["pix"], lastpix=int(g["lastpix"])))
        g_off = bg * dv["bg_stride"] + sg * g_stride
        nl = max(0, min(kout - k0, lanes))
        if k0 >= kout:                      # an empty group: one position, no operand
            out.append(dict(inb=0, last=1, wbase=dv["w_origin"] + g_off, chmask=0, dwoff=(sg * d) % 8, nl=nl, word=None,
                            **walk_fields(lanes)))
            continue
        blocks = [bg] if dw else range(dv["cb_in"])
        for n_cb, cb in enumerate(blocks):
            for ky in range(k):
                for kx in range(k):
                    iy, ix = oy * s - pad + ky, ox * s - pad + kx
                    inb = int(0 <= iy < h and 0 <= ix < w)
                    last = int((dw or n_cb == len(blocks) - 1) and ky == k - 1 and kx == k - 1)
                    out.append(dict(inb=inb, last=last,
                                    wbase=dv["w_origin"] + g_off + (0 if dw else BLOCK * cb * dv["khkw"]) + ky * k + kx,
                                    chmask=sum(1 << i for i in range(BLOCK) if cb * BLOCK + i < c),
                                    dwoff=(sg * d) % 8, nl=nl, word=words[iy][ix][cb] if inb else None,
                                    **walk_fields(lanes)))
    return out, recs


def walk_fields(lanes, wstart=0, rows=(None, None), wnext=0, wnext_valid=0):
    """The column walk's fields of a position (P >= 8 only): rows 1 and 2 of the column, None
    outside the input or the kernel; a control position's next block's weights."""
    if lanes < BLOCK:
        return {}
    return dict(wstart=wstart, wnext=wnext, wnext_valid=wnext_valid,
                inb_dw=sum(1 << r for r, wd in enumerate(rows) if wd is not None), words_dw=list(rows))


def colwalk_model(r, dv, lanes, words):
    """The depthwise column walk (k <= 3, P >= 8): per output row and block a control position,
    then every input column the row's windows span, one position with its k words (row 0 as the
    word, rows 1 and 2 beside it); a window ends at columns k - 1, k - 1 + s, ..., which pushes
    its group record."""
    k, s, pad = r["KERNEL"], r["STRIDE"], r["PAD"]
    c, h, w, kout, ho, wo = (r[n] for n in ("IN_C", "IN_H", "IN_W", "OUT_K", "OUT_H", "OUT_W"))
    out, recs = [], []
    n_bg = -(-kout // BLOCK)
    for oy in range(ho):
        for bg in range(n_bg):
            k0 = BLOCK * bg
            wbase = dv["w_origin"] + bg * dv["bg_stride"]
            chmask = sum(1 << i for i in range(BLOCK) if bg * BLOCK + i < c)
            nl = max(0, min(kout - k0, lanes))
            common = dict(wbase=wbase, chmask=chmask, dwoff=0, nl=nl)
            last_block = bg == n_bg - 1
            wnext = dv["w_origin"] + (0 if last_block else (bg + 1) * dv["bg_stride"])
            out.append(dict(inb=0, last=0, word=None, **common,
                            **walk_fields(lanes, wstart=1, wnext=wnext, wnext_valid=int(not (last_block and oy == ho - 1)))))
            for ci in range((wo - 1) * s + k):
                ends = ci >= k - 1 and (ci - (k - 1)) % s == 0
                ix = ci - pad
                col = []
                for ky in range(3):
                    iy = oy * s - pad + ky
                    col.append(words[iy][ix][bg] if ky < k and 0 <= iy < h and 0 <= ix < w else None)
                out.append(dict(inb=int(col[0] is not None), last=int(ends), word=col[0],
                                **walk_fields(lanes, rows=col[1:]), **common))
                if ends:
                    ox = (ci - (k - 1)) // s
                    recs.append(dict(k0=k0, pix=oy * wo + ox, lastpix=int(oy == ho - 1 and bg == n_bg - 1 and ox == wo - 1)))
    return out, recs


CASES = {                     # kind, lanes: standard with padding and stride, depthwise, empty subgroups
    "std3x3/4": ("std3x3", 4), "std5x5s2/8": ("std5x5s2", 8), "depthwise/4": ("depthwise", 4),
    "dw_s2/16": ("dw_s2", 16), "pointwise/16": ("pointwise", 16), "empty_subgroup/4": ("empty", 4),
    "depthwise/8": ("depthwise", 8),         # the column walk (dw_s2/16 too)
}


@pytest.mark.parametrize("ways", LOADER_WAYS)
@pytest.mark.parametrize("case", list(CASES))
def test_sequencer_against_model(case, ways):
    kind, lanes = CASES[case]
    shape = (9, 6, 5, 4, 3, 1, 1, False) if kind == "empty" else KINDS[kind]
    c, h, w, ko, k, s, p, dw = shape
    spec, _ = make_spec(len(case), c, h, w, ko, k, s, p, dw, name=case)
    job = driver.prepare(spec, lanes, w_base=17)
    r = job.regs
    nb = -(-c // BLOCK)
    cb_lb = linebuf_cb(c, ways)                      # words of a pixel in a bank: block cb in bank cb % ways
    depth = ways * (max(k, s) * w * cb_lb + 1)       # max(k, stride) row slots: fewer than the rows
    dv = hw_model.setup(r, lanes, linebuf_depth=depth, max_channels=64, max_blocks=16, ways=ways)
    assert dv["error"] == 0 and dv["rows"] < h, dv
    rng = random.Random(len(case) * 3)
    words = [[[dict(values=[rng.randrange(-128, 128) for _ in range(BLOCK)], mask=rng.randrange(256))
               for _ in range(nb)] for _ in range(w)] for _ in range(h)]
    want, want_groups = positions_model(r, dv, lanes, words)

    m = Module()
    m.submodules.seq = seq = Sequencer(lanes, linebuf_depth=depth // ways, group_depth=19, ways=ways)
    # the line buffer, with the column walk's two more read ports
    m.submodules.lb = lb = LineBuffer(depth, ways=ways, reads=3 if lanes >= BLOCK else 1)
    m.d.comb += [lb.r_addr[0].eq(seq.lb_r_addr), lb.r_bank[0].eq(seq.lb_r_bank), seq.lb_r_data.eq(lb.r_data[0])]
    if lanes >= BLOCK:
        for n in range(2):
            m.d.comb += [lb.r_addr[n + 1].eq(seq.lb_r_addr_dw[n]), lb.r_bank[n + 1].eq(seq.lb_r_bank),
                         seq.lb_r_data_dw[n].eq(lb.r_data[n + 1])]
    got, groups = [], []

    async def bench(ctx):
        for name, v in r.items():
            ctx.set(seq.desc[name], v)
        for name in seq.derived.shape().members:
            ctx.set(seq.derived[name], dv[name])
        await ctx.tick().repeat(3)                   # the start values settle (INIT and PARAMS come first)
        ctx.set(seq.run, 1)
        ctx.set(seq.run_start, 1)
        await ctx.tick()
        ctx.set(seq.run_start, 0)
        loading, word_i, loaded = 0, 0, 0            # the behavioural loader: row, word within it
        for cycle in range(200 * len(want)):
            released = ctx.get(seq.rows_released)
            assert released <= loaded, f"cycle {cycle}: {released} rows released, {loaded} loaded"
            write = loading < h and loading < released + dv["rows"] and rng.random() < 0.7
            ctx.set(lb.w_en, 0)
            if write:
                x, cb = divmod(word_i, nb)
                bank = cb % ways
                ctx.set(lb.w_en, 1 << bank)
                ctx.set(lb.w_addr[bank], (loading % dv["rows"]) * dv["row_words"] + x * cb_lb + cb // ways)
                ctx.set(lb.w_data[bank], words[loading][x][cb])
            ready = rng.random() < 0.7
            ctx.set(seq.o.ready, ready)
            ctx.set(seq.groups.ready, 1)
            _, _, valid, payload, g_valid, g = await ctx.tick().sample(seq.o.valid, seq.o.payload, seq.groups.valid,
                                                                     seq.groups.payload)
            if g_valid:
                groups.append(dict(k0=int(g.k0), pix=int(g.pix), lastpix=int(g.lastpix)))
            if write:
                word_i += 1
                if word_i == w * nb:
                    loading, word_i = loading + 1, 0
                    loaded = loading
                    ctx.set(seq.rows_loaded, loaded)
            if valid and ready:
                got.append(payload)
                if len(got) == len(want):
                    break
        ctx.set(lb.w_en, 0)
        for _ in range(4):
            _, _, g_valid, g = await ctx.tick().sample(seq.groups.valid, seq.groups.payload)
            if g_valid:
                groups.append(dict(k0=int(g.k0), pix=int(g.pix), lastpix=int(g.lastpix)))
        assert ctx.get(seq.rows_released) == h

    simulate(m, bench)
    assert len(got) == len(want), f"{len(got)} positions, model {len(want)}"
    def word(wd, inb):
        return dict(values=[int(v) for v in wd.values], mask=int(wd.mask)) if inb else None

    for n, (g, wnt) in enumerate(zip(got, want)):
        gd = dict(inb=int(g.inb), last=int(g.last), wbase=int(g.wbase), chmask=int(g.chmask), dwoff=int(g.dwoff),
                  nl=int(g.nl), word=word(g.word, g.inb))
        if lanes >= BLOCK:
            gd.update(wstart=int(g.wstart), wnext=int(g.wnext), wnext_valid=int(g.wnext_valid), inb_dw=int(g.inb_dw),
                      words_dw=[word(g.words_dw[n_], g.inb_dw >> n_ & 1) for n_ in range(2)])
        assert gd == wnt, f"{case}: position {n}: {gd} != model {wnt}"
    assert groups == want_groups, f"{case}: group records {groups[:4]}... != model {want_groups[:4]}..."
