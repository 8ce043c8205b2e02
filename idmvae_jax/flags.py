"""The command-line flags every CLI of a run shares, and jax.distributed from them.

`define_run_flags` defines on an absl FlagValues (the global `absl.flags.FLAGS` by default):

  --config=FILE[:ARGS]  the run's config file (ml_collections; --config.X=Y overrides, locked, so a
                        misspelt field is an error)
  --workdir=DIR         the run's directory
  --distributed         jax.distributed.initialize() with cluster auto-detection (TPU pods, SLURM)
  --coordinator_address, --num_processes, --process_id
                        explicit multi-process set-up (defaults: the environment variables
                        JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)

`define_config_flag` defines --config alone (the benchmark's only shared flag).
`initialize_distributed_from_flags` then initialises jax.distributed when those flags ask for it.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from absl import app, flags
from ml_collections import config_flags


def define_config_flag(flag_values: Optional[flags.FlagValues] = None, *,
                       sys_argv: Optional[Sequence[str]] = None) -> flags.FlagValues:
    """Defines --config (locked: a misspelt --config.X=Y is an error) on `flag_values` (default
    `absl.flags.FLAGS`), reading the overrides from `sys_argv` (default sys.argv). Returns the
    FlagValues."""
    fv = flags.FLAGS if flag_values is None else flag_values
    config_flags.DEFINE_config_file("config", None, "The run's config file.", flag_values=fv,
                                    lock_config=True, sys_argv=None if sys_argv is None else list(sys_argv))
    return fv


def define_run_flags(flag_values: Optional[flags.FlagValues] = None, *,
                     sys_argv: Optional[Sequence[str]] = None) -> flags.FlagValues:
    """Defines --config, --workdir and the jax.distributed flags on `flag_values` (default
    `absl.flags.FLAGS`); `sys_argv` is the argv the --config.X=Y overrides are read from (default
    sys.argv). Returns the FlagValues."""
    fv = define_config_flag(flag_values, sys_argv=sys_argv)
    flags.DEFINE_string("workdir", None, "The run's directory (checkpoints, metrics, samples).",
                        flag_values=fv)
    flags.DEFINE_bool("distributed", False,
                      "Call jax.distributed.initialize() with cluster auto-detection.", flag_values=fv)
    flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS", ""),
                        "host:port of process 0's coordinator (explicit multi-process set-up).",
                        flag_values=fv)
    flags.DEFINE_integer("num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "0") or 0),
                         "Number of processes.", flag_values=fv)
    flags.DEFINE_integer("process_id", int(os.environ.get("JAX_PROCESS_ID", "-1") or -1),
                         "This process's index.", flag_values=fv)
    return fv


def initialize_distributed(coordinator: str = "", num_processes: int = 0, process_id: int = -1,
                           auto: bool = False) -> bool:
    """Initialises jax.distributed when asked; returns whether it did.

    coordinator: host:port of process 0 (with num_processes and process_id: an explicit set-up);
    auto: cluster auto-detection. Neither: a one-process run, nothing to do.
    """
    import jax

    if coordinator:
        if num_processes < 1 or process_id < 0:
            raise app.UsageError("--coordinator_address needs --num_processes and --process_id")
        if "cpu" in (os.environ.get("JAX_PLATFORMS") or ""):
            try:  # CPU processes need a collectives backend (gloo is the default on recent jax)
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
            except AttributeError:
                pass
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
        return True
    if auto:
        jax.distributed.initialize()
        return True
    return False


def initialize_distributed_from_flags(fv: Optional[flags.FlagValues] = None) -> bool:
    """`initialize_distributed` from the flags `define_run_flags` defined (parsed already)."""
    fv = flags.FLAGS if fv is None else fv
    return initialize_distributed(fv.coordinator_address, fv.num_processes, fv.process_id,
                                  fv.distributed)
