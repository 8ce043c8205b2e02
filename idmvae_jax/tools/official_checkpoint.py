"""The authors' PyTorch checkpoints as this package's parameter tree and Adam state, and back.

Their trainer saves `model_<epoch>.rar`, a `torch.save` of the model's state dict, and
`optimizer_<epoch>.rar`, the state dict of `torch.optim.Adam` over the model's trainable parameters.
Both are read without torch (`evaluation.torch_pickle`, the reader of the FID weights too).

The state dict names one tensor per parameter of each view's VAE, `vaes.<m>.enc.*` and
`vaes.<m>.dec.*`, the priors' (mean, log-variance) pairs and, with diffusion priors,
`pz_diffusion.*` / `pws_diffusion.<m>.*`. Each of our leaves is computed from its tensors:

- convolution (O, I, kh, kw) -> kernel (kh, kw, I, O)                                   `conv`
- linear layer (out, in) -> kernel (in, out); biases unchanged                          `dense`
- the encoder heads read the (C, H, W)-flattened feature map: weight (out, C·H·W) ->
  kernel (H·W·C, out), rows permuted to our (H, W, C) flattening                   `dense_from_chw`
- the decoder's first layer writes a (C, H, W) map: weight (C·H·W, in) -> kernel (in, H·W·C),
  bias (C·H·W,) -> (H·W·C,)                                                 `dense_to_chw`, `bias_to_chw`
- the auxiliary prior's log-variance (1, W) -> a row of aux_prior_raw (M, W)                 `row`
- views of one group are stacked on a leading axis in the group's view order.

`Conversion.unmapped` names every tensor that has no leaf, with the reason (the decoders'
unused `conv_img_scale`, the frozen Stable-Diffusion VAE, the DDPM schedule buffers, which are
checked against `objective.diffusion`'s schedule, aliases of the score networks, the fixed priors,
which are checked against the config). `to_state_dict` is the inverse of `convert_state_dict`.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Mapping, Optional

import jax
import numpy as np

from idmvae_jax.config import IDMVAEConfig, ModelConfig
from idmvae_jax.errors import UserError

# our score-network layer -> the authors' DNNWithTimeEmb submodule
_SCORE_LAYERS = {"x_in": "net1.0", "x_out": "net1.2", "t_in": "time_mlp.1", "t_out": "time_mlp.3", "out": "net2.1"}
_LEAF = {"kernel": "weight", "bias": "bias"}
# buffers of the authors' GaussianDiffusion (the DDPM schedule and the quantities derived from it)
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "loss_weight",
)


class OfficialCheckpointError(UserError):
    """The authors' checkpoint does not match the configured model."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one of our leaves comes from: one state-dict key per stacked view, and the transform."""

    keys: tuple
    transform: str
    stacked: bool  # the leaf has a leading view axis
    shape: tuple  # our leaf's shape


@dataclasses.dataclass
class Conversion:
    """The result of `convert_state_dict`: our parameter tree and what was left out, and why."""

    params: dict
    mapped: dict  # our leaf path ('a/b/c') -> the state-dict keys it was built from
    unmapped: dict  # state-dict key -> reason
    notes: list  # what the checks measured


# ----------------------------------------------------------------------------- the layout
def _path_names(path) -> tuple:
    """A jax tree path as its keys, e.g. ('encoders', 'views_0_1', 'branch_w', 'stem', 'kernel')."""
    return tuple(str(getattr(p, "key", getattr(p, "idx", None))) for p in path)


def _group_views(name: str) -> list[int]:
    """The view indices of a group's parameter key: 'views_0_2' -> [0, 2]."""
    return [int(i) for i in name.split("_")[1:]]


def _block_index(block: str, levels: int, part: str) -> int:
    """The Sequential index of our ResBlock `block_i`: encoder [block, pool, block, ...] -> 2i;
    decoder [block_L, up, block_{L-1}, ..., up, block_0] -> 2(L - i)."""
    i = int(block.split("_")[1])
    return 2 * i if part == "enc" else 2 * (levels - i)


