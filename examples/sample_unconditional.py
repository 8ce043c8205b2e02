r"""Unconditional samples from a trained run's diffusion prior, as a PNG grid.

    python examples/sample_unconditional.py --workdir=workdirs/mini_diffusion --num=8

Reads the run's configuration and views from WORKDIR/config.json (written by training, overrides included),
restores the parameters of the latest checkpoint in WORKDIR/checkpoints, draws z and w_m by DDIM
(`config.diffusion.ddim_steps` steps) from the latent score networks, decodes with every view's
decoder (`generation.sample_unconditional`: sample i of every view shares z_i) and writes the
labelled grid of the training run's unconditional samples (`data.figures.sample_grid`): one row
per image view ("view m"), `--num` columns ("sample i"), 32 px views drawn at 64 px.
The run must have been trained with the diffusion prior, e.g.
`python -m idmvae_jax.main --config=configs/polymnist_quadrant.py:mini,diffusion --workdir=...`;
`--prior=gaussian` samples from the fixed Gaussian priors instead.
"""
from __future__ import annotations

import argparse
import json

import jax
import ml_collections
import numpy as np

from idmvae_jax import build, data, generation, storage
from idmvae_jax.data import figures, images

from idmvae_jax.training import checkpointing, parallel

SECTIONS = ("seed", "data", "model", "loss", "diffusion", "train", "parallel", "eval")


def load_run_config(workdir: str) -> tuple:
    """(the run's ConfigDict, its saved DatasetInfo dict or None) from WORKDIR/config.json."""
    with (storage.path(workdir) / "config.json").open(encoding="utf-8") as f:
        saved = json.load(f)
    config = ml_collections.ConfigDict({k: v for k, v in saved.items() if k in SECTIONS})
    return config, saved.get("dataset_info")  # written by training: a restore needs no dataset


def restore(workdir: str):
    """(config, typed cfg, DatasetInfo, params, step) of the latest checkpoint, on one device."""
    config, saved_info = load_run_config(workdir)
    info = data.DatasetInfo.from_dict(saved_info) if saved_info else data.get_dataset_info(config.data)
    cfg = build.build_idmvae_config(config, info)
    params, step = checkpointing.restore_params(workdir, cfg, config.train, config.seed, parallel.make_mesh(1))
    return config, cfg, info, params, step


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--num", type=int, default=8, help="samples (grid columns)")
    p.add_argument("--prior", default="diffusion", choices=generation.PRIORS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="PNG path ('' = WORKDIR/samples/unconditional_<prior>.png)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Writes the grid; returns its path, the figure (H, W, 3) floats in [0, 1] and the checkpoint step."""
    args = parse_args(argv)
    workdir = storage.path(args.workdir)
    config, cfg, info, params, step = restore(workdir)
    if args.prior == "diffusion" and not cfg.model.diffusion_prior:
        raise SystemExit(f"{workdir} was trained without the diffusion prior (a ',diffusion' config); "
                         "use --prior=gaussian")
    sample = jax.jit(lambda p, k: generation.sample_unconditional(p, k, args.num, cfg, prior=args.prior))
    views = sample(params, jax.random.key(args.seed))  # list of M arrays (num, *shape_m)
    drawn = [m for m, v in enumerate(info.views) if figures.is_drawable(v.kind, v.shape)]
    if not drawn:
        raise SystemExit(f"{info.name} has no image views to draw")
    title = f"step {step}: unconditional samples ({args.prior} prior), a column shares one z"
    figure = figures.sample_grid({m: np.asarray(views[m]) for m in drawn}, drawn, title=title)
    out = images.save_png(args.out or workdir / "samples" / f"unconditional_{args.prior}.png", figure)
    print(f"step {step}: {len(drawn)} views x {args.num} samples -> {out}")
    return dict(path=out, grid=figures.to_float(figure), step=step)


if __name__ == "__main__":
    main()
