"""How a layer's weights and per-channel parameters sit in the engine's weight memory: the one
definition used by the host driver, the tests and docs/engine.md.

The weight read port returns words of P bytes (one int8 per lane), addressed in words.

* Standard / pointwise / fc (groups = 1): output channels in groups of P. Word
  ``((g * C + c) * k + ky) * k + kx`` holds, in lane p, ``w[g*P + p, c, ky, kx]`` (0 past K).
* Depthwise: output channels in groups of D = min(P, 8). Word ``(g * k + ky) * k + kx`` holds,
  in lane p < D, ``w[g*D + p, 0, ky, kx]``; lanes D.. are 0.
* Parameters: channel k occupies ``param_words(P)`` words from ``P_BASE + k * param_words(P)``:
  12 little-endian bytes bias (int32), multiplier (int32), shift (int32), then zero padding.
"""
from __future__ import annotations

import numpy as np

from .fmformat import BLOCK       # the channel block: the feature-map format defines it
PARAM_BYTES = 12
# the engine's default weight buffer (hw/engine.py's wbuf_words = WBUF_BYTES / P): 256 KiB, 128 of
# the ECP5-85F's 208 block RAMs (2 KiB each; not measured in a build of the engine alone). With 128 KiB, ResNet-50
# read 1.34 x its ideal bytes (its 3 x 3 512-channel layers' 16-channel weight groups are 72 KiB:
# one a run, 32 runs each reading the input); with 256 KiB, 1.12 x (sw/plan.py's byte counts)
WBUF_BYTES = 256 * 1024


def default_wbuf_words(p: int) -> int:
    return WBUF_BYTES // p


def dw_lanes(p: int) -> int:
    return min(p, BLOCK)


DW_K_MAX = 3                        # depthwise kernels up to 3 x 3 take the column walk and the decoupled lanes
DW_TAPS = DW_K_MAX * DW_K_MAX       # the depthwise lanes' taps a window (hw/dwlanes.py)


def dw_colwalk(p: int, k: int, walk: bool = True) -> bool:
    """A depthwise layer with kernel k on P lanes runs on the column walk, the window assembler and
    the decoupled lanes (hw/dwwindow.py, hw/dwlanes.py); otherwise on the scanner's path (a tap a
    cycle for min(P, 8) channels). `walk`: the engine was generated with that path (Engine's
    dw_walk; a board may leave it out)."""
    return walk and p >= BLOCK and k <= DW_K_MAX


def requant_lanes(p: int) -> int:
    """Values the output stage requantises a cycle (its requantisers): a channel block's, or P's."""
    return min(p, BLOCK)


def check_lanes(p: int) -> None:
    if p < 1 or (p < BLOCK and BLOCK % p) or (p > BLOCK and p % BLOCK):
        raise ValueError(f"lanes P={p}: P must divide 8 (1, 2, 4) or be a multiple of 8")


PORT_BYTES = (1, 2, 4, 8, 16)      # the beat widths of the feature-map read and the output write ports
DEFAULT_FM_BYTES = 8                # a 64-bit memory bus
DEFAULT_OUT_BYTES = 8
FM_AHEAD = 4                        # the loader's beats in flight at most (hw/loader.py)
FM_REGISTERS = 2                    # the loader's beat registers before its window, Q and P (hw/loader.py)


LOADER_WAYS = (1, 2)                # the loader's segment parsers (hw/loader.py), and the line buffer's banks
DEFAULT_FM_WAYS = 2


def check_ways(ways: int) -> None:
    if ways not in LOADER_WAYS:
        raise ValueError(f"fm_ways={ways}: the loader has {' or '.join(map(str, LOADER_WAYS))} segment parsers")


def linebuf_cb(c: int, ways: int) -> int:
    """Line-buffer words of one pixel in one bank: the line buffer has a bank per loader way, and
    channel block cb of a pixel is word cb // ways of that pixel in bank cb % ways (hw/linebuf.py),
    so each way's parser writes its own bank. ceil(ceil(C / 8) / ways)."""
    return -(-(-(-c // BLOCK)) // ways)


def linebuf_row_words(c: int, w: int, ways: int) -> int:
    """Words of one input row in each line-buffer bank."""
    return w * linebuf_cb(c, ways)


def linebuf_rows(c: int, w: int, depth: int, ways: int) -> int:
    """R: the input rows that fit a line buffer of `depth` words (depth // ways a bank), at most 16
    (hw/setup.py counts them)."""
    row = linebuf_row_words(c, w, ways)
    return 0 if row == 0 else min(16, (depth // ways) // row)


def fm_window_bytes(b: int) -> int:
    """The loader's byte window for beats of `b` bytes: a record (9 bytes at most) and four beats
    (it takes a beat on a flag made a cycle ahead, while the window may still grow by the beats in
    its FM_REGISTERS registers before it, Q and P: hw/loader.py)."""
    return (FM_REGISTERS + 2) * b + BLOCK + 1


def check_port_bytes(name: str, b: int) -> None:
    if b not in PORT_BYTES:
        raise ValueError(f"{name}={b}: a port's beat is one of {', '.join(map(str, PORT_BYTES))} bytes")


def param_words(p: int) -> int:
    return -(-PARAM_BYTES // p)


def pack_params(bias, multiplier, shift, p: int) -> np.ndarray:
    """K x param_words(P) x P uint8."""
    k = len(bias)
    raw = np.zeros((k, param_words(p) * p), dtype=np.uint8)
    fields = np.stack([np.asarray(bias, dtype="<i4"), np.asarray(multiplier, dtype="<i4"),
                       np.asarray(shift, dtype="<i4")], axis=1)
    raw[:, :PARAM_BYTES] = fields.view(np.uint8).reshape(k, PARAM_BYTES)
    return raw.reshape(k, param_words(p), p)


def pack_weights(w, p: int, depthwise: bool) -> np.ndarray:
    """int8 K x C/g x k x k -> words x P int8."""
    w = np.asarray(w, dtype=np.int8)
    kout, cg, kh, kw = w.shape
    if depthwise:
        d = dw_lanes(p)
        groups = -(-kout // d)
        padded = np.zeros((groups * d, kh, kw), dtype=np.int8)
        padded[:kout] = w[:, 0]
        words = np.zeros((groups, kh, kw, p), dtype=np.int8)
        words[..., :d] = padded.reshape(groups, d, kh, kw).transpose(0, 2, 3, 1)
        return words.reshape(-1, p)
    groups = -(-kout // p)
    padded = np.zeros((groups * p, cg, kh, kw), dtype=np.int8)
    padded[:kout] = w
    return padded.reshape(groups, p, cg, kh, kw).transpose(0, 2, 3, 4, 1).reshape(-1, p)
