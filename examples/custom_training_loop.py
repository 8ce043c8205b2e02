r"""A custom training loop around the pure objective `idmvae_jax.training.loss.loss_fn`, with optax.

    python examples/custom_training_loop.py --config=configs/polymnist_quadrant.py:tiny --steps=20

The library builds the typed config from the config file and the data's views
(`build.build_idmvae_config`), the parameters from `make_model(cfg.model).init`, and batches from
`data.make_iterator`; the loop below is plain JAX: `jax.value_and_grad(loss_fn)`, an optax update,
one jitted step, no mesh, checkpoints or logging. Batches: {"x": [x_0 ... x_{M-1}]}, x_m of shape
(B, *shape_m). Prints the loss on a fixed batch before and after training.
"""
from __future__ import annotations

import argparse

import jax
import optax

from idmvae_jax import build, data
from idmvae_jax.training.loss import loss_fn
from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments
from idmvae_jax.models.multimodal import make_model


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(p, "configs/polymnist_quadrant.py:tiny")
    p.add_argument("--steps", type=int, default=20)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Trains `--steps` steps; returns the losses, the fixed-batch loss before/after, the params."""
    args = parse_args(argv)
    config = config_from_arguments(args)

    info = data.get_dataset_info(config.data)  # prepares the dataset once (cached)
    cfg = build.build_idmvae_config(config, info)  # typed IDMVAEConfig: model, loss, diffusion
    params = jax.jit(make_model(cfg.model).init)(jax.random.key(config.seed))
    optimizer = optax.adam(config.train.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, batch, key):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key, cfg)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, aux

    eval_loss = jax.jit(lambda p, b, k: loss_fn(p, b, k, cfg))  # -> (total, aux)

    batches = data.make_iterator(config.data, "train", config.train.batch_size, seed=config.seed)
    fixed = {"x": data.load_split(config.data, "test", max_examples=config.train.batch_size)["x"]}
    key = jax.random.key(config.seed)
    fixed_key = jax.random.fold_in(key, 10**6)
    before = float(eval_loss(params, fixed, fixed_key)[0])
    initial_params = params
    history = []
    try:
        for step in range(args.steps):
            batch = {"x": next(batches)["x"]}  # only the views enter the loss
            params, opt_state, aux = train_step(params, opt_state, batch, jax.random.fold_in(key, step))
            history.append({k: float(v) for k, v in aux.items()})
            print(f"step {step + 1}: " + " ".join(f"{k}={v:.4g}" for k, v in history[-1].items()))
    finally:
        batches.close()
    after = float(eval_loss(params, fixed, fixed_key)[0])
    print(f"loss on a fixed test batch: {before:.4g} -> {after:.4g}")
    return dict(history=history, before=before, after=after, params=params, initial_params=initial_params)


if __name__ == "__main__":
    main()
