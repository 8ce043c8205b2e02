"""Inception-v3 as used for FID (pool3, 2048-d features) in Flax linen, NHWC, with a torch-free
loader for the standard PyTorch FID weights file `pt_inception-2015-12-05-6726825d.pth`.

The network is the "FID Inception" of pytorch-fid (the TensorFlow 2015-12-05 graph ported to
PyTorch), which differs from torchvision's Inception-v3 in three places:
  * the average pools inside the A, C and E blocks exclude the zero padding from the mean;
  * the pooling branch of the last E block (Mixed_7c) is a 3x3/1 *max* pool;
  * the input is resized to 299x299 (bilinear, half-pixel centres, no antialiasing) and scaled
    from [0, 1] to [-1, 1].
Every convolution is bias-free and followed by BatchNorm (eps 1e-3, running statistics) and ReLU.
Parameter names mirror the PyTorch module names (`Mixed_6b/branch7x7dbl_3/conv/kernel`), so the
state-dict conversion is a rename plus OIHW -> HWIO for kernels.

`channel_divisor` shrinks every channel count by an integer factor (1 = the real network); the
tests use a reduced network with a structurally identical reduced weights file.
"""
import functools
import os
from typing import Any, Callable, Dict, Mapping, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from idmvae_jax.evaluation import frechet
from idmvae_jax.evaluation.arrays import map_batches
from idmvae_jax.evaluation.torch_pickle import load_torch_state_dict

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILENAME)
FID_WEIGHTS_CONFIG_KEY = "eval.fid_weights"
FID_IMAGE_SIZE = 299
FID_FEATURE_DIM = 2048
BN_EPSILON = 1e-3

