"""In-memory multimodal arrays (from user .npz files) → validated splits → TFDS examples."""
from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import Iterator, Mapping

import numpy as np

from idmvae_jax.data import images, sources, validation
from idmvae_jax.data.info import ViewInfo
from idmvae_jax.errors import DataError


@dataclasses.dataclass
class ArraySplit:
    """One split of user data.

    Attributes:
      views: ViewInfo per view.
      x: per view, the array (N, *shape) in the view's dtype.
      y_shared: int32 (N,).
      y_private: int32 (N, M) or None.
      row: int64 (N,), the row of each example in the user's file.
    """

    views: tuple[ViewInfo, ...]
    x: list[np.ndarray]
    y_shared: np.ndarray
    y_private: np.ndarray | None
    row: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.y_shared.shape[0])

    def take(self, rows: np.ndarray) -> "ArraySplit":
        return ArraySplit(self.views, [a[rows] for a in self.x], self.y_shared[rows],
                          None if self.y_private is None else self.y_private[rows], self.row[rows])


def load_npz(path: str, how_to_obtain: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickled objects), with errors naming the file."""
    sources.require_file(path, how_to_obtain)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .npz of plain numeric arrays ({error}); save it "
                         "with numpy.savez(path, x_0=..., x_1=..., y_shared=...)") from error


def split_from_arrays(arrays: Mapping[str, np.ndarray], where: str,
                      latent_views: tuple[int, ...] = ()) -> ArraySplit:
    """Validates x_0..x_{M-1}, y_shared and optional y_private of one split; `latent_views`: the
    views the user declared latent codes (`validation.infer_view`)."""
    keys = validation.view_keys(arrays, where)
    if "y_shared" not in arrays:
        raise DataError(f"{where}: missing the y_shared array (N,) of integer class ids")
    num_examples = arrays[keys[0]].shape[0]
    views, x = [], []
    for key in keys:
        array = arrays[key]
        if array.shape[0] != num_examples:
            raise DataError(f"{where}: {key} has {array.shape[0]} examples but x_0 has {num_examples}")
        view = validation.infer_view(array, where, key, latent=int(key[2:]) in latent_views)
        views.append(view)
        x.append(np.ascontiguousarray(array.astype(view.dtype, copy=False)))
    y_shared = validation.check_labels(arrays["y_shared"], num_examples, where, "y_shared")
    y_private = None
    if "y_private" in arrays:
        y_private = validation.check_labels(arrays["y_private"], num_examples, where, "y_private",
                                            num_columns=len(keys))
        views = [dataclasses.replace(v, has_private_label=True) for v in views]
    return ArraySplit(tuple(views), x, y_shared, y_private, np.arange(num_examples, dtype=np.int64))


def merge_vocab(views_per_split: list[tuple[ViewInfo, ...]]) -> tuple[ViewInfo, ...]:
    """Views of the first split with caption vocabularies enlarged to cover every split."""
    merged = list(views_per_split[0])
    for views in views_per_split[1:]:
        for m, view in enumerate(views):
            if view.kind == "caption":
                merged[m] = dataclasses.replace(
                    merged[m], vocab_size=max(merged[m].vocab_size or 0, view.vocab_size or 0))
    return tuple(merged)


def generate(split: ArraySplit, with_row: bool = False) -> Iterator[tuple[int, dict]]:
    """Yields (key, example) for every row: images as PNG, other views as arrays."""
    for i in range(split.num_examples):
        example = {}
        for m, view in enumerate(split.views):
            value = split.x[m][i]
            example[f"x_{m}"] = images.encode_png(value) if view.kind == "image" else value
        example["y_shared"] = int(split.y_shared[i])
        if split.y_private is not None:
            example["y_private"] = split.y_private[i]
        example["index"] = i
        if with_row:
            example["row"] = int(split.row[i])
        yield i, example


def npz_files(folder: str, names: tuple[str, ...]) -> list[str]:
    return [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]
