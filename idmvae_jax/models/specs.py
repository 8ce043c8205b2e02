"""Typed, frozen descriptions of a model: what crosses from the ml_collections config into models/.

`ViewSpec` describes one modality (its data kind, shape, likelihood and network sizes);
`ModelConfig` the whole multimodal VAE. Both are hashable, so they can be static arguments of jit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

VIEW_KINDS = ("image", "latent", "vector", "caption")
LIKELIHOODS = ("laplace", "normal", "categorical", "bernoulli")
POSTERIORS = ("normal", "laplace")


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """One modality.

    kind: 'image' (NHWC, uint8 or [0, 1] floats; ResNet; Laplace on sigmoid means),
      'latent' (NHWC float latents, e.g. SD-VAE 32x32x4; ResNet; Laplace on raw means),
      'vector' (float (D,); MLP; Laplace with a learned scale), 'caption' (int tokens (L,); conv text
      networks; Categorical over `vocab_size`).
    shape: per-example data shape, e.g. (64, 64, 3), (100,), (32,).
    likelihood: 'laplace' | 'normal' | 'categorical' | 'bernoulli'.
    likelihood_scale: fixed scale of a Laplace/Normal likelihood; None = learned (softplus).
    llik_scaling: the likelihood weight lambda_d of SPEC 1.
    channels: ResNet widths per resolution level (image/latent); len(channels) - 1 poolings.
    hidden: MLP widths (vector) or conv widths (caption: per-branch conv channels).
    embed_dim: caption token embedding width.
    """

    kind: str
    shape: tuple
    likelihood: str = "laplace"
    likelihood_scale: float | None = 0.75
    llik_scaling: float = 1.0
    channels: tuple = (64, 128, 256, 512)
    hidden: tuple = (128, 64)
    vocab_size: int | None = None
    embed_dim: int = 128

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "hidden", tuple(int(c) for c in self.hidden))
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"view kind {self.kind!r} is not one of {VIEW_KINDS}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r} is not one of {LIKELIHOODS}")
        if self.kind in ("image", "latent"):
            if len(self.shape) != 3:
                raise ValueError(f"{self.kind} views need a (H, W, C) shape, got {self.shape}")
            levels = len(self.channels) - 1
            if self.shape[0] % (2**levels) or self.shape[1] % (2**levels):
                raise ValueError(
                    f"image size {self.shape[:2]} must be divisible by 2**{levels} "
                    f"(one pooling per extra entry of channels={self.channels})"
                )
        if self.kind == "vector" and len(self.shape) != 1:
            raise ValueError(f"vector views need a (D,) shape, got {self.shape}")
        if self.kind == "caption":
            if len(self.shape) != 1 or not self.vocab_size:
                raise ValueError("caption views need shape (L,) and a vocab_size")
            if self.likelihood != "categorical":
                raise ValueError("caption views use the 'categorical' likelihood")
            if self.shape[0] % 8 or self.embed_dim % 8:
                raise ValueError("caption length and embed_dim must be divisible by 8")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The multimodal VAE: views, latent sizes, posterior family, critic, diffusion priors.

    Latent layout of one view: u = [w, z] (private first), w in R^w_dim, z in R^z_dim.
    posterior: 'normal' (scale = softplus(raw) + eps) or 'laplace' (softmax(raw) * dim + eps).
    prior_raw_scale: the fixed raw scale of p(z), p(w_m), mapped by the same convention.
    critic: 'cosine' (parameter-free), 'centered' (cosine of batch-centred codes, parameter-free) or
      'projection' (2-layer MLP head, then cosine), or a name given to `models.critic.register_critic`.
    diffusion_prior: build the latent score networks (SPEC 2.4).
    vmap_views: run views of identical spec through one vmapped apply (else a Python loop).
    remat: keep only the inputs of the ResBlocks and of the encoders' input / decoders' output stages
      for the backward pass and recompute them there (`models.blocks.rematerialised`); without a vmap
      the views and the ELBO's sample indices run as a chain; same parameters and gradients.
    compute_dtype: 'float32' or 'bfloat16' (parameters stay float32).
    """

    views: tuple
    z_dim: int = 32
    w_dim: int = 128
    posterior: str = "normal"
    posterior_eps: float = 1e-8
    prior_raw_scale: float = 0.0
    critic: str = "cosine"
    critic_width: int = 256
    critic_dim: int = 128
    diffusion_prior: bool = False
    score_width: int = 512
    score_time_dim: int = 512
    vmap_views: bool = True
    remat: bool = False
    compute_dtype: str = "float32"

    def __post_init__(self):
        views = tuple(v if isinstance(v, ViewSpec) else ViewSpec(**dict(v)) for v in self.views)
        object.__setattr__(self, "views", views)
        if len(views) < 2:
            raise ValueError(f"a multimodal VAE needs at least 2 views, got {len(views)}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior {self.posterior!r} is not one of {POSTERIORS}")
        from idmvae_jax.models.critic import critic_names  # the registry (models.critic.register_critic)

        if self.critic not in critic_names():
            raise ValueError(f"critic {self.critic!r} is not one of {critic_names()}")
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {self.compute_dtype!r}")

    @property
    def num_views(self) -> int:
        return len(self.views)

    @property
    def latent_dim(self) -> int:
        return self.w_dim + self.z_dim

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        """Builds from a mapping (e.g. `config.model.to_dict()`); unknown keys are an error."""
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; valid keys: {sorted(names)}")
        d["views"] = tuple(ViewSpec(**_view_dict(v)) for v in d["views"])
        return cls(**d)


def _view_dict(v) -> dict:
    v = dict(v)
    names = {f.name for f in dataclasses.fields(ViewSpec)}
    unknown = sorted(set(v) - names)
    if unknown:
        raise ValueError(f"unknown view config keys {unknown}; valid keys: {sorted(names)}")
    return v


def view_groups(views) -> tuple:
    """Groups views with identical specs: a tuple of (spec, view indices), in first-seen order.

    Views of one group keep their parameters stacked along a leading axis and run through one
    vmapped apply (ARCHITECTURE.md, performance shape).
    """
    groups: dict = {}
    for i, v in enumerate(views):
        groups.setdefault(v, []).append(i)
    return tuple((spec, tuple(idx)) for spec, idx in groups.items())
