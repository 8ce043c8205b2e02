"""The generative-augmentation cycle term L_genaug (SPEC 2.3): decode swapped codes, re-encode.

For each view i, with its own decoder D_i and encoder E_i:
  (a) roll private: x+ = mean D_i([w_swap_i, z~a_i]),  mu_z+ = E_i^z(x+),  loss_z = -Contrast(mu_z_i, mu_z+)
  (b) roll shared:  x+ = mean D_i([w~b_i, z_swap_i]),  mu_w+ = E_i^w(x+),  loss_w = -Contrast(mu_w_i, mu_w+)
  L_genaug = sum_i 0.5 (loss_z_i + loss_w_i)

(a) and (b) each draw their own posterior samples (w~a, z~a) and (w~b, z~b): four reparameterised
draws per view and step, as the reference code makes them; with the 'posterior' scheme
w_swap = roll_B(w~a) and z_swap = roll_B(z~b).
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from idmvae_jax.core import distributions as dist
from idmvae_jax.objective.global_batch import GlobalBatch
from idmvae_jax.objective.infonce import per_view_contrast
from idmvae_jax.objective.noise import Draw

SAMPLING = ("posterior", "prior", "diffusion_prior")
LOSS_TYPES = ("contrastive", "l2")


def noise_draws(num_views: int, w_dim: int, z_dim: int, family: str, sampling: str) -> dict:
    """The cycle term's draws, each (M, B, .): genaug_a_w, genaug_a_z, genaug_b_w, genaug_b_z (base
    noise of the posterior samples of branches (a) and (b)) and swap_w, swap_z (base noise of the
    swapped codes when they come from a prior)."""
    m, swap = num_views, "normal" if sampling == "diffusion_prior" else family
    return {
        "genaug_a_w": Draw((m, w_dim), family), "genaug_a_z": Draw((m, z_dim), family),
        "genaug_b_w": Draw((m, w_dim), family), "genaug_b_z": Draw((m, z_dim), family),
        "swap_w": Draw((m, w_dim), swap), "swap_z": Draw((m, z_dim), swap),
    }


def posterior_samples(post: dist.Posterior, noise: dict):
    """The branches' reparameterised posterior samples (w~a, z~a, w~b, z~b), each (M, B, .)."""
    return tuple(
        dist.reparameterize(post.mu_w, post.scale_w, noise[f"genaug_{branch}_w"]) if code == "w"
        else dist.reparameterize(post.mu_z, post.scale_z, noise[f"genaug_{branch}_z"])
        for branch, code in (("a", "w"), ("a", "z"), ("b", "w"), ("b", "z")))


def swapped_codes(sampling: str, w_sample, z_sample, noise: dict, batch: GlobalBatch = GlobalBatch(),
                  prior_scales=None, sample_prior_fn: Optional[Callable] = None):
    """(w_swap, z_swap), each (M, B, .), by the sampling scheme:
    'posterior': roll_B of the posterior samples w_sample (= w~a) and z_sample (= z~b) over the
    global batch;
    'prior': prior_scales = (scale_w (W,), scale_z (Z,)) times noise['swap_w'], noise['swap_z'];
    'diffusion_prior': sample_prior_fn(x_z, x_w) -> (z, w) from the DDIM base noise (no gradient).
    """
    if sampling == "posterior":
        return batch.roll(w_sample, axis=1), batch.roll(z_sample, axis=1)
    if sampling == "prior":
        return prior_scales[0] * noise["swap_w"], prior_scales[1] * noise["swap_z"]
    if sampling == "diffusion_prior":
        z, w = jax.lax.stop_gradient(sample_prior_fn(noise["swap_z"], noise["swap_w"]))
        return w, z
    raise ValueError(f"genaug sampling {sampling!r} is not one of {SAMPLING}")


def genaug_loss(
    decode_mean_fn: Callable,
    encode_means_fn: Callable,
    critic_z_fn: Callable,
    critic_w_fn: Callable,
    post: dist.Posterior,
    w_swap: jax.Array,
    z_a: jax.Array,
    w_b: jax.Array,
    z_swap: jax.Array,
    *,
    loss_type: str = "contrastive",
    temperature: float = 1.0,
    batch: GlobalBatch = GlobalBatch(),
):
    """L_genaug with the per-view losses: returns (L_genaug, loss_z (M,), loss_w (M,)).

    decode_mean_fn(u (M, S, B, W+Z)) -> M arrays (S, B, *shape_m): likelihood means of each view's
    decoder. encode_means_fn(xs (M arrays (B, *shape_m)), branch 'w' | 'z') -> (M, B, dim): the
    posterior means of one encoder branch. critic_z_fn(a (N, Z), b (N, Z)) -> (N, N), applied to
    every view; critic_w_fn(a (M, N, W), b (M, N, W)) -> (M, N, N), view m's critic on row m.
    post: the posterior of the data; branch (a) decodes [w_swap, z_a], branch (b) [w_b, z_swap],
    each (M, B, .). loss_type 'l2' uses sum_dims (mu - mu+)^2 (batch mean) in place of -Contrast.
    batch: the global-batch helper (contrasts span the global batch under pmap).
    """
    u_a = jnp.concatenate([w_swap, z_a], axis=-1)
    u_b = jnp.concatenate([w_b, z_swap], axis=-1)
    x_plus = decode_mean_fn(jnp.stack([u_a, u_b], axis=1))  # M arrays (2, B, ...)
    mu_z_plus = encode_means_fn([x[0] for x in x_plus], "z")  # (M, B, Z)
    mu_w_plus = encode_means_fn([x[1] for x in x_plus], "w")  # (M, B, W)
    if loss_type == "l2":
        loss_z = jnp.mean(jnp.sum((post.mu_z - mu_z_plus) ** 2, axis=-1), axis=-1)
        loss_w = jnp.mean(jnp.sum((post.mu_w - mu_w_plus) ** 2, axis=-1), axis=-1)
    elif loss_type == "contrastive":
        gz = lambda a: batch.gather(a, axis=1)  # noqa: E731
        loss_z = -per_view_contrast(gz(post.mu_z), gz(mu_z_plus), jax.vmap(lambda c: critic_z_fn(c, c)), temperature)
        loss_w = -per_view_contrast(gz(post.mu_w), gz(mu_w_plus), lambda c: critic_w_fn(c, c), temperature)
    else:
        raise ValueError(f"genaug loss type {loss_type!r} is not one of {LOSS_TYPES}")
    return jnp.sum(0.5 * (loss_z + loss_w)), loss_z, loss_w
