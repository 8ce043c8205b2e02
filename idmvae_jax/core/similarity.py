"""Similarity scores between two sets of codes, the parameter-free critics of the contrastive terms.

Each maps a (Na, D), b (Nb, D) to scores (Na, Nb); InfoNCE divides them by the temperature.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_NORM_EPS = 1e-8


def cosine_scores(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity of every pair: s_pq = <a_p, b_q> / (|a_p| |b_q|), (Na, D), (Nb, D) -> (Na, Nb)."""
    a = a * jax.lax.rsqrt(jnp.sum(a * a, axis=-1, keepdims=True) + _NORM_EPS)
    b = b * jax.lax.rsqrt(jnp.sum(b * b, axis=-1, keepdims=True) + _NORM_EPS)
    return jnp.einsum("pd,qd->pq", a, b)


def centered_cosine_scores(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity after subtracting each set's mean row: (Na, D), (Nb, D) -> (Na, Nb)."""
    return cosine_scores(a - jnp.mean(a, axis=0, keepdims=True), b - jnp.mean(b, axis=0, keepdims=True))
