"""The IDMVAE objective (SPEC 2) as pure functions, one per term, and `loss_fn` combining them.

    total = L_elbo + l1 * L_crossMI + l2 * L_genaug + l_diff * L_diff

Conventions (the reference code's, which the published weights assume):
- L_elbo: batch mean, mean over source views, K-sample "looser" IWAE bound (SPEC 2.1).
- L_crossMI = (1/(M-1)) sum over ordered pairs i != j of -Contrast(mu_z_i, mu_z_j) (SPEC 2.2),
  i.e. M times the paper's pair average.
- L_genaug = sum over views of 0.5 (loss_z + loss_w) (SPEC 2.3), the paper's 1/(2M) sum times 2M.
- L_diff = (1/M) sum_m [D_z(mu_z_m) + D_w_m(mu_w_m)] (SPEC 2.4).

Randomness (SPEC 5b): every per-example draw is a function of (key, term, global example position),
so one global batch gives the same loss on one device, on a mesh under jit, or under pmap. Under
pmap (`axis_name` given) InfoNCE negatives and the cycle term's roll use the global batch through
all-gathers: each device holds the (M, B_global, dim) posterior means, a cost of O(M B_global dim)
memory and one all-gather per term. Under jit on a mesh the same global semantics come from the
global arrays themselves.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from idmvae_jax import diffusion as diffusion_lib
from idmvae_jax.config import IDMVAEConfig
from idmvae_jax.generation import sample_diffusion_prior
from idmvae_jax.models import distributions as dist
from idmvae_jax.models.critic import cosine_scores
from idmvae_jax.models.multimodal import MultimodalVAE, Posterior, make_model

ScoresFn = Callable[[jax.Array, jax.Array], jax.Array]



# ================================================================================ InfoNCE (SPEC 2.2)
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

    za, zb: (B, D) paired codes (row b of each is a positive pair). critic(a, b) -> (Na, Nb) scores,
    cosine by default; any function of that signature works. Returns a scalar <= log(2B - 1).
    """
    a = jnp.concatenate([za, zb], axis=0)
    return contrast_from_scores(critic(a, a) / temperature)


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


# ================================================================================ ELBO (SPEC 2.1)
class ElboTerms(NamedTuple):
    """Per (source view r, sample k, example b) pieces of log omega_r, each (M, K, B)."""

    log_likelihood: jax.Array  # sum_d lambda_d log p(x_d | z_r, w^(d))
    log_prior_z: jax.Array  # log p(z_r)
    log_prior_w: jax.Array  # log p(w_r)
    log_q_z: jax.Array  # log (1/M) sum_m q(z_r | x_m)
    log_q_w: jax.Array  # log q(w_r | x_r)


def elbo_log_weights(terms: ElboTerms, beta: float) -> jax.Array:
    """log omega_r = loglik + beta (log p(z) + log p(w) - log q_mix(z) - log q(w)): (M, K, B)."""
    return terms.log_likelihood + beta * (terms.log_prior_z + terms.log_prior_w - terms.log_q_z - terms.log_q_w)


def iwae_looser_loss(log_w: jax.Array) -> jax.Array:
    """L_elbo = -mean_B mean_r logmeanexp_K(log omega_r), log_w: (M, K, B) -> scalar."""
    k = log_w.shape[1]
    return -jnp.mean(jax.nn.logsumexp(log_w, axis=1) - math.log(k))


