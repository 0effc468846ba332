"""The engine's Python model, kept beside the gateware: for a layer and its input it predicts
exactly what the engine reads, writes and issues (bytes, operands skipped, MACs) and estimates
its cycles. Tests check the hardware's counters against it."""
from __future__ import annotations

import numpy as np

from ..sw import fmformat, regs, traffic
from ..sw.layout import (BLOCK, DEFAULT_FM_BYTES, DEFAULT_FM_WAYS, DEFAULT_OUT_BYTES, dw_colwalk, dw_lanes, linebuf_cb,
                         linebuf_rows, param_words, requant_lanes)
from .requant import Requantizer

# fixed costs in cycles (from the RTL): DERIVE x3, ROWS (R + 1), CHECK x3, INIT, PARAMS, RUN exit
SETUP = 8
SEGMENT_OVERHEAD = 6      # L_NEXT and the first beat's latency to the window (hw/loader.py; the next segment's start is made while one streams)
ROW_OVERHEAD = 5          # S_SETTLE, S_ROW and the refill of the line-buffer read, its register and the scanner


def _derive_operands(r: dict, P: int, ways: int = DEFAULT_FM_WAYS) -> list[int]:
    """The narrower operands of the engine's descriptor products (hw/engine.py, DERIVE's `steps`),
    in its order, from the descriptor's register values."""
    c, w, wo, ko, k, s, pad = (r[n] for n in ("IN_C", "IN_W", "OUT_W", "OUT_K", "KERNEL", "STRIDE", "PAD"))
    d, q = min(P, BLOCK), max(P, BLOCK)
    n_sg = BLOCK // d if r["DEPTHWISE"] else q // P
    n_bg = -(-ko // BLOCK) if r["DEPTHWISE"] else -(-ko // q)
    cb_in, cb_out = -(-c // BLOCK), -(-ko // BLOCK)
    return [w, wo, linebuf_cb(c, ways), k * k, cb_in, cb_out, n_sg, n_bg,
            traffic.weight_groups(ko, P, r["DEPTHWISE"]), pad, s, pad, s, s, s]



def derive_cycles_regs(r: dict, P: int, ways: int = DEFAULT_FM_WAYS) -> int:
    """Cycles of the descriptor products (the MUL and MUL_WAIT states): two each plus one per bit
    of the narrower operand (the shift-and-add multiplier, hw/arith.SeqMul)."""
    return sum(2 + int(b).bit_length() for b in _derive_operands(r, P, ways))


def derive_cycles(spec, P: int, ways: int = DEFAULT_FM_WAYS) -> int:
    """derive_cycles_regs for a driver.LayerSpec."""
    c, h, w = spec.input.shape
    ko, ho, wo = spec.out_shape
    r = dict(IN_C=c, IN_W=w, OUT_W=wo, OUT_K=ko, KERNEL=spec.weight.shape[-1], STRIDE=spec.stride,
             PAD=spec.padding, DEPTHWISE=int(spec.depthwise))
    return derive_cycles_regs(r, P, ways)


def line_buffer_rows(r: dict, linebuf_depth: int, ways: int = DEFAULT_FM_WAYS) -> int:
    """R: the input rows (IN_W x linebuf_cb(IN_C) words a bank) that fit the line buffer, at most 16."""
    return linebuf_rows(r["IN_C"], r["IN_W"], linebuf_depth, ways)


def check_cycles(r: dict, P: int, linebuf_depth: int, ways: int = DEFAULT_FM_WAYS) -> int:
    """Busy cycles from START to the end of the descriptor's checks (the CHECK_END state): what
    CYCLES reads for a refused descriptor, exactly. START's cycle in IDLE, DERIVE, the products,
    ENDS, two cycles for each row tried (R that fit and the one that does not), CHECK,
    CHECK_CODE, CHECK_END."""
    return 1 + 1 + derive_cycles_regs(r, P, ways) + 1 + 2 * (line_buffer_rows(r, linebuf_depth, ways) + 1) + 3


def groups(r: dict, P: int):
    """The engine's loop order over output groups, the one definition in Python (the gateware's is
    the sequencer's loop nest, hw/sequencer.py): for every output row, block group of Q = max(P, 8)
    output channels (depthwise: 8), output column and subgroup of P (depthwise D = min(P, 8))
    channels, the group's position and its ``Group`` record fields. `r` holds the descriptor's
    register values."""
    ko, ho, wo, dw = r["OUT_K"], r["OUT_H"], r["OUT_W"], r["DEPTHWISE"]
    d, q = min(P, BLOCK), max(P, BLOCK)
    step, lanes = (BLOCK, d) if dw else (q, P)
    n_bg, n_sg = -(-ko // step), step // lanes
    for oy in range(ho):
        for bg in range(n_bg):
            for ox in range(wo):
                for sg in range(n_sg):
                    yield dict(oy=oy, bg=bg, ox=ox, sg=sg, k0=bg * step + sg * lanes, pix=oy * wo + ox,
                               lastpix=oy == ho - 1 and bg == n_bg - 1 and ox == wo - 1, lanes=lanes)


def _signed8(v: int) -> int:
    return v - 256 if v & 0x80 else v


def setup(r: dict, P: int, *, linebuf_depth: int, max_channels: int, max_blocks: int, wbuf_words: int = 0,
          ways: int = DEFAULT_FM_WAYS) -> dict:
    """The descriptor set-up's model (hw/setup.py): its derived values at their register widths,
    the error code it ends with (0, or the lowest code of the rules the descriptor breaks) and its
    cycles (check_cycles). `r` holds the descriptor's register values (driver.Job.regs)."""
    def wrap(v, bits):
        return v & ((1 << bits) - 1)
    c, h, w, ko, ho, wo = (r[n] for n in ("IN_C", "IN_H", "IN_W", "OUT_K", "OUT_H", "OUT_W"))
    k, s, pad, dw = r["KERNEL"], r["STRIDE"], r["PAD"], r["DEPTHWISE"]
    d, q = min(P, BLOCK), max(P, BLOCK)
    cb_in, cb_out, khkw = wrap((c + 7) >> 3, 14), wrap((ko + 7) >> 3, 14), wrap(k * k, 8)
    cb_lb = linebuf_cb(c, ways)
    row_words = wrap(w * cb_lb, 32)
    in_stride = wrap(h * w * (9 if r["IN_LAYOUT"] else 8), 40)
    out_stride = wrap(ho * wo * (9 if r["OUT_LAYOUT"] else 8), 40)
    c_khkw = wrap(c * khkw, 32)
    n_bg = wrap((ko + 7) >> 3 if dw else (ko + q - 1) // q, 16)
    n_sg = BLOCK // d if dw else q // P
    bg_stride = wrap((khkw if dw else c_khkw) * n_sg, 36)
    rows = line_buffer_rows(r, linebuf_depth, ways)
    out = dict(cb_in=cb_in, cb_lb=cb_lb, cb_out=cb_out, khkw=khkw, row_words=row_words, in_stride=in_stride,
               out_stride=out_stride, c_khkw=c_khkw, n_bg=n_bg, n_sg=n_sg, n_lanes=d if dw else P,
               bg_stride=bg_stride, w_fill=wrap((khkw if dw else c_khkw) * traffic.weight_groups(ko, P, dw), 36),
               w_origin=0 if r.get("WEIGHT_BUFFER") else r["W_BASE"], rows=rows, rows_acc=rows * row_words, pad_words=wrap(row_words * pad, 40),
               s_words=wrap(row_words * s, 40), pad_cb=wrap(cb_lb * pad, 20), s_cb=wrap(cb_lb * s, 20),
               khkw_x=[wrap(i * khkw, 11) for i in range(BLOCK)], neg_eps_in=-r["EPS_IN"],
               neg_eps_out=-r["EPS_OUT"])
    # the checks, in code order
    span_h, span_w = wrap((ho - 1) * s + k, 20), wrap((wo - 1) * s + k, 20)
    in_h, in_w = h + 2 * pad, w + 2 * pad
    shape_ok = span_h <= in_h < span_h + s and span_w <= in_w < span_w + s
    in_end = r["IN_BASE"] + wrap(in_stride * cb_in, 48)
    out_end = r["OUT_BASE"] + wrap(out_stride * cb_out, 48)
    w_end = r["W_BASE"] + wrap(bg_stride * n_bg, 52)
    p_end = r["P_BASE"] + ko * param_words(P)
    fails = {
        "ZERO_SIZE": 0 in (c, h, w, ko, ho, wo, k, s),
        "RANGE": k > 11 or s > 4 or pad >= k or _signed8(r["CLAMP_LO"]) > 0 or _signed8(r["CLAMP_HI"]) < 0,
        "SHAPE": not shape_ok,
        "GROUPS": bool(dw) and ko != c,
        "LINE_BUFFER": rows < k or rows < s,
        "CHANNELS": ko > max_channels or cb_in > max_blocks or cb_out > max_blocks,
        "ADDRESS": max(in_end, out_end, w_end, p_end) > 1 << 32,
        "WEIGHT_BUFFER": bool(r.get("WEIGHT_BUFFER")) and traffic.fill_words(ko, c, k, P, dw) > wbuf_words,
    }
    codes = [regs.ERROR_CODE[n] for n, f in fails.items() if f]
    out.update(error=min(codes) if codes else 0, cycles=check_cycles(r, P, linebuf_depth, ways))
    return out


DW_ROW_OVERHEAD = 2       # the column walk, per output row and block: its control position and the first window's
                          # wait for the last of the block's weight words (asked for from the control before)


def colwalk_cycles(win: np.ndarray, c: int, ho: int, wo: int, k: int, s: int, lanes: int) -> int:
    """A depthwise layer on the column walk: the slowest of the line buffer's reads (a column a
    cycle from the line buffer and its copies, every column the row's windows span, per output
    row and block; or the block's weight words, if more), the busiest decoupled lane and the output stage (a window a cycle). Window n
    of the walk goes to lane group n mod G; lane j of a group takes channel (j + m) mod 8 of the
    group's m-th window (hw/dwlanes.py) and spends max(1, present taps) cycles on its slice."""
    cb = -(-c // BLOCK)
    # a row-block's columns, or its k k weight words (asked for a word a cycle), whichever is more
    reads = ho * cb * (max((wo - 1) * s + k, k * k) + DW_ROW_OVERHEAD)
    nnz = np.zeros((ho, wo, cb * BLOCK), dtype=np.int64)
    nnz[:, :, :c] = win.sum(axis=(3, 4))
    cost = np.maximum(nnz, 1).reshape(ho, wo, cb, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK)
    groups = lanes // BLOCK
    busiest = 0
    for g in range(groups):
        mine = cost[g::groups]                                   # the group's windows, m = 0, 1, ...
        rot = (np.arange(BLOCK)[None, :] + np.arange(len(mine))[:, None]) % BLOCK   # lane j's channel
        busiest = max(busiest, int(np.take_along_axis(mine, rot, axis=1).sum(axis=0).max()))
    return int(max(reads, busiest, ho * cb * wo))


def predict(spec, lanes: int, *, eps: int = 0, dense_mode: bool = False, in_layout: str = "compressed",
            out_layout: str = "compressed", eps_out: int = 0, expected=None, weight_buffer: bool = False,
            fm_bytes: int = DEFAULT_FM_BYTES, in_base: int = 0, out_bytes: int = DEFAULT_OUT_BYTES,
            dw_walk: bool = True, fm_ways: int = DEFAULT_FM_WAYS) -> dict:
    """Counters the engine will report for `spec` (a driver.LayerSpec). `expected` (the golden
    output) is needed for OUT_BYTES in the compressed layout. With `weight_buffer` the weights
    are read once, into the weight buffer, before the run (WEIGHT_BUFFER = 1). FM_PORT_BYTES is
    the least the feature-map port (`fm_bytes` a beat, the input at byte `in_base`) delivers,
    exact in the dense layout; `fm_port_bytes_most` the most (compressed: with the read-ahead).
    `dw_walk`: the engine was generated with the depthwise column walk (Engine's dw_walk);
    `fm_ways`: with that many loader ways (Engine's fm_ways)."""
    x = spec.input
    c, h, w = x.shape
    kout, _, k, _ = spec.weight.shape
    _, ho, wo = spec.out_shape
    P, D = lanes, dw_lanes(lanes)
    Q, R = max(P, BLOCK), requant_lanes(P)
    cb_in, cb_out = -(-c // BLOCK), -(-kout // BLOCK)
    _, fm_in = fmformat.encode(x, in_layout, eps=0)
    win = traffic.present_windows(spec, eps, dense_mode)                  # the operands issued
    r = dict(FM_BITMAP_BYTES=fm_in.bitmap_bytes, FM_VALUE_BYTES=fm_in.value_bytes,
             PARAM_BYTES=kout * param_words(P) * P)
    beats = traffic.fm_port_beats(x, in_layout, fm_bytes, in_base)
    ahead = traffic.read_ahead_beats(x, fm_bytes) if in_layout == "compressed" else 0
    r.update(FM_PORT_BYTES=beats * fm_bytes, fm_port_bytes_most=(beats + ahead) * fm_bytes)
    if spec.depthwise:
        n_groups = cb_out * (BLOCK // D)
        macs = skipped = 0
        for g in range(n_groups):
            ch = [g * D + p for p in range(D) if g * D + p < c]
            if ch:
                wg = win[:, :, ch]                                         # ho, wo, lanes, k, k
                macs += int(wg.sum())
                skipped += int((~wg).sum())
        if dw_colwalk(P, k, dw_walk):
            paced = colwalk_cycles(win, c, ho, wo, k, spec.stride, P)
        else:                            # one scanner cycle a tap; the output stage's steps a group
            paced = n_groups * ho * wo * max(k * k, D // R)
    else:
        n_groups = -(-kout // Q) * (Q // P)
        real_groups = sum(1 for g in range(n_groups) if g * P < kout)     # groups past K: one bubble each
        per_window = int(win.sum())
        macs = per_window * sum(max(0, min(P, kout - g * P)) for g in range(n_groups))
        skipped = (ho * wo * c * k * k - per_window) * real_groups
        # a word (block, ky, kx) costs max(1, operands in it) scanner cycles; the scanner and the
        # output stage (P / R steps a group) overlap through a one-deep hand-off
        padc = np.zeros((ho, wo, cb_in * BLOCK, k, k), dtype=bool)
        padc[:, :, :c] = win
        per_word = padc.reshape(ho, wo, cb_in, BLOCK, k, k).sum(axis=3)    # ho, wo, cb, k, k
        scan_pixel = np.maximum(per_word, 1).sum(axis=(2, 3, 4))          # ho, wo: cycles a window
        paced = int(np.maximum(scan_pixel, P // R).sum()) * real_groups + (n_groups - real_groups) * ho * wo * (P // R)
    fill = traffic.fill_words(kout, c, k, P, spec.depthwise)
    items = traffic.stream_items(win, kout, P, spec.depthwise, dw_walk)
    r.update(MACS=macs, VALUES_SKIPPED=skipped, WEIGHT_BYTES=fill * P if weight_buffer else items * P)
    blocks = cb_out * ho * wo
    if out_layout == "compressed":
        if expected is None:
            raise ValueError("the compressed output's size needs the expected output")
        nnz_out = int((np.abs(expected.astype(np.int16)) > eps_out).sum())
        r["OUT_BYTES"] = blocks + nnz_out
    else:
        r["OUT_BYTES"] = blocks * BLOCK
    # cycle estimate: the slowest of the concurrent stages, plus set-up and pipeline fill
    # the loader: a record a cycle in each way (the busiest way's blocks: ceil(cb_in / ways) a row)
    # or a beat a cycle, whichever is slower, and a few cycles a segment (its pointer, the first
    # beat's latency), which the ways overlap
    cb_way = linebuf_cb(c, fm_ways)
    loader = max(cb_way * h * w, beats) + cb_way * h * SEGMENT_OVERHEAD
    # the first output row waits for its rows below the padding (min(k - pad, H) input rows,
    # every block of them) at the loader's pace before any stage downstream starts; the loader
    # starts with PARAMS, so the parameters' and the weights' loads (FILL) hide part of it
    prologue = loader * min(k - spec.padding, h) // h
    writer = max(blocks, -(-r["OUT_BYTES"] // out_bytes))   # a block a cycle, a beat a cycle
    loading = kout * param_words(P) + 4  # PARAMS: a word a cycle
    if weight_buffer:                    # FILL: a word a cycle, and the last write
        loading += fill + 3
    setup = SETUP + 17 + derive_cycles(spec, P, fm_ways) + max(cb_in, cb_out) + loading
    prologue = max(0, prologue - loading)
    r["cycles_estimate"] = int(max(paced + prologue, writer, loader) + setup + ROW_OVERHEAD * ho + Requantizer.LATENCY)
    return r