def _conv_branch_key(rest: tuple, m: int, part: str, branch: str, levels: int) -> tuple[str, str]:
    """(state-dict key, transform) of one leaf of an image encoder branch or decoder body."""
    layer, leaf = rest[0], rest[-1]
    suffix = "" if part == "dec" else f"_{branch}"
    prefix = f"vaes.{m}.{part}"
    if layer.startswith("block_"):
        sub = {"conv_0": "conv_0", "conv_1": "conv_1", "shortcut": "conv_s"}[rest[1]]
        seq = "resnet" + suffix
        key = f"{prefix}.{seq}.{_block_index(layer, levels, part)}.{sub}.{_LEAF[leaf]}"
        return key, "conv" if leaf == "kernel" else "bias"
    if layer == "stem":
        return f"{prefix}.conv_img{suffix}.{_LEAF[leaf]}", "conv" if leaf == "kernel" else "bias"
    if layer == "out":
        return f"{prefix}.conv_img_mean.{_LEAF[leaf]}", "conv" if leaf == "kernel" else "bias"
    if layer in ("mu", "raw_scale"):
        head = {"mu": "fc_mu", "raw_scale": "fc_lv"}[layer]
        return f"{prefix}.{head}{suffix}.{_LEAF[leaf]}", "dense_from_chw" if leaf == "kernel" else "bias"
    if layer == "project":
        return f"{prefix}.fc.{_LEAF[leaf]}", "dense_to_chw" if leaf == "kernel" else "bias_to_chw"
    raise KeyError(layer)


def layout(mc: ModelConfig, abstract_params) -> dict:
    """Our leaf path ('a/b/c') -> `Source` for every leaf of `make_model(mc).init`'s tree.

    Only image views (PolyMNIST-Quadrant's) are covered; a config with other view kinds or with a
    learnable critic is refused: the authors' PolyMNIST checkpoints have neither.
    """
    kinds = {v.kind for v in mc.views}
    if kinds != {"image"}:
        raise OfficialCheckpointError(
            f"the authors' checkpoints are converted for image views only (PolyMNIST-Quadrant); this "
            f"config has {sorted(kinds)} views")
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_params)[0]:
        names = _path_names(path)
        joined = "/".join(names)
        top = names[0]
        if top in ("encoders", "decoders"):
            views = _group_views(names[1])
            levels = len(mc.views[views[0]].channels) - 1
            part = "enc" if top == "encoders" else "dec"
            branch = names[2].split("_")[-1] if part == "enc" else ""
            rest = names[3:]
            found = [_conv_branch_key(rest, m, part, branch, levels) for m in views]
            out[joined] = Source(tuple(k for k, _ in found), found[0][1], True, leaf.shape)
        elif top == "aux_prior_raw":
            out[joined] = Source(tuple(f"pws_params_aux.{m}.1" for m in range(mc.num_views)), "row", True, leaf.shape)
        elif top == "score_z":
            out[joined] = Source((f"pz_diffusion.dnn.{_SCORE_LAYERS[names[1]]}.{_LEAF[names[2]]}",),
                                 "dense" if names[2] == "kernel" else "bias", False, leaf.shape)
        elif top == "score_w":
            layer = f"{_SCORE_LAYERS[names[1]]}.{_LEAF[names[2]]}"
            out[joined] = Source(tuple(f"pws_diffusion.{m}.dnn.{layer}" for m in range(mc.num_views)),
                                 "dense" if names[2] == "kernel" else "bias", True, leaf.shape)
        else:
            raise OfficialCheckpointError(
                f"no counterpart in the authors' checkpoints for our parameter {joined!r} (model.critic="
                f"{mc.critic!r}: their PolyMNIST critic is the parameter-free cosine one)")
    return out


@functools.lru_cache(maxsize=8)
def model_layout(mc: ModelConfig) -> tuple:
    """(abstract parameter tree of `make_model(mc).init`, `layout` of it), computed once per config."""
    from idmvae_jax.models.multimodal import make_model

    abstract = jax.eval_shape(make_model(mc).init, jax.random.key(0))
    return abstract, layout(mc, abstract)


def _chw(mc: ModelConfig, path: str, src: Source) -> Optional[tuple[int, int, int]]:
    """(C, H, W) of the feature map an image encoder head reads or a decoder's first layer writes,
    for the transforms that reorder it (None for the others)."""
    if not src.transform.endswith("chw"):
        return None
    view = mc.views[_group_views(path.split("/")[1])[0]]
    levels = len(view.channels) - 1
    return view.channels[-1], view.shape[0] // 2 ** levels, view.shape[1] // 2 ** levels


