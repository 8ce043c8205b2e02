"""Chaos: a `tiny` run killed 10 times at random points (kill -9, Ctrl-C, SIGTERM) across start-up,
training, checkpoint saves and resumes ends bit-identical to an uninterrupted run, with one
metrics.jsonl row per logged step in increasing order.

Slow set (each resume starts a process: about 3 minutes): `python -m pytest -m slow tests/test_chaos.py`.
"""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from idmvae_jax import build, data
from idmvae_jax.config_defaults import load_config
from idmvae_jax.training import checkpointing, parallel, writers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, KILLS = 48, 10
SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)


def _command(workdir, data_dir):
    return [sys.executable, "-m", "idmvae_jax.main", "--config=configs/polymnist_quadrant.py:tiny",
            f"--workdir={workdir}", f"--config.data.cache_dir={data_dir}", "--config.data.num_views=2",
            f"--config.train.num_steps={STEPS}", "--config.train.log_every=1", "--config.train.checkpoint_every=2",
            "--config.train.sample_every=0", "--config.train.tensorboard=False"]


def _latest_checkpoint(workdir) -> int:
    folder = workdir / "checkpoints"
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
    return max(steps, default=0)


def _logged(workdir, since: int, launched: float) -> int:
    """The last step in metrics.jsonl once the run launched at `launched` has written it (each log
    step rewrites the file), else `since`."""
    path = workdir / "metrics.jsonl"
    if not path.exists() or path.stat().st_mtime < launched:
        return since
    return max([since] + [r["step"] for r in writers.read_metrics(str(workdir))])


def _params(workdir, data_dir):
    config = load_config("configs/polymnist_quadrant.py:tiny")
    config.data.cache_dir, config.data.num_views = str(data_dir), 2
    cfg = build.build_idmvae_config(config, data.get_dataset_info(config.data))
    params, step = checkpointing.restore_params(str(workdir), cfg, config.train, config.seed, parallel.make_mesh(1))
    return jax.tree.leaves(jax.tree.map(parallel.to_host, params)), step


@pytest.mark.slow
def test_random_kills_end_bit_identical_with_monotone_metrics(tmp_path):
    data_dir = tmp_path.parent.parent / "idmvae_data"
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
               XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".jax_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
    subprocess.run(_command(tmp_path / "reference", data_dir), cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    startup = 8.0  # seconds: kills in start-up fall in [0.2, startup)

    rng = np.random.default_rng(0)
    chaos, log = tmp_path / "chaos", []
    for _ in range(KILLS):
        start_step, launched = _latest_checkpoint(chaos), time.time()
        proc = subprocess.Popen(_command(chaos, data_dir), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        signum = SIGNALS[rng.integers(len(SIGNALS))]
        if rng.random() < 1 / 3:  # during start-up, restore or compilation
            where = f"after {rng.uniform(0.2, startup):.1f} s"
            time.sleep(float(where.split()[1]))
        else:  # during training and checkpoint saves: a moment after the k-th new logged step
            k = int(rng.integers(1, 4))
            where = f"after step {start_step + k}"
            while _logged(chaos, start_step, launched) < start_step + k:
                assert proc.poll() is None, ("the run ended before its signal", log)
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        assert proc.poll() is None, ("the run ended before its signal", log)
        proc.send_signal(signum)
        code = proc.wait(timeout=300)
        log.append((where, signal.Signals(signum).name, code))
        assert code in (-9, 130, 143, -2, -15), log  # killed, or stopped cleanly after a checkpoint
    subprocess.run(_command(chaos, data_dir), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    want, step = _params(tmp_path / "reference", data_dir)
    got, chaos_step = _params(chaos, data_dir)
    assert step == chaos_step == STEPS
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b, err_msg=str(log))
    steps = [r["step"] for r in writers.read_metrics(str(chaos))]
    assert steps == list(range(1, STEPS + 1)), (steps, log)
    print("signals (where, signal, exit status):", log)
