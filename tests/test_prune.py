"""Structured pruning (sw/prune.py): the particle filter against a known best mask, the masks'
effect (a pruned channel is exactly zero through its depthwise successor, in float and in the
integer golden model), masks held through retraining, determinism, the units of each
granularity, the command's refusals, and a pruned layer bit-exact through the engine."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from fmprune.sw import driver, prune, train
from fmprune.sw.golden import QuantizedNetwork
from test_engine import run_and_check


def test_particle_filter_finds_a_known_mask():
    """A bandit-like objective: the MCR is the share of units pruned outside the best set. From a
    random start (no prior) the filter finds the best set exactly."""
    best = np.zeros(24, dtype=bool)
    best[[1, 4, 5, 11, 17, 20]] = True                      # the units to prune

    def mcr(keep):
        return float((~keep & ~best).sum()) / 24
    keep, score, info = prune.particle_filter(24, 6, mcr, particles=24, iterations=30, noise=0.2,
                                              rng=np.random.default_rng(3))
    assert score == 0.0, f"best MCR {score}, history {info['best_mcr']}"
    assert np.array_equal(~keep, best)
    assert info["best_mcr"] == sorted(info["best_mcr"], reverse=True), "the best seen got worse"


def test_particle_filter_keeps_fixed_units_pruned():
    fixed = np.zeros(10, dtype=bool)
    fixed[[0, 9]] = True
    seen = []

    def mcr(keep):
        seen.append(keep.copy())
        return float(keep[3])                               # best: prune unit 3 as well
    keep, score, _ = prune.particle_filter(10, 4, mcr, particles=8, iterations=6, noise=0.3,
                                           rng=np.random.default_rng(0), fixed=fixed)
    assert all(not k[0] and not k[9] and (~k).sum() == 4 for k in seen), "a fixed unit came back, or a wrong count"
    assert not keep[3] and score == 0.0


class Tiny(nn.Module):
    """conv (1 -> 4, 1 x 1) + BN + ReLU + mean + fc. Channels 0 and 1 carry the class (x > 0 or
    x < 0); channels 2 and 3 carry the same signs with large weights into the wrong class, so
    keeping either misclassifies half the images, and they have the largest L1 norms: magnitude
    pruning keeps them."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight[:, 0, 0, 0] = torch.tensor([0.5, -0.5, 2.0, -2.0])
            self.fc.weight[:] = torch.tensor([[1.0, -1.0, -3.0, 3.0], [-1.0, 1.0, 3.0, -3.0]])
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def tiny_data(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    a = 0.5 + 0.5 * torch.rand(n, 1, 4, 4, generator=g)
    return torch.where(y[:, None, None, None] == 0, a, -a), y


@pytest.mark.parametrize("method", ["particle", "magnitude"])
def test_prune_tiny_network(method):
    model = Tiny().eval()
    x, y = tiny_data()
    opts = prune.Options(granularity=("channel",), target=0.5, method=method, particles=8, iterations=6,
                         stages=1, retrain_epochs=0, val_images=100)
    r = prune.prune(model, (x, y), opts, echo=None)
    kept = r["masks"].channel["conv1"].tolist()
    if method == "particle":
        assert kept == [True, True, False, False], kept
        assert r["stages"][-1]["val_accuracy"] == 1.0
    else:                                                    # the smallest norms: the good channels
        assert kept == [False, False, True, True], kept
        assert r["stages"][-1]["val_accuracy"] < 1.0
    off = ~torch.tensor(kept)
    assert not model.bn.weight[off].any() and not model.bn.bias[off].any() and model.bn.weight[~off].all()
    assert not model.conv.weight[off].any()


def test_prune_is_deterministic():
    runs = []
    for _ in range(2):
        model = Tiny()
        torch.manual_seed(1)
        nn.init.normal_(model.conv.weight)
        x, y = tiny_data(seed=2)
        r = prune.prune(model, (x, y), prune.Options(granularity=("channel",), target=0.5, particles=4, iterations=3,
                                                     stages=2, retrain_epochs=1, val_images=100, seed=5), echo=None)
        runs.append((r["masks"].channel["conv1"].tolist(), [v.clone() for v in model.state_dict().values()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def seeded_digitnet(seed=0):
    torch.manual_seed(seed)
    model = train.DigitNet()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
            m.running_mean.uniform_(-0.1, 0.1)
    return model.eval()


def test_channel_pruning_zeroes_the_map_through_its_depthwise_successor():
    model = seeded_digitnet()
    layers = prune.conv_layers(model)
    assert [l.name for l in layers][:3] == ["conv1", "conv2", "conv3"]
    assert layers[0].follower is layers[1] and layers[1].depthwise and layers[2].follower is layers[3]
    masks = prune.Masks.full(layers)
    keep = torch.ones(16, dtype=torch.bool)
    keep[[2, 7, 11]] = False
    prune._set_channels(masks, layers[0], keep)
    prune.apply(layers, masks)
    x = torch.randn(8, 1, 32, 32)
    seen = {}
    model.features[1][2].register_forward_hook(lambda m, i, o: seen.__setitem__("dw", o))   # the depthwise's ReLU
    model.features[0][2].register_forward_hook(lambda m, i, o: seen.__setitem__("std", o))
    with torch.no_grad():
        model(x)
    for key in ("std", "dw"):
        assert torch.count_nonzero(seen[key][:, [2, 7, 11]]) == 0, f"{key}: a pruned channel is not zero"
        assert torch.count_nonzero(seen[key][:, [0, 1, 3]]) > 0
    # the integer golden model: the same channels are exact zeros at conv3's input
    q = QuantizedNetwork("digitnet", calib_images=x, model=model, weights_desc="pruned test")
    _, captured = q.run_int(q.quantize_input(x[:2]), 0, capture={"conv3"})
    xin = captured["conv3"][0]
    assert not xin[:, [2, 7, 11]].any() and xin[:, [0, 1, 3]].any()


def test_masks_hold_through_retraining():
    model = seeded_digitnet(1)
    layers = prune.conv_layers(model)
    masks = prune.Masks.full(layers)
    masks.weight["conv3"][:, :5] = False                     # kernels of five input channels
    prune._set_channels(masks, layers[2], torch.arange(32) % 3 != 0)
    prune.apply(layers, masks)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(64, 1, 32, 32), torch.randint(0, 10, (64,))
    prune._retrain(model, layers, masks, x, y, epochs=1, seed=0)
    w = layers[2].conv.weight
    assert torch.count_nonzero(w[:, :5]) == 0 and torch.count_nonzero(w[::3]) == 0
    assert torch.count_nonzero(layers[3].conv.weight[::3]) == 0, "the depthwise successor's channels came back"
    assert torch.count_nonzero(layers[2].bn.weight[::3]) == 0 and torch.count_nonzero(layers[2].bn.bias[::3]) == 0
    assert not torch.equal(before["features.2.3.weight"], model.state_dict()["features.2.3.weight"]), "nothing trained"


def test_units_of_each_granularity():
    assert prune.strided_taps(3, 2, 0).flatten().tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert prune.strided_taps(3, 2, 1).flatten().tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert prune.strided_taps(3, 3, 2).flatten().tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert [prune.strided_stride(3, t) for t in (0.0, 0.2, 0.5, 0.7)] == [1, 1, 2, 3]
    layers = prune.conv_layers(seeded_digitnet())
    pw = layers[2]                                           # 16 -> 32 pointwise
    assert prune.kernel_shape(pw, 16) == (2, 16) and prune.kernel_shape(layers[1], 16) == (16, 1)
    keep = torch.ones(2, 16, dtype=torch.bool)
    keep[1, 4] = False
    m = prune.kernel_mask(pw, keep, 16)
    assert not m[16:, 4].any() and m[:16, 4].all() and int((~m).sum()) == 16


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fmprune.sw", "prune", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_prune_command_refuses_bad_input(tmp_path):
    r = run_cli("--weights", str(tmp_path / "none.pt"), cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr and "make train" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    torch.save(train.DigitNet().state_dict(), tmp_path / "w.pt")
    for args, words in ((("--granularity", "rows"), "choose from"), (("--target", "1.5"), "0 .. 1"),
                        (("--particles", "1"), "at least 2"), (("--noise", "0"), "(0, 1]")):
        r = run_cli("--weights", str(tmp_path / "w.pt"), *args, cwd=tmp_path)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_pruned_layer_through_the_engine():
    """A kernel- and channel-pruned pointwise layer of the digit network, with its real input,
    bit-exact through the engine with random stalls; the pruned kernels' weights are zero in the
    layer the driver sends."""
    model = seeded_digitnet(2)
    layers = prune.conv_layers(model)
    masks = prune.Masks.full(layers)
    prune._set_channels(masks, layers[0], torch.arange(16) % 4 != 1)
    masks.weight["conv3"][:, 8:12] = False
    prune.apply(layers, masks)
    x = torch.randn(16, 1, 32, 32)
    q = QuantizedNetwork("digitnet", calib_images=x, model=model, weights_desc="pruned test")
    _, captured = q.run_int(q.quantize_input(x[:1]), 0, capture={"conv3"})
    layer = q.layer("conv3")
    assert not layer.weight[:, 8:12].any()
    xin = np.ascontiguousarray(captured["conv3"][0][0][:, :6, :6])
    assert not xin[1::4].any()
    spec = driver.LayerSpec("digitnet.conv3[pruned,crop]", xin, layer.weight, layer.bias, layer.multiplier,
                            layer.shift, layer.stride, layer.padding, False, layer.act.lo, layer.act.hi)
    run_and_check(spec, layer.act, 8, stall=10, budget=100_000)


@pytest.mark.slow
def test_prune_hardware_on_a_made_cifar_network(tmp_path):
    """`fmprune prune --hardware 1` on a VGG-style network trained for an epoch on a made CIFAR-10
    folder: the unpruned and both pruned networks stream one image through the simulated engine,
    bit-exact, predictions identical."""
    from test_data_nets import cli, write_cifar
    write_cifar(tmp_path / "cifar", n_train=(48,), n_test=16)
    assert cli("train", "--net", "vgg32", "--data", str(tmp_path / "cifar"), "--epochs", "1", "--out",
               str(tmp_path / "v.pt"), cwd=tmp_path).returncode == 0
    r = cli("prune", "--weights", str(tmp_path / "v.pt"), "--granularity", "channel", "--stages", "1",
            "--retrain-epochs", "0", "--particles", "2", "--iterations", "1", "--out", str(tmp_path / "p"),
            "--hardware", "1", cwd=tmp_path, timeout=3000)    # a Verilator build and three networks
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads((tmp_path / "p" / "vgg32-channel-t50.json").read_text())
    rows = [rep["unpruned"]] + list(rep["methods"].values())
    assert all(v["hardware"]["bit_exact"] and v["hardware"]["predictions_identical"] for v in rows)
    assert all(v["hardware"]["nonzero_macs"] < rep["unpruned"]["hardware"]["nonzero_macs"]
               for v in rep["methods"].values())
