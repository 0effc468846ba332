"""Deliberately plain reference implementations for the tests: Python integers and loops,
written from the gemmlowp / TFLite C sources, sharing no code with sw/quant.py."""
import numpy as np

I32_MIN, I32_MAX = -2**31, 2**31 - 1


def to_i32(v):
    v &= 0xFFFFFFFF
    return v - 2**32 if v & 0x80000000 else v


def srdhm(a, b):
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    n = ab + nudge
    q = abs(n) // (1 << 31)
    return q if n >= 0 else -q


def rdbpot(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def mbqm(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(to_i32(x * (1 << left)), m), right)


def conv_loops(x, w, bias, stride, pad, groups):
    """int64 direct convolution, C x H x W input, no tricks."""
    c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    xp = np.zeros((c, h + 2 * pad, wd + 2 * pad), dtype=np.int64)
    xp[:, pad:pad + h, pad:pad + wd] = x
    kpg = k // groups
    out = np.zeros((k, ho, wo), dtype=np.int64)
    for o in range(k):
        g = o // kpg
        for i in range(ho):
            for j in range(wo):
                win = xp[g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                out[o, i, j] = int((win * w[o].astype(np.int64)).sum()) + int(bias[o])
    return out


def layer_reference(x, w, bias, mult, shift, stride, pad, groups, lo, hi, eps,
                    leaky_m=0, leaky_s=0, leaky=False):
    """A whole engine layer from the exported files: prune, convolve, requantise, clamp."""
    x = np.where(np.abs(x.astype(np.int64)) <= eps, 0, x.astype(np.int64))
    acc = conv_loops(x, w, bias, stride, pad, groups)
    out = np.zeros(acc.shape, dtype=np.int64)
    for idx in np.ndindex(acc.shape):
        v = min(max(mbqm(to_i32(int(acc[idx])), int(mult[idx[0]]), int(shift[idx[0]])), lo), hi)
        if leaky and v < 0:
            v = mbqm(v, leaky_m, leaky_s)
        out[idx] = v
    return out.astype(np.int8)
