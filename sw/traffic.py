"""The engine's weight traffic, exactly: the one definition of how many weight words a run reads,
used by the engine's model (hw/model.predict, which the tests hold equal to the RTL's counters)
and by the driver's planner (sw/plan.py), which chooses the tiling that moves the fewest bytes.

* Streaming (WEIGHT_BUFFER = 0): one word per MAC item, that is per present operand per group of
  P output channels (depthwise: per tap where any of the group's D lanes has an operand).
* Buffered (WEIGHT_BUFFER = 1): the layer's whole weight layout (sw/layout.py) once, before the run.
"""
from __future__ import annotations

import numpy as np

from .fmformat import BLOCK
from .layout import dw_lanes


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


def stream_items(win: np.ndarray, kout: int, lanes: int, depthwise: bool) -> int:
    """MAC items (one weight word each when streaming) of a run over output channels 0..kout-1 of
    the windows `win` (present_windows; depthwise: of the same channels' input)."""
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
