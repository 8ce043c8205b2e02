"""Per-view classifiers: learn a separable synthetic task, stay at chance on shuffled labels,
round-trip through the cache, and never reuse a cache trained on other data."""
import json
import os

import numpy as np
import pytest

from idmvae_jax.evaluation import classifier_training
from idmvae_jax.evaluation import classifiers as clf_lib
from idmvae_jax.evaluation import ClassifierConfig, ViewClassifiers, load_or_train, train_view_classifiers

SMALL = ClassifierConfig(conv_features=(8, 16), hidden=32, mlp_hidden=(32,), max_shift=1)
TRAIN_KW = dict(epochs=6, batch_size=32, learning_rate=3e-3, config=SMALL)


def _quadrant_images(rng, n, size=16):
    """Noise images with a bright square in the quadrant given by the label (4 classes)."""
    x = rng.integers(0, 100, (n, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 4, n)
    h = size // 2
    for i, (r, c) in enumerate([(0, h), (0, 0), (h, 0), (h, h)][q] for q in y):
        x[i, r + 2:r + h - 2, c + 2:c + h - 2] = 255
    return x, y


def _vectors(rng, y, dim=6):
    centres = 3.0 * np.eye(4, dim)
    return (centres[y] + 0.5 * rng.normal(size=(len(y), dim))).astype(np.float32)


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    x_tr, y_tr = _quadrant_images(rng, 640)
    x_te, y_te = _quadrant_images(rng, 200)
    return ([x_tr, _vectors(rng, y_tr)], y_tr, [x_te, _vectors(rng, y_te)], y_te)


@pytest.fixture(scope="module")
def trained(task):
    views_tr, y_tr, views_te, y_te = task
    return train_view_classifiers(views_tr, y_tr, 4, views_te, y_te, seed=0, **TRAIN_KW)


def test_learns_a_separable_task(trained, task):
    assert trained.kinds == ["image", "vector"]
    assert trained.num_classes == 4
    assert min(trained.test_accuracy) > 0.95
    _, _, views_te, y_te = task
    for m in range(2):
        assert trained.accuracy(m, views_te[m], y_te) == pytest.approx(trained.test_accuracy[m])
    x = views_te[0][:5]
    assert trained.logits(0, x).shape == (5, 4)
    assert trained.predict(0, x).shape == (5,) and trained.predict(0, x).dtype == np.int32
    assert trained.features(0, x).shape == (5, SMALL.hidden)
    assert trained.features(1, views_te[1][:5]).shape == (5, SMALL.mlp_hidden[-1])
    # float input in [0, 1] is the same as uint8 input.
    np.testing.assert_allclose(trained.logits(0, x.astype(np.float32) / 255.0),
                               trained.logits(0, x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expects examples of shape"):
        trained.logits(0, np.zeros((2, 8, 8, 3), np.uint8))


def test_shuffled_labels_stay_at_chance(task):
    views_tr, y_tr, views_te, y_te = task
    rng = np.random.default_rng(1)
    shuffled = train_view_classifiers(views_tr[:1], rng.permutation(y_tr), 4, views_te[:1],
                                      rng.permutation(y_te), seed=0, **TRAIN_KW)
    assert abs(shuffled.test_accuracy[0] - 0.25) < 0.12


def test_per_view_labels_and_determinism(task):
    views_tr, y_tr, views_te, y_te = task
    # (N, M) labels: view 1 gets labels unrelated to its input -> near chance, view 0 learns.
    rng = np.random.default_rng(2)
    labels_tr = np.stack([y_tr, rng.integers(0, 4, len(y_tr))], axis=1)
    labels_te = np.stack([y_te, rng.integers(0, 4, len(y_te))], axis=1)
    kw = dict(TRAIN_KW, epochs=1)
    a = train_view_classifiers(views_tr, labels_tr, 4, views_te, labels_te, seed=3, **kw)
    b = train_view_classifiers(views_tr, labels_tr, 4, views_te, labels_te, seed=3, **kw)
    assert a.test_accuracy == b.test_accuracy
    np.testing.assert_array_equal(a.logits(0, views_te[0]), b.logits(0, views_te[0]))
    assert a.test_accuracy[1] < 0.45


def test_save_load_round_trip(trained, task, tmp_path):
    _, _, views_te, _ = task
    path = str(tmp_path / "clf")
    trained.save(path)
    assert os.path.exists(path + ".npz") and os.path.exists(path + ".json")
    with open(path + ".json") as f:
        meta = json.load(f)
    assert meta["test_accuracy"] == trained.test_accuracy
    back = ViewClassifiers.load(path)
    assert back.kinds == trained.kinds and back.config == trained.config
    for m in range(2):
        np.testing.assert_array_equal(back.logits(m, views_te[m]), trained.logits(m, views_te[m]))
    with pytest.raises(ValueError, match="different data"):
        ViewClassifiers.load(path, expected_fingerprint="0" * 64)


def test_load_or_train_caches_and_invalidates(task, tmp_path, monkeypatch):
    views_tr, y_tr, views_te, y_te = task
    kw = dict(TRAIN_KW, epochs=1)
    first = load_or_train(str(tmp_path), views_tr, y_tr, 4, views_te, y_te, name="digit", **kw)
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and files[0].startswith("digit-")

    def no_training(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(classifier_training, "train_view_classifiers", no_training)
    again = load_or_train(str(tmp_path), views_tr, y_tr, 4, views_te, y_te, name="digit", **kw)
    assert again.fingerprint == first.fingerprint
    np.testing.assert_array_equal(again.logits(0, views_te[0]), first.logits(0, views_te[0]))

    # Different data (one pixel) or a different setting never reuses that cache.
    changed = [v.copy() for v in views_tr]
    changed[0][0, 0, 0, 0] ^= 1
    for args, extra in (((changed, y_tr), {}), ((views_tr, y_tr), {"seed": 1})):
        with pytest.raises(AssertionError, match="cache should"):
            load_or_train(str(tmp_path), *args, 4, views_te, y_te, name="digit",
                          **dict(kw, **extra))
    monkeypatch.undo()
    other = load_or_train(str(tmp_path), changed, y_tr, 4, views_te, y_te, name="digit", **kw)
    assert other.fingerprint != first.fingerprint
    assert len(os.listdir(tmp_path)) == 4


def test_random_shift_translates_whole_images():
    import jax

    x = np.arange(2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1)
    out = np.asarray(classifier_training.random_shift(x, jax.random.key(0), 2))
    assert out.shape == x.shape
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for i in range(2):  # every output is some 6x6 window of the edge-padded image
        assert any(np.array_equal(out[i], padded[i, r:r + 6, c:c + 6])
                   for r in range(5) for c in range(5))


def test_convs_per_level_adds_stride_1_convolutions(task):
    """convs_per_level = 2: a 3x3 stride-1 convolution before each strided one, same output."""
    import jax
    import jax.numpy as jnp

    deeper = clf_lib.ImageClassifier(4, (8, 16), 32, convs_per_level=2)
    params = deeper.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    assert sorted(params) == ["conv0", "conv0_0", "conv1", "conv1_0", "head", "hidden"]
    assert params["conv1_0"]["kernel"].shape == (3, 3, 8, 16)
    logits, feats = deeper.apply({"params": params}, jnp.zeros((2, 16, 16, 3)))
    assert logits.shape == (2, 4) and feats.shape == (2, 32)
    # the default stays the one-convolution-per-level network (cached classifiers keep loading)
    assert ClassifierConfig().convs_per_level == 1
    assert ClassifierConfig.from_dict({"conv_features": [8], "hidden": 4, "mlp_hidden": [4],
                                       "max_shift": 0}).convs_per_level == 1


def test_one_network_shared_by_the_views_serves_each_view_with_its_own_accuracy(task):
    """share_views: the image views (two styles of one task) are served by one network trained on
    their pooled examples; each view is scored on its own test set."""
    rng = np.random.default_rng(1)
    (x_tr, _), y_tr, (x_te, _), y_te = task
    inverted_tr, inverted_te = 255 - x_tr, 255 - x_te  # a second view: the same task, other colours
    assert classifier_training.view_groups([x_tr, inverted_tr, rng.normal(size=(640, 3))], True) == [[0, 1], [2]]
    assert classifier_training.view_groups([x_tr, inverted_tr], False) == [[0], [1]]
    shared_cfg = ClassifierConfig(**{**SMALL.to_dict(), "conv_features": (8, 16), "share_views": True})
    lines = []
    result = train_view_classifiers([x_tr, inverted_tr], y_tr, 4, [x_te, inverted_te], y_te, seed=0,
                                    **{**TRAIN_KW, "config": shared_cfg, "epochs": 3},
                                    label_name="quadrant", log=lines.append)
    for a, b in zip(*(np.asarray(v) for v in (result.variables[0]["params"]["head"]["kernel"],
                                                result.variables[1]["params"]["head"]["kernel"]))):
        np.testing.assert_array_equal(a, b)  # one network
    for m, x in enumerate([x_te, inverted_te]):
        assert result.test_accuracy[m] == pytest.approx(float(np.mean(result.predict(m, x) == y_te)))
        assert result.test_accuracy[m] > 0.9
    # 3 passes over the 2 x 640 pooled examples in batches of 32: the log names the label and views
    epoch_lines = [line for line in lines if "epoch" in line]
    assert len(epoch_lines) == 3 and all(line.startswith("quadrant classifier (views 0,1)") for line in epoch_lines)
    assert all("ETA" in line for line in epoch_lines)


def test_default_architecture_keeps_the_cache_key_of_caches_made_before_share_views(task, tmp_path):
    """share_views=False leaves the fingerprint as it was before the option existed (the same
    settings hash), so existing caches stay valid; share_views=True is a different cache."""
    views_tr, y_tr, views_te, y_te = task
    before = dict(num_classes=4, seed=0, epochs=1, batch_size=32, learning_rate=3e-3,
                  config={k: v for k, v in SMALL.to_dict().items() if k != "share_views"})
    fp = classifier_training.data_fingerprint(views_tr, y_tr, views_te, y_te, **before)
    lines = []
    load_or_train(str(tmp_path), views_tr, y_tr, 4, views_te, y_te, seed=0, epochs=1, batch_size=32,
                  learning_rate=3e-3, config=SMALL, log=lines.append)
    assert os.path.exists(tmp_path / f"classifiers-{fp[:16]}.npz"), (os.listdir(tmp_path), lines)
    shared = ClassifierConfig(**{**SMALL.to_dict(), "share_views": True})
    settings = {**before, "config": shared.to_dict()}
    assert classifier_training.data_fingerprint(views_tr, y_tr, views_te, y_te, **settings) != fp
