"""The multimodal VAE as a set of pure functions over one parameter tree.

`make_model(cfg)` returns a `MultimodalVAE` whose methods are pure functions of `params` and arrays
(the object only holds static configuration). Views with identical `ViewSpec`s form a group whose
parameters are stacked along a leading axis; `view_stack.ViewStack` runs them (one vmapped apply,
or a Python loop when `cfg.vmap_views` is False: same parameters, same numbers).

Parameter tree:
    encoders/<group>, decoders/<group>: stacked per-view network params (leading axis = group size)
    aux_prior_raw: (M, W) raw scales of the auxiliary private priors r_m(w_m) (init 0)
    critic/z, critic/w: learnable critics, e.g. 'projection' (only when the critic has parameters;
                        critic/w stacked over the M views)
    score_z, score_w: latent score networks (only when cfg.diffusion_prior; score_w stacked over M)

Shapes: xs is a list of M arrays (B, *shape_m); latent arrays are stacked (M, B, D) in view order.
"""
from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np

from idmvae_jax.core import distributions as dist
from idmvae_jax.core.distributions import Posterior
from idmvae_jax.models import likelihoods
from idmvae_jax.models.critic import make_critic
from idmvae_jax.models.decoders import make_decoder
from idmvae_jax.models.encoders import make_encoder
from idmvae_jax.models.score_net import make_score_net
from idmvae_jax.models.specs import ModelConfig, view_groups
from idmvae_jax.models.view_stack import ViewStack, group_name, stack_trees


