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


from absl import app, flags

from idmvae_jax import flags as run_flags

run_flags.define_config_flag()
flags.DEFINE_string("workdir", None, "the new run directory (must hold no checkpoint)")
flags.DEFINE_string("checkpoint", None, "their model_<epoch>.rar (the model's state dict)")
flags.DEFINE_string("optimizer", None, "their optimizer_<epoch>.rar (optional: Adam's moments and step)")
flags.mark_flags_as_required(["config", "workdir", "checkpoint"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    run_flags.quiet_known_noise()
    from idmvae_jax import config_defaults, errors
    from idmvae_jax.tools import official_checkpoint

    try:
        config_defaults.check_field_types(FLAGS.config)
        report = official_checkpoint.convert_to_workdir(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint,
                                                        FLAGS.optimizer)
    except errors.UserError as error:
        errors.report_and_exit(error)
    for line in official_checkpoint.summary_lines(report):
        print(line)
    print(f"wrote {FLAGS.workdir}; resume with: python -m idmvae_jax.main --config=... --workdir={FLAGS.workdir}",
          flush=True)


if __name__ == "__main__":
    app.run(main, flags_parser=run_flags.parse_or_exit)
