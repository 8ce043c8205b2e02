"""The InfoNCE terms (SPEC 2.2): Contrast of NT-Xent form and the cross-view L_crossMI.

A critic is any function critic(a (Na, D), b (Nb, D)) -> scores (Na, Nb) (cosine by default);
the scores are divided by the temperature.
"""
from __future__ import annotations

import math
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


def cross_view_infonce_chance(num_views: int, batch_size: int) -> float:
    """L_crossMI of a critic that knows nothing of the pairing: M · log(2B − 1).

    With every score equal (s_pq = c), each anchor of view i in pair (i, j) has the positive
    e^c over a denominator of 2B − 1 equal terms (its B − 1 own-view others and the B codes of
    view j, `cross_view_infonce_loss`), so -Contrast(i, j) = log(2B − 1) for every pair, and

        L_crossMI = (1/(M−1)) · M(M−1) · log(2B − 1) = M · log(2B − 1)

    (5 · log 63 = 20.72 for M = 5, B = 32), whatever the temperature. For scores that vary but do
    not depend on the pairing (an untrained critic on codes that carry no pairing) the expected loss
    is at or just above this value (log-sum-exp >= mean + log n); below it the shared codes tell
    the pairs apart.

    batch_size: the B the contrast sees, which in training is the GLOBAL batch
    (`train.batch_size`, over all devices and processes): under data parallelism the loss
    all-gathers mu_z over the 'data' axis before the contrast (`GlobalBatch.gather` with
    shard_map or pmap; jit's 'auto' partitioner sees the global arrays), so every anchor has the
    2B − 2 negatives of the whole batch, not those of its device's shard.
    """
    if num_views < 2 or batch_size < 1:
        raise ValueError(f"need num_views >= 2 and batch_size >= 1, got {num_views}, {batch_size}")
    return num_views * math.log(2 * batch_size - 1)
