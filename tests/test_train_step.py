"""The train step: 8-device jit == 1-device jit == 8-device pmap; the non-finite guard.

A small all-vector model (3 views, every loss term on, diffusion included) keeps compilation
short; the parallel semantics (global-batch InfoNCE, roll across devices, per-example noise) are
the same as for images.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idmvae_jax import build

from idmvae_jax.training import parallel
from idmvae_jax.training.loss import loss_fn
from idmvae_jax.config_defaults import load_config
from idmvae_jax.training import step as ts
from idmvae_jax.data import ViewInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 16
NUM_STEPS = 2


def small_config():
    c = load_config("configs/polymnist_quadrant.py:tiny,diffusion")
    c.model.vector.hidden = (8,)
    c.model.z_dim, c.model.w_dim = 3, 4
    c.train.batch_size = BATCH
    return c


def small_setup():
    c = small_config()
    views = [ViewInfo("vector", (6,), "float32")] * 3
    cfg = build.build_idmvae_config(c, views)
    return c, cfg, ts.make_optimizer(c.train)


def random_batches(n=NUM_STEPS, b=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": [rng.normal(size=(b, 6)).astype(np.float32) for _ in range(3)]} for _ in range(n)]


def run(cfg, opt, mode, num_devices, batches, loss_fn=None, partitioner="shard_map"):
    mesh = parallel.make_mesh(num_devices)
    state, _ = parallel.init_state_on_mesh(ts.make_init_fn(cfg, opt, 0), mesh)
    pstep = parallel.make_parallel_step(cfg, opt, mesh, mode, loss_fn=loss_fn, partitioner=partitioner)
    device_state = pstep.put_state(state)
    history = []
    for b in batches:
        device_state, metrics = pstep.step(device_state, pstep.put_batch(b))
        history.append(pstep.fetch(metrics))
    final = jax.tree.map(parallel.to_host, pstep.get_state(device_state))
    return final, history


pytestmark = pytest.mark.usefixtures("fast_compile_module")


@pytest.fixture(scope="session")
def setup():
    return small_setup()


@pytest.fixture(scope="session")
def reference(setup):
    _, cfg, opt = setup
    return run(cfg, opt, "jit", 1, random_batches())


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("partitioner", ["shard_map", pytest.param("auto", marks=pytest.mark.slow)])  # auto: not the default
def test_eight_device_jit_matches_one_device(setup, reference, partitioner):
    _, cfg, opt = setup
    assert jax.device_count() == 8
    final, history = run(cfg, opt, "jit", 8, random_batches(), partitioner=partitioner)
    ref_final, ref_history = reference
    for h, r in zip(history, ref_history):
        assert set(h) >= {"elbo", "recon", "kl", "cross_mi", "genaug", "diffusion", "total", "grad_norm"}
        assert h["diffusion"] > 0 and h["cross_mi"] > 0 and h["genaug"] > 0
        np.testing.assert_allclose([h[k] for k in sorted(h)], [r[k] for k in sorted(r)], rtol=1e-5)
    assert_trees_close(final.params, ref_final.params)
    assert int(final.step) == NUM_STEPS and int(final.bad_step) == -1


@pytest.mark.slow  # CI: the centred-critic pmap test and the 8-device jit test below and above
def test_pmap_matches_jit(setup, reference):
    _, cfg, opt = setup
    final, history = run(cfg, opt, "pmap", 8, random_batches())
    ref_final, ref_history = reference
    for h, r in zip(history, ref_history):
        np.testing.assert_allclose([h[k] for k in sorted(h)], [r[k] for k in sorted(r)], rtol=1e-5)
    assert_trees_close(final.params, ref_final.params)
    assert_trees_close(final.opt_state, ref_final.opt_state)


def test_pmap_matches_jit_with_the_centered_critic():
    """The centred critic's mean is over the global batch under pmap too (the codes are gathered)."""
    c, _, opt = small_setup()
    c.model.critic = "centered"
    cfg = build.build_idmvae_config(c, [ViewInfo("vector", (6,), "float32")] * 3)
    batches = random_batches(n=1)
    ref_final, ref_history = run(cfg, opt, "jit", 1, batches)
    final, history = run(cfg, opt, "pmap", 8, batches)
    np.testing.assert_allclose([history[0][k] for k in sorted(history[0])],
                               [ref_history[0][k] for k in sorted(ref_history[0])], rtol=1e-5)
    assert_trees_close(final.params, ref_final.params)


