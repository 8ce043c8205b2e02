r"""Evaluates a trained run (SPEC §5): classifiers, latent probes, coherence, FID, report.

    python -m idmvae_jax.evaluate --config=configs/polymnist_quadrant.py:mini --workdir=/tmp/pmq_mini

loads the latest checkpoint in WORKDIR (with the same config as training, overrides included) and
writes WORKDIR/eval/metrics.json, WORKDIR/eval/report.md and the report's PNG figures, then prints
the path of report.md. What it computes, and the `config.eval.*` settings: `evaluation.run`.
Multi-process runs take the flags of training (`idmvae_jax.flags`).
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

import jax

from idmvae_jax import config_defaults, errors
from idmvae_jax import flags as run_flags
from idmvae_jax.evaluation import run, runtime

USAGE = ("usage: python -m idmvae_jax.evaluate --config=configs/NAME.py[:ARGS] --workdir=DIR "
         "[--config.X=Y ...]")


def parse_flags(argv: Sequence[str]):
    """(config, workdir, flags) from `--config=FILE[:ARGS] --workdir=DIR [--config.X=Y ...]`.

    Uses its own absl FlagValues, so it coexists with `idmvae_jax.main`'s global flags.
    """
    from absl import flags

    argv = list(argv)
    fv = run_flags.define_run_flags(flags.FlagValues(), sys_argv=argv)
    run_flags.parse_or_exit(argv, fv, usage=USAGE)
    if fv.config is None or not fv.workdir:
        raise SystemExit(USAGE)
    return fv.config, fv.workdir, fv


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The CLI: evaluates, writes the metrics and the report, prints the report's path last."""
    config, workdir, fv = parse_flags(sys.argv if argv is None else argv)
    run_flags.quiet_known_noise()
    run_flags.initialize_distributed_from_flags(fv)
    runtime.log(f"jax {jax.__version__}, {jax.device_count()} device(s) ({jax.devices()[0].platform}), "
                f"{jax.process_count()} process(es)")
    try:
        config_defaults.check_field_types(config)
        run.evaluate(config, workdir)
    except errors.UserError as error:
        errors.report_and_exit(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
