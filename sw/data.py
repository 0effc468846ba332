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
