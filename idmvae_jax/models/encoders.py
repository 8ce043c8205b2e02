"""Per-view encoders q(w | x) q(z | x): two heads, each giving a mean and a raw scale.

Every encoder maps one view's batch x (B, *shape) to (mu_w, raw_w, mu_z, raw_z) with shapes
(B, W), (B, W), (B, Z), (B, Z). `make_encoder` returns pure functions, including one per branch,
so the cycle term re-encodes only the branch it needs.

- image/latent: two independent ResNet branches (SPEC 3): conv3x3 -> ResBlock(c0, c0) ->
  [AvgPool(3, s2, p1) -> ResBlock(c_{i-1} -> c_i)] for i >= 1 -> flatten -> Dense(mu), Dense(raw).
- vector: a shared MLP trunk (hidden widths, leaky ReLU) with four linear heads.
- caption: per branch, a linear token embedding V -> E giving an (L, E, 1) map, then
  [conv 4x4 stride 2 -> group norm per example (blocks.example_norm) -> ReLU] per `hidden` width,
  flatten, dense heads. Input is one-hot tokens or token probabilities (B, L, V), so decoded softmax
  outputs re-encode directly.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from idmvae_jax.models.blocks import ResBlock, avg_pool_3s2, example_norm, lrelu, rematerialised_unit


class ConvInputStage(nn.Module):
    """The branch's first stage: conv3x3 (stem) -> ResBlock(block_0), at full resolution.

    One unit, so with remat only the image is kept for the backward pass, not the stem's output.
    """

    features: int
    dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, x):
        if self.remat:
            return rematerialised_unit(self, lambda **kw: ConvInputStage(self.features, dtype=self.dtype, **kw), x)
        h = nn.Conv(self.features, (3, 3), padding=1, dtype=self.dtype, name="stem")(x.astype(self.dtype))
        return ResBlock(self.features, dtype=self.dtype, name="block_0")(h)


class ConvBranch(nn.Module):
    """ResNet branch: (B, H, W, C) -> (mu, raw), each (B, latent_dim)."""

    channels: tuple
    latent_dim: int
    dtype: Any = jnp.float32
    remat: bool = False  # rematerialise the input stage and every ResBlock (blocks.rematerialised)

    @nn.compact
    def __call__(self, x):
        stage = ConvInputStage(self.channels[0], dtype=self.dtype, remat=self.remat)
        nn.share_scope(self, stage)  # parameter names stem and block_0, as without remat
        h = stage(x)
        for i, width in enumerate(self.channels[1:], start=1):
            h = ResBlock(width, dtype=self.dtype, remat=self.remat, name=f"block_{i}")(avg_pool_3s2(h))
        h = h.reshape(h.shape[0], -1)
        mu = nn.Dense(self.latent_dim, dtype=self.dtype, name="mu")(h)
        raw = nn.Dense(self.latent_dim, dtype=self.dtype, name="raw_scale")(h)
        return mu.astype(jnp.float32), raw.astype(jnp.float32)


class CaptionBranch(nn.Module):
    """Conv text branch: (B, L, V) token probabilities -> (mu, raw), each (B, latent_dim)."""

    hidden: tuple
    embed_dim: int
    latent_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.embed_dim, dtype=self.dtype, name="embed")(x.astype(self.dtype))  # (B, L, E)
        h = h[..., None]  # (B, L, E, 1)
        for i, width in enumerate(self.hidden):
            h = nn.Conv(width, (4, 4), strides=(2, 2), padding=1, dtype=self.dtype, name=f"conv_{i}")(h)
            h = nn.relu(example_norm(width, self.dtype, f"norm_{i}")(h))
        h = h.reshape(h.shape[0], -1)
        mu = nn.Dense(self.latent_dim, dtype=self.dtype, name="mu")(h)
        raw = nn.Dense(self.latent_dim, dtype=self.dtype, name="raw_scale")(h)
        return mu.astype(jnp.float32), raw.astype(jnp.float32)


class TwoBranchEncoder(nn.Module):
    """Two independent branches, `w` and `z`; `encode_w`/`encode_z` run one of them."""

    make_branch: Callable[[int, str], nn.Module]  # (latent_dim, "w" | "z") -> branch module
    w_dim: int
    z_dim: int

    def setup(self):
        self.branch_w = self.make_branch(self.w_dim, "w")
        self.branch_z = self.make_branch(self.z_dim, "z")

    def __call__(self, x):
        return (*self.branch_w(x), *self.branch_z(x))

    def encode_w(self, x):
        return self.branch_w(x)

    def encode_z(self, x):
        return self.branch_z(x)


class MLPEncoder(nn.Module):
    """Shared MLP trunk with heads: (B, D) -> (mu_w, raw_w, mu_z, raw_z)."""

    hidden: tuple
    w_dim: int
    z_dim: int
    dtype: Any = jnp.float32

    def setup(self):
        self.trunk = [nn.Dense(h, dtype=self.dtype, name=f"hidden_{i}") for i, h in enumerate(self.hidden)]
        self.heads = {
            name: nn.Dense(dim, dtype=self.dtype, name=name)
            for name, dim in (("mu_w", self.w_dim), ("raw_w", self.w_dim), ("mu_z", self.z_dim), ("raw_z", self.z_dim))
        }

    def _features(self, x):
        h = x.astype(self.dtype)
        for layer in self.trunk:
            h = lrelu(layer(h))
        return h

    def _head(self, name, h):
        return self.heads[name](h).astype(jnp.float32)

    def __call__(self, x):
        h = self._features(x)
        return tuple(self._head(n, h) for n in ("mu_w", "raw_w", "mu_z", "raw_z"))

    def encode_w(self, x):
        h = self._features(x)
        return self._head("mu_w", h), self._head("raw_w", h)

    def encode_z(self, x):
        h = self._features(x)
        return self._head("mu_z", h), self._head("raw_z", h)


class Encoder(NamedTuple):
    """Pure encoder functions of one view (x: (B, *input_shape) float).

    init(key) -> params
    apply(params, x) -> (mu_w (B, W), raw_w (B, W), mu_z (B, Z), raw_z (B, Z))
    apply_w(params, x) -> (mu_w, raw_w);  apply_z(params, x) -> (mu_z, raw_z)
    """

    init: Callable
    apply: Callable
    apply_w: Callable
    apply_z: Callable


def encoder_input_shape(spec) -> tuple:
    """Per-example shape of the float input an encoder takes (captions: (L, V) probabilities)."""
    if spec.kind == "caption":
        return (spec.shape[0], spec.vocab_size)
    return spec.shape


def build_encoder_module(spec, w_dim: int, z_dim: int, dtype=jnp.float32, remat: bool = False) -> nn.Module:
    """The Flax module of one view's encoder, chosen by `spec.kind` (remat: ResNet branches only)."""
    if spec.kind in ("image", "latent"):
        return TwoBranchEncoder(
            make_branch=lambda dim, name: ConvBranch(spec.channels, dim, dtype=dtype, remat=remat),
            w_dim=w_dim,
            z_dim=z_dim,
        )
    if spec.kind == "caption":
        return TwoBranchEncoder(
            make_branch=lambda dim, name: CaptionBranch(
                spec.hidden, spec.embed_dim, dim, dtype=dtype
            ),
            w_dim=w_dim,
            z_dim=z_dim,
        )
    if spec.kind == "vector":
        return MLPEncoder(spec.hidden, w_dim, z_dim, dtype=dtype)
    raise ValueError(f"no encoder for view kind {spec.kind!r}")


def make_encoder(spec, w_dim: int, z_dim: int, dtype=jnp.float32, remat: bool = False) -> Encoder:
    """Factory: the pure encoder functions of one view described by `spec` (a ViewSpec)."""
    module = build_encoder_module(spec, w_dim, z_dim, dtype, remat)
    example = np.zeros((1, *encoder_input_shape(spec)), np.float32)  # numpy: safe to build inside a trace

    def init(key):
        return module.init(key, example)["params"]

    def apply(params, x):
        return module.apply({"params": params}, x)

    def apply_w(params, x):
        return module.apply({"params": params}, x, method=module.encode_w)

    def apply_z(params, x):
        return module.apply({"params": params}, x, method=module.encode_z)

    return Encoder(init, apply, apply_w, apply_z)
