"""Latent posteriors and priors as pure log-density / sampling functions (imports only jax).

Latent families (SPEC 1), raw scale parameter `raw` of shape (..., D):
  normal:  scale = softplus(raw) + eps
  laplace: scale = softmax(raw, over the D latent dims) * D + eps      (MMVAE+ convention)
Densities sum over the last (latent) axis:
  log N(x; m, s)   = sum_d -0.5 ((x_d - m_d)/s_d)^2 - log s_d - 0.5 log(2 pi)
  log Lap(x; m, b) = sum_d -|x_d - m_d| / b_d - log(2 b_d)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


class Posterior(NamedTuple):
    """Per-view posterior parameters, each (M, B, dim): q(w_m | x_m) q(z | x_m)."""

    mu_w: jax.Array
    scale_w: jax.Array
    mu_z: jax.Array
    scale_z: jax.Array


def latent_scale(raw: jax.Array, family: str, eps: float) -> jax.Array:
    """Maps a raw scale parameter (..., D) to a positive scale (..., D) by the family's convention."""
    if family == "normal":
        return jax.nn.softplus(raw) + eps
    if family == "laplace":
        return jax.nn.softmax(raw, axis=-1) * raw.shape[-1] + eps
    raise ValueError(f"unknown latent family {family!r}; use 'normal' or 'laplace'")


def prior_scale(dim: int, family: str, eps: float, raw: float = 0.0) -> jax.Array:
    """Scale (dim,) of the fixed priors p(z), p(w): raw scale `raw` (0) by the family's convention.

    normal: softplus(0) + eps = 0.6931...; laplace: softmax(0) * dim + eps = 1 + eps.
    """
    return latent_scale(jnp.full((dim,), raw, jnp.float32), family, eps)


def log_density(family: str, x: jax.Array, loc: jax.Array, scale: jax.Array) -> jax.Array:
    """log q(x) of a factorised Normal or Laplace, summed over the last axis: (...,D) -> (...)."""
    if family == "normal":
        zs = (x - loc) / scale
        return jnp.sum(-0.5 * zs * zs - jnp.log(scale) - 0.5 * _LOG_2PI, axis=-1)
    if family == "laplace":
        return jnp.sum(-jnp.abs(x - loc) / scale - jnp.log(2.0 * scale), axis=-1)
    raise ValueError(f"unknown latent family {family!r}; use 'normal' or 'laplace'")


def standard_noise(family: str, key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """Base noise of the reparameterisation: N(0, 1) or Laplace(0, 1) of `shape`."""
    if family == "normal":
        return jax.random.normal(key, shape, dtype)
    if family == "laplace":
        return jax.random.laplace(key, shape, dtype)
    raise ValueError(f"unknown latent family {family!r}; use 'normal' or 'laplace'")


def reparameterize(loc: jax.Array, scale: jax.Array, noise: jax.Array) -> jax.Array:
    """x = loc + scale * noise (broadcasting), the reparameterised sample of either family."""
    return loc + scale * noise


def mixture_log_density(family: str, x: jax.Array, locs: jax.Array, scales: jax.Array) -> jax.Array:
    """log of the equal-weight mixture of experts (1/M) sum_m q(x | loc_m, scale_m).

    x: (S, B, D) samples; locs, scales: (M, B, D) the M experts for each example b.
    Returns (S, B) = logsumexp_m log q_m(x) - log M.
    """
    per_expert = log_density(family, x[None], locs[:, None], scales[:, None])  # (M, S, B)
    return jax.nn.logsumexp(per_expert, axis=0) - math.log(locs.shape[0])
