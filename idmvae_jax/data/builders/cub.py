"""TFDS builder `cub_image_captions`: CUB-200-2011 images with the Reed et al. captions (CUBICC).

Manual files (``data.manual_dir``; nothing is downloaded, CUB's licence requires a manual fetch):
  CUB_200_2011/images.txt, image_class_labels.txt, classes.txt, images/<class>/<file>.jpg,
  CUB_200_2011/parts/part_locs.txt                        (for the head-direction label),
  text_c10/<class>/<file>.txt                             (10 captions per image, Reed et al. 2016;
                                                           also found under cvpr2016_cub/text_c10),
  cubicc_groups.txt                                        lines "<class folder> <group id>": the
                                                           CUBICC grouping (22 species in 8 groups,
                                                           Palumbo et al. 2024); only listed species
                                                           are used,
  optional data.cub_latents_file (.npz: image_id (N,), latent (N, 4, 32, 32) float) — precomputed
  SD-VAE image latents; when given, view 0 is the latent instead of the image.

Examples: one per (image, caption) pair, image-major (index = 10·image + caption). Views:
x_0 image uint8 (S, S, 3) resized from the full photo (or the latent), x_1 caption int32 (L,).
Labels: y_shared = group; y_private = [head direction (0 = beak points left, 1 = right), -1]
(captions have no private label); extra keys `species` (rank of the species among those used).
Split 70/15/15 by image within each species, seeded by data.cub_split_seed. Captions are
tokenised by a regex (lower-case words, numbers, punctuation), truncated to L − 1 tokens, ended
by <eos> and padded with <pad>; the vocabulary holds <pad>=0, <eos>=1, <exc>=2 (unknown word), then
the train-split words seen more than `cub_min_word_count` times, by count then alphabetically. It is
saved as vocab.json in the prepared directory.
"""
from __future__ import annotations

import collections
import json
import os
import re
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from idmvae_jax.data import images, sources
from idmvae_jax.data.builders import base
from idmvae_jax.data.info import DatasetInfo, ViewInfo
from idmvae_jax.errors import DataError

CAPTIONS_PER_IMAGE = 10
SPECIAL_TOKENS = ("<pad>", "<eos>", "<exc>")
GROUPS_FILE = "cubicc_groups.txt"
SPLIT_FRACTIONS = (0.70, 0.15)  # train, val; test takes the rest
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[^\sa-z0-9]")
_PART_IDS = {"beak": 2, "crown": 5, "left_eye": 7, "nape": 10, "right_eye": 11, "tail": 14}


def tokenize(text: str) -> list[str]:
    """Lower-cased regex tokens: words, numbers, single punctuation marks."""
    return _TOKEN.findall(text.lower())


def build_vocab(captions: list[str], min_count: int) -> list[str]:
    """Specials, then words with count > min_count ordered by (−count, word)."""
    counts = collections.Counter(t for c in captions for t in tokenize(c))
    words = sorted((w for w, n in counts.items() if n > min_count), key=lambda w: (-counts[w], w))
    return list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]


def encode_caption(text: str, word_ids: dict[str, int], length: int) -> np.ndarray:
    """int32 (length,): token ids, <exc> for unknown words, <eos> after at most length − 1 tokens."""
    ids = [word_ids.get(t, 2) for t in tokenize(text)][:length - 1] + [1]
    return np.array(ids + [0] * (length - len(ids)), dtype=np.int32)


def head_direction(parts: dict[int, tuple[float, float, bool]]) -> int:
    """0 if the beak points left in the image, 1 if right.

    Beak x against the first visible of nape, crown, tail; without a visible beak, a lone visible
    left eye means the bird's left side faces the camera (beak left), a lone right eye the reverse;
    otherwise 0.
    """
    beak = parts.get(_PART_IDS["beak"])
    if beak and beak[2]:
        for name in ("nape", "crown", "tail"):
            ref = parts.get(_PART_IDS[name])
            if ref and ref[2] and ref[0] != beak[0]:
                return int(beak[0] > ref[0])
    left = parts.get(_PART_IDS["left_eye"], (0, 0, False))[2]
    right = parts.get(_PART_IDS["right_eye"], (0, 0, False))[2]
    return 1 if (right and not left) else 0


