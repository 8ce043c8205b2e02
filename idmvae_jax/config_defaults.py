"""Shared defaults and variant logic of every config in configs/ (`from idmvae_jax import config_defaults as common`).

A dataset config builds `base_config()`, overrides what its dataset and size need, then calls
`finalize(config, variant, weights)`. The sections and the fields other code reads:

  seed                     base seed of parameters, step keys and the data order.
  data.*                   every field of `idmvae_jax.data.DataOptions` (name, path, image_size, ...).
  model.*                  `ModelConfig` fields other than `views`, plus per-kind network settings
                           used by `idmvae_jax.build` to make the views' ViewSpecs:
                           model.image / model.latent (channels, likelihood, likelihood_scale,
                           llik_scaling), model.vector (hidden, likelihood, likelihood_scale with
                           None = learned, llik_scaling), model.caption (hidden, embed_dim,
                           llik_scaling) and model.llik_scaling (per-view weights; () = per kind).
  loss.*                   `LossConfig` fields (beta, cross_mi_weight, genaug_weight, ...).
  diffusion.*              `DiffusionConfig` fields.
  train.*                  batch_size (global), num_steps (total; a resumed run continues to it;
                           <= 0: num_epochs x train split / batch_size), learning_rate, optimiser,
                           log/checkpoint/sample intervals, steps_per_dispatch (lax.scan).
  parallel.*               mode ('jit' | 'pmap'), num_devices (0 = all), partitioner of jit
                           ('shard_map' | 'auto'; see idmvae_jax/training/parallel.py).
  eval.*                   settings of the evaluation CLI.

Variants (SPEC 2.1): idmvae (default: l1, l2 on, l_diff = 0), diffusion (idmvae + l_diff and the
latent score networks), mmvaeplus (l1 = l2 = l_diff = 0), no_crossmi (l1 = 0), no_genaug (l2 = 0).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import os

import ml_collections

VARIANTS = ("idmvae", "diffusion", "mmvaeplus", "no_crossmi", "no_genaug")


def parse_arg(arg: str | None, sizes: tuple, default_size: str) -> tuple[str, str]:
    """'SIZE[,VARIANT]' (either part may be omitted) -> (size, variant), checked."""
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    size, variant = default_size, "idmvae"
    for part in parts:
        if part in sizes:
            size = part
        elif part in VARIANTS:
            variant = part
        else:
            raise ValueError(
                f"config argument {arg!r}: {part!r} is neither a size {sizes} nor a variant {VARIANTS}; "
                "use SIZE[,VARIANT], e.g. 'mini,diffusion'")
    return size, variant


def base_config() -> ml_collections.ConfigDict:
    """Every section with the library defaults (PolyMNIST-Quadrant paper settings where relevant)."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    # --- data: the fields of idmvae_jax.data.DataOptions (see that module for their meaning)
    c.data = ml_collections.ConfigDict(dict(
        name="polymnist_quadrant_embedded", path="", cache_dir="", manual_dir="", image_size=0, digit_size=0,
        num_repetitions=4, seed=0, num_views=0, mnist_source="auto", tcga_split=0,
        cub_caption_length=32, cub_min_word_count=3, cub_latents_file="", cub_split_seed=0, latent_views="",
        allow_download=True, prefetch=4, decode_threads=1,
    ))

    # --- model: ModelConfig fields + per-kind network settings (idmvae_jax.build)
    c.model = ml_collections.ConfigDict(dict(
        z_dim=32, w_dim=128, posterior="normal", posterior_eps=1e-8, prior_raw_scale=0.0,
        critic="cosine", critic_width=256, critic_dim=128, diffusion_prior=False,
        score_width=512, score_time_dim=512,
        vmap_views="auto",  # True | False | "auto" (= not on CPU, where vmapped conv gradients are slow)
        remat=False, compute_dtype="float32",
        llik_scaling=(),  # one weight per view; () = the per-kind llik_scaling below
    ))
    c.model.image = ml_collections.ConfigDict(dict(
        channels=(64, 128, 256, 512), likelihood="laplace", likelihood_scale=0.75, llik_scaling=1.0))
    c.model.latent = ml_collections.ConfigDict(dict(
        channels=(64, 128, 256, 512, 1024), likelihood="laplace", likelihood_scale=0.01, llik_scaling=1.0))
    c.model.vector = ml_collections.ConfigDict(dict(
        hidden=(128, 64), likelihood="laplace", likelihood_scale=None, llik_scaling=1.0))
    c.model.caption = ml_collections.ConfigDict(dict(hidden=(32, 64, 128), embed_dim=128, llik_scaling=5.0))

    # --- loss: LossConfig fields
    c.loss = ml_collections.ConfigDict(dict(
        beta=2.5, num_samples=1, cross_mi_weight=80.0, genaug_weight=20.0, diffusion_weight=0.0,
        temperature=1.0, genaug_sampling="posterior", genaug_loss="contrastive",
        diffusion_stop_gradient=False,
    ))

    # --- diffusion: DiffusionConfig fields
    c.diffusion = ml_collections.ConfigDict(dict(
        num_timesteps=1000, schedule_start=-3.0, schedule_end=3.0, schedule_tau=1.0, ddim_steps=100))

    # --- training loop
    c.train = ml_collections.ConfigDict(dict(
        batch_size=128,  # global, over all devices and processes
        num_steps=171_875,  # total steps; <= 0: derived from num_epochs
        num_epochs=0.0,  # used only when num_steps <= 0
        learning_rate=5e-4,
        optimizer="adam",  # 'adam' | 'adamw'
        amsgrad=False,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.0,  # adamw only
        grad_clip_norm=0.0,  # 0 = no clipping
        steps_per_dispatch=1,  # train steps per device dispatch (lax.scan); log/checkpoint/sample
                               # intervals must be multiples of it
        log_every=100,
        checkpoint_every=5000,
        keep_checkpoints=3,
        async_checkpointing=True,
        sample_every=5000,  # 0 = no PNG grids
        num_sample_examples=8,  # columns of the PNG grids (per block; cross-generations: at most 4)
        sample_prior="gaussian",  # 'gaussian' | 'diffusion' (needs model.diffusion_prior)
        tensorboard=True,
        # comma-separated config keys allowed to differ from the workdir's config.json on resume
        # (training.config_check), e.g. "train.learning_rate"
        resume_allow_changes="",
    ))

    c.parallel = ml_collections.ConfigDict(dict(mode="jit", num_devices=0, partitioner="shard_map"))

    # --- evaluation (read by idmvae_jax.evaluate)
    c.eval = ml_collections.ConfigDict(dict(
        split="test", batch_size=256, num_fit=10_000, fid_samples=10_000, fid_weights="",
        classifier_steps=2000, classifier_batch_size=128, classifier_learning_rate=1e-3,
        classifier_private_steps=0,  # Adam steps of the private-label classifiers (0 = classifier_steps)
        # architecture of the per-view classifiers (evaluation.classifiers.ClassifierConfig)
        classifier_conv_features=(32, 64, 64), classifier_convs_per_level=1, classifier_hidden=128,
        classifier_mlp_hidden=(256, 128), classifier_max_shift=1, classifier_share_views=False,
        priors=("gaussian", "diffusion"),
        probe_curve=True,  # the z/w probes at every kept checkpoint (evaluation.probe_curve)
        baseline_results="",  # a results file (tools.results) whose curves the report draws beside this run's
        report_note="",  # Markdown that opens the report: what this size can and cannot show
    ))
    return c


