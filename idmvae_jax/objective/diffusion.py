"""Diffusion latent priors (SPEC §2.4): sigmoid schedule, min-SNR x0 loss, DDIM (η = 0) sampler.

A DDPM over latent codes x0 of shape (B, d), trained with x0-prediction:

    t ~ U{0..T−1},  ε ~ N(0, I),  x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε
    D(x0) = mean_B [ w_t Σ_dims (f(x_t, t) − x0)² ],  w_t = clip(SNR_t, 1, 100),  SNR_t = ᾱ_t/(1−ᾱ_t)

and sampled with deterministic DDIM over 100 of the T = 1000 steps. All functions are pure: the
caller supplies t, ε and x_T (`sample_timesteps_and_noise` is a convenience that draws them), and
`apply_fn(params, x (B, d), t (B,) int) -> x0_hat (B, d)` is any x0 predictor with the signature of
`idmvae_jax.models.score_net.make_score_net(...).apply`.

The IDMVAE latent priors (one z network shared by the M views, one w network per view) enter
through two bound predictors, `score_z_fn(x (N, Z), t (N,)) -> (N, Z)` and
`score_w_fn(x (M, N, W), t (M, N)) -> (M, N, W)`: `diffusion_prior_loss` trains them on the
posterior means and `sample_latent_priors` draws from them.
"""
from typing import Any, Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from idmvae_jax.objective.noise import Draw

ApplyFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


class DiffusionSchedule(NamedTuple):
    """Per-step training quantities of a discrete diffusion, each a float32 (T,) array.

    Only arrays are stored, so the schedule is an ordinary pytree: it can be passed through
    `jax.jit` as an argument (no static arguments needed) or closed over. `num_timesteps` is a
    property derived from the static array shape, so it is a python int even under tracing; it is
    therefore not a constructor argument.

    Attributes:
      alphas_cumprod: ᾱ_t for t = 0..T−1 (ᾱ_t = Π_{i=1}^{t+1} (1 − β_i)).
      betas: β_k for k = 1..T (stored at index k − 1).
      snr: SNR_t = ᾱ_t / (1 − ᾱ_t) for t = 0..T−1.
    """

    alphas_cumprod: jax.Array
    betas: jax.Array
    snr: jax.Array

    @property
    def num_timesteps(self) -> int:
        """T, the number of training steps (static: read from the array shape)."""
        return int(self.alphas_cumprod.shape[0])


def sigmoid_schedule(
    num_timesteps: int = 1000, start: float = -3.0, end: float = 3.0, tau: float = 1.0
) -> DiffusionSchedule:
    """The sigmoid β-schedule of SPEC §2.4, computed in float64 numpy and cast to float32.

    u_k = k/T (k = 0..T);  f(u) = (σ(e/τ) − σ((u(e−s)+s)/τ)) / (σ(e/τ) − σ(s/τ));
    ᾱ_k = f(u_k)/f(u_0);  β_k = clip(1 − ᾱ_k/ᾱ_{k−1}, 0, 0.999) (k = 1..T);
    training ᾱ_t = Π_{i=1}^{t+1} (1 − β_i) (t = 0..T−1);  SNR_t = ᾱ_t/(1 − ᾱ_t).

    Returns:
      DiffusionSchedule with (T,) float32 arrays.
    """
    T = int(num_timesteps)
    if T < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    u = np.arange(T + 1, dtype=np.float64) / T
    v_start, v_end = sigmoid(start / tau), sigmoid(end / tau)
    f = (v_end - sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)
    abar = f / f[0]
    betas = np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
    alphas_cumprod = np.cumprod(1.0 - betas)
    snr = alphas_cumprod / (1.0 - alphas_cumprod)
    return DiffusionSchedule(
        alphas_cumprod=jnp.asarray(alphas_cumprod, jnp.float32),
        betas=jnp.asarray(betas, jnp.float32),
        snr=jnp.asarray(snr, jnp.float32),
    )


