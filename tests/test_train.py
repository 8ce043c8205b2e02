"""train_and_evaluate on the tiny PolyMNIST-Quadrant config: outputs, resume, the NaN guard."""
import json
import os
import shutil
import signal
import subprocess

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import gcs_emulator as gcs_emulator_lib
from idmvae_jax import build, data, storage

from idmvae_jax.training import checkpointing, loop, parallel, preemption, writers
from idmvae_jax.training import step as train_step_lib
from idmvae_jax.training.loss import loss_fn
from idmvae_jax.config_defaults import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data_dir, num_steps, sample_every=0):
    c = load_config("configs/polymnist_quadrant.py:tiny")
    c.data.cache_dir = str(data_dir)
    c.data.num_views = 2  # fewer views: shorter compilation, same code paths
    c.train.num_steps = num_steps
    c.train.log_every = 2
    c.train.checkpoint_every = 2
    c.train.keep_checkpoints = 2
    c.train.sample_every = sample_every
    c.train.num_sample_examples = 3
    return c


# One worker runs this file (`--dist loadgroup`), so the module's `runs` are trained once.
pytestmark = [pytest.mark.usefixtures("fast_compile_module"), pytest.mark.xdist_group("train")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, gcs_emulator):
    """Run A: 4 steps straight in a local workdir (with samples). Run B: 2 steps, then resumed to 4,
    in a bucket workdir (gs:// on the GCS emulator)."""
    data_dir = tmp_path_factory.getbasetemp().parent / "idmvae_data"  # shared by xdist workers
    a = tmp_path_factory.mktemp("run_a")
    b = f"gs://{gcs_emulator.bucket}/{tmp_path_factory.mktemp('run_b').name}"
    console, line = [], writers.Progress.line

    def recorded_line(self, step, scalars, steps_per_sec=None):
        console.append((step, line(self, step, scalars, steps_per_sec)))
        return console[-1][1]

    writers.Progress.line = recorded_line  # (a module fixture: no monkeypatch)
    try:
        state_a = loop.train_and_evaluate(tiny_config(data_dir, 4, sample_every=4), str(a))
    finally:
        writers.Progress.line = line
    loop.train_and_evaluate(tiny_config(data_dir, 2), b)
    state_b = loop.train_and_evaluate(tiny_config(data_dir, 4, sample_every=4), b)
    return dict(data_dir=data_dir, a=a, b=b, state_a=state_a, state_b=state_b, console_a=console)


def host(tree):
    return jax.tree.map(parallel.to_host, tree)


def test_bucket_run_resumed_is_bit_identical_to_a_local_uninterrupted_run(runs):
    pa, pb = host(runs["state_a"].params), host(runs["state_b"].params)
    jax.tree.map(np.testing.assert_array_equal, pa, pb)
    assert int(parallel.to_host(runs["state_b"].step)) == 4
    steps_b = [r["step"] for r in writers.read_metrics(runs["b"])]
    assert steps_b == [2, 4]  # appended across the restart
    np.testing.assert_allclose(writers.read_metrics(str(runs["a"]))[-1]["total"],
                               writers.read_metrics(runs["b"])[-1]["total"], rtol=0)
    # Everything a run writes is in the bucket.
    bucket_run = storage.path(runs["b"])
    assert sorted(p.name for p in bucket_run.iterdir()) == [
        "checkpoints", "config.json", "metrics.jsonl", "samples", "tensorboard"]
    assert json.loads((bucket_run / "config.json").read_text())["resolved_num_steps"] == 4
    assert sorted(checkpointing.Checkpointer(runs["b"]).all_steps()) == [2, 4]
    assert [p.name for p in (bucket_run / "tensorboard").iterdir()]
    assert sorted(p.name for p in (bucket_run / "samples").iterdir()) == [
        "step_00000004_cross_generations.png", "step_00000004_reconstructions.png",
        "step_00000004_unconditional.png"]
    assert not os.path.exists("gs:")  # nothing went to a local folder named after the URL


def test_run_outputs(runs):
    a = str(runs["a"])
    records = writers.read_metrics(a)
    assert [r["step"] for r in records] == [2, 4]
    for key in ("elbo", "recon", "kl", "cross_mi", "genaug", "diffusion", "total", "grad_norm",
                "examples_per_sec", "steps_per_sec"):
        assert key in records[-1], key
    config = json.load(open(os.path.join(a, "config.json")))
    assert config["train"]["num_steps"] == 4 and config["resolved_num_steps"] == 4
    saved_info = data.DatasetInfo.from_dict(config["dataset_info"])  # a restore needs no dataset
    assert saved_info == data.get_dataset_info(ml_collections.ConfigDict(config["data"]))
    assert os.listdir(os.path.join(a, "tensorboard"))
    assert sorted(checkpointing.Checkpointer(a).all_steps()) == [2, 4]  # keep-last-2
    samples = sorted(os.listdir(os.path.join(a, "samples")))
    assert samples == ["step_00000004_cross_generations.png", "step_00000004_reconstructions.png",
                       "step_00000004_unconditional.png"]


