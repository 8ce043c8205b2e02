"""Writes a PNG grid of dataset tuples (rows = tuples, columns = views) for a person to look at.

    python -m idmvae_jax.data.preview --config_name=polymnist_quadrant_embedded \\
        --out=/tmp/preview.png [--image_size=64] [--split=train] [--num_tuples=8] [--scale=2]

Each row is annotated on the left with the tuple's shared label and each view's private label.
Only image views are drawn.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from idmvae_jax.data.images import tile, to_rgb
from idmvae_jax.data.pipeline import load_split


def tuple_grid(batch: dict, num_tuples: int, scale: int = 2, pad: int = 2,
               label_width: int = 0) -> np.ndarray:
    """Tiles the first `num_tuples` tuples of a batch: uint8 (rows·(H+pad), label + cols·(W+pad), 3)."""
    views = [np.asarray(x[:num_tuples]) for x in batch["x"] if np.asarray(x).dtype == np.uint8]
    if not views:
        raise ValueError("the dataset has no image views to preview")
    cells = [[to_rgb(view[r]) for view in views] for r in range(views[0].shape[0])]
    return tile(cells, pad=pad, scale=scale, left=label_width + pad)


def write_preview(data_cfg, out: str, *, split: str = "train", num_tuples: int = 8,
                  scale: int = 2) -> str:
    """Renders `num_tuples` tuples of `split` to the PNG file `out`; returns `out`."""
    batch = load_split(data_cfg, split, max_examples=num_tuples)
    label_width = 150
    grid = tuple_grid(batch, num_tuples, scale=scale, label_width=label_width)
    image = Image.fromarray(grid)
    draw = ImageDraw.Draw(image)
    row_height = (grid.shape[0] - 2) // len(batch["y_shared"])
    for r in range(len(batch["y_shared"])):
        text = f"#{int(batch['index'][r])} shared={int(batch['y_shared'][r])}"
        if "y_private" in batch:
            text += "\nprivate=" + ",".join(str(int(v)) for v in batch["y_private"][r])
        draw.multiline_text((4, 4 + r * row_height), text, fill=(0, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    image.save(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config_name", default="polymnist_quadrant_embedded",
                        help="data.name of the dataset to preview")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--split", default="train")
    parser.add_argument("--num_tuples", type=int, default=8)
    parser.add_argument("--scale", type=int, default=2, help="pixel magnification")
    parser.add_argument("--path", default="", help="data.path (user folder or data directory)")
    parser.add_argument("--cache_dir", default="", help="data.cache_dir")
    parser.add_argument("--manual_dir", default="", help="data.manual_dir")
    parser.add_argument("--seed", type=int, default=0, help="data.seed (generator seed)")
    parser.add_argument("--num_repetitions", type=int, default=4, help="data.num_repetitions")
    args = parser.parse_args(argv)
    data_cfg = dict(name=args.config_name, image_size=args.image_size, path=args.path,
                    cache_dir=args.cache_dir, manual_dir=args.manual_dir, seed=args.seed,
                    num_repetitions=args.num_repetitions)
    print(write_preview(data_cfg, args.out, split=args.split, num_tuples=args.num_tuples,
                        scale=args.scale))


if __name__ == "__main__":
    main()
