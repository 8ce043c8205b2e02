"""The benchmark's inputs: the data views of a config, read from the config alone, and random
batches of them. The benchmark never opens or prepares a dataset.

`config_views` is the one place that knows which views a dataset name has without its files (the
data layer learns a dataset's views by preparing it: `data.get_dataset_info`). Datasets whose view
shapes come from files (npz, tcga, cub with data.cub_latents_file) cannot be described here.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

# Nominal caption vocabulary of CUB when no prepared dataset is read (the real size depends on
# data.cub_min_word_count and the captions; only the one-hot width of the caption networks).
CUB_NOMINAL_VOCAB = 1590


class BenchView(NamedTuple):
    """What `build_idmvae_config` needs of a data view (a DatasetInfo ViewInfo look-alike)."""

    kind: str
    shape: tuple
    dtype: str
    vocab_size: Optional[int] = None


def config_views(config, vocab_size: int = CUB_NOMINAL_VOCAB) -> tuple:
    """The data views of `config` from the config alone (no dataset is read or prepared).

    polymnist_quadrant[_embedded]: data.num_views (0 = 5) images (S, S, 3), S = data.image_size
    (0 = 64); polymnist: 5 images (28, 28, 3); cub: an image (S, S, 3) and a caption
    (data.cub_caption_length,) of `vocab_size` tokens. npz, tcga and cub with latents take their
    shapes from files: ValueError.
    """
    data = config.data
    name = data.name
    n_select = int(data.get("num_views", 0) or 0)
    if name.startswith("polymnist_quadrant"):
        size = int(data.image_size or 64)
        views = (BenchView("image", (size, size, 3), "uint8"),) * 5
    elif name == "polymnist":
        views = (BenchView("image", (28, 28, 3), "uint8"),) * 5
    elif name == "cub":
        if data.get("cub_latents_file", ""):
            raise ValueError("cub with data.cub_latents_file takes the latent shape from that file; "
                             "the benchmark never reads data: benchmark cub without latents")
        size = int(data.image_size or 64)
        views = (BenchView("image", (size, size, 3), "uint8"),
                 BenchView("caption", (int(data.cub_caption_length),), "int32", int(vocab_size)))
    else:
        raise ValueError(
            f"data.name={name!r}: its views' kinds and shapes come from the data files "
            f"(data.path), and the benchmark never reads a dataset, so it cannot benchmark this "
            f"config; benchmark a config whose shapes are in the config (polymnist_quadrant, "
            f"polymnist, cub)")
    if n_select:
        if n_select > len(views):
            raise ValueError(f"data.num_views={n_select} but {name} has {len(views)} views")
        views = views[:n_select]
    return views


def random_batch(views, batch_size: int, seed: int = 0) -> dict:
    """{"x": [x_0, ...]}: random numpy arrays of each view's shape and dtype (what loss_fn reads)."""
    rng = np.random.default_rng(seed)
    xs = []
    for v in views:
        shape = (batch_size, *v.shape)
        if v.kind == "image":
            xs.append(rng.integers(0, 256, shape, dtype=np.uint8))
        elif v.kind == "caption":
            xs.append(rng.integers(0, v.vocab_size, shape, dtype=np.int32))
        else:
            xs.append(rng.standard_normal(shape, dtype=np.float32))
    return {"x": xs}
