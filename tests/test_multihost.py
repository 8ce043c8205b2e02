"""2 processes x 4 CPU devices on loopback give the same training run as 1 process x 8 devices.

CI runs the `tiny` run itself on 2 processes, with a bucket workdir (test_train.py::
test_two_processes_on_a_bucket_match_one_process); this file's test (slow set): each process runs this file as a worker
(`python test_multihost.py OUT PID NPROC PORT`): it joins jax.distributed through a localhost
coordinator, feeds its process-local slice of each global batch, trains 2 jit steps of the small
all-vector model and writes the parameters to OUT.
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, STEPS = 16, 2


def worker(out, process_id, num_processes, port):
    import jax

    if num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=120)
    jax.config.update("jax_compilation_cache_dir", os.path.join(ROOT, ".jax_cache"))
    jax.config.update("jax_disable_most_optimizations", True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_train_step import random_batches, small_setup

    from idmvae_jax.training import parallel
    from idmvae_jax.training import step as ts

    assert jax.device_count() == 8 and jax.process_count() == num_processes
    _, cfg, opt = small_setup()
    mesh = parallel.make_mesh()
    state, _ = parallel.init_state_on_mesh(ts.make_init_fn(cfg, opt, 0), mesh)
    pstep = parallel.make_parallel_step(cfg, opt, mesh, "jit")
    device_state = pstep.put_state(state)
    local = BATCH // num_processes
    totals = []
    for b in random_batches(STEPS, BATCH):
        mine = jax.tree.map(lambda a: a[process_id * local:(process_id + 1) * local], b)  # data-layer slicing
        device_state, metrics = pstep.step(device_state, pstep.put_batch(mine))
        totals.append(pstep.fetch(metrics)["total"])
    params = jax.tree.map(parallel.to_host, pstep.get_state(device_state).params)
    leaves = {f"p{i}": x for i, x in enumerate(jax.tree.leaves(params))}
    np.savez(os.path.join(out, f"process_{process_id}_of_{num_processes}.npz"), totals=np.asarray(totals), **leaves)
    if num_processes > 1:
        jax.distributed.shutdown()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out, num_processes, devices_per_process):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",  # compile-bound
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), str(out), str(p), str(num_processes), str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p in range(num_processes)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=540)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]


@pytest.mark.slow  # CI: test_train.py::test_two_processes_on_a_bucket_match_one_process (the loop, image views)
def test_two_processes_match_one_process(tmp_path):
    _launch(tmp_path, 1, 8)
    _launch(tmp_path, 2, 4)
    ref = np.load(tmp_path / "process_0_of_1.npz")
    for pid in range(2):
        got = np.load(tmp_path / f"process_{pid}_of_2.npz")
        assert set(got.files) == set(ref.files)
        np.testing.assert_allclose(got["totals"], ref["totals"], rtol=1e-5)
        for name in ref.files:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
