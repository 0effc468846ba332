"""The exact integer convolution against a plain loop implementation."""
import zlib

import numpy as np
import pytest

from fmprune.sw import quant
from fmprune.sw.golden import conv2d_int
from reference import conv_loops, layer_reference

# (C, H, W, K, kernel, stride, pad, depthwise)
SHAPES = [
    (3, 9, 11, 5, 3, 1, 1, False), (4, 12, 12, 6, 1, 1, 0, False), (6, 13, 10, 6, 3, 2, 1, True),
    (2, 23, 23, 3, 11, 4, 2, False), (5, 15, 15, 4, 7, 2, 3, False), (8, 9, 9, 8, 5, 3, 2, True),
    (3, 10, 10, 7, 2, 2, 0, False), (4, 11, 11, 4, 4, 1, 2, True), (7, 8, 8, 3, 6, 1, 1, False),
    (2, 12, 12, 2, 9, 3, 4, True), (16, 1, 1, 10, 1, 1, 0, False), (1, 8, 8, 1, 8, 1, 0, False),
    (3, 14, 14, 2, 10, 4, 0, False), (5, 6, 6, 5, 3, 1, 1, True),
]


def _rand_layer(rng, c, k, kernel, depthwise):
    w = rng.integers(-127, 128, (k, 1 if depthwise else c, kernel, kernel), dtype=np.int64).astype(np.int8)
    b = rng.integers(-2**20, 2**20, k).astype(np.int32)
    return w, b


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "c{}h{}w{}k{}_{}x{}s{}p{}{}".format(
    s[0], s[1], s[2], s[3], s[4], s[4], s[5], s[6], "_dw" if s[7] else ""))
def test_conv_against_loops(shape):
    c, h, w, k, kern, stride, pad, dw = shape
    rng = np.random.default_rng(zlib.crc32(repr(shape).encode()))
    x = rng.integers(-128, 128, (c, h, w)).astype(np.int8)
    x[rng.random(x.shape) < 0.4] = 0
    wt, b = _rand_layer(rng, c, k, kern, dw)
    groups = c if dw else 1
    got = conv2d_int(x, wt, b, stride, pad, groups)
    want = conv_loops(x, wt, b, stride, pad, groups)
    np.testing.assert_array_equal(got, want, err_msg=f"conv {shape}")


def test_conv_extremes_exact():
    """All -128 inputs times all -127 weights: the largest accumulators, exactly."""
    x = np.full((64, 5, 5), -128, dtype=np.int8)
    w = np.full((3, 64, 5, 5), -127, dtype=np.int8)
    b = np.array([quant.INT32_MAX - 10, 0, -7], dtype=np.int32)
    got = conv2d_int(x, w, b, 1, 2, 1)
    want = quant.wrap_int32(conv_loops(x, w, b, 1, 2, 1))   # the first channel wraps
    np.testing.assert_array_equal(got, want)
    assert got[0].min() < 0                                  # wrapped, as a 32-bit register


@pytest.mark.parametrize("act", ["none", "relu", "relu6", "leaky"])
@pytest.mark.parametrize("eps", [0, 3])
def test_layer_against_reference(act, eps):
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (4, 9, 9)).astype(np.int8)
    w, b = _rand_layer(rng, 4, 5, 3, False)
    from fmprune.sw.golden import QLayer
    mult = rng.integers(1 << 30, 2**31 - 1, 5).astype(np.int32)
    shift = rng.integers(-12, -9, 5).astype(np.int32)
    b = rng.integers(-2**14, 2**14, 5).astype(np.int32)
    a = quant.Activation.make(act, 0.05)
    layer = QLayer("conv1", "m", "standard", w, b, mult, shift, 2, 1, 1, a, 1.0, np.ones(5), 0.05,
                   (4, 9, 9), (5, 5, 5))
    got = layer.forward(x, eps)
    want = layer_reference(x, w, b, mult, shift, 2, 1, 1, a.lo, a.hi, eps, a.neg_multiplier,
                           a.neg_shift, act == "leaky")
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 5
