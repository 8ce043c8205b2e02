"""The MMVAE+ ELBO (SPEC 2.1): the K-sample "looser" IWAE bound, mean over source views.

For source view r, sample k and example b, with z ~ q(z | x_r), w_r ~ q(w_r | x_r) and, for the
cross-reconstructions d != r, w~_d ~ r_d(w_d) from view d's auxiliary prior:

    log omega_r = sum_d lambda_d log p(x_d | z, w^(d)) + beta (log p(z) + log p(w_r)
                  - log (1/M) sum_m q(z | x_m) - log q(w_r | x_r))
    L_elbo = -mean_B mean_r logmeanexp_K(log omega_r)
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from idmvae_jax.core import distributions as dist
from idmvae_jax.objective.noise import Draw


class ElboTerms(NamedTuple):
    """Per (source view r, sample k, example b) pieces of log omega_r, each (M, K, B)."""

    log_likelihood: jax.Array  # sum_d lambda_d log p(x_d | z_r, w^(d))
    log_prior_z: jax.Array  # log p(z_r)
    log_prior_w: jax.Array  # log p(w_r)
    log_q_z: jax.Array  # log (1/M) sum_m q(z_r | x_m)
    log_q_w: jax.Array  # log q(w_r | x_r)


def noise_draws(num_views: int, num_samples: int, w_dim: int, z_dim: int, family: str) -> dict:
    """The ELBO's draws: elbo_w (M, K, B, W), elbo_z (M, K, B, Z), aux_w (M_t, M_s, K, B, W)."""
    m, k = num_views, num_samples
    return {
        "elbo_w": Draw((k, m, w_dim), family, (2, 1, 0, 3)),
        "elbo_z": Draw((k, m, z_dim), family, (2, 1, 0, 3)),
        "aux_w": Draw((k, m, m, w_dim), family, (2, 3, 1, 0, 4)),
    }


def elbo_terms(
    log_likelihood_fn: Callable[[jax.Array], jax.Array],
    post: dist.Posterior,
    eps_w: jax.Array,
    eps_z: jax.Array,
    eps_aux: jax.Array,
    aux_prior_scale: jax.Array,
    prior_scale_w: jax.Array,
    prior_scale_z: jax.Array,
    family: str,
) -> ElboTerms:
    """All pieces of the ELBO for every source view.

    log_likelihood_fn(u (M_t, S, B, W+Z)) -> (M_t, S, B): lambda_d-weighted log p(x_d | u_d) of each
    target view d (the data bound in). post: Posterior of (M, B, .) arrays. eps_w (M, K, B, W),
    eps_z (M, K, B, Z): base noise of each source view's posterior samples; eps_aux
    (M_t, M_s, K, B, W): base noise of the auxiliary-prior draws w~_d = aux_prior_scale_d * eps for
    the cross-reconstructions (the d == r entries are unused: self-reconstructions use w_r).
    aux_prior_scale (M, W); prior_scale_w (W,), prior_scale_z (Z,): the fixed priors p(w), p(z);
    family: 'normal' or 'laplace'.
    """
    m = post.mu_z.shape[0]
    w = dist.reparameterize(post.mu_w[:, None], post.scale_w[:, None], eps_w)  # (M, K, B, W)
    z = dist.reparameterize(post.mu_z[:, None], post.scale_z[:, None], eps_z)  # (M, K, B, Z)
    k, b = w.shape[1], w.shape[2]
    w_cross = aux_prior_scale[:, None, None, None, :] * eps_aux  # (Mt, Ms, K, B, W)
    is_self = jnp.eye(m, dtype=bool)[:, :, None, None, None]
    w_in = jnp.where(is_self, w[None], w_cross)
    z_in = jnp.broadcast_to(z[None], (m, *z.shape))
    u = jnp.concatenate([w_in, z_in], axis=-1).reshape(m, m * k, b, w.shape[-1] + z.shape[-1])
    log_lik = log_likelihood_fn(u).reshape(m, m, k, b).sum(axis=0)  # (Ms, K, B)

    log_q_z = jax.vmap(lambda zr: dist.mixture_log_density(family, zr, post.mu_z, post.scale_z))(z)
    return ElboTerms(
        log_likelihood=log_lik,
        log_prior_z=dist.log_density(family, z, 0.0, prior_scale_z),
        log_prior_w=dist.log_density(family, w, 0.0, prior_scale_w),
        log_q_z=log_q_z,
        log_q_w=dist.log_density(family, w, post.mu_w[:, None], post.scale_w[:, None]),
    )


def elbo_log_weights(terms: ElboTerms, beta: float) -> jax.Array:
    """log omega_r = loglik + beta (log p(z) + log p(w) - log q_mix(z) - log q(w)): (M, K, B)."""
    return terms.log_likelihood + beta * (terms.log_prior_z + terms.log_prior_w - terms.log_q_z - terms.log_q_w)


def iwae_looser_loss(log_w: jax.Array) -> jax.Array:
    """L_elbo = -mean_B mean_r logmeanexp_K(log omega_r), log_w: (M, K, B) -> scalar."""
    k = log_w.shape[1]
    return -jnp.mean(jax.nn.logsumexp(log_w, axis=1) - math.log(k))