def elbo_terms(
    model: MultimodalVAE, params, xs, post: Posterior, eps_w, eps_z, eps_aux
) -> ElboTerms:
    """All pieces of the MMVAE+ ELBO for every source view.

    xs: preprocessed views; post: Posterior (M, B, .); eps_w (M, K, B, W), eps_z (M, K, B, Z): base
    noise of the posterior samples of each source view; eps_aux (M_target, M_source, K, B, W): base
    noise of the auxiliary-prior draws w~ ~ r_d(w) for the cross-reconstructions (the d == r entries
    are unused: self-reconstructions use the source's own w_r).
    """
    cfg = model.cfg
    m = cfg.num_views
    w = dist.reparameterize(post.mu_w[:, None], post.scale_w[:, None], eps_w)  # (M, K, B, W)
    z = dist.reparameterize(post.mu_z[:, None], post.scale_z[:, None], eps_z)  # (M, K, B, Z)
    k, b = w.shape[1], w.shape[2]
    w_cross = model.aux_prior_scale(params)[:, None, None, None, :] * eps_aux  # (Mt, Ms, K, B, W)
    is_self = jnp.eye(m, dtype=bool)[:, :, None, None, None]
    w_in = jnp.where(is_self, w[None], w_cross)
    z_in = jnp.broadcast_to(z[None], (m, *z.shape))
    u = jnp.concatenate([w_in, z_in], axis=-1).reshape(m, m * k, b, cfg.latent_dim)
    log_lik = model.log_likelihood(params, u, xs).reshape(m, m, k, b).sum(axis=0)  # (Ms, K, B)

    fam = cfg.posterior
    scale_pw, scale_pz = model.prior_scales()
    log_q_z = jax.vmap(lambda zr: dist.mixture_log_density(fam, zr, post.mu_z, post.scale_z))(z)
    return ElboTerms(
        log_likelihood=log_lik,
        log_prior_z=dist.log_density(fam, z, 0.0, scale_pz),
        log_prior_w=dist.log_density(fam, w, 0.0, scale_pw),
        log_q_z=log_q_z,
        log_q_w=dist.log_density(fam, w, post.mu_w[:, None], post.scale_w[:, None]),
    )


# ================================================================================ cycle term (SPEC 2.3)
def roll_batch(x: jax.Array, axis: int = 1) -> jax.Array:
    """roll_B(x, 1): example b receives example b-1's code (b = 0 receives the last one)."""
    return jnp.roll(x, 1, axis=axis)


class GlobalBatch:
    """Global-batch helpers: identity on one device or under jit, all-gathers under pmap."""

    def __init__(self, axis_name: Optional[str] = None):
        self.axis_name = axis_name

    def positions(self, local_batch: int) -> jax.Array:
        """Global positions (B_local,) of this device's examples in the global batch."""
        offset = 0 if self.axis_name is None else jax.lax.axis_index(self.axis_name) * local_batch
        return offset + jnp.arange(local_batch)

    def gather(self, x: jax.Array, axis: int) -> jax.Array:
        if self.axis_name is None:
            return x
        return jax.lax.all_gather(x, self.axis_name, axis=axis, tiled=True)

    def local(self, x_global: jax.Array, axis: int, local_batch: int) -> jax.Array:
        if self.axis_name is None:
            return x_global
        start = jax.lax.axis_index(self.axis_name) * local_batch
        return jax.lax.dynamic_slice_in_dim(x_global, start, local_batch, axis=axis)

    def roll(self, x: jax.Array, axis: int) -> jax.Array:
        """roll_B over the global batch (crosses device boundaries under pmap)."""
        return self.local(roll_batch(self.gather(x, axis), axis), axis, x.shape[axis])


def per_view_contrast(a: jax.Array, b: jax.Array, scores_fn, temperature: float) -> jax.Array:
    """Contrast(a_m, b_m) for every view m: a, b (M, B, D); scores_fn(concat (M, 2B, D)) -> (M, 2B, 2B)."""
    cat = jnp.concatenate([a, b], axis=1)
    return jax.vmap(contrast_from_scores)(scores_fn(cat) / temperature)


