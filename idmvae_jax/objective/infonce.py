"""The InfoNCE terms (SPEC 2.2): Contrast of NT-Xent form and the cross-view L_crossMI.

A critic is any function critic(a (Na, D), b (Nb, D)) -> scores (Na, Nb) (cosine by default);
the scores are divided by the temperature.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from idmvae_jax.core.similarity import cosine_scores

ScoresFn = Callable[[jax.Array, jax.Array], jax.Array]


def contrast_from_scores(scores: jax.Array) -> jax.Array:
    """Contrast of NT-Xent form from the (2B, 2B) score matrix of a = concat(za, zb), already / tau.

    Contrast = mean_p [ s_{p, p+-B} - log sum_{q != p} exp(s_pq) ]: the positive of anchor p is the
    same batch index in the other view, the denominator the positive and the 2B - 2 negatives
    (same-view and cross-view). Excluding q = p is SPEC 2.2's "- e^{1/tau}" for the cosine critic.
    """
    n2 = scores.shape[0]
    n = n2 // 2
    partner = (jnp.arange(n2) + n) % n2
    positive = jnp.take_along_axis(scores, partner[:, None], axis=1)[:, 0]
    masked = jnp.where(jnp.eye(n2, dtype=bool), -jnp.inf, scores)
    return jnp.mean(positive - jax.nn.logsumexp(masked, axis=1))


def infonce(za: jax.Array, zb: jax.Array, temperature: float = 1.0, critic: ScoresFn = cosine_scores) -> jax.Array:
    """The InfoNCE mutual-information estimate Contrast(za, zb) of SPEC 2.2 (the loss is its negative).

    za, zb: (B, D) paired codes (row b of each is a positive pair). Returns a scalar <= log(2B - 1).
    """
    a = jnp.concatenate([za, zb], axis=0)
    return contrast_from_scores(critic(a, a) / temperature)


def per_view_contrast(a: jax.Array, b: jax.Array, scores_fn: Callable, temperature: float) -> jax.Array:
    """Contrast(a_m, b_m) for every view m: a, b (M, B, D); scores_fn(c (M, 2B, D)) -> (M, 2B, 2B)."""
    cat = jnp.concatenate([a, b], axis=1)
    return jax.vmap(contrast_from_scores)(scores_fn(cat) / temperature)


def cross_view_infonce_loss(mu_z: jax.Array, temperature: float = 1.0, critic: ScoresFn = cosine_scores) -> jax.Array:
    """L_crossMI = (1/(M-1)) sum_{i != j} -Contrast(mu_z_i, mu_z_j) over ordered view pairs.

    mu_z: (M, B, Z) posterior means. One (MB, MB) score matrix serves all pairs: the denominator of
    an anchor of view i in pair (i, j) combines its own-view row (self excluded) with the row of the
    (i, j) block.
    """
    m, b, d = mu_z.shape
    s = (critic(mu_z.reshape(m * b, d), mu_z.reshape(m * b, d)) / temperature).reshape(m, b, m, b)
    blocks = s.transpose(0, 2, 1, 3)  # (M_i, M_j, B, B): rows of view i, columns of view j
    own = blocks[jnp.arange(m), jnp.arange(m)]  # (M, B, B)
    own_lse = jax.nn.logsumexp(jnp.where(jnp.eye(b, dtype=bool), -jnp.inf, own), axis=-1)  # (M, B)
    cross_lse = jax.nn.logsumexp(blocks, axis=-1)  # (M, M, B)
    positive = jnp.diagonal(blocks, axis1=2, axis2=3)  # (M, M, B)
    anchor = positive - jnp.logaddexp(own_lse[:, None, :], cross_lse)  # (M, M, B)
    off_diagonal = 1.0 - jnp.eye(m)
    # sum over ordered pairs of -Contrast(i, j) = -sum_{i != j} mean_b anchor[i, j, b]
    return -jnp.sum(jnp.mean(anchor, axis=-1) * off_diagonal) / (m - 1)
