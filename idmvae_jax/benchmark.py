r"""Throughput and memory of the train step: one JSON line per run (issue 6).

    python -m idmvae_jax.benchmark --config=configs/polymnist_quadrant.py:mini \
        [--config.X=Y] [--mode=jit|pmap] [--steps=10] [--warmup=2] [--precision=f32|bf16] \
        [--devices=N] [--peak_flops=1.7e11] [--peak_matmul_n=2048] [--parts] [--op_profile=N] \
        [--flops_only]

The CLI parses the flags (--config from `idmvae_jax.flags`), calls
`benchmarking.run.run_benchmark` and prints its dict as one JSON line. What is measured and how
(MaxText-style, STYLE.md "Measure throughput honestly"): `idmvae_jax.benchmarking` and
docs/benchmarks.md. `--parts` adds the step-parts account (`benchmarking.parts`), `--op_profile=N`
the profiled time per HLO instruction (`benchmarking.op_profile`). `--flops_only` prints only the
model FLOPs of one step from abstract shapes (`benchmarking.run.model_flops_only`: nothing is
initialised, compiled or run; a paper-size config takes seconds on a CPU).

Datasets whose view shapes come from files (npz, tcga, cub with data.cub_latents_file) cannot be
benchmarked without their folder; the command says so and stops.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from idmvae_jax import flags as run_flags
from idmvae_jax.benchmarking.inputs import CUB_NOMINAL_VOCAB


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def main(argv=None) -> None:
    from absl import app, flags

    run_flags.define_config_flag()
    flags.DEFINE_enum("mode", None, ["jit", "pmap"], "default: config.parallel.mode")
    flags.DEFINE_integer("steps", 10, "timed steps (>= 5)")
    flags.DEFINE_integer("warmup", 2, "untimed steps after compilation")
    flags.DEFINE_enum("precision", None, ["f32", "bf16"], "compute dtype (default: config.model.compute_dtype)")
    flags.DEFINE_integer("devices", None, "devices of the mesh (default: config.parallel.num_devices; 0 = all)")
    flags.DEFINE_float("peak_flops", None, "peak FLOP/s of all devices used (default: measured f32 matmul)")
    flags.DEFINE_integer("peak_matmul_n", None, "matmul size of the peak measurement (default 4096, CPU 2048)")
    flags.DEFINE_bool("parts", False, "also time the step's parts in isolation")
    flags.DEFINE_integer("op_profile", 0, "profile this many steps: time per HLO instruction by layer type")
    flags.DEFINE_integer("vocab_size", CUB_NOMINAL_VOCAB, "caption vocabulary assumed for cub")
    flags.DEFINE_bool("flops_only", False, "print the model FLOPs of one step from abstract shapes "
                      "(nothing initialised, compiled or run) and stop")
    flags.mark_flags_as_required(["config"])
    FLAGS = flags.FLAGS

    def run(_):
        from idmvae_jax.benchmarking.run import run_benchmark

        config_arg = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")), "")
        if FLAGS.flops_only:
            from idmvae_jax.benchmarking.run import model_flops_only

            result = model_flops_only(FLAGS.config, precision=FLAGS.precision, vocab_size=FLAGS.vocab_size,
                                      config_name=config_arg)
            print(json.dumps(result, default=_json_default), flush=True)
            return
        result = run_benchmark(
            FLAGS.config, mode=FLAGS.mode, steps=FLAGS.steps, warmup=FLAGS.warmup,
            precision=FLAGS.precision, devices=FLAGS.devices, peak_flops=FLAGS.peak_flops,
            peak_matmul_n=FLAGS.peak_matmul_n, parts=FLAGS.parts, op_profile=FLAGS.op_profile,
            vocab_size=FLAGS.vocab_size, config_name=config_arg,
        )
        print(json.dumps(result, default=_json_default), flush=True)

    app.run(run, argv=argv)


if __name__ == "__main__":
    main()
