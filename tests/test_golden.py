"""Golden numbers of the whole objective: every term of `loss_fn`'s aux, the total and the global
gradient norm on a fixed batch, key and parameter seed, for four models (all view kinds, both view
paths, learnable critics, the diffusion prior). They pin what the objective computes while the code
around it moves: a change that moves one of them must say why in its own commit.

The numbers live in tests/golden/objective.json. Regenerate them (only for a change that is meant
to move them) with:

    IDMVAE_WRITE_GOLDEN=1 python -m pytest -q tests/test_golden.py
"""
import json
import os
import pathlib

import jax
import numpy as np
import pytest

from idmvae_jax import build
from idmvae_jax.training.loss import loss_fn
from idmvae_jax.config_defaults import load_config
from idmvae_jax.data.info import ViewInfo
from idmvae_jax.models.multimodal import make_model

GOLDEN = pathlib.Path(__file__).parent / "golden" / "objective.json"
RTOL = 1e-6

# name -> (config, overrides, views as (kind, shape, vocab_size)); the vmapped views of
# "tiny_diffusion_vmapped" must give the looped views' numbers, so it shares their golden entry
_PQ_IMAGE = ("image", (32, 32, 3), None)
CASES = {
    "tiny_diffusion": ("configs/polymnist_quadrant.py:tiny,diffusion", {}, [_PQ_IMAGE] * 5),
    "tiny_diffusion_vmapped": (
        "configs/polymnist_quadrant.py:tiny,diffusion", {"model.vmap_views": "true"}, [_PQ_IMAGE] * 5),
    "mixed_kinds_projection": (
        "configs/npz.py:tiny,diffusion",
        {"model.critic": "projection", "model.critic_width": 8, "model.critic_dim": 4, "loss.num_samples": 2},
        [("image", (16, 16, 1), None), ("vector", (10,), None), ("caption", (8,), 11),
         ("image", (16, 16, 1), None)],
    ),
    "mini_two_views": ("configs/polymnist_quadrant.py:mini,diffusion", {}, [_PQ_IMAGE] * 2),
}
BATCH = 6


def _config(name):
    path, overrides, views = CASES[name]
    config = load_config(path)
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    infos = [ViewInfo(kind, shape, {"image": "uint8", "vector": "float32", "caption": "int32"}[kind], vocab)
             for kind, shape, vocab in views]
    return build.build_idmvae_config(config, infos), infos


def _batch(infos):
    rng = np.random.RandomState(0)
    xs = []
    for info in infos:
        if info.kind == "image":
            xs.append(rng.randint(0, 256, (BATCH, *info.shape)).astype(np.uint8))
        elif info.kind == "caption":
            xs.append(rng.randint(0, info.vocab_size, (BATCH, *info.shape)).astype(np.int32))
        else:
            xs.append(rng.randn(BATCH, *info.shape).astype(np.float32))
    return {"x": xs}


def objective_numbers(name) -> dict:
    """aux terms, total and the global gradient norm of `loss_fn` for case `name` (float)."""
    cfg, infos = _config(name)
    params = make_model(cfg.model).init(jax.random.key(0))
    batch = _batch(infos)

    def value(p):
        return loss_fn(p, batch, jax.random.key(1), cfg)

    (_, aux), grads = jax.jit(jax.value_and_grad(value, has_aux=True))(params)
    out = {k: float(v) for k, v in aux.items()}
    out["grad_norm"] = float(np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64)))
                                         for g in jax.tree.leaves(grads))))
    return out


# In the slow set: the vmapped case (CI covers vmapped == looped views through
# tests/test_models.py::test_vmapped_views_equal_looped_views_and_single_view_apply) and the mini
# case (CI covers the same objective and networks at tiny widths through the tiny_diffusion case).
SLOW_CASES = ("tiny_diffusion_vmapped", "mini_two_views")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n
                                  for n in sorted(CASES)])
def test_objective_matches_golden_numbers(name, fast_compile):
    got = objective_numbers(name)
    if os.environ.get("IDMVAE_WRITE_GOLDEN") and not name.endswith("_vmapped"):
        table = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        table[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
        pytest.skip("golden numbers written")
    want = json.loads(GOLDEN.read_text())[name.removesuffix("_vmapped")]
    assert sorted(got) == sorted(want)
    for term in want:
        np.testing.assert_allclose(got[term], want[term], rtol=RTOL, atol=0, err_msg=f"{name}: {term}")
    assert all(want[t] != 0 for t in ("elbo", "cross_mi", "genaug", "diffusion", "grad_norm")), \
        "every term of the case is switched on"
