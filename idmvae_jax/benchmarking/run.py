"""`run_benchmark`: the train step of a config built, compiled, timed and measured; one JSON dict.

It builds the typed config from the ml_collections config and the views of `inputs.config_views`
(the benchmark never opens a dataset) and the exact step of
`training.parallel.make_parallel_step` (same optimiser, donation, shardings, jit or pmap), lowers
and compiles it ahead of time, runs `warmup` untimed and `steps` (>= 5) timed steps (per train
step: with train.steps_per_dispatch = k one dispatch counts k steps), then adds the FLOPs and MFU
(`flops`), XLA's and the process's memory (`memory`, `training.host_memory`), and on request the
profiled op account (`op_profile`) and the step-parts account (`parts`). After compiling, the
freed heap goes back to the OS, as in training. The keys: docs/benchmarks.md, "The JSON line".
"""
from __future__ import annotations

import math
import platform
import time
from typing import Optional

import numpy as np

from idmvae_jax.benchmarking import flops as flops_lib
from idmvae_jax.benchmarking.inputs import CUB_NOMINAL_VOCAB, config_views, random_batch
from idmvae_jax.benchmarking.memory import memory_stats, xla_peak_bytes
from idmvae_jax.benchmarking.timing import summary, time_calls
from idmvae_jax.training.host_memory import peak_rss_bytes, release_free_memory, run_with_peak_rss

PRECISIONS = {"f32": "float32", "bf16": "bfloat16", "float32": "float32", "bfloat16": "bfloat16"}


