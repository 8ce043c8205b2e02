"""Every script in examples/ runs on the tiny config: embedded offline data, 1-2 of its 5 views.

Each example is imported from its file and its `main(argv)` called with small options; the
assertions check what each one claims: the loop trains, the custom critic is the one used, the new
view has parameters that receive gradients, the sampler writes a grid of the expected size.
"""
import importlib.util
import os

import jax
import numpy as np
import pytest
from PIL import Image

from idmvae_jax import data, objective

from idmvae_jax.training import loop
from idmvae_jax.config_defaults import load_config
from idmvae_jax.core.similarity import cosine_scores
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.models.multimodal import group_name, make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "polymnist_quadrant.py")
TINY = [f"--config={CONFIG}:tiny", "--num_views=2"]


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("fast_compile_module")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp().parent / "idmvae_data")  # shared with the other tests


def leaves_differ(a, b):
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_every_example_has_a_docstring_and_main():
    names = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py"))
    tested = ["custom_critic", "custom_training_loop", "decoder_autoencoder", "fork_objective", "new_modality",
              "sample_unconditional", "shared_code_probe"]
    assert names == tested, "every example needs a test in this file"
    for name in names:
        module = load_example(name)
        assert module.__doc__ and "python examples/" in module.__doc__ and callable(module.main)


def test_custom_training_loop(data_dir):
    r = load_example("custom_training_loop").main(TINY + ["--steps=6", f"--data_dir={data_dir}"])
    assert len(r["history"]) == 6 and all(np.isfinite(h["total"]) for h in r["history"])
    assert r["after"] < r["before"]  # the same test batch and key, before and after training
    assert leaves_differ(r["initial_params"], r["params"])


def test_custom_critic(data_dir):
    example = load_example("custom_critic")
    r = example.main(TINY + ["--steps=2", f"--data_dir={data_dir}"])
    lib, first = r["library"], r["history"][0]  # the same params, batch and key
    cfg, params = r["cfg"], r["initial_params"]
    model = make_model(cfg.model)
    mu_z = jax.jit(lambda p, x: model.encode(p, network_inputs(cfg.model.views, x)).mu_z)(params, r["batch"]["x"])
    rbf = objective.cross_view_infonce_loss(mu_z, cfg.loss.temperature, example.rbf_critic)
    cosine = objective.cross_view_infonce_loss(mu_z, cfg.loss.temperature, cosine_scores)
    np.testing.assert_allclose(first["cross_mi"], rbf, rtol=1e-5)  # the RBF critic was used
    np.testing.assert_allclose(lib["cross_mi"], cosine, rtol=1e-5)  # the library's is the cosine
    assert abs(first["cross_mi"] - lib["cross_mi"]) > 1e-3
    assert abs(first["genaug"] - lib["genaug"]) > 1e-3  # the cycle term's z contrast uses it too
    for name in ("elbo", "diffusion"):  # the other terms are untouched
        np.testing.assert_allclose(first[name], lib[name], rtol=1e-5)
    expected = (lib["total"] + cfg.loss.cross_mi_weight * (first["cross_mi"] - lib["cross_mi"])
                + cfg.loss.genaug_weight * (first["genaug"] - lib["genaug"]))
    np.testing.assert_allclose(first["total"], expected, rtol=1e-4)
    assert all(np.isfinite(h["total"]) for h in r["history"])
    assert leaves_differ(params, r["state"].params)


def test_new_modality(data_dir):
    args = [f"--config={CONFIG}:tiny", "--num_views=1", "--steps=2", f"--data_dir={data_dir}"]  # image + vector
    r = load_example("new_modality").main(args)
    cfg, m = r["cfg"], r["new_view"]
    assert [v.kind for v in cfg.model.views] == ["image", "vector"] and m == 1
    assert cfg.model.views[m].shape == (10,) and cfg.model.views[m].hidden == (32, 16)
    group = group_name((m,))
    for part in ("encoders", "decoders"):
        new = r["params"][part][group]
        assert all(leaf.shape[0] == 1 for leaf in jax.tree.leaves(new))  # a group of one view
        grad_norm = np.sqrt(sum(float(np.sum(np.square(g))) for g in jax.tree.leaves(r["first_grads"][part][group])))
        assert grad_norm > 0, part
        assert leaves_differ(r["initial_params"][part][group], new)
    assert all(np.isfinite(h["total"]) for h in r["history"])


def test_sample_unconditional(data_dir, tmp_path, monkeypatch):
    config = load_config(f"{CONFIG}:tiny,diffusion")
    config.data.cache_dir = data_dir
    config.data.num_views = 2
    config.parallel.num_devices = 1
    config.train.num_steps = config.train.log_every = config.train.checkpoint_every = 2
    config.train.sample_every = 0
    workdir = tmp_path / "run"
    loop.train_and_evaluate(config, str(workdir))

    out = tmp_path / "grid.png"
    example = load_example("sample_unconditional")
    def no_dataset(*args, **kwargs):
        raise AssertionError("restoring a run must not need its dataset: config.json holds the views")
    monkeypatch.setattr(example.data, "get_dataset_info", no_dataset)
    r = example.main(["--workdir", str(workdir), "--num=3", f"--out={out}"])
    assert r["step"] == 2 and r["path"] == str(out) and out.is_file()
    with Image.open(out) as image:  # the labelled grid: 2 image views x 3 samples of 32 px at 64 px
        assert image.mode == "RGB" and image.size[0] >= 3 * 64 + 40 and image.size[1] >= 2 * 64 + 20
        np.testing.assert_array_equal(np.asarray(image), np.round(r["grid"] * 255).astype(np.uint8))
    band = r["grid"][-6 - 2 * 66:-6 - 66 - 2][:20]  # view 0's cells, above its row label's text
    x0 = np.flatnonzero((band < 1.0).any(axis=(0, 2)))[0]  # the first cell
    assert np.std(band[:, x0:x0 + 64]) > 0  # a decoded sample, not a blank tile


