"""Likelihoods p(x | z, w) of the view kinds, as pure functions of a decoder's output.

Decoder outputs are dicts: {'loc': ...} (+ 'scale') or {'logits': ...}. `likelihood_log_prob`
sums over all data dimensions of one example: (..., *shape) -> (...).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from idmvae_jax.core.distributions import _LOG_2PI


def likelihood_log_prob(spec, out: dict, x: jax.Array) -> jax.Array:
    """log p(x | decoder output) summed over the data dims of `spec.shape`; leading dims broadcast.

    laplace/normal: out['loc'], scale out['scale'] if the decoder learns it else spec.likelihood_scale;
    categorical: x one-hot (..., L, V) (or probabilities), out['logits'] (..., L, V);
    bernoulli: x in [0, 1], out['logits'].
    """
    ndim = len(spec.shape) + (1 if spec.likelihood == "categorical" else 0)
    axes = tuple(range(-ndim, 0))
    kind = spec.likelihood
    if kind in ("laplace", "normal"):
        loc = out["loc"].astype(jnp.float32)
        scale = out["scale"] if "scale" in out else jnp.asarray(spec.likelihood_scale, jnp.float32)
        if kind == "laplace":
            lp = -jnp.abs(x - loc) / scale - jnp.log(2.0 * scale)
        else:
            zs = (x - loc) / scale
            lp = -0.5 * zs * zs - jnp.log(scale) - 0.5 * _LOG_2PI
        return jnp.sum(lp, axis=axes)
    logits = out["logits"].astype(jnp.float32)
    if kind == "categorical":
        return jnp.sum(x * jax.nn.log_softmax(logits, axis=-1), axis=axes)
    if kind == "bernoulli":
        lp = x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)
        return jnp.sum(lp, axis=axes)
    raise ValueError(f"unknown likelihood {kind!r}")


def likelihood_mean(spec, out: dict) -> jax.Array:
    """The mean of p(x | decoder output): loc, softmax probabilities, or sigmoid probabilities."""
    if spec.likelihood in ("laplace", "normal"):
        return out["loc"].astype(jnp.float32)
    if spec.likelihood == "categorical":
        return jax.nn.softmax(out["logits"].astype(jnp.float32), axis=-1)
    return jax.nn.sigmoid(out["logits"].astype(jnp.float32))
