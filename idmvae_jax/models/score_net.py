"""The x0-predicting score network of the diffusion latent priors (SPEC §2.4).

One MLP with a sinusoidal time embedding, shared by every view for z and one per private code w_m:

    h    = Dense(width)(GELU(Dense(width)(x)))                      # x: (B, d)
    temb = Dense(width)(GELU(Dense(width)(sinusoidal(t))))         # t: (B,) integer steps
    out  = Dense(d)(GELU(h + temb))                                 # x0_hat: (B, d)

GELU is the exact (erf) form, not the tanh approximation. The network predicts x0, not the noise.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from idmvae_jax.models.network import Network


def sinusoidal_embedding(t: jax.Array, dim: int = 512) -> jax.Array:
    """Sinusoidal embedding of integer diffusion steps.

    With half = dim // 2 and freq_i = exp(-i · ln(10^4) / (half − 1)) for i = 0..half−1, returns
    [sin(t · freq), cos(t · freq)] concatenated on the last axis, t the integer step as float.

    Args:
      t: (B,) integer (or float) time steps.
      dim: embedding size (even, >= 4).

    Returns:
      (B, dim) float32 embedding.
    """
    if dim % 2 or dim < 4:
        raise ValueError(f"sinusoidal_embedding needs an even dim >= 4, got {dim}")
    half = dim // 2
    # Frequencies in float64 on the host, then a float32 constant: no rounding drift in exp.
    freqs = np.exp(-np.arange(half, dtype=np.float64) * (math.log(1e4) / (half - 1)))
    args = jnp.asarray(t, jnp.float32)[:, None] * jnp.asarray(freqs, jnp.float32)[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def _gelu(x: jax.Array) -> jax.Array:
    return nn.gelu(x, approximate=False)


class ScoreNet(nn.Module):
    """x0 predictor f(x_t, t) of SPEC §2.4.

    Attributes:
      dim: data dimension d (latent size).
      width: hidden width (512 in the paper).
      time_embed_dim: size of the sinusoidal embedding of t (512 in the paper).
    """

    dim: int
    width: int = 512
    time_embed_dim: int = 512

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
        """x: (B, dim) float, t: (B,) int -> x0_hat: (B, dim)."""
        h = nn.Dense(self.width, name="x_in")(x)
        h = nn.Dense(self.width, name="x_out")(_gelu(h))
        temb = sinusoidal_embedding(t, self.time_embed_dim).astype(x.dtype)
        temb = nn.Dense(self.width, name="t_in")(temb)
        temb = nn.Dense(self.width, name="t_out")(_gelu(temb))
        return nn.Dense(self.dim, name="out")(_gelu(h + temb))


def make_score_net(dim: int, width: int = 512, time_embed_dim: int = 512) -> Network:
    """Factory: the score network as a pure `Network(init, apply)` pair.

    `init(key) -> params` builds the parameter tree (Flax's "params" collection) from dummy inputs of
    shapes (1, dim) and (1,); `apply(params, x, t) -> x0_hat` with x (B, dim) float and t (B,) int
    returns (B, dim).
    """
    module = ScoreNet(dim=dim, width=width, time_embed_dim=time_embed_dim)

    def init(key: jax.Array):
        return module.init(key, jnp.zeros((1, dim), jnp.float32), jnp.zeros((1,), jnp.int32))["params"]

    def apply(params, x: jax.Array, t: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x, t)

    return Network(init=init, apply=apply)