# ----------------------------------------------------------------------------- the transforms
def to_ours(a: np.ndarray, transform: str, chw=None) -> np.ndarray:
    """One of the authors' tensors in our layout (see the module docstring)."""
    if transform == "conv":  # (O, I, kh, kw) -> (kh, kw, I, O)
        return a.transpose(2, 3, 1, 0)
    if transform == "dense":  # (out, in) -> (in, out)
        return a.T
    if transform == "dense_from_chw":  # (out, C·H·W) -> (H·W·C, out)
        c, h, w = chw
        return a.reshape(a.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, a.shape[0])
    if transform == "dense_to_chw":  # (C·H·W, in) -> (in, H·W·C)
        c, h, w = chw
        return a.reshape(c, h, w, a.shape[1]).transpose(3, 1, 2, 0).reshape(a.shape[1], h * w * c)
    if transform == "bias_to_chw":  # (C·H·W,) -> (H·W·C,)
        c, h, w = chw
        return a.reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    if transform == "row":  # (1, W) -> (W,)
        return a.reshape(-1)
    if transform == "bias":
        return a
    raise ValueError(transform)


def to_theirs(a: np.ndarray, transform: str, chw=None) -> np.ndarray:
    """The inverse of `to_ours`."""
    if transform == "conv":
        return a.transpose(3, 2, 0, 1)
    if transform == "dense":
        return a.T
    if transform == "dense_from_chw":  # (H·W·C, out) -> (out, C·H·W)
        c, h, w = chw
        return a.reshape(h, w, c, a.shape[1]).transpose(3, 2, 0, 1).reshape(a.shape[1], c * h * w)
    if transform == "dense_to_chw":  # (in, H·W·C) -> (C·H·W, in)
        c, h, w = chw
        return a.reshape(a.shape[0], h, w, c).transpose(3, 1, 2, 0).reshape(c * h * w, a.shape[0])
    if transform == "bias_to_chw":
        c, h, w = chw
        return a.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    if transform == "row":
        return a.reshape(1, -1)
    if transform == "bias":
        return a
    raise ValueError(transform)


# ----------------------------------------------------------------------------- unmapped keys
# Why a tensor of theirs has no leaf of ours: kind -> (key pattern, reason). The kinds "buffer",
# "alias" and "fixed" are not among the parameters their trainer hands to Adam (`trainable_keys`).
UNMAPPED = {
    "sd_vae": (r"pretrained_vae\..+",
               "the frozen Stable-Diffusion VAE (sd-vae-ft-mse) every model of theirs registers; "
               "PolyMNIST never calls it"),
    "unused": (r"vaes\.\d+\.dec\.conv_img_scale\.(weight|bias)",
               "registered by their decoder but never used: the likelihood scale is the constant 0.75"),
    "alias": (r"(pz_diffusion|pws_diffusion\.\d+)\.diffusion\.model\..+",
              "the same tensor as the `.dnn.` key (the score network is registered twice)"),
    "buffer": (r"(pz_diffusion|pws_diffusion\.\d+)\.diffusion\.(" + "|".join(SCHEDULE_BUFFERS) + ")",
               "a DDPM schedule buffer, recomputed from config.diffusion (betas and alphas_cumprod are checked "
               "against it; the others are functions of them)"),
    "fixed": (r"(pz_params|pws_params\.\d+)\.[01]|pws_params_aux\.\d+\.0",
              "a fixed prior parameter (requires_grad=False), set by the config (checked against it)"),
}


def _unmapped_kind(key: str) -> Optional[str]:
    """The UNMAPPED kind of a state-dict key, or None for a key this layout does not know."""
    return next((kind for kind, (pattern, _) in UNMAPPED.items() if re.fullmatch(pattern, key)), None)


def _unmapped_reason(key: str) -> Optional[str]:
    kind = _unmapped_kind(key)
    return UNMAPPED[kind][1] if kind else None


