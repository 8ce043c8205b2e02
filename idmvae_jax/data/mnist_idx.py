"""The four standard MNIST idx files (LeCun et al.): reading and validating them."""
from __future__ import annotations

import gzip
import os

import numpy as np

from idmvae_jax.data import sources
from idmvae_jax.errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The mirror TFDS itself uses for MNIST.
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_MAGIC = {3: 2051, 1: 2049}


def how_to_obtain(directory: str) -> str:
    names = ", ".join(f"{n}.gz" for n in IDX_FILES.values())
    return (f"Place the MNIST idx files ({names}; gzipped or not) in {directory} and set "
            f"data.manual_dir to it, or allow the download from {MNIST_URL} (data.allow_download).")


def find_idx_files(directory: str) -> dict[str, str] | None:
    """Paths of the four files in `directory` (`.gz` or plain), or None if any is missing."""
    found = {}
    for key, name in IDX_FILES.items():
        path = sources.first_existing([os.path.join(directory, name + ".gz"),
                                       os.path.join(directory, name)])
        if path is None:
            return None
        found[key] = path
    return found


def missing_idx_files(directory: str) -> list[str]:
    return [os.path.join(directory, n + ".gz") for n in IDX_FILES.values()
            if sources.first_existing([os.path.join(directory, n + ".gz"),
                                       os.path.join(directory, n)]) is None]


def read_idx(path: str) -> np.ndarray:
    """Reads an idx1 (labels, (N,)) or idx3 (images, (N, 28, 28)) uint8 file, gzipped or not."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 8:
        raise DataError(f"{path} is not an MNIST idx file (only {len(raw)} bytes)")
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if magic not in _MAGIC.values() or _MAGIC[ndim] != magic:
        raise DataError(f"{path} is not an MNIST idx1/idx3 uint8 file (magic number {magic})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"{path} declares shape {tuple(dims)} but holds {len(raw) - offset} values")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def load_mnist(paths: dict[str, str]) -> dict[str, np.ndarray]:
    """Reads and validates the four files.

    Returns:
      {'train_images': uint8 (N, 28, 28), 'train_labels': int32 (N,), 'test_images': ...,
       'test_labels': ...}.
    """
    data = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{paths[split + '_images']}: images must be N×28×28, got {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(f"{paths[split + '_labels']}: {labels.shape[0]} labels for "
                             f"{images.shape[0]} images in {paths[split + '_images']}")
        if labels.size and labels.max() > 9:
            raise DataError(f"{paths[split + '_labels']}: labels must be digits 0..9, "
                             f"found {int(labels.max())}")
        data[f"{split}_labels"] = labels.astype(np.int32)
    return data