class MultimodalVAE:
    """Pure functions of the IDMVAE model described by a `ModelConfig`."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        dtype = jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else jnp.float32
        self.groups = view_groups(cfg.views)
        self.stack = ViewStack(cfg.vmap_views, cfg.remat)
        self.encoders = tuple(make_encoder(spec, cfg.w_dim, cfg.z_dim, dtype, cfg.remat) for spec, _ in self.groups)
        self.decoders = tuple(make_decoder(spec, cfg.latent_dim, dtype, cfg.remat) for spec, _ in self.groups)
        self.critic_z = make_critic(cfg.critic, cfg.z_dim, cfg.critic_width, cfg.critic_dim)
        self.critic_w = make_critic(cfg.critic, cfg.w_dim, cfg.critic_width, cfg.critic_dim)
        self.score_z = self.score_w = None
        if cfg.diffusion_prior:
            self.score_z = make_score_net(cfg.z_dim, cfg.score_width, cfg.score_time_dim)
            self.score_w = make_score_net(cfg.w_dim, cfg.score_width, cfg.score_time_dim)
        order = np.concatenate([np.asarray(idx) for _, idx in self.groups])
        self._identity_order = bool(np.all(order == np.arange(cfg.num_views)))
        self._inverse_order = np.argsort(order)

    # ------------------------------------------------------------------ parameters
    def init(self, key: jax.Array) -> dict:
        """Initialises every parameter group; each view gets its own key.

        The initialisers draw from an 'rbg' key derived from `key`: with hundreds of initialiser
        calls, XLA's RngBitGenerator compiles several times faster than threefry.
        """
        cfg, m = self.cfg, self.cfg.num_views
        key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
        k_enc, k_dec, k_cz, k_cw, k_sz, k_sw = jax.random.split(key, 6)
        view_keys_enc = jax.random.split(k_enc, m)
        view_keys_dec = jax.random.split(k_dec, m)
        params = {"encoders": {}, "decoders": {}}
        for (spec, idx), enc, dec in zip(self.groups, self.encoders, self.decoders):
            name = group_name(idx)
            params["encoders"][name] = stack_trees([enc.init(view_keys_enc[i]) for i in idx])
            params["decoders"][name] = stack_trees([dec.init(view_keys_dec[i]) for i in idx])
        params["aux_prior_raw"] = jnp.zeros((m, cfg.w_dim), jnp.float32)
        critic_z = self.critic_z.init(k_cz)
        if jax.tree_util.tree_leaves(critic_z):  # the parameter-free critics have none
            params["critic"] = {
                "z": critic_z,
                "w": stack_trees([self.critic_w.init(k) for k in jax.random.split(k_cw, m)]),
            }
        if cfg.diffusion_prior:
            params["score_z"] = self.score_z.init(k_sz)
            params["score_w"] = stack_trees([self.score_w.init(k) for k in jax.random.split(k_sw, m)])
        return params

    # ------------------------------------------------------------------ helpers
    def _to_view_order(self, per_group: list) -> jax.Array:
        """Concatenates group outputs (Mg, ...) into one (M, ...) array in view order."""
        if len(per_group) == 1 and self._identity_order:
            return per_group[0]
        stacked = jnp.concatenate(per_group, axis=0)
        return stacked if self._identity_order else stacked[self._inverse_order]

    def _group_inputs(self, xs, idx):
        return jnp.stack([xs[i] for i in idx])

    # ------------------------------------------------------------------ encoders
    def encode(self, params, xs) -> Posterior:
        """q(w_m | x_m), q(z | x_m) for all views: xs (network inputs, `data.preprocess.network_inputs`) -> Posterior of (M, B, dim)."""
        cfg = self.cfg
        outs = []
        for (spec, idx), enc in zip(self.groups, self.encoders):
            outs.append(self.stack.map(enc.apply, params["encoders"][group_name(idx)], self._group_inputs(xs, idx)))
        mu_w, raw_w, mu_z, raw_z = (self._to_view_order([o[k] for o in outs]) for k in range(4))
        return Posterior(
            mu_w,
            dist.latent_scale(raw_w, cfg.posterior, cfg.posterior_eps),
            mu_z,
            dist.latent_scale(raw_z, cfg.posterior, cfg.posterior_eps),
        )

    def encode_branch_means(self, params, xs, branch: str) -> jax.Array:
        """Posterior means of one branch only ('w' or 'z'): xs (network inputs, `data.preprocess.network_inputs`) -> (M, B, dim)."""
        outs = []
        for (spec, idx), enc in zip(self.groups, self.encoders):
            fn = enc.apply_w if branch == "w" else enc.apply_z
            mu, _ = self.stack.map(fn, params["encoders"][group_name(idx)], self._group_inputs(xs, idx))
            outs.append(mu)
        return self._to_view_order(outs)

    # ------------------------------------------------------------------ decoders
    def _decode_group(self, params, g, u):
        """u (Mg, S, B, D) -> decoder output dict with leading (Mg, S, B)."""
        _, idx = self.groups[g]
        return self.stack.map_samples(self.decoders[g].apply, params["decoders"][group_name(idx)], u)

    def log_likelihood(self, params, u: jax.Array, xs) -> jax.Array:
        """lambda_d-weighted log p(x_d | u_d) for every target view d.

        u: (M, S, B, W+Z) codes per target view (S samples per example); xs: preprocessed targets
        (B, *shape) per view. Returns (M, S, B) = llik_scaling_d * sum over data dims of log p.
        """
        outs = []
        for g, (spec, idx) in enumerate(self.groups):
            dec = self._decode_group(params, g, u[np.asarray(idx)])
            x = self._group_inputs(xs, idx)[:, None]  # (Mg, 1, B, ...)
            outs.append(spec.llik_scaling * likelihoods.likelihood_log_prob(spec, dec, x))
        return self._to_view_order(outs)

    def decode_mean(self, params, u: jax.Array) -> list:
        """Means of p(x_d | u_d): u (M, S, B, W+Z) -> list of M arrays (S, B, *shape[, V])."""
        result = [None] * self.cfg.num_views
        for g, (spec, idx) in enumerate(self.groups):
            mean = likelihoods.likelihood_mean(spec, self._decode_group(params, g, u[np.asarray(idx)]))
            for j, i in enumerate(idx):
                result[i] = mean[j]
        return result

    # ------------------------------------------------------------------ priors
    def prior_scales(self):
        """Scales of the fixed priors: (p(w) scale (W,), p(z) scale (Z,))."""
        cfg = self.cfg
        return (
            dist.prior_scale(cfg.w_dim, cfg.posterior, cfg.posterior_eps, cfg.prior_raw_scale),
            dist.prior_scale(cfg.z_dim, cfg.posterior, cfg.posterior_eps, cfg.prior_raw_scale),
        )

    def aux_prior_scale(self, params) -> jax.Array:
        """Scales (M, W) of the learnable auxiliary private priors r_m(w_m)."""
        return dist.latent_scale(params["aux_prior_raw"], self.cfg.posterior, self.cfg.posterior_eps)

    # ------------------------------------------------------------------ critics
    def critic_scores_z(self, params, a, b):
        """Critic scores between shared codes: (Na, Z), (Nb, Z) -> (Na, Nb)."""
        return self.critic_z.apply(params.get("critic", {}).get("z", {}), a, b)

    def critic_scores_w(self, params, a, b):
        """Per-view critic scores between private codes: (M, Na, W), (M, Nb, W) -> (M, Na, Nb)."""
        if "critic" not in params:
            return jax.vmap(lambda x, y: self.critic_w.apply({}, x, y))(a, b)
        return jax.vmap(self.critic_w.apply)(params["critic"]["w"], a, b)

    # ------------------------------------------------------------------ score networks
    def require_diffusion_prior(self):
        """Raises a clear error when the model was built without score networks."""
        if self.score_z is None:
            raise ValueError("this model has no diffusion prior: set config.model.diffusion_prior=True")


@functools.lru_cache(maxsize=64)
def make_model(cfg: ModelConfig) -> MultimodalVAE:
    """Factory: the pure model functions for `cfg` (cached: configs are hashable and immutable)."""
    return MultimodalVAE(cfg)
