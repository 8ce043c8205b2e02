"""Typed view of the ``config.data`` section: every field the data layer reads, with its default.

The CLI keeps an ``ml_collections.ConfigDict``; the data layer converts it once with
:meth:`DataOptions.from_config` so that a plain ``ConfigDict(dict(name=...))`` works and a missing
field takes the default documented in :mod:`idmvae_jax.data`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from idmvae_jax.errors import DataError

DATASET_NAMES = (
    "polymnist_quadrant_embedded",
    "polymnist_quadrant",
    "polymnist",
    "cub",
    "tcga",
    "npz",
)

# Datasets whose `path` is the user's source folder rather than a data directory.
USER_FOLDER_DATASETS = ("tcga", "npz")

_DEFAULT_IMAGE_SIZE = {"polymnist_quadrant_embedded": 64, "polymnist_quadrant": 64, "cub": 64}


def _absolute(path: str) -> str:
    """A local path made absolute; a URL (gs://...) as it is."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """All data-layer settings. See the module docstring of `idmvae_jax.data` for each field."""

    name: str
    path: str = ""
    cache_dir: str = ""
    manual_dir: str = ""
    image_size: int = 0  # 0 -> the dataset's default (64 for the quadrant datasets and CUB)
    digit_size: int = 0  # quadrant datasets: the digit's side in px (0 -> half the canvas)
    num_repetitions: int = 4
    seed: int = 0
    num_views: int = 0  # 0 -> every view the dataset has
    mnist_source: str = "auto"  # polymnist_quadrant: 'auto' | 'idx' | 'embedded'
    tcga_split: int = 0
    cub_caption_length: int = 32
    cub_min_word_count: int = 3
    cub_latents_file: str = ""
    cub_split_seed: int = 0
    latent_views: str = ""  # npz: comma-separated indices of float N×H×W×C views that are latents
    allow_download: bool = True
    prefetch: int = 4
    decode_threads: int = 1

    @classmethod
    def from_config(cls, data_cfg: Any) -> "DataOptions":
        """Builds options from a ConfigDict, a mapping, or returns `data_cfg` if it already is one.

        Fields absent from `data_cfg` take their defaults; fields the data layer does not know are
        ignored (the config itself is locked, so misspellings fail there).
        """
        if isinstance(data_cfg, DataOptions):
            return data_cfg
        if data_cfg is None:
            raise DataError("data config is None; pass config.data (needs at least `name`).")
        if hasattr(data_cfg, "to_dict"):
            values: Mapping[str, Any] = data_cfg.to_dict()
        elif isinstance(data_cfg, Mapping):
            values = data_cfg
        else:
            values = {f.name: getattr(data_cfg, f.name) for f in dataclasses.fields(cls)
                      if hasattr(data_cfg, f.name)}
        if "name" not in values:
            raise DataError(f"data config needs a `name`, one of {DATASET_NAMES}.")
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known or value is None:
                continue
            default = known[key].default
            if isinstance(default, bool):
                value = bool(value)
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, str):
                value = str(value)
            kwargs[key] = value
        options = cls(**kwargs)
        options.check()
        return options

    def check(self) -> None:
        """Raises ValueError naming the field when a value is out of range."""
        if self.name not in DATASET_NAMES:
            raise DataError(f"data.name={self.name!r} is unknown; choose one of {DATASET_NAMES}.")
        if self.name.startswith("polymnist_quadrant") and self.resolved_image_size not in (32, 64):
            raise DataError(
                f"data.image_size={self.image_size} is not supported for {self.name}; use 64 (paper "
                "geometry) or 32 (digit scaled to half the canvas).")
        if self.digit_size and not self.name.startswith("polymnist_quadrant"):
            raise DataError(f"data.digit_size={self.digit_size} applies to the PolyMNIST-Quadrant "
                            f"datasets only, not {self.name}; leave it at 0.")
        if self.digit_size:
            from idmvae_jax.data.polymnist_quadrant import resolved_digit_size

            try:
                resolved_digit_size(self.resolved_image_size, self.digit_size)
            except ValueError as e:
                raise DataError(f"data.{e}.") from None
        if self.num_repetitions < 1:
            raise DataError(f"data.num_repetitions={self.num_repetitions} must be >= 1.")
        if not 0 <= self.tcga_split <= 4:
            raise DataError(f"data.tcga_split={self.tcga_split} must be in 0..4.")
        if self.num_views < 0:
            raise DataError(f"data.num_views={self.num_views} must be >= 0 (0 = all views).")
        if self.mnist_source not in ("auto", "idx", "embedded"):
            raise DataError(
                f"data.mnist_source={self.mnist_source!r}; choose 'auto', 'idx' or 'embedded'.")
        if self.name in USER_FOLDER_DATASETS and not self.path:
            raise DataError(
                f"data.path is empty; dataset {self.name!r} reads the user's files from that folder "
                "(set --config.data.path=/path/to/folder).")
        if self.prefetch < 0 or self.decode_threads < 1:
            raise DataError("data.prefetch must be >= 0 and data.decode_threads >= 1.")

    @property
    def latent_view_indices(self) -> tuple[int, ...]:
        """`latent_views` as a tuple of view indices."""
        try:
            return tuple(sorted({int(v) for v in self.latent_views.split(",") if v.strip()}))
        except ValueError:
            raise DataError(f"data.latent_views={self.latent_views!r} must be comma-separated view "
                             "indices, e.g. '0,2'") from None

    @property
    def resolved_image_size(self) -> int:
        """The image size in pixels, the dataset's default when `image_size` is 0."""
        return self.image_size or _DEFAULT_IMAGE_SIZE.get(self.name, 0)

    @property
    def cache_root(self) -> str:
        """Directory that holds prepared datasets: a local path or a bucket URL (gs://...).

        `path` for the datasets that are not read from a user folder (when set), else `cache_dir`,
        else ``$IDMVAE_DATA_DIR``, else ``~/.cache/idmvae_jax``.
        """
        if self.path and self.name not in USER_FOLDER_DATASETS:
            return _absolute(self.path)
        if self.cache_dir:
            return _absolute(self.cache_dir)
        return self.local_cache_root

    @property
    def local_cache_root(self) -> str:
        """`cache_root` when it is local; for a bucket cache, the local cache where a dataset is
        built (and downloads kept) before it is copied to the bucket: ``$IDMVAE_DATA_DIR``, else
        ``~/.cache/idmvae_jax``."""
        root = self.path if self.path and self.name not in USER_FOLDER_DATASETS else self.cache_dir
        if root and "://" not in root:
            return _absolute(root)
        env = os.environ.get("IDMVAE_DATA_DIR", "")
        if env:
            return os.path.abspath(os.path.expanduser(env))
        return os.path.join(os.path.expanduser("~"), ".cache", "idmvae_jax")
