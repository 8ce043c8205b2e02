r"""Trains IDMVAE: `python -m idmvae_jax.main --config=configs/NAME.py[:ARGS] --workdir=DIR`.

Resumes from the latest checkpoint in DIR/checkpoints when there is one. Override any config
field with --config.SECTION.FIELD=VALUE (a misspelt field is an error: the config is locked).

Multi-process runs: every process runs the same command. --coordinator_address, --num_processes
and --process_id (or the environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID) initialise `jax.distributed` explicitly; --distributed initialises it with
cluster auto-detection (TPU pods, SLURM, ...). See launch/.

--evaluate evaluates the run when training ends (`idmvae_jax.evaluation.run`): one command, one
report, one ETA.

SIGTERM (or Ctrl-C or SIGUSR1 in a one-process run) checkpoints at the next step boundary and exits
with status 143 (130 after Ctrl-C); the same command resumes.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging

from idmvae_jax import flags as run_flags

run_flags.define_run_flags()
flags.DEFINE_bool("evaluate", False, "after training, evaluate the run in the same process "
                  "(what `python -m idmvae_jax.evaluate` does); the label classifiers are trained "
                  "(or loaded) first, and the training ETA includes the evaluation")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    run_flags.quiet_known_noise()
    run_flags.initialize_distributed_from_flags(FLAGS)

    import jax
    import flax
    import optax
    import orbax.checkpoint as ocp

    from idmvae_jax import config_defaults, errors
    from idmvae_jax.training import loop, preemption

    logging.info("python %s; jax %s, jaxlib %s, flax %s, optax %s, orbax-checkpoint %s",
                 sys.version.split()[0], jax.__version__, jax.lib.__version__ if hasattr(jax.lib, "__version__")
                 else "?", flax.__version__, optax.__version__, getattr(ocp, "__version__", "?"))
    logging.info("process %d of %d; %d local / %d global devices: %s", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count(), jax.local_devices())
    if jax.process_index() == 0:
        print(f"idmvae_jax: {jax.device_count()} {jax.default_backend()} device(s), "
              f"{jax.process_count()} process(es); workdir {FLAGS.workdir}", flush=True)
    try:
        config_defaults.check_field_types(FLAGS.config)
        before = after = None
        if FLAGS.evaluate:
            from idmvae_jax.evaluation import run as evaluation

            # the classifiers once the workdir is checked and locked; the ETA's evaluation part
            # is linear in the step time: its factor is computed once
            before = lambda: evaluation.prepare_classifiers(FLAGS.config, FLAGS.workdir)  # noqa: E731
            eval_seconds_per_step_second = evaluation.estimate_seconds(FLAGS.config, 1.0)
            after = lambda step_s: eval_seconds_per_step_second * step_s  # noqa: E731
        loop.train_and_evaluate(FLAGS.config, FLAGS.workdir, before_training=before, after_training=after)
        if FLAGS.evaluate:
            evaluation.evaluate(FLAGS.config, FLAGS.workdir)
    except errors.UserError as error:
        errors.report_and_exit(error)
    except loop.NonFiniteLossError as error:
        logging.error("%s", error)
        print(f"ERROR: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    except preemption.Preempted as stopped:
        logging.warning("%s", stopped)
        print(f"idmvae_jax: {stopped}", file=sys.stderr, flush=True)
        sys.exit(preemption.exit_status(stopped.signame))


if __name__ == "__main__":
    app.run(main, flags_parser=run_flags.parse_or_exit)
