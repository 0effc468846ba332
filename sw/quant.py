"""The integer arithmetic of fmprune: the one definition shared by the golden model, the
gateware's requantiser (hw/) and the docs.

The scheme is TFLite's int8 scheme (Jacob et al. 2018) with every zero point fixed at 0:

* weights: int8, symmetric, per output channel, range -127..127;
* activations: int8, per tensor, zero point 0, so a zero activation is the word 0;
* bias: int32 with scale s_in * s_w[k];
* the accumulator is an int32 that wraps (two's complement), as a 32-bit register does;
* requantisation: ``MultiplyByQuantizedMultiplier(acc, M[k], shift[k])`` with M a Q31 multiplier
  in [2**30, 2**31) (or 0 for a channel whose real multiplier underflows) and shift in
  [-31, 30] (positive = left shift, TFLite's convention);
* then the fused activation clamp, and for leaky ReLU a second multiply of negative values.

Every function here works on numpy integer arrays (int64 internally) and is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127          # weights are symmetric: -127..127
SHIFT_MIN, SHIFT_MAX = -31, 30


def wrap_int32(x):
    """Two's-complement wrap of an integer array to 32 bits (what a 32-bit register holds)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x - INT32_MIN) & 0xFFFF_FFFF) + INT32_MIN


def srdhm(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul of two int32 arrays.

    (a * b * 2 + 2**31 rounding) >> 32, rounded half away from zero, with the single overflow
    case a == b == INT32_MIN saturating to INT32_MAX."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b                                    # |ab| <= 2**62: no int64 overflow
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    x = ab + nudge
    q = np.where(x >= 0, x >> 31, -((-x) >> 31))  # C division: truncate toward zero
    return np.where(overflow, INT32_MAX, q)


def rdbpot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("RoundingDivideByPOT exponent must be in 0..31")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def mbqm(x, multiplier, shift):
    """TFLite's MultiplyByQuantizedMultiplier(x, multiplier, shift).

    The left shift (shift > 0) is done in 32 bits and wraps, as ``x * (1 << left_shift)``
    does on int32 hardware."""
    shift = np.asarray(shift, dtype=np.int64)
    if np.any((shift < SHIFT_MIN) | (shift > SHIFT_MAX)):
        raise ValueError(f"shift must be in {SHIFT_MIN}..{SHIFT_MAX}")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rdbpot(srdhm(shifted, multiplier), right)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real ~= M * 2**(shift - 31), M in [2**30, 2**31).

    Returns (0, 0) for 0 and for a multiplier too small for shift >= -31."""
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"a requantisation multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)                    # real = q * 2**shift, q in [0.5, 1)
    m = math.floor(q * (1 << 31) + 0.5)
    if m == 1 << 31:
        m //= 2
        shift += 1
    if shift < SHIFT_MIN:
        return 0, 0
    if shift > SHIFT_MAX:
        raise ValueError(f"requantisation multiplier {real} is too large (shift {shift} > {SHIFT_MAX})")
    return int(m), int(shift)


# Activations -------------------------------------------------------------------------------

ACTIVATIONS = ("none", "relu", "relu6", "leaky")
LEAKY_SLOPE = 0.1            # Darknet's leaky ReLU


@dataclass(frozen=True)
class Activation:
    """A fused activation: clamp to [lo, hi], then (leaky only) multiply negatives."""
    kind: str = "none"
    lo: int = INT8_MIN
    hi: int = INT8_MAX
    neg_multiplier: int = 0     # leaky only: Q31 multiplier of the slope
    neg_shift: int = 0

    @classmethod
    def make(cls, kind: str, s_out: float) -> "Activation":
        if kind == "none":
            return cls("none")
        if kind == "relu":
            return cls("relu", 0, INT8_MAX)
        if kind == "relu6":
            return cls("relu6", 0, min(INT8_MAX, int(math.floor(6.0 / s_out + 0.5))))
        if kind == "leaky":
            m, s = quantize_multiplier(LEAKY_SLOPE)
            return cls("leaky", INT8_MIN, INT8_MAX, m, s)
        raise ValueError(f"unknown activation {kind!r}; known: {', '.join(ACTIVATIONS)}")

    def apply(self, q):
        q = np.clip(q, self.lo, self.hi)
        if self.kind == "leaky":
            q = np.where(q < 0, mbqm(q, self.neg_multiplier, self.neg_shift), q)
        return q


def requantize(acc, multiplier, shift, act: Activation, channel_axis: int = -3):
    """int32 accumulators -> int8 outputs: per-channel MBQM, then the activation.

    `multiplier` and `shift` are per output channel; `channel_axis` says where the channel
    axis of `acc` is (default: C x H x W or N x C x H x W)."""
    acc = np.asarray(acc, dtype=np.int64)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    m = np.asarray(multiplier, dtype=np.int64).reshape(shape)
    s = np.asarray(shift, dtype=np.int64).reshape(shape)
    return act.apply(mbqm(acc, m, s)).astype(np.int8)


def prune(x, eps: int):
    """Epsilon pruning of input activations: |x| <= eps becomes 0 (eps = 0: exact zeros only)."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0 (int8 units), got {eps}")
    x = np.asarray(x)
    return np.where(np.abs(x.astype(np.int16)) <= eps, 0, x).astype(x.dtype)


def quantize_tensor(x, scale: float):
    """float -> int8 with zero point 0, rounding half away from zero, saturating."""
    x = np.asarray(x, dtype=np.float64) / scale
    q = np.sign(x) * np.floor(np.abs(x) + 0.5)
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)
