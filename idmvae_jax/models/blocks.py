"""Building blocks shared by the encoders and decoders (SPEC 3).

ResBlock(fin, fout): out = shortcut(x) + 0.1 * conv3x3(lrelu(conv3x3(lrelu(x)))), hidden width
min(fin, fout), leaky-ReLU slope 0.2, a bias-free 1x1 conv shortcut when fin != fout.
All convolutions are NHWC.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

LEAKY_SLOPE = 0.2


def lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU with slope 0.2."""
    return nn.leaky_relu(x, LEAKY_SLOPE)


def tie(x: jax.Array, other: jax.Array) -> jax.Array:
    """x + 0 * other[0]: the values of x (for finite `other`), computed only once `other` exists.

    With `other` a cotangent, a recomputation from tie(x, ct) cannot run before the backward pass
    gets there, nor be merged with the forward pass."""
    return x + jnp.zeros((), x.dtype) * other.reshape(-1)[0].astype(x.dtype)


def rematerialised(module: nn.Module, x: jax.Array, pure_apply) -> jax.Array:
    """module(x), keeping only (params, x) for the backward pass, which recomputes the forward.

    `pure_apply(params, x)` must compute the same function as `module`. Unlike `jax.checkpoint`,
    whose optimisation barriers XLA:CPU drops (it then merges the recomputation with the forward
    pass, docs/benchmarks.md), the recomputation's input depends on the incoming cotangent, so it
    can only run when the backward pass gets here: along a chain of blocks, one block's
    activations are alive at a time. Gradients are exactly those of `module`.
    """

    def fn(mdl, x):
        return mdl(x)

    def fwd(mdl, x):
        return mdl(x), (mdl.variables["params"], x)

    def bwd(residuals, cotangent):
        params, x_saved = residuals
        _, vjp = jax.vjp(pure_apply, params, tie(x_saved, cotangent))
        params_t, x_t = vjp(cotangent)
        return {"params": params_t}, x_t

    return nn.custom_vjp(fn, forward_fn=fwd, backward_fn=bwd)(module, x)


def rematerialised_unit(parent: nn.Module, make, x: jax.Array) -> jax.Array:
    """`rematerialised(make(), x)` with the unit's parameters in `parent`'s own scope.

    make(**kwargs) -> the plain (remat-free) module of the unit; parameter names are those of a
    model built without remat.
    """
    plain = make(name="plain")
    nn.share_scope(parent, plain)  # the same parameter names as without remat
    detached = make(parent=None)  # unbound: applied to the saved parameters only
    return rematerialised(plain, x, lambda p, h: detached.apply({"params": p}, h))


class ResBlock(nn.Module):
    """(B, H, W, fin) -> (B, H, W, fout), or (B, H/2, W/2, fin) -> (B, H, W, fout) with `upsample`.

    upsample: nearest-neighbour 2x upsampling of the input first (part of the block, so a
    rematerialised block keeps its input at the lower resolution).
    remat: keep only the block's input for the backward pass and recompute the block there
    (`rematerialised`); the parameters and the gradients are the same as without it.
    """

    features: int
    dtype: Any = jnp.float32
    remat: bool = False
    upsample: bool = False

    @nn.compact
    def __call__(self, x):
        if self.remat:
            return rematerialised_unit(
                self, lambda **kw: ResBlock(self.features, dtype=self.dtype, upsample=self.upsample, **kw), x)
        if self.upsample:
            x = upsample_nearest_2x(x)
        fin = x.shape[-1]
        hidden = min(fin, self.features)
        shortcut = x
        if fin != self.features:
            shortcut = nn.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype, name="shortcut")(x)
        h = nn.Conv(hidden, (3, 3), padding=1, dtype=self.dtype, name="conv_0")(lrelu(x))
        h = nn.Conv(self.features, (3, 3), padding=1, dtype=self.dtype, name="conv_1")(lrelu(h))
        return shortcut + 0.1 * h


def avg_pool_3s2(x: jax.Array) -> jax.Array:
    """AvgPool(kernel 3, stride 2, padding 1, zero padding counted): (B, H, W, C) -> (B, H/2, W/2, C)."""
    return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=True)


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
    """Nearest-neighbour upsampling: (B, H, W, C) -> (B, 2H, 2W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def norm_groups(channels: int) -> int:
    """Groups of `ExampleNorm` over `channels` channels: gcd(32, channels) (32 groups as in Wu & He
    2018 where the width allows; one channel per group for narrow maps)."""
    return math.gcd(32, channels)


def example_norm(channels: int, dtype: Any = jnp.float32, name: str | None = None) -> nn.GroupNorm:
    """Per-example group normalisation of the caption networks: (B, H, W, C) -> (B, H, W, C).

    y = (x - mean_g) / sqrt(var_g + 1e-5) * gamma + beta, with mean_g and var_g over one example's
    positions and the channels of its group g (G = `norm_groups(C)` groups), gamma and beta
    (`scale`, `bias`) per channel. An example's statistics depend on that example only, so the
    numbers are the same however the batch is cut (devices, pmap, remat, evaluation batches), and
    the networks carry no running state. It takes the place of the batch normalisation of SPEC 3's
    caption networks.
    """
    return nn.GroupNorm(num_groups=norm_groups(channels), epsilon=1e-5, dtype=dtype,
                        use_fast_variance=False, name=name)
