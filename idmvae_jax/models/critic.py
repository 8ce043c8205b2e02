"""Critics of the contrastive terms: pairwise similarity scores between two sets of codes.

A critic is a `Network` with `init(key) -> params` and `apply(params, a (Na, D), b (Nb, D)) ->
scores (Na, Nb)`; InfoNCE divides the scores by the temperature. Any function of that signature
can replace it (see `objective.infonce`).

- cosine (default, no parameters): s_pq = <a_p, b_q> / (|a_p| |b_q|)
- projection: the cosine of g(a), g(b) with g a 2-layer MLP head (width 256 -> 128, ReLU).
- centered (no parameters): the cosine of batch-centred codes, s_pq = cos(a_p - mean_a, b_q - mean_b)
  with the means over the rows given (in every loss term the whole global batch). Adding one
  vector to every code leaves it unchanged, so codes cannot score "alike" by sharing a large common
  component: with the plain cosine the shared codes of a small model can collapse onto one
  direction (all cosines near 1, InfoNCE at its chance value) and stay there for thousands of steps
  (docs/results_mini.md). Not the paper's critic.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from idmvae_jax.core.similarity import centered_cosine_scores, cosine_scores
from idmvae_jax.models.network import Network


class ProjectionHead(nn.Module):
    """g(x) = Dense(out)(relu(Dense(width)(x))): (N, D) -> (N, out)."""

    width: int = 256
    out: int = 128

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.out, name="out")(nn.relu(nn.Dense(self.width, name="hidden")(x)))


def make_critic(kind: str, dim: int, width: int = 256, out: int = 128) -> Network:
    """Factory: a critic over codes of size `dim` ('cosine', 'centered' or 'projection')."""
    if kind == "cosine":
        return Network(lambda key: {}, lambda params, a, b: cosine_scores(a, b))
    if kind == "centered":
        return Network(lambda key: {}, lambda params, a, b: centered_cosine_scores(a, b))
    if kind == "projection":
        head = ProjectionHead(width, out)

        def init(key):
            return head.init(key, jnp.zeros((1, dim), jnp.float32))["params"]

        def apply(params, a, b):
            return cosine_scores(head.apply({"params": params}, a), head.apply({"params": params}, b))

        return Network(init, apply)
    raise ValueError(f"unknown critic {kind!r}; use 'cosine', 'centered' or 'projection'")
