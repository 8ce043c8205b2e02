"""Every per-example random draw of one step as a function of (key, global example position).

SPEC 5b: one global batch gives the same loss on one device, on a mesh under jit, or under pmap,
because example b's draws depend only on fold_in(key, b's global position). Each loss term declares
the draws it needs as named `Draw`s; `draw_example_noise` cuts one stream of uniforms per example
into those pieces, in declaration order, and maps each by its inverse CDF.
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp


class Draw(NamedTuple):
    """One named draw: its per-example `shape`, its `transform` ('normal', 'laplace' or
    'timestep', an int in [0, T)), and `axes`, the permutation of the drawn (B, *shape) array into
    the returned layout (None: the batch axis second, (M, B, ...) for a per-view draw)."""

    shape: tuple
    transform: str
    axes: Optional[tuple] = None


def _open_unit_uniform(key: jax.Array, n: int) -> jax.Array:
    """(n,) float32 uniforms on the open interval (0, 1): (k + 1/2) 2^-23 for a random 23-bit k.

    Midpoints never reach 0 or 1 (nor round to them after 2u - 1), so every inverse CDF below stays
    finite: the normal tail ends at +-5.29, the Laplace one at +-15.9.
    """
    k = jax.random.bits(key, (n,), jnp.uint32) >> 9
    return (k.astype(jnp.float32) + 0.5) * (2.0 ** -23)


def _from_uniform(u: jax.Array, transform: str, num_timesteps: int) -> jax.Array:
    """Inverse-CDF transform of U(0, 1) draws: standard normal, standard Laplace, or a step in [0, T)."""
    if transform == "normal":
        return jax.scipy.special.ndtri(u)
    if transform == "laplace":
        c = u - 0.5
        return -jnp.sign(c) * jnp.log1p(-2.0 * jnp.abs(c))
    if transform == "timestep":
        return jnp.minimum(jnp.floor(u * num_timesteps), num_timesteps - 1).astype(jnp.int32)
    raise ValueError(f"unknown draw transform {transform!r}; use 'normal', 'laplace' or 'timestep'")


def draw_example_noise(key: jax.Array, positions: jax.Array, draws: dict, num_timesteps: int = 1) -> dict:
    """The draws of one step: name -> array laid out by its `Draw.axes`.

    positions: (B,) global example positions. For each example one stream of uniforms on (0, 1) is
    drawn from fold_in(key, position) (one generator call keeps compile times short) and cut into
    the named pieces in the order of `draws`. num_timesteps: T of the 'timestep' draws.
    """
    sizes = [math.prod(d.shape) for d in draws.values()]

    def one_example(i):
        u = _open_unit_uniform(jax.random.fold_in(key, i), sum(sizes))
        pieces = jnp.split(u, list(itertools.accumulate(sizes))[:-1])
        return {
            name: _from_uniform(piece, d.transform, num_timesteps).reshape(d.shape)
            for piece, (name, d) in zip(pieces, draws.items())
        }

    per_example = jax.vmap(one_example)(positions)  # leading B axis
    out = {}
    for name, d in draws.items():
        axes = d.axes or (1, 0, *range(2, len(d.shape) + 1))
        out[name] = per_example[name].transpose(axes)
    return out
