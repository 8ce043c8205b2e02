"""Labelled image grids (Pillow): the one figure layout of the dataset preview, the training
sample grids and the evaluation report.

A figure is a grid of cells with a label on the left of every row and labels above the columns,
per column, per block of columns, or both; an optional title goes on top. Cells smaller than
`MIN_CELL` pixels are enlarged by pixel repetition (a 32 px view is drawn at 64 px). Labels are
ASCII: Pillow's built-in font has no arrows or Greek letters.

  labelled_grid        any cells, any labels -> PIL image
  reconstruction_grid  rows = views; blocks "input", "reconstruction"
  cross_grid           rows = source views; blocks "input", "to view d" for every target d
  sample_grid          rows = views; columns = joint samples (a column shares one z)
  to_float             PIL image -> (H, W, 3) float32 in [0, 1] (TensorBoard's image format)

The view arguments are lists indexed by view number (x[v]: (N, h, w) or (N, h, w, 1 | 3), uint8
or floats in [0, 1]); `views` picks the (drawable, `is_drawable`) views to show, in order.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from idmvae_jax.data import images

MIN_CELL = 64  # px: the longer side of a cell on screen is at least this
FONT_SIZE = 14
_PAD, _MARGIN = 2, 6  # px between cells; around labels


def font(size: int = FONT_SIZE):
    """Pillow's built-in font at `size` px (its fixed 11 px bitmap font before Pillow 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def is_drawable(kind: str, shape: Sequence[int]) -> bool:
    """Image views with 1 or 3 channels (or none) can be drawn."""
    return kind == "image" and (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3)))


def _text_size(text: str, fnt) -> tuple:
    if not text:
        return 0, 0
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=fnt)
    return box[2], box[3]


