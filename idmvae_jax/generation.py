"""Generation as pure functions: reconstruction, cross-generation, unconditional sampling.

All take raw views xs (list of M arrays (B, *shape_m), as in a batch) and return means of the
likelihood (images as floats in [0, 1], NHWC; captions as token probabilities (B, L, V)).
`prior` selects where codes the data does not provide come from: 'gaussian' (the fixed priors
p(z), p(w_m)) or 'diffusion' (DDIM, eta = 0, from the latent score networks, SPEC 2.4).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from idmvae_jax.config import IDMVAEConfig
from idmvae_jax.core import distributions as dist
from idmvae_jax.core.distributions import Posterior
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.models.multimodal import MultimodalVAE, make_model
from idmvae_jax.objective import diffusion
from idmvae_jax.objective.diffusion import sample_latent_priors

PRIORS = ("gaussian", "diffusion")


def encode(params, xs, cfg: IDMVAEConfig) -> Posterior:
    """Posterior parameters of every view: xs -> Posterior of (M, B, dim) arrays."""
    model = make_model(cfg.model)
    return model.encode(params, network_inputs(cfg.model.views, xs))


def score_fns(model: MultimodalVAE, params):
    """The latent score networks with their parameters bound: (score_z_fn, score_w_fn) of
    `objective.diffusion_prior_loss` and `objective.sample_latent_priors`."""
    model.require_diffusion_prior()

    def score_z_fn(x, t):
        return model.score_z.apply(params["score_z"], x, t)

    def score_w_fn(x, t):
        return jax.vmap(model.score_w.apply)(params["score_w"], x, t)

    return score_z_fn, score_w_fn


def sample_diffusion_prior(model: MultimodalVAE, params, x_z, x_w, cfg: IDMVAEConfig):
    """DDIM samples of the latent priors from base noise x_z (..., N, Z), x_w (M, N, W).

    Returns (z (..., N, Z), w (M, N, W)): the z network is shared by the views, each view has its
    own w network.
    """
    schedule = diffusion.schedule_from_config(cfg.diffusion)
    return sample_latent_priors(*score_fns(model, params), x_z, x_w, schedule, cfg.diffusion.ddim_steps)


def sample_prior_codes(params, key, num: int, cfg: IDMVAEConfig, prior: str = "gaussian", z_batch: tuple = ()):
    """Codes from the priors: z (*z_batch, num, Z) and w (M, num, W).

    gaussian: z ~ p(z), w_m ~ p(w_m) (the fixed priors); diffusion: DDIM from standard-normal noise.
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    model = make_model(cfg.model)
    mc = cfg.model
    kz, kw = jax.random.split(key)
    if prior == "diffusion":
        x_z = jax.random.normal(kz, (*z_batch, num, mc.z_dim))
        x_w = jax.random.normal(kw, (mc.num_views, num, mc.w_dim))
        return sample_diffusion_prior(model, params, x_z, x_w, cfg)
    scale_w, scale_z = model.prior_scales()
    z = scale_z * dist.standard_noise(mc.posterior, kz, (*z_batch, num, mc.z_dim))
    w = scale_w * dist.standard_noise(mc.posterior, kw, (mc.num_views, num, mc.w_dim))
    return z, w


def reconstruct(params, xs, cfg: IDMVAEConfig) -> list:
    """Self-reconstructions from the posterior means: D_m([mu_w_m, mu_z_m]) for every view m."""
    model = make_model(cfg.model)
    post = encode(params, xs, cfg)
    u = jnp.concatenate([post.mu_w, post.mu_z], axis=-1)[:, None]  # (M, 1, B, D)
    return [x[0] for x in model.decode_mean(params, u)]


def cross_generate(params, xs, key, cfg: IDMVAEConfig, prior: str = "gaussian") -> list:
    """Cross-generation e -> d: z ~ q(z | x_e), w_d from the prior, decoded by D_d.

    Returns out[e][d], an array (B, *shape_d) for every source view e and target view d (the
    diagonal is self-generation with a prior private code). Each (e, d) pair gets its own draws.
    """
    model = make_model(cfg.model)
    m = cfg.model.num_views
    post = encode(params, xs, cfg)
    b = post.mu_z.shape[1]
    k_z, k_w = jax.random.split(key)
    z = dist.reparameterize(post.mu_z, post.scale_z, dist.standard_noise(cfg.model.posterior, k_z, post.mu_z.shape))
    # One private code per (target d, source e): draw M*B codes per target view.
    _, w = sample_prior_codes(params, k_w, m * b, cfg, prior)  # (M_t, M_s * B, W)
    w = w.reshape(m, m, b, -1)
    u = jnp.concatenate([w, jnp.broadcast_to(z[None], (m, *z.shape))], axis=-1)  # (M_t, M_s, B, D)
    by_target = model.decode_mean(params, u)  # list over d of (M_s, B, ...)
    return [[by_target[d][e] for d in range(m)] for e in range(m)]


def generate_from_private(params, xs, key, cfg: IDMVAEConfig, prior: str = "gaussian") -> list:
    """Private-code generation: w ~ q(w_e | x_e), z from the prior, decoded by D_e, for every view e.

    Returns a list of M arrays (B, *shape_e); used by private coherence (the image should keep
    x_e's private label and carry no information about its shared label).
    """
    model = make_model(cfg.model)
    post = encode(params, xs, cfg)
    b = post.mu_w.shape[1]
    k_w, k_z = jax.random.split(key)
    w = dist.reparameterize(post.mu_w, post.scale_w, dist.standard_noise(cfg.model.posterior, k_w, post.mu_w.shape))
    z, _ = sample_prior_codes(params, k_z, b, cfg, prior, z_batch=(cfg.model.num_views,))  # (M, B, Z)
    u = jnp.concatenate([w, z], axis=-1)[:, None]
    return [x[0] for x in model.decode_mean(params, u)]


def sample_unconditional(params, key, num: int, cfg: IDMVAEConfig, prior: str = "gaussian") -> list:
    """Unconditional joint samples: one z per sample shared by all views, w_m per view.

    Returns a list of M arrays (num, *shape_m): sample i of every view shares z_i.
    """
    model = make_model(cfg.model)
    z, w = sample_prior_codes(params, key, num, cfg, prior)
    u = jnp.concatenate([w, jnp.broadcast_to(z[None], (cfg.model.num_views, *z.shape))], axis=-1)
    return [x[0] for x in model.decode_mean(params, u[:, None])]
