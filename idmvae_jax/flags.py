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


# Log lines of other libraries that say nothing wrong on a machine doing what it should: JAX
# probing for a TPU on a CPU/GPU host, TFDS preferring OpenCV to PIL for decoding, Orbax's
# per-save INFO lines. Warnings and errors of every other kind stay.
KNOWN_NOISE = ("Unable to initialize backend 'tpu'", "OpenCV is not installed")


def quiet_known_noise() -> None:
    """Drops KNOWN_NOISE and Orbax's INFO lines from what absl logs (the CLIs call it)."""
    from absl import logging

    def keep(record) -> bool:
        message = record.getMessage()
        if any(noise in message for noise in KNOWN_NOISE):
            return False
        return record.levelno >= logging.converter.STANDARD_WARNING or "orbax" not in record.pathname

    import logging as std_logging

    logging.get_absl_handler().addFilter(keep)  # what absl's handler prints (after app.run)
    std_logging.getLogger("absl").addFilter(keep)  # absl.logging calls printed by another handler


def flag_error_line(error: BaseException) -> str:
    """One line from a flag-parsing error: the flag and the cause, without the traceback that
    ml_collections embeds in the message of a config file that fails to load."""
    text = str(error)
    if isinstance(error, AttributeError) and text.startswith(("'", '"')):
        text = text[1:-1].encode().decode("unicode_escape")  # KeyError-style repr of the message
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        lines = [lines[0], lines[-1]]
    text = " ".join(lines)
    if isinstance(error, AttributeError):
        return f"unknown config field {text} (fields: python -m idmvae_jax.main --config=FILE --helpfull)"
    if isinstance(error, OSError) and lines:  # ml_collections could not load the config file
        return (f"cannot load the config file ({lines[-1]}); pass --config=configs/NAME.py[:SIZE,VARIANT], "
                f"e.g. --config=configs/polymnist_quadrant.py:mini")
    return text


def parse_or_exit(argv: Sequence[str], flag_values: Optional[flags.FlagValues] = None,
                  usage: str = "") -> list:
    """Parses `argv` into `flag_values` (default the global FLAGS); a bad flag, config file or
    override prints one `ERROR:` line and exits with status 2 (IDMVAE_TRACEBACK=1: the traceback).
    Usable as absl's `app.run(main, flags_parser=parse_or_exit)`."""
    from idmvae_jax import errors

    fv = flags.FLAGS if flag_values is None else flag_values
    try:
        rest = fv(list(argv))
        if "config" in fv and fv.config is not None:
            fv.config.keys()  # ml_collections reports a config file it could not load on first use
        return rest
    except (flags.Error, AttributeError, OSError) as error:  # the flags, the config file, overrides
        errors.report_and_exit(errors.UserError(flag_error_line(error) + (f" ({usage})" if usage else "")))


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
