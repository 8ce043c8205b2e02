r"""Converts the authors' PyTorch checkpoint into a workdir of ours.

    python -m idmvae_jax.convert_official --checkpoint=model_99.rar [--optimizer=optimizer_99.rar] \
        --config=configs/polymnist_quadrant.py:paper,diffusion --workdir=DIR

reads their `model_<epoch>.rar` (a torch.save state dict; torch is not needed) and, optionally,
`optimizer_<epoch>.rar` (their Adam state), and writes an Orbax checkpoint of the config's run in
DIR: `evaluate`, the generation functions and `main` (which resumes it) read it as they read ours.
It prints which of their tensors were not converted and why (DIR/conversion.json has the full
list). Covered: the PolyMNIST-Quadrant model, with or without diffusion priors, and the auxiliary
priors' scales (`idmvae_jax.tools.official_checkpoint`). docs/equivalence.md measures that the
converted model computes what theirs does.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from idmvae_jax import flags as run_flags

USAGE = ("usage: python -m idmvae_jax.convert_official --checkpoint=model_N.rar [--optimizer=optimizer_N.rar] "
         "--config=configs/NAME.py[:ARGS] --workdir=DIR [--config.X=Y ...]")


def parse_flags(argv: Sequence[str]):
    """The flags on a FlagValues of their own (so the CLI can run inside another program)."""
    from absl import flags

    argv = list(argv)
    fv = run_flags.define_config_flag(flags.FlagValues(), sys_argv=argv)
    flags.DEFINE_string("workdir", None, "the new run directory (must hold no checkpoint)", flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "their model_<epoch>.rar (the model's state dict)", flag_values=fv)
    flags.DEFINE_string("optimizer", None, "their optimizer_<epoch>.rar (optional: Adam's moments and step)",
                        flag_values=fv)
    run_flags.parse_or_exit(argv, fv, usage=USAGE)
    if fv.config is None or not fv.workdir or not fv.checkpoint:
        raise SystemExit(USAGE)
    return fv


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The CLI: converts, prints what was left out and why, then the workdir."""
    fv = parse_flags(sys.argv if argv is None else argv)
    run_flags.quiet_known_noise()
    from idmvae_jax import config_defaults, errors
    from idmvae_jax.tools import official_checkpoint

    try:
        config_defaults.check_field_types(fv.config)
        report = official_checkpoint.convert_to_workdir(fv.config, fv.workdir, fv.checkpoint, fv.optimizer)
    except errors.UserError as error:
        errors.report_and_exit(error)
    for line in official_checkpoint.summary_lines(report):
        print(line)
    print(f"wrote {fv.workdir}; resume with: python -m idmvae_jax.main --config=... --workdir={fv.workdir}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
