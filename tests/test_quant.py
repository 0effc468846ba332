import numpy as np
import pytest

from fmprune.sw import quant
from reference import I32_MAX, I32_MIN, mbqm, rdbpot, srdhm

# Worked cases: (a, b, SaturatingRoundingDoublingHighMul(a, b)), by hand from gemmlowp's definition
SRDHM_CASES = [
    (I32_MIN, I32_MIN, I32_MAX),          # the one overflow: saturates
    (I32_MIN, I32_MAX, -I32_MAX),
    (1 << 30, 1 << 30, 1 << 29),          # 0.5 * 0.5 = 0.25
    (-(1 << 30), 1 << 30, -(1 << 29)),
    (1, 1 << 30, 1),                      # +0.5 rounds up
    (-1, 1 << 30, 0),                     # -0.5 rounds toward zero (gemmlowp's nudge)
    (-1, (1 << 30) + 1, -1),              # just below -0.5
    (3, 1 << 30, 2),                      # 1.5 -> 2
    (-3, 1 << 30, -1),                    # -1.5 -> -1
    (0, I32_MIN, 0),
]

# (x, exponent, RoundingDivideByPOT(x, exponent))
RDBPOT_CASES = [
    (5, 1, 3), (-5, 1, -3), (-4, 1, -2), (7, 2, 2), (-6, 2, -2), (6, 2, 2), (-7, 2, -2),
    (123, 0, 123), (-123, 0, -123), (I32_MIN, 31, -1), (I32_MAX, 31, 1), (1 << 30, 31, 1),
    ((1 << 30) - 1, 31, 0), (-(1 << 30), 31, -1), (-(1 << 30) + 1, 31, 0),   # -0.5 -> -1
]

# (x, M, shift, MultiplyByQuantizedMultiplier)
MBQM_CASES = [
    (100, 1 << 30, 0, 50), (100, 1 << 30, -1, 25), (3, 1 << 30, -1, 1), (-3, 1 << 30, -1, -1),
    (1, 1 << 30, 30, 1 << 29),            # largest left shift
    (2, 1 << 30, 30, -(1 << 30)),         # 2 << 30 wraps to INT32_MIN in 32 bits
    (I32_MAX, I32_MAX, -31, 1), (I32_MIN, I32_MAX, -31, -1), (12345, 1 << 30, -31, 0),
    (-300000, 1518500250, -12, -52),      # -300000 / sqrt(2) / 4096 = -51.8
]


@pytest.mark.parametrize("a,b,want", SRDHM_CASES)
def test_srdhm_worked(a, b, want):
    assert srdhm(a, b) == want                 # the reference agrees with the hand value
    assert int(quant.srdhm(a, b)) == want


@pytest.mark.parametrize("x,e,want", RDBPOT_CASES)
def test_rdbpot_worked(x, e, want):
    assert rdbpot(x, e) == want
    assert int(quant.rdbpot(x, e)) == want


@pytest.mark.parametrize("x,m,s,want", MBQM_CASES)
def test_mbqm_worked(x, m, s, want):
    assert mbqm(x, m, s) == want
    assert int(quant.mbqm(x, m, s)) == want


def test_mbqm_random_against_reference():
    rng = np.random.default_rng(1)
    n = 20000
    x = rng.integers(I32_MIN, I32_MAX, n, endpoint=True)
    x[:200] = rng.choice([I32_MIN, I32_MAX, 0, 1, -1, I32_MIN + 1], 200)
    m = rng.integers(1 << 30, I32_MAX, n, endpoint=True)
    s = rng.integers(quant.SHIFT_MIN, quant.SHIFT_MAX, n, endpoint=True)
    got = quant.mbqm(x, m, s)
    want = np.array([mbqm(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"first mismatch x={x[bad[0]]} M={m[bad[0]]} shift={s[bad[0]]}: {got[bad[0]]} != {want[bad[0]]}"


@pytest.mark.parametrize("real,want", [(0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.25, (1 << 30, -1)),
                                       (0.75, (3 << 29, 0)), (0.0, (0, 0)), (2.0 ** -40, (0, 0))])
def test_quantize_multiplier(real, want):
    assert quant.quantize_multiplier(real) == want


def test_quantize_multiplier_range():
    rng = np.random.default_rng(2)
    for real in 10.0 ** rng.uniform(-8, 3, 2000):
        m, s = quant.quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


@pytest.mark.parametrize("bad", [-1.0, float("nan"), 2.0 ** 40])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError):
        quant.quantize_multiplier(bad)


def test_activation_clamps():
    acc = np.arange(-300, 300).reshape(1, -1, 1)
    one = (np.array([1 << 30]), np.array([1]))        # multiplier exactly 1.0
    assert quant.requantize(acc, *one, quant.Activation.make("none", 1.0)).min() == -128
    r = quant.requantize(acc, *one, quant.Activation.make("relu", 1.0))
    assert r.min() == 0 and r.max() == 127
    r6 = quant.requantize(acc, *one, quant.Activation.make("relu6", 6 / 50.4))   # q(6) = round(50.4) = 50
    assert r6.max() == 50 and r6.min() == 0
    lk = quant.Activation.make("leaky", 1.0)
    out = quant.requantize(np.array([-100, -5, -4, 7]).reshape(1, -1, 1), *one, lk)
    assert out.ravel().tolist() == [-10, -1, 0, 7]                               # 0.1 * x, rounded


def test_prune():
    x = np.array([-128, -3, -2, -1, 0, 1, 2, 3, 127], dtype=np.int8)
    assert quant.prune(x, 0).tolist() == x.tolist()
    assert quant.prune(x, 2).tolist() == [-128, -3, 0, 0, 0, 0, 0, 3, 127]
    assert quant.prune(x, 127).tolist() == [-128, 0, 0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError):
        quant.prune(x, -1)
