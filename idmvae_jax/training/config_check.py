"""Resuming only the run a workdir holds: the new config against the saved WORKDIR/config.json.

A run resumed with another architecture, dataset, objective or optimiser would fail deep inside
Orbax (a shape error) or, worse, continue silently as a different run. `check_resume` compares
the two configs key by key before anything is restored or written, and names every key that
differs. Keys that do not change what is computed (how long to train, how often to log or save,
where the data cache is, the devices, the evaluation) may always differ; any other key may differ
only when the user lists it in `train.resume_allow_changes`.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from idmvae_jax import storage
from idmvae_jax.errors import UserError

# Dotted keys, or section prefixes ending in '.', that may differ between a run and its resume.
FREE_TO_CHANGE = (
    "train.num_steps", "train.num_epochs", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.async_checkpointing", "train.sample_every",
    "train.num_sample_examples", "train.sample_prior", "train.tensorboard",
    "train.resume_allow_changes", "data.cache_dir", "data.prefetch", "data.decode_threads",
    "data.allow_download", "parallel.", "eval.",
)


class ConfigMismatchError(UserError):
    """The workdir holds a run whose saved config differs from the new one."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a.b.c': value} of a nested mapping, values normalised as JSON stores them (tuples as lists)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.loads(json.dumps(value, default=str))
    return out


def _free(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in FREE_TO_CHANGE + allowed)


def differences(saved: Mapping[str, Any], config: Mapping[str, Any],
                allowed: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """{key: (saved value, new value)} of the keys of `config` whose values differ from `saved`,
    leaving out FREE_TO_CHANGE and `allowed`. A key `saved` lacks counts as differing, unless the
    new value is that key's default (`config_defaults.base_config()`): a field added to the
    library after the run was saved, at the value that keeps the old behaviour."""
    from idmvae_jax.config_defaults import base_config

    old, new = flatten(saved), flatten(config)
    defaults = flatten(base_config().to_dict())
    missing = object()
    return {k: (old.get(k, "(absent)"), v) for k, v in sorted(new.items())
            if not _free(k, allowed) and old.get(k, missing) != v
            and not (k not in old and k in defaults and defaults[k] == v)}


def check_resume(workdir, config) -> None:
    """Raises ConfigMismatchError when WORKDIR/config.json differs from `config` (a ConfigDict)
    in a key that is neither free to change nor listed in `config.train.resume_allow_changes`."""
    path = storage.path(workdir) / "config.json"
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    allowed = tuple(k.strip() for k in str(config.train.get("resume_allow_changes", "")).split(",") if k.strip())
    diff = differences(saved, config.to_dict(), allowed)
    if diff:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in diff.items())
        raise ConfigMismatchError(
            f"{workdir} holds a run with another config ({listed}). To train this config, use a new "
            f"--workdir; to continue that run with the change, add "
            f"--config.train.resume_allow_changes={','.join(diff)}")