def test_console_lines_show_every_term_chance_and_metrics_jsonl_rate(runs):
    """One plain line per log step: the terms of metrics.jsonl, cross_mi against M log(2B - 1),
    and the steps/s that metrics.jsonl records for the same step."""
    from idmvae_jax import objective

    records = {r["step"]: r for r in writers.read_metrics(str(runs["a"]))}
    config = tiny_config(runs["data_dir"], 4)
    chance = objective.cross_view_infonce_chance(config.data.num_views, config.train.batch_size)
    assert [step for step, _ in runs["console_a"]] == [2, 4]
    for step, text in runs["console_a"]:
        record = records[step]
        assert "\r" not in text and "\x1b" not in text and "\n" not in text
        for key in ("total", "elbo", "recon", "kl", "cross_mi", "genaug", "grad_norm"):
            assert f"{key}={writers.format_value(record[key])}" in text, key
        assert "diffusion=" not in text  # weight 0 in this config
        assert f"cross_mi={writers.format_value(record['cross_mi'])} (chance {chance:.4g})" in text
        assert f"| {writers.format_value(record['steps_per_sec'])} steps/s |" in text


def test_nan_stops_cleanly_with_last_good_checkpoint_intact(runs, tmp_path):
    workdir = tmp_path / "nan_run"
    shutil.copytree(runs["a"], workdir)  # holds checkpoints 2 and 4

    def nan_cross_mi(params, batch, key, cfg, *, axis_name=None):
        total, aux = loss_fn(params, batch, key, cfg, axis_name=axis_name)
        aux = dict(aux, cross_mi=aux["cross_mi"] + jnp.nan)
        return total + aux["cross_mi"], aux

    with pytest.raises(loop.NonFiniteLossError, match=r"step 4: term\(s\) cross_mi") as info:
        loop.train_and_evaluate(tiny_config(runs["data_dir"], 8), str(workdir), loss_fn=nan_cross_mi)
    assert info.value.step == 4 and info.value.last_checkpoint == 4
    ckpt = checkpointing.Checkpointer(str(workdir))
    assert ckpt.latest_step() == 4  # nothing written after the bad step
    ckpt.close()
    # the last good checkpoint still holds the uninterrupted run's parameters
    state_a, config = runs["state_a"], tiny_config(runs["data_dir"], 8)
    cfg = build.build_idmvae_config(config, data.get_dataset_info(config.data))
    restored, step = checkpointing.restore_params(str(workdir), cfg, config.train, config.seed, parallel.make_mesh(1))
    assert step == 4
    jax.tree.map(np.testing.assert_array_equal, host(restored), host(state_a.params))


def test_sigterm_checkpoints_at_the_step_boundary_and_the_same_command_resumes(runs, tmp_path, monkeypatch):
    workdir = str(tmp_path / "stopped")
    config = tiny_config(runs["data_dir"], 4)
    config.train.log_every = 1  # a report after step 1, off the checkpoint schedule (every 2)
    report, handler_before = writers.Progress.report, signal.getsignal(signal.SIGTERM)

    def report_then_signal(self, step, scalars, *args, **kwargs):
        report(self, step, scalars, *args, **kwargs)
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # what SLURM sends at the time limit

    monkeypatch.setattr(writers.Progress, "report", report_then_signal)
    with pytest.raises(preemption.Preempted, match="stopped by SIGTERM after step 1") as info:
        loop.train_and_evaluate(config, workdir)
    assert info.value.step == 1
    assert signal.getsignal(signal.SIGTERM) is handler_before  # ours is gone again
    ckpt = checkpointing.Checkpointer(workdir)
    assert ckpt.all_steps() == [1]  # saved at the stop, though off schedule
    ckpt.close()
    monkeypatch.undo()
    state = loop.train_and_evaluate(config, workdir)  # the same command
    assert int(parallel.to_host(state.step)) == 4
    jax.tree.map(np.testing.assert_array_equal, host(state.params), host(runs["state_a"].params))




def test_resume_with_another_architecture_names_the_keys_and_touches_nothing(runs, tmp_path):
    from idmvae_jax.training import config_check

    workdir = tmp_path / "changed"
    shutil.copytree(runs["a"], workdir)
    before = {p: open(os.path.join(workdir, p), "rb").read() for p in ("metrics.jsonl", "config.json")}
    config = tiny_config(runs["data_dir"], 8)
    config.model.z_dim = 8  # the run was trained with tiny's z_dim
    config.train.learning_rate = 1e-3
    with pytest.raises(config_check.ConfigMismatchError) as info:
        loop.train_and_evaluate(config, str(workdir))
    message = str(info.value)
    assert "model.z_dim: 4 -> 8" in message and "train.learning_rate: 0.0005 -> 0.001" in message
    assert "use a new --workdir" in message
    assert "--config.train.resume_allow_changes=model.z_dim,train.learning_rate" in message
    assert "num_steps" not in message  # training longer is a resume, not a change
    for name, content in before.items():
        assert open(os.path.join(workdir, name), "rb").read() == content
    assert sorted(checkpointing.Checkpointer(str(workdir)).all_steps()) == [2, 4]
    # A listed key may differ; the others are still checked.
    saved = json.load(open(os.path.join(workdir, "config.json")))
    assert config_check.differences(saved, config.to_dict(), ("model.z_dim",)) == {
        "train.learning_rate": (0.0005, 0.001)}
    # A field the saved config lacks (added to the library later) matches at its default only.
    del saved["data"]["digit_size"]
    same = tiny_config(runs["data_dir"], 8)
    assert config_check.differences(saved, same.to_dict()) == {}
    same.data.digit_size = 24
    assert config_check.differences(saved, same.to_dict()) == {"data.digit_size": ("(absent)", 24)}


