"""The cluster launchers build the right command: fake `gcloud` / `srun` on PATH print what they get."""
import os
import subprocess

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
