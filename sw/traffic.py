"""The engine's memory traffic: the one definition of how many weight words a run reads and of
the feature-map port's beats, used by the engine's model (hw/model.predict, which the tests hold
to the RTL's counters) and by the driver's planner (sw/plan.py), which chooses the tiling that
moves the fewest bytes.

* Streaming (WEIGHT_BUFFER = 0): one word per MAC item, that is per present operand per group of
  P output channels (depthwise: per tap where any of the group's D lanes has an operand).
* Buffered (WEIGHT_BUFFER = 1): the layer's whole weight layout (sw/layout.py) once, before the run.
* Feature map: the loader reads one input row of one channel block (a segment: W contiguous
  records) as a run of beats (hw/loader.py). The beats holding a segment's bytes are the least it
  reads; a dense segment's size is known, so that is exact; a compressed segment's end is found
  only as its records are parsed, and the loader may have read up to `read_ahead_beats` more.
"""
from __future__ import annotations

import numpy as np

from .fmformat import BLOCK, block_stride
from .layout import FM_AHEAD, FM_REGISTERS, dw_colwalk, dw_lanes, fm_window_bytes


def fm_segments(x: np.ndarray, layout: str, in_base: int = 0) -> list[tuple[int, int]]:
    """(first byte, bytes) of each segment (input row y of channel block cb) of the C x H x W
    int8 tensor `x` at byte `in_base`, in the loader's order (y, then cb)."""
    c, h, w = x.shape
    nb = -(-c // BLOCK)
    stride = block_stride(h, w, layout)
    if layout == "dense":
        return [(in_base + cb * stride + y * w * BLOCK, w * BLOCK) for y in range(h) for cb in range(nb)]
    padded = np.zeros((nb * BLOCK, h, w), dtype=bool)
    padded[:c] = x != 0
    sizes = w + padded.reshape(nb, BLOCK, h, w).sum(axis=(1, 3))          # nb, h: bytes of each segment
    starts = in_base + np.arange(nb)[:, None] * stride + np.cumsum(sizes, axis=1) - sizes
    return [(int(starts[cb, y]), int(sizes[cb, y])) for y in range(h) for cb in range(nb)]


def fm_port_beats(x: np.ndarray, layout: str, fm_bytes: int, in_base: int = 0) -> int:
    """The beats of `fm_bytes` bytes that hold the segments' bytes: what the loader reads at least
    (exactly, in the dense layout)."""
    b = fm_bytes
    return sum((p + n + b - 1) // b - p // b for p, n in fm_segments(x, layout, in_base))


def read_ahead_beats(x: np.ndarray, fm_bytes: int) -> int:
    """The most beats a compressed feature map's segments read past their ends: the beats in
    flight, the two in the loader's registers (Q and P) and those in its window, each."""
    c, h, _ = x.shape
    return -(-c // BLOCK) * h * (FM_AHEAD + FM_REGISTERS + -(-fm_window_bytes(fm_bytes) // fm_bytes))


def windows(x_present: np.ndarray, k: int, s: int, pad: int, ho: int, wo: int) -> np.ndarray:
    """Present operands per output position and kernel tap: (ho, wo, C, k, k) bool."""
    c, h, w = x_present.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=bool)
    padded[:, pad:pad + h, pad:pad + w] = x_present
    out = np.zeros((ho, wo, c, k, k), dtype=bool)
    for ky in range(k):
        for kx in range(k):
            out[:, :, :, ky, kx] = padded[:, ky:ky + s * ho:s, kx:kx + s * wo:s].transpose(1, 2, 0)
    return out


def present_windows(spec, eps: int = 0, dense_mode: bool = False) -> np.ndarray:
    """The operands the engine issues for `spec` (a driver.LayerSpec): |x| > eps, every tap
    (padding included) in dense mode. (ho, wo, C, k, k) bool."""
    k = spec.weight.shape[-1]
    _, ho, wo = spec.out_shape
    present = np.abs(spec.input.astype(np.int16)) > eps
    win = windows(present, k, spec.stride, spec.padding, ho, wo)
    return np.ones_like(win) if dense_mode else win


def weight_groups(kout: int, lanes: int, depthwise: bool) -> int:
    """The weight layout's groups (sw/layout.py): ceil(K / P), depthwise ceil(K / D)."""
    return -(-kout // (dw_lanes(lanes) if depthwise else lanes))


def fill_words(kout: int, c: int, k: int, lanes: int, depthwise: bool) -> int:
    """The words WEIGHT_BUFFER = 1 reads: the whole layout, ceil(K / P) C k k (depthwise ceil(K / D) k k)."""
    return weight_groups(kout, lanes, depthwise) * k * k * (1 if depthwise else c)


def stream_items(win: np.ndarray, kout: int, lanes: int, depthwise: bool, walk: bool = True) -> int:
    """MAC items (one weight word each when streaming) of a run over output channels 0..kout-1 of
    the windows `win` (present_windows; depthwise: of the same channels' input). On the depthwise
    column walk (layout.dw_colwalk; `walk`: the engine has it) the weights are a block's k k words,
    read once per output row."""
    if depthwise and dw_colwalk(lanes, win.shape[3], walk):
        return win.shape[0] * -(-min(win.shape[2], kout) // BLOCK) * win.shape[3] * win.shape[4]
    if depthwise:
        d = dw_lanes(lanes)
        c = win.shape[2]
        items = 0
        for g in range(-(-kout // BLOCK) * (BLOCK // d)):
            ch = [g * d + p for p in range(d) if g * d + p < min(c, kout)]
            if ch:
                items += int(win[:, :, ch].any(axis=2).sum())
        return items
    return int(win.sum()) * -(-kout // lanes)
