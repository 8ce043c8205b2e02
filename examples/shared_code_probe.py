r"""Watch the shared code learn the shared label: train, and probe the posterior means mu_z as you go.

    python examples/shared_code_probe.py --config=configs/polymnist_quadrant.py:mini --steps=4000 \
        --learning_rate=1e-3 --objective=crossmi

`--objective=crossmi` trains the z encoders (and a learnable critic, if the config has one) with
L_crossMI alone (`objective.cross_view_infonce_loss` on mu_z, SPEC 2.2); `--objective=full` trains the whole model with `training.loss.loss_fn`. Every
`--probe_every` steps it prints one JSON line with:
  probe_z_shared   test accuracy of a logistic-regression probe (evaluation.probes.probe_accuracy)
                   of the shared label from mu_z, fitted on `--num_fit` train tuples, mean over views;
  probe_w_shared   the same from the private means mu_w (where else the encoders keep the label);
  cos_same/cos_other  mean cosine between mu_z of views 0 and 1 of the same tuple / of different
                   tuples (test split): equal values mean the shared code carries nothing the two
                   views have in common;
  the loss terms of the last step.
A quick signal for tuning: the cosine gap opens (and the probe rises) long before a full run ends.
"""
from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import numpy as np
import optax

from idmvae_jax import build, data
from idmvae_jax.objective import cross_view_infonce_loss
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.training.loss import loss_fn
from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments
from idmvae_jax.evaluation.probes import probe_accuracy
from idmvae_jax.models.multimodal import make_model


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(p, "configs/polymnist_quadrant.py:mini")
    p.add_argument("--objective", choices=("crossmi", "full"), default="crossmi")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--probe_every", type=int, default=500)
    p.add_argument("--learning_rate", type=float, default=0.0, help="0 = the config's")
    p.add_argument("--num_fit", type=int, default=2000, help="train tuples the probe is fitted on")
    p.add_argument("--num_test", type=int, default=500)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Returns {'rows': the printed JSON rows, 'params', 'initial_params', 'encode_z', 'objective', 'cfg'}."""
    args = parse_args(argv)
    config = config_from_arguments(args)
    info = data.get_dataset_info(config.data)
    cfg = build.build_idmvae_config(config, info)
    model = make_model(cfg.model)
    params = jax.jit(model.init)(jax.random.key(config.seed))
    optimizer = optax.adam(args.learning_rate or config.train.learning_rate)
    opt_state = optimizer.init(params)

    def encode_z(p, xs, branch="z"):  # raw batch views -> posterior means (M, B, Z) (or (M, B, W))
        return model.encode_branch_means(p, network_inputs(cfg.model.views, xs), branch)

    def crossmi_objective(p, batch, key):
        del key
        mu_z = encode_z(p, batch["x"])  # (M, B, Z)
        loss = cross_view_infonce_loss(mu_z, cfg.loss.temperature,
                                              critic=lambda a, b: model.critic_scores_z(p, a, b))
        return loss, {"cross_mi": loss}

    def full_objective(p, batch, key):
        return loss_fn(p, batch, key, cfg)

    objective = crossmi_objective if args.objective == "crossmi" else full_objective

    @jax.jit
    def train_step(p, s, batch, key):
        (_, aux), grads = jax.value_and_grad(objective, has_aux=True)(p, batch, key)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, aux

    fit = data.load_split(config.data, "train", max_examples=args.num_fit)
    test = data.load_split(config.data, "test", max_examples=args.num_test)

    jit_encode = {b: jax.jit(functools.partial(encode_z, branch=b)) for b in ("z", "w")}

    def means(p, split, branch="z", chunk=250):  # (M, N, Z) or (M, N, W)
        n = len(split["y_shared"])
        return np.concatenate([np.asarray(jit_encode[branch](p, [x[i:i + chunk] for x in split["x"]]))
                               for i in range(0, n, chunk)], axis=1)

    def shared_label_accuracy(p, branch):  # mean over views of the probe's test accuracy
        c_fit, c_test = means(p, fit, branch), means(p, test, branch)
        return np.mean([probe_accuracy(c_fit[m], fit["y_shared"], c_test[m], test["y_shared"], max_iter=300)
                        for m in range(c_fit.shape[0])])

    def probe(p):
        z_test = means(p, test)
        unit = z_test / np.maximum(np.linalg.norm(z_test, axis=-1, keepdims=True), 1e-12)
        other = 1 if unit.shape[0] > 1 else 0
        same = np.mean(np.sum(unit[0] * unit[other], -1))
        different = np.mean(np.sum(unit[0] * np.roll(unit[other], 1, axis=0), -1))
        return dict(probe_z_shared=round(float(shared_label_accuracy(p, "z")), 4),
                    probe_w_shared=round(float(shared_label_accuracy(p, "w")), 4), cos_same=round(float(same), 4),
                    cos_other=round(float(different), 4))

    batches = data.make_iterator(config.data, "train", config.train.batch_size, seed=config.seed)
    key, initial_params, rows, t0 = jax.random.key(config.seed), params, [], time.time()
    try:
        for step in range(1, args.steps + 1):
            batch = {"x": next(batches)["x"]}
            params, opt_state, aux = train_step(params, opt_state, batch, jax.random.fold_in(key, step))
            if step % args.probe_every == 0 or step == args.steps:
                rows.append(dict(step=step, seconds=round(time.time() - t0, 1), **probe(params),
                                 **{k: round(float(v), 4) for k, v in aux.items()}))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        batches.close()
    return dict(rows=rows, params=params, initial_params=initial_params, encode_z=encode_z, objective=objective,
                cfg=cfg)


if __name__ == "__main__":
    main()
