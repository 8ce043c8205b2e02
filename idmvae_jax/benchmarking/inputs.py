"""The benchmark's inputs: the data views of a config, read from the config alone
(`data.describe.describe_views`, here `config_views`), and random batches of them. The benchmark
never opens or prepares a dataset.
"""
from __future__ import annotations

import numpy as np

from idmvae_jax.data.describe import CUB_NOMINAL_VOCAB, describe_views


def config_views(config, vocab_size: int = CUB_NOMINAL_VOCAB) -> tuple:
    """The data views of `config` from the config alone (`data.describe.describe_views`)."""
    return describe_views(config.data, vocab_size)


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
