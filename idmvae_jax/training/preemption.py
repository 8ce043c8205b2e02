"""Stopping a run cleanly on SIGTERM or Ctrl-C: a checkpoint at the next step boundary, then exit.

SIGTERM is what a scheduler sends before it takes the machine: SLURM at the time limit (and to
job steps on `scancel`), Cloud TPU and GCE on preemption, Kubernetes on eviction. Without this,
everything since the last periodic checkpoint is lost.

- One process: a Python handler for SIGTERM, SIGINT (Ctrl-C) and SIGUSR1 (SLURM's
  `--signal=USR1@SECONDS` early warning) sets a flag; `should_stop` reads it. A second signal
  kills the process at once.
- Several processes (`jax.distributed`): JAX's preemption service catches SIGTERM on any process
  and agrees on one step for all of them (`multihost_utils.reached_preemption_sync_point`), so
  every process saves the same checkpoint; `should_stop` asks it. It must be called at every
  iteration of the loop on every process, with the same counter.
"""

from __future__ import annotations

import os
import signal
from typing import Optional

from absl import logging

SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")


def exit_status(signame: str) -> int:
    """The exit status after a signal-requested stop with its checkpoint saved: 130 for Ctrl-C
    (128 + SIGINT, what shells report for an interrupted command), else 143 (128 + SIGTERM), so
    schedulers and launchers see a stopped, not finished, run."""
    return 128 + (signal.SIGINT if signame == "SIGINT" else signal.SIGTERM)


class Preempted(Exception):
    """The run stopped on a signal after checkpointing `step`; rerun the same command to resume."""

    def __init__(self, step: int, workdir: str, signame: str):
        self.step, self.workdir, self.signame = step, workdir, signame
        super().__init__(f"stopped by {signame} after step {step}; checkpoint saved in "
                         f"{workdir}/checkpoints; rerun the same command to resume")


class StopWatch:
    """Watches for a stop request: `should_stop(iteration)` once per loop iteration.

    Use as a context manager: it installs the handlers (one process, main thread only) and
    restores the previous ones on exit."""

    def __init__(self, multi_process: Optional[bool] = None):
        import jax

        self.multi_process = jax.process_count() > 1 if multi_process is None else multi_process
        self.signame: Optional[str] = None
        self._previous: dict = {}

    def __enter__(self) -> "StopWatch":
        if self.multi_process:
            return self  # JAX's preemption service owns SIGTERM
        for name in SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                logging.warning("not in the main thread: %s will not checkpoint before stopping", name)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.signame is not None:  # a second signal: stop now, the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signame = signal.Signals(signum).name
        logging.warning("%s received: checkpointing at the next step boundary, then stopping", self.signame)

    def should_stop(self, iteration: int) -> bool:
        """True once a stop was requested (several processes: at the iteration they agreed on)."""
        if self.multi_process:
            from jax.experimental import multihost_utils

            try:
                reached = multihost_utils.reached_preemption_sync_point(iteration)
            except RuntimeError as error:  # jax_enable_preemption_service=False
                logging.warning("no preemption service (%s): SIGTERM will not checkpoint", error)
                self.multi_process, self.signame = False, None
                return False
            if reached:
                self.signame = "SIGTERM"
            return reached
        return self.signame is not None
