"""StopWatch: a signal asks the loop to stop; several processes agree on the iteration to stop at.

The whole path (signal -> checkpoint -> resume) is in test_train.py; this file checks the handler
plumbing in one process and JAX's preemption sync with two processes on loopback (each runs this
file as a worker: `python test_preemption.py PROCESS_ID PORT`).
"""
import os
import signal
import socket
import subprocess
import sys

import pytest

from idmvae_jax.training import preemption

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGUSR1"])
def test_one_process_signal_sets_the_stop_and_handlers_are_restored(signame):
    signum = getattr(signal, signame)
    before = signal.getsignal(signum)
    with preemption.StopWatch(multi_process=False) as watch:
        assert not watch.should_stop(0)
        os.kill(os.getpid(), signum)  # delivered to the main thread before the next bytecode
        assert watch.should_stop(1) and watch.signame == signame
    assert signal.getsignal(signum) is before


def test_exit_status_says_which_signal_stopped_the_run():
    assert preemption.exit_status("SIGTERM") == 143 and preemption.exit_status("SIGUSR1") == 143
    assert preemption.exit_status("SIGINT") == 130


def test_preempted_message_names_the_step_and_the_fix():
    message = str(preemption.Preempted(12, "/runs/a", "SIGTERM"))
    assert "SIGTERM" in message and "step 12" in message and "/runs/a/checkpoints" in message
    assert "rerun the same command" in message


def worker(process_id: int, port: int) -> None:
    import time

    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process_id, initialization_timeout=60)
    watch = preemption.StopWatch()
    assert watch.multi_process
    with watch:
        for iteration in range(3000):
            if process_id == 1 and iteration == 5:
                os.kill(os.getpid(), signal.SIGTERM)  # only one process is told
            if watch.should_stop(iteration):
                print(f"STOP {iteration} {watch.signame}", flush=True)
                break
            time.sleep(0.01)
        else:
            print("NEVER", flush=True)
    jax.distributed.shutdown()


def test_two_processes_stop_at_the_same_iteration():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), str(p), str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for p in range(2)]
    try:
        logs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    stops = []
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
        lines = [line for line in log.splitlines() if line.startswith(("STOP", "NEVER"))]
        assert lines and lines[0].startswith("STOP"), log[-3000:]
        stops.append(lines[0])
    assert stops[0] == stops[1], stops  # the same iteration on both, though one process got the signal
    assert int(stops[0].split()[1]) >= 5


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]))