def _check_fixed(state_dict: Mapping[str, np.ndarray], mc: ModelConfig, cfg: IDMVAEConfig) -> list:
    """The fixed priors and the schedule buffers must be what our config computes; returns notes."""
    for key, value in state_dict.items():
        value = np.asarray(value)
        if re.fullmatch(r"(pz_params|pws_params\.\d+|pws_params_aux\.\d+)\.0", key) and np.any(value != 0):
            raise OfficialCheckpointError(f"{key}: a prior mean other than 0 (max |mean| {np.abs(value).max():.3g}); "
                                          f"our priors are centred")
        if re.fullmatch(r"(pz_params|pws_params\.\d+)\.1", key) and np.any(value != mc.prior_raw_scale):
            raise OfficialCheckpointError(
                f"{key}: the fixed prior's raw scale is {np.unique(value)[:3]}, the config's model.prior_raw_scale "
                f"is {mc.prior_raw_scale}; set --config.model.prior_raw_scale to the checkpoint's value")
    if not mc.diffusion_prior:
        return []
    from idmvae_jax.objective import diffusion

    schedule = diffusion.schedule_from_config(cfg.diffusion)
    ours = {"betas": np.asarray(schedule.betas), "alphas_cumprod": np.asarray(schedule.alphas_cumprod)}
    worst = {}
    for key, value in state_dict.items():
        name = key.rsplit(".", 1)[-1]
        if ".diffusion." in key and name in ours:
            # theirs takes sigma(+-3) in float32 (docs/equivalence.md): up to ~3e-5 relative at the last steps
            if value.shape != ours[name].shape or not np.allclose(value, ours[name], rtol=1e-4, atol=1e-7):
                raise OfficialCheckpointError(
                    f"{key}: the checkpoint's DDPM schedule differs from config.diffusion's "
                    f"(T={cfg.diffusion.num_timesteps}); set the config's diffusion section to theirs")
            rel = np.abs(value - ours[name]) / np.maximum(np.abs(value), 1e-30)
            worst[name] = max(worst.get(name, 0.0), float(rel.max()))
    return ["their DDPM schedule matches config.diffusion's: max relative difference "
            + ", ".join(f"{n} {v:.1e}" for n, v in sorted(worst.items()))] if worst else []


# ----------------------------------------------------------------------------- conversion
def convert_state_dict(state_dict: Mapping[str, np.ndarray], cfg: IDMVAEConfig) -> Conversion:
    """The authors' model state dict -> our parameter tree for `cfg`, float32.

    Raises OfficialCheckpointError naming the keys that are missing, of the wrong shape, or not
    part of the configured model (e.g. diffusion priors in the checkpoint but not in the config).
    """
    mc = cfg.model
    _, sources = model_layout(mc)
    _check_structure(state_dict, sources, mc)
    notes = _check_fixed(state_dict, mc, cfg)
    _check_alias(state_dict)
    params = tensors_to_tree(state_dict, cfg)
    used = _used_keys(sources)
    unmapped = {k: _unmapped_reason(k) for k in state_dict if k not in used}
    return Conversion(params, {p: s.keys for p, s in sources.items()}, unmapped, notes)


def _used_keys(sources: dict) -> set:
    """Every state-dict key some leaf of ours is built from."""
    return {k for src in sources.values() for k in src.keys}


def _check_structure(state_dict, sources: dict, mc: ModelConfig) -> None:
    """Every tensor our leaves need is there with the expected shape, and nothing unknown is left."""
    used = _used_keys(sources)
    missing = sorted(k for k in used if k not in state_dict)
    unknown = sorted(k for k in state_dict if k not in used and _unmapped_reason(k) is None)
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors the config's model needs are missing (e.g. {missing[:3]})")
    if unknown:
        problems.append(f"{len(unknown)} tensors are not part of the configured model (e.g. {unknown[:3]})")
    if any(k.startswith(("pz_diffusion.", "pws_diffusion.")) for k in unknown) and not mc.diffusion_prior:
        problems.append("the checkpoint has diffusion priors: use a config variant with them (e.g. ':paper,diffusion')")
    if any(k.startswith(("pz_diffusion.", "pws_diffusion.")) for k in missing) and mc.diffusion_prior:
        problems.append("the checkpoint has no diffusion priors: use a config variant without them")
    views = sorted({int(k.split(".")[1]) for k in state_dict if k.startswith("vaes.")})
    if views and len(views) != mc.num_views:
        problems.append(f"the checkpoint has {len(views)} views, the config {mc.num_views}")
    if problems:
        raise OfficialCheckpointError("the checkpoint does not match the config: " + "; ".join(problems))
    for path, src in sources.items():
        for k in src.keys:
            want = their_shape(mc, path, src)
            if tuple(np.shape(state_dict[k])) != want:
                raise OfficialCheckpointError(
                    f"{k} has shape {tuple(np.shape(state_dict[k]))}, the config's model needs {want} (for {path}); "
                    f"check the config's image size, channels and latent sizes")


