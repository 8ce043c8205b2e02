"""TFDS builder `polymnist`: the original PolyMNIST (Sutter et al., 2021), 5 views 28×28×3.

Source, in this order: ``<manual_dir>/PolyMNIST.zip``, an extracted ``<manual_dir>/MMNIST/`` (or
`manual_dir` itself being that folder), else a one-time download of the public archive into
``<cache_root>/downloads/polymnist/`` (when `data.allow_download`). Layout inside:
``MMNIST/{train,test}/m{0..4}/{i}.{label}.png``; a tuple is the five files with the same name. The
PNGs are stored unchanged. Labels: y_shared = digit; there is no private label.
"""
from __future__ import annotations

import os
import re
import zipfile
from typing import Any

import numpy as np

from idmvae_jax.data import images, sources
from idmvae_jax.data.builders import base
from idmvae_jax.data.info import DatasetInfo, ViewInfo
from idmvae_jax.errors import DataError

ARCHIVE_NAME = "PolyMNIST.zip"
ARCHIVE_URL = "https://zenodo.org/record/4899160/files/PolyMNIST.zip"
NUM_VIEWS = 5
IMAGE_SHAPE = (28, 28, 3)
_FILE_PATTERN = re.compile(r"(?:^|/)MMNIST/(train|test)/m(\d)/(\d+)\.(\d)\.png$")


def how_to_obtain(manual_dir: str) -> str:
    return (f"Download {ARCHIVE_URL} and place {ARCHIVE_NAME} (or its extracted MMNIST/ folder) in "
            f"{manual_dir or '<data.manual_dir>'}, then set data.manual_dir to that folder.")


class PolymnistSource(base.DatasetSource):
    """Args: location: PolyMNIST.zip or the folder containing (or being) MMNIST/."""

    builder_name = "polymnist"

    def __init__(self, location: str):
        self.location = location
        self._files: dict[str, list[list[str]]] | None = None
        self._labels: dict[str, np.ndarray] | None = None

    @classmethod
    def from_options(cls, options) -> "PolymnistSource":
        manual = os.path.abspath(os.path.expanduser(options.manual_dir)) if options.manual_dir else ""
        if manual:
            found = sources.first_existing([os.path.join(manual, ARCHIVE_NAME),
                                            os.path.join(manual, "MMNIST")])
            if found is None and os.path.basename(manual.rstrip("/")) == "MMNIST":
                found = manual
            if found is None:
                raise sources.MissingSourceError(
                    f"neither {os.path.join(manual, ARCHIVE_NAME)} nor {os.path.join(manual, 'MMNIST')} "
                    f"exists. {how_to_obtain(manual)}")
            return cls(found)
        target = os.path.join(options.local_cache_root, "downloads", "polymnist", ARCHIVE_NAME)
        return cls(sources.download(ARCHIVE_URL, target, allowed=options.allow_download,
                                    manual_hint=how_to_obtain(manual)))

    @property
    def source_path(self) -> str:
        return os.path.abspath(self.location)

    def source_files(self) -> list[str]:
        return [self.location]

    def cache_params(self) -> dict[str, Any]:
        return {}

    def _names(self) -> list[str]:
        if zipfile.is_zipfile(self.location):
            with zipfile.ZipFile(self.location) as archive:
                return archive.namelist()
        root = os.path.dirname(self.location.rstrip("/"))
        return [os.path.relpath(os.path.join(d, f), root)
                for d, _, files in os.walk(self.location) for f in files]

    def _read(self, name: str, archive: zipfile.ZipFile | None) -> bytes:
        if archive is not None:
            return archive.read(name)
        with open(os.path.join(os.path.dirname(self.location.rstrip("/")), name), "rb") as handle:
            return handle.read()

    def validate(self) -> None:
        entries: dict[tuple[str, int], dict[int, tuple[str, int]]] = {}
        for name in self._names():
            match = _FILE_PATTERN.search(name.replace(os.sep, "/"))
            if match:
                split, view, index, label = match.groups()
                entries.setdefault((split, int(view)), {})[int(index)] = (name, int(label))
        files, labels = {}, {}
        for split in ("train", "test"):
            per_view = [entries.get((split, m), {}) for m in range(NUM_VIEWS)]
            if not per_view[0]:
                raise DataError(f"{self.location}: no MMNIST/{split}/m0/<i>.<label>.png files; "
                                 f"{how_to_obtain(os.path.dirname(self.location))}")
            ids = sorted(per_view[0])
            for m in range(1, NUM_VIEWS):
                if sorted(per_view[m]) != ids:
                    raise DataError(f"{self.location}: MMNIST/{split}/m{m} does not hold the same "
                                     f"file numbers as m0 ({len(per_view[m])} vs {len(ids)} files)")
            files[split] = [[per_view[m][i][0] for i in ids] for m in range(NUM_VIEWS)]
            labels[split] = np.array([per_view[0][i][1] for i in ids], dtype=np.int32)
            for m in range(1, NUM_VIEWS):
                if any(per_view[m][i][1] != per_view[0][i][1] for i in ids):
                    raise DataError(f"{self.location}: MMNIST/{split}/m{m} labels disagree with m0")
        archive = zipfile.ZipFile(self.location) if zipfile.is_zipfile(self.location) else None
        try:
            for m in range(NUM_VIEWS):
                shape = images.decode_png(self._read(files["train"][m][0], archive)).shape
                if shape != IMAGE_SHAPE:
                    raise DataError(f"{self.location}: {files['train'][m][0]} has shape {shape}, "
                                     f"expected {IMAGE_SHAPE}")
        finally:
            if archive is not None:
                archive.close()
        self._files, self._labels = files, labels

    def dataset_info(self) -> DatasetInfo:
        assert self._labels is not None, "validate() first"
        view = ViewInfo(kind="image", shape=IMAGE_SHAPE, dtype="uint8")
        return DatasetInfo(name="polymnist", views=(view,) * NUM_VIEWS, num_shared_classes=10,
                           num_private_classes=None,
                           splits={s: int(v.size) for s, v in self._labels.items()},
                           shared_label_name="digit")

    def generate(self, split: str):
        assert self._files is not None, "validate() first"
        archive = zipfile.ZipFile(self.location) if zipfile.is_zipfile(self.location) else None
        try:
            for i, label in enumerate(self._labels[split]):
                example = {f"x_{m}": self._read(self._files[split][m][i], archive)
                           for m in range(NUM_VIEWS)}
                example.update(y_shared=int(label), index=i)
                yield i, example
        finally:
            if archive is not None:
                archive.close()


@base.register_builder
class Polymnist(base.SourceBuilder, skip_registration=True):
    """The original 5-view PolyMNIST; see the module docstring."""

    name = "polymnist"