def test_shared_code_probe_trains_only_the_z_encoders_on_crossmi(data_dir):
    r = load_example("shared_code_probe").main(
        TINY + ["--steps=4", "--probe_every=2", "--num_fit=64", "--num_test=32", f"--data_dir={data_dir}"])
    assert [row["step"] for row in r["rows"]] == [2, 4]
    for row in r["rows"]:
        assert 0.0 <= row["probe_z_shared"] <= 1.0 and np.isfinite(row["cross_mi"])
        assert -1.0 <= row["cos_other"] <= 1.0 and -1.0 <= row["cos_same"] <= 1.0
    name = next(iter(r["params"]["encoders"]))
    before, after = r["initial_params"]["encoders"][name], r["params"]["encoders"][name]
    assert leaves_differ(before["branch_z"], after["branch_z"])
    assert not leaves_differ(before["branch_w"], after["branch_w"])
    assert not leaves_differ(r["initial_params"]["decoders"], r["params"]["decoders"])
    # the probe and the objective see the model's inputs (preprocessed images), as loss_fn does
    config = load_config(f"{CONFIG}:tiny")
    config.data.cache_dir = data_dir
    xs = data.load_split(config.data, "test", max_examples=8)["x"]
    model = make_model(r["cfg"].model)
    want = model.encode(r["params"], network_inputs(r["cfg"].model.views, xs)).mu_z
    np.testing.assert_allclose(r["encode_z"](r["params"], xs), want, rtol=1e-5, atol=1e-6)
    loss, _ = r["objective"](r["params"], {"x": xs}, None)
    np.testing.assert_allclose(loss, objective.cross_view_infonce_loss(want, r["cfg"].loss.temperature), rtol=1e-5)


def test_decoder_autoencoder_trains_and_scores_its_reconstructions(data_dir):
    r = load_example("decoder_autoencoder").main(
        TINY + ["--steps=6", "--eval_every=3", "--view=1", "--latent_dim=5", f"--data_dir={data_dir}"])
    assert [row["step"] for row in r["rows"]] == [3, 6]
    for row in r["rows"]:
        assert 0.0 <= row["recon_digit"] <= 1.0 and 0.0 < row["mae"] < 1.0 and np.isfinite(row["loss"])
    assert r["params"]["encoder"]["mu"]["kernel"].shape[-1] == 5  # the code has --latent_dim units
    assert leaves_differ(r["initial_params"], r["params"])
    # the printed mae is that of the returned model on view 1 of the test split
    config = load_config(f"{CONFIG}:tiny")
    config.data.cache_dir = data_dir
    x = data.load_split(config.data, "test")["x"][1].astype(np.float32) / 255.0
    mae = np.mean(np.abs(np.asarray(r["reconstruct"](r["params"], x)) - x))
    np.testing.assert_allclose(r["rows"][-1]["mae"], mae, atol=1e-4)
    with pytest.raises(ValueError, match="pick an image view"):
        load_example("decoder_autoencoder").main(TINY + ["--view=2", f"--data_dir={data_dir}"])


def test_fork_objective():
    """The whole objective around the example's own networks: it loads only the objective layer,
    its total is the weighted sum of the terms, every network gets a gradient, and training lowers it."""
    from test_objective_layer import _modules_after_import, _outside_objective_layer

    loaded = _modules_after_import(
        "import importlib.util as u; s = u.spec_from_file_location('f', 'examples/fork_objective.py'); "
        "s.loader.exec_module(u.module_from_spec(s))")
    assert _outside_objective_layer(loaded) == [] and not any(m.startswith("flax") for m in loaded)

    example = load_example("fork_objective")
    result = example.main(["--steps=25", "--batch_size=32"])
    first, last = result["first"], result["last"]
    weighted = (first["elbo"] + example.L1 * first["cross_mi"] + example.L2 * first["genaug"]
                + example.L_DIFF * first["diffusion"])
    np.testing.assert_allclose(first["total"], weighted, rtol=1e-6)
    assert all(np.isfinite(v) and v != 0 for v in first.values())
    assert last["total"] < first["total"] - 10  # trained on the fixed batch's own distribution

    # every leaf of every network moved: Adam leaves a parameter with a zero gradient where it is
    before_leaves = jax.tree_util.tree_flatten_with_path(example.init(jax.random.key(0)))[0]
    for (path, before), after in zip(before_leaves, jax.tree.leaves(result["params"]), strict=True):
        assert np.all(np.isfinite(after)) and np.max(np.abs(after - before)) > 0, jax.tree_util.keystr(path)