def their_shape(mc: ModelConfig, path: str, src: Source) -> tuple:
    """The shape of the authors' tensor behind (one view of) our leaf `path`."""
    one = src.shape[1:] if src.stacked else src.shape
    return tuple(to_theirs(np.empty(one, np.float32), src.transform, _chw(mc, path, src)).shape)


def _tree_from_paths(abstract, leaves: dict):
    """The tree of `abstract` with the leaf of each path ('a/b/c') taken from `leaves` (float32)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    out = []
    for path, leaf in flat:
        key = "/".join(_path_names(path))
        value = leaves[key]
        if value.shape != leaf.shape:
            raise OfficialCheckpointError(f"{key}: converted shape {value.shape}, expected {leaf.shape}")
        out.append(np.ascontiguousarray(value, np.float32))
    return jax.tree_util.tree_unflatten(treedef, out)


def _check_alias(state_dict) -> None:
    """Each `.diffusion.model.` tensor must equal its `.dnn.` twin (the one converted)."""
    for key in state_dict:
        m = re.fullmatch(r"(.+)\.diffusion\.model\.(.+)", key)
        if m and f"{m.group(1)}.dnn.{m.group(2)}" in state_dict:
            if not np.array_equal(state_dict[key], state_dict[f"{m.group(1)}.dnn.{m.group(2)}"]):
                raise OfficialCheckpointError(f"{key} differs from its alias {m.group(1)}.dnn.{m.group(2)}")


def to_state_dict(params, cfg: IDMVAEConfig) -> "dict[str, np.ndarray]":
    """Our parameter tree -> the authors' state-dict tensors (the inverse of `convert_state_dict`).

    Holds every tensor with a leaf of ours, the fixed priors and the score networks' aliases; not
    the Stable-Diffusion VAE, the unused `conv_img_scale` nor the schedule buffers (their
    `load_state_dict(..., strict=False)` keeps their own)."""
    mc = cfg.model
    _, sources = model_layout(mc)
    flat = {"/".join(_path_names(path)): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    out = {}
    for path, src in sources.items():
        chw = _chw(mc, path, src)
        arrays = flat[path] if src.stacked else flat[path][None]
        for key, a in zip(src.keys, arrays):
            out[key] = np.ascontiguousarray(to_theirs(a, src.transform, chw), np.float32)
    for key in list(out):
        if ".dnn." in key:
            out[key.replace(".dnn.", ".diffusion.model.")] = out[key]
    for name, dim in [("pz_params", mc.z_dim)] + [(f"pws_params.{m}", mc.w_dim) for m in range(mc.num_views)]:
        out[f"{name}.0"] = np.zeros((1, dim), np.float32)
        out[f"{name}.1"] = np.full((1, dim), mc.prior_raw_scale, np.float32)
    for m in range(mc.num_views):
        out[f"pws_params_aux.{m}.0"] = np.zeros((1, mc.w_dim), np.float32)
    return dict(sorted(out.items(), key=lambda kv: _registration_rank(kv[0])))


def _registration_rank(key: str):
    """Sort key giving the authors' registration order of the tensors `to_state_dict` writes."""
    order = ("vaes.", "pretrained_vae.", "pz_params.", "pws_params.", "pws_params_aux.", "pz_diffusion.",
             "pws_diffusion.")
    top = next(i for i, p in enumerate(order) if key.startswith(p))
    parts = [int(p) if p.isdigit() else p for p in key.split(".")]
    return (top, [(0, p) if isinstance(p, int) else (1, _MODULE_ORDER.get(p, 99), p) for p in parts])


