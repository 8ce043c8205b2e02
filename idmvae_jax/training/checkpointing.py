"""Checkpoints with Orbax's CheckpointManager: training state and data-iterator position.

Layout: WORKDIR/checkpoints/<step>/{state, data} (WORKDIR a local path or a bucket URL: Orbax and
tensorstore write gs:// themselves): `state` holds the TrainState as a dict
(params, opt_state, step, rng, bad_step, bad_terms; arrays via StandardSave), `data` the data
iterator's JSON state (the same on every process: the position in the global batch order).
Every process must call `save`/`restore` (Orbax coordinates them; the primary process writes the
JSON). Saves are asynchronous by default: `wait()` before reading a checkpoint back or exiting.
Only the last `keep` checkpoints are kept.
"""
from __future__ import annotations

from typing import Optional

import orbax.checkpoint as ocp
from etils import epath

from idmvae_jax import storage
from idmvae_jax.errors import UserError
from idmvae_jax.training.step import TrainState


class NoCheckpointError(UserError, FileNotFoundError):
    """The workdir holds no checkpoint (evaluating or sampling before training)."""


def checkpoint_dir(workdir: storage.PathLike) -> epath.Path:
    """WORKDIR/checkpoints (WORKDIR a local path or a bucket URL)."""
    return storage.path(workdir) / "checkpoints"


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` for (TrainState, data-iterator state)."""

    def __init__(self, workdir: storage.PathLike, keep: int = 3, async_save: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
        )
        self.directory = checkpoint_dir(workdir)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: TrainState, data_state: Optional[dict] = None, force: bool = True) -> bool:
        """Saves `state` (global arrays) and the iterator state under `step` (asynchronously)."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state._asdict()),
            data=ocp.args.JsonSave(dict(data_state or {})),
        )
        return self.manager.save(int(step), args=args, force=force)

    def restore(self, abstract_state: TrainState, step: Optional[int] = None) -> tuple[TrainState, dict]:
        """(TrainState, data-iterator state) at `step` (default: the latest).

        abstract_state: the TrainState of `jax.ShapeDtypeStruct`s with shardings to restore into
        (`training.parallel.abstract_state`)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state._asdict()),
            data=ocp.args.JsonRestore(),
        )
        restored = self.manager.restore(int(step), args=args)
        return TrainState(**restored["state"]), dict(restored["data"] or {})

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def restore_params(workdir: storage.PathLike, cfg, train_config, seed: int, mesh, step: Optional[int] = None):
    """(params, step) of the latest (or given) checkpoint in WORKDIR, restored onto `mesh` into the
    abstract state of the run (typed `cfg`, `config.train`, `config.seed`): nothing is initialised.
    Raises FileNotFoundError, naming the training command, when WORKDIR holds no checkpoint."""
    from idmvae_jax.training import parallel
    from idmvae_jax.training import step as step_lib

    init_fn = step_lib.make_init_fn(cfg, step_lib.make_optimizer(train_config), int(seed))
    abstract = parallel.abstract_state(init_fn, mesh)
    ckpt = Checkpointer(workdir, async_save=False)
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise NoCheckpointError(
                f"no checkpoint in {ckpt.directory}; train first: "
                f"python -m idmvae_jax.main --config=... --workdir={workdir}")
        state, _ = ckpt.restore(abstract, step)
    finally:
        ckpt.close()
    return state.params, int(step)
