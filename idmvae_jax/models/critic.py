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

`register_critic(name, factory)` adds a critic of your own (learnable or not) under a config name.
"""
from __future__ import annotations

from typing import Callable

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


def _parameter_free(scores) -> Callable:
    return lambda dim, width, out: Network(lambda key: {}, lambda params, a, b: scores(a, b))


def _projection(dim: int, width: int, out: int) -> Network:
    head = ProjectionHead(width, out)

    def init(key):
        return head.init(key, jnp.zeros((1, dim), jnp.float32))["params"]

    def apply(params, a, b):
        return cosine_scores(head.apply({"params": params}, a), head.apply({"params": params}, b))

    return Network(init, apply)


# name -> factory(dim, width, out) -> Network; `config.model.critic` picks one by name.
_CRITICS: dict = {
    "cosine": _parameter_free(cosine_scores),
    "centered": _parameter_free(centered_cosine_scores),
    "projection": _projection,
}


def register_critic(name: str, factory: Callable) -> None:
    """Makes `config.model.critic=name` build `factory(dim, width, out) -> Network` (init/apply as
    above; width and out are config.model.critic_width / critic_dim). A critic whose `init` returns
    parameters gets its own subtree, `params['critic']['z']` and one stacked over the views in
    `params['critic']['w']`, trained with the rest; nothing else needs editing. Models built
    before a name is registered again are rebuilt (the model cache is cleared)."""
    from idmvae_jax.models.multimodal import make_model  # (multimodal imports this module)

    _CRITICS[name] = factory
    make_model.cache_clear()


def critic_names() -> tuple:
    """The registered critic names."""
    return tuple(_CRITICS)


def make_critic(kind: str, dim: int, width: int = 256, out: int = 128) -> Network:
    """Factory: the registered critic `kind` over codes of size `dim`."""
    if kind not in _CRITICS:
        raise ValueError(f"unknown critic {kind!r}; use one of {critic_names()} or models.critic.register_critic")
    return _CRITICS[kind](dim, width, out)
