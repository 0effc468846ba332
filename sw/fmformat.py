"""The engine's feature-map layouts: the one definition used by the host driver's encoder and
decoder, the gateware and docs/fmformat.md.

A C x H x W int8 tensor is split into channel blocks of BLOCK = 8 channels (channels past C in
the last block are absent). Block ``cb`` occupies its own region of ``block_stride(H, W, layout)``
bytes starting at ``base + cb * block_stride``; inside it the pixels follow in row-major order:

* ``dense``: 8 bytes per pixel, channels 8cb .. 8cb+7 (absent channels are 0). This is the
  nChw8c blocked layout.
* ``compressed``: per pixel one bitmap byte (bit i set = channel 8cb+i is stored), then the
  stored values in increasing channel order. A value is stored when |x| > eps; a value not stored
  reads as 0. The region is sized for the worst case (9 bytes per pixel) so that every block
  starts at a fixed address, but only the bitmap bytes and the stored values are ever read or
  written: that is the traffic saved (zero-value compression, as Rhu et al.'s cDMA engine).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 8
LAYOUTS = ("dense", "compressed")


def blocks(c: int) -> int:
    return -(-c // BLOCK)


def block_stride(h: int, w: int, layout: str) -> int:
    """Bytes reserved for one channel block."""
    if layout == "dense":
        return h * w * BLOCK
    if layout == "compressed":
        return h * w * (1 + BLOCK)
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def region_bytes(c: int, h: int, w: int, layout: str) -> int:
    """Bytes of memory a tensor occupies (its address range)."""
    return blocks(c) * block_stride(h, w, layout)


@dataclass(frozen=True)
class Traffic:
    """What a front end reads (or an output stage writes) for one whole tensor."""
    bitmap_bytes: int
    value_bytes: int

    @property
    def total(self) -> int:
        return self.bitmap_bytes + self.value_bytes


def _blocked(x: np.ndarray) -> np.ndarray:
    """C x H x W -> blocks x H x W x 8, zero-filled past C."""
    c, h, w = x.shape
    nb = blocks(c)
    padded = np.zeros((nb * BLOCK, h, w), dtype=np.int8)
    padded[:c] = x
    return padded.reshape(nb, BLOCK, h, w).transpose(0, 2, 3, 1)


def encode(x: np.ndarray, layout: str = "compressed", eps: int = 0) -> tuple[bytes, Traffic]:
    """Encode an int8 C x H x W tensor. Returns the memory image (region_bytes long; the unused
    tail of each compressed block region is 0) and the bytes a reader of the whole tensor moves."""
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 3:
        raise ValueError(f"expected an int8 C x H x W array, got {x.dtype} {x.shape}")
    if not 0 <= eps <= 127:
        raise ValueError(f"eps must be in 0..127, got {eps}")
    c, h, w = x.shape
    b = _blocked(x)
    stride = block_stride(h, w, layout)
    if layout == "dense":
        image = b.reshape(-1).tobytes()
        return image, Traffic(0, len(image))
    keep = np.abs(b.astype(np.int16)) > eps                      # blocks x H x W x 8
    weights = (1 << np.arange(BLOCK)).astype(np.uint16)
    bitmap = (keep * weights).sum(axis=-1).astype(np.uint8)      # blocks x H x W
    out = np.zeros(blocks(c) * stride, dtype=np.uint8)
    counts = keep.sum(axis=-1)                                    # values stored per pixel
    for cb in range(blocks(c)):
        n = counts[cb].reshape(-1)
        start = np.concatenate([[0], np.cumsum(1 + n)[:-1]]) + cb * stride
        out[start] = bitmap[cb].reshape(-1)
        vals = b[cb].reshape(-1, BLOCK)
        k = keep[cb].reshape(-1, BLOCK)
        # position of each stored value: its pixel's start + 1 + rank among the pixel's values
        rank = np.cumsum(k, axis=1) - 1
        pos = (start[:, None] + 1 + rank)[k]
        out[pos] = vals[k].view(np.uint8)
    nnz = int(keep.sum())
    return out.tobytes(), Traffic(blocks(c) * h * w, nnz)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def read_ranges(image: bytes, c: int, h: int, w: int, layout: str = "compressed") -> list[tuple[int, int]]:
    """The byte ranges [start, stop) of `image` that a reader of the whole tensor reads: dense, the
    whole region; compressed, from each block's start its bitmap bytes and stored values (a block
    region's tail past them is never read, so a host need not send it)."""
    need = region_bytes(c, h, w, layout)
    if len(image) < need:
        raise ValueError(f"image of {len(image)} bytes is shorter than the {need} of a {c}x{h}x{w} {layout} tensor")
    if layout == "dense":
        return [(0, need)] if need else []
    buf = np.frombuffer(image, dtype=np.uint8)
    stride = block_stride(h, w, layout)
    ranges = []
    for cb in range(blocks(c)):
        p = cb * stride
        for _ in range(h * w):
            p += 1 + int(_POPCOUNT[buf[p]])
        ranges.append((cb * stride, p))
    return ranges


def decode(image: bytes, c: int, h: int, w: int, layout: str = "compressed") -> np.ndarray:
    """Decode a memory image written in `layout` back to an int8 C x H x W tensor."""
    buf = np.frombuffer(image, dtype=np.uint8)
    need = region_bytes(c, h, w, layout)
    if buf.size < need:
        raise ValueError(f"image of {buf.size} bytes is shorter than the {need} of a {c}x{h}x{w} {layout} tensor")
    nb = blocks(c)
    if layout == "dense":
        b = buf[:need].view(np.int8).reshape(nb, h, w, BLOCK)
    else:
        stride = block_stride(h, w, layout)
        b = np.zeros((nb, h * w, BLOCK), dtype=np.int8)
        for cb in range(nb):
            region = buf[cb * stride:(cb + 1) * stride]
            p = 0
            for pix in range(h * w):
                bits = int(region[p])
                if cb == nb - 1 and bits >> (c - cb * BLOCK):
                    raise ValueError(f"pixel {divmod(pix, w)}: bitmap marks channels past C={c}: "
                                     "wrong shape or a corrupt image")
                p += 1
                for i in range(BLOCK):
                    if bits >> i & 1:
                        b[cb, pix, i] = np.int8(region[p].view(np.int8))
                        p += 1
        b = b.reshape(nb, h, w, BLOCK)
    x = b.transpose(0, 3, 1, 2).reshape(nb * BLOCK, h, w)
    if np.any(x[c:]):
        raise ValueError("channels past C are non-zero: wrong shape or a corrupt image")
    return np.ascontiguousarray(x[:c])
