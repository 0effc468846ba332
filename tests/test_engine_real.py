"""Real weights and real activations (MobileNet on a sample photograph), spatially cropped so the
Amaranth simulator finishes quickly, bit-exact against the golden model."""
import numpy as np
import pytest

from fmprune.sw import driver
from fmprune.sw.golden import QuantizedNetwork
from test_engine import run_and_check


@pytest.fixture(scope="module")
def mobilenet():
    q = QuantizedNetwork("mobilenet")
    _, captured = q.run_image("china", capture={"conv1", "conv2", "conv3", "conv4", "fc1"})
    return q, captured


@pytest.mark.parametrize("name,crop", [("conv1", 9), ("conv2", 6), ("conv3", 5), ("conv4", 9), ("fc1", 1)])
def test_real_layer_crop(mobilenet, name, crop):
    q, captured = mobilenet
    layer = q.layer(name)
    x = captured[name][0][0]
    y0 = (x.shape[1] - crop) // 2
    x = np.ascontiguousarray(x[:, y0:y0 + crop, y0:y0 + crop])
    w = layer.weight
    if name == "fc1":                     # keep the simulation short: 64 of 1000 outputs
        w = w[:64]
    k = w.shape[0]
    spec = driver.LayerSpec(f"mobilenet.{name}[crop]", x, w, layer.bias[:k], layer.multiplier[:k], layer.shift[:k],
                            layer.stride, layer.padding, layer.kind == "depthwise", layer.act.lo, layer.act.hi)
    r, _ = run_and_check(spec, layer.act, 8, stall=10, budget=200_000,
                         engine_args=dict(linebuf_depth=512, max_channels=64, max_blocks=128))
    assert r["counters"]["MACS"] > 0
