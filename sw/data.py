"""Real images for calibration and test vectors: the photographs scikit-learn ships
(``sklearn.datasets.load_sample_images``: china.jpg and flower.jpg), or the user's own files."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)   # ImageNet normalisation
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SAMPLE_NAMES = ("china", "flower")


@lru_cache(maxsize=None)
def _samples() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images
    data = load_sample_images()
    return {Path(f).stem: img for f, img in zip(data.filenames, data.images)}


def load_image(name_or_path: str) -> np.ndarray:
    """An RGB uint8 H x W x 3 image: a sample name ('china', 'flower') or an image file."""
    if name_or_path in SAMPLE_NAMES:
        return _samples()[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image {name_or_path!r} is neither a sample ({', '.join(SAMPLE_NAMES)}) nor a file")
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    from PIL import Image
    h, w = img.shape[:2]
    s = short / min(h, w)
    size = (max(short, round(w * s)), max(short, round(h * s)))
    return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


def _normalise(crop: np.ndarray) -> torch.Tensor:
    x = (crop.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def preprocess(img: np.ndarray, size: int = 224) -> torch.Tensor:
    """ImageNet evaluation transform: resize the short side to size*8/7, centre crop, normalise.
    Returns a float 3 x size x size tensor."""
    img = _resize_short(img, size * 8 // 7)
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return _normalise(img[top:top + size, left:left + size])


def calibration_batch(size: int = 224) -> torch.Tensor:
    """Crops of the sample photographs (centre and four corners, each also mirrored):
    20 x 3 x size x size. Used to calibrate BatchNorm statistics and activation scales."""
    crops = []
    for name in SAMPLE_NAMES:
        img = _resize_short(load_image(name), size * 8 // 7)
        h, w = img.shape[:2]
        for top, left in [((h - size) // 2, (w - size) // 2), (0, 0), (0, w - size),
                          (h - size, 0), (h - size, w - size)]:
            c = img[top:top + size, left:left + size]
            crops += [_normalise(c), _normalise(c[:, ::-1])]
    return torch.stack(crops)


# -- labelled data sets for training here (sw/train.py, sw/prune.py) ----------------------------

class DataError(ValueError):
    """A data folder that cannot be read: one line naming the file and what is wrong."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")


def _to_unit(x: np.ndarray) -> torch.Tensor:
    """uint8 N x C x H x W -> float in [-1, 1]."""
    return torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)


def load_cifar10(folder) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CIFAR-10's python batches (data_batch_1 .. data_batch_5 and test_batch in `folder`, as the
    data set's cifar-10-batches-py archive unpacks): (train x, train y, test x, test y), images
    3 x 32 x 32 in [-1, 1]. Batches that are missing are skipped, but test_batch and at least one
    data batch must be there."""
    import pickle
    folder = Path(folder)

    def read(name):
        path = folder / name
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise DataError(f"{path}: not a CIFAR-10 python batch ({e.__class__.__name__}: {e})") from None
        data, labels = d.get(b"data"), d.get(b"labels")
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None \
                or len(labels) != len(data):
            raise DataError(f"{path}: expected b'data' (N x 3072 uint8) and b'labels' (N), as CIFAR-10's batches")
        return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)

    names = [f"data_batch_{i}" for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
    if not names or not (folder / "test_batch").is_file():
        raise DataError(f"{folder}: no CIFAR-10 batches (data_batch_1 .. data_batch_5 and test_batch, from "
                        "cifar-10-python.tar.gz's cifar-10-batches-py folder)")
    parts = [read(n) for n in names]
    xte, yte = read("test_batch")
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    return _to_unit(xtr), torch.from_numpy(ytr), _to_unit(xte), torch.from_numpy(yte)


def load_image_folder(folder, size: int = 32, seed: int = 0, channels: int = 3):
    """A folder of class sub-folders of images (ImageFolder's layout: FOLDER/CLASS/IMAGE): every
    image resized to size x size (grey when `channels` is 1), split 80/20 by `seed` per class.
    Returns (train x, train y, test x, test y, class names)."""
    from PIL import Image, UnidentifiedImageError
    folder = Path(folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if len(classes) < 2:
        raise DataError(f"{folder}: expected a folder of at least two class sub-folders of images "
                        "(FOLDER/CLASS/IMAGE.png)")
    xs, ys = [], []
    for ci, c in enumerate(classes):
        files = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder / c}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
                    a = np.asarray(im)
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{f}: not an image that PIL reads ({e})") from None
            xs.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
            ys.append(ci)
    x, y = _to_unit(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    test = torch.zeros(len(y), dtype=torch.bool)
    for ci in range(len(classes)):
        idx = torch.nonzero(y == ci).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test[idx[:len(idx) // 5]] = True
    return x[~test], y[~test], x[test], y[test], classes
