"""data.figures: the labelled grids of the preview, the training samples and the report."""
import numpy as np
import pytest
from PIL import Image

from idmvae_jax.data import figures, images


def _views(m, n, size=32, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, size, size, channels)).astype(np.float32) for _ in range(m)]


def _dark(pixels):
    return pixels.min() < 100  # label text is black on white


def _cell_columns(pixels, row_y):
    """x ranges of the non-white runs along the pixel row `row_y` (the cells crossed there)."""
    line = (pixels[row_y] < 250).any(axis=-1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_reconstruction_grid_two_views():
    x = _views(2, 5)
    image = figures.reconstruction_grid(x, x, [0, 1], num=4)
    pixels = np.asarray(image)
    height, width, _ = pixels.shape
    assert width >= 8 * 64 and height >= 2 * 64  # 2 blocks of 4 columns, 32 px drawn at 64 px
    top = height - 2 * (64 + 2) - 6  # the first row of cells
    runs = _cell_columns(pixels, top + 32)
    cells = [r for r in runs if r[1] - r[0] == 64]
    assert len(cells) == 8, runs  # 8 cells of 64 px; the label text before them is narrower
    np.testing.assert_array_equal(pixels[top:top + 64, cells[0][0]:cells[0][1]],
                                  images.to_uint8_rgb(x[0][0]).repeat(2, 0).repeat(2, 1))
    assert _dark(pixels[top:, :cells[0][0]])  # "view 0", "view 1"
    assert _dark(pixels[:top])  # "input", "reconstruction"
    gap = cells[4][0] - cells[3][1]
    assert gap > cells[1][0] - cells[0][1]  # the blocks are set apart


def test_cross_and_sample_grids():
    x = _views(3, 6)
    cross = [[x[d] for d in range(3)] for _ in range(3)]
    image = figures.cross_grid(x, cross, [0, 2], num=4)  # views 0 and 2 only
    assert image.size[0] >= 3 * 4 * 64 and image.size[1] >= 2 * 64  # input + 2 target blocks
    samples = figures.sample_grid(x, [0, 1, 2], title="a title")
    assert samples.size[0] >= 6 * 64 and samples.size[1] >= 3 * 64
    assert _dark(np.asarray(samples)[:20])  # the title line
    assert figures.cross_grid(x, cross, []) is None and figures.sample_grid(x, []) is None
    assert figures.reconstruction_grid(x, x, []) is None


def test_labels_never_overlap_small_cells():
    cells = [[np.zeros((8, 8, 3), np.uint8)] * 3]
    image = figures.labelled_grid(cells, ["row"], ["a long label"] * 3, scale=1)
    width = figures._text_size("a long label", figures.font())[0]
    assert image.size[0] >= 3 * width  # the columns are widened to their labels


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1), (64, 64, 3)])
def test_grey_and_large_views(shape):
    x = [np.full((2,) + shape, 128, np.uint8)]
    image = figures.sample_grid(x, [0])
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.size[1] >= 64 and image.size[1] < 64 * 3  # enlarged to >= 64 px, 64 px kept
    pixels = figures.to_float(image)
    assert pixels.dtype == np.float32 and pixels.shape == (image.size[1], image.size[0], 3)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def test_is_drawable():
    assert figures.is_drawable("image", (32, 32, 3)) and figures.is_drawable("image", (28, 28))
    assert not figures.is_drawable("image", (32, 32, 2)) and not figures.is_drawable("vector", (10,))


def test_block_labels_wider_than_their_block_stay_inside():
    x = _views(2, 1, size=8)
    image = figures.reconstruction_grid(x, x, [0, 1])  # blocks of 1 cell: "reconstruction" is wider
    pixels = np.asarray(image)
    assert (pixels[:, -2:] > 250).all() and (pixels[:, :2] > 250).all()  # white margins: no clipped text
    width = figures._text_size("reconstruction", figures.font())[0]
    assert image.size[0] >= 64 + width
