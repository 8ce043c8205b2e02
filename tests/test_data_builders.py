"""Every builder prepares small generated fixture files and reads them back; the cache is keyed
by the source folder and its contents."""
import gzip
import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from idmvae_jax import data


def write_idx(path, array):
    """An MNIST idx file (gzipped): magic, dims, uint8 data."""
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def make_mnist_dir(folder, num_train=120, num_test=30, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", num_train), ("t10k", num_test)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 6:22, 10:18] = rng.integers(100, 256, (n, 16, 8))  # a bar, like a "1"
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte.gz"), np.arange(n) % 10)
    return folder


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_polymnist_quadrant_from_idx_files(tmp_path):
    manual = make_mnist_dir(str(tmp_path / "mnist"))
    cfg = dict(name="polymnist_quadrant", manual_dir=manual, image_size=32, num_repetitions=2,
               cache_dir=str(tmp_path / "cache"))
    info = data.get_dataset_info(cfg)
    # 120 train images: 110 train, 10 val (1/12), repetitions on train only; 30 test.
    assert info.splits == {"train": 220, "val": 10, "test": 30}
    train = data.load_split(cfg, "train")
    assert train["x"][0].shape == (220, 32, 32, 3)
    np.testing.assert_array_equal(train["mnist_index"] % 10, np.repeat(train["y_shared"][:, None], 5, 1))
    assert train["mnist_index"].max() < 110
    test = data.load_split(cfg, "test")
    assert test["mnist_index"].min() >= 120  # test ids follow the train file's
    val = data.load_split(cfg, "val")
    assert set(val["mnist_index"].ravel()) == set(range(110, 120))


def test_polymnist_archive(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(manual / "PolyMNIST.zip", "w") as archive:
        for split, n in (("train", 12), ("test", 6)):
            for m in range(5):
                for i in range(n):
                    pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
                    archive.writestr(f"MMNIST/{split}/m{m}/{i}.{i % 10}.png", png_bytes(pixels))
    cfg = dict(name="polymnist", manual_dir=str(manual), cache_dir=str(tmp_path / "cache"))
    info = data.get_dataset_info(cfg)
    assert info.splits == {"train": 12, "test": 6} and info.num_private_classes is None
    assert all(v.shape == (28, 28, 3) for v in info.views)
    test = data.load_split(cfg, "test")
    assert "y_private" not in test
    np.testing.assert_array_equal(test["y_shared"], np.arange(6) % 10)
    with zipfile.ZipFile(manual / "PolyMNIST.zip") as archive:
        stored = np.asarray(Image.open(io.BytesIO(archive.read("MMNIST/test/m3/4.4.png"))))
    np.testing.assert_array_equal(test["x"][3][4], stored)
    batch = next(data.make_iterator(cfg, "train", 4, seed=0, process_index=0, process_count=1))
    assert batch["x"][0].shape == (4, 28, 28, 3)


def make_cub_dir(folder, images_per_class=10):
    """3 species (2 listed in the grouping), 10 captions per image, part locations."""
    rng = np.random.default_rng(0)
    cub = os.path.join(folder, "CUB_200_2011")
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    lines = {"images": [], "labels": [], "parts": []}
    image_id = 0
    for c, name in enumerate(classes, 1):
        os.makedirs(os.path.join(cub, "images", name))
        os.makedirs(os.path.join(folder, "text_c10", name))
        for k in range(images_per_class):
            image_id += 1
            rel = f"{name}/{name.split('.')[1]}_{k:04d}.jpg"
            Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
                os.path.join(cub, "images", rel))
            with open(os.path.join(folder, "text_c10", rel[:-4] + ".txt"), "w") as handle:
                for j in range(10):
                    handle.write(f"this bird has a {'white black'.split()[j % 2]} belly and "
                                 f"{'long short'.split()[k % 2]} wings, number {j}.\n")
            lines["images"].append(f"{image_id} {rel}")
            lines["labels"].append(f"{image_id} {c}")
            beak_x = 5.0 if k % 2 else 35.0  # beak left of the nape for odd k
            lines["parts"].append(f"{image_id} 2 {beak_x} 10.0 1")
            lines["parts"].append(f"{image_id} 10 20.0 10.0 1")
    with open(os.path.join(cub, "images.txt"), "w") as handle:
        handle.write("\n".join(lines["images"]) + "\n")
    with open(os.path.join(cub, "image_class_labels.txt"), "w") as handle:
        handle.write("\n".join(lines["labels"]) + "\n")
    with open(os.path.join(cub, "classes.txt"), "w") as handle:
        handle.write("\n".join(f"{c} {n}" for c, n in enumerate(classes, 1)) + "\n")
    os.makedirs(os.path.join(cub, "parts"))
    with open(os.path.join(cub, "parts", "part_locs.txt"), "w") as handle:
        handle.write("\n".join(lines["parts"]) + "\n")
    with open(os.path.join(folder, "cubicc_groups.txt"), "w") as handle:
        handle.write(f"{classes[0]} 0\n{classes[2]} 1\n")
    return folder


def test_cub_image_captions(tmp_path):
    manual = make_cub_dir(str(tmp_path / "cub"))
    cfg = dict(name="cub", manual_dir=manual, image_size=16, cache_dir=str(tmp_path / "cache"))
    info = data.get_dataset_info(cfg)
    assert [v.kind for v in info.views] == ["image", "caption"]
    assert info.views[0].shape == (16, 16, 3) and info.views[1].shape == (32,)
    # 2 species x 10 images (7 / 2 / 1 per species) x 10 captions.
    assert info.splits == {"train": 140, "val": 40, "test": 20}
    assert (info.num_shared_classes, info.num_private_classes) == (2, 2)
    train = data.load_split(cfg, "train")
    tokens = train["x"][1]
    assert tokens.dtype == np.int32 and tokens.max() < info.views[1].vocab_size
    assert (tokens == 1).sum(1).tolist() == [1] * 140  # one <eos> per caption
    assert set(np.unique(train["y_shared"])) == {0, 1}
    assert set(np.unique(train["y_private"][:, 0])) == {0, 1} and (train["y_private"][:, 1] == -1).all()
    import json
    vocab = json.load(open(os.path.join(data.prepare(cfg), "vocab.json")))
    assert vocab[:3] == ["<pad>", "<eos>", "<exc>"] and "belly" in vocab
    assert "number" in vocab and "wings" in vocab and "," in vocab
    # Captions of one image share its pixels.
    np.testing.assert_array_equal(train["x"][0][0], train["x"][0][9])


def test_tcga(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    arrays = dict(x_0=rng.normal(size=(n, 100)).astype(np.float32),
                  x_1=rng.normal(size=(n, 100)), y_shared=rng.integers(0, 2, n))
    for k in range(5):
        perm = rng.permutation(n)
        arrays[f"train_idx_{k}"], arrays[f"test_idx_{k}"] = perm[:40], perm[40:]
    np.savez(tmp_path / "tcga.npz", **arrays)
    cfg = dict(name="tcga", path=str(tmp_path), tcga_split=2, cache_dir=str(tmp_path / "cache"))
    info = data.get_dataset_info(cfg)
    assert info.splits == {"train": 40, "test": 10}
    assert [v.kind for v in info.views] == ["vector", "vector"] and info.num_private_classes is None
    test = data.load_split(cfg, "test")
    np.testing.assert_array_equal(test["row"], arrays["test_idx_2"])
    np.testing.assert_allclose(test["x"][1], arrays["x_1"][arrays["test_idx_2"]].astype(np.float32))
    assert data.prepare(cfg) != data.prepare(dict(cfg, tcga_split=3))


def write_npz_folder(folder, num_train=30, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for name, n in (("train", num_train), ("val", 8), ("test", 10)):
        arrays = dict(x_0=rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8),
                      x_1=rng.normal(size=(n, 4, 2)).astype(np.float32),
                      x_2=rng.integers(0, 7, (n, 5)),
                      y_shared=np.arange(n) % 4)
        arrays.update(overrides.get(name, {}))
        np.savez(os.path.join(folder, f"{name}.npz"), **arrays)
    return folder


def test_a_build_says_one_line_and_draws_no_progress_bars(tmp_path, capfd):
    """TFDS's "Downloading and preparing dataset Unknown size" (for offline data) and its progress
    bars (escape codes in log files) are replaced by one line of ours."""
    folder = write_npz_folder(str(tmp_path / "user"))
    data.prepare(dict(name="npz", path=folder, cache_dir=str(tmp_path / "cache")))
    out, err = capfd.readouterr()
    assert "Downloading and preparing" not in out + err and "\x1b[" not in out + err
    assert [line for line in err.splitlines() if line.startswith("idmvae_jax: preparing")] == [
        f"idmvae_jax: preparing multimodal_npz once in {data.prepare(dict(name='npz', path=folder, cache_dir=str(tmp_path / 'cache')))} "
        "(offline; later runs reuse it)"]


def test_multimodal_npz_infers_views_and_classes(tmp_path):
    folder = write_npz_folder(str(tmp_path / "user"))
    cfg = dict(name="npz", path=folder, cache_dir=str(tmp_path / "cache"))
    info = data.get_dataset_info(cfg)
    assert [(v.kind, v.shape, v.dtype) for v in info.views] == [
        ("image", (6, 6, 1), "uint8"), ("latent", (4, 2), "float32"), ("caption", (5,), "int32")]
    assert info.views[2].vocab_size <= 7
    assert info.num_shared_classes == 4 and info.num_private_classes is None
    assert info.splits == {"train": 30, "val": 8, "test": 10}
    val = data.load_split(cfg, "val")
    source = np.load(os.path.join(folder, "val.npz"))
    for m in range(3):
        np.testing.assert_array_equal(val["x"][m], source[f"x_{m}"])


def test_cache_is_keyed_by_folder_and_content(tmp_path):
    first = write_npz_folder(str(tmp_path / "a"), seed=0)
    second = write_npz_folder(str(tmp_path / "b"), seed=1)
    cache = str(tmp_path / "cache")
    dir_a = data.prepare(dict(name="npz", path=first, cache_dir=cache))
    dir_b = data.prepare(dict(name="npz", path=second, cache_dir=cache))
    assert dir_a != dir_b
    # Same folder, new contents: a new build, never the stale one.
    write_npz_folder(first, seed=2, num_train=12)
    dir_a2 = data.prepare(dict(name="npz", path=first, cache_dir=cache))
    assert dir_a2 != dir_a
    assert data.get_dataset_info(dict(name="npz", path=first, cache_dir=cache)).splits["train"] == 12
    # Contents are validated before the cache is consulted.
    write_npz_folder(first, seed=2, num_train=12, test=dict(y_shared=np.full(10, 9)))
    with pytest.raises(ValueError, match="class id 9"):
        data.prepare(dict(name="npz", path=first, cache_dir=cache))
