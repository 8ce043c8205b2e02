"""Batch arrays -> network inputs, per view kind (runs inside the jitted step).

image / latent / vector: uint8 -> x / 255, floats as they are; caption: int tokens (B, L) ->
one-hot (B, L, V) float32 (token probabilities (B, L, V) pass through). Outputs are float32.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def network_inputs(views: Sequence, xs: Sequence) -> list:
    """xs: M batch arrays (B, *shape_m); views: M descriptions with `.kind` and `.vocab_size`
    (`data.ViewInfo` or `models.specs.ViewSpec`). Returns M float32 arrays."""
    out = []
    for view, x in zip(views, xs):
        x = jnp.asarray(x)
        if view.kind == "caption":
            x = jax.nn.one_hot(x, view.vocab_size, dtype=jnp.float32) if jnp.issubdtype(x.dtype, jnp.integer) else x
        elif jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(jnp.float32) / 255.0
        out.append(x.astype(jnp.float32))
    return out
