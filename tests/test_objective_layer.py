"""The objective as a fork sees it: `idmvae_jax.objective` imports no model, training or data code,
and no term takes a model object (tests/test_examples.py::test_fork_objective runs the fork example)."""
import inspect
import json
import os
import pathlib
import subprocess
import sys

from idmvae_jax import objective

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED = ("idmvae_jax", "idmvae_jax.core", "idmvae_jax.objective")


def _modules_after_import(statement: str) -> list:
    """The idmvae_jax and flax modules a fresh interpreter holds after `statement`."""
    code = (f"import sys; {statement}; import json; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('idmvae_jax', 'flax'))))")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _outside_objective_layer(modules) -> list:
    return [m for m in modules
            if not any(m == a or m.startswith(a + ".") for a in ALLOWED[1:]) and m != ALLOWED[0]]


def test_objective_imports_no_model_training_or_data_module():
    loaded = _modules_after_import("import idmvae_jax.objective")
    assert "idmvae_jax.objective.genaug" in loaded  # the check sees the package's modules
    assert _outside_objective_layer(loaded) == []


def test_no_loss_term_takes_a_model_object():
    functions = [f for mod in (objective.elbo, objective.infonce, objective.genaug, objective.diffusion,
                               objective.noise, objective.global_batch)
                 for _, f in inspect.getmembers(mod, inspect.isfunction) if f.__module__ == mod.__name__]
    assert len(functions) > 15
    for f in functions:
        for name, p in inspect.signature(f).parameters.items():
            assert name not in ("model", "cfg"), f"{f.__name__}({name})"
            assert "MultimodalVAE" not in str(p.annotation) and "Config" not in str(p.annotation), f.__name__