# attribute registration order inside their modules (Enc, Dec, ResnetBlock, DNNWithTimeEmb, VAE)
_MODULE_ORDER = {name: i for i, name in enumerate((
    "enc", "dec", "conv_img_w", "resnet_w", "fc_mu_w", "fc_lv_w", "conv_img_z", "resnet_z", "fc_mu_z",
    "fc_lv_z", "fc", "resnet", "conv_img_mean", "conv_img_scale", "conv_0", "conv_1", "conv_s", "dnn",
    "diffusion", "net1", "time_mlp", "net2", "model", "weight", "bias"))}


# ----------------------------------------------------------------------------- the optimiser
def trainable_keys(state_dict_keys) -> list[str]:
    """The names of the parameters their trainer hands to Adam, in order:
    `filter(lambda p: p.requires_grad, model.parameters())` = the state dict's keys without
    buffers (the schedule), without the aliased score networks (`.diffusion.model.`, counted once
    by `parameters()`) and without the fixed priors (requires_grad=False)."""
    return [key for key in state_dict_keys if _unmapped_kind(key) not in ("buffer", "alias", "fixed")]


def convert_adam_state(optimizer_state: Mapping, state_dict: Mapping[str, np.ndarray], cfg: IDMVAEConfig,
                       opt_state, train_config=None):
    """Their `torch.optim.Adam` state dict -> `opt_state` (our optimiser's state for the converted
    parameters, e.g. `optimizer.init(params)`) with its moments and count replaced.

    Their state is indexed by position in `trainable_keys(state_dict)`. Tensors we do not convert
    may lack state (their Stable-Diffusion VAE and `conv_img_scale` never get a gradient); every
    converted parameter must have it, stepped as often as the others, since our Adam keeps one
    count. Returns (opt_state, step count, notes). Raises OfficialCheckpointError when the files do
    not belong together, or when `train_config` (config.train) differs from their optimiser in
    anything but the learning rate (optimizer 'adam', amsgrad, betas, eps, no weight decay).
    """
    groups = optimizer_state.get("param_groups") if isinstance(optimizer_state, Mapping) else None
    if not groups or not isinstance(optimizer_state.get("state"), Mapping):
        raise OfficialCheckpointError("the optimizer file is not a torch optimizer state dict "
                                      "(no 'state' and 'param_groups')")
    keys = trainable_keys(state_dict.keys())
    indices = [i for g in groups for i in g["params"]]
    if len(indices) != len(keys):
        raise OfficialCheckpointError(
            f"the optimizer holds {len(indices)} parameters, the model checkpoint {len(keys)} trainable ones: "
            f"they are not from the same run")
    name_of = dict(zip(indices, keys))
    state = optimizer_state["state"]
    if set(state) - set(name_of):
        raise OfficialCheckpointError(f"the optimizer has state for parameters {sorted(set(state) - set(name_of))[:5]} "
                                      f"that its parameter groups do not list: the file is damaged")
    amsgrad = bool(groups[0].get("amsgrad", False))
    fields = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
    moments = {field: {} for field in fields}
    steps = {}
    for index, entry in state.items():
        key = name_of[index]
        for field in fields:
            if np.shape(entry.get(field)) != np.shape(state_dict[key]):
                raise OfficialCheckpointError(
                    f"optimizer entry {index} ({key}): {field} has shape {np.shape(entry.get(field))}, the parameter "
                    f"{np.shape(state_dict[key])}: the files are not from the same run")
            moments[field][key] = np.asarray(entry[field], np.float32)
        steps[key] = int(np.asarray(entry["step"]))
    counts = set(steps.values())
    if len(counts) > 1:
        raise OfficialCheckpointError(f"the optimizer's parameters were stepped unequally ({sorted(counts)}); our "
                                      f"Adam keeps one step count")
    count = counts.pop() if counts else 0
    converted = sorted(_used_keys(model_layout(cfg.model)[1]))
    stateless = [k for k in converted if k not in steps]
    if count and stateless:
        raise OfficialCheckpointError(
            f"{len(stateless)} converted parameters have no Adam state while the others were stepped {count} times "
            f"(e.g. {stateless[:3]}); our Adam keeps one step count: convert without --optimizer")
    group = groups[0]
    if train_config is not None:
        _check_adam_settings(group, train_config, amsgrad)
    notes = [f"{len(state)} of {len(keys)} trainable tensors have Adam state; step {count}; "
             f"lr {group.get('lr')}, betas {tuple(group.get('betas', ()))}, eps {group.get('eps')}, amsgrad {amsgrad}"]
    if train_config is not None and float(group.get("lr", train_config.learning_rate)) != train_config.learning_rate:
        notes.append(f"their learning rate {group['lr']} differs from config.train.learning_rate "
                     f"{train_config.learning_rate}; training continues with the config's")

    def tree_of(named: dict):
        full = {k: named.get(k, np.zeros(np.shape(state_dict[k]), np.float32)) for k in state_dict}
        return tensors_to_tree(full, cfg)

    nu_max = tree_of(moments["max_exp_avg_sq"]) if amsgrad else None
    return _replace_moments(opt_state, count, tree_of(moments["exp_avg"]), tree_of(moments["exp_avg_sq"]),
                            nu_max), count, notes


