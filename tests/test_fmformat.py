import numpy as np
import pytest

from fmprune.sw import fmformat as fmt


def test_worked_example():
    # C=3, H=1, W=2: pixel 0 = (5, 0, -1), pixel 1 = (0, 0, 0)
    x = np.array([[[5, 0]], [[0, 0]], [[-1, 0]]], dtype=np.int8)
    image, traffic = fmt.encode(x, "compressed", eps=0)
    assert len(image) == 2 * 9
    assert list(image[:4]) == [0b101, 5, 0xFF, 0b000]
    assert not any(image[4:])
    assert (traffic.bitmap_bytes, traffic.value_bytes) == (2, 2)
    image1, t1 = fmt.encode(x, "compressed", eps=1)      # |-1| <= 1: not stored
    assert list(image1[:3]) == [0b001, 5, 0b000] and t1.total == 3
    dense, td = fmt.encode(x, "dense")
    assert list(dense) == [5, 0, 0xFF, 0, 0, 0, 0, 0] + [0] * 8 and td.total == 16


@pytest.mark.parametrize("c,h,w", [(1, 1, 1), (3, 5, 7), (8, 4, 4), (9, 3, 6), (17, 6, 5), (64, 7, 7)])
@pytest.mark.parametrize("eps", [0, 2])
def test_round_trip(c, h, w, eps):
    rng = np.random.default_rng(c * 100 + h + eps)
    x = rng.integers(-128, 128, (c, h, w)).astype(np.int8)
    x[rng.random(x.shape) < 0.5] = 0
    x[rng.random(x.shape) < 0.1] = rng.choice([-2, -1, 1, 2, -128, 127])
    pruned = np.where(np.abs(x.astype(np.int16)) <= eps, 0, x).astype(np.int8)
    for layout in fmt.LAYOUTS:
        image, traffic = fmt.encode(x, layout, eps)
        assert len(image) == fmt.region_bytes(c, h, w, layout)
        want = pruned if layout == "compressed" else x
        np.testing.assert_array_equal(fmt.decode(image, c, h, w, layout), want, err_msg=f"{layout} {c}x{h}x{w}")
    _, t = fmt.encode(x, "compressed", eps)
    assert t.bitmap_bytes == fmt.blocks(c) * h * w
    assert t.value_bytes == int(np.count_nonzero(pruned))
    # what a reader reads: each block's bytes from its start, as many as the traffic; the image's
    # bytes outside them do not change what it decodes to
    for layout in fmt.LAYOUTS:
        image, traffic = fmt.encode(x, layout, eps)
        ranges = fmt.read_ranges(image, c, h, w, layout)
        assert sum(b - a for a, b in ranges) == traffic.total
        stride = fmt.block_stride(h, w, layout)
        if layout == "compressed":
            assert [a for a, _ in ranges] == [cb * stride for cb in range(fmt.blocks(c))]
        junk = bytearray(rng.integers(0, 256, len(image), dtype=np.uint8).tobytes())
        for a, b in ranges:
            junk[a:b] = image[a:b]
        np.testing.assert_array_equal(fmt.decode(bytes(junk), c, h, w, layout), fmt.decode(image, c, h, w, layout))


def test_bad_input():
    with pytest.raises(ValueError, match="int8"):
        fmt.encode(np.zeros((2, 2, 2), dtype=np.int16))
    with pytest.raises(ValueError, match="unknown layout"):
        fmt.encode(np.zeros((2, 2, 2), dtype=np.int8), "sparse")
    with pytest.raises(ValueError, match="shorter"):
        fmt.decode(b"\x00" * 5, 3, 2, 2)
    bad = bytearray(fmt.encode(np.zeros((3, 1, 1), dtype=np.int8))[0])
    bad[0] = 0b1000_0000                                  # channel 7 of a 3-channel tensor
    with pytest.raises(ValueError, match="past C"):
        fmt.decode(bytes(bad), 3, 1, 1)
