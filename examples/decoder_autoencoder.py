r"""How fast can the image decoder learn to draw the digit? A plain autoencoder of one view.

    python examples/decoder_autoencoder.py --config=configs/polymnist_quadrant.py:mini \
        --latent_dim=128 --set "model.image.channels=(16,32,64)" --steps=6000 --eval_every=500

One view's encoder branch (`models.encoders.ConvBranch`, its posterior mean as the code) and
decoder (`models.decoders.ConvDecoder`, sigmoid means), with the config's widths, trained as a
deterministic autoencoder: no KL, no prior, no other view, loss mean |x - x_hat| (`--loss=l1`, the
Laplace likelihood up to constants) or mean (x - x_hat)^2 (`--loss=l2`). It bounds from above how
fast the full model's decoders can learn the digit: their inputs carry less information (KL,
prior private codes in cross-reconstruction). Every `--eval_every` steps it prints one JSON line:
  recon_digit   accuracy of the evaluation's digit classifier of this view
                (`label_classifiers.train_or_load_classifiers`, cached) on the test
                reconstructions;
  mae           mean |x - x_hat| over the test split, pixel values in [0, 1];
  loss          the training loss of the last step.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from idmvae_jax import data
from idmvae_jax.evaluation import label_classifiers, model_fns
from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments
from idmvae_jax.models.decoders import ConvDecoder
from idmvae_jax.models.encoders import ConvBranch


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(p, "configs/polymnist_quadrant.py:mini")
    p.add_argument("--view", type=int, default=0)
    p.add_argument("--latent_dim", type=int, default=0, help="0 = the config's z_dim + w_dim")
    p.add_argument("--loss", choices=("l1", "l2"), default="l1")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval_every", type=int, default=500)
    p.add_argument("--learning_rate", type=float, default=0.0, help="0 = the config's")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Returns {'rows': the printed JSON rows, 'params', 'initial_params', 'reconstruct'}."""
    args = parse_args(argv)
    config = config_from_arguments(args)
    info = data.get_dataset_info(config.data)
    if not 0 <= args.view < len(info.views) or info.views[args.view].kind != "image":
        raise ValueError(f"--view={args.view}: pick an image view in 0..{len(info.views) - 1}")
    channels = tuple(config.model.image.channels)
    latent = args.latent_dim or int(config.model.z_dim) + int(config.model.w_dim)
    encoder = ConvBranch(channels, latent)
    decoder = ConvDecoder(tuple(info.views[args.view].shape), channels)

    test = data.load_split(config.data, "test")
    train = data.load_split(config.data, "train",
                            max_examples=label_classifiers.classifier_train_size(config.eval, info.splits["train"]))
    classifiers = label_classifiers.train_or_load_classifiers(
        config, info, train, test, label_classifiers.classifier_cache_dir(config, "/tmp"), log=lambda msg: None)
    x_test = test["x"][args.view].astype(np.float32) / 255.0

    k_enc, k_dec = jax.random.split(jax.random.key(config.seed))
    params = {"encoder": encoder.init(k_enc, x_test[:1])["params"],
              "decoder": decoder.init(k_dec, jnp.zeros((1, latent)))["params"]}
    optimizer = optax.adam(args.learning_rate or config.train.learning_rate)
    opt_state = optimizer.init(params)

    def reconstruct(p, x):  # (B, H, W, C) in [0, 1] -> (B, H, W, C) in [0, 1]
        code, _ = encoder.apply({"params": p["encoder"]}, x)
        return jax.nn.sigmoid(decoder.apply({"params": p["decoder"]}, code))

    def loss_fn(p, x):
        err = reconstruct(p, x) - x
        return jnp.mean(jnp.abs(err)) if args.loss == "l1" else jnp.mean(err ** 2)

    @jax.jit
    def train_step(p, s, x):
        loss, grads = jax.value_and_grad(loss_fn)(p, x)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    reconstruct_jit = jax.jit(reconstruct)

    def test_row(p):
        recon = np.concatenate([np.asarray(reconstruct_jit(p, x_test[i:i + 250]))
                                for i in range(0, len(x_test), 250)])
        images = np.asarray(model_fns.to_data_format("image", recon))  # uint8, as evaluate scores them
        pred = classifiers.predict_shared(args.view, images)
        return dict(recon_digit=round(float(np.mean(pred == test["y_shared"])), 4),
                    mae=round(float(np.mean(np.abs(recon - x_test))), 4))

    batches = data.make_iterator(config.data, "train", config.train.batch_size, seed=config.seed)
    initial_params, rows, t0 = params, [], time.time()
    try:
        for step in range(1, args.steps + 1):
            x = next(batches)["x"][args.view].astype(np.float32) / 255.0
            params, opt_state, loss = train_step(params, opt_state, x)
            if step % args.eval_every == 0 or step == args.steps:
                rows.append(dict(step=step, seconds=round(time.time() - t0, 1), **test_row(params),
                                 loss=round(float(loss), 5)))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        batches.close()
    return dict(rows=rows, params=params, initial_params=initial_params, reconstruct=reconstruct_jit)


if __name__ == "__main__":
    main()
