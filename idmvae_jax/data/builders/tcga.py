"""TFDS builder `tcga`: TCGA multi-omics, 2 views × 100 dims, binary label, 5 splits (user .npz).

Expected file: ``<data.path>/tcga.npz`` with
  x_0, x_1            float (N, D) omics views (the paper uses D = 100),
  y_shared            int (N,) class ids (binary in the paper),
  train_idx_k, test_idx_k   int row indices of split k, for k = 0..4 (optional val_idx_k),
and `data.tcga_split` selects k. Each prepared split keeps the user's row number in `row` (N,).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from idmvae_jax.data.builders import arrays, base
from idmvae_jax.data.info import DatasetInfo
from idmvae_jax.errors import DataError

FILE_NAME = "tcga.npz"
NUM_SPLITS = 5


class TcgaSource(base.DatasetSource):
    """Args: folder: the folder holding tcga.npz; split_index: which of the 5 splits (0..4)."""

    builder_name = "tcga"

    def __init__(self, folder: str, split_index: int = 0):
        self.folder = folder
        self.split_index = split_index
        self._splits: dict[str, arrays.ArraySplit] | None = None
        self._info: DatasetInfo | None = None

    @property
    def source_path(self) -> str:
        return self.folder

    @property
    def path(self) -> str:
        return os.path.join(self.folder, FILE_NAME)

    def source_files(self) -> list[str]:
        return [self.path]

    def cache_params(self) -> dict[str, Any]:
        return {"split_index": self.split_index}

    def validate(self) -> None:
        how = (f"Save the TCGA data with numpy.savez('{self.path}', x_0=..., x_1=..., y_shared=..., "
               "train_idx_0=..., test_idx_0=..., ..., train_idx_4=..., test_idx_4=...) and set "
               "data.path to its folder.")
        raw = arrays.load_npz(self.path, how)
        if sorted(k for k in raw if k.startswith("x_")) != ["x_0", "x_1"]:
            raise DataError(f"{self.path}: TCGA needs exactly two views x_0 and x_1, found "
                             f"{sorted(k for k in raw if k.startswith('x_'))}")
        full = arrays.split_from_arrays({k: raw[k] for k in ("x_0", "x_1", "y_shared")}, self.path)
        for m, view in enumerate(full.views):
            if view.kind != "vector":
                raise DataError(f"{self.path}: x_{m} must be float N×D omics vectors, got a "
                                 f"{view.kind} of shape {view.shape}")
        n = full.num_examples
        k = self.split_index
        splits = {}
        for split in ("train", "val", "test"):
            key = f"{split}_idx_{k}"
            if key not in raw:
                if split == "val":
                    continue
                raise DataError(f"{self.path}: missing {key} (row indices of split {k}); the file "
                                 f"needs train_idx_k and test_idx_k for k = 0..{NUM_SPLITS - 1}")
            rows = np.asarray(raw[key])
            if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
                raise DataError(f"{self.path}: {key} must be a 1-D integer array, got {rows.dtype} "
                                 f"{rows.shape}")
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise DataError(f"{self.path}: {key} has rows outside 0..{n - 1}")
            splits[split] = full.take(rows.astype(np.int64))
        train_rows = set(splits["train"].row.tolist())
        for split in ("val", "test"):
            if split in splits and train_rows & set(splits[split].row.tolist()):
                raise DataError(f"{self.path}: {split}_idx_{k} overlaps train_idx_{k}")
        num_shared = int(splits["train"].y_shared.max()) + 1
        for split, data in splits.items():
            if data.y_shared.size and data.y_shared.max() >= num_shared:
                raise DataError(f"{self.path}: split {k} {split} has class {int(data.y_shared.max())} "
                                 f"absent from train")
        self._splits = splits
        self._info = DatasetInfo(
            name="tcga", views=full.views, num_shared_classes=num_shared, num_private_classes=None,
            splits={s: d.num_examples for s, d in splits.items()}, shared_label_name="label",
            extra_keys=("row",))

    def dataset_info(self) -> DatasetInfo:
        assert self._info is not None, "validate() first"
        return self._info

    def extra_features(self):
        return {"row": tfds.features.Tensor(shape=(), dtype=np.int64)}

    def generate(self, split: str):
        assert self._splits is not None, "validate() first"
        yield from arrays.generate(self._splits[split], with_row=True)


@base.register_builder
class Tcga(base.SourceBuilder, skip_registration=True):
    """TCGA multi-omics from a user .npz; see the module docstring."""

    name = "tcga"