def genaug_loss(
    model: MultimodalVAE,
    params,
    post: Posterior,
    w_swap: jax.Array,
    z_swap: jax.Array,
    w_sample: jax.Array,
    z_sample: jax.Array,
    loss_type: str = "contrastive",
    temperature: float = 1.0,
    batch: GlobalBatch = GlobalBatch(),
    critic_z: Optional[ScoresFn] = None,
    critic_w: Optional[ScoresFn] = None,
):
    """L_genaug = sum_i 0.5 (loss_z_i + loss_w_i), the generative-augmentation cycle term.

    w_sample (M, B, W), z_sample (M, B, Z): fresh posterior samples w~_i, z~_i; w_swap, z_swap: the
    swapped codes (roll_B of the samples, or prior draws). For each view i:
      (a) x+ = mean D_i([w_swap_i, z~_i]),  mu_z+ = E_i^z(x+),  loss_z = -Contrast(mu_z_i, mu_z+)
      (b) x+ = mean D_i([w~_i, z_swap_i]),  mu_w+ = E_i^w(x+),  loss_w = -Contrast(mu_w_i, mu_w+)
    loss_type 'l2' uses sum_dims (mu - mu+)^2 (batch mean) in place of -Contrast.
    critic_z(a (N, Z), b (N, Z)) and critic_w(a (N, W), b (N, W)) -> (N, N) replace the model's
    critics (`config.model.critic`) in the contrasts; critic_w serves every view.
    Returns (L_genaug, per-view loss_z (M,), per-view loss_w (M,)).
    """
    u_a = jnp.concatenate([w_swap, z_sample], axis=-1)
    u_b = jnp.concatenate([w_sample, z_swap], axis=-1)
    x_plus = model.decode_mean(params, jnp.stack([u_a, u_b], axis=1))  # list of M (2, B, ...)
    mu_z_plus = model.encode_branch_means(params, [x[0] for x in x_plus], "z")  # (M, B, Z)
    mu_w_plus = model.encode_branch_means(params, [x[1] for x in x_plus], "w")  # (M, B, W)
    if loss_type == "l2":
        loss_z = jnp.mean(jnp.sum((post.mu_z - mu_z_plus) ** 2, axis=-1), axis=-1)
        loss_w = jnp.mean(jnp.sum((post.mu_w - mu_w_plus) ** 2, axis=-1), axis=-1)
    else:
        gz = lambda a: batch.gather(a, axis=1)  # noqa: E731
        if critic_z is None:
            critic_z = lambda a, c: model.critic_scores_z(params, a, c)  # noqa: E731
        scores_w = (
            (lambda c: model.critic_scores_w(params, c, c)) if critic_w is None else jax.vmap(lambda c: critic_w(c, c))
        )
        loss_z = -per_view_contrast(gz(post.mu_z), gz(mu_z_plus), jax.vmap(lambda c: critic_z(c, c)), temperature)
        loss_w = -per_view_contrast(gz(post.mu_w), gz(mu_w_plus), scores_w, temperature)
    return jnp.sum(0.5 * (loss_z + loss_w)), loss_z, loss_w


# ================================================================================ diffusion (SPEC 2.4)
def diffusion_prior_loss(
    model: MultimodalVAE, params, mu_z, mu_w, t_z, noise_z, t_w, noise_w, schedule
) -> jax.Array:
    """L_diff = (1/M) sum_m [D_z(mu_z_m) + D_w_m(mu_w_m)].

    mu_z (M, B, Z), mu_w (M, B, W): posterior means (the x0 of the latent DDPMs); t_* (M, B) int
    steps and noise_* the matching standard-normal noise. D is the min-SNR-weighted x0-prediction
    loss of `idmvae_jax.diffusion.diffusion_loss`; one z network for all views, one w network per view.
    """
    m, b, zd = mu_z.shape
    d_z = diffusion_lib.diffusion_loss_per_example(
        model.score_z.apply, params["score_z"], mu_z.reshape(m * b, zd), t_z.reshape(m * b), noise_z.reshape(m * b, zd), schedule,
    ).reshape(m, b).mean(axis=1)
    d_w = jax.vmap(
        lambda p, x0, t, n: diffusion_lib.diffusion_loss(model.score_w.apply, p, x0, t, n, schedule)
    )(params["score_w"], mu_w, t_w, noise_w)
    return jnp.mean(d_z + d_w)


