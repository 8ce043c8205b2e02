"""The views of a dataset from its config alone: no file is read and nothing is prepared.

`describe_views(config.data)` is what a model, a benchmark or a restore target needs of the data
(each view's kind, shape and dtype) for the datasets whose shapes the config fixes; preparing the
dataset (`data.get_dataset_info`) gives the same views with the label spaces and split sizes.
Datasets whose view shapes come from files (npz, tcga, cub with data.cub_latents_file) raise
ValueError.
"""
from __future__ import annotations

from idmvae_jax.data.info import ViewInfo

# Nominal caption vocabulary of CUB when no prepared dataset is read (the real size depends on
# data.cub_min_word_count and the captions; only the one-hot width of the caption networks).
CUB_NOMINAL_VOCAB = 1590


def describe_views(data_cfg, vocab_size: int = CUB_NOMINAL_VOCAB) -> tuple:
    """The ViewInfo of every view `data_cfg` selects.

    polymnist_quadrant[_embedded]: 5 images (S, S, 3), S = data.image_size (0 = 64); polymnist: 5
    images (28, 28, 3); cub: an image (S, S, 3) and a caption (data.cub_caption_length,) of
    `vocab_size` tokens. data.num_views (0 = all) keeps the first views.
    """
    name = data_cfg.name
    n_select = int(data_cfg.get("num_views", 0) or 0)
    if name.startswith("polymnist_quadrant"):
        size = int(data_cfg.image_size or 64)
        views = (ViewInfo("image", (size, size, 3), "uint8", has_private_label=True),) * 5  # the quadrant
    elif name == "polymnist":
        views = (ViewInfo("image", (28, 28, 3), "uint8"),) * 5
    elif name == "cub":
        if data_cfg.get("cub_latents_file", ""):
            raise ValueError("cub with data.cub_latents_file takes the latent shape from that file; "
                             "describe cub without latents, or prepare the data (data.get_dataset_info)")
        size = int(data_cfg.image_size or 64)
        views = (ViewInfo("image", (size, size, 3), "uint8", has_private_label=True),  # head direction
                 ViewInfo("caption", (int(data_cfg.cub_caption_length),), "int32", int(vocab_size)))
    else:
        raise ValueError(
            f"data.name={name!r}: its views' kinds and shapes come from the data files (data.path), "
            f"so the config alone cannot describe them; prepare the data (data.get_dataset_info), or "
            f"use a config whose shapes are in the config (polymnist_quadrant, polymnist, cub)")
    if n_select:
        if n_select > len(views):
            raise ValueError(f"data.num_views={n_select} but {name} has {len(views)} views")
        views = views[:n_select]
    return views
