"""The benchmark command: one JSON line with every key and sane values; jit, pmap and bf16 run."""
import dataclasses
import json
import math
import os
import subprocess
import sys

import jax
import pytest

from idmvae_jax import config_defaults
from idmvae_jax.benchmarking import inputs, memory, parts as parts_lib
from idmvae_jax.benchmarking.run import run_benchmark
from idmvae_jax.training import host_memory, xla_cost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "polymnist_quadrant.py")

TOP_KEYS = {
    "step_time_s", "examples_per_sec", "compile_s", "flops_per_step", "achieved_flops_per_sec",
    "peak_flops_per_sec", "model_flops_per_step", "model_flops_per_sec", "mfu", "peak_memory_bytes", "params", "devices", "batch_size", "mode",
    "precision", "remat", "versions",
}
VERSION_KEYS = {"jax", "jaxlib", "flax", "python", "backend", "device_kind"}


def load_config(arg):
    return config_defaults.load_config(f"{CONFIG}:{arg}")


def check_sane(r, *, devices, batch_size, mode, precision):
    assert TOP_KEYS <= set(r), TOP_KEYS - set(r)
    st = r["step_time_s"]
    assert set(st) == {"median", "min", "max"}
    assert 0 < st["min"] <= st["median"] <= st["max"] < 600
    assert r["examples_per_sec"] == pytest.approx(batch_size / st["median"])
    assert r["compile_s"] > 0
    assert r["flops_per_step"] > 1e6
    assert r["achieved_flops_per_sec"] == pytest.approx(r["flops_per_step"] / st["median"])
    assert r["peak_flops_per_sec"] > 1e8
    assert r["model_flops_per_sec"] == pytest.approx(r["model_flops_per_step"] / st["median"])
    assert r["mfu"] == pytest.approx(r["model_flops_per_sec"] / r["peak_flops_per_sec"])
    # on CPU the compiled program and the lowered one count the same convolutions
    assert r["model_flops_per_step"] == pytest.approx(r["flops_per_step"], rel=0.15)
    assert 0 < r["mfu"] < 1.5  # cost analysis is an estimate; a value far above 1 is a bug
    mem = r["peak_memory_bytes"]
    assert set(mem) == {"rss", "xla"}
    assert mem["rss"] > 50 * 2**20 and 0 < mem["xla"] < mem["rss"]
    if sys.platform.startswith("linux"):  # reset after compilation: below the process's peak
        assert 50 * 2**20 < r["steps_peak_rss_bytes"] <= mem["rss"]
    assert r["params"] > 1000
    assert (r["devices"], r["batch_size"], r["mode"], r["precision"]) == (devices, batch_size, mode, precision)
    assert r["remat"] is False
    assert VERSION_KEYS <= set(r["versions"]) and r["versions"]["backend"] == "cpu"
    assert r["loss_finite"] is True


def test_cli_prints_one_json_line():
    env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "idmvae_jax.benchmark", f"--config={CONFIG}:tiny", "--steps=5",
           "--warmup=1", "--devices=1", "--peak_matmul_n=512", "--op_profile=1",
           "--config.data.num_views=2"]  # 2 of tiny's 5 views: a third of the time, the same code paths
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    r = json.loads(lines[0])
    check_sane(r, devices=1, batch_size=16, mode="jit", precision="f32")
    assert r["peak_flops_source"].startswith("measured")
    assert r["steps"] == 5
    acct = r["op_account"]
    kinds = {row["group"]: row for row in acct["by_kind"]}
    assert {"conv", "fusion"} <= set(kinds) and kinds["conv"]["flops"] > 0
    # the account counts convolutions and dots only, which are most of cost analysis' FLOPs
    assert 0.7 * r["flops_per_device"] < acct["flops"] <= 1.001 * r["flops_per_device"]
    networks = {row["group"] for row in acct["by_network"]}
    assert {"TwoBranchEncoder/fwd", "TwoBranchEncoder/bwd", "ViewDecoder/fwd", "ViewDecoder/bwd"} <= networks
    assert 0 < acct["ops_s"] and sum(row["share"] for row in acct["groups"]) == pytest.approx(1.0)
    # --flops_only (benchmark.py calls model_flops_only): the same model FLOPs and parameter count
    # from abstract shapes, nothing run
    from idmvae_jax.benchmarking.run import model_flops_only

    config = load_config("tiny")
    config.data.num_views = 2
    only = model_flops_only(config)
    assert only["model_flops_per_step"] == pytest.approx(r["model_flops_per_step"], rel=1e-6)
    assert only["params"] == r["params"] and only["batch_size"] == 16


@pytest.mark.slow
def test_jit_and_pmap_on_8_devices(fast_compile):
    assert jax.device_count() == 8  # conftest
    results = {}
    for mode in ("jit", "pmap"):
        r = run_benchmark(load_config("tiny"), mode=mode, devices=8, steps=5, warmup=1, peak_flops=1e11)
        check_sane(r, devices=8, batch_size=16, mode=mode, precision="f32")
        results[mode] = r
    # flops are what the devices execute, summed over devices. pmap runs the per-device program
    # on B/8 examples, so its total is the 1-device step's; jit's SPMD partition must not replicate
    # the step's work (decodes folded sample-major once made each device run 68% of it).
    for mode in ("jit", "pmap"):
        r = results[mode]
        assert r["flops_per_step"] == pytest.approx(r["flops_per_device"] * 8)
    assert 0.7 * results["pmap"]["flops_per_step"] < results["jit"]["flops_per_step"] < 1.2 * results["pmap"]["flops_per_step"]
    assert results["jit"]["params"] == results["pmap"]["params"]


