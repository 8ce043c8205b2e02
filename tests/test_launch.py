"""The cluster launchers build the right command: fake `gcloud` / `srun` on PATH print what they get."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Prints each argument of the training command on its own line, as the remote/compute shell sees it.
FAKE_SRUN = '#!/usr/bin/env bash\necho "cwd=$PWD"; printf "arg=%s\\n" "$@"\n'
FAKE_GCLOUD = r'''#!/usr/bin/env bash
for a in "$@"; do case "$a" in --command=*) cmd="${a#--command=}";; esac; done
python() { printf "arg=%s\n" "$@"; }
cd() { :; }
eval "$cmd"
'''


def _fake_bin(tmp_path, name, text):
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    (d / name).chmod(0o755)
    return str(d)


def _args(out: str) -> list:
    return [line[len("arg="):] for line in out.splitlines() if line.startswith("arg=")]


def test_tpu_pod_keeps_each_override_one_argument(tmp_path):
    env = dict(os.environ, PATH=_fake_bin(tmp_path, "gcloud", FAKE_GCLOUD) + os.pathsep + os.environ["PATH"])
    out = subprocess.run(
        ["bash", f"{ROOT}/launch/tpu_pod.sh", "my-tpu", "zone-a", "configs/polymnist_quadrant.py:paper",
         "/mnt/shared/a run", "--config.model.image.channels=(32, 64)", "--config.train.optimizer='adamw'"],
        env=env, capture_output=True, text=True, check=True).stdout
    assert _args(out) == ["-m", "idmvae_jax.main", "--distributed",
                          "--config=configs/polymnist_quadrant.py:paper", "--workdir=/mnt/shared/a run",
                          "--config.model.image.channels=(32, 64)", "--config.train.optimizer='adamw'"]


def test_slurm_default_workdir_depends_on_the_config_only(tmp_path):
    env = dict(os.environ, PATH=_fake_bin(tmp_path, "srun", FAKE_SRUN) + os.pathsep + os.environ["PATH"],
               SLURM_SUBMIT_DIR=str(tmp_path), SLURM_JOB_ID="123")
    runs = []
    for job_id in ("123", "456"):  # a resubmitted job gets a new id, and must find the same workdir
        env["SLURM_JOB_ID"] = job_id
        out = subprocess.run(["bash", f"{ROOT}/launch/slurm_gpu.sh", "configs/polymnist_quadrant.py:paper,diffusion",
                              "", "--config.train.num_steps=10"],
                             env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        runs.append(out)
    assert runs[0] == runs[1]
    assert f"cwd={tmp_path}" in runs[0]
    assert _args(runs[0])[-2:] == [f"--workdir={tmp_path}/runs/polymnist_quadrant_paper_diffusion",
                                   "--config.train.num_steps=10"]


# A long training step: records the SIGTERM it gets from the launcher and exits as main.py does.
FAKE_SRUN_TRAINING = '''#!/usr/bin/env bash
trap 'echo "srun got TERM" >> "$LOG"; exit 143' TERM
echo "srun started" >> "$LOG"
while true; do sleep 0.1; done
'''
FAKE_SCONTROL = '#!/usr/bin/env bash\necho "scontrol $*" >> "$LOG"\n'


def test_slurm_time_limit_signal_checkpoints_then_requeues(tmp_path):
    import signal
    import time

    log = tmp_path / "log"
    _fake_bin(tmp_path, "srun", FAKE_SRUN_TRAINING)
    bin_dir = _fake_bin(tmp_path, "scontrol", FAKE_SCONTROL)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"], LOG=str(log),
               SLURM_SUBMIT_DIR=str(tmp_path), SLURM_JOB_ID="123")
    proc = subprocess.Popen(["bash", f"{ROOT}/launch/slurm_gpu.sh", "configs/polymnist_quadrant.py:paper"],
                            env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if log.exists() and "srun started" in log.read_text():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)  # what `#SBATCH --signal=B:USR1@300` sends
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert log.read_text().splitlines() == ["srun started", "srun got TERM", "scontrol requeue 123"]
    assert "requeueing job 123" in err


# Records each process's arguments and device flags; `python -c` (the free-port helper) runs for real.
FAKE_PYTHON = '''#!/usr/bin/env bash
if [ "$1" = "-c" ]; then exec "$REAL_PYTHON" "$@"; fi
for a in "$@"; do case "$a" in --process_id=*) id="${a#--process_id=}";; esac; done
{ echo "xla=$XLA_FLAGS"; printf "arg=%s\\n" "$@"; } > "$LOG/process_$id"
'''


def test_multiprocess_local_starts_one_process_per_id_on_one_port(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    env = dict(os.environ, PATH=_fake_bin(tmp_path, "python", FAKE_PYTHON) + os.pathsep + os.environ["PATH"],
               REAL_PYTHON=sys.executable, LOG=str(log))
    subprocess.run(["bash", f"{ROOT}/launch/multiprocess_local.sh", "2", "4", "configs/polymnist_quadrant.py:tiny",
                    "/tmp/pmq mp", "--config.train.num_steps=2"], env=env, capture_output=True, text=True, check=True)
    runs = {p.name: p.read_text() for p in log.iterdir()}
    assert sorted(runs) == ["process_0", "process_1"]
    ports = set()
    for i in range(2):
        text = runs[f"process_{i}"]
        assert "xla=--xla_force_host_platform_device_count=4" in text
        args = _args(text)
        address = next(a for a in args if a.startswith("--coordinator_address=127.0.0.1:"))
        ports.add(address)
        assert args == ["-m", "idmvae_jax.main", "--config=configs/polymnist_quadrant.py:tiny", "--workdir=/tmp/pmq mp",
                        address, "--num_processes=2", f"--process_id={i}", "--config.train.num_steps=2"]
    assert len(ports) == 1  # both processes meet at one coordinator


# Records each training call and the latest step trained; evaluate says which step it evaluates
# and writes metrics whose z->digit is the step count / 10,000; training fails at the step count
# in $FAIL_AT; results (the closing table) runs for real.
FAKE_PYTHON_CURVE = r'''#!/usr/bin/env bash
if [ "$2" = "idmvae_jax.tools.results" ] || [ "$1" = "-c" ]; then exec "$REAL_PYTHON" "$@"; fi
for a in "$@"; do case "$a" in --workdir=*) wd="${a#--workdir=}";; --config.train.num_steps=*) n="${a#*=}";; esac; done
mkdir -p "$wd/eval"
if [ "$2" = "idmvae_jax.main" ]; then
  printf "%s\n" "$*" >> "$LOG"
  if [ "$n" = "${FAIL_AT:-}" ]; then echo "loss is NaN at step $n"; exit 1; fi
  if [ "$n" -gt "$(cat "$wd/latest" 2>/dev/null || echo 0)" ]; then echo "$n" > "$wd/latest"; fi
else
  echo "evaluating $wd at step $(cat "$wd/latest") on 1 device(s), batch 64"
  echo "{\"probe/z_shared\": $n.0e-4, \"coherence/self\": 0.5}" > "$wd/eval/metrics.json"
fi
'''


def test_train_curve_trains_in_pieces_evaluates_each_and_resumes(tmp_path):
    log = tmp_path / "calls"
    env = dict(os.environ, PATH=_fake_bin(tmp_path, "python", FAKE_PYTHON_CURVE) + os.pathsep + os.environ["PATH"],
               REAL_PYTHON=sys.executable, LOG=str(log))
    wd = tmp_path / "a run"
    cmd = ["bash", f"{ROOT}/launch/train_curve.sh", "configs/polymnist_quadrant.py:tiny", str(wd), "500", "1500",
           "--", "--config.seed=3"]
    out = subprocess.run(cmd, env=dict(env, FAIL_AT="1500"), capture_output=True, text=True)
    assert out.returncode == 1 and "loss is NaN at step 1500" in out.stderr  # the log's end is shown
    assert (wd / "metrics_500.json").exists() and not (wd / "metrics_1500.json").exists()

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "500 steps: evaluated, skipped" in out  # the finished piece is not trained again
    calls = log.read_text().splitlines()
    assert calls == [f"-m idmvae_jax.main --config=configs/polymnist_quadrant.py:tiny --workdir={wd} "
                     f"--config.seed=3 --config.train.num_steps={n}" for n in (500, 1500, 1500)]
    rows = [line for line in out.splitlines() if line.startswith("| 1,500 |") or line.startswith("| 500 |")]
    assert rows[0].startswith("| 500 | 0.050 |") and rows[1].startswith("| 1,500 | 0.150 |")

    behind = subprocess.run(cmd[:4] + ["1000"], env=env, capture_output=True, text=True)
    assert behind.returncode == 1 and "not an evaluation at step 1000 (at step 1500)" in behind.stderr
    assert not (wd / "metrics_1000.json").exists()

    bad = subprocess.run(cmd[:4] + ["1e3"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "'1e3' is not a positive integer" in bad.stderr
