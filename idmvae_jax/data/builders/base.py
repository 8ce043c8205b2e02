"""The shared TFDS builder: a `GeneratorBasedBuilder` writing ArrayRecord, fed by a `DatasetSource`.

Each dataset is a `DatasetSource` (validated raw inputs + how to turn them into examples) plus a
thin `SourceBuilder` subclass that gives the TFDS dataset its name. No TensorFlow is needed:

* `tfds.core.DatasetInfo` is built directly (`dataset_info_from_configs` would look for metadata
  files next to the builder's module);
* images reach `tfds.features.Image` as ready PNG bytes (TFDS only needs TensorFlow to encode
  numpy images);
* `code_path = None` (see `SourceBuilder`) avoids a hidden `importlib_resources` import;
* builders skip the global TFDS registry (`skip_registration=True`), so their names cannot clash
  with TFDS's catalogue; prepared data is read back with `tfds.builder_from_directory`.
"""
from __future__ import annotations

import abc
import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from idmvae_jax.data.info import DatasetInfo

Example = dict[str, Any]


class DatasetSource(abc.ABC):
    """Raw inputs of one dataset and the examples they produce.

    Lifecycle: construct (cheap) → `validate()` (reads and checks the raw files; raises
    ValueError / MissingSourceError with the fix) → the cache key is computed from `source_path`,
    `source_files()` and `cache_params()` → if not cached, the builder calls `generate(split)`.
    """

    builder_name: str = ""

    @abc.abstractmethod
    def validate(self) -> None:
        """Checks the raw inputs (before any cache lookup)."""

    @abc.abstractmethod
    def source_files(self) -> list[str]:
        """Files whose bytes determine the dataset (fingerprinted for the cache key)."""

    @abc.abstractmethod
    def cache_params(self) -> dict[str, Any]:
        """Settings that change the prepared data (image size, seed, ...)."""

    @property
    @abc.abstractmethod
    def source_path(self) -> str:
        """Where the raw inputs live (part of the cache key)."""

    @abc.abstractmethod
    def dataset_info(self) -> DatasetInfo:
        """Description of the prepared data (valid after `validate`)."""

    @abc.abstractmethod
    def generate(self, split: str) -> Iterator[tuple[int, Example]]:
        """Yields (key, example) with keys 0..n-1 in order; `example['index'] == key`."""

    def extra_features(self) -> dict[str, tfds.features.FeatureConnector]:
        """Per-example features beyond x_m, y_shared, y_private and index."""
        return {}

    def write_extras(self, directory: str) -> None:
        """Writes side files (e.g. a vocabulary) into the prepared directory."""


def features_for(info: DatasetInfo, extra: dict[str, tfds.features.FeatureConnector]
                 ) -> tfds.features.FeaturesDict:
    """The TFDS features of a dataset described by `info`."""
    features: dict[str, Any] = {}
    for m, view in enumerate(info.views):
        if view.kind == "image":
            features[f"x_{m}"] = tfds.features.Image(shape=view.shape, encoding_format="png")
        else:
            features[f"x_{m}"] = tfds.features.Tensor(shape=view.shape, dtype=np.dtype(view.dtype))
    features["y_shared"] = tfds.features.Tensor(shape=(), dtype=np.int32)
    if info.num_private_classes is not None:
        features["y_private"] = tfds.features.Tensor(shape=(len(info.views),), dtype=np.int32)
    features["index"] = tfds.features.Tensor(shape=(), dtype=np.int64)
    features.update(extra)
    return tfds.features.FeaturesDict(features)


class SourceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A GeneratorBasedBuilder whose examples come from a validated `DatasetSource`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    # Keep examples in key order: record i holds example index i, and load_split is in that order.
    disable_shuffling = True
    # TFDS looks for a checksums file next to the builder's code through `importlib_resources`,
    # which tensorflow-datasets 4.9.x uses without declaring it as a dependency. These builders
    # never use TFDS's download manager (sources are resolved before building), so there is no
    # checksums file to find: say so instead of importing the missing package.
    code_path = None

    def __init__(self, source: DatasetSource, *, data_dir: str):
        self._source = source
        super().__init__(data_dir=data_dir, file_format="array_record")

    def _info(self) -> tfds.core.DatasetInfo:
        info = self._source.dataset_info()
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"idmvae_jax {info.name}: {len(info.views)} views, shared label "
                        f"'{info.shared_label_name}', private label '{info.private_label_name}'.",
            features=features_for(info, self._source.extra_features()),
            disable_shuffling=True,  # TFDS reads it from the DatasetInfo, not the class
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # sources are resolved (manual_dir or guarded download) before building
        return {split: self._generate_examples(split)
                for split in self._source.dataset_info().splits}

    def _generate_examples(self, split: str):
        yield from self._source.generate(split)

    def write_extras(self) -> None:
        self._source.write_extras(os.fspath(self.data_dir))


def make_builder(source: DatasetSource, data_dir: str) -> SourceBuilder:
    """A builder named `source.builder_name` (one registered-free subclass per dataset name)."""
    builder_cls = _BUILDER_CLASSES.get(source.builder_name)
    if builder_cls is None:
        raise ValueError(f"no builder class for {source.builder_name!r}")
    return builder_cls(source, data_dir=data_dir)


_BUILDER_CLASSES: dict[str, type[SourceBuilder]] = {}


def register_builder(builder_cls: type[SourceBuilder]) -> type[SourceBuilder]:
    """Records a builder class under its TFDS name (used by `make_builder`)."""
    _BUILDER_CLASSES[builder_cls.name] = builder_cls
    return builder_cls
