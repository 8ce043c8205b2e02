"""Mesh, shardings and the lax.scan multi-step form of the train step."""
import os
import sys

import jax
import numpy as np
import pytest

from idmvae_jax.training import parallel
from idmvae_jax.training import step as ts

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_step import random_batches, small_setup  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compile_module")


def test_mesh_is_one_auto_data_axis():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == 8
    assert mesh.axis_types == (jax.sharding.AxisType.Auto,)
    assert parallel.make_mesh(2).devices.size == 2
    with pytest.raises(ValueError, match="num_devices"):
        parallel.make_mesh(16)


def test_batch_size_checks():
    with pytest.raises(ValueError, match="divisible"):
        parallel.check_batch_size(12, parallel.make_mesh())
    parallel.check_batch_size(16, parallel.make_mesh())


def test_put_batch_shards_the_batch_axis():
    _, cfg, opt = small_setup()
    mesh = parallel.make_mesh()
    batch = random_batches(1)[0]
    p_jit = parallel.make_parallel_step(cfg, opt, mesh, "jit")
    x = p_jit.put_batch(batch)["x"][0]
    assert x.shape == (16, 6) and x.sharding.spec == jax.sharding.PartitionSpec("data")
    p_pmap = parallel.make_parallel_step(cfg, opt, mesh, "pmap")
    assert p_pmap.put_batch(batch)["x"][0].shape == (8, 2, 6)
    p_scan = parallel.make_parallel_step(cfg, opt, mesh, "jit", steps_per_dispatch=2)
    assert p_scan.put_batch(random_batches(2))["x"][0].shape == (2, 16, 6)
    with pytest.raises(ValueError, match="mode"):
        parallel.make_parallel_step(cfg, opt, mesh, "pjit")
    with pytest.raises(ValueError, match="parallel.partitioner='gspmd'; choose one of"):
        parallel.make_parallel_step(cfg, opt, mesh, "jit", partitioner="gspmd")


@pytest.mark.parametrize("num_devices", [1, pytest.param(8, marks=pytest.mark.slow)])
def test_scan_of_two_steps_matches_two_dispatches(num_devices):
    """The scan, not the devices, is under test: CI runs it on one device, the slow set on 8."""
    _, cfg, opt = small_setup()
    mesh = parallel.make_mesh(num_devices)
    batches = random_batches(2)
    finals = []
    for k in (1, 2):
        state, _ = parallel.init_state_on_mesh(ts.make_init_fn(cfg, opt, 0), mesh)
        pstep = parallel.make_parallel_step(cfg, opt, mesh, "jit", steps_per_dispatch=k)
        device_state = pstep.put_state(state)
        groups = [[b] for b in batches] if k == 1 else [batches]
        for g in groups:
            device_state, metrics = pstep.step(device_state, pstep.put_batch(g[0] if k == 1 else g))
        finals.append((jax.tree.map(parallel.to_host, device_state), pstep.fetch(metrics)))
    (s1, m1), (s2, m2) = finals
    assert int(s2.step) == 2
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s1.params, s2.params)
    np.testing.assert_allclose(m1["total"], m2["total"], rtol=1e-5)