def test_cross_mi_chance_is_over_the_global_batch_on_eight_devices(setup):
    """With a critic that scores every pair alike, the 8-device step's cross_mi is the chance
    value of the global batch, M log(2B - 1) with B = 16, not of a device's shard of 2: the loss
    all-gathers the codes, so the console's chance uses train.batch_size."""
    import functools

    from idmvae_jax import objective

    _, cfg, opt = setup
    const = lambda a, b: jnp.zeros((a.shape[0], b.shape[0]), jnp.float32)  # noqa: E731
    _, history = run(cfg, opt, "jit", 8, random_batches(n=1), loss_fn=functools.partial(loss_fn, critic_z=const))
    np.testing.assert_allclose(history[0]["cross_mi"], objective.cross_view_infonce_chance(3, BATCH), rtol=1e-6)
    assert abs(history[0]["cross_mi"] - objective.cross_view_infonce_chance(3, BATCH // 8)) > 1.0


def test_step_key_is_fold_in_of_base_key_and_step():
    state = ts.init_state({}, ts.make_optimizer(small_config().train), jax.random.fold_in(jax.random.key(3), 1))
    state = state._replace(step=jnp.asarray(5, jnp.int32))
    expected = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), 1), 5)
    np.testing.assert_array_equal(jax.random.key_data(ts.step_key(state)), jax.random.key_data(expected))


def test_nonfinite_guard_freezes_state_and_names_the_term(setup):
    _, cfg, opt = setup

    def nan_genaug(params, batch, key, cfg_, *, axis_name=None):
        total, aux = loss_fn(params, batch, key, cfg_, axis_name=axis_name)
        aux = dict(aux, genaug=aux["genaug"] * jnp.nan)
        return total + aux["genaug"], aux

    init = ts.make_init_fn(cfg, opt, 0)()
    step = jax.jit(ts.make_train_step(cfg, opt, loss_fn=nan_genaug))
    batches = random_batches()
    state, _ = step(init, batches[0])
    state, metrics = step(state, batches[1])
    assert int(state.bad_step) == 0  # the first step taken (step index 0)
    assert ts.decode_bad_terms(int(state.bad_terms)) == ["genaug", "grad_norm"]
    assert int(state.step) == 2
    assert_trees_close(state.params, init.params, rtol=0, atol=0)  # no update from a bad step
    assert_trees_close(state.opt_state, init.opt_state, rtol=0, atol=0)


def _numpy_adam(grads, lr, b1, b2, eps, amsgrad=False, clip_norm=0.0):
    """Independent float64 Adam as torch.optim.Adam computes it (AMSGrad: the running maximum of
    the raw second moment, bias-corrected with the current step) after optional global-norm
    clipping; returns the parameter updates of each step."""
    m = v = v_max = np.zeros_like(grads[0], np.float64)
    out = []
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        if clip_norm and np.linalg.norm(g) > clip_norm:
            g = g * clip_norm / np.linalg.norm(g)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        denominator = np.sqrt(v_max if amsgrad else v) / np.sqrt(1 - b2 ** t) + eps
        out.append(-lr * m / (1 - b1 ** t) / denominator)
    return out


@pytest.mark.parametrize("amsgrad, clip_norm", [(False, 0.0), (True, 0.0), (False, 1.0), (True, 1.0)])
def test_optimizer_updates_match_an_independent_adam(amsgrad, clip_norm):
    """amsgrad (CUB's setting, PyTorch's convention) and grad_clip_norm change the updates exactly as
    written out in numpy: the later gradients are smaller, so AMSGrad's maximum and the first
    step's clipping both matter; optax.amsgrad (the maximum of the corrected moments) would fail."""
    c = small_config()
    c.train.amsgrad, c.train.grad_clip_norm, c.train.learning_rate = amsgrad, clip_norm, 1e-2
    c.train.b2 = 0.9  # a short second-moment memory, so that the maximum outlives the moment
    opt = ts.make_optimizer(c.train)
    grads = [np.array([3.0, -4.0, 0.5]) * 2.0] + [np.array([0.1, 0.2, -0.05])] * 2  # norms 10.1, 0.23
    params = {"a": jnp.zeros(3)}
    state, got = opt.init(params), []
    for g in grads:
        updates, state = opt.update({"a": jnp.asarray(g, jnp.float32)}, state, params)
        got.append(np.asarray(updates["a"]))
    want = _numpy_adam(grads, 1e-2, c.train.b1, c.train.b2, c.train.eps, amsgrad, clip_norm)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-9)  # float32 optax vs float64
    if amsgrad or clip_norm:  # the option is not a no-op here
        plain = _numpy_adam(grads, 1e-2, c.train.b1, c.train.b2, c.train.eps)
        assert np.max(np.abs(want[2] - plain[2])) > 1e-4


def test_make_optimizer_variants():
    c = small_config()
    c.train.amsgrad = True
    c.train.grad_clip_norm = 1.0
    opt = ts.make_optimizer(c.train)
    params = {"a": jnp.ones(3)}
    updates, _ = opt.update({"a": jnp.full(3, 100.0)}, opt.init(params), params)
    assert np.all(np.isfinite(np.asarray(updates["a"])))
    c.train.optimizer = "sgdd"
    with pytest.raises(ValueError, match="sgdd"):
        ts.make_optimizer(c.train)