def test_two_processes_on_a_bucket_match_one_process(runs, gcs_emulator, tmp_path):
    """The `tiny` run through the CLI on 2 processes x 1 CPU device (launch/multiprocess_local.sh),
    its workdir in a bucket: stopped after 2 steps and resumed to 4, both processes restoring from
    the bucket. It ends where run A (1 process x 8 devices, local, uninterrupted) ends. (One device
    per process keeps the two compilations short; 2 x 4 devices: tests/test_multihost.py.)"""
    workdir = f"gs://{gcs_emulator.bucket}/{tmp_path.name}/two_processes"
    env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1", PORT=str(gcs_emulator_lib.free_port()),
               JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".jax_cache"),  # the resume reuses the step
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
    env.pop("XLA_FLAGS", None)  # the launcher sets the devices per process
    config = tiny_config(runs["data_dir"], 4)
    args = [f"--config.data.{k}={config.data[k]}" for k in ("num_views", "cache_dir")] + [
        f"--config.train.{k}={config.train[k]}" for k in ("log_every", "checkpoint_every", "keep_checkpoints",
                                                          "sample_every")]
    for steps in (2, 4):  # the second run resumes: both processes restore from the bucket
        out = subprocess.run(["launch/multiprocess_local.sh", "2", "1", "configs/polymnist_quadrant.py:tiny",
                              workdir, f"--config.train.num_steps={steps}", "--config.train.tensorboard=False",
                              *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "[process 1]" in out.stdout
    assert [r["step"] for r in writers.read_metrics(workdir)] == [2, 4]
    # every loss term and the gradient norm at both log steps: a gradient-scale bug (a psum where
    # a pmean belongs) moves grad_norm and Adam's moments though Adam's first steps barely move
    # the parameters
    want_rows = {r["step"]: r for r in writers.read_metrics(str(runs["a"]))}
    for row in writers.read_metrics(workdir):
        for key in ("total", "elbo", "recon", "kl", "cross_mi", "genaug", "grad_norm"):
            np.testing.assert_allclose(row[key], want_rows[row["step"]][key], rtol=1e-4, err_msg=(row["step"], key))
    cfg = build.build_idmvae_config(config, data.get_dataset_info(config.data))
    mesh = parallel.make_mesh(8)
    ckpt = checkpointing.Checkpointer(workdir, async_save=False)
    try:
        init_fn = train_step_lib.make_init_fn(cfg, train_step_lib.make_optimizer(config.train), config.seed)
        state, _ = ckpt.restore(parallel.abstract_state(init_fn, mesh))
    finally:
        ckpt.close()
    assert int(parallel.to_host(state.step)) == 4
    for got, want in zip(jax.tree.leaves(host(state.params)), jax.tree.leaves(host(runs["state_a"].params))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Adam's moments, each leaf to 0.1 % of its largest entry (8 devices and 2 reduce the gradient
    # in different orders; a psum bug doubles the first moment and quadruples the second)
    for got, want in zip(jax.tree.leaves(host(state.opt_state)), jax.tree.leaves(host(runs["state_a"].opt_state))):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        assert np.max(np.abs(got - want), initial=0.0) <= 1e-3 * np.max(np.abs(want), initial=0.0), got.shape


def test_sample_grids_are_labelled_figures(runs):
    """Run A's sample PNGs are the labelled figures of `data.figures`: 32 px views drawn at 64 px,
    row labels on the left, block labels and a title on top."""
    k, m = 3, 2  # tiny_config: 3 examples of 2 views of 32 px
    # blocks of columns: reconstructions [input, reconstruction]; cross [input, to view 0, to view 1]
    columns = {"reconstructions": 2 * k, "cross_generations": 3 * k, "unconditional": k}
    for name, count in columns.items():
        with Image.open(os.path.join(runs["a"], "samples", f"step_00000004_{name}.png")) as image:
            pixels = np.asarray(image.convert("RGB"))
        height, width, _ = pixels.shape
        unlabelled = (m * (32 + 2) + 2, count * (32 + 2) + 2)  # an unlabelled tile of the same cells
        assert height > 2 * unlabelled[0] and width > 2 * unlabelled[1], (name, pixels.shape)
        assert width >= count * 64 + 40 and height >= m * 64 + 20  # 64 px cells, labels
        assert pixels[height // 2:, :40].min() < 100, name  # a row label (left of the cells)
        assert pixels[:22].min() < 100, name  # the title
