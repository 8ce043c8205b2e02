r"""Add a modality to a model: a 10-d vector view (a noisy one-hot digit) next to the images.

    python examples/new_modality.py --config=configs/polymnist_quadrant.py:tiny --steps=5

Views are not written in the config: the model gets one `ViewSpec` per data view, which
`build.build_idmvae_config(config, views)` makes from each view's `data.ViewInfo` (kind, shape,
dtype) and the per-kind settings `config.model.<kind>` (here `model.vector.hidden`: the MLP widths).
Kinds: 'image' (uint8 (H, W, C)), 'latent' (float (H, W, C)), 'vector' (float (D,)), 'caption'
(int tokens (L,)). Adding a view is adding a ViewInfo and one more array to batch["x"]; the new
view gets its own parameter group (`params["encoders"]["views_<m>"]`, same for the decoders) and
enters every loss term. With your own data, `configs/npz.py` infers the views from the files.
"""
from __future__ import annotations

import argparse

import jax
import numpy as np
import optax

from idmvae_jax import build, data
from idmvae_jax.training.loss import loss_fn
from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments
from idmvae_jax.models.multimodal import group_name, make_model

VECTOR_DIM = 10  # one entry per digit class


def vector_view(y_shared: np.ndarray, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """The new view: one_hot(digit) + noise, float32 (B, 10)."""
    onehot = np.eye(VECTOR_DIM, dtype=np.float32)[y_shared]
    return onehot + noise * rng.standard_normal(onehot.shape).astype(np.float32)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(p, "configs/polymnist_quadrant.py:tiny")
    p.add_argument("--steps", type=int, default=5)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Returns the typed config, the initial and final params, the first gradients and the losses."""
    args = parse_args(argv)
    config = config_from_arguments(args)
    config.model.vector.hidden = (32, 16)  # encoder MLP widths of vector views (decoder: reversed)

    info = data.get_dataset_info(config.data)
    views = list(info.views) + [data.ViewInfo(kind="vector", shape=(VECTOR_DIM,), dtype="float32")]
    cfg = build.build_idmvae_config(config, views)  # one ViewSpec per view; images share a group
    new_view = len(views) - 1
    print("views:", [(v.kind, v.shape) for v in cfg.model.views])

    model = make_model(cfg.model)
    params = jax.jit(model.init)(jax.random.key(config.seed))
    group = group_name((new_view,))  # the new view's own group: params["encoders"|"decoders"][group]
    print(f"view {new_view}: parameter group {group!r},",
          sum(a.size for a in jax.tree.leaves(params["encoders"][group])), "encoder parameters")
    optimizer = optax.adam(config.train.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, batch, key):
        (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key, cfg)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, aux, grads

    rng = np.random.default_rng(config.seed)
    key = jax.random.key(config.seed + 1)
    batches = data.make_iterator(config.data, "train", config.train.batch_size, seed=config.seed)
    initial_params, first_grads, history = params, None, []
    try:
        for step in range(args.steps):
            b = next(batches)
            batch = {"x": list(b["x"]) + [vector_view(b["y_shared"], rng)]}
            params, opt_state, aux, grads = train_step(params, opt_state, batch, jax.random.fold_in(key, step))
            first_grads = grads if first_grads is None else first_grads
            history.append({k: float(v) for k, v in aux.items()})
            print(f"step {step + 1}: total={history[-1]['total']:.4g} elbo={history[-1]['elbo']:.4g}")
    finally:
        batches.close()
    return dict(cfg=cfg, new_view=new_view, initial_params=initial_params, params=params,
                first_grads=first_grads, history=history)


if __name__ == "__main__":
    main()
