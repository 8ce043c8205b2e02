"""Config name → DatasetSource."""
from __future__ import annotations

import os

from idmvae_jax.data.builders import base
from idmvae_jax.data.options import DataOptions
from idmvae_jax.errors import DataError


def make_source(options: DataOptions) -> base.DatasetSource:
    """The source for `options.name`, with paths resolved (see `idmvae_jax.data` for fields)."""
    name = options.name
    if name == "polymnist_quadrant_embedded" or (
            name == "polymnist_quadrant" and options.mnist_source == "embedded"):
        from idmvae_jax.data.builders.polymnist_quadrant import PolymnistQuadrantSource

        return PolymnistQuadrantSource(digits="embedded", image_size=options.resolved_image_size,
                                       num_repetitions=options.num_repetitions, seed=options.seed,
                                       name=name, digit_size=options.digit_size)
    if name == "polymnist_quadrant":
        from idmvae_jax.data.builders.polymnist_quadrant import PolymnistQuadrantSource, fetch_mnist

        # manual_dir, when set, must hold the idx files (validate() names any missing one);
        # without it the files are downloaded once into <cache_root>/downloads/mnist.
        idx_dir = options.manual_dir or fetch_mnist(options)
        return PolymnistQuadrantSource(digits="idx", idx_dir=idx_dir,
                                       image_size=options.resolved_image_size,
                                       num_repetitions=options.num_repetitions, seed=options.seed,
                                       name=name, digit_size=options.digit_size)
    if name == "polymnist":
        from idmvae_jax.data.builders.polymnist import PolymnistSource

        return PolymnistSource.from_options(options)
    if name == "cub":
        from idmvae_jax.data.builders.cub import CubSource

        return CubSource.from_options(options)
    if name == "tcga":
        from idmvae_jax.data.builders.tcga import TcgaSource

        return TcgaSource(folder=os.path.abspath(os.path.expanduser(options.path)),
                          split_index=options.tcga_split)
    if name == "npz":
        from idmvae_jax.data.builders.multimodal_npz import MultimodalNpzSource

        return MultimodalNpzSource(folder=os.path.abspath(os.path.expanduser(options.path)),
                                   latent_views=options.latent_view_indices)
    raise DataError(f"unknown dataset {name!r}")