def versions() -> dict:
    """Versions of the software stack and the device kind."""
    import jax
    import jaxlib

    out = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "python": platform.python_version()}
    for name in ("flax", "optax"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            out[name] = None
    dev = jax.devices()[0]
    out["backend"] = jax.default_backend()
    out["device_kind"] = dev.device_kind
    out["platform_version"] = getattr(dev.client, "platform_version", None)
    return out


def _count_params(tree) -> int:
    import jax

    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def _with_precision(config, precision: Optional[str]):
    """A copy of `config` with model.compute_dtype set from 'f32' | 'bf16' (None: the config's)."""
    config = config.copy_and_resolve_references() if hasattr(config, "copy_and_resolve_references") else config
    if precision is not None:
        if precision not in PRECISIONS:
            raise ValueError(f"--precision={precision!r}; choose f32 or bf16")
        config.model.compute_dtype = PRECISIONS[precision]
    return config


def model_flops_only(config, *, precision: Optional[str] = None, vocab_size: int = CUB_NOMINAL_VOCAB,
                     config_name: str = "") -> dict:
    """The model FLOPs of one train step, from abstract shapes: nothing is initialised, compiled or
    run, so a paper-size config is counted on a CPU in seconds.

    The count is `flops.step_flops`' model FLOPs (XLA's cost analysis of the lowered program of the
    jit step on one device, before partitioning and fusion), what `run_benchmark` reports as
    `model_flops_per_step`; a backend whose compiled cost analysis misses work (XLA:GPU's cuDNN
    convolutions) gets its MFU from this number. Returns {config, model_flops_per_step, params,
    batch_size, precision, lower_s, versions}.
    """
    from idmvae_jax.build import build_idmvae_config
    from idmvae_jax.training import parallel
    from idmvae_jax.training import step as ts
    from idmvae_jax.training.xla_cost import cost_flops

    config = _with_precision(config, precision)
    views = config_views(config, vocab_size)
    cfg = build_idmvae_config(config, views)
    optimizer = ts.make_optimizer(config.train)
    mesh = parallel.make_mesh(1)
    pstep = parallel.make_parallel_step(cfg, optimizer, mesh, "jit", partitioner="auto")
    state = parallel.abstract_state(ts.make_init_fn(cfg, optimizer, int(config.seed)), mesh)
    batch_size = int(config.train.batch_size)
    batch = pstep.put_batch(random_batch(views, batch_size, seed=int(config.seed)))
    t0 = time.perf_counter()
    lowered = pstep.lower(state, batch)
    lower_s = time.perf_counter() - t0
    model = cost_flops(lowered)  # step_flops' model count: one device, one step per dispatch
    return {
        "config": config_name,
        "model_flops_per_step": model,
        "params": _count_params(state.params),
        "batch_size": batch_size,
        "precision": "bf16" if cfg.model.compute_dtype == "bfloat16" else "f32",
        "lower_s": lower_s,
        "versions": versions(),
    }


def run_benchmark(
    config,
    *,
    mode: Optional[str] = None,
    steps: int = 10,
    warmup: int = 2,
    precision: Optional[str] = None,
    devices: Optional[int] = None,
    peak_flops: Optional[float] = None,
    peak_matmul_n: Optional[int] = None,
    parts: bool = False,
    op_profile: int = 0,
    vocab_size: int = CUB_NOMINAL_VOCAB,
    config_name: str = "",
) -> dict:
    """Benchmarks the train step of `config` (an ml_collections ConfigDict); returns the JSON dict.

    mode / devices / precision override config.parallel.mode / config.parallel.num_devices /
    config.model.compute_dtype ('f32' -> float32, 'bf16' -> bfloat16).
    """
    import jax

    from idmvae_jax.benchmarking import parts as parts_lib
    from idmvae_jax.benchmarking.op_profile import step_op_account
    from idmvae_jax.build import build_idmvae_config
    from idmvae_jax.training import parallel
    from idmvae_jax.training import step as ts

    if steps < 5:
        raise ValueError(f"--steps={steps}: at least 5 timed steps")
    config = _with_precision(config, precision)
    mode = mode or config.parallel.get("mode", "jit")
    num_devices = int(config.parallel.get("num_devices", 0) if devices is None else devices)

    views = config_views(config, vocab_size)
    cfg = build_idmvae_config(config, views)
    optimizer = ts.make_optimizer(config.train)
    mesh = parallel.make_mesh(num_devices)
    parallel.check_batch_size(int(config.train.batch_size), mesh)
    k = int(config.train.get("steps_per_dispatch", 1) or 1)
    partitioner = config.parallel.get("partitioner", "shard_map")
    pstep = parallel.make_parallel_step(cfg, optimizer, mesh, mode, steps_per_dispatch=k, partitioner=partitioner)

    state, _ = parallel.init_state_on_mesh(ts.make_init_fn(cfg, optimizer, int(config.seed)), mesh)
    n_params = _count_params(state.params)
    host_params = jax.device_get(state.params) if parts else None
    device_state = pstep.put_state(state)
    del state
    batch_size = int(config.train.batch_size)
    batch = random_batch(views, batch_size, seed=int(config.seed))
    device_batch = pstep.put_batch([batch] * k if k > 1 else batch)

    t0 = time.perf_counter()
    lowered = pstep.lower(device_state, device_batch)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    n_dev = int(mesh.devices.size)
    # Before partitioning and fusion: global under jit with the `auto` partitioner; under pmap and
    # under jit's shard_map the lowered program is one device's (the body at the local batch).
    flops = flops_lib.step_flops(compiled, lowered, n_dev, k, mode == "pmap" or partitioner == "shard_map")
    mem = memory_stats(compiled)
    del lowered
    release_free_memory()  # the compiler's freed heap, as train does after compiling

    holder = {"state": device_state}

    def call():
        holder["state"], holder["metrics"] = compiled(holder["state"], device_batch)
        return holder["state"], holder["metrics"]

    time_calls(call, 0, warmup)  # warm-up only: the steps' RSS is measured from after it
    times, process_rss, steps_rss = run_with_peak_rss(lambda: time_calls(call, steps, 0))
    times = [t / k for t in times]
    median = float(np.median(times))
    account = step_op_account(compiled, call, op_profile, n_dev, k, median) if op_profile else None
    finite = bool(np.isfinite(pstep.fetch(holder["metrics"])["total"]))  # the last step's loss
    rss_after_step = max(process_rss, peak_rss_bytes())

    peak_value, peak_source = flops_lib.peak_rate(list(mesh.devices.flat), peak_flops, peak_matmul_n)
    rate = flops_lib.rates(flops, median, peak_value)
    result = {
        "config": config_name,
        "step_time_s": summary(times),
        "examples_per_sec": batch_size / median,
        "compile_s": t2 - t1,
        "lower_s": t1 - t0,
        "flops_per_step": flops["step"],
        "flops_per_device": flops["per_device"],
        "achieved_flops_per_sec": rate["achieved"],
        "peak_flops_per_sec": peak_value,
        "peak_flops_source": peak_source,
        "model_flops_per_step": flops["model"],
        "model_flops_per_sec": rate["model"],
        "mfu": rate["mfu"],
        "peak_memory_bytes": {"rss": rss_after_step, "xla": xla_peak_bytes(mem)},
        "steps_peak_rss_bytes": steps_rss,
        "xla_memory": {**mem, "per": "device", "xla": "temp + argument + output - alias"},
        "params": n_params,
        "devices": n_dev,
        "batch_size": batch_size,
        "mode": mode,
        "partitioner": partitioner if mode == "jit" else None,
        "precision": "bf16" if cfg.model.compute_dtype == "bfloat16" else "f32",
        "remat": bool(cfg.model.remat),
        "vmap_views": bool(cfg.model.vmap_views),
        "steps_per_dispatch": k,
        "steps": steps,
        "warmup": warmup,
        "loss_finite": finite,
        "versions": versions(),
    }
    if account is not None:
        result["op_account"] = account
    del compiled, holder, device_state, device_batch
    if parts:
        part_list = parts_lib.measure_parts(cfg, host_params, batch, optimizer, steps, warmup, int(config.seed))
        result["parts"] = parts_lib.parts_account(part_list, median)
    return result