# ================================================================================ randomness
def _noise_layout(cfg: IDMVAEConfig) -> dict:
    """name -> (per-example shape, transform) of every draw of one step; see draw_example_noise."""
    mc, lc = cfg.model, cfg.loss
    m, k, wd, zd, fam = mc.num_views, lc.num_samples, mc.w_dim, mc.z_dim, mc.posterior
    layout = {"elbo_w": ((k, m, wd), fam), "elbo_z": ((k, m, zd), fam), "aux_w": ((k, m, m, wd), fam)}
    if lc.genaug_weight:
        swap = "normal" if lc.genaug_sampling == "diffusion_prior" else fam
        layout.update(genaug_w=((m, wd), fam), genaug_z=((m, zd), fam), swap_w=((m, wd), swap), swap_z=((m, zd), swap))
    if lc.diffusion_weight:
        layout.update(
            diff_t_z=((m,), "timestep"), diff_t_w=((m,), "timestep"),
            diff_noise_z=((m, zd), "normal"), diff_noise_w=((m, wd), "normal"),
        )
    return layout


def _open_unit_uniform(key: jax.Array, n: int) -> jax.Array:
    """(n,) float32 uniforms on the open interval (0, 1): (k + 1/2) 2^-23 for a random 23-bit k.

    Midpoints never reach 0 or 1 (nor round to them after 2u - 1), so every inverse CDF below stays
    finite: the normal tail ends at +-5.29, the Laplace one at +-15.9.
    """
    k = jax.random.bits(key, (n,), jnp.uint32) >> 9
    return (k.astype(jnp.float32) + 0.5) * (2.0 ** -23)


def _from_uniform(u: jax.Array, transform: str, num_timesteps: int) -> jax.Array:
    """Inverse-CDF transform of U(0, 1) draws: standard normal, standard Laplace, or a step in [0, T)."""
    if transform == "normal":
        return jax.scipy.special.ndtri(u)
    if transform == "laplace":
        c = u - 0.5
        return -jnp.sign(c) * jnp.log1p(-2.0 * jnp.abs(c))
    return jnp.minimum(jnp.floor(u * num_timesteps), num_timesteps - 1).astype(jnp.int32)


def draw_example_noise(key: jax.Array, positions: jax.Array, cfg: IDMVAEConfig) -> dict:
    """All per-example random draws of one step, each a function of (key, global position).

    positions: (B,) global example positions. For each example one stream of uniforms on (0, 1) is
    drawn from fold_in(key, position) (one generator call keeps compile times short) and cut into
    named pieces, each mapped by its inverse CDF (always finite: see _open_unit_uniform).
    Returns arrays laid out view-major:
      elbo_w (M, K, B, W), elbo_z (M, K, B, Z), aux_w (M_t, M_s, K, B, W)       [posterior family]
      genaug_w (M, B, W), genaug_z (M, B, Z), swap_w, swap_z (M, B, .)          [if l2 > 0]
      diff_t_z, diff_t_w (M, B) int, diff_noise_z (M, B, Z), diff_noise_w (M, B, W)  [if l_diff > 0]
    """
    layout = _noise_layout(cfg)
    sizes = [math.prod(shape) for shape, _ in layout.values()]

    def one_example(i):
        u = _open_unit_uniform(jax.random.fold_in(key, i), sum(sizes))
        pieces = jnp.split(u, list(itertools.accumulate(sizes))[:-1])
        return {
            name: _from_uniform(piece, transform, cfg.diffusion.num_timesteps).reshape(shape)
            for piece, (name, (shape, transform)) in zip(pieces, layout.items())
        }

    d = jax.vmap(one_example)(positions)  # leading B axis
    out = {
        "elbo_w": d["elbo_w"].transpose(2, 1, 0, 3),
        "elbo_z": d["elbo_z"].transpose(2, 1, 0, 3),
        "aux_w": d["aux_w"].transpose(2, 3, 1, 0, 4),
    }
    for name in layout:
        if name not in out:
            out[name] = jnp.moveaxis(d[name], 0, 1)  # (B, M, ...) -> (M, B, ...)
    return out


