import json

import numpy as np
import pytest
import torch

from fmprune.sw import cli, zoo
from fmprune.sw.golden import QuantizedNetwork
from fmprune.sw.weights import WeightsError, build_model, load_state_dict_checked
from reference import layer_reference


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def sq_ckpt(tmp_path_factory):
    model, _ = build_model("squeezenet1_1")
    path = tmp_path_factory.mktemp("ckpt") / "squeezenet1_1.pth"
    torch.save(model.state_dict(), path)
    return path


def test_checkpoint_round_trip(sq_ckpt):
    a = QuantizedNetwork("squeezenet1_1")
    b = QuantizedNetwork("squeezenet1_1", weights=sq_ckpt)
    assert "sha256" in b.weights_desc and "deterministic" in a.weights_desc
    for name in a.layers:
        for f in ("weight", "bias", "multiplier", "shift"):
            np.testing.assert_array_equal(getattr(a.layers[name], f), getattr(b.layers[name], f), err_msg=name)
    np.testing.assert_array_equal(a.run_image("flower")[0], b.run_image("flower")[0])


def test_checkpoint_mismatch_names_keys_and_shapes(tmp_path, sq_ckpt):
    state = torch.load(sq_ckpt, weights_only=True)
    del state["features.3.squeeze.weight"]
    state["features.99.weight"] = torch.zeros(3)
    state["classifier.1.weight"] = torch.zeros(10, 512, 1, 1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsError) as e:
        load_state_dict_checked(zoo.NETWORKS["squeezenet1_1"][0](), bad)
    msg = str(e.value)
    assert "missing keys (1): features.3.squeeze.weight" in msg
    assert "unexpected keys (1): features.99.weight" in msg
    assert "classifier.1.weight: file (10, 512, 1, 1), network (1000, 512, 1, 1)" in msg


def test_checkpoint_untrusted_pickle_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"x": object()}, evil)            # not loadable with weights_only=True
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict_checked(zoo.NETWORKS["tinynet"][0](), evil)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        load_state_dict_checked(zoo.NETWORKS["tinynet"][0](), junk)


def test_cli_wrong_checkpoint_is_a_clear_error(capsys, sq_ckpt):
    code, out, err = run_cli(capsys, "golden", "mobilenet.conv3", "--weights", str(sq_ckpt), "--out", "/nonexistent")
    assert code == 2 and "does not fit MobileNetV1" in err and "Traceback" not in err


@pytest.mark.parametrize("net", sorted(zoo.NETWORKS))
def test_cli_layers(capsys, net):
    code, out, _ = run_cli(capsys, "layers", net)
    assert code == 0 and f"{net}.conv1 " in out and "MACs" in out


def test_cli_layers_json(capsys):
    code, out, _ = run_cli(capsys, "layers", "mobilenet", "--json")
    rows = json.loads(out)
    assert rows[2]["name"] == "mobilenet.conv3" and rows[2]["kind"] == "pointwise"
    assert rows[2]["input"] == [32, 112, 112] and rows[2]["output"] == [64, 112, 112]


@pytest.mark.parametrize("argv,needle", [
    (["layers", "mobilnet"], "unknown network 'mobilnet'; valid networks: alexnet"),
    (["golden", "mobilenet.conv99"], "Nearest: mobilenet.conv9"),
    (["golden", "mobilenet"], "must be NET.convN or NET.fcN"),
    (["golden", "vgg.conv1"], "unknown network 'vgg'"),
    (["golden", "mobilenet.conv3", "--image", "/no/such.jpg"], "neither a sample"),
])
def test_cli_bad_names(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and needle in err and "Traceback" not in err


def test_cli_bad_eps(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["golden", "mobilenet.conv3", "--eps", "-1"])
    assert e.value.code == 2 and "outside 0..127" in capsys.readouterr().err


@pytest.mark.parametrize("layer,eps", [("mobilenet.conv3", 0), ("mobilenet.conv4", 2), ("tinynet.conv3", 1),
                                       ("squeezenet1_1.conv3", 0), ("mobilenet.fc1", 0)])
def test_cli_golden_files_are_self_consistent(capsys, tmp_path, layer, eps):
    """The exported files alone reproduce expected.npy through the plain reference: they are the
    complete contract the hardware tests consume."""
    code, out, _ = run_cli(capsys, "golden", layer, "--eps", str(eps), "--out", str(tmp_path))
    assert code == 0, out
    f = {n: np.load(tmp_path / f"{n}.npy") for n in ("input", "weight", "bias", "multiplier", "shift", "expected")}
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert [f[n].dtype for n in f] == [np.int8, np.int8, np.int32, np.int32, np.int32, np.int8]
    assert list(f["input"].shape) == meta["input_shape"] and list(f["expected"].shape) == meta["output_shape"]
    assert meta["eps"] == eps and meta["layer"] == layer and "deterministic" in meta["weights"]
    # crop the output to keep the loop reference quick: the first 4 channels, all positions
    k = 4
    groups = meta["groups"]
    x = f["input"][:k] if groups > 1 else f["input"]
    want = layer_reference(x, f["weight"][:k], f["bias"][:k], f["multiplier"][:k], f["shift"][:k],
                           meta["stride"], meta["padding"], min(groups, k), meta["clamp_min"], meta["clamp_max"],
                           eps, meta["leaky_multiplier"], meta["leaky_shift"], meta["activation"] == "leaky")
    diff = np.argwhere(want != f["expected"][:k])
    assert diff.size == 0, (f"{layer}: first mismatch at (k, y, x)={tuple(diff[0])}: expected.npy "
                            f"{f['expected'][:k][tuple(diff[0])]} reference {want[tuple(diff[0])]}")
    assert len(np.unique(f["expected"])) > 3
