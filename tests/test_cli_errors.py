"""Expected errors reach the user as one line naming the problem and the fix, exit status 2, no
traceback; IDMVAE_TRACEBACK=1 shows the traceback for a bug report.

Each case is a fresh `python -m idmvae_jax.main` (the real flag parsing and error path); they run
side by side, since each spends its time importing and failing before any data or compilation.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "--config=configs/polymnist_quadrant.py:tiny"


def _run_all(cases, env):
    procs = {name: subprocess.Popen([sys.executable, "-m", "idmvae_jax.main", *args], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in cases.items()}
    return {name: (p.wait(timeout=180), p.stdout.read(), p.stderr.read()) for name, p in procs.items()}


def test_expected_errors_are_one_line_with_the_fix(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env.pop("IDMVAE_TRACEBACK", None)
    cases = {
        "batch": ([TINY, f"--workdir={tmp_path / 'batch'}", "--config.train.batch_size=12"],
                  "train.batch_size=12 must be divisible by the 8 devices and 1 processes: use a multiple of 8"),
        "data": (["--config=configs/npz.py:tiny", f"--workdir={tmp_path / 'data'}",
                  f"--config.data.path={tmp_path / 'no_such_folder'}"],
                 f"data.path={tmp_path / 'no_such_folder'} is not a folder"),
        "workdir": ([TINY, f"--workdir={a_file}/run"], f"workdir {a_file}/run cannot be written"),
        "misspelt": ([TINY, f"--workdir={tmp_path}", "--config.train.learnin_rate=0.1"],
                     "unknown config field 'learnin_rate' Did you mean \"learning_rate\""),
        "config_file": (["--config=configs/no_such_config.py", f"--workdir={tmp_path}"],
                        "cannot load the config file ([Errno 2] No such file or directory: "
                        "'configs/no_such_config.py'); pass --config=configs/NAME.py"),
    }
    results = _run_all({name: args for name, (args, _) in cases.items()}, env)
    for name, (_, expected) in cases.items():
        code, _, err = results[name]
        assert code == 2, (name, err[-2000:])
        errors = [line for line in err.splitlines() if line.startswith("ERROR")]
        assert len(errors) == 1 and expected in errors[0], (name, err[-2000:])
        assert "Traceback" not in err, (name, err[-2000:])
    assert not os.path.exists(tmp_path / "data" / "checkpoints")


def test_the_traceback_is_one_variable_away(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", IDMVAE_TRACEBACK="1")
    code, _, err = _run_all({"x": [TINY, f"--workdir={tmp_path}", "--config.model.image.channels=abc"]}, env)["x"]
    assert code != 0 and "Traceback" in err and "model.image.channels takes a tuple of int" in err
