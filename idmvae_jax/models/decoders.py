"""Per-view decoders p(x | z, w): u = [w, z] (B, W + Z) -> the likelihood's parameters.

`apply(params, u)` returns a dict: {'loc': (B, *shape)} for Laplace/Normal likelihoods (sigmoid
means for 'image' views, raw means for 'latent' and 'vector' views; plus 'scale' when the scale is
learned), or {'logits': (B, *shape[, V])} for Categorical/Bernoulli likelihoods.

- image/latent (SPEC 3): Dense(u -> c_last * s * s) -> [ResBlock(c_i -> c_{i-1}) -> up x2] for i
  from the last level down -> ResBlock(c0, c0) -> conv3x3(lrelu(.)) -> C channels.
- vector: MLP with the encoder's hidden widths reversed, leaky ReLU, linear output.
- caption: Dense(u -> (L/2^n, E/2^n, c_last)) -> [transposed conv 4x4 stride 2 -> group norm per
  example -> ReLU] mirroring the encoder -> (L, E) -> a linear E -> V per token.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from idmvae_jax.models.blocks import ResBlock, example_norm, lrelu, rematerialised_unit
from idmvae_jax.models.network import Network


class ConvOutputStage(nn.Module):
    """The decoder's last stage: [upsample ->] ResBlock(block_0) -> lrelu -> conv3x3 (out).

    One unit, so with remat only its (lower-resolution) input is kept for the backward pass: the
    full-resolution activations, the block's output included, live only while it is recomputed.
    """

    features: int
    out_channels: int
    upsample: bool
    dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, h):
        if self.remat:
            return rematerialised_unit(self, lambda **kw: ConvOutputStage(
                self.features, self.out_channels, self.upsample, dtype=self.dtype, **kw), h)
        h = ResBlock(self.features, dtype=self.dtype, upsample=self.upsample, name="block_0")(h)
        return nn.Conv(self.out_channels, (3, 3), padding=1, dtype=self.dtype, name="out")(lrelu(h))


class ConvDecoder(nn.Module):
    """(B, W+Z) -> raw (B, H, W, C): Dense -> ResBlock(block_L) -> [upsample -> ResBlock(block_i)]
    for i = L-1 .. 0 -> lrelu -> conv3x3, L = len(channels) - 1.

    remat: rematerialise block_L, each upsample + block_i, and the output stage in the backward
    pass (`blocks.rematerialised`); the same parameters and gradients.
    """

    shape: tuple
    channels: tuple
    dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, u):
        height, width, out_channels = self.shape
        levels = len(self.channels) - 1
        sh, sw = height // 2**levels, width // 2**levels
        h = nn.Dense(self.channels[-1] * sh * sw, dtype=self.dtype, name="project")(u.astype(self.dtype))
        h = h.reshape(u.shape[0], sh, sw, self.channels[-1])
        for i in range(levels, 0, -1):
            h = ResBlock(self.channels[i - 1], dtype=self.dtype, remat=self.remat, upsample=i < levels,
                         name=f"block_{i}")(h)
        stage = ConvOutputStage(self.channels[0], out_channels, upsample=levels > 0, dtype=self.dtype,
                                remat=self.remat)
        nn.share_scope(self, stage)  # parameter names block_0 and out, as in the plain decoder
        return stage(h)


class MLPDecoder(nn.Module):
    """(B, W+Z) -> raw (B, D)."""

    dim: int
    hidden: tuple
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u):
        h = u.astype(self.dtype)
        for i, width in enumerate(reversed(self.hidden)):
            h = lrelu(nn.Dense(width, dtype=self.dtype, name=f"hidden_{i}")(h))
        return nn.Dense(self.dim, dtype=self.dtype, name="out")(h)


class CaptionDecoder(nn.Module):
    """(B, W+Z) -> logits (B, L, V)."""

    length: int
    vocab_size: int
    hidden: tuple
    embed_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u):
        n = len(self.hidden)
        sl, se = self.length // 2**n, self.embed_dim // 2**n
        h = nn.Dense(sl * se * self.hidden[-1], dtype=self.dtype, name="project")(u.astype(self.dtype))
        h = h.reshape(u.shape[0], sl, se, self.hidden[-1])
        h = nn.relu(example_norm(self.hidden[-1], self.dtype, "norm_in")(h))
        outs = list(reversed(self.hidden[:-1])) + [1]
        for i, width in enumerate(outs):
            h = nn.ConvTranspose(width, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype, name=f"deconv_{i}")(h)
            if i < len(outs) - 1:
                h = nn.relu(example_norm(width, self.dtype, f"norm_{i}")(h))
        h = h[..., 0]  # (B, L, E)
        return nn.Dense(self.vocab_size, dtype=self.dtype, name="token_logits")(h)


class ViewDecoder(nn.Module):
    """Wraps a body network and maps its raw output to the likelihood's parameter dict."""

    spec: Any
    dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, u):
        spec = self.spec
        if spec.kind in ("image", "latent"):
            raw = ConvDecoder(spec.shape, spec.channels, dtype=self.dtype, remat=self.remat, name="body")(u)
        elif spec.kind == "vector":
            raw = MLPDecoder(spec.shape[0], spec.hidden, dtype=self.dtype, name="body")(u)
        elif spec.kind == "caption":
            raw = CaptionDecoder(
                spec.shape[0], spec.vocab_size, spec.hidden, spec.embed_dim, dtype=self.dtype, name="body"
            )(u)
        else:
            raise ValueError(f"no decoder for view kind {spec.kind!r}")
        raw = raw.astype(jnp.float32)
        if spec.likelihood in ("categorical", "bernoulli"):
            return {"logits": raw}
        out = {"loc": jax.nn.sigmoid(raw) if spec.kind == "image" else raw}
        if spec.likelihood_scale is None:
            raw_scale = self.param("raw_likelihood_scale", nn.initializers.zeros, spec.shape)
            out["scale"] = jnp.broadcast_to(jax.nn.softplus(raw_scale) + 1e-6, raw.shape)
        return out


def make_decoder(spec, latent_dim: int, dtype=jnp.float32, remat: bool = False) -> Network:
    """Factory: pure decoder functions of one view.

    init(key) -> params;  apply(params, u (B, latent_dim)) -> likelihood parameter dict (see module doc).
    remat: rematerialise the ResBlocks and the output stage of image/latent decoders in the backward
    pass (same params).
    """
    module = ViewDecoder(spec, dtype=dtype, remat=remat)
    example = np.zeros((1, latent_dim), np.float32)  # numpy: safe to build inside a trace

    def init(key):
        return module.init(key, example)["params"]

    def apply(params, u):
        return module.apply({"params": params}, u)

    return Network(init, apply)