def _type_name(value) -> str:
    return type(value).__name__


def check_field_types(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict | None = None,
                      prefix: str = "") -> None:
    """Checks every field of `config` against the type of its default in `base_config()`.

    ml_collections checks scalar overrides, but turns `--config.model.image.channels=abc` into the
    tuple ('abc',), which would fail deep in model building. Raises UserError naming the field,
    the value, and the type it takes (with its default as an example). Fields whose default is
    None or an empty tuple, and fields the defaults do not have, are not checked.
    """
    from idmvae_jax.errors import UserError

    reference = base_config() if reference is None else reference
    for key, value in config.items():
        if key not in reference:
            continue
        default, name = reference[key], f"{prefix}{key}"
        if isinstance(default, ml_collections.ConfigDict):
            if isinstance(value, ml_collections.ConfigDict):
                check_field_types(value, default, f"{name}.")
            continue
        if not isinstance(default, tuple) or not default:
            continue
        element = type(default[0])
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, element) and not (element is int and isinstance(v, bool))
            or (element is float and isinstance(v, int) and not isinstance(v, bool)) for v in value)
        if not ok:
            raise UserError(f"config field {name}={value!r}: {name} takes a tuple of {element.__name__}, "
                            f"e.g. --config.{name}='{default!r}'")