def labelled_grid(cells, row_labels: Sequence[str], col_labels: Sequence[str] = (),
                  block_labels: Sequence[str] = (), *, block: int = 0, title: str = "",
                  scale: Optional[int] = None) -> Image.Image:
    """Pastes cells[r][c] (uint8 (h, w, 3), or None for an empty cell) into one labelled RGB image.

    row_labels: one (possibly multi-line) string per row, drawn left of the row. col_labels: ''
    or one string per column. block_labels: one string per block of `block` columns (blocks are
    set apart by a wider gap and underlined). scale: the pixel repetition of the cells (None: the
    smallest that makes a cell's longer side >= MIN_CELL). Returns an RGB image of height
    labels + R (h scale + pad) + margin and width labels + C (w scale + pad) + block gaps + margin,
    where (h, w) is the largest cell.
    """
    fnt = font()
    ch = max(c.shape[0] for r in cells for c in r if c is not None)
    cw = max(c.shape[1] for r in cells for c in r if c is not None)
    if scale is None:
        scale = max(1, int(math.ceil(MIN_CELL / max(ch, cw))))
    ch, cw = ch * scale, cw * scale
    cols = max(len(r) for r in cells)
    line = _text_size("Ag", fnt)[1] + 4
    # columns at least as wide as their labels, blocks as theirs
    pad = max([_PAD] + [_text_size(t, fnt)[0] + 4 - cw for t in col_labels])
    gap = spill = 0  # spill: how far the widest block label reaches past its block on each side
    if block:
        need = max((_text_size(t, fnt)[0] for t in block_labels), default=0) + 2 * _MARGIN
        gap = max(3 * _MARGIN, need - block * (cw + pad))
        spill = max(0, need - block * (cw + pad)) // 2
    left = max(max(_text_size(t, fnt)[0] for t in row_labels) + 2 * _MARGIN, spill)
    y_title = _MARGIN
    y_blocks = y_title + (line if title else 0)
    y_cols = y_blocks + (line + 4 if any(block_labels) else 0)
    top = y_cols + (line if any(col_labels) else 0)
    right = max(_MARGIN, spill, _text_size(title, fnt)[0] + 2 * _MARGIN
                - (left + cols * (cw + pad) + ((cols - 1) // block if block else 0) * gap))
    img = Image.fromarray(images.tile(cells, pad=pad, scale=scale, top=top, left=left, bottom=_MARGIN,
                                      right=right, gap_every=block, gap=gap))
    draw = ImageDraw.Draw(img)
    black = (0, 0, 0)

    def x_of(c):  # left edge of column c
        return left + c * (cw + pad) + (c // block if block else 0) * gap

    if title:
        draw.text((_MARGIN, y_title), title, fill=black, font=fnt)
    for r, text in enumerate(row_labels):
        h = _text_size(text, fnt)[1]
        draw.multiline_text((_MARGIN, top + r * (ch + pad) + (ch - h) // 2), text, fill=black, font=fnt)
    for b, text in enumerate(block_labels):
        if text:
            x0, x1 = x_of(b * block), x_of((b + 1) * block - 1) + cw
            w = _text_size(text, fnt)[0]
            draw.text(((x0 + x1 - w) // 2, y_blocks), text, fill=black, font=fnt)
            draw.line([(x0, y_blocks + line), (x1, y_blocks + line)], fill=(120, 120, 120), width=1)
    for c, text in enumerate(col_labels):
        if text:
            w = _text_size(text, fnt)[0]
            draw.text((x_of(c) + (cw - w) // 2, y_cols), text, fill=black, font=fnt)
    return img


def to_float(image: Image.Image) -> np.ndarray:
    """A figure as (H, W, 3) float32 in [0, 1] (what `MetricWriter.write_image` takes)."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _first(x, n: int) -> list:
    return [images.to_uint8_rgb(x[i]) for i in range(n)]


def reconstruction_grid(inputs, reconstructions, views: Sequence[int], num: Optional[int] = None,
                        title: str = "") -> Optional[Image.Image]:
    """Rows = views; column blocks "input" (x_v) and "reconstruction" (the decoded x_v).

    inputs[v], reconstructions[v]: (N, ...) of view v; the first `num` (default all) are drawn.
    None when `views` is empty.
    """
    views = list(views)
    if not views:
        return None
    k = min(len(inputs[v]) for v in views)
    k = min(k, num) if num else k
    cells = [_first(inputs[v], k) + _first(reconstructions[v], k) for v in views]
    return labelled_grid(cells, [f"view {v}" for v in views], block_labels=["input", "reconstruction"],
                         block=k, title=title)


def cross_grid(sources, cross, views: Sequence[int], num: int = 4, title: str = "") -> Optional[Image.Image]:
    """Rows = source views e ("from view e"); column blocks "input" (x_e), then "to view d" for
    every target d (generated e -> d).

    sources[e]: (N, ...) inputs of view e; cross[e][d]: (N, ...) generated from e for view d; the
    first `num` of each are drawn. None when `views` is empty.
    """
    views = list(views)
    if not views:
        return None
    k = min(num, *(len(cross[e][d]) for e in views for d in views), *(len(sources[e]) for e in views))
    cells = []
    for e in views:
        row = _first(sources[e], k)
        for d in views:
            row += _first(cross[e][d], k)
        cells.append(row)
    return labelled_grid(cells, [f"from view {e}" for e in views],
                         block_labels=["input"] + [f"to view {d}" for d in views], block=k, title=title)


def sample_grid(samples, views: Sequence[int], title: str = "") -> Optional[Image.Image]:
    """Rows = views; columns "sample i" = joint samples (sample i of every view shares one z).

    samples[v]: (N, ...) of view v. None when `views` is empty.
    """
    views = list(views)
    if not views:
        return None
    k = min(len(samples[v]) for v in views)
    cells = [_first(samples[v], k) for v in views]
    return labelled_grid(cells, [f"view {v}" for v in views], [f"sample {i}" for i in range(k)],
                         title=title)
