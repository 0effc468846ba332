"""Layers larger than an engine's memories, run as tiles: output channels in groups, output rows
and columns in rectangles. Each tile is an ordinary layer (driver.LayerSpec) on the same engine.

A tile's input is cut from the input padded explicitly with zeros, and runs with PAD = 0, so
tiles at the border and in the middle are the same kind of layer. The arithmetic is unchanged:
padding is zero either way, and zero operands are skipped either way."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fmformat, layout, regs, traffic
from .driver import LayerSpec, check_run, prepare


@dataclass(frozen=True)
class Limits:
    """What one job may use: memory sizes in bytes and the engine's buffer sizes (a board's
    INFO reply has every field)."""
    lanes: int
    fm_bytes: int
    w_bytes: int
    out_bytes: int
    linebuf_words: int
    max_channels: int
    max_blocks: int
    wbuf_words: int = 0
    fm_ways: int = 1                   # the loader's ways: the line buffer's banks

    @classmethod
    def from_info(cls, info: dict) -> "Limits":
        return cls(info["lanes"], info["fm_bytes"], info["w_bytes"], info["out_bytes"], info["linebuf_words"],
                   info["max_channels"], info["max_blocks"], info.get("wbuf_words", 0), info.get("fm_ways", 1))


def _weight_bytes(spec: LayerSpec, k0: int, k1: int, lanes: int) -> int:
    words = layout.pack_weights(spec.weight[k0:k1], lanes, spec.depthwise).shape[0]
    return (words + (k1 - k0) * layout.param_words(lanes)) * lanes


def _fits(c, h, w, kt, k, s, lim: Limits) -> bool:
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    return (fmformat.region_bytes(c, h, w, "compressed") <= lim.fm_bytes and
            fmformat.region_bytes(kt, ho, wo, "compressed") <= lim.out_bytes and
            layout.linebuf_rows(c, w, lim.linebuf_words, lim.fm_ways) >= max(k, s) and kt <= lim.max_channels and
            max(fmformat.blocks(c), fmformat.blocks(kt)) <= lim.max_blocks)


def plan(spec: LayerSpec, lim: Limits) -> tuple[int, int, int]:
    """(output channels, output rows, output columns) per tile."""
    c, h, w = spec.input.shape
    kout = spec.weight.shape[0]
    k, s = spec.weight.shape[-1], spec.stride
    _, ho, wo = spec.out_shape
    group = layout.BLOCK if spec.depthwise else max(lim.lanes, layout.BLOCK)
    kt = min(kout, max(group, lim.max_channels // group * group))
    while kt > group and _weight_bytes(spec, 0, kt, lim.lanes) > lim.w_bytes:
        kt -= group
    if _weight_bytes(spec, 0, min(kt, kout), lim.lanes) > lim.w_bytes:
        raise ValueError(f"{spec.name}: the weights of even {kt} output channels do not fit the "
                         f"{lim.w_bytes:,}-byte weight memory")
    th, tw = ho, wo
    cin = kt if spec.depthwise else c
    while not _fits(cin, (th - 1) * s + k, (tw - 1) * s + k, kt, k, s, lim):
        if th == 1 and tw == 1:
            raise ValueError(f"{spec.name}: even one output pixel of {kt} channels does not fit the engine "
                             f"(input {cin} channels, kernel {k}): the memories or line buffer are too small")
        if th >= tw:
            th = -(-th // 2)
        else:
            tw = -(-tw // 2)
    return kt, th, tw


def tiles(spec: LayerSpec, lim: Limits):
    """Yield (k0, k1, oy0, oy1, ox0, ox1, tile LayerSpec)."""
    kt, th, tw = plan(spec, lim)
    kout = spec.weight.shape[0]
    k, s, p = spec.weight.shape[-1], spec.stride, spec.padding
    _, ho, wo = spec.out_shape
    x = np.pad(spec.input, ((0, 0), (p, p), (p, p))) if p else spec.input
    for k0 in range(0, kout, kt):
        k1 = min(kout, k0 + kt)
        xin = x[k0:k1] if spec.depthwise else x
        for oy0 in range(0, ho, th):
            oy1 = min(ho, oy0 + th)
            for ox0 in range(0, wo, tw):
                ox1 = min(wo, ox0 + tw)
                xt = np.ascontiguousarray(xin[:, oy0 * s:(oy1 - 1) * s + k, ox0 * s:(ox1 - 1) * s + k])
                sub = LayerSpec(f"{spec.name}[k {k0}:{k1} y {oy0}:{oy1} x {ox0}:{ox1}]", xt, spec.weight[k0:k1],
                                spec.bias[k0:k1], spec.multiplier[k0:k1], spec.shift[k0:k1], s, 0,
                                spec.depthwise, spec.clamp_lo, spec.clamp_hi)
                yield k0, k1, oy0, oy1, ox0, ox1, sub


def run_tiled(spec: LayerSpec, transport, lim: Limits, *, eps: int = 0, **options) -> tuple[np.ndarray, dict]:
    """Run `spec` tile by tile on `transport`. Returns (output tensor, summed counters and tile count)."""
    y = np.zeros(spec.out_shape, dtype=np.int8)
    total = {name: 0 for name in regs.COUNTERS}
    n = 0
    for k0, k1, oy0, oy1, ox0, ox1, sub in tiles(spec, lim):
        # a tile whose weights fit the engine's weight buffer reads them once
        c, k = sub.input.shape[0], sub.weight.shape[-1]
        fits = traffic.fill_words(k1 - k0, c, k, lim.lanes, sub.depthwise) <= lim.wbuf_words
        job = prepare(sub, lim.lanes, eps=eps, weight_buffer=fits, **options)
        r = transport.execute(job)
        y[k0:k1, oy0:oy1, ox0:ox1] = check_run(sub.name, job, r)
        for name in total:
            total[name] += int(r["counters"][name])
        n += 1
    return y, dict(counters=total, tiles=n)
