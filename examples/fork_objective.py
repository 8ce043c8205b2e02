r"""The whole IDMVAE objective around networks of your own, from `idmvae_jax.objective` and `core` only.

    python examples/fork_objective.py --steps=200

A fork that keeps the method and replaces the networks needs nothing else from the package: every
term of `idmvae_jax.objective` takes arrays plus the apply functions it calls. Here the encoders,
decoders, critics and latent score networks are small MLPs written in plain JAX (no Flax, no
`idmvae_jax.models`) for M views of vector data that share a 2-d factor; the total is

    L_elbo + l1 L_crossMI + l2 L_genaug + l_diff L_diff       (SPEC 2; weights below)

composed in `objective_fn`, and a few hundred Adam steps train it. The draws come from
`objective.draw_example_noise`, so each example's noise depends only on (key, its position).
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from idmvae_jax import objective
from idmvae_jax.core import distributions as dist
from idmvae_jax.core.similarity import cosine_scores
from idmvae_jax.objective import diffusion, elbo, genaug

M, D, Z, W, H = 3, 8, 2, 2, 32  # views, data dims, shared / private code sizes, hidden width
BETA, L1, L2, L_DIFF, TAU, LIK_SCALE = 1.0, 10.0, 1.0, 0.1, 1.0, 0.1
SCHEDULE = diffusion.sigmoid_schedule(100)


def mlp_init(key, sizes):
    """[(W (n_in, n_out), b (n_out,))] with 1/sqrt(n_in) weights."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def mlp_apply(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jnp.tanh(x)
    return x


def init(key):
    """Per-view encoder (D -> mu_w, raw_w, mu_z, raw_z), decoder (W+Z -> D), w critic head and w
    score net, each stacked over the M views; one z critic head and one shared z score net."""
    k = jax.random.split(key, 6)
    per_view = lambda kk, sizes: jax.vmap(lambda v: mlp_init(v, sizes))(jax.random.split(kk, M))  # noqa: E731
    return {
        "enc": per_view(k[0], [D, H, 2 * (W + Z)]),
        "dec": per_view(k[1], [W + Z, H, D]),
        "critic_w": per_view(k[2], [W, H, 4]),
        "critic_z": mlp_init(k[3], [Z, H, 4]),
        "score_w": per_view(k[4], [W + 1, H, W]),
        "score_z": mlp_init(k[5], [Z + 1, H, Z]),
    }


def encode(params, xs):
    """xs (M, B, D) -> Posterior of (M, B, .) arrays (scale = softplus(raw) + 1e-6)."""
    mu_w, raw_w, mu_z, raw_z = jnp.split(jax.vmap(mlp_apply)(params["enc"], xs), [W, 2 * W, 2 * W + Z], axis=-1)
    return dist.Posterior(mu_w, dist.latent_scale(raw_w, "normal", 1e-6), mu_z, dist.latent_scale(raw_z, "normal", 1e-6))


def decode(params, u):
    """u (M, S, B, W+Z) -> means (M, S, B, D): view m's decoder on row m."""
    return jax.vmap(mlp_apply)(params["dec"], u)


