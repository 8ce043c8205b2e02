"""`loss_fn`: the one place where the objective's pure terms meet the package's networks.

    total = L_elbo + l1 L_crossMI + l2 L_genaug + l_diff L_diff        (idmvae_jax.objective)

Each term receives the networks as callables with the parameters bound (log-likelihood, decode
means, encoder-branch means, critics, score networks), and its random draws from
`objective.draw_example_noise`, so every per-example draw is a function of (key, term, global
example position) and one global batch gives the same loss on one device, under jit on a mesh
or under pmap (SPEC 5b). Adding a term: a function in `objective/`, its draws, one block below.
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from idmvae_jax import objective
from idmvae_jax.config import IDMVAEConfig
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.generation import sample_diffusion_prior, score_fns
from idmvae_jax.models.multimodal import make_model
from idmvae_jax.objective import diffusion, elbo, genaug
from idmvae_jax.objective.infonce import ScoresFn

# Terms of loss_fn's aux, in the order the train step's non-finite guard reports them.
AUX_TERMS = ("elbo", "recon", "kl", "cross_mi", "genaug", "diffusion", "total")


def noise_draws(cfg: IDMVAEConfig) -> dict:
    """name -> objective.Draw of every draw of one step, in stream order (see draw_example_noise)."""
    mc, lc = cfg.model, cfg.loss
    draws = elbo.noise_draws(mc.num_views, lc.num_samples, mc.w_dim, mc.z_dim, mc.posterior)
    if lc.genaug_weight:
        draws.update(genaug.noise_draws(mc.num_views, mc.w_dim, mc.z_dim, mc.posterior, lc.genaug_sampling))
    if lc.diffusion_weight:
        draws.update(diffusion.noise_draws(mc.num_views, mc.w_dim, mc.z_dim))
    return draws


def draw_step_noise(key: jax.Array, positions: jax.Array, cfg: IDMVAEConfig) -> dict:
    """All per-example draws of one step for the examples at global `positions` (B,)."""
    return objective.draw_example_noise(key, positions, noise_draws(cfg), cfg.diffusion.num_timesteps)


def loss_fn(
    params,
    batch: dict,
    key: jax.Array,
    cfg: IDMVAEConfig,
    *,
    axis_name: Optional[str] = None,
    critic_z: Optional[ScoresFn] = None,
    critic_w: Optional[ScoresFn] = None,
    noise: Optional[dict] = None,
):
    """The IDMVAE objective on one batch: returns (total, aux).

    params: `make_model(cfg.model).init(key)`; batch: {"x": [x_0, ..., x_{M-1}], ...} with x_m of
    shape (B, *shape_m) (uint8 images, float vectors, int caption tokens); key: this step's key.
    axis_name: the pmap axis when the batch is a per-device shard (enables the global-batch
    all-gathers); None on one device or under jit with sharded global arrays.
    critic_z(a (N, Z), b (N, Z)) -> (N, N) scores, if given, replaces the model's critic in L_crossMI
    and in the cycle term's z contrast; critic_w(a (N, W), b (N, W)) in its w contrasts (every view).
    Bind them with functools.partial to get a loss of the default signature for `make_train_step`.
    noise: the step's draws, name -> array laid out as `noise_draws(cfg)` says, in place of those
    drawn from `key` (to feed the draws of another implementation, tools/equivalence.py).
    aux: elbo (L_elbo), recon (-mean weighted log-likelihood), kl (mean log q - log p, unweighted by
    beta), cross_mi (L_crossMI), genaug (L_genaug), diffusion (L_diff), total; a term whose weight
    is 0 is not computed and reads 0.
    """
    model = make_model(cfg.model)
    mc, lc = cfg.model, cfg.loss
    gb = objective.GlobalBatch(axis_name)
    xs = network_inputs(mc.views, batch["x"])
    if noise is None:
        noise = draw_step_noise(key, gb.positions(xs[0].shape[0]), cfg)
    post = model.encode(params, xs)
    prior_w, prior_z = model.prior_scales()
    critic_z_fn = critic_z or functools.partial(model.critic_scores_z, params)
    critic_w_fn = jax.vmap(critic_w) if critic_w else functools.partial(model.critic_scores_w, params)

    terms = objective.elbo_terms(
        lambda u: model.log_likelihood(params, u, xs), post, noise["elbo_w"], noise["elbo_z"], noise["aux_w"],
        model.aux_prior_scale(params), prior_w, prior_z, mc.posterior,
    )
    zero = jnp.zeros((), jnp.float32)
    aux = {
        "elbo": objective.iwae_looser_loss(objective.elbo_log_weights(terms, lc.beta)),
        "recon": -jnp.mean(terms.log_likelihood),
        "kl": jnp.mean(terms.log_q_z + terms.log_q_w - terms.log_prior_z - terms.log_prior_w),
        "cross_mi": zero,
        "genaug": zero,
        "diffusion": zero,
    }
    if lc.cross_mi_weight:
        aux["cross_mi"] = objective.cross_view_infonce_loss(gb.gather(post.mu_z, axis=1), lc.temperature, critic_z_fn)
    if lc.genaug_weight:
        w_a, z_a, w_b, z_b = objective.posterior_samples(post, noise)
        w_swap, z_swap = objective.swapped_codes(
            lc.genaug_sampling, w_a, z_b, noise, gb, (prior_w, prior_z),
            lambda x_z, x_w: sample_diffusion_prior(model, params, x_z, x_w, cfg))
        aux["genaug"], _, _ = objective.genaug_loss(
            lambda u: model.decode_mean(params, u),
            lambda x, branch: model.encode_branch_means(params, x, branch),
            critic_z_fn, critic_w_fn, post, w_swap, z_a, w_b, z_swap,
            loss_type=lc.genaug_loss, temperature=lc.temperature, batch=gb,
        )
    if lc.diffusion_weight:
        mu_z, mu_w = post.mu_z, post.mu_w
        if lc.diffusion_stop_gradient:
            mu_z, mu_w = jax.lax.stop_gradient(mu_z), jax.lax.stop_gradient(mu_w)
        aux["diffusion"] = objective.diffusion_prior_loss(
            *score_fns(model, params), mu_z, mu_w, noise["diff_t_z"], noise["diff_noise_z"],
            noise["diff_t_w"], noise["diff_noise_w"], diffusion.schedule_from_config(cfg.diffusion),
        )
    total = aux["elbo"]
    for name, weight in (("cross_mi", lc.cross_mi_weight), ("genaug", lc.genaug_weight),
                         ("diffusion", lc.diffusion_weight)):
        if weight:
            total = total + weight * aux[name]
    aux["total"] = total
    return total, aux

