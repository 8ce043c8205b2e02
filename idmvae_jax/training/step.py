"""The optimiser, the training state and one pure training step.

`make_train_step(cfg, optimizer)` returns `train_step(state, batch, key=None) -> (state, metrics)`:
a pure function of arrays that `parallel.py` compiles with `jax.jit` on a mesh or with `jax.pmap`
without changing its numbers.

Randomness: the step's key is `fold_in(base_key, step)` (base_key = `state.rng`); `loss_fn` then
draws every per-example variable from (that key, global example position), SPEC 5b.

Non-finite guard, kept on the device so the host need not look every step: the step checks the
loss terms and the gradient norm; the first time one is not finite it records the step and a
bitmask of the offending terms in `state.bad_step` / `state.bad_terms` and leaves params and
optimiser state untouched; later steps then change nothing either. The loop reads the two scalars
on log steps and before every checkpoint, so a checkpoint never holds a state after a bad step.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from idmvae_jax.training import loss as loss_lib
from idmvae_jax.config import IDMVAEConfig

# Terms checked by the guard, in bitmask order (bit i = TERMS[i]): loss_fn's aux and the gradient norm.
TERMS = loss_lib.AUX_TERMS + ("grad_norm",)


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; every leaf is an array).

    params: model parameters. opt_state: optax state. step: int32 number of steps taken.
    rng: uint32 key data of the base key (`jax.random.key_data(jax.random.key(seed))`; raw so
      Orbax and pmap treat it as an ordinary array).
    bad_step: int32, -1 while every step was finite, else the first non-finite step.
    bad_terms: int32 bitmask over TERMS of the non-finite terms at bad_step.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array
    bad_step: jax.Array
    bad_terms: jax.Array


class AmsgradState(NamedTuple):
    count: jax.Array  # int32 ()
    mu: Any  # first moments, like the parameters
    nu: Any  # second moments
    nu_max: Any  # running maximum of the (uncorrected) second moments


def torch_amsgrad(learning_rate: float, b1: float = 0.9, b2: float = 0.999,
                  eps: float = 1e-8) -> optax.GradientTransformation:
    """PyTorch's `Adam(amsgrad=True)`, the authors' optimiser for CUB and CelebAMask-HQ.

    m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g²,  v̂max_t = max(v̂max_{t-1}, v_t),
    update = -lr · (m_t / (1 - b1^t)) / (sqrt(v̂max_t) / sqrt(1 - b2^t) + eps).
    The maximum is over the raw second moments, bias-corrected afterwards with the current t;
    `optax.amsgrad` takes the maximum of the bias-corrected moments instead, which gives other
    updates whenever an early step's moment is the maximum (its correction was larger)."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AmsgradState(jnp.zeros((), jnp.int32), zeros, zeros, zeros)

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        c1, c2 = 1 - b1 ** t, jnp.sqrt(1 - b2 ** t)
        updates = jax.tree.map(lambda m, v: -learning_rate * (m / c1) / (jnp.sqrt(v) / c2 + eps), mu, nu_max)
        return updates, AmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


def make_optimizer(train_config) -> optax.GradientTransformation:
    """Adam (or AdamW) from `config.train`: learning_rate, b1, b2, eps, amsgrad (PyTorch's
    convention: `torch_amsgrad`), weight_decay, grad_clip_norm (0 = none). Constant learning
    rate, as published."""
    tc = train_config
    name = tc.get("optimizer", "adam")
    if name == "adam":
        if tc.get("amsgrad", False):
            opt = torch_amsgrad(tc.learning_rate, b1=tc.b1, b2=tc.b2, eps=tc.eps)
        else:
            opt = optax.adam(tc.learning_rate, b1=tc.b1, b2=tc.b2, eps=tc.eps)
    elif name == "adamw":
        opt = optax.adamw(tc.learning_rate, b1=tc.b1, b2=tc.b2, eps=tc.eps, weight_decay=tc.weight_decay)
    else:
        raise ValueError(f"train.optimizer={name!r}; choose 'adam' or 'adamw'")
    if tc.get("grad_clip_norm", 0.0):
        opt = optax.chain(optax.clip_by_global_norm(tc.grad_clip_norm), opt)
    return opt