# ================================================================================ the objective
def loss_fn(
    params,
    batch: dict,
    key: jax.Array,
    cfg: IDMVAEConfig,
    *,
    axis_name: Optional[str] = None,
    critic_z: Optional[ScoresFn] = None,
    critic_w: Optional[ScoresFn] = None,
):
    """The IDMVAE objective on one batch: returns (total, aux).

    params: `make_model(cfg.model).init(key)`; batch: {"x": [x_0, ..., x_{M-1}], ...} with x_m of
    shape (B, *shape_m) (uint8 images, float vectors, int caption tokens); key: this step's key.
    axis_name: the pmap axis when the batch is a per-device shard (enables the global-batch
    all-gathers); None on one device or under jit with sharded global arrays.
    critic_z(a (N, Z), b (N, Z)) -> (N, N) scores, if given, replaces the model's critic in L_crossMI
    and in the cycle term's z contrast; critic_w(a (N, W), b (N, W)) in its w contrasts (every view).
    Bind them with functools.partial to get a loss of the default signature for `make_train_step`.
    aux: elbo (L_elbo), recon (-mean weighted log-likelihood), kl (mean log q - log p, unweighted by
    beta), cross_mi (L_crossMI), genaug (L_genaug), diffusion (L_diff), total; a term whose weight
    is 0 is not computed and reads 0.
    """
    model = make_model(cfg.model)
    lc = cfg.loss
    gb = GlobalBatch(axis_name)
    xs = model.preprocess(batch["x"])
    b = xs[0].shape[0]
    noise = draw_example_noise(key, gb.positions(b), cfg)
    post = model.encode(params, xs)

    terms = elbo_terms(model, params, xs, post, noise["elbo_w"], noise["elbo_z"], noise["aux_w"])
    l_elbo = iwae_looser_loss(elbo_log_weights(terms, lc.beta))
    zero = jnp.zeros((), jnp.float32)
    aux = {
        "elbo": l_elbo,
        "recon": -jnp.mean(terms.log_likelihood),
        "kl": jnp.mean(terms.log_q_z + terms.log_q_w - terms.log_prior_z - terms.log_prior_w),
        "cross_mi": zero,
        "genaug": zero,
        "diffusion": zero,
    }
    total = l_elbo
    if lc.cross_mi_weight:
        critic = critic_z or (lambda a, c: model.critic_scores_z(params, a, c))
        aux["cross_mi"] = cross_view_infonce_loss(gb.gather(post.mu_z, axis=1), lc.temperature, critic)
        total = total + lc.cross_mi_weight * aux["cross_mi"]
    if lc.genaug_weight:
        w_s = dist.reparameterize(post.mu_w, post.scale_w, noise["genaug_w"])
        z_s = dist.reparameterize(post.mu_z, post.scale_z, noise["genaug_z"])
        if lc.genaug_sampling == "posterior":
            w_swap, z_swap = gb.roll(w_s, axis=1), gb.roll(z_s, axis=1)
        elif lc.genaug_sampling == "prior":
            scale_pw, scale_pz = model.prior_scales()
            w_swap, z_swap = scale_pw * noise["swap_w"], scale_pz * noise["swap_z"]
        else:
            z_swap, w_swap = jax.lax.stop_gradient(
                sample_diffusion_prior(model, params, noise["swap_z"], noise["swap_w"], cfg)
            )
        aux["genaug"], _, _ = genaug_loss(
            model, params, post, w_swap, z_swap, w_s, z_s, lc.genaug_loss, lc.temperature, gb, critic_z, critic_w
        )
        total = total + lc.genaug_weight * aux["genaug"]
    if lc.diffusion_weight:
        mu_z, mu_w = post.mu_z, post.mu_w
        if lc.diffusion_stop_gradient:
            mu_z, mu_w = jax.lax.stop_gradient(mu_z), jax.lax.stop_gradient(mu_w)
        aux["diffusion"] = diffusion_prior_loss(
            model, params, mu_z, mu_w, noise["diff_t_z"], noise["diff_noise_z"],
            noise["diff_t_w"], noise["diff_noise_w"], diffusion_lib.schedule_from_config(cfg.diffusion),
        )
        total = total + lc.diffusion_weight * aux["diffusion"]
    aux["total"] = total
    return total, aux
