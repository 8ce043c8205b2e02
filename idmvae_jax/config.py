"""Typed configuration at the library boundary.

The ml_collections ConfigDict stays in configs/ and the CLIs; `IDMVAEConfig.from_config(config)`
turns its `model`, `loss` and `diffusion` sections into frozen (hashable) dataclasses, which
`models/`, `training.loss` and `generation.py` take (the terms of `objective/` take plain values).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from idmvae_jax.models.specs import ModelConfig
from idmvae_jax.objective.genaug import LOSS_TYPES as GENAUG_LOSSES
from idmvae_jax.objective.genaug import SAMPLING as GENAUG_SAMPLING


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights and options of total = L_elbo + l1 L_crossMI + l2 L_genaug + l_diff L_diff (SPEC 2).

    beta: KL weight of the ELBO. num_samples: K importance samples.
    cross_mi_weight (l1), genaug_weight (l2), diffusion_weight (l_diff): a weight of 0 switches
    the term off (not computed; it reads 0 in the metrics), so all three at 0 is exactly MMVAE+.
    temperature: InfoNCE temperature tau.
    genaug_sampling: where the swapped code of the cycle term comes from: 'posterior' (rolled
      posterior samples), 'prior' (the fixed prior p), 'diffusion_prior' (DDIM from the score nets).
    genaug_loss: 'contrastive' (InfoNCE) or 'l2' (sum of squared differences, batch mean).
    diffusion_stop_gradient: feed stop_gradient(posterior means) to the diffusion loss (ablation).
    """

    beta: float = 2.5
    num_samples: int = 1
    cross_mi_weight: float = 80.0
    genaug_weight: float = 20.0
    diffusion_weight: float = 0.0
    temperature: float = 1.0
    genaug_sampling: str = "posterior"
    genaug_loss: str = "contrastive"
    diffusion_stop_gradient: bool = False

    def __post_init__(self):
        if self.genaug_sampling not in GENAUG_SAMPLING:
            raise ValueError(f"loss.genaug_sampling {self.genaug_sampling!r} is not one of {GENAUG_SAMPLING}")
        if self.genaug_loss not in GENAUG_LOSSES:
            raise ValueError(f"loss.genaug_loss {self.genaug_loss!r} is not one of {GENAUG_LOSSES}")
        if self.num_samples < 1:
            raise ValueError(f"loss.num_samples must be >= 1, got {self.num_samples}")
        if self.temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {self.temperature}")


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """The latent DDPM (SPEC 2.4): sigmoid schedule (start, end, tau), T steps, DDIM steps."""

    num_timesteps: int = 1000
    schedule_start: float = -3.0
    schedule_end: float = 3.0
    schedule_tau: float = 1.0
    ddim_steps: int = 100


@dataclasses.dataclass(frozen=True)
class IDMVAEConfig:
    """Everything the pure functions need: model, loss and diffusion settings."""

    model: ModelConfig
    loss: LossConfig = LossConfig()
    diffusion: DiffusionConfig = DiffusionConfig()

    def __post_init__(self):
        if self.loss.diffusion_weight > 0 and not self.model.diffusion_prior:
            raise ValueError(
                "loss.diffusion_weight > 0 needs score networks: set model.diffusion_prior=True"
            )
        if self.loss.genaug_sampling == "diffusion_prior" and not self.model.diffusion_prior:
            raise ValueError("loss.genaug_sampling='diffusion_prior' needs model.diffusion_prior=True")

    @classmethod
    def from_config(cls, config: Any) -> "IDMVAEConfig":
        """From a ConfigDict/mapping with sections `model`, `loss` and optionally `diffusion`."""
        return cls(
            model=ModelConfig.from_dict(_as_dict(config["model"])),
            loss=_build(LossConfig, _as_dict(config["loss"]), "loss"),
            diffusion=_build(DiffusionConfig, _as_dict(config.get("diffusion", {})), "diffusion"),
        )


def _as_dict(section) -> dict:
    return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def _build(cls, d: Mapping[str, Any], section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {section} config keys {unknown}; valid keys: {sorted(names)}")
    return cls(**d)
