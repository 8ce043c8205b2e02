"""Bad input fails early with an error that names the problem and the fix; nothing downloads."""
import os
import time

import numpy as np
import pytest

from idmvae_jax import data
from test_data_builders import make_cub_dir, write_npz_folder


def _npz(tmp_path, **overrides):
    folder = write_npz_folder(str(tmp_path / "user"), **overrides)
    return dict(name="npz", path=folder, cache_dir=str(tmp_path / "cache"))


def test_missing_npz_files_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="data.path is empty"):
        data.prepare(dict(name="npz"))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        data.prepare(dict(name="npz", path=str(tmp_path / "nowhere")))
    cfg = _npz(tmp_path)
    os.remove(os.path.join(cfg["path"], "test.npz"))
    with pytest.raises(data.MissingSourceError, match=r"test\.npz does not exist.*numpy\.savez"):
        data.prepare(cfg)


@pytest.mark.parametrize("overrides, message", [
    (dict(train=dict(x_0=np.zeros((30, 6, 6), np.uint8))), "uint8 views are images"),
    (dict(train=dict(x_0=np.zeros((30, 6, 6, 2), np.uint8))), r"C in \(1, 3, 4\)"),
    (dict(train=dict(x_1=np.zeros((30,), np.float32))), "float vectors"),
    (dict(train=dict(x_1=np.full((30, 3), np.nan, np.float32))), "NaN"),
    (dict(train=dict(x_1=np.zeros((30, 3), np.complex64))), "dtype complex64"),
    (dict(train=dict(x_2=np.zeros((29, 5), np.int64))), "x_2 has 29 examples"),
    (dict(train=dict(y_shared=np.zeros(29, np.int64))), r"y_shared has shape \(29,\)"),
    (dict(train=dict(y_shared=np.full(30, 0.5))), "integer class ids"),
    (dict(train=dict(y_shared=-np.ones(30, np.int64))), "negative class id"),
    (dict(test=dict(y_shared=np.full(10, 7))), "class id 7 but the training split only has"),
    (dict(train=dict(y_private=np.zeros((30, 2), np.int64))), r"y_private has shape \(30, 2\)"),
    (dict(train=dict(y_private=np.zeros((30, 3), np.int64))), "present in every split or in none"),
    (dict(test=dict(x_3=np.zeros((10, 2), np.float32))), "has 4 views but"),
    (dict(test=dict(x_1=np.zeros((10, 8), np.float32))), "x_1 is a vector of shape"),
    (dict(train=dict(x_4=np.zeros((30, 2), np.float32))), "without gaps"),
])
def test_wrong_user_arrays_raise_clear_value_errors(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        data.get_dataset_info(_npz(tmp_path, **overrides))


def test_float_arrays_shaped_like_images_are_not_guessed(tmp_path):
    """A float64 (N, H, W, 1) array of 0-255 values used to train silently as a "latent" view."""
    pixels = {split: dict(x_0=np.random.default_rng(0).integers(0, 256, (n, 6, 6, 1)).astype(np.float64))
              for split, n in (("train", 30), ("val", 8), ("test", 10))}
    with pytest.raises(ValueError) as info:
        data.get_dataset_info(_npz(tmp_path, **pixels))
    message = str(info.value)
    assert "x_0 is float64 shaped like images" in message and "values in [0, 255]" in message
    assert "astype(numpy.uint8)" in message and "--config.data.latent_views=0" in message
    cfg = dict(_npz(tmp_path, **pixels), latent_views="0")  # the user says they are latents
    assert data.get_dataset_info(cfg).views[0].kind == "latent"
    with pytest.raises(ValueError, match="comma-separated view indices"):
        data.get_dataset_info(dict(cfg, latent_views="x"))


def test_single_view_is_rejected(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    for name in ("train", "test"):
        np.savez(folder / f"{name}.npz", x_0=np.zeros((4, 3), np.float32), y_shared=np.zeros(4, int))
    with pytest.raises(ValueError, match="at least 2 views"):
        data.prepare(dict(name="npz", path=str(folder), cache_dir=str(tmp_path / "c")))


def test_pickled_npz_is_rejected(tmp_path):
    cfg = _npz(tmp_path)
    np.savez(os.path.join(cfg["path"], "train.npz"), x_0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npz of plain numeric arrays"):
        data.prepare(cfg)


def test_bad_tcga_file(tmp_path):
    rng = np.random.default_rng(0)
    base = dict(x_0=rng.normal(size=(20, 100)), x_1=rng.normal(size=(20, 100)),
                y_shared=rng.integers(0, 2, 20))
    cfg = dict(name="tcga", path=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(data.MissingSourceError, match=r"tcga\.npz does not exist"):
        data.prepare(cfg)
    np.savez(tmp_path / "tcga.npz", **base)
    with pytest.raises(ValueError, match="missing train_idx_0"):
        data.prepare(cfg)
    np.savez(tmp_path / "tcga.npz", train_idx_0=np.arange(15), test_idx_0=np.arange(10, 20), **base)
    with pytest.raises(ValueError, match="overlaps train_idx_0"):
        data.prepare(cfg)
    np.savez(tmp_path / "tcga.npz", train_idx_0=np.arange(15), test_idx_0=np.arange(15, 25), **base)
    with pytest.raises(ValueError, match="rows outside"):
        data.prepare(cfg)


def test_bad_config_values():
    with pytest.raises(ValueError, match="is unknown"):
        data.prepare(dict(name="mnist"))
    with pytest.raises(ValueError, match="use 64 .* or 32"):
        data.prepare(dict(name="polymnist_quadrant_embedded", image_size=48))
    with pytest.raises(ValueError, match="tcga_split"):
        data.prepare(dict(name="tcga", path="/x", tcga_split=5))


def test_missing_mnist_idx_files_are_named(tmp_path):
    with pytest.raises(data.MissingSourceError, match=r"train-images-idx3-ubyte\.gz.*manual_dir"):
        data.prepare(dict(name="polymnist_quadrant", manual_dir=str(tmp_path),
                          cache_dir=str(tmp_path / "cache")))


def test_corrupt_idx_file(tmp_path):
    from test_data_builders import make_mnist_dir
    manual = make_mnist_dir(str(tmp_path / "mnist"), num_train=24, num_test=6)
    with open(os.path.join(manual, "t10k-labels-idx1-ubyte.gz"), "wb") as handle:
        import gzip
        handle.write(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(5)))
    with pytest.raises(ValueError, match="5 labels for 6 images"):
        data.prepare(dict(name="polymnist_quadrant", manual_dir=manual, image_size=32,
                          cache_dir=str(tmp_path / "cache")))


@pytest.mark.parametrize("name", ["polymnist_quadrant", "polymnist"])
def test_downloads_fail_fast_with_the_manual_alternative(tmp_path, name):
    start = time.time()
    with pytest.raises(data.MissingSourceError, match="could not download .*manual_dir"):
        data.prepare(dict(name=name, cache_dir=str(tmp_path)))
    assert time.time() - start < 30
    assert not [f for _, _, files in os.walk(tmp_path) for f in files]  # no partial files left
    with pytest.raises(data.MissingSourceError, match="downloads are disabled"):
        data.prepare(dict(name=name, cache_dir=str(tmp_path), allow_download=False))


def test_missing_polymnist_archive_is_named(tmp_path):
    with pytest.raises(data.MissingSourceError, match=r"PolyMNIST\.zip.*zenodo"):
        data.prepare(dict(name="polymnist", manual_dir=str(tmp_path)))


def test_missing_cub_files_are_named(tmp_path):
    with pytest.raises(data.MissingSourceError, match="data.manual_dir is empty"):
        data.prepare(dict(name="cub"))
    with pytest.raises(data.MissingSourceError, match=r"CUB_200_2011/images.txt does not exist"):
        data.prepare(dict(name="cub", manual_dir=str(tmp_path)))
    manual = make_cub_dir(str(tmp_path / "cub"), images_per_class=2)
    os.rename(os.path.join(manual, "text_c10"), os.path.join(manual, "captions"))
    with pytest.raises(data.MissingSourceError, match=r"text_c10 does not exist.*Reed"):
        data.prepare(dict(name="cub", manual_dir=manual, cache_dir=str(tmp_path / "c")))
    os.rename(os.path.join(manual, "captions"), os.path.join(manual, "text_c10"))
    os.remove(os.path.join(manual, "cubicc_groups.txt"))
    with pytest.raises(data.MissingSourceError, match="cubicc_groups.txt does not exist.*CUBICC"):
        data.prepare(dict(name="cub", manual_dir=manual, cache_dir=str(tmp_path / "c")))
    with open(os.path.join(manual, "cubicc_groups.txt"), "w") as handle:
        handle.write("999.Dodo 0\n")
    with pytest.raises(ValueError, match="999.Dodo"):
        data.prepare(dict(name="cub", manual_dir=manual, cache_dir=str(tmp_path / "c")))


def test_too_many_views_requested(tmp_path):
    with pytest.raises(ValueError, match="has only 3 views"):
        data.get_dataset_info(dict(_npz(tmp_path), num_views=4))
