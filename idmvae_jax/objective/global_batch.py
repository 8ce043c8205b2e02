"""The global batch seen from one device (SPEC 5b): positions, all-gathers and the batch roll.

Identity on one device or under jit with sharded global arrays; all-gathers under pmap, where each
device holds a shard: InfoNCE negatives and the cycle term's roll then span the global batch at a
cost of O(M B_global dim) memory and one all-gather per term.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def roll_batch(x: jax.Array, axis: int = 1) -> jax.Array:
    """roll_B(x, 1): example b receives example b-1's code (b = 0 receives the last one)."""
    return jnp.roll(x, 1, axis=axis)


class GlobalBatch:
    """Global-batch helpers over the pmap axis `axis_name` (None: one device or jit)."""

    def __init__(self, axis_name: Optional[str] = None):
        self.axis_name = axis_name

    def positions(self, local_batch: int) -> jax.Array:
        """Global positions (B_local,) of this device's examples in the global batch."""
        offset = 0 if self.axis_name is None else jax.lax.axis_index(self.axis_name) * local_batch
        return offset + jnp.arange(local_batch)

    def gather(self, x: jax.Array, axis: int) -> jax.Array:
        """The global batch of x along `axis` (tiled all-gather)."""
        if self.axis_name is None:
            return x
        return jax.lax.all_gather(x, self.axis_name, axis=axis, tiled=True)

    def local(self, x_global: jax.Array, axis: int, local_batch: int) -> jax.Array:
        """This device's slice of a global-batch array."""
        if self.axis_name is None:
            return x_global
        start = jax.lax.axis_index(self.axis_name) * local_batch
        return jax.lax.dynamic_slice_in_dim(x_global, start, local_batch, axis=axis)

    def roll(self, x: jax.Array, axis: int) -> jax.Array:
        """roll_B over the global batch (crosses device boundaries under pmap)."""
        return self.local(roll_batch(self.gather(x, axis), axis), axis, x.shape[axis])
