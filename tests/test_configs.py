"""Every config in configs/ loads, locks, and builds its model (abstractly for the big ones)."""
import glob
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from ml_collections import config_flags  # noqa: F401  (the loader the CLI uses)

from idmvae_jax import build
from idmvae_jax.data import DatasetInfo, ViewInfo
from idmvae_jax.models.multimodal import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "configs")
VARIANTS = ("idmvae", "diffusion", "mmvaeplus", "no_crossmi", "no_genaug")


def load(name, arg=None):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cfg_{name}", os.path.join(CONFIG_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg), module


def _image(size, channels=3):
    return ViewInfo("image", (size, size, channels), "uint8", has_private_label=True)


def dataset_info(config):
    """The DatasetInfo the data layer reports for each dataset (without preparing the data)."""
    name = config.data.name
    if name.startswith("polymnist_quadrant"):
        size = config.data.image_size or 64
        views = (_image(size),) * 5
    elif name == "polymnist":
        views = (_image(28),) * 5
    elif name == "cub":
        views = (ViewInfo("latent", (32, 32, 4), "float32"),
                 ViewInfo("caption", (32,), "int32", vocab_size=1590))
    elif name == "tcga":
        views = (ViewInfo("vector", (100,), "float32"),) * 2
    else:
        raise AssertionError(name)
    return DatasetInfo(name=name, views=views, num_shared_classes=10, num_private_classes=None,
                       splits={"train": 1000, "test": 100}, shared_label_name="label")


CASES = [(n, s) for n, sizes in [("polymnist_quadrant", ("paper", "mini", "tiny")), ("polymnist", ("paper", "tiny")),
                                 ("cub", ("paper", "tiny")), ("tcga", ("paper", "tiny"))] for s in sizes]


def test_every_config_file_is_covered():
    names = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))} - {"common"}
    assert names == {"polymnist_quadrant", "polymnist", "cub", "tcga", "npz"}


@pytest.mark.parametrize("name,size", CASES)
def test_config_builds_model(name, size):
    config, module = load(name, size)
    assert config.is_locked
    assert "python -m idmvae_jax.main --config=configs/" in module.__doc__
    cfg = build.build_idmvae_config(config, dataset_info(config))
    model = make_model(cfg.model)
    shapes = jax.eval_shape(model.init, jax.random.key(0))  # abstract: no memory for the big ones
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) > 0
    assert cfg.model.num_views == len(dataset_info(config).views)


@pytest.mark.parametrize("size,l1", [("paper", 80.0), ("mini", 400.0)])  # mini: l1 scaled, see its comment
@pytest.mark.parametrize("variant", VARIANTS)
def test_variants(variant, size, l1):
    config, _ = load("polymnist_quadrant", f"{size},{variant}")
    lc = config.loss
    expected = {
        "idmvae": (l1, 20.0, 0.0), "diffusion": (l1, 20.0, 1.0), "mmvaeplus": (0.0, 0.0, 0.0),
        "no_crossmi": (0.0, 20.0, 0.0), "no_genaug": (l1, 0.0, 0.0),
    }[variant]
    assert (lc.cross_mi_weight, lc.genaug_weight, lc.diffusion_weight) == expected
    assert config.model.diffusion_prior == (variant == "diffusion")
    cfg = build.build_idmvae_config(config, dataset_info(config))  # validates the combination
    assert cfg.model.diffusion_prior == (variant == "diffusion")


def test_paper_settings_match_spec():
    c, _ = load("polymnist_quadrant", "paper")
    assert (c.data.image_size, c.model.z_dim, c.model.w_dim) == (64, 32, 128)
    assert tuple(c.model.image.channels) == (64, 128, 256, 512)
    assert (c.loss.beta, c.train.learning_rate, c.train.batch_size) == (2.5, 5e-4, 128)
    assert c.train.num_steps == 100 * 220_000 // 128
    cub, _ = load("cub", "paper,diffusion")
    assert (cub.loss.cross_mi_weight, cub.loss.genaug_weight, cub.loss.diffusion_weight) == (40.0, 10.0, 0.1)
    assert cub.train.amsgrad and cub.model.latent.llik_scaling == 1 / 128


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="neither a size"):
        load("polymnist_quadrant", "mini,idmvea")