Pair = Tuple[int, int]


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (running stats, eps 1e-3) -> ReLU with explicit padding."""

    features: int
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Pair = (0, 0)

    @nn.compact
    def __call__(self, x):
        ph, pw = self.padding
        x = nn.Conv(self.features, self.kernel_size, strides=self.strides,
                    padding=((ph, ph), (pw, pw)), use_bias=False, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
        return nn.relu(x)


def _avg_pool_3x3_exclude_pad(x):
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                       count_include_pad=False)


def _max_pool_3x3(x, stride: int, pad: int = 0):
    return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1."""

    pool_features: int
    div: int = 1

    @nn.compact
    def __call__(self, x):
        c = lambda n: n // self.div  # noqa: E731
        b1 = BasicConv2d(c(64), (1, 1), name="branch1x1")(x)
        b5 = BasicConv2d(c(48), (1, 1), name="branch5x5_1")(x)
        b5 = BasicConv2d(c(64), (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = BasicConv2d(c(64), (1, 1), name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(c(96), (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv2d(c(96), (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv2d(c(self.pool_features), (1, 1), name="branch_pool")(
            _avg_pool_3x3_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """35->17 reduction (Mixed_6a): 3x3/2 | 1x1->3x3->3x3/2 | maxpool 3x3/2."""

    div: int = 1

    @nn.compact
    def __call__(self, x):
        c = lambda n: n // self.div  # noqa: E731
        b3 = BasicConv2d(c(384), (3, 3), strides=(2, 2), name="branch3x3")(x)
        bd = BasicConv2d(c(64), (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv2d(c(96), (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(c(96), (3, 3), strides=(2, 2), name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3(x, 2)], axis=-1)


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b-e) with factorised 7x7 convolutions."""

    channels_7x7: int
    div: int = 1

    @nn.compact
    def __call__(self, x):
        c = lambda n: n // self.div  # noqa: E731
        c7 = c(self.channels_7x7)
        b1 = BasicConv2d(c(192), (1, 1), name="branch1x1")(x)
        b7 = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv2d(c(192), (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(c(192), (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(c(192), (1, 1), name="branch_pool")(_avg_pool_3x3_exclude_pad(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """17->8 reduction (Mixed_7a): 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool 3x3/2."""

    div: int = 1

    @nn.compact
    def __call__(self, x):
        c = lambda n: n // self.div  # noqa: E731
        b3 = BasicConv2d(c(192), (1, 1), name="branch3x3_1")(x)
        b3 = BasicConv2d(c(320), (3, 3), strides=(2, 2), name="branch3x3_2")(b3)
        b7 = BasicConv2d(c(192), (1, 1), name="branch7x7x3_1")(x)
        b7 = BasicConv2d(c(192), (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(c(192), (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(c(192), (3, 3), strides=(2, 2), name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3(x, 2)], axis=-1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b: pool='avg', padding excluded; Mixed_7c: pool='max')."""

    pool: str = "avg"
    div: int = 1

    @nn.compact
    def __call__(self, x):
        c = lambda n: n // self.div  # noqa: E731
        b1 = BasicConv2d(c(320), (1, 1), name="branch1x1")(x)
        b3 = BasicConv2d(c(384), (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate([
            BasicConv2d(c(384), (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
            BasicConv2d(c(384), (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
        bd = BasicConv2d(c(448), (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv2d(c(384), (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([
            BasicConv2d(c(384), (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
            BasicConv2d(c(384), (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
        if self.pool == "avg":
            pooled = _avg_pool_3x3_exclude_pad(x)
        elif self.pool == "max":
            pooled = _max_pool_3x3(x, 1, pad=1)
        else:
            raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
        bp = BasicConv2d(c(192), (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(nn.Module):
    """FID Inception-v3 trunk up to the final average pool.

    Input: (N, H, W, 3) float in [-1, 1] (use `preprocess_images`; H = W = 299 for the standard
    FID, at least 75). Output: (N, 2048 // channel_divisor) pool3 features.
    Variables: {'params', 'batch_stats'}; inference only (BatchNorm uses running statistics).
    """

    channel_divisor: int = 1

    @nn.compact
    def __call__(self, x):
        d = self.channel_divisor
        c = lambda n: n // d  # noqa: E731
        x = BasicConv2d(c(32), (3, 3), strides=(2, 2), name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(c(32), (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(c(64), (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3(x, 2)
        x = BasicConv2d(c(80), (1, 1), name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(c(192), (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3(x, 2)
        x = InceptionA(32, div=d, name="Mixed_5b")(x)
        x = InceptionA(64, div=d, name="Mixed_5c")(x)
        x = InceptionA(64, div=d, name="Mixed_5d")(x)
        x = InceptionB(div=d, name="Mixed_6a")(x)
        x = InceptionC(128, div=d, name="Mixed_6b")(x)
        x = InceptionC(160, div=d, name="Mixed_6c")(x)
        x = InceptionC(160, div=d, name="Mixed_6d")(x)
        x = InceptionC(192, div=d, name="Mixed_6e")(x)
        x = InceptionD(div=d, name="Mixed_7a")(x)
        x = InceptionE("avg", div=d, name="Mixed_7b")(x)
        x = InceptionE("max", div=d, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


def preprocess_images(images, image_size: int = FID_IMAGE_SIZE):
    """Images -> network input, as pytorch-fid does it.

    Args:
      images: (N, H, W, C) uint8 in [0, 255] or float in [0, 1]; C = 1 (tiled to RGB) or 3.
      image_size: output side (299 for the standard FID).
    Returns:
      (N, image_size, image_size, 3) float32 in [-1, 1]: bilinear resize with half-pixel centres
      and no antialiasing (torch `interpolate(mode="bilinear", align_corners=False)`), then 2x - 1.
    """
    x = images.astype(jnp.float32)
    if images.dtype == jnp.uint8:
        x = x / 255.0
    if x.shape[-1] == 1:
        x = jnp.tile(x, (1, 1, 1, 3))
    if x.shape[1:3] != (image_size, image_size):
        x = jax.image.resize(x, (x.shape[0], image_size, image_size, x.shape[-1]),
                             method="linear", antialias=False)
    return 2.0 * x - 1.0


# ----------------------------------------------------------------------------------- weights
def missing_weights_message(path) -> str:
    return (
        f"FID Inception weights not found at {path!r}. FID needs the standard PyTorch FID "
        f"Inception-v3 weights file '{FID_WEIGHTS_FILENAME}' from the pytorch-fid GitHub release "
        f"({FID_WEIGHTS_URL}); download it (torch is not needed to read it) and set the config "
        f"key `{FID_WEIGHTS_CONFIG_KEY}` to its path, e.g. "
        f"--config.{FID_WEIGHTS_CONFIG_KEY}=/path/to/{FID_WEIGHTS_FILENAME}")


def resolve_fid_weights(path) -> str:
    """Returns `path` if it is an existing file, else raises FileNotFoundError explaining the fix."""
    if path is None or str(path) == "" or not os.path.isfile(os.fspath(path)):
        raise FileNotFoundError(missing_weights_message(path))
    return os.fspath(path)


_SKIPPED_SUFFIXES = ("num_batches_tracked",)
_SKIPPED_PREFIXES = ("fc.", "AuxLogits.")  # the classifier heads are not part of pool3


def convert_state_dict(state_dict: Mapping[str, Any]) -> Dict[str, Dict]:
    """PyTorch FID-Inception state dict -> Flax variables {'params', 'batch_stats'}.

    `<path>.conv.weight` (O, I, kh, kw) -> params[<path>]['conv']['kernel'] (kh, kw, I, O);
    `<path>.bn.{weight, bias}` -> params[<path>]['bn']['scale' | 'bias'];
    `<path>.bn.running_{mean, var}` -> batch_stats[<path>]['bn']['mean' | 'var'].
    `num_batches_tracked`, `fc.*` and `AuxLogits.*` are dropped. Works on numpy arrays and on
    abstract arrays (uses only `.transpose`), so `jax.eval_shape` can check a shape table.
    """
    params: Dict = {}
    stats: Dict = {}

    def put(tree, path, value):
        for p in path[:-1]:
            tree = tree.setdefault(p, {})
        if path[-1] in tree:
            raise ValueError(f"duplicate parameter {'/'.join(path)}")
        tree[path[-1]] = value

    for key, value in state_dict.items():
        if key.endswith(_SKIPPED_SUFFIXES) or key.startswith(_SKIPPED_PREFIXES):
            continue
        parts = key.split(".")
        module, leaf = parts[:-1], parts[-1]
        if module and module[-1] == "conv" and leaf == "weight":
            if len(value.shape) != 4:
                raise ValueError(f"{key}: expected a 4-d OIHW kernel, got shape {value.shape}")
            put(params, module + ["kernel"], value.transpose(2, 3, 1, 0))
        elif module and module[-1] == "bn" and leaf in ("weight", "bias"):
            put(params, module + ["scale" if leaf == "weight" else "bias"], value)
        elif module and module[-1] == "bn" and leaf in ("running_mean", "running_var"):
            put(stats, module + ["mean" if leaf == "running_mean" else "var"], value)
        else:
            raise ValueError(f"unexpected key {key!r} in the FID Inception state dict")
    return {"params": params, "batch_stats": stats}


def _flat_shapes(tree, prefix=()) -> Dict[Tuple[str, ...], Tuple[int, ...]]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat_shapes(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = tuple(v.shape)
    return out


def abstract_variables(channel_divisor: int = 1, image_size: int = FID_IMAGE_SIZE):
    """The module's variable tree as ShapeDtypeStructs (nothing is materialised)."""
    model = InceptionV3FID(channel_divisor=channel_divisor)
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), x)


def check_variables(variables: Mapping, channel_divisor: int = 1) -> None:
    """Raises ValueError listing missing, unexpected and mis-shaped entries vs the module."""
    expected = _flat_shapes(abstract_variables(channel_divisor, image_size=96))
    got = _flat_shapes(variables)
    missing = sorted("/".join(k) for k in expected.keys() - got.keys())
    unexpected = sorted("/".join(k) for k in got.keys() - expected.keys())
    wrong = sorted(f"{'/'.join(k)}: {got[k]} != {expected[k]}"
                   for k in expected.keys() & got.keys() if got[k] != expected[k])
    if missing or unexpected or wrong:
        raise ValueError(
            "FID Inception weights do not match InceptionV3FID"
            f"(channel_divisor={channel_divisor}): missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)}), wrong shapes {wrong[:8]}")


def load_fid_inception_params(path, channel_divisor: int = 1) -> Dict[str, Dict]:
    """Reads the PyTorch FID Inception weights file (no torch needed) into Flax variables.

    Args:
      path: the `.pth` file (zip or legacy torch.save layout).
      channel_divisor: 1 for the real file; the tests use reduced files.
    Returns:
      {'params': ..., 'batch_stats': ...} of float32 numpy arrays for `InceptionV3FID`.
    Raises:
      FileNotFoundError (with download instructions) when the file is absent; ValueError when
      its keys or shapes do not match the module.
    """
    path = resolve_fid_weights(path)
    state_dict = load_torch_state_dict(path)
    variables = convert_state_dict(state_dict)
    check_variables(variables, channel_divisor)
    return jax.tree.map(lambda a: np.asarray(a, dtype=np.float32), variables)


@functools.lru_cache(maxsize=None)
def _batch_feature_fn(channel_divisor: int, image_size: int):
    """One jitted `(variables, images) -> features` per network/resolution, shared by every
    feature function (so repeated FID calls reuse the compiled executable)."""
    model = InceptionV3FID(channel_divisor=channel_divisor)

    @jax.jit
    def batch_features(variables, images):
        return model.apply(variables, preprocess_images(images, image_size))

    return batch_features


def make_fid_feature_fn(variables, *, batch_size: int = 50, image_size: int = FID_IMAGE_SIZE,
                        channel_divisor: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """Builds `features(images) -> (N, 2048 // channel_divisor)` float64 pool3 features.

    `images` is (N, H, W, C) uint8 or float in [0, 1] of any size (resized to `image_size`).
    Batches of `batch_size` go through one jitted function (the last batch is padded, so there is
    a single compilation per input shape and dtype); the weights are put on the default device
    once. Runs on one device.
    """
    batch_features = _batch_feature_fn(channel_divisor, image_size)
    variables = jax.device_put(variables)

    def features(images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
        if images.shape[0] == 0:
            return np.zeros((0, FID_FEATURE_DIM // channel_divisor))
        out = map_batches(lambda batch: batch_features(variables, batch), images, batch_size)
        return out.astype(np.float64)

    return features


def fid_from_weights(weights_path, real_images, fake_images, batch_size: int = 50, *,
                     channel_divisor: int = 1, image_size: int = FID_IMAGE_SIZE) -> float:
    """FID between two image sets (N, H, W, C) uint8 / [0, 1] float, from the weights file.

    Raises FileNotFoundError naming the expected file, its source and `eval.fid_weights`.
    """
    variables = load_fid_inception_params(weights_path, channel_divisor=channel_divisor)
    fn = make_fid_feature_fn(variables, batch_size=batch_size, image_size=image_size,
                             channel_divisor=channel_divisor)
    return frechet.frechet_distance_from_features(fn(real_images), fn(fake_images))
