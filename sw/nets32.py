"""Networks for 32 x 32 inputs trained here (sw/train.py) and pruned here (sw/prune.py): the
digit network (depthwise-separable, a small MobileNet), a VGG-style and a ResNet-style one
(the shapes of the CIFAR-10 networks the pruning papers use, narrowed to train on two CPU
cores). Each takes the input's channels (1 for the digits, 3 for CIFAR-10) and the classes."""
from __future__ import annotations

import torch
from torch import nn


def _cbr(cin, cout, k=3, s=1, groups=1):
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _dw_sep(cin, cout, stride):
    return nn.Sequential(*_cbr(cin, cin, 3, stride, groups=cin), *_cbr(cin, cout, 1))


class DigitNet(nn.Module):
    """Depthwise-separable, ReLU: a small MobileNet for 32 x 32 inputs (the digits: 1 channel)."""
    def __init__(self, in_ch: int = 1, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(*_cbr(in_ch, 16)),
            _dw_sep(16, 32, 2), _dw_sep(32, 64, 2), _dw_sep(64, 64, 1), _dw_sep(64, 128, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class VGG32(nn.Module):
    """VGG-style: three stages of two 3 x 3 conv-BN-ReLU layers and a 2 x 2 max pool (32, 64, 128
    channels), global average pool, one fc layer."""
    def __init__(self, in_ch: int = 3, classes: int = 10, widths=(32, 64, 128)):
        super().__init__()
        layers, c = [], in_ch
        for w in widths:
            layers += _cbr(c, w) + _cbr(w, w) + [nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3 x 3 conv-BN, ReLU between, the shortcut (a 1 x 1 conv-BN
    where the shape changes) added before the last ReLU."""
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class ResNet32(nn.Module):
    """ResNet-style for 32 x 32 (He et al.'s CIFAR layout, one basic block a stage: ResNet-8):
    a 3 x 3 stem (16 channels), stages of 16, 32, 64 channels (stride 2 from the second),
    global average pool, one fc layer."""
    def __init__(self, in_ch: int = 3, classes: int = 10, widths=(16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(*_cbr(in_ch, widths[0]))
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(c, w, 1 if i == 0 else 2))
            c = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


NETS = {
    "digitnet": (DigitNet, "depthwise-separable (a small MobileNet), 9 conv layers"),
    "vgg32": (VGG32, "VGG-style, 6 conv layers of 32-128 channels"),
    "resnet32": (ResNet32, "ResNet-style (ResNet-8: three basic blocks), 9 conv layers"),
}


def build(name: str, in_ch: int, classes: int) -> nn.Module:
    if name not in NETS:
        raise ValueError(f"unknown network {name!r}: choose {', '.join(NETS)}")
    return NETS[name][0](in_ch=in_ch, classes=classes)