class CubSource(base.DatasetSource):
    """Args: manual_dir, image_size, caption_length, min_word_count, latents_file, split_seed."""

    builder_name = "cub_image_captions"

    def __init__(self, manual_dir: str, *, image_size: int = 64, caption_length: int = 32,
                 min_word_count: int = 3, latents_file: str = "", split_seed: int = 0):
        self.manual_dir = manual_dir
        self.image_size = image_size
        self.caption_length = caption_length
        self.min_word_count = min_word_count
        self.latents_file = latents_file
        self.split_seed = split_seed
        self._records: list[dict[str, Any]] | None = None
        self._split_of: dict[str, np.ndarray] = {}
        self._vocab: list[str] = []
        self._latents: dict[int, np.ndarray] = {}
        self._info: DatasetInfo | None = None

    @classmethod
    def from_options(cls, options) -> "CubSource":
        if not options.manual_dir:
            raise sources.MissingSourceError(
                "data.manual_dir is empty; CUB needs manual files (see idmvae_jax/data/builders/"
                "cub.py): CUB_200_2011/ from https://www.vision.caltech.edu/datasets/cub_200_2011/, "
                f"text_c10/ from Reed et al. (cvpr2016_cub), and {GROUPS_FILE}.")
        manual = os.path.abspath(os.path.expanduser(options.manual_dir))
        latents = options.cub_latents_file
        if latents and not os.path.isabs(latents):
            latents = os.path.join(manual, latents)
        return cls(manual, image_size=options.resolved_image_size,
                   caption_length=options.cub_caption_length,
                   min_word_count=options.cub_min_word_count, latents_file=latents,
                   split_seed=options.cub_split_seed)

    # ------------------------------------------------------------------------------ locations
    @property
    def source_path(self) -> str:
        return self.manual_dir

    def _cub(self, *parts: str) -> str:
        return os.path.join(self.manual_dir, "CUB_200_2011", *parts)

    def _text_dir(self) -> str:
        found = sources.first_existing([os.path.join(self.manual_dir, "text_c10"),
                                        os.path.join(self.manual_dir, "cvpr2016_cub", "text_c10")])
        if found is None:
            raise sources.MissingSourceError(
                f"expected folder {os.path.join(self.manual_dir, 'text_c10')} does not exist. Get the "
                "CUB captions of Reed et al. 2016 (cvpr2016_cub, text_c10/) and place them there.")
        return found

    def source_files(self) -> list[str]:
        files = [self._cub(n) for n in ("images.txt", "image_class_labels.txt", "classes.txt")]
        files += [self._cub("parts", "part_locs.txt"), os.path.join(self.manual_dir, GROUPS_FILE),
                  self._cub("images"), self._text_dir()]
        return files + ([self.latents_file] if self.latents_file else [])

    def cache_params(self) -> dict[str, Any]:
        return dict(image_size=self.image_size, caption_length=self.caption_length,
                    min_word_count=self.min_word_count, latents_file=self.latents_file,
                    split_seed=self.split_seed)

    # ----------------------------------------------------------------------------- validation
    def _table(self, path: str, columns: int) -> list[list[str]]:
        sources.require_file(path, "It is part of CUB_200_2011.tgz from "
                                   "https://www.vision.caltech.edu/datasets/cub_200_2011/; extract "
                                   f"it into {self.manual_dir}.")
        rows = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < columns:
                    raise DataError(f"{path}:{number}: expected {columns} fields, got {line!r}")
                rows.append(fields)
        return rows

    def validate(self) -> None:
        paths = {int(f[0]): f[1] for f in self._table(self._cub("images.txt"), 2)}
        text_dir = self._text_dir()
        groups_path = os.path.join(self.manual_dir, GROUPS_FILE)
        groups = {f[0]: int(f[1]) for f in self._table_groups(groups_path)}
        classes = {int(f[0]): f[1] for f in self._table(self._cub("classes.txt"), 2)}
        image_class = {int(f[0]): int(f[1]) for f in self._table(self._cub("image_class_labels.txt"), 2)}
        unknown = sorted(set(groups) - set(classes.values()))
        if unknown:
            raise DataError(f"{groups_path}: species {unknown} are not in {self._cub('classes.txt')}")
        parts: dict[int, dict[int, tuple[float, float, bool]]] = collections.defaultdict(dict)
        for f in self._table(self._cub("parts", "part_locs.txt"), 5):
            parts[int(f[0])][int(f[1])] = (float(f[2]), float(f[3]), f[4] == "1")
        species = sorted(groups)
        records = []
        for image_id in sorted(paths):
            name = classes[image_class[image_id]]
            if name not in groups:
                continue
            rel = paths[image_id]
            image_path = self._cub("images", rel)
            sources.require_file(image_path, f"It is listed in {self._cub('images.txt')}; re-extract "
                                             "CUB_200_2011.tgz.")
            text_path = os.path.join(text_dir, os.path.splitext(rel)[0] + ".txt")
            sources.require_file(text_path, f"Captions come from Reed et al. (text_c10/); place them "
                                            f"under {text_dir}.")
            with open(text_path, encoding="utf-8") as handle:
                captions = [line.strip() for line in handle if line.strip()]
            if len(captions) < CAPTIONS_PER_IMAGE:
                raise DataError(f"{text_path} has {len(captions)} captions, expected "
                                 f"{CAPTIONS_PER_IMAGE}")
            records.append(dict(image_id=image_id, path=image_path, group=groups[name],
                                species=species.index(name), captions=captions[:CAPTIONS_PER_IMAGE],
                                head=head_direction(parts.get(image_id, {}))))
        if not records:
            raise DataError(f"no CUB image belongs to a species listed in {groups_path}")
        self._assign_splits(records)
        train_captions = [c for i in self._split_of["train"] for c in records[i]["captions"]]
        self._vocab = build_vocab(train_captions, self.min_word_count)
        self._records = records
        first_view = ViewInfo(kind="image", shape=(self.image_size, self.image_size, 3),
                              dtype="uint8", has_private_label=True)
        if self.latents_file:
            first_view = self._load_latents(records)
        caption_view = ViewInfo(kind="caption", shape=(self.caption_length,), dtype="int32",
                                vocab_size=len(self._vocab))
        self._info = DatasetInfo(
            name="cub", views=(first_view, caption_view),
            num_shared_classes=max(groups.values()) + 1, num_private_classes=2,
            splits={s: int(v.size) * CAPTIONS_PER_IMAGE for s, v in self._split_of.items()},
            shared_label_name="group", private_label_name="head_direction", extra_keys=("species",))

    def _table_groups(self, path: str) -> list[list[str]]:
        sources.require_file(path, f"Write the CUBICC grouping there: one line per species, "
                                   f"'<class folder, e.g. 002.Laysan_Albatross> <group id 0..7>'.")
        rows = self._table(path, 2)
        for f in rows:
            if not f[1].isdigit():
                raise DataError(f"{path}: group id {f[1]!r} of {f[0]} is not a non-negative integer")
        return rows

    def _assign_splits(self, records: list[dict[str, Any]]) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([self.split_seed, 7]))
        by_species = collections.defaultdict(list)
        for i, record in enumerate(records):
            by_species[record["species"]].append(i)
        split_of = {"train": [], "val": [], "test": []}
        for s in sorted(by_species):
            members = rng.permutation(by_species[s])
            n_train = int(round(SPLIT_FRACTIONS[0] * len(members)))
            n_val = int(round(SPLIT_FRACTIONS[1] * len(members)))
            split_of["train"] += members[:n_train].tolist()
            split_of["val"] += members[n_train:n_train + n_val].tolist()
            split_of["test"] += members[n_train + n_val:].tolist()
        self._split_of = {k: np.sort(np.array(v, dtype=np.int64)) for k, v in split_of.items()}

    def _load_latents(self, records) -> ViewInfo:
        data = np.load(sources.require_file(
            self.latents_file, "Set data.cub_latents_file to an .npz with image_id (N,) and latent "
                               "(N, 4, 32, 32) computed by a Stable-Diffusion VAE, or leave it empty."))
        if "image_id" not in data or "latent" not in data:
            raise DataError(f"{self.latents_file} must hold arrays image_id (N,) and latent (N, ...)")
        latent = np.asarray(data["latent"], dtype=np.float32)
        ids = np.asarray(data["image_id"])
        if latent.shape[0] != ids.shape[0] or latent.ndim < 2:
            raise DataError(f"{self.latents_file}: latent {latent.shape} and image_id {ids.shape} "
                             "must have the same first dimension")
        self._latents = {int(i): latent[k] for k, i in enumerate(ids)}
        missing = [r["image_id"] for r in records if r["image_id"] not in self._latents]
        if missing:
            raise DataError(f"{self.latents_file} lacks latents for {len(missing)} images, e.g. "
                             f"image_id {missing[:5]}")
        return ViewInfo(kind="latent", shape=latent.shape[1:], dtype="float32", has_private_label=True)

    # ---------------------------------------------------------------------------- generation
    def dataset_info(self) -> DatasetInfo:
        assert self._info is not None, "validate() first"
        return self._info

    def extra_features(self):
        return {"species": tfds.features.Tensor(shape=(), dtype=np.int32)}

    def generate(self, split: str):
        assert self._records is not None, "validate() first"
        word_ids = {w: i for i, w in enumerate(self._vocab)}
        key = 0
        for record_index in self._split_of[split]:
            record = self._records[record_index]
            if self.latents_file:
                first = self._latents[record["image_id"]]
            else:
                with Image.open(record["path"]) as image:
                    pixels = np.asarray(image.convert("RGB").resize(
                        (self.image_size, self.image_size), Image.Resampling.BILINEAR))
                first = images.encode_png(pixels)
            for caption in record["captions"]:
                yield key, {"x_0": first,
                            "x_1": encode_caption(caption, word_ids, self.caption_length),
                            "y_shared": record["group"],
                            "y_private": np.array([record["head"], -1], dtype=np.int32),
                            "species": record["species"], "index": key}
                key += 1

    def write_extras(self, directory: str) -> None:
        with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as handle:
            json.dump(self._vocab, handle)


@base.register_builder
class CubImageCaptions(base.SourceBuilder, skip_registration=True):
    """CUB image–captions (CUBICC grouping); see the module docstring."""

    name = "cub_image_captions"