def _check_adam_settings(group: Mapping, tc, amsgrad: bool) -> None:
    """Their param group against config.train: the same update rule apart from the learning rate."""
    ours = {"optimizer": tc.get("optimizer", "adam"), "amsgrad": bool(tc.get("amsgrad", False)),
            "betas": (float(tc.b1), float(tc.b2)), "eps": float(tc.eps),
            "weight_decay": float(tc.get("weight_decay", 0.0))}
    theirs = {"optimizer": "adam", "amsgrad": amsgrad,
              "betas": tuple(float(b) for b in group.get("betas", ours["betas"])),
              "eps": float(group.get("eps", ours["eps"])), "weight_decay": float(group.get("weight_decay", 0.0))}
    if ours["optimizer"] == "adam":  # optax.adam: no weight decay whatever train.weight_decay says
        ours["weight_decay"] = 0.0
    differ = [f"{k}: theirs {theirs[k]}, config.train {ours[k]}" for k in ours if ours[k] != theirs[k]]
    if group.get("maximize"):
        differ.append("theirs maximises")
    if differ:
        raise OfficialCheckpointError(
            "their optimizer differs from config.train (" + "; ".join(differ) + "): set --config.train.* to theirs, "
            "or convert without --optimizer")


def tensors_to_tree(named: Mapping[str, np.ndarray], cfg: IDMVAEConfig):
    """Tensors named and shaped like the parameters (e.g. Adam moments) -> a tree like our params,
    without the checks of `convert_state_dict` (the moments of a fixed prior do not exist)."""
    mc = cfg.model
    abstract, sources = model_layout(mc)
    leaves = {}
    for path, src in sources.items():
        chw = _chw(mc, path, src)
        arrays = [to_ours(np.asarray(named[k], np.float32), src.transform, chw) for k in src.keys]
        leaves[path] = np.stack(arrays) if src.stacked else arrays[0]
    return _tree_from_paths(abstract, leaves)


def _replace_moments(opt_state, count: int, mu, nu, nu_max=None):
    """opt_state with the count and moments of its (only) Adam or AMSGrad state replaced."""
    import optax

    from idmvae_jax.training.step import AmsgradState

    found = []

    def swap(node):
        if isinstance(node, optax.ScaleByAdamState):
            found.append(node)
            return node._replace(count=np.asarray(count, np.asarray(node.count).dtype), mu=mu, nu=nu)
        if isinstance(node, AmsgradState):
            found.append(node)
            if nu_max is None:
                raise OfficialCheckpointError("the config trains with amsgrad, their optimizer did not; "
                                              "set --config.train.amsgrad=false")
            return node._replace(count=np.asarray(count, np.int32), mu=mu, nu=nu, nu_max=nu_max)
        return node

    is_state = lambda n: isinstance(n, (optax.ScaleByAdamState, AmsgradState))  # noqa: E731
    out = jax.tree_util.tree_map(swap, opt_state, is_leaf=is_state)
    if len(found) != 1:
        raise OfficialCheckpointError("the config's optimiser has no Adam state to receive theirs "
                                      f"(config.train.optimizer must be 'adam'); found {len(found)}")
    if nu_max is not None and not isinstance(found[0], AmsgradState):
        raise OfficialCheckpointError("their optimizer used amsgrad: set --config.train.amsgrad=true")
    return out


