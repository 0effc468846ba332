"""The users' data loaders (CIFAR-10's python batches, a folder of class sub-folders of images) on
small files written here, the 32 x 32 networks through the golden model, and `fmprune train` /
`fmprune prune` end to end on a made CIFAR-10 folder."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fmprune.sw import data, nets32, train


def write_cifar(folder, n_train=(30, 20), n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, n in enumerate(n_train, 1):
        batches[f"data_batch_{i}"] = n
    batches["test_batch"] = n_test
    made = {}
    for name, n in batches.items():
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n)),
             b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
        made[name] = d
    return made


def test_cifar10_loader(tmp_path):
    made = write_cifar(tmp_path / "c")
    xtr, ytr, xte, yte = data.load_cifar10(tmp_path / "c")
    assert xtr.shape == (50, 3, 32, 32) and xte.shape == (20, 3, 32, 32) and ytr.dtype == torch.int64
    raw = np.concatenate([made["data_batch_1"][b"data"], made["data_batch_2"][b"data"]]).reshape(-1, 3, 32, 32)
    assert torch.equal(xtr, torch.from_numpy(raw.astype(np.float32) / 127.5 - 1.0))
    assert ytr.tolist() == [int(v) for v in made["data_batch_1"][b"labels"] + made["data_batch_2"][b"labels"]]
    assert yte.tolist() == [int(v) for v in made["test_batch"][b"labels"]]
    assert float(xtr.min()) >= -1.0 and float(xtr.max()) <= 1.0


def test_cifar10_loader_refuses_bad_folders(tmp_path):
    with pytest.raises(data.DataError, match="no CIFAR-10 batches"):
        data.load_cifar10(tmp_path)
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(data.DataError, match="data_batch_2: not a CIFAR-10 python batch"):
        data.load_cifar10(tmp_path / "c")
    with open(tmp_path / "c" / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(data.DataError, match="N x 3072"):
        data.load_cifar10(tmp_path / "c")


def write_folder(root, classes=("cat", "dog", "emu"), per=5, size=(20, 14), seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per):
            Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_image_folder_loader(tmp_path):
    write_folder(tmp_path / "f")
    (tmp_path / "f" / "cat" / "notes.txt").write_text("not an image")       # ignored: not an image suffix
    xtr, ytr, xte, yte, classes = data.load_image_folder(tmp_path / "f", size=32, seed=1)
    assert classes == ["cat", "dog", "emu"]
    assert xtr.shape == (12, 3, 32, 32) and xte.shape == (3, 3, 32, 32)
    assert sorted(yte.tolist()) == [0, 1, 2] and sorted(ytr.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    want = np.asarray(Image.open(tmp_path / "f" / "cat" / "0.png").convert("RGB").resize((32, 32), Image.BILINEAR))
    all_x = torch.cat([xtr, xte])
    target = torch.from_numpy(want.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)
    assert any(torch.equal(v, target) for v in all_x), "the first cat image is not among the loaded images"
    grey = data.load_image_folder(tmp_path / "f", size=16, channels=1)[0]
    assert grey.shape[1:] == (1, 16, 16)


def test_image_folder_loader_refuses_bad_folders(tmp_path):
    with pytest.raises(data.DataError, match="at least two class sub-folders"):
        data.load_image_folder(tmp_path)
    write_folder(tmp_path / "f", classes=("a", "b"), per=2)
    (tmp_path / "f" / "b" / "2.png").write_bytes(b"broken")
    with pytest.raises(data.DataError, match=r"2\.png: not an image"):
        data.load_image_folder(tmp_path / "f")


@pytest.mark.parametrize("name", list(nets32.NETS))
def test_nets32_through_the_golden_model(name):
    torch.manual_seed(0)
    model = nets32.build(name, 3, 10).eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (8, 10)
    q = train.quantise(model, "seeded test", calib=x, net=name)
    logits, _ = q.run_int(q.quantize_input(x[:2]))
    assert logits.shape == (2, 10)
    assert all(n.startswith("conv") or n.startswith("fc") for n in q.layers)


def cli(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "fmprune.sw", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_train_and_prune_on_made_cifar(tmp_path):
    write_cifar(tmp_path / "cifar", n_train=(48,), n_test=16)
    r = cli("train", "--net", "resnet32", "--data", str(tmp_path / "cifar"), "--epochs", "1", "--out",
            str(tmp_path / "r.pt"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "r.json").read_text())
    assert meta["net"] == "resnet32" and meta["in_ch"] == 3 and "int_accuracy" in meta
    r = cli("prune", "--weights", str(tmp_path / "r.pt"), "--granularity", "kernel,strided", "--target", "0.4",
            "--stages", "1", "--retrain-epochs", "0", "--particles", "2", "--iterations", "1", "--out",
            str(tmp_path / "p"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "p" / "resnet32-kernel+strided-t40.json").read_text())
    assert set(rep["methods"]) == {"particle", "magnitude"} and rep["network"] == "resnet32"
    for m in rep["methods"].values():
        assert m["conv_sparsity"] > 0.3
        model, _ = train.load(m["checkpoint"])
        assert isinstance(model, nets32.ResNet32)
    r = cli("train", "--data", str(tmp_path / "nothing"), "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 2 and "at least two class sub-folders" in r.stderr and "Traceback" not in r.stderr