def test_misspelt_override_fails():
    config, _ = load("polymnist_quadrant", "tiny")
    with pytest.raises(AttributeError, match="learning_rat"):
        config.train.learning_rat = 1e-3
    with pytest.raises(AttributeError):
        config.loss.cross_mi = 1.0


def test_set_config_value_parses_literals_and_rejects_unknown_keys():
    from idmvae_jax.config_defaults import set_config_value

    config, _ = load("polymnist_quadrant", "tiny")
    set_config_value(config, "model.image.channels=(16,32,64)")
    set_config_value(config, "train.learning_rate=3e-3")
    set_config_value(config, "model.critic=centered")  # not a literal: kept as the string
    assert tuple(config.model.image.channels) == (16, 32, 64)
    assert config.train.learning_rate == 3e-3 and config.model.critic == "centered"
    for bad in ("model.imag.channels=(4,)", "train.learnin_rate=1.0", "train.learning_rate",
                "train.learning_rate.x=1"):
        with pytest.raises(KeyError, match="existing config key"):
            set_config_value(config, bad)


def test_misspelt_cli_override_fails(tmp_path):
    """Through the real CLI flag parser: a misspelt --config field stops before training."""
    cmd = [sys.executable, "-m", "idmvae_jax.main", "--config=configs/polymnist_quadrant.py:tiny",
           f"--workdir={tmp_path}", "--config.train.learnin_rate=0.1"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "learnin_rate" in out.stderr
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_a_tuple_override_of_the_wrong_type_names_the_field(tmp_path):
    """--config.model.image.channels=abc used to fail deep in models/specs.py after the data loaded."""
    cmd = [sys.executable, "-m", "idmvae_jax.main", "--config=configs/polymnist_quadrant.py:tiny",
           f"--workdir={tmp_path / 'run'}", "--config.model.image.channels=abc"]
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert [line for line in out.stderr.splitlines() if line.startswith("ERROR")] == [
        "ERROR: config field model.image.channels=('abc',): model.image.channels takes a tuple of int, "
        "e.g. --config.model.image.channels='(64, 128, 256, 512)'"]
    assert "Traceback" not in out.stderr and not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("name,size", CASES)
def test_every_config_has_the_types_of_the_defaults(name, size):
    from idmvae_jax.config_defaults import check_field_types

    check_field_types(load(name, size)[0])


def test_npz_config_builds_from_a_small_folder(tmp_path):
    from idmvae_jax import data as data_lib

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        np.savez(tmp_path / f"{split}.npz", x_0=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                 x_1=rng.normal(size=(n, 10)).astype(np.float32), y_shared=rng.integers(0, 3, n))
    for size in ("default", "tiny"):
        config, _ = load("npz", size)
        config.data.path = str(tmp_path)
        config.data.cache_dir = str(tmp_path / "cache")
        info = data_lib.get_dataset_info(config.data)
        cfg = build.build_idmvae_config(config, info)
        kinds = [v.kind for v in cfg.model.views]
        assert kinds == ["image", "vector"]
        if size == "default":
            assert cfg.model.views[0].channels == build.auto_channels(16, 16) == (32, 64, 128)
        jax.eval_shape(make_model(cfg.model).init, jax.random.key(0))


def test_auto_channels():
    assert build.auto_channels(64, 64) == (32, 64, 128, 256)
    assert build.auto_channels(28, 28) == (32, 64, 128)
    assert build.auto_channels(8, 8) == (32, 64)


def test_example_and_preview_arguments_keep_the_configs_views():
    """--num_views=0 (the default) keeps the config's data.num_views: the preview of `quick`
    reads its 3 views, the cache entry its run trains on."""
    import argparse

    from idmvae_jax.config_defaults import add_config_arguments, config_from_arguments

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, "configs/polymnist_quadrant.py:quick")
    assert config_from_arguments(parser.parse_args([])).data.num_views == 3
    assert config_from_arguments(parser.parse_args(["--num_views=2"])).data.num_views == 2