# ----------------------------------------------------------------------------- a workdir
def view_infos(config) -> tuple:
    """The views of a PolyMNIST-Quadrant config, from the config alone (`data.describe_views`)."""
    from idmvae_jax.data.describe import describe_views

    if not str(config.data.name).startswith("polymnist_quadrant"):
        raise OfficialCheckpointError(
            f"data.name={config.data.name!r}: the authors' checkpoints are converted for PolyMNIST-Quadrant only")
    return describe_views(config.data)


def convert_to_workdir(config, workdir, checkpoint: str, optimizer: Optional[str] = None) -> dict:
    """Converts their `model_*.rar` (and `optimizer_*.rar`) into an Orbax checkpoint of `config`'s
    run in WORKDIR, which `main` resumes and `evaluate` reads like our own.

    The checkpoint's step is their Adam step count (0 without the optimizer file, whose Adam state
    then starts at zero as theirs would). WORKDIR/config.json is written before the checkpoint, so
    a resume with another config is refused. Returns the report (also WORKDIR/conversion.json):
    the source files, the step, every mapped leaf's keys and every unmapped key with the reason.
    """
    import json

    from idmvae_jax import build, storage
    from idmvae_jax.training import checkpointing, step as step_lib, writers

    ckpt = checkpointing.Checkpointer(workdir, keep=max(1, int(config.train.keep_checkpoints)), async_save=False)
    try:
        if ckpt.latest_step() is not None:
            raise OfficialCheckpointError(f"{workdir} already holds checkpoints {ckpt.all_steps()}; convert into a "
                                          f"new --workdir")
        cfg = build.build_idmvae_config(config, view_infos(config))
        state_dict = _read(checkpoint, "checkpoint")
        conversion = convert_state_dict(state_dict, cfg)
        optim = step_lib.make_optimizer(config.train)
        opt_state, count, adam_notes = optim.init(conversion.params), 0, []
        if optimizer:
            opt_state, count, adam_notes = convert_adam_state(_read(optimizer, "optimizer"), state_dict, cfg,
                                                              opt_state, config.train)
        seed_key = jax.random.fold_in(jax.random.key(int(config.seed)), 1)  # as training's init_fn
        state = step_lib.init_state(conversion.params, optim, seed_key)._replace(
            opt_state=opt_state, step=np.asarray(count, np.int32))
        writers.write_config(workdir, config)
        ckpt.save(count, state)
    finally:
        ckpt.close()
    report = {
        "checkpoint": str(checkpoint), "optimizer": str(optimizer) if optimizer else None, "step": count,
        "notes": conversion.notes + adam_notes,
        "num_params": int(sum(np.size(x) for x in jax.tree.leaves(conversion.params))),
        "mapped": {k: list(v) for k, v in conversion.mapped.items()},
        "unmapped": conversion.unmapped,
    }
    storage.write_text(storage.path(workdir) / "conversion.json", json.dumps(report, indent=2))
    return report


def _read(path: str, what: str):
    """A torch.save file through the torch-free reader; a file it cannot read is a one-line error."""
    import os
    import pickle
    import struct
    import zipfile

    from idmvae_jax.evaluation.torch_pickle import load_torch_state_dict

    if not os.path.isfile(path):
        raise OfficialCheckpointError(f"--{what}={path}: no such file")
    try:
        return load_torch_state_dict(path)
    except (pickle.UnpicklingError, zipfile.BadZipFile, struct.error, ValueError, EOFError, KeyError, TypeError,
            AttributeError, IndexError) as error:
        raise OfficialCheckpointError(f"--{what}={path} is not a torch.save file this reader accepts "
                                      f"({type(error).__name__}: {error})") from None


def summary_lines(report: dict) -> list[str]:
    """The console summary of a conversion: counts, then every unmapped key grouped by reason."""
    by_reason: dict = {}
    for key, reason in report["unmapped"].items():
        by_reason.setdefault(reason, []).append(key)
    lines = [f"converted {len(report['mapped'])} parameter arrays ({report['num_params']:,} numbers) from "
             f"{report['checkpoint']}; checkpoint step {report['step']}"]
    lines += [f"  {note}" for note in report["notes"]]
    lines.append(f"not converted: {len(report['unmapped'])} tensors")
    for reason, keys in by_reason.items():
        shown = ", ".join(keys[:3]) + (f", ... ({len(keys)} in all)" if len(keys) > 3 else "")
        lines.append(f"  {shown}: {reason}")
    return lines
