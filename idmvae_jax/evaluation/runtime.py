"""Where an evaluation runs: its mesh and batch size, the checkpoint restored onto the mesh, and
the log lines (printed by process 0 only).

The evaluation uses the training mesh (`training.parallel.make_mesh`: a 1-D 'data' axis, batch-sharded
inputs, replicated parameters); its batch size is `eval.batch_size` rounded up to a multiple of
the device count.
"""
from __future__ import annotations

import math
from typing import Tuple

import jax


def log(msg: str) -> None:
    """Prints `msg` on process 0 (one line per multi-process run)."""
    if jax.process_index() == 0:
        print(msg, flush=True)


def make_eval_mesh(config) -> Tuple[jax.sharding.Mesh, int]:
    """(the mesh of `config.parallel.num_devices` devices (0 = all), the evaluation batch size:
    config.eval.batch_size rounded up to a multiple of the device count)."""
    from idmvae_jax.training import parallel

    mesh = parallel.make_mesh(int(config.parallel.get("num_devices", 0)))
    n_dev = mesh.devices.size
    bs = int(config.eval.batch_size)
    return mesh, max(n_dev, int(math.ceil(bs / n_dev)) * n_dev)


def restore_for_eval(config, workdir: str, mesh):
    """(typed cfg, DatasetInfo, params on `mesh`, checkpoint step) of the latest checkpoint."""
    from idmvae_jax import build
    from idmvae_jax.data import get_dataset_info
    from idmvae_jax.training import checkpointing

    info = get_dataset_info(config.data)
    cfg = build.build_idmvae_config(config, info)
    params, step = checkpointing.restore_params(workdir, cfg, config.train, config.seed, mesh)
    return cfg, info, params, step
