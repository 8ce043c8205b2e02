"""TFDS builder `multimodal_npz`: a user's folder with train.npz, test.npz (and optional val.npz).

Each file holds x_0..x_{M-1} (uint8 images N×H×W×C, float vectors N×D, float latents N×..., or
integer caption tokens N×L), y_shared (N,) integer class ids and optionally y_private (N, M). The
number of views, their kinds and shapes and the class counts (max id in train + 1) are inferred, so
`configs/npz.py` needs only the folder. Every split must agree with train on views and label
columns, and use no class id that train lacks.
"""
from __future__ import annotations

import os
from typing import Any


from idmvae_jax.data import sources, validation
from idmvae_jax.data.builders import arrays, base
from idmvae_jax.data.info import DatasetInfo
from idmvae_jax.errors import DataError

SPLIT_FILES = {"train": "train.npz", "val": "val.npz", "test": "test.npz"}


class MultimodalNpzSource(base.DatasetSource):
    """The generic user dataset. Args: folder: the folder holding the .npz files."""

    builder_name = "multimodal_npz"

    def __init__(self, folder: str, latent_views: tuple[int, ...] = ()):
        self.folder = folder
        self.latent_views = tuple(sorted(latent_views))
        self._splits: dict[str, arrays.ArraySplit] | None = None
        self._info: DatasetInfo | None = None

    @property
    def source_path(self) -> str:
        return self.folder

    def _how_to_obtain(self) -> str:
        return (f"Save your data with numpy.savez('{os.path.join(self.folder, 'train.npz')}', x_0=..., "
                "x_1=..., y_shared=..., [y_private=...]) and the same for test.npz (val.npz is "
                "optional), then set data.path to that folder.")

    def source_files(self) -> list[str]:
        return arrays.npz_files(self.folder, tuple(SPLIT_FILES.values()))

    def cache_params(self) -> dict[str, Any]:
        return {"latent_views": list(self.latent_views)} if self.latent_views else {}

    def validate(self) -> None:
        if not os.path.isdir(self.folder):
            raise sources.MissingSourceError(f"data.path={self.folder} is not a folder. {self._how_to_obtain()}")
        splits = {}
        for split, name in SPLIT_FILES.items():
            path = os.path.join(self.folder, name)
            if split == "val" and not os.path.isfile(path):
                continue
            splits[split] = arrays.split_from_arrays(arrays.load_npz(path, self._how_to_obtain()), path,
                                                     self.latent_views)
        train_where = os.path.join(self.folder, SPLIT_FILES["train"])
        train = splits["train"]
        num_shared = int(train.y_shared.max()) + 1
        num_private = None if train.y_private is None else int(train.y_private.max()) + 1
        for split, data in splits.items():
            where = os.path.join(self.folder, SPLIT_FILES[split])
            validation.check_same_views(train.views, data.views, where, train_where)
            validation.check_class_count(data.y_shared, num_shared, where, "y_shared")
            if (data.y_private is None) != (train.y_private is None):
                raise DataError(f"{where}: y_private must be present in every split or in none "
                                 f"(train {'has' if train.y_private is not None else 'lacks'} it)")
            if num_private is not None:
                validation.check_class_count(data.y_private, num_private, where, "y_private")
        views = arrays.merge_vocab([s.views for s in splits.values()])
        self._splits = splits
        self._info = DatasetInfo(
            name="npz", views=views, num_shared_classes=num_shared, num_private_classes=num_private,
            splits={s: d.num_examples for s, d in splits.items()}, shared_label_name="y_shared",
            private_label_name=None if num_private is None else "y_private")

    def dataset_info(self) -> DatasetInfo:
        assert self._info is not None, "validate() first"
        return self._info

    def generate(self, split: str):
        assert self._splits is not None, "validate() first"
        data = self._splits[split]
        data.views = self._info.views
        yield from arrays.generate(data)


@base.register_builder
class MultimodalNpz(base.SourceBuilder, skip_registration=True):
    """Generic multimodal data from .npz files; see the module docstring."""

    name = "multimodal_npz"


