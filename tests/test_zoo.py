import pytest
import torch

from fmprune.sw import zoo
from fmprune.sw.golden import layer_table

# (conv layers, fc layers, MACs in millions) from the networks' papers / torchvision's model docs
PUBLISHED = {
    "alexnet": (5, 3, 714), "vgg16": (13, 3, 15470), "resnet50": (53, 1, 4089),
    "squeezenet": (26, 0, 819), "squeezenet1_1": (26, 0, 349), "mobilenet": (27, 1, 569),
    "mobilenetv2": (52, 1, 301), "tinynet": (16, 0, 490),
}


@pytest.mark.parametrize("net", sorted(zoo.NETWORKS))
def test_layer_listing(net):
    rows = layer_table(net)
    convs = [r for r in rows if r["kind"] != "fc"]
    fcs = [r for r in rows if r["kind"] == "fc"]
    n_conv, n_fc, mmacs = PUBLISHED[net]
    assert (len(convs), len(fcs)) == (n_conv, n_fc)
    assert [r["name"] for r in convs] == [f"{net}.conv{i}" for i in range(1, n_conv + 1)]
    assert [r["name"] for r in fcs] == [f"{net}.fc{i}" for i in range(1, n_fc + 1)]
    total = sum(r["macs"] for r in rows) / 1e6
    assert abs(total - mmacs) / mmacs < 0.03, f"{net}: {total:.0f}M MACs, published {mmacs}M"
    for r in rows:
        assert r["macs"] == r["output"][0] * r["output"][1] * r["output"][2] * r["input"][0] // r["groups"] * r["kernel"] ** 2
        if r["kind"] == "depthwise":
            assert r["groups"] == r["input"][0] == r["output"][0]


def test_mobilenet_kinds():
    kinds = [r["kind"] for r in layer_table("mobilenet")]
    assert kinds == ["standard"] + ["depthwise", "pointwise"] * 13 + ["fc"]


@pytest.mark.parametrize("net", ["alexnet", "vgg16", "resnet50", "squeezenet", "squeezenet1_1", "mobilenetv2"])
def test_torchvision_parameter_names(net):
    """Spot-check names that torchvision's state_dicts use."""
    keys = set(zoo.NETWORKS[net][0]().state_dict())
    expect = {
        "alexnet": {"features.0.weight", "features.10.bias", "classifier.1.weight", "classifier.6.bias"},
        "vgg16": {"features.0.weight", "features.28.weight", "classifier.0.weight", "classifier.6.weight"},
        "resnet50": {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight",
                     "layer4.2.bn3.num_batches_tracked", "fc.weight"},
        "squeezenet": {"features.3.squeeze.weight", "features.12.expand3x3.bias", "classifier.1.weight"},
        "squeezenet1_1": {"features.0.weight", "features.12.expand1x1.weight", "classifier.1.bias"},
        "mobilenetv2": {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
                        "features.2.conv.0.1.running_mean", "features.17.conv.3.weight",
                        "features.18.0.weight", "classifier.1.weight"},
    }[net]
    assert expect <= keys, expect - keys
    n_params = sum(v.numel() for k, v in zoo.NETWORKS[net][0]().state_dict().items()
                   if "running" not in k and "num_batches" not in k)
    published = {"alexnet": 61100840, "vgg16": 138357544, "resnet50": 25557032,
                 "squeezenet": 1248424, "squeezenet1_1": 1235496, "mobilenetv2": 3504872}[net]
    assert n_params == published


def test_init_is_deterministic():
    a = zoo.NETWORKS["tinynet"][0]()
    b = zoo.NETWORKS["tinynet"][0]()
    zoo.init_weights(a, 5)
    zoo.init_weights(b, 5)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
