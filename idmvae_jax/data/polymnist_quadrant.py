"""The PolyMNIST-Quadrant generator (SPEC §4), shared by the embedded and the full-size dataset.

A tuple has M views (5 in the paper). All views show a digit of the same class (the shared
factor, `y_shared`); each view independently draws its own MNIST image of that class, its quadrant
(`y_private`, quadrant labels below) and its background crop. Per view-image:

1. the 28×28 digit is resized to D×D, D = half the canvas (28→32 at 64 px, 28→16 at 32 px,
   bilinear) unless `digit_size` asks for a larger digit (S/2 < D <= S, not the paper's geometry);
2. it is pasted into a zero S×S canvas in the quadrant's corner, offset (row, col):
   label 0 → (0, S−D), 1 → (0, 0), 2 → (S−D, 0), 3 → (S−D, S−D) (the quadrants when D = S/2);
3. mask = canvas intensity > 16 (0–255 scale);
4. an S×S crop at a random position of the view's background photo (photos are scaled by S/64
   first, so a 32 px tuple looks like a 64 px tuple at half resolution) is kept outside the mask;
   inside the mask the first view paints the digit red (R = intensity, G = B = 0), the last view
   blue, the views in between invert the crop's colours (255 − c).

Tuple assembly: for every repetition, for every digit class, every view draws an independent
permutation of the same set of that class's images; the tuple order within a repetition is then
shuffled, so that the first N tuples of a split are a class-balanced sample.

Randomness is drawn up front for a whole split (`plan_tuples`) from
``SeedSequence([seed, split_code])``, so rendering can run in chunks and the bytes do not depend
on the chunk size. Everything is vectorised with numpy.
"""
from __future__ import annotations

import dataclasses
from concurrent import futures
from typing import Iterator, Sequence

import numpy as np

from idmvae_jax.data import images

MASK_THRESHOLD = 16
REFERENCE_SIZE = 64  # the paper's canvas; backgrounds are scaled by image_size / 64
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_CHUNK = 1024


