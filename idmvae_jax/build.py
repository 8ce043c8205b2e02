"""From the ml_collections config and the data's description to the typed `IDMVAEConfig`.

The views of a model are not written in the config: they come from the dataset (`DatasetInfo`:
each view's kind and shape), and the per-kind network settings in `config.model.<kind>` say how
to build the networks of a view of that kind:

  image   (H, W, C) uint8   ResNet; model.image.channels (() = chosen from H, see auto_channels),
                            likelihood (Laplace), likelihood_scale (0.75), llik_scaling.
  latent  (H, W, C) float   ResNet; model.latent.* as for images (scale 0.01).
  vector  (D,) float        MLP; model.vector.hidden, likelihood_scale (None = learned).
  caption (L,) int tokens   conv text networks; model.caption.hidden, embed_dim; Categorical.

`config.model.vmap_views` may be 'auto' (see resolve_vmap_views).
`config.model.llik_scaling`, when not empty, gives one likelihood weight per view and overrides
the per-kind `llik_scaling`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from idmvae_jax.config import IDMVAEConfig
from idmvae_jax.models.specs import ModelConfig, ViewSpec

KIND_SECTIONS = ("image", "latent", "vector", "caption")


def auto_channels(height: int, width: int, base: int = 32, max_levels: int = 3, min_side: int = 4) -> tuple:
    """ResNet widths for an image of height x width: one level per halving while the side stays
    an integer >= min_side (at most max_levels poolings); widths double from `base`."""
    levels = 0
    h, w = height, width
    while levels < max_levels and h % 2 == 0 and w % 2 == 0 and h // 2 >= min_side and w // 2 >= min_side:
        h, w, levels = h // 2, w // 2, levels + 1
    return tuple(base * 2**i for i in range(levels + 1))


def _section(config, name: str) -> dict:
    section = config[name]
    return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def view_spec(view_info, kind_settings: dict, llik_scaling: float | None = None) -> ViewSpec:
    """The ViewSpec of one data view (`idmvae_jax.data.ViewInfo`) from its kind's settings."""
    kind, shape = view_info.kind, tuple(view_info.shape)
    s = dict(kind_settings)
    weight = float(s.get("llik_scaling", 1.0) if llik_scaling is None else llik_scaling)
    if kind in ("image", "latent"):
        channels = tuple(s.get("channels") or auto_channels(shape[0], shape[1]))
        return ViewSpec(kind=kind, shape=shape, likelihood=s.get("likelihood", "laplace"),
                        likelihood_scale=s.get("likelihood_scale"), llik_scaling=weight, channels=channels)
    if kind == "vector":
        return ViewSpec(kind=kind, shape=shape, likelihood=s.get("likelihood", "laplace"),
                        likelihood_scale=s.get("likelihood_scale"), llik_scaling=weight,
                        hidden=tuple(s.get("hidden", (128, 64))))
    if kind == "caption":
        return ViewSpec(kind=kind, shape=shape, likelihood="categorical", likelihood_scale=None,
                        llik_scaling=weight, hidden=tuple(s.get("hidden", (32, 64, 128))),
                        embed_dim=int(s.get("embed_dim", 128)), vocab_size=int(view_info.vocab_size))
    raise ValueError(f"no network settings for view kind {kind!r}; known kinds {KIND_SECTIONS}")


def build_model_config(config: Any, info) -> ModelConfig:
    """ModelConfig from `config.model` and the dataset's views (`DatasetInfo` or a list of ViewInfo)."""
    views_info = tuple(getattr(info, "views", info))
    model = _section(config, "model")
    per_kind = {k: model.pop(k, {}) or {} for k in KIND_SECTIONS}
    weights = tuple(model.pop("llik_scaling", ()) or ())
    if weights and len(weights) != len(views_info):
        raise ValueError(f"model.llik_scaling has {len(weights)} weights but the data has "
                         f"{len(views_info)} views")
    views = tuple(
        view_spec(v, per_kind[v.kind], weights[i] if weights else None) for i, v in enumerate(views_info)
    )
    vmap = model.get("vmap_views", True)
    if isinstance(vmap, str):
        if vmap.lower() not in ("auto", "true", "false"):
            raise ValueError(f"model.vmap_views={vmap!r}; use 'auto', 'true' or 'false'")
        model["vmap_views"] = resolve_vmap_views() if vmap.lower() == "auto" else vmap.lower() == "true"
    return ModelConfig.from_dict({**model, "views": tuple(dataclasses.asdict(v) for v in views)})


def resolve_vmap_views() -> bool:
    """model.vmap_views='auto': vmap views of one group except on CPU, where XLA runs the gradient
    of a vmapped convolution (a grouped convolution) about 20x slower than a loop over views."""
    import jax

    return jax.default_backend() != "cpu"


def build_idmvae_config(config: Any, info) -> IDMVAEConfig:
    """The typed IDMVAEConfig (model, loss, diffusion) of a run from its config and DatasetInfo.

    Unknown keys in model/loss/diffusion fail here with the list of valid keys.
    """
    model_cfg = build_model_config(config, info)
    model = {f.name: getattr(model_cfg, f.name) for f in dataclasses.fields(model_cfg)}
    model["views"] = tuple(dataclasses.asdict(v) for v in model_cfg.views)
    return IDMVAEConfig.from_config({
        "model": model,
        "loss": _section(config, "loss"),
        "diffusion": _section(config, "diffusion") if "diffusion" in config else {},
    })
