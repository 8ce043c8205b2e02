"""Host-side array helpers the evaluators share: fixed-size batches and per-view labels.

Jitted functions (classifiers, Inception, a model's generators) see whole batches of one size, so
they compile once: `iterate_batches` and `map_batches` pad the last batch by repeating its last
example and drop what the padding produced. `view_labels` reads one view's labels from labels
shared by every view (N,) or given per view (N, M).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np


def pad_to(a: np.ndarray, size: int) -> np.ndarray:
    """`a` (N, ...) padded to `size` rows by repeating its last row (unchanged when N >= size)."""
    pad = size - a.shape[0]
    if pad <= 0:
        return a
    return np.concatenate([a, np.repeat(a[-1:], pad, axis=0)], axis=0)


def pad_to_multiple(a: np.ndarray, multiple: int) -> np.ndarray:
    """`a` (N, ...) padded (as `pad_to`) to the next multiple of `multiple` rows."""
    return pad_to(a, -(-a.shape[0] // multiple) * multiple)


def iterate_batches(num: int, batch_size: int, xs: Optional[Sequence[np.ndarray]] = None):
    """Yields (start, count, idx (batch_size,) int32, xs_batch or None); the last batch is padded
    by repeating its last example (count says how many are real)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, num, batch_size):
        count = min(batch_size, num - start)
        idx = pad_to(np.arange(start, start + count, dtype=np.int32), batch_size)
        xb = None if xs is None else [pad_to(np.asarray(x[start:start + count]), batch_size) for x in xs]
        yield start, count, idx, xb


def trim(tree, count: int):
    """The first `count` rows of every array of a (nested list/tuple of) array(s), as numpy."""
    if isinstance(tree, (list, tuple)):
        return [trim(t, count) for t in tree]
    return np.asarray(tree)[:count]


def map_batches(fn: Callable, x: np.ndarray, batch_size: int):
    """fn over x (N, ...), N >= 1, in batches of exactly `batch_size` rows (see
    `iterate_batches`); returns fn's output for the N real rows, concatenated: one array, or a
    tuple of arrays when fn returns a tuple."""
    outs = [trim(fn(xb[0]), count) for _, count, _, xb in iterate_batches(len(x), batch_size, [x])]
    if isinstance(outs[0], list):
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*outs))
    return np.concatenate(outs, axis=0)


def view_labels(labels, m: int, num_views: int) -> np.ndarray:
    """Labels of view m: (N,) labels are shared by every view, (N, M) are per view."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    if labels.ndim == 2 and labels.shape[1] == num_views:
        return labels[:, m]
    raise ValueError(f"labels must be (N,) or (N, {num_views}), got shape {labels.shape}")