def quadrant_offsets(image_size: int, digit_size: int = 0) -> np.ndarray:
    """(row, col) offsets of a digit_size (0: image_size / 2) digit in each of the 4 corners,
    indexed by quadrant label: int (4, 2)."""
    far = image_size - (digit_size or image_size // 2)
    return np.array([(0, far), (0, 0), (far, 0), (far, far)], dtype=np.int64)


def resolved_digit_size(image_size: int, digit_size: int = 0) -> int:
    """The digit's side in pixels: `digit_size`, or half the canvas when it is 0; ValueError
    outside [image_size / 2, image_size]."""
    size = int(digit_size) or image_size // 2
    if not image_size // 2 <= size <= image_size:
        raise ValueError(f"digit_size={digit_size} must be 0 (half the canvas) or in "
                         f"[{image_size // 2}, {image_size}] for a {image_size} px canvas")
    return size


def view_styles(num_views: int) -> tuple[str, ...]:
    """How each view colours the digit: 'red' (first), 'blue' (last), 'invert' (the others)."""
    if num_views < 2:
        raise ValueError(f"PolyMNIST-Quadrant needs at least 2 views, got {num_views}")
    return ("red",) + ("invert",) * (num_views - 2) + ("blue",)


@dataclasses.dataclass(frozen=True)
class TuplePlan:
    """Every random choice of one split.

    Attributes:
      digit_row: int64 (T, M), row into the split's digit arrays for each view.
      quadrant: int32 (T, M), quadrant label per view.
      crop_origin: int64 (T, M, 2), top-left (row, col) of the background crop per view.
      label: int32 (T,), the digit class of each tuple.
    """

    digit_row: np.ndarray
    quadrant: np.ndarray
    crop_origin: np.ndarray
    label: np.ndarray

    @property
    def num_tuples(self) -> int:
        return int(self.label.shape[0])


def plan_tuples(labels: np.ndarray, num_views: int, num_repetitions: int,
                background_shapes: Sequence[tuple[int, int]], image_size: int,
                rng: np.random.Generator) -> TuplePlan:
    """Draws the tuple assembly, quadrants and crop positions of one split.

    Args:
      labels: int (N,) digit class of each available digit image (the split's digits).
      num_views: M.
      num_repetitions: how many times each digit is used per view (T = N · repetitions).
      background_shapes: (height, width) of each view's scaled background, length M.
      image_size: S, the canvas size.
      rng: the split's generator; draws happen in a fixed order.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    reps = []
    for _ in range(num_repetitions):
        rows = np.empty((labels.size, num_views), dtype=np.int64)
        tuple_labels = np.empty(labels.size, dtype=np.int32)
        start = 0
        for c, idx in zip(classes, members):
            stop = start + idx.size
            tuple_labels[start:stop] = c
            for m in range(num_views):
                rows[start:stop, m] = rng.permutation(idx)
            start = stop
        order = rng.permutation(labels.size)
        reps.append((rows[order], tuple_labels[order]))
    digit_row = np.concatenate([r for r, _ in reps])
    label = np.concatenate([lab for _, lab in reps])
    num_tuples = label.size
    quadrant = rng.integers(0, 4, size=(num_tuples, num_views)).astype(np.int32)
    crop_origin = np.empty((num_tuples, num_views, 2), dtype=np.int64)
    for m, (height, width) in enumerate(background_shapes):
        if height < image_size or width < image_size:
            raise ValueError(
                f"background of view {m} is {height}x{width}, smaller than the {image_size} px canvas")
        crop_origin[:, m, 0] = rng.integers(0, height - image_size + 1, size=num_tuples)
        crop_origin[:, m, 1] = rng.integers(0, width - image_size + 1, size=num_tuples)
    return TuplePlan(digit_row=digit_row, quadrant=quadrant, crop_origin=crop_origin, label=label)


def scale_backgrounds(backgrounds: Sequence[np.ndarray], image_size: int) -> list[np.ndarray]:
    """Scales each uint8 (H, W, 3) photo by image_size / 64 (identity at 64 px)."""
    if image_size == REFERENCE_SIZE:
        return [np.ascontiguousarray(b) for b in backgrounds]
    scale = image_size / REFERENCE_SIZE
    out = []
    for background in backgrounds:
        height = max(int(round(background.shape[0] * scale)), image_size)
        width = max(int(round(background.shape[1] * scale)), image_size)
        out.append(images.resize_uint8(background[None], height, width)[0])
    return out


def render_view(digits: np.ndarray, quadrant: np.ndarray, background: np.ndarray,
                crop_origin: np.ndarray, style: str, image_size: int) -> np.ndarray:
    """Renders n view-images.

    Args:
      digits: uint8 (n, D, D), already resized digits (D <= S).
      quadrant: int (n,) quadrant labels.
      background: uint8 (H, W, 3), this view's scaled background photo.
      crop_origin: int (n, 2) top-left (row, col) of each crop.
      style: 'red', 'blue' or 'invert'.
      image_size: S.

    Returns:
      uint8 (n, S, S, 3).
    """
    n, size = digits.shape[0], digits.shape[1]
    canvas = np.zeros((n, image_size, image_size), dtype=np.uint8)
    for label, (row, col) in enumerate(quadrant_offsets(image_size, size)):
        selected = quadrant == label
        canvas[selected, row:row + size, col:col + size] = digits[selected]
    mask = canvas > MASK_THRESHOLD
    windows = np.lib.stride_tricks.sliding_window_view(background, (image_size, image_size), axis=(0, 1))
    crops = windows[crop_origin[:, 0], crop_origin[:, 1]].transpose(0, 2, 3, 1)  # (n, S, S, 3)
    if style == "invert":
        painted = 255 - crops
    else:
        painted = np.zeros_like(crops)
        painted[..., 0 if style == "red" else 2] = canvas
    return np.ascontiguousarray(np.where(mask[..., None], painted, crops))


def generate_examples(digits: np.ndarray, labels: np.ndarray, digit_ids: np.ndarray,
                      backgrounds: Sequence[np.ndarray], *, image_size: int, num_views: int,
                      num_repetitions: int, seed: int, split: str, digit_size: int = 0,
                      threads: int = 0) -> Iterator[tuple[int, dict]]:
    """Yields (key, example) for one split, examples ready for the TFDS builder.

    Args:
      digits: uint8 (N, 28, 28) MNIST images of the split.
      labels: int (N,) their classes.
      digit_ids: int64 (N,) their MNIST index (kept per view as `mnist_index`).
      backgrounds: M uint8 (H, W, 3) photos at the 64 px reference scale.
      image_size: 64 (paper geometry) or 32.
      num_views: M.
      num_repetitions: repetitions of the split (4 for train, 1 for val/test).
      seed: generator seed; the split's stream is SeedSequence([seed, SPLIT_CODES[split]]).
      split: 'train' | 'val' | 'test'.
      digit_size: D, the digit's side (0 = S/2, the paper's geometry).
      threads: PNG-encoding threads (0 = encode in this thread).

    Example keys: x_0..x_{M-1} PNG bytes (S, S, 3); y_shared int; y_private int32 (M,) quadrants;
    mnist_index int64 (M,); index int64 (the key, 0..T-1 in order).
    """
    resized, scaled, plan, styles = _setup(digits, labels, backgrounds, image_size, num_views,
                                           num_repetitions, seed, split, digit_size)
    digit_ids = np.asarray(digit_ids, dtype=np.int64)
    executor = futures.ThreadPoolExecutor(threads) if threads > 0 else None
    try:
        for start in range(0, plan.num_tuples, _CHUNK):
            stop = min(start + _CHUNK, plan.num_tuples)
            rows = plan.digit_row[start:stop]
            encoded = []
            for m in range(num_views):
                view = render_view(resized[rows[:, m]], plan.quadrant[start:stop, m], scaled[m],
                                   plan.crop_origin[start:stop, m], styles[m], image_size)
                encoded.append(images.encode_png_batch(view, executor))
            for i in range(stop - start):
                key = start + i
                example = {f"x_{m}": encoded[m][i] for m in range(num_views)}
                example["y_shared"] = int(plan.label[key])
                example["y_private"] = plan.quadrant[key].astype(np.int32)
                example["mnist_index"] = digit_ids[rows[i]]
                example["index"] = key
                yield key, example
    finally:
        if executor is not None:
            executor.shutdown()


def render_tuples(digits: np.ndarray, labels: np.ndarray, backgrounds: Sequence[np.ndarray], *,
                  image_size: int, num_views: int, num_repetitions: int, seed: int,
                  split: str, digit_size: int = 0) -> tuple[list[np.ndarray], TuplePlan]:
    """The images of a split as arrays, M × uint8 (T, S, S, 3), with their plan.

    Same pixels as `generate_examples` (arguments as there); for tests and previews.
    """
    resized, scaled, plan, styles = _setup(digits, labels, backgrounds, image_size, num_views,
                                           num_repetitions, seed, split, digit_size)
    views = [render_view(resized[plan.digit_row[:, m]], plan.quadrant[:, m], scaled[m],
                         plan.crop_origin[:, m], styles[m], image_size) for m in range(num_views)]
    return views, plan


def _setup(digits, labels, backgrounds, image_size, num_views, num_repetitions, seed, split,
           digit_size=0):
    """Resized digits, scaled backgrounds, the split's plan and the view styles."""
    if len(backgrounds) != num_views:
        raise ValueError(f"need {num_views} backgrounds, got {len(backgrounds)}")
    if image_size not in (32, 64):
        raise ValueError(f"image_size must be 64 or 32, got {image_size}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split]]))
    scaled = scale_backgrounds(backgrounds, image_size)
    size = resolved_digit_size(image_size, digit_size)
    resized = images.resize_uint8(np.asarray(digits, dtype=np.uint8), size, size)
    plan = plan_tuples(labels, num_views, num_repetitions, [b.shape[:2] for b in scaled],
                       image_size, rng)
    return resized, scaled, plan, view_styles(num_views)
