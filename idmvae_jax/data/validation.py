"""Checks on user-supplied arrays, raising ValueError that says what is wrong and what is expected.

Run before anything is cached or trained, so bad data fails at start-up rather than mid-run.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from idmvae_jax.data.info import ViewInfo
from idmvae_jax.errors import DataError

_VIEW_RULES = ("x_m arrays must be uint8 images N×H×W×C (C in 1, 3, 4), float vectors N×D, "
               "float latents N×d1×...×dk, or integer caption tokens N×L")


def view_keys(arrays: Mapping[str, np.ndarray], where: str) -> list[str]:
    """The keys x_0..x_{M-1}, checking they are contiguous and that there are at least 2."""
    names = sorted((k for k in arrays if k.startswith("x_")), key=lambda k: (len(k), k))
    expected = [f"x_{m}" for m in range(len(names))]
    if names != expected:
        raise DataError(f"{where}: view arrays must be named x_0..x_{{M-1}} without gaps, found "
                         f"{names}")
    if len(names) < 2:
        raise DataError(f"{where}: a multimodal dataset needs at least 2 views (x_0, x_1), "
                         f"found {len(names)}")
    return names


def infer_view(array: np.ndarray, where: str, name: str, latent: bool = False) -> ViewInfo:
    """The ViewInfo of one view array (N, ...) — see `_VIEW_RULES`.

    A float array shaped like images (N×H×W×C, C in 1, 3, 4) could be images or latent codes:
    it is an error unless `latent` says it is a latent (`data.latent_views`), never a guess."""
    shape = tuple(array.shape[1:])
    if array.dtype == np.uint8:
        if array.ndim != 4 or shape[-1] not in (1, 3, 4):
            raise DataError(f"{where}: {name} is uint8 with shape {array.shape}; uint8 views are "
                             f"images and must be N×H×W×C with C in (1, 3, 4)")
        return ViewInfo(kind="image", shape=shape, dtype="uint8")
    if np.issubdtype(array.dtype, np.floating):
        if array.ndim < 2:
            raise DataError(f"{where}: {name} has shape {array.shape}; {_VIEW_RULES}")
        if not np.all(np.isfinite(array)):
            raise DataError(f"{where}: {name} contains NaN or infinite values")
        if array.ndim == 4 and shape[-1] in (1, 3, 4) and not latent:
            lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
            raise DataError(
                f"{where}: {name} is {array.dtype} shaped like images (N×H×W×C = {array.shape}, values "
                f"in [{lo:.4g}, {hi:.4g}]), which could be images or latent codes. Store images as uint8 "
                f"0-255 (e.g. numpy.clip(x, 0, 255).astype(numpy.uint8), or (x * 255).round() for "
                f"floats in [0, 1]); if {name} is a latent code, say so with "
                f"--config.data.latent_views={name[2:]}")
        return ViewInfo(kind="vector" if array.ndim == 2 else "latent", shape=shape, dtype="float32")
    if np.issubdtype(array.dtype, np.integer):
        if array.ndim != 2:
            raise DataError(f"{where}: {name} is {array.dtype} with shape {array.shape}; {_VIEW_RULES}")
        if array.size and array.min() < 0:
            raise DataError(f"{where}: {name} caption tokens must be >= 0")
        return ViewInfo(kind="caption", shape=shape, dtype="int32",
                        vocab_size=int(array.max()) + 1 if array.size else 1)
    raise DataError(f"{where}: {name} has dtype {array.dtype}; {_VIEW_RULES}")


def check_labels(labels: np.ndarray, num_examples: int, where: str, name: str,
                 num_columns: int | None = None) -> np.ndarray:
    """Checks integer labels >= 0 with N rows (and `num_columns` columns); returns them as int32."""
    expected = (num_examples,) if num_columns is None else (num_examples, num_columns)
    if labels.shape != expected:
        raise DataError(f"{where}: {name} has shape {labels.shape}, expected {expected}"
                         + ("" if num_columns is None else " (one private label per view)"))
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"{where}: {name} must hold integer class ids, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise DataError(f"{where}: {name} has negative class id {int(labels.min())}; class ids "
                         "must be 0..K-1")
    return labels.astype(np.int32)


def check_same_views(reference: Sequence[ViewInfo], other: Sequence[ViewInfo], where: str,
                     reference_where: str) -> None:
    """Raises when two splits disagree on the number, kind or shape of the views."""
    if len(reference) != len(other):
        raise DataError(f"{where} has {len(other)} views but {reference_where} has {len(reference)}")
    for m, (a, b) in enumerate(zip(reference, other)):
        if (a.kind, a.shape) != (b.kind, b.shape):
            raise DataError(f"{where}: x_{m} is a {b.kind} of shape {b.shape} but in "
                             f"{reference_where} a {a.kind} of shape {a.shape}")


def check_class_count(labels: np.ndarray, num_classes: int, where: str, name: str) -> None:
    """Raises when labels fall outside 0..num_classes-1 (e.g. a test class never seen in train)."""
    if labels.size and labels.max() >= num_classes:
        raise DataError(f"{where}: {name} has class id {int(labels.max())} but the training split "
                         f"only has classes 0..{num_classes - 1}")