def apply_variant(c: ml_collections.ConfigDict, variant: str, weights: tuple) -> None:
    """Sets loss weights (l1, l2, l_diff = `weights`, the dataset's published values) for `variant`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    l1, l2, l_diff = weights
    c.loss.cross_mi_weight, c.loss.genaug_weight, c.loss.diffusion_weight = float(l1), float(l2), 0.0
    c.model.diffusion_prior = False
    if variant == "diffusion":
        c.loss.diffusion_weight = float(l_diff)
        c.model.diffusion_prior = True
    elif variant == "mmvaeplus":
        c.loss.cross_mi_weight = c.loss.genaug_weight = 0.0
    elif variant == "no_crossmi":
        c.loss.cross_mi_weight = 0.0
    elif variant == "no_genaug":
        c.loss.genaug_weight = 0.0


def finalize(c: ml_collections.ConfigDict, variant: str, weights: tuple) -> ml_collections.ConfigDict:
    """Applies the variant and locks the config (a misspelt override then fails)."""
    apply_variant(c, variant, weights)
    c.lock()
    return c


def load_config(spec: str) -> ml_collections.ConfigDict:
    """'configs/NAME.py[:SIZE,VARIANT]' -> that file's `get_config(ARGS)` (what --config=... loads).

    A relative path is tried from the working directory, then from the repository root.
    """
    path, _, arg = spec.partition(":")
    if not os.path.isabs(path) and not os.path.exists(path):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.exists(os.path.join(root, path)):
            path = os.path.join(root, path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path!r} not found; pass e.g. 'configs/polymnist_quadrant.py:mini'")
    name = "idmvae_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def set_config_value(config: ml_collections.ConfigDict, item: str) -> None:
    """Applies one 'a.b.c=VALUE' override (VALUE a Python literal, else a string) to an existing key."""
    path, sep, text = item.partition("=")
    *parents, leaf = path.split(".")
    node = config
    try:
        for name in parents:
            node = node[name]
    except (KeyError, TypeError):  # a missing section, or a value where a section should be
        node = None
    if not sep or not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise KeyError(f"override {item!r}: expected KEY=VALUE with an existing config key")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    node[leaf] = value


def add_config_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """The config options of the example scripts: --config, --num_views, --data_dir, --set."""
    parser.add_argument("--config", default=default)
    parser.add_argument("--num_views", type=int, default=0,
                        help="keep the first N views (0 = the config's data.num_views)")
    parser.add_argument("--data_dir", default="", help="data.cache_dir ('' = the library default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set model.critic=projection (repeatable)")


def config_from_arguments(args: argparse.Namespace) -> ml_collections.ConfigDict:
    """The config that the options of `add_config_arguments` select."""
    config = load_config(args.config)
    if args.num_views:
        config.data.num_views = args.num_views
    for item in args.set:
        set_config_value(config, item)
    if args.data_dir:
        config.data.cache_dir = args.data_dir
    return config
