"""The latent probes along a run: z -> shared label and w -> private label at every kept checkpoint.

The end-of-run probes say where a run arrived; the curve says whether it is learning. Each point
is the mean over views of the logistic-regression probe (`probes.latent_probes`, SPEC §5) of the
posterior means at one checkpoint, fitted on the first `num_fit` training tuples and scored on the
evaluation split: a few seconds per checkpoint. Rows:

    {"step": s, "probe/z_shared": acc, "probe/w_private": acc}   (w_private only with private labels)

`evaluate` writes them to WORKDIR/eval/probe_curve.json and the report draws them beside a
baseline's curve from a results file (`baseline`).
"""
from __future__ import annotations

import json
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from idmvae_jax import storage
from idmvae_jax.evaluation import model_fns as model_fns_lib
from idmvae_jax.evaluation import probes as probes_lib


def curve_point(encode_means: Callable, train: dict, test: dict, pviews: Sequence[int], *,
                batch_size: int, num_fit: int) -> Dict[str, float]:
    """{'probe/z_shared', 'probe/w_private'} of one model.

    encode_means(xs) -> (mu_z (M, B, Z), mu_w (M, B, W)); train/test: `load_split` dicts;
    pviews: the views with a private label (w_private is left out when there are none)."""
    n_fit = None if not num_fit or num_fit <= 0 else int(num_fit)
    lat_tr = probes_lib.posterior_means(encode_means, [x[:n_fit] for x in train["x"]], batch_size)
    lat_te = probes_lib.posterior_means(encode_means, test["x"], batch_size)
    point = {"probe/z_shared": probes_lib.latent_probes(
        {"z": lat_tr["z"]}, {"z": lat_te["z"]}, train["y_shared"], test["y_shared"],
        n_fit=n_fit)["probe/z_shared"]}
    pv = list(pviews)
    if pv:
        point["probe/w_private"] = probes_lib.latent_probes(
            {"w": lat_tr["w"][pv]}, {"w": lat_te["w"][pv]},
            {"shared": train["y_shared"], "private": np.asarray(train["y_private"])[:, pv]},
            {"shared": test["y_shared"], "private": np.asarray(test["y_private"])[:, pv]},
            n_fit=n_fit)["probe/w_private"]
    return point


def probe_curve(config, workdir, cfg, mesh, train: dict, test: dict, pviews: Sequence[int], *,
                batch_size: int, num_fit: int, log: Callable[[str], None],
                encode: Optional[Callable] = None) -> List[Dict[str, float]]:
    """`curve_point` at every checkpoint kept in WORKDIR/checkpoints, in step order.

    encode: `model_fns.make_encoder(cfg, mesh)` when the caller has it (one compilation serves
    every checkpoint and the final evaluation). Every process must call it (checkpoints are
    restored onto `mesh`)."""
    from idmvae_jax.training import checkpointing

    ckpt = checkpointing.Checkpointer(workdir, async_save=False)
    try:
        steps = sorted(ckpt.all_steps())
    finally:
        ckpt.close()
    encode = encode or model_fns_lib.make_encoder(cfg, mesh)
    rows = []
    for step in steps:
        params, _ = checkpointing.restore_params(workdir, cfg, config.train, config.seed, mesh, step)
        point = curve_point(lambda xs, params=params: encode(params, xs), train, test, pviews,
                            batch_size=batch_size, num_fit=num_fit)
        rows.append({"step": int(step), **point})
        log(f"probe curve: step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in point.items()))
    return rows


def write_curve(path, rows: Sequence[Dict[str, float]]) -> None:
    """The rows as JSON (atomically; a local path or a bucket URL)."""
    storage.write_text(path, json.dumps(list(rows), indent=2))
