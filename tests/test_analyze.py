"""The analysis on a hand-built network whose answers are known by construction."""
import json

import pytest
import torch
from torch import nn

from fmprune.sw import analyze as an
from fmprune.sw import cli, zoo


class Known(nn.Module):
    """conv1: all weights 0; channels 0-3 bias +1 (constant, never zero after ReLU), channels 4-7
    bias -1 (always zero). conv2: 3x3, the top kernel row 0, the rest 1."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.fixture
def known(tmp_path, monkeypatch):
    monkeypatch.setitem(zoo.NETWORKS, "known", (Known, "hand-built test network"))
    m = Known()
    with torch.no_grad():
        m.conv1.weight.zero_()
        m.conv1.bias.copy_(torch.tensor([1.0] * 4 + [-1.0] * 4))
        m.conv2.weight.fill_(0.01)
        m.conv2.weight[:, :, 0, :] = 0
        m.conv2.bias.zero_()
        m.fc.weight.fill_(0.1)
        m.fc.bias.zero_()
    path = tmp_path / "known.pth"
    torch.save(m.state_dict(), path)
    return path


def test_analysis_known_answers(known, tmp_path):
    r = an.analyze("known", weights=known, eps_list=[0, 2], out_root=tmp_path, plots=True)
    c1, c2, fc = r["layers"]
    assert (c1["input_bytes"], c1["weight_bytes"], c1["output_bytes"]) == (3 * 224 * 224, 24, 8 * 224 * 224)
    assert c1["input_share"] == pytest.approx(150528 / (150528 + 24 + 401408))
    assert c1["zero_weights"] == 1.0
    assert c2["zero_weights"] == pytest.approx(1 / 3)
    assert c2["zero"] == 0.5 and c2["within_eps0"] == 0.5 and c2["within_eps2"] == 0.5
    assert c2["channels_pruned_eps0"] == 0.5
    assert c2["fm_bytes_compressed_eps0"] == 224 * 224 + 4 * 224 * 224          # bitmap + 4 stored values a pixel
    assert c2["fm_bytes_dense"] == 8 * 224 * 224
    kept = 4 * 4 * (224 * 3 - 2) ** 2                                             # in-bounds taps of channels 0-3
    assert c2["macs"] == 4 * 8 * 9 * 224 * 224
    assert c2["macs_skipped_eps0"] == c2["macs"] - kept
    assert fc["kind"] == "fc" and fc["input_bytes"] == 4
    assert {p.split("/")[-1] for p in r["plots"]} == {"traffic.png", "zeros.png", "eps.png"}
    saved = json.loads((tmp_path / "known" / "analysis.json").read_text())
    assert saved["layers"][1]["channels_pruned_eps0"] == 0.5 and "sha256" in saved["weights"]


def test_channel_threshold_parameter(known, tmp_path):
    r = an.analyze("known", weights=known, eps_list=[0], channel_threshold=1.0, out_root=tmp_path, plots=False)
    assert r["layers"][1]["channels_pruned_eps0"] == 0.5
    with pytest.raises(ValueError):
        an.analyze("known", weights=known, channel_threshold=0.0, out_root=tmp_path, plots=False)


def test_analyze_cli_mobilenet(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["analyze", "mobilenet", "--eps", "0,3"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet.conv3" in out and "NOTE: deterministic" in out
    assert (tmp_path / "build/analysis/mobilenet/analysis.csv").exists()


@pytest.mark.parametrize("argv,needle", [(["analyze"], "give a network"), (["analyze", "mobilenet", "--eps", "a"], "integers"),
                                         (["analyze", "mobilenet", "--images", "/nonexistent"], "not a folder")])
def test_analyze_bad_input(capsys, argv, needle):
    assert cli.main(argv) == 2 and needle in capsys.readouterr().err
