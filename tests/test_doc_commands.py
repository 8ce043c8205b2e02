"""The shell commands of README.md and docs/*.md run as written, on the `tiny` config.

Every command in a ```bash block is either run here (with `:mini` → `:tiny`, its output paths
moved under a temporary folder and the embedded data's tiny settings) or matched by NOT_RUN, which
says why it cannot run in a test. A synopsis line (placeholders such as CONFIG or [--config.X=Y])
is documentation of the syntax, not a command. So a renamed flag, module or launcher in a doc
fails here, and a new command in a doc has to be run or explained.
"""
import glob
import os
import re
import subprocess
import sys

import jax
from test_evaluate import REQUIRED, check_metrics

from idmvae_jax import storage
from idmvae_jax.flags import KNOWN_NOISE


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))

# (command prefix, why a test does not run it)
NOT_RUN = (
    ("pip install", "installs packages; .ci/run performs the README's install on every CI run"),
    ("python -m pytest", "the test suite itself (.ci/run)"),
    ("sbatch", "needs a Slurm cluster; tests/test_launch.py runs slurm_gpu.sh with fake srun/scontrol"),
    ("launch/tpu_pod.sh", "needs gcloud and a TPU pod; tests/test_launch.py checks its arguments"),
    ("tensorboard", "a server; the event files it reads are checked in tests/test_train.py"),
    ("launch/reproduce_mini.sh", "hours of training, and collect/render rewrite the committed results "
                                 "page; tests/test_results.py checks collect and render"),
    ("launch/reproduce_quick.sh", "six runs of the README's first command, and collect rewrites the "
                                  "committed results page; tests/test_results.py checks collect"),
    ("launch/train_curve.sh", "one piece is a training run plus an evaluation; tests/test_launch.py "
                              "checks the pieces it starts and its resuming with a fake python"),
    ("launch/multiprocess_local.sh", "two processes compiling at once hold both CI cores for a minute; "
                                     "tests/test_multihost.py runs jax.distributed on loopback and "
                                     "tests/test_launch.py checks the commands this launcher starts"),
    ("python -m idmvae_jax.convert_official", "needs the authors' model_<epoch>.rar; "
     "tests/test_official_checkpoint.py runs this CLI on files written like theirs, restores the result as "
     "the evaluation does and resumes it (the whole evaluation of it in the slow set)"),
    ("python -m idmvae_jax.evaluate --config=configs/polymnist_quadrant.py:paper,diffusion --workdir=workdirs/authors_99",
     "evaluates the converted checkpoint of the command before (paper size)"),
    ("python -m idmvae_jax.tools.equivalence", "needs the authors' code beside ours (docs/equivalence.md); "
     "tests/test_official_checkpoint.py checks its draw mapping"),
    ("python -m idmvae_jax.data.preview --config=configs/polymnist_quadrant.py:paper",
     "needs the MNIST files in /data/mnist; tests/test_data_builders.py builds from generated ones"),
)
_SYNOPSIS = re.compile(r"\[|\b(NAME|SIZE|DIR|WORKDIR|CONFIG|DEVICES|TPU_NAME|ZONE|RUN)\b|\bN\b")


