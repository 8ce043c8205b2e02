r"""Train with your own critic in the cross-view InfoNCE term (an RBF critic here).

    python examples/custom_critic.py --config=configs/polymnist_quadrant.py:tiny --steps=5

A critic is any function `critic(a (Na, D), b (Nb, D)) -> scores (Na, Nb)`; InfoNCE divides the
scores by the temperature. `training.loss.loss_fn` takes one for the shared codes and one for the private
codes, replacing the model's `config.model.critic` ('cosine', 'centered' or 'projection'):

    loss_fn = functools.partial(training.loss.loss_fn, critic_z=rbf_critic)   # L_crossMI and the cycle z term

The result has `loss_fn`'s signature, so it plugs into `training.step.make_train_step(cfg, optimizer,
loss_fn=...)` (used below) and `training.loop.train_and_evaluate(config, workdir, loss_fn=...)`.
"""
from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp

from idmvae_jax import build, data
from idmvae_jax.training.loss import loss_fn as library_loss_fn
from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments
from idmvae_jax.training import step as train_step_lib
from idmvae_jax.models.multimodal import make_model


def rbf_critic(a: jax.Array, b: jax.Array, bandwidth: float = 1.0) -> jax.Array:
    """s_pq = -|a_p - b_q|^2 / (2 bandwidth^2): (Na, D), (Nb, D) -> (Na, Nb)."""
    sq = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
    return -jnp.maximum(sq, 0.0) / (2.0 * bandwidth**2)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(p, "configs/polymnist_quadrant.py:tiny")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--bandwidth", type=float, default=1.0)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Returns the first batch's library (cosine) aux, the RBF training metrics, the params."""
    args = parse_args(argv)
    config = config_from_arguments(args)
    cfg = build.build_idmvae_config(config, data.get_dataset_info(config.data))
    loss_fn = functools.partial(library_loss_fn, critic_z=functools.partial(rbf_critic, bandwidth=args.bandwidth))

    params = jax.jit(make_model(cfg.model).init)(jax.random.key(config.seed))
    optimizer = train_step_lib.make_optimizer(config.train)  # Adam from config.train
    state = train_step_lib.init_state(params, optimizer, jax.random.key(config.seed + 1))
    step = jax.jit(train_step_lib.make_train_step(cfg, optimizer, loss_fn=loss_fn))
    batches = data.make_iterator(config.data, "train", config.train.batch_size, seed=config.seed)
    try:
        first = {"x": next(batches)["x"]}
        key = train_step_lib.step_key(state)
        _, library_aux = jax.jit(lambda p, b, k: library_loss_fn(p, b, k, cfg))(state.params, first, key)
        history = []
        for i in range(args.steps):
            batch = first if i == 0 else {"x": next(batches)["x"]}
            state, metrics = step(state, batch)  # metrics: the loss at the parameters before the update
            history.append({k: float(v) for k, v in metrics.items()})
            print(f"step {i + 1}: total={history[-1]['total']:.4g} cross_mi(rbf)={history[-1]['cross_mi']:.4g}")
    finally:
        batches.close()
    library = {k: float(v) for k, v in library_aux.items()}
    print(f"first batch: cross_mi cosine (loss_fn) {library['cross_mi']:.4g}, rbf {history[0]['cross_mi']:.4g}")
    return dict(library=library, history=history, initial_params=params, state=state, cfg=cfg,
                batch=first, loss_fn=loss_fn)


if __name__ == "__main__":
    main()
