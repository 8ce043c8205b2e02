"""Writes a PNG grid of dataset tuples (rows = tuples, columns = views) for a person to look at.

    python -m idmvae_jax.data.preview --config=configs/polymnist_quadrant.py:mini \\
        --out=/tmp/preview.png [--split=train] [--num_tuples=8] [--scale=2]

The dataset is the config's `data` section (with the config options of the example scripts:
--num_views, --data_dir, --set data.KEY=VALUE), so the preview reads, or builds, exactly the
cache entry a training run of that config uses. Each row is labelled on the left with the tuple's
index, its shared label and each view's private label; each column with its view. Only image views
are drawn.
"""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments
from idmvae_jax.data import figures, images
from idmvae_jax.data.pipeline import load_split

DEFAULT_CONFIG = "configs/polymnist_quadrant.py:mini"


def tuple_grid(batch: dict, num_tuples: int, scale: int = 2):
    """The labelled figure (PIL image) of the first `num_tuples` tuples of a batch: rows = tuples,
    columns = the image views (uint8 arrays (N, h, w[, C]) in batch["x"]), each cell `scale` times."""
    views = [v for v, x in enumerate(batch["x"]) if np.asarray(x).dtype == np.uint8]
    if not views:
        raise ValueError("the dataset has no image views to preview")
    n = min(num_tuples, len(batch["y_shared"]))
    cells = [[images.to_rgb(np.asarray(batch["x"][v][r])) for v in views] for r in range(n)]
    rows = []
    for r in range(n):
        text = f"#{int(batch['index'][r])} shared={int(batch['y_shared'][r])}"
        if "y_private" in batch:
            text += "\nprivate=" + ",".join(str(int(p)) for p in batch["y_private"][r])
        rows.append(text)
    return figures.labelled_grid(cells, rows, [f"view {v}" for v in views], scale=scale)


def write_preview(data_cfg, out: str, *, split: str = "train", num_tuples: int = 8,
                  scale: int = 2) -> str:
    """Renders `num_tuples` tuples of `split` of the dataset `data_cfg` (a config's `data` section)
    to the PNG file `out` (a local path or a bucket URL); returns `out`."""
    batch = load_split(data_cfg, split, max_examples=num_tuples)
    return images.save_png(out, tuple_grid(batch, num_tuples, scale=scale))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser, DEFAULT_CONFIG)
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--split", default="train")
    parser.add_argument("--num_tuples", type=int, default=8)
    parser.add_argument("--scale", type=int, default=2, help="pixel magnification")
    args = parser.parse_args(argv)
    from idmvae_jax import errors
    from idmvae_jax.flags import quiet_known_noise

    quiet_known_noise()
    config = config_from_arguments(args)
    try:
        print(write_preview(config.data, args.out, split=args.split, num_tuples=args.num_tuples,
                            scale=args.scale))
    except errors.UserError as error:  # e.g. a dataset whose source files are missing: one line
        errors.report_and_exit(error)


if __name__ == "__main__":
    main()
