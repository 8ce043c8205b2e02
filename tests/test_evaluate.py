"""The evaluation: metrics of an oracle / input-ignoring model with known answers, the report, and
the CLI on a tiny trained workdir (a small synthetic npz dataset with image and vector views,
shared and private labels, trained for a few steps with the diffusion variant so that every key,
`_diffusion` ones included, is written)."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest

from idmvae_jax import evaluate as ev
from idmvae_jax import storage
from idmvae_jax.evaluation import label_classifiers as lc
from idmvae_jax.evaluation import model_fns as mf
from idmvae_jax.evaluation import run
from idmvae_jax.data import DatasetInfo, ViewInfo
from idmvae_jax.evaluation import report as report_lib
from conftest import disabled_optimizations


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K, P = 4, 2  # shared and private classes


# =============================================================================== oracle
def onehot(labels, n):
    return np.eye(n, dtype=np.float32)[np.asarray(labels)]


def vec(shared, private):
    return np.concatenate([onehot(shared, K), onehot(private, P)], axis=1)


def vector_data(n, m=3, seed=0, private=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n).astype(np.int32)
    yp = rng.integers(0, P, (n, m)).astype(np.int32)
    out = {"x": [vec(y, yp[:, v]) for v in range(m)], "y_shared": y}
    if private:
        out["y_private"] = yp
    return out


def vector_info(m=3, private=True):
    views = tuple(ViewInfo("vector", (K + P,), "float32", has_private_label=private) for _ in range(m))
    return DatasetInfo("oracle", views, K, P if private else None, {"train": 0, "test": 0}, "digit",
                       "quadrant" if private else None)


class ArgmaxClassifier:
    """Reads the label from the one-hot block: perfect on the data."""

    def __init__(self, lo, hi, m):
        self.lo, self.hi = lo, hi
        self.test_accuracy = [1.0] * m

    def predict(self, view, x):
        return np.argmax(np.asarray(x)[:, self.lo:self.hi], axis=1)

    def features(self, view, x):
        return np.asarray(x, np.float64)[:, self.lo:self.hi]


def oracle_classifiers(m=3, private=True):
    return lc.Classifiers(ArgmaxClassifier(0, K, m),
                          ArgmaxClassifier(K, K + P, m) if private else None,
                          tuple(range(m)) if private else ())


def _draw(idx, salt, n):
    return np.array([np.random.default_rng([salt, int(i)]).integers(n) for i in idx])


def oracle_fns(m=3):
    """A perfect model built from the labels: z = the shared one-hot, w = the private one-hot."""
    def encode(xs):
        z = np.stack([x[:, :K] for x in xs])
        w = np.stack([x[:, K:] for x in xs])
        return z, w

    def cross(xs, idx):
        return [[vec(np.argmax(xs[e][:, :K], 1), _draw(idx, 10 * e + d, P)) for d in range(m)]
                for e in range(m)]

    def private(xs, idx):
        return [vec(_draw(idx, 100 + e, K), np.argmax(xs[e][:, K:], 1)) for e in range(m)]

    def unconditional(idx):
        y = _draw(idx, 7, K)
        return [vec(y, _draw(idx, 200 + v, P)) for v in range(m)]

    return mf.ModelFns(encode, {"gaussian": cross}, {"gaussian": private}, {"gaussian": unconditional})


def ignoring_fns(m=3):
    """Encodes and generates noise, whatever the input."""
    def encode(xs):
        n = len(xs[0])
        rng = np.random.default_rng(n)
        return rng.normal(size=(m, n, 3)), rng.normal(size=(m, n, 3))

    def rand(idx, salt):
        return vec(_draw(idx, salt, K), _draw(idx, salt + 1, P))

    cross = lambda xs, idx: [[rand(idx, 10 * e + d) for d in range(m)] for e in range(m)]  # noqa: E731
    private = lambda xs, idx: [rand(idx, 300 + 2 * e) for e in range(m)]  # noqa: E731
    unconditional = lambda idx: [rand(idx, 400 + 2 * v) for v in range(m)]  # noqa: E731
    return mf.ModelFns(encode, {"gaussian": cross}, {"gaussian": private}, {"gaussian": unconditional})


def test_oracle_model_reaches_the_ideal_values():
    train, test = vector_data(600, seed=1), vector_data(800, seed=2)
    metrics, art = run.compute_metrics(oracle_fns(), oracle_classifiers(), vector_info(), train, test,
                                       run.EvalSettings(batch_size=128, num_fit=500), log=lambda s: None)
    for key in ("coherence/self", "coherence/cross", "coherence/unconditional", "coherence/private",
                "probe/z_shared", "probe/w_private", "classifier/shared_acc", "classifier/private_acc"):
        assert metrics[key] == 1.0, key
    # z carries no private information, w no shared one: their probes sit at chance.
    assert metrics["probe/z_private"] == pytest.approx(1 / P, abs=0.07)
    assert metrics["probe/w_shared"] == pytest.approx(1 / K, abs=0.07)
    assert metrics["coherence/private_leak"] == pytest.approx(1 / K, abs=0.05)
    assert metrics["coherence/unconditional_entropy"] == pytest.approx(math.log(K), abs=0.01)
    assert metrics["coherence/entropy_reference"] == pytest.approx(math.log(K))
    # Generated and real features follow the same (uniform one-hot) distribution.
    assert metrics["fd_classifier/unconditional"] < 0.02
    assert metrics["fd_classifier/cross"] < 0.02
    assert not any(k.startswith("fid/") for k in metrics)
    np.testing.assert_array_equal(art["coherence"]["gaussian"]["matrix"], np.ones((3, 3)))


def test_model_ignoring_its_input_is_at_chance():
    train, test = vector_data(400, seed=1), vector_data(800, seed=2)
    metrics, _ = run.compute_metrics(ignoring_fns(), oracle_classifiers(), vector_info(), train, test,
                                     run.EvalSettings(batch_size=100, num_fit=400), log=lambda s: None)
    for key, chance in (("coherence/self", 1 / K), ("coherence/cross", 1 / K),
                        ("coherence/private", 1 / P), ("coherence/private_leak", 1 / K),
                        ("coherence/unconditional", 1 / K ** 2), ("probe/z_shared", 1 / K),
                        ("probe/w_private", 1 / P)):
        assert metrics[key] == pytest.approx(chance, abs=0.07), key


def test_without_private_labels_the_private_keys_are_omitted(tmp_path):
    train, test = vector_data(200, seed=1, private=False), vector_data(64, seed=2, private=False)
    info = vector_info(private=False)
    metrics, art = run.compute_metrics(oracle_fns(), oracle_classifiers(private=False), info, train,
                                       test, run.EvalSettings(batch_size=32, num_fit=200),
                                       log=lambda s: None)
    assert not [k for k in metrics if "private" in k and "private_leak" not in k]
    assert {"probe/z_shared", "probe/w_shared", "coherence/self", "coherence/cross",
            "coherence/unconditional", "coherence/private_leak", "classifier/shared_acc"} <= set(metrics)
    path = report_lib.write_report(str(tmp_path), metrics, info=info, artifacts=art, test=test)
    text = open(path).read()
    assert "no private labels" in text and "not images" in text
    assert os.path.isfile(tmp_path / "latents.png")  # vectors: projections, but no image grids
    assert not os.path.exists(tmp_path / "cross_generation_gaussian.png")


def test_private_metrics_only_for_views_with_a_private_label():
    """As CUB (the caption has no private label): view 1 is unlabelled (-1)."""
    train, test = vector_data(300, seed=1), vector_data(200, seed=2)
    for d in (train, test):
        d["y_private"][:, 1] = -1
    info = vector_info()
    info = dataclasses.replace(info, views=tuple(
        dataclasses.replace(v, has_private_label=(i != 1)) for i, v in enumerate(info.views)))
    classifiers = lc.Classifiers(ArgmaxClassifier(0, K, 3), ArgmaxClassifier(K, K + P, 2), (0, 2))
    metrics, _ = run.compute_metrics(oracle_fns(), classifiers, info, train, test,
                                     run.EvalSettings(batch_size=64, num_fit=300), log=lambda s: None)
    assert metrics["coherence/private"] == 1.0 and metrics["probe/w_private"] == 1.0
    assert "probe/view2/w_private" in metrics and "probe/view1/w_private" not in metrics
    assert "probe/view1/w_shared" in metrics
    assert "classifier/view1/private_acc" not in metrics and metrics["classifier/private_acc"] == 1.0


def test_report_figures_for_image_views(tmp_path):
    rng = np.random.default_rng(0)
    m, n = 2, 6
    views = tuple(ViewInfo("image", (8, 8, 3), "uint8", has_private_label=True) for _ in range(m))
    info = DatasetInfo("imgs", views, K, P, {"test": n}, "digit", "quadrant")
    test = {"x": [rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8) for _ in range(m)],
            "y_shared": rng.integers(0, K, n), "y_private": rng.integers(0, P, (n, m))}
    imgs = lambda: rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)  # noqa: E731
    art = {"private_views": [0, 1], "classifier_accuracy": {"shared": [0.9, 0.8], "private": [1.0, 1.0]},
           "coherence": {p: {"matrix": np.eye(m)} for p in ("gaussian", "diffusion")},
           "cross": {p: [[imgs() for _ in range(m)] for _ in range(m)] for p in ("gaussian", "diffusion")},
           "samples": {p: [imgs() for _ in range(m)] for p in ("gaussian", "diffusion")},
           "latents": {"z": rng.normal(size=(m, n, 3)), "w": rng.normal(size=(m, n, 5))}}
    metrics = {"coherence/self": 0.5, "coherence/self_diffusion": 0.75, "fd_classifier/cross": 1.5}
    path = report_lib.write_report(str(tmp_path), metrics, info=info, artifacts=art, test=test,
                                   priors=("gaussian", "diffusion"), notes=["FID skipped: reasons"])
    text = open(path).read()
    from PIL import Image
    for name in ("cross_generation_gaussian.png", "cross_generation_diffusion.png",
                 "samples_gaussian.png", "samples_diffusion.png", "latents.png"):
        assert f"]({name})" in text
        Image.open(tmp_path / name).verify()
    # the labelled grids, 8 px views drawn at 64 px: cross = [input, to view 0, to view 1] x 4
    # examples, samples = 4 columns; labels left of the rows and above the columns
    for name, columns in (("cross_generation_gaussian.png", 12), ("samples_diffusion.png", 4)):
        with Image.open(tmp_path / name) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape[1] >= columns * 64 + 40 and pixels.shape[0] >= 2 * 64 + 16, (name, pixels.shape)
        assert pixels[:16].min() < 100 and pixels[pixels.shape[0] // 2:, :40].min() < 100, name
    assert "| 0.5000 | 0.7500 |" in text and "FID skipped" in text


def _label_image(labels, noise_idx, salt):
    """8x8 RGB images whose brightness encodes the label (plus index-seeded noise)."""
    noise = np.stack([np.random.default_rng([salt, int(i)]).integers(0, 10, (8, 8, 3))
                      for i in noise_idx])
    return (np.asarray(labels)[:, None, None, None] * 60 + noise).astype(np.uint8)


class BrightnessClassifier:
    test_accuracy = [1.0, 1.0]

    def predict(self, view, x):
        level = np.asarray(x, np.float64).mean(axis=(1, 2, 3)) / 60 - 0.07
        return np.clip(np.round(level), 0, K - 1).astype(int)

    def features(self, view, x):
        return np.asarray(x, np.float64).reshape(len(x), -1)[:, :6]


def test_fid_keys_with_a_feature_function_on_image_views():
    """The FID plumbing (real vs generated features per image view, extra unconditional samples
    when fid_samples exceeds the split) with a stand-in for the Inception features."""
    m, n = 2, 40
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, n)
    test = {"x": [_label_image(y, range(n), 50 + v) for v in range(m)], "y_shared": y}
    train = {"x": [_label_image(y, range(n), 60 + v) for v in range(m)], "y_shared": y}
    views = tuple(ViewInfo("image", (8, 8, 3), "uint8") for _ in range(m))
    info = DatasetInfo("imgs", views, K, None, {"train": n, "test": n}, "digit")
    read = BrightnessClassifier().predict

    def encode(xs):
        z = np.stack([onehot(read(0, x), K) for x in xs])
        return z, np.zeros_like(z)

    def cross(xs, idx):
        return [[_label_image(read(0, xs[e]), idx, 70 + d) for d in range(m)] for e in range(m)]

    private = lambda xs, idx: [_label_image(_draw(idx, 1, K), idx, 80 + e) for e in range(m)]  # noqa: E731
    calls = []

    def unconditional(idx):
        calls.append(np.asarray(idx).copy())
        y_u = _draw(idx, 2, K)
        return [_label_image(y_u, idx, 90 + v) for v in range(m)]

    fns = mf.ModelFns(encode, {"gaussian": cross}, {"gaussian": private}, {"gaussian": unconditional})
    feature_calls = []

    def fid_features(images):
        feature_calls.append(len(images))
        return np.asarray(images, np.float64).reshape(len(images), -1)[:, :5]

    settings = run.EvalSettings(batch_size=16, num_fit=n, fid_samples=60, fid_feature_fn=fid_features)
    metrics, _ = run.compute_metrics(fns, lc.Classifiers(BrightnessClassifier()), info, train, test,
                                     settings, log=lambda s: None)
    assert metrics["coherence/self"] == 1.0 and metrics["coherence/cross"] == 1.0
    for key in ("fid/unconditional", "fid/cross", "fid/view0/unconditional", "fid/view1/cross"):
        assert np.isfinite(metrics[key]) and metrics[key] >= -1e-6, key
    # 40 coherence samples, then 20 more for FID, with the next indices.
    np.testing.assert_array_equal(np.concatenate(calls)[:40], np.arange(40))
    assert set(np.concatenate(calls)[48:].tolist()) >= set(range(40, 60))
    assert sum(feature_calls) == m * (40 + 60 + 40)  # real (all 40) + unconditional 60 + cross 40


def test_pca_recovers_the_leading_direction():
    rng = np.random.default_rng(0)
    x = np.outer(rng.normal(size=200) * 10, [1.0, 0.0, 0.0]) + rng.normal(size=(200, 3)) * 0.1
    proj = report_lib.pca_2d(x)
    assert abs(np.corrcoef(proj[:, 0], x[:, 0])[0, 1]) > 0.999


def test_classifier_budget_realises_the_steps():
    e = type("E", (), {"classifier_batch_size": 32, "classifier_steps": 30})()
    assert lc.classifier_budget(e, 10_000) == (960, 1, 32)
    assert lc.classifier_budget(e, 320) == (320, 3, 32)
    assert lc.classifier_budget(e, 8) == (8, 30, 8)  # one step per epoch
    assert lc.classifier_budget(e, 10_000, steps=3) == (96, 1, 32)
    # one network pooling 3 views: each tuple gives 3 examples, so a third of the tuples
    assert lc.classifier_budget(e, 10_000, pooled_views=3) == (320, 1, 32)
    assert lc.classifier_budget(e, 100, pooled_views=3) == (100, 3, 32)  # 300 examples, 9 steps each
    assert lc.classifier_budget(e, 8, pooled_views=3) == (8, 30, 24)


def test_classifier_architecture_comes_from_the_eval_config():
    from idmvae_jax import config_defaults
    from idmvae_jax.evaluation.classifiers import ClassifierConfig

    e = config_defaults.base_config().eval
    assert lc.classifier_config(e) == ClassifierConfig()  # the eval defaults are the library's
    e.classifier_convs_per_level, e.classifier_conv_features = 2, (16, 32, 64)
    assert lc.classifier_config(e) == ClassifierConfig(conv_features=(16, 32, 64), convs_per_level=2)
    assert lc.private_classifier_steps(e) == e.classifier_steps  # 0 = the shared label's budget
    e.classifier_private_steps = 300
    assert lc.private_classifier_steps(e) == 300


# =============================================================================== the CLI
def _image(shared, private, size=16):
    """A square in quadrant `shared` whose colour channel is `private`, on noise."""
    img = np.random.default_rng([int(shared), int(private), 7]).integers(0, 60, (size, size, 3))
    h = size // 2
    r, c = divmod(int(shared), 2)
    img[r * h + 2:r * h + h - 2, c * h + 2:c * h + h - 2, int(private)] = 255
    return img.astype(np.uint8)


def _npz_split(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n).astype(np.int64)
    yp = rng.integers(0, P, (n, 3)).astype(np.int64)
    x0 = np.stack([_image(a, b) for a, b in zip(y, yp[:, 0])])
    x1 = np.stack([_image(a, b) for a, b in zip(y, yp[:, 1])])
    x2 = (vec(y, yp[:, 2]) + rng.normal(0, 0.1, (n, K + P))).astype(np.float32)
    return dict(x_0=x0, x_1=x1, x_2=x2, y_shared=y, y_private=yp)


def _cli_args(workdir, data_dir, cache_dir):
    return [
        "evaluate", f"--config={ROOT}/configs/npz.py:tiny,diffusion", f"--workdir={workdir}",
        f"--config.data.path={data_dir}", f"--config.data.cache_dir={cache_dir}",
        "--config.diffusion.ddim_steps=3", "--config.eval.batch_size=32", "--config.eval.num_fit=96",
        "--config.eval.classifier_steps=60", "--config.eval.classifier_batch_size=32",
    ]


def _train(config, workdir):
    """A couple of training steps with the training system."""
    from idmvae_jax.training import loop

    loop.train_and_evaluate(config, workdir)


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory):
    """The synthetic npz dataset and the CLI arguments of a run on it (not trained)."""
    base = tmp_path_factory.mktemp("evaluate")
    data_dir, cache_dir, workdir = base / "data", base / "cache", base / "run"
    os.makedirs(data_dir)
    np.savez(data_dir / "train.npz", **_npz_split(192, seed=0))
    np.savez(data_dir / "test.npz", **_npz_split(48, seed=1))
    args = _cli_args(workdir, data_dir, cache_dir)
    config, _, _ = ev.parse_flags(args)
    return {"args": args, "workdir": workdir, "config": config}


@pytest.fixture(scope="module")
def tiny_run(npz_data):
    """Two training steps of the tiny diffusion variant on the npz data (only the CLI test uses it,
    so pytest-xdist trains it once)."""
    config = npz_data["config"]
    with config.unlocked():
        config.train.num_steps = 2
        config.train.sample_every = 0
        config.train.tensorboard = False
    with disabled_optimizations():
        _train(config, str(npz_data["workdir"]))
    return npz_data


REQUIRED = ("probe/z_shared", "probe/z_private", "probe/w_private", "probe/w_shared", "coherence/self",
            "coherence/cross", "coherence/unconditional", "coherence/private", "coherence/private_leak",
            "classifier/shared_acc", "classifier/private_acc", "coherence/unconditional_entropy",
            "coherence/self_diffusion", "coherence/cross_diffusion", "coherence/unconditional_diffusion",
            "coherence/private_diffusion", "coherence/unconditional_entropy_diffusion",
            "fd_classifier/unconditional", "fd_classifier/cross", "fd_classifier/unconditional_diffusion",
            "fd_classifier/cross_diffusion")


def check_metrics(path, keys, num_classes):
    """metrics.json at `path` has every key of `keys`, each in its range (probes, coherences and
    accuracies in [0, 1], entropies in [0, log num_classes], Frechet distances >= 0); returns it."""
    metrics = json.loads(storage.path(path).read_text())  # a local path or a bucket URL
    missing = [k for k in keys if k not in metrics]
    assert not missing, missing
    for key in keys:
        value = metrics[key]
        if key.startswith("fd_classifier/"):
            assert value >= -1e-6, key
        elif key.startswith("coherence/unconditional_entropy"):
            assert 0.0 <= value <= math.log(num_classes) + 1e-9, key
        else:
            assert 0.0 <= value <= 1.0, key
    return metrics


@pytest.mark.slow  # CI runs the README's evaluate command on polymnist tiny (test_doc_commands.py)
def test_cli_writes_every_metric_and_the_report(tiny_run, capsys):
    assert ev.main(tiny_run["args"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    eval_dir = tiny_run["workdir"] / "eval"
    assert out[-1] == str(eval_dir / "report.md")
    assert any(line.startswith("FID skipped") for line in out)
    metrics = check_metrics(eval_dir / "metrics.json", REQUIRED, K)
    assert not any(k.startswith("fid/") for k in metrics)
    # The classifiers see the synthetic labels plainly.
    assert metrics["classifier/shared_acc"] > 0.9 and metrics["classifier/private_acc"] > 0.9
    report = open(eval_dir / "report.md").read()
    for name in ("cross_generation_gaussian.png", "cross_generation_diffusion.png", "samples_gaussian.png",
                 "samples_diffusion.png", "latents.png"):
        assert os.path.getsize(eval_dir / name) > 0 and f"]({name})" in report
    assert "FID skipped" in report and "not images" in report  # view 2 is a vector
    assert "Checkpoint step 2." in report


def test_cli_without_a_checkpoint_says_so(npz_data, tmp_path, capsys):
    args = [a if not a.startswith("--workdir=") else f"--workdir={tmp_path}" for a in npz_data["args"]]
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text('{"probe/z_shared": 0.99}')  # an earlier evaluation's
    with pytest.raises(SystemExit) as info:
        ev.main(args)
    assert info.value.code == 2
    assert not (tmp_path / "eval" / "metrics.json").exists()  # no stale numbers survive a failed evaluation
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: no checkpoint in {tmp_path}/checkpoints; train first")


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit, match="usage"):
        ev.main(["evaluate", f"--config={ROOT}/configs/npz.py:tiny"])
    with pytest.raises(SystemExit) as info:
        ev.main(["evaluate", "--workdir=/tmp/x", "--config.eval.batch_size=3"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("ERROR: Unknown command line flag 'config.eval.batch_size' (usage:")


def test_generation_does_not_depend_on_batch_size_or_devices(npz_data, fast_compile):
    """Per-example keys: the same examples give the same samples in any batching, on 1 or 8
    devices (an untrained model of the run's config is enough)."""
    import jax

    from idmvae_jax import build

    from idmvae_jax.training import parallel, step as train_step
    from idmvae_jax.data import get_dataset_info, load_split

    config = npz_data["config"]
    cfg = build.build_idmvae_config(config, get_dataset_info(config.data))
    init = train_step.make_init_fn(cfg, train_step.make_optimizer(config.train), 0)
    mesh8, mesh1 = parallel.make_mesh(0), parallel.make_mesh(1)
    assert mesh8.devices.size == 8
    state, _ = parallel.init_state_on_mesh(init, mesh8)
    params = state.params
    test = load_split(config.data, "test", max_examples=16)
    idx = np.arange(16, dtype=np.int32)
    fns8 = mf.make_model_fns(params, cfg, mesh8, seed=3, priors=("gaussian", "diffusion"))
    full = fns8.cross["diffusion"](test["x"], idx)
    half = fns8.cross["diffusion"]([x[8:] for x in test["x"]], idx[8:])
    params1 = jax.device_put(params, jax.sharding.NamedSharding(mesh1, jax.sharding.PartitionSpec()))
    fns1 = mf.make_model_fns(params1, cfg, mesh1, seed=3, priors=("gaussian",))
    one = fns1.unconditional["gaussian"](idx)
    eight = fns8.unconditional["gaussian"](idx)
    # Equal up to float round-off (which may flip a uint8 pixel by one level); view 2 is a vector.
    for e in range(3):
        for d in range(3):
            np.testing.assert_allclose(full[e][d][8:].astype(np.float32), half[e][d].astype(np.float32),
                                       atol=1.0 if d < 2 else 1e-5)
    for v in range(3):
        np.testing.assert_allclose(one[v].astype(np.float32), eight[v].astype(np.float32),
                                   atol=1.0 if v < 2 else 1e-5)
    other_seed = mf.make_model_fns(params, cfg, mesh8, seed=4, priors=("gaussian",))
    assert not np.allclose(other_seed.unconditional["gaussian"](idx)[2], eight[2])