def objective_fn(params, xs, key):
    """(total, terms) of the IDMVAE objective on xs (M, B, D), every network our own."""
    b = xs.shape[1]
    draws = {**elbo.noise_draws(M, 1, W, Z, "normal"), **genaug.noise_draws(M, W, Z, "normal", "posterior"),
             **diffusion.noise_draws(M, W, Z)}
    noise = objective.draw_example_noise(key, jnp.arange(b), draws, SCHEDULE.num_timesteps)
    post = encode(params, xs)
    prior_w, prior_z = dist.prior_scale(W, "normal", 1e-6), dist.prior_scale(Z, "normal", 1e-6)

    def log_likelihood(u):  # (M, S, B, W+Z) -> (M, S, B): Laplace with a fixed scale
        return jnp.sum(-jnp.abs(xs[:, None] - decode(params, u)) / LIK_SCALE - jnp.log(2 * LIK_SCALE), axis=-1)

    aux_scale = jnp.ones((M, W))  # a fixed auxiliary prior r_m(w_m) = N(0, 1)
    terms = objective.elbo_terms(log_likelihood, post, noise["elbo_w"], noise["elbo_z"], noise["aux_w"],
                                 aux_scale, prior_w, prior_z, "normal")
    l_elbo = objective.iwae_looser_loss(objective.elbo_log_weights(terms, BETA))

    def critic_z(a, c):  # a learnable projection critic
        return cosine_scores(mlp_apply(params["critic_z"], a), mlp_apply(params["critic_z"], c))

    def critic_w(a, c):  # (M, N, W), (M, N, W) -> (M, N, N), view m's head on row m
        head = jax.vmap(mlp_apply)
        return jax.vmap(cosine_scores)(head(params["critic_w"], a), head(params["critic_w"], c))

    l_cross = objective.cross_view_infonce_loss(post.mu_z, TAU, critic_z)

    w_a, z_a, w_b, z_b = objective.posterior_samples(post, noise)  # each branch draws its own
    w_swap, z_swap = objective.swapped_codes("posterior", w_a, z_b, noise)
    l_genaug, _, _ = objective.genaug_loss(
        lambda u: list(decode(params, u)), lambda x, branch: encode(params, jnp.stack(x))[0 if branch == "w" else 2],
        critic_z, critic_w, post, w_swap, z_a, w_b, z_swap, temperature=TAU)

    def score(p, x, t):  # x0 prediction from [x, t / T]
        return mlp_apply(p, jnp.concatenate([x, (t[..., None] / SCHEDULE.num_timesteps).astype(x.dtype)], -1))

    l_diff = objective.diffusion_prior_loss(
        lambda x, t: score(params["score_z"], x, t), lambda x, t: jax.vmap(score)(params["score_w"], x, t),
        post.mu_z, post.mu_w, noise["diff_t_z"], noise["diff_noise_z"], noise["diff_t_w"], noise["diff_noise_w"],
        SCHEDULE)
    total = l_elbo + L1 * l_cross + L2 * l_genaug + L_DIFF * l_diff
    return total, {"elbo": l_elbo, "cross_mi": l_cross, "genaug": l_genaug, "diffusion": l_diff, "total": total}


def make_data(n, seed=0):
    """(M, n, D) views: a shared 2-d factor through each view's random linear map, plus a private
    2-d factor per view and a little noise."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, Z))
    maps = rng.normal(size=(M, Z + W, D)) / 2
    views = [np.concatenate([shared, rng.normal(size=(n, W))], -1) @ maps[m] for m in range(M)]
    return jnp.asarray(np.stack(views) + 0.05 * rng.normal(size=(M, n, D)), jnp.float32)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch_size", type=int, default=64)
    args = p.parse_args(argv)
    params = init(jax.random.key(0))
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(params)
    data = make_data(4096)

    @jax.jit
    def step(params, opt_state, xs, key):
        (_, terms), grads = jax.value_and_grad(objective_fn, has_aux=True)(params, xs, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, terms

    fixed = data[:, : args.batch_size]
    first = jax.jit(objective_fn)(params, fixed, jax.random.key(1))[1]
    history = []
    for i in range(args.steps):
        start = (i * args.batch_size) % (data.shape[1] - args.batch_size)
        params, opt_state, terms = step(params, opt_state, data[:, start:start + args.batch_size],
                                        jax.random.fold_in(jax.random.key(2), i))
        history.append({k: float(v) for k, v in terms.items()})
        if (i + 1) % 50 == 0 or i + 1 == args.steps:
            print(f"step {i + 1}: " + " ".join(f"{k}={v:.4g}" for k, v in history[-1].items()))
    last = jax.jit(objective_fn)(params, fixed, jax.random.key(1))[1]
    print(f"fixed batch, fixed key: total {float(first['total']):.4g} -> {float(last['total']):.4g}")
    return dict(first={k: float(v) for k, v in first.items()}, last={k: float(v) for k, v in last.items()},
                history=history, params=params, objective_fn=objective_fn, data=fixed)


if __name__ == "__main__":
    main()