def bash_commands(path: str) -> list:
    """The commands of the ```bash blocks of a Markdown file: continuations joined, `&&` split."""
    commands, in_block = [], False
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```bash" if not in_block else False
            continue
        if in_block and line.strip() and not line.lstrip().startswith("#"):
            commands += [" ".join(part.split()) for part in line.split("&&")]
    return commands


def _not_run_reason(command: str):
    for prefix, reason in NOT_RUN:
        if command.startswith(prefix):
            return reason
    return None


def runnable_commands() -> list:
    out = []
    for path in DOCS:
        for command in bash_commands(path):
            if not _SYNOPSIS.search(command) and _not_run_reason(command) is None:
                out.append((os.path.relpath(path, ROOT), command))
    return out


# Appended to keep the test inside the CI budget: the commands' flags, modules, configs and
# launchers are what is checked, not how long `tiny` trains (2 steps, no sample grids, 2 of its 5
# views: the same code paths at a third of the compile time) or how well its evaluation
# classifiers learn (2 steps each).
TRAIN_SHORT = " --config.train.num_steps=2 --config.train.sample_every=0 --config.data.num_views=2"
EVAL_SHORT = " --config.eval.classifier_steps=2 --config.data.num_views=2"


def adapt(command: str, tmp: str, bucket: str = "") -> str:
    """`:mini` and `:quick` → `:tiny`, workdirs/X and /tmp/X → TMP/X, previews of 4 tuples, and trainings and
    evaluations shortened (TRAIN_SHORT, EVAL_SHORT).

    With `bucket` (a gs:// URL on the GCS emulator), the workdirs of training, evaluation and
    launch/local.sh go there instead (workdirs/X → BUCKET/X): the README's job then runs end to
    end on a bucket workdir, as on a pod; every other test uses local workdirs."""
    command = command.replace(":mini", ":tiny").replace(":quick", ":tiny")
    if bucket and command.startswith(("python -m idmvae_jax.main", "python -m idmvae_jax.evaluate",
                                      "launch/local.sh")):
        command = re.sub(r"(?<![\w/])workdirs/([\w.]+)", lambda m: f"{bucket}/{m.group(1)}", command)
    command = re.sub(r"(?<![\w/])(workdirs|/tmp)/([\w.]+)", lambda m: os.path.join(tmp, m.group(2)), command)
    if command.startswith("python -m idmvae_jax.data.preview"):
        command += " --num_tuples=4"  # the tiny config's data: the cache the tiny trainings use
    elif command.startswith(("python -m idmvae_jax.main", "launch/")):
        command += TRAIN_SHORT
        if " --evaluate" in command:
            command += EVAL_SHORT.replace(" --config.data.num_views=2", "")
    elif command.startswith("python -m idmvae_jax.evaluate"):
        command += EVAL_SHORT
    return command


REPORT_SECTIONS = ("# Evaluation report", "## Learning curve: latent probes at every checkpoint",
                   "![probe_curve.png](probe_curve.png)", "## Classifiers (test accuracy)",
                   "## Latent linear probes", "## Coherence", "## Fréchet distances", "## Figures",
                   "![cross_generation_gaussian.png]", "![samples_gaussian.png]", "![latents.png]",
                   "## All metrics")


def check_report_sections(text: str, smoke_test: bool) -> None:
    """Every section of an evaluation report is there, in order (and the smoke-test note)."""
    positions = [text.find(section) for section in REPORT_SECTIONS]
    missing = [s for s, p in zip(REPORT_SECTIONS, positions) if p < 0]
    assert not missing and positions == sorted(positions), (missing, text[:3000])
    assert ("**Smoke test.**" in text) == smoke_test, text[:1000]


def test_every_doc_command_is_run_or_explained():
    commands = [c for path in DOCS for c in bash_commands(path)]
    assert any("idmvae_jax.main" in c for c in commands), "no training command found: parser broken?"
    runnable = {c for _, c in runnable_commands()}
    for command in commands:
        assert command in runnable or _SYNOPSIS.search(command) or _not_run_reason(command), command
    # The README's two set-up commands are those .ci/run and the first job use.
    readme = bash_commands(os.path.join(ROOT, "README.md"))
    test_command = next(i for i, c in enumerate(readme) if c.startswith("python -m pytest"))
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert " && ".join(readme[test_command - 1:test_command + 1]) in ci, ci


def test_runnable_doc_commands_run(tmp_path, gcs_emulator):
    # os.environ carries conftest's IDMVAE_DATA_DIR: the data folder shared with the other tests
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",  # compile-bound
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("XLA_FLAGS", None)  # the launchers set their own device counts
    if jax.config.jax_compilation_cache_dir:  # conftest's compilation cache, shared
        env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
    ran, evaluated, bucket = [], [], f"gs://{gcs_emulator.bucket}/{tmp_path.name}"
    for doc, command in runnable_commands():
        cmd = adapt(command, str(tmp_path), bucket)
        out = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{doc}: `{cmd}` failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        if cmd.startswith(("python -m idmvae_jax.main", "python -m idmvae_jax.evaluate")):  # a quiet screen
            noise = [n for n in KNOWN_NOISE + ("Downloading and preparing", "\x1b[") if n in out.stdout + out.stderr]
            assert not noise, (cmd, noise)
        if cmd.startswith("launch/local.sh"):  # the README's run again: resumed, already finished
            assert "nothing to do" in out.stderr + out.stdout, out.stderr[-3000:]
        if cmd.startswith("python -m idmvae_jax.evaluate") or " --evaluate" in cmd:
            # the README's first command (main --evaluate) and the evaluation CLI: the last line
            # printed is the report, which has every section
            report = out.stdout.strip().splitlines()[-1]
            workdir = re.search(r"--workdir=(\S+)", cmd).group(1)
            assert report == f"{workdir}/eval/report.md", (report, cmd)
            check_report_sections(storage.path(report).read_text(), smoke_test=True)
            # every metric of a Gaussian-prior run with shared and private labels, in its range
            check_metrics(f"{workdir}/eval/metrics.json",
                          [k for k in REQUIRED if not k.endswith("_diffusion")], num_classes=10)
            # launch/train_curve.sh reads the evaluated checkpoint's step from this log line
            assert re.search(r" at step 2 on \d+ device", out.stdout), out.stdout[-3000:]
            evaluated.append(workdir)
        ran.append(cmd)
    assert any("idmvae_jax.main" in c for c in ran)
    assert f"{bucket}/quick" in evaluated  # the README's first command, on tiny, in a bucket