def init_state(params, optimizer: optax.GradientTransformation, seed_key: jax.Array) -> TrainState:
    """A fresh TrainState; seed_key: a typed key (jax.random.key) used as the base step key."""
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key_data(seed_key),
        bad_step=jnp.full((), -1, jnp.int32),
        bad_terms=jnp.zeros((), jnp.int32),
    )


def make_init_fn(cfg: IDMVAEConfig, optimizer: optax.GradientTransformation, seed: int) -> Callable[[], TrainState]:
    """A no-argument function building the initial TrainState (jit it with out_shardings, or
    `jax.eval_shape` it for the abstract restore target). Params come from fold_in(key(seed), 0),
    step keys from fold_in(key(seed), 1)."""
    from idmvae_jax.models.multimodal import make_model

    model = make_model(cfg.model)  # built outside any trace: the factories keep example arrays

    def init():
        base = jax.random.key(seed)
        params = model.init(jax.random.fold_in(base, 0))
        return init_state(params, optimizer, jax.random.fold_in(base, 1))

    return init


def step_key(state: TrainState) -> jax.Array:
    """The key of the step about to be taken: fold_in(base key, step)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def decode_bad_terms(mask: int) -> list[str]:
    """Names of the terms set in a bad_terms bitmask."""
    return [name for i, name in enumerate(TERMS) if int(mask) >> i & 1]


def make_train_step(
    cfg: IDMVAEConfig,
    optimizer: optax.GradientTransformation,
    *,
    axis_name: Optional[str] = None,
    loss_fn: Optional[Callable] = None,
):
    """Returns the pure `train_step(state, batch, key=None) -> (new_state, metrics)`.

    axis_name: the pmap axis when the step runs per device (gradients and metrics are then
      pmean-ed; loss_fn does the global-batch all-gathers); None under jit with global arrays.
    loss_fn: the objective (default `training.loss.loss_fn`, looked up at trace time).
    key: overrides the step key (default fold_in(base key, step)).
    metrics: every aux term of the loss plus grad_norm, as float32 scalars.
    """

    def train_step(state: TrainState, batch: dict, key: Optional[jax.Array] = None):
        objective = loss_fn or loss_lib.loss_fn
        if key is None:
            key = step_key(state)
        grad_fn = jax.value_and_grad(lambda p: objective(p, batch, key, cfg, axis_name=axis_name), has_aux=True)
        (_, aux), grads = grad_fn(state.params)
        if axis_name is not None and jax.lax.axis_size(axis_name) > 1:
            # (on one device the mean is the identity; skipping it spares XLA a copy of the grads)
            grads = jax.lax.pmean(grads, axis_name)
            aux = jax.lax.pmean(aux, axis_name)
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in aux.items()}
        metrics["grad_norm"] = optax.tree.norm(grads).astype(jnp.float32)
        bits = sum(
            (~jnp.isfinite(metrics[name])).astype(jnp.int32) << i for i, name in enumerate(TERMS) if name in metrics
        )
        ok = (bits == 0) & (state.bad_step < 0)

        def update(operands):
            grads, opt_state, params = operands
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        # A branch, not jnp.where(ok, new, old): the select keeps old and new params and Adam
        # moments alive together (0.4 GiB more XLA temporaries at paper size, batch 32).
        params, opt_state = jax.lax.cond(ok, update, lambda operands: (operands[2], operands[1]),
                                         (grads, state.opt_state, state.params))
        first_bad = (bits != 0) & (state.bad_step < 0)
        new_state = TrainState(
            params=params,
            opt_state=opt_state,
            step=state.step + 1,
            rng=state.rng,
            bad_step=jnp.where(first_bad, state.step, state.bad_step),
            bad_terms=jnp.where(first_bad, bits, state.bad_terms),
        )
        return new_state, metrics

    return train_step


def make_multi_step(train_step: Callable, num_steps: int):
    """`num_steps` train steps in one call via lax.scan: batches carry a leading (num_steps,) axis.

    Returns (state, metrics of the last step)."""
    if num_steps == 1:
        return lambda state, batch: train_step(state, jax.tree.map(lambda x: x[0], batch))

    def multi(state, batches):
        state, metrics = jax.lax.scan(lambda s, b: train_step(s, b), state, batches)
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return multi
