"""One run per workdir: a live lock refuses, a stale one is taken over, on disk and in a bucket."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from idmvae_jax.training import workdir_lock
from idmvae_jax.training.workdir_lock import WorkdirLock, WorkdirLockedError


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write(path, **record):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(run_id="other", started=time.time(), heartbeat=time.time(), **record)))


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_a_second_run_on_a_live_workdir_refuses_naming_the_holder(where, tmp_path, request):
    workdir = tmp_path if where == "local" else f"gs://{request.getfixturevalue('gcs_emulator').bucket}/{tmp_path.name}"
    with WorkdirLock(workdir) as first:
        with pytest.raises(WorkdirLockedError) as info:
            WorkdirLock(workdir).acquire()
        message = str(info.value)
        assert f"host {socket.gethostname()}, PID {os.getpid()}" in message
        assert "use another --workdir" in message and "lock.json" in message
        assert first.path.exists()
    assert not first.path.exists()  # released at the end
    WorkdirLock(workdir).acquire().release()  # and free again


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path):
    lock_path = tmp_path / workdir_lock.LOCK_FILE
    _write(lock_path, host=socket.gethostname(), pid=_dead_pid())
    with WorkdirLock(tmp_path) as lock:
        assert json.loads(lock_path.read_text())["run_id"] == lock.record["run_id"]


def test_another_hosts_lock_is_live_until_its_heartbeat_is_stale(tmp_path):
    record = dict(host="another-host", pid=1, heartbeat=time.time())
    assert workdir_lock.holder_is_live(record)
    assert not workdir_lock.holder_is_live(record, now=time.time() + workdir_lock.STALE_AFTER_S + 1)
    _write(tmp_path / workdir_lock.LOCK_FILE, host="another-host", pid=1)
    with pytest.raises(WorkdirLockedError, match="host another-host, PID 1"):
        WorkdirLock(tmp_path).acquire()
    with WorkdirLock(tmp_path, stale_after_s=0.0):  # its heartbeat is already too old
        pass


def test_a_heartbeat_refreshes_the_lock(tmp_path):
    with WorkdirLock(tmp_path) as lock:
        before = json.loads(lock.path.read_text())["heartbeat"]
        time.sleep(0.01)
        lock.heartbeat()
        assert json.loads(lock.path.read_text())["heartbeat"] > before


def test_training_on_a_locked_workdir_stops_before_touching_it(tmp_path):
    from idmvae_jax.config_defaults import load_config
    from idmvae_jax.training import loop

    _write(tmp_path / workdir_lock.LOCK_FILE, host=socket.gethostname(), pid=os.getppid())  # alive
    before = sorted(os.listdir(tmp_path))
    t0 = time.monotonic()
    with pytest.raises(WorkdirLockedError, match=f"PID {os.getppid()}"):
        loop.train_and_evaluate(load_config("configs/polymnist_quadrant.py:tiny"), str(tmp_path))
    assert time.monotonic() - t0 < 10  # before the data or the model
    assert sorted(os.listdir(tmp_path)) == before