@pytest.mark.slow
def test_bf16_and_parts(fast_compile):
    r = run_benchmark(load_config("tiny,diffusion"), precision="bf16", devices=1, steps=5,
                      warmup=1, peak_flops=1e11, parts=True)
    check_sane(r, devices=1, batch_size=16, mode="jit", precision="bf16")
    parts = r["parts"]
    names = [p["name"] for p in parts["items"]]
    assert names == ["encoder_w[0]", "encoder_z[0]", "decoder[0]", "score_nets", "noise", "optimizer"]
    assert parts["sum_s"] == pytest.approx(sum(p["total_s"] for p in parts["items"]))
    assert parts["step_over_sum"] == pytest.approx(r["step_time_s"]["median"] / parts["sum_s"])
    for p in parts["items"]:
        assert p["time_s"]["median"] > 0 and p["flops"] > 0
    # the parts account for the step's FLOPs (the glue - KL, InfoNCE - is small)
    assert parts["flops_sum"] == pytest.approx(r["flops_per_step"], rel=0.2)


def _part_counts(config):
    from idmvae_jax.build import build_idmvae_config

    views = inputs.config_views(config)
    cfg = build_idmvae_config(config, views)
    batch = inputs.random_batch(views, int(config.train.batch_size))
    return {p["name"]: p["count"] for p in parts_lib.part_plan(cfg, batch)}, cfg


def test_part_counts_of_the_paper_step():
    """5 views x (w, z) posterior branches + 5 x (w, z) re-encodes, 25 + 10 decodes at batch B."""
    counts, _ = _part_counts(load_config("paper,diffusion"))
    assert counts == {"encoder_w[0]": 10, "encoder_z[0]": 10, "decoder[0]": 35, "score_nets": 1,
                      "noise": 1, "optimizer": 1}
    counts, _ = _part_counts(load_config("paper,mmvaeplus"))
    assert counts["decoder[0]"] == 25 and counts["encoder_w[0]"] == 5 and "score_nets" not in counts


def test_part_counts_come_from_the_loss():
    """The counts are read from a trace of loss_fn: K = 2 samples doubles the ELBO's M * K decodes
    per view (50 + 10), the views' vmap / remat settings change nothing, and the cached model's
    networks are the unwrapped ones afterwards."""
    from idmvae_jax.models.multimodal import make_model

    config = load_config("tiny")
    config.loss.num_samples = 2
    counts, cfg = _part_counts(config)
    assert counts["decoder[0]"] == 60 and counts["encoder_w[0]"] == counts["encoder_z[0]"] == 10
    model = make_model(dataclasses.replace(cfg.model, vmap_views=False, remat=False))
    encoders, decoders = model.encoders, model.decoders
    config.model.vmap_views, config.model.remat = "true", True
    assert _part_counts(config)[0] == counts
    assert model.encoders is encoders and model.decoders is decoders
    assert all(d.apply.__name__ == "apply" for d in decoders)


def test_views_come_from_the_config_alone():
    views = inputs.config_views(load_config("paper"))
    assert [(v.kind, v.shape, v.dtype) for v in views] == [("image", (64, 64, 3), "uint8")] * 5
    assert [v.shape for v in inputs.config_views(load_config("mini"))] == [(32, 32, 3)] * 5
    batch = inputs.random_batch(views, 4)
    assert [x.shape for x in batch["x"]] == [(4, 64, 64, 3)] * 5 and batch["x"][0].dtype.name == "uint8"
    config = load_config("tiny")
    described = inputs.config_views(config)
    from idmvae_jax import data  # the prepared dataset has the views the config describes

    assert tuple(data.get_dataset_info(config.data).views) == tuple(described)
    config.data.name = "npz"
    with pytest.raises(ValueError, match="config alone cannot describe"):
        inputs.config_views(config)


def test_cost_analysis_shapes():
    class Dict:
        def cost_analysis(self):
            return {"flops": 10.0}

    class ListOfDicts:
        def cost_analysis(self):
            return [{"flops": 4.0}, {"flops": 6.0}]

    class Missing:
        def cost_analysis(self):
            return None

    assert xla_cost.cost_flops(Dict()) == 10.0
    assert xla_cost.cost_flops(ListOfDicts()) == 10.0
    assert xla_cost.cost_flops(Missing()) is None
    stats = {"temp_size_in_bytes": 5, "argument_size_in_bytes": 3, "output_size_in_bytes": 2, "alias_size_in_bytes": 2}
    assert memory.xla_peak_bytes(stats) == 8
    assert not math.isnan(host_memory.peak_rss_bytes())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peak-RSS reset is Linux's")
def test_steps_rss_is_isolated_but_the_process_peak_keeps_what_came_before():
    import numpy as np

    big = np.ones(400 * 2**20 // 8)  # a 400 MiB peak before the measured function (like compilation)
    big[::4096] += 1.0
    del big
    out, process_peak, during = host_memory.run_with_peak_rss(lambda: np.zeros(1000).sum())
    assert out == 0.0
    assert process_peak >= 400 * 2**20  # the reset must not erase the earlier peak
    assert during is not None and during < process_peak - 300 * 2**20


def _current_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_release_free_memory_hands_a_fragmented_heap_back():
    # 300 MiB of small heap blocks, freed under a block allocated after them: free() alone cannot
    # shrink the heap past the live block, so the pages stay resident until malloc_trim
    base = _current_rss_bytes()
    blocks = [bytearray(8192) for _ in range(40000)]
    pin = bytearray(8192)
    del blocks
    held = _current_rss_bytes() - base
    assert host_memory.release_free_memory()
    released = held - (_current_rss_bytes() - base)
    assert held > 250 * 2**20, held  # the premise: glibc kept the freed blocks
    assert released > 200 * 2**20, released
    del pin