def q_sample(schedule: DiffusionSchedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Forward diffusion x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε.

    Args:
      schedule: the diffusion schedule.
      x0: (..., B, d) clean data.
      t: (..., B) int steps in [0, T).
      noise: (..., B, d) standard normal ε.

    Returns:
      (..., B, d) x_t.
    """
    abar = schedule.alphas_cumprod[t][..., None].astype(x0.dtype)
    return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise


def min_snr_weight(
    schedule: DiffusionSchedule, t: jax.Array, min_weight: float = 1.0, max_weight: float = 100.0
) -> jax.Array:
    """Min-SNR weight of the x0 loss: w_t = clip(SNR_t, min_weight, max_weight); t (B,) -> (B,)."""
    return jnp.clip(schedule.snr[t], min_weight, max_weight)


def diffusion_loss_per_example(
    apply_fn: ApplyFn,
    params: Any,
    x0: jax.Array,
    t: jax.Array,
    noise: jax.Array,
    schedule: DiffusionSchedule,
) -> jax.Array:
    """Per-example weighted x0-prediction loss w_t · Σ_dims (f(x_t, t) − x0)².

    Args:
      apply_fn: x0 predictor `apply_fn(params, x (..., B, d), t (..., B) int) -> (..., B, d)`.
      params: its parameters.
      x0: (..., B, d) clean data (e.g. posterior means; gradients flow into it); leading axes
        (e.g. one per view for stacked per-view networks) are carried to the predictor.
      t: (..., B) int steps in [0, T), drawn by the caller.
      noise: (..., B, d) standard normal ε, drawn by the caller.
      schedule: the diffusion schedule.

    Returns:
      (..., B) losses.
    """
    x_t = q_sample(schedule, x0, t, noise)
    x0_hat = apply_fn(params, x_t, t)
    sq_err = jnp.sum(jnp.square(x0_hat - x0), axis=-1)
    return min_snr_weight(schedule, t).astype(sq_err.dtype) * sq_err


def diffusion_loss(
    apply_fn: ApplyFn,
    params: Any,
    x0: jax.Array,
    t: jax.Array,
    noise: jax.Array,
    schedule: DiffusionSchedule,
) -> jax.Array:
    """D(x0) = mean_B [ w_t Σ_dims (f(x_t, t) − x0)² ] (scalar); arguments as in
    `diffusion_loss_per_example`."""
    return jnp.mean(diffusion_loss_per_example(apply_fn, params, x0, t, noise, schedule))


def sample_timesteps_and_noise(
    key: jax.Array, shape: Tuple[int, ...], num_timesteps: int, dtype=jnp.float32
) -> Tuple[jax.Array, jax.Array]:
    """Draws t ~ U{0..T−1} of shape (shape[0],) (int32) and ε ~ N(0, I) of `shape` (e.g. (B, d))."""
    key_t, key_eps = jax.random.split(key)
    t = jax.random.randint(key_t, (shape[0],), 0, num_timesteps, dtype=jnp.int32)
    noise = jax.random.normal(key_eps, shape, dtype)
    return t, noise


def ddim_timesteps(num_timesteps: int = 1000, num_steps: int = 100) -> np.ndarray:
    """The (t, t_next) pairs of DDIM sampling: times = int(linspace(−1, T−1, num_steps+1)) reversed.

    Returns:
      (num_steps, 2) int64 numpy array; for the defaults (999, 989), (989, 979), ..., (9, −1).
    """
    times = np.linspace(-1, num_timesteps - 1, num_steps + 1).astype(np.int64)[::-1]
    return np.stack([times[:-1], times[1:]], axis=-1)


def ddim_sample(
    apply_fn: ApplyFn,
    params: Any,
    x_T: jax.Array,
    schedule: DiffusionSchedule,
    num_steps: int = 100,
) -> jax.Array:
    """Deterministic DDIM (η = 0, no clipping of x̂0) from x_T to x0, as a `lax.scan` over the pairs.

    For each (t, t_next) of `ddim_timesteps(T, num_steps)`:
        x̂0 = f(x, t);  ε̂ = (x − √ᾱ_t x̂0)/√(1 − ᾱ_t);
        x ← x̂0 if t_next < 0 else √ᾱ_{t_next} x̂0 + √(1 − ᾱ_{t_next}) ε̂.

    Jit-able (with `apply_fn` and `num_steps` static, e.g. closed over) and differentiable w.r.t.
    `params` and `x_T`.

    Args:
      apply_fn: x0 predictor `apply_fn(params, x (..., B, d), t (..., B) int32) -> (..., B, d)`.
      params: its parameters.
      x_T: (..., B, d) starting noise, drawn by the caller from N(0, I); leading axes (e.g. one per
        view for stacked per-view networks) are carried to the predictor.
      schedule: the diffusion schedule.
      num_steps: number of DDIM steps (python int).

    Returns:
      (..., B, d) samples x0.
    """
    pairs = jnp.asarray(ddim_timesteps(schedule.num_timesteps, num_steps), jnp.int32)
    abar_all = schedule.alphas_cumprod.astype(x_T.dtype)

    def step(x, pair):
        t, t_next = pair[0], pair[1]
        x0_hat = apply_fn(params, x, jnp.full(x.shape[:-1], t, jnp.int32))
        abar = abar_all[t]
        eps_hat = (x - jnp.sqrt(abar) * x0_hat) / jnp.sqrt(1.0 - abar)
        abar_next = abar_all[jnp.maximum(t_next, 0)]
        x_next = jnp.sqrt(abar_next) * x0_hat + jnp.sqrt(1.0 - abar_next) * eps_hat
        return jnp.where(t_next < 0, x0_hat, x_next), None

    x0, _ = jax.lax.scan(step, x_T, pairs)
    return x0


def schedule_from_config(diffusion_cfg) -> DiffusionSchedule:
    """The sigmoid schedule of a `DiffusionConfig` (num_timesteps, schedule_start/end/tau).

    Not cached on purpose: built inside a trace, its arrays belong to that trace.
    """
    d = diffusion_cfg
    return sigmoid_schedule(d.num_timesteps, d.schedule_start, d.schedule_end, d.schedule_tau)


def noise_draws(num_views: int, w_dim: int, z_dim: int) -> dict:
    """L_diff's draws, each (M, B, .): diff_t_z, diff_t_w int steps, diff_noise_z, diff_noise_w."""
    m = num_views
    return {
        "diff_t_z": Draw((m,), "timestep"), "diff_t_w": Draw((m,), "timestep"),
        "diff_noise_z": Draw((m, z_dim), "normal"), "diff_noise_w": Draw((m, w_dim), "normal"),
    }


def diffusion_prior_loss(
    score_z_fn: Callable, score_w_fn: Callable, mu_z, mu_w, t_z, noise_z, t_w, noise_w, schedule: DiffusionSchedule
) -> jax.Array:
    """L_diff = (1/M) sum_m [D_z(mu_z_m) + D_w_m(mu_w_m)] (SPEC 2.4).

    mu_z (M, B, Z), mu_w (M, B, W): posterior means (the x0 of the latent DDPMs); t_* (M, B) int
    steps and noise_* the matching standard-normal noise. score_z_fn(x (N, Z), t (N,)) is the z
    network shared by the views; score_w_fn(x (M, B, W), t (M, B)) applies view m's w network to row m.
    """
    m, b, zd = mu_z.shape
    d_z = diffusion_loss_per_example(
        lambda _, x, t: score_z_fn(x, t), None, mu_z.reshape(m * b, zd), t_z.reshape(m * b),
        noise_z.reshape(m * b, zd), schedule,
    ).reshape(m, b).mean(axis=1)
    d_w = diffusion_loss_per_example(
        lambda _, x, t: score_w_fn(x, t), None, mu_w, t_w, noise_w, schedule).mean(axis=1)  # (M,)
    return jnp.mean(d_z + d_w)


def sample_latent_priors(score_z_fn: Callable, score_w_fn: Callable, x_z, x_w, schedule: DiffusionSchedule,
                         num_steps: int):
    """DDIM samples of the latent priors from base noise x_z (..., N, Z), x_w (M, N, W).

    Returns (z (..., N, Z), w (M, N, W)); the predictors are those of `diffusion_prior_loss`.
    """
    z = ddim_sample(lambda _, x, t: score_z_fn(x, t), None, x_z.reshape(-1, x_z.shape[-1]), schedule, num_steps)
    w = ddim_sample(lambda _, x, t: score_w_fn(x, t), None, x_w, schedule, num_steps)
    return z.reshape(x_z.shape), w
