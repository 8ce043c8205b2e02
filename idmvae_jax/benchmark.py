r"""Throughput and memory of the train step: one JSON line per run (issue 6).

    python -m idmvae_jax.benchmark --config=configs/polymnist_quadrant.py:mini \
        [--config.X=Y] [--mode=jit|pmap] [--steps=10] [--warmup=2] [--precision=f32|bf16] \
        [--devices=N] [--peak_flops=1.7e11] [--parts] [--op_profile=N]

What it does (MaxText-style, STYLE.md "Measure throughput honestly"):
- builds the typed config from the ml_collections config and a description of the data's views made
  from the config alone (`config_views`): the benchmark never opens a dataset. It feeds random
  inputs of those shapes and dtypes (uint8 images, float latents/vectors, int32 caption tokens);
- builds the exact training step of `idmvae_jax.training.parallel.make_parallel_step` (same optimiser, same
  donation, same shardings, jit or pmap), lowers and compiles it ahead of time (`compile_s`), then
  runs `--warmup` untimed steps and `--steps` (>= 5) timed ones, each bracketed by
  `block_until_ready`; `step_time_s` holds their median, min and max (per train step: with
  train.steps_per_dispatch = k one dispatch counts k steps);
- `flops_per_step` is XLA's cost analysis of the compiled step, summed over devices (the analysis
  of an SPMD or pmap executable describes one device's program, `flops_per_device`): the work the
  devices execute, so work a partitioning replicates counts once per device (compare with the
  1-device number to see it); `peak_flops_per_sec` is a
  measured f32 matmul (n x n @ n x n, n = 4096 on accelerators, 2048 on CPU) on every device of the
  mesh at once, timed the same way (or `--peak_flops`);
- `model_flops_per_step` is the cost analysis of the lowered, un-partitioned program (the model's
  arithmetic, counted once whatever the device count); `mfu` = model FLOPs per second / peak. On
  GPU the compiled count leaves out the convolutions XLA hands to cuDNN (custom calls), so there
  `flops_per_step` is far below the real work and only the model count means anything;
- `peak_memory_bytes.rss` is the process's peak resident set (getrusage; it includes compilation
  and everything before it), `peak_memory_bytes.xla` is XLA's memory analysis of the compiled step
  for ONE device: temp + argument + output - alias bytes (the breakdown is in `xla_memory`). On
  CPU all fake devices share the process, so rss covers all of them. `steps_peak_rss_bytes` is the
  peak resident set of the timed steps alone (Linux: the kernel's mark is reset after compilation
  and warm-up), i.e. what training holds once compiled; None where it cannot be reset. After
  compiling, the freed heap goes back to the OS (`training.host_memory.release_free_memory`), as in train.

`--parts` adds `parts`: the step's components compiled and timed in isolation at the same batch,
precision and remat policy (one encoder branch, one decoder, the score networks' loss, the noise
draw, the optimiser update; each forward + backward), their counts in one step, the sum of parts
and the ratio of the full step to it, and per part the cost-analysis FLOPs against the measured
time (the per-layer-type FLOP/s account).

`--op_profile=N` adds `op_account`: N more steps run under the XLA profiler and each HLO
instruction's time is joined with the compiled HLO (`idmvae_jax.op_profile`): time, convolution /
dot FLOPs and FLOP/s per network / direction / kind [shape] (e.g. `ViewDecoder/bwd/conv filter
3x3 64x64 64->64`), rolled up by kind (conv, fusion, copy, reduce, dot, collective) and by
network/direction. Unlike `--parts` it sees the step as it runs: layout copies, elementwise
fusions and collectives included.

Datasets whose view shapes come from files (npz, tcga, cub with data.cub_latents_file) cannot be
benchmarked without their folder; the command says so and stops.
"""
from __future__ import annotations

import collections
import json
import math
import platform
import sys
import time
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from idmvae_jax.training.host_memory import peak_rss_bytes, release_free_memory, run_with_peak_rss

# Nominal caption vocabulary of CUB when no prepared dataset is read (the real size depends on
# data.cub_min_word_count and the captions; only the one-hot width of the caption networks).
CUB_NOMINAL_VOCAB = 1590


class BenchView(NamedTuple):
    """What `build_idmvae_config` needs of a data view (a DatasetInfo ViewInfo look-alike)."""

    kind: str
    shape: tuple
    dtype: str
    vocab_size: Optional[int] = None


# ================================================================================ shapes from config
def config_views(config, vocab_size: int = CUB_NOMINAL_VOCAB) -> tuple:
    """The data views of `config` from the config alone (no dataset is read or prepared).

    polymnist_quadrant[_embedded]: data.num_views (0 = 5) images (S, S, 3), S = data.image_size
    (0 = 64); polymnist: 5 images (28, 28, 3); cub: an image (S, S, 3) and a caption
    (data.cub_caption_length,) of `vocab_size` tokens. npz, tcga and cub with latents take their
    shapes from files: ValueError.
    """
    data = config.data
    name = data.name
    n_select = int(data.get("num_views", 0) or 0)
    if name.startswith("polymnist_quadrant"):
        size = int(data.image_size or 64)
        views = (BenchView("image", (size, size, 3), "uint8"),) * 5
    elif name == "polymnist":
        views = (BenchView("image", (28, 28, 3), "uint8"),) * 5
    elif name == "cub":
        if data.get("cub_latents_file", ""):
            raise ValueError("cub with data.cub_latents_file takes the latent shape from that file; "
                             "the benchmark never reads data: benchmark cub without latents")
        size = int(data.image_size or 64)
        views = (BenchView("image", (size, size, 3), "uint8"),
                 BenchView("caption", (int(data.cub_caption_length),), "int32", int(vocab_size)))
    else:
        raise ValueError(
            f"data.name={name!r}: its views' kinds and shapes come from the data files "
            f"(data.path), and the benchmark never reads a dataset, so it cannot benchmark this "
            f"config; benchmark a config whose shapes are in the config (polymnist_quadrant, "
            f"polymnist, cub)")
    if n_select:
        if n_select > len(views):
            raise ValueError(f"data.num_views={n_select} but {name} has {len(views)} views")
        views = views[:n_select]
    return views


def random_batch(views, batch_size: int, seed: int = 0) -> dict:
    """{"x": [x_0, ...]}: random numpy arrays of each view's shape and dtype (what loss_fn reads)."""
    rng = np.random.default_rng(seed)
    xs = []
    for v in views:
        shape = (batch_size, *v.shape)
        if v.kind == "image":
            xs.append(rng.integers(0, 256, shape, dtype=np.uint8))
        elif v.kind == "caption":
            xs.append(rng.integers(0, v.vocab_size, shape, dtype=np.int32))
        else:
            xs.append(rng.standard_normal(shape, dtype=np.float32))
    return {"x": xs}


# ================================================================================ XLA analyses
def cost_flops(compiled) -> Optional[float]:
    """FLOPs of a compiled executable from `cost_analysis()` (a dict in new JAX, a list of dicts
    per program in some older versions); None when the backend gives none."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if ca is None:
        return None
    if isinstance(ca, (list, tuple)):
        vals = [d.get("flops") for d in ca if isinstance(d, dict) and d.get("flops") is not None]
        return float(sum(vals)) if vals else None
    if isinstance(ca, dict):
        v = ca.get("flops")
        return None if v is None else float(v)
    return None


_MEMORY_FIELDS = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
                  "alias_size_in_bytes", "generated_code_size_in_bytes")


def memory_stats(compiled) -> dict:
    """The memory_analysis() fields of a compiled executable as a dict (empty when unavailable)."""
    try:
        ma = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return {}
    if ma is None:
        return {}
    if isinstance(ma, (list, tuple)):
        ma = ma[0] if ma else None
        if ma is None:
            return {}
    return {f: int(getattr(ma, f)) for f in _MEMORY_FIELDS if getattr(ma, f, None) is not None}


def xla_peak_bytes(stats: dict) -> Optional[int]:
    """temp + argument + output - alias: the live bytes of one device while the step runs."""
    if not stats:
        return None
    return (stats.get("temp_size_in_bytes", 0) + stats.get("argument_size_in_bytes", 0)
            + stats.get("output_size_in_bytes", 0) - stats.get("alias_size_in_bytes", 0))


# ================================================================================ timing
def time_calls(call: Callable[[], Any], steps: int, warmup: int) -> list:
    """Seconds of `steps` calls of `call()` after `warmup` untimed ones; each call's outputs are
    waited for (block_until_ready) before the clock stops."""
    import jax

    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return times


def summary(times) -> dict:
    return {"median": float(np.median(times)), "min": float(np.min(times)), "max": float(np.max(times))}


def matmul_peak_flops(devices, n: Optional[int] = None, steps: int = 5, warmup: int = 2) -> dict:
    """Measured f32 matmul rate of `devices` together: one n x n @ n x n per device, sharded over
    a 1-D mesh of them, jitted, timed like the step. n defaults to 4096 (2048 on CPU)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    devices = list(devices)
    if n is None:
        n = 2048 if devices[0].platform == "cpu" else 4096
    mesh = jax.make_mesh((len(devices),), ("d",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)
    sharding = NamedSharding(mesh, P("d"))
    make = jax.jit(lambda k: jax.random.normal(k, (len(devices), n, n), jnp.float32), out_shardings=sharding)
    a = make(jax.random.key(1))
    b = make(jax.random.key(2))
    mm = jax.jit(lambda x, y: jnp.einsum("dij,djk->dik", x, y, precision=jax.lax.Precision.HIGHEST),
                 out_shardings=sharding)
    compiled = mm.lower(a, b).compile()
    times = time_calls(lambda: compiled(a, b), steps, warmup)
    flops = 2.0 * n**3 * len(devices)
    return {"flops_per_sec": flops / float(np.median(times)), "matmul_n": n, "time_s": summary(times)}


# ================================================================================ the model's parts
def _count_params(tree) -> int:
    import jax

    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def part_plan(cfg) -> list:
    """The components of one train step and how often each runs, as a list of dicts
    {name, what, count, group} for the parts `measure_parts` times.

    Per view group g of size M_g (M views in all, K samples, B examples):
      encoder_w / encoder_z    one branch fwd+bwd at batch B: M_g each for the posterior,
                               + M_g each for the cycle term's re-encodes (l2 > 0; only the branch the
                               cycle term reads is computed, so z and w once each per view)
      decoder                  one decoder fwd+bwd at batch B: M * K decodes per target view of the
                               ELBO (all sources incl. self) + 2 per view for the cycle term
      score_nets               the whole diffusion loss (shared z net on M*B, one w net per view) fwd+bwd
      noise                    draw_example_noise for the batch (forward only)
      optimizer                optax update + apply_updates on every parameter
    """
    from idmvae_jax.models.multimodal import make_model

    mc, lc = cfg.model, cfg.loss
    model = make_model(mc)
    m, k = mc.num_views, lc.num_samples
    plan = []
    for g, (spec, idx) in enumerate(model.groups):
        mg = len(idx)
        cycle = mg if lc.genaug_weight else 0
        plan.append(dict(name=f"encoder_w[{g}]", group=g, what="encoder_w", count=mg + cycle))
        plan.append(dict(name=f"encoder_z[{g}]", group=g, what="encoder_z", count=mg + cycle))
        plan.append(dict(name=f"decoder[{g}]", group=g, what="decoder",
                         count=mg * m * k + (2 * mg if lc.genaug_weight else 0)))
    if lc.diffusion_weight:
        plan.append(dict(name="score_nets", group=None, what="score_nets", count=1))
    plan.append(dict(name="noise", group=None, what="noise", count=1))
    plan.append(dict(name="optimizer", group=None, what="optimizer", count=1))
    return plan


def _part_fn(what: str, cfg, group: Optional[int], params, batch_size: int, optimizer, rng):
    """(jit-able fn, its args, donate_argnums) of one part; args live on the default device."""
    import jax
    import jax.numpy as jnp

    from idmvae_jax import objective
    from idmvae_jax.generation import score_fns
    from idmvae_jax.models.encoders import encoder_input_shape
    from idmvae_jax.models.multimodal import group_name, make_model
    from idmvae_jax.training.loss import draw_step_noise

    mc = cfg.model
    model = make_model(mc)
    b = batch_size

    def fwd_bwd(apply, p, x):
        """Gradient w.r.t. params and input of sum(outputs): the backward of one use in the step
        (with model.remat the networks rematerialise their own blocks, as in the step)."""
        def scalar(p_, x_):
            out = apply(p_, x_)
            return sum(jnp.sum(o.astype(jnp.float32)) for o in jax.tree_util.tree_leaves(out))
        return jax.grad(scalar, argnums=(0, 1))(p, x)

    if what in ("encoder_w", "encoder_z", "decoder"):
        spec, idx = model.groups[group]
        name = group_name(idx)
        if what == "decoder":
            p = jax.tree_util.tree_map(lambda a: a[0], params["decoders"][name])
            apply = model.decoders[group].apply
            x = jnp.asarray(rng.standard_normal((b, mc.latent_dim), dtype=np.float32))
        else:
            p = jax.tree_util.tree_map(lambda a: a[0], params["encoders"][name])
            enc = model.encoders[group]
            apply = enc.apply_w if what == "encoder_w" else enc.apply_z
            x = jnp.asarray(rng.uniform(size=(b, *encoder_input_shape(spec))).astype(np.float32))
        return (lambda p_, x_: fwd_bwd(apply, p_, x_)), (p, x), ()

    m = mc.num_views
    if what == "score_nets":
        schedule = objective.diffusion.schedule_from_config(cfg.diffusion)
        t_max = cfg.diffusion.num_timesteps
        args = (
            {"score_z": params["score_z"], "score_w": params["score_w"]},
            jnp.asarray(rng.standard_normal((m, b, mc.z_dim), dtype=np.float32)),
            jnp.asarray(rng.standard_normal((m, b, mc.w_dim), dtype=np.float32)),
            jnp.asarray(rng.integers(0, t_max, (m, b)), dtype=jnp.int32),
            jnp.asarray(rng.standard_normal((m, b, mc.z_dim), dtype=np.float32)),
            jnp.asarray(rng.integers(0, t_max, (m, b)), dtype=jnp.int32),
            jnp.asarray(rng.standard_normal((m, b, mc.w_dim), dtype=np.float32)),
        )

        def score(p, mu_z, mu_w, t_z, n_z, t_w, n_w):
            loss = lambda p_, z_, w_: objective.diffusion_prior_loss(  # noqa: E731
                *score_fns(model, p_), z_, w_, t_z, n_z, t_w, n_w, schedule)
            return jax.grad(loss, argnums=(0, 1, 2))(p, mu_z, mu_w)

        return score, args, ()
    if what == "noise":
        return (lambda key: draw_step_noise(key, jnp.arange(b), cfg)), (jax.random.key(3),), ()
    if what == "optimizer":
        import optax

        opt_state = optimizer.init(params)
        grads = jax.tree_util.tree_map(lambda a: jnp.full_like(a, 1e-3), params)

        def update(p, s, g):
            updates, s = optimizer.update(g, s, p)
            return optax.apply_updates(p, updates), s

        return update, (jax.tree_util.tree_map(jnp.copy, params), opt_state, grads), (0, 1)
    raise ValueError(f"unknown part {what!r}")


def measure_parts(cfg, params, batch_size: int, optimizer, steps: int, warmup: int, seed: int = 0) -> list:
    """Times every part of `part_plan(cfg)` in isolation on the default device; returns the plan
    entries with time_s {median, min, max} per call, flops per call and achieved FLOP/s."""
    import jax

    rng = np.random.default_rng(seed)
    out = []
    for entry in part_plan(cfg):
        fn, args, donate = _part_fn(entry["what"], cfg, entry["group"], params, batch_size, optimizer, rng)
        t0 = time.perf_counter()
        compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
        compile_s = time.perf_counter() - t0
        state = {"args": args}

        def call():
            result = compiled(*state["args"])
            if donate:  # optimizer: feed the new params/state back, as the step does
                state["args"] = (*result, *state["args"][len(result):])
            return result

        times = time_calls(call, steps, warmup)
        flops = cost_flops(compiled)
        med = float(np.median(times))
        out.append({
            **{k: entry[k] for k in ("name", "count")},
            "time_s": summary(times),
            "total_s": med * entry["count"],
            "compile_s": compile_s,
            "flops": flops,
            "flops_per_sec": None if flops is None else flops / med,
        })
        del compiled, state, args
    return out


# ================================================================================ the benchmark
def _op_account(compiled, call, steps: int, n_dev: int, k: int, step_s: float) -> dict:
    """The profiled per-instruction time of `steps` calls grouped by layer type (op_profile)."""
    import tempfile

    from idmvae_jax import op_profile as op

    with tempfile.TemporaryDirectory() as trace_dir:
        seconds = op.profile_op_times(call, steps, trace_dir)
    rows = op.op_account(compiled.as_text(), {n: s / k for n, s in seconds.items()}, n_dev)
    ops_s = sum(r["seconds"] for r in rows)
    return {
        "note": ("XLA profiler time per HLO instruction per step and device, grouped network/direction/"
                 "kind [shape]; FLOPs of convolutions and dots (2 per multiply-add); instructions may "
                 "overlap in time, so ops_s can exceed the step time"),
        "profiled_steps": steps * k,
        "ops_s": ops_s,
        "step_s": step_s,
        "flops": sum(r["flops"] for r in rows),
        "by_kind": op.rollup(rows, -1),
        "by_network": op.rollup(rows, 2),
        "groups": rows,
    }


def versions() -> dict:
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

    from idmvae_jax.training import parallel
    from idmvae_jax.training import step as ts
    from idmvae_jax.build import build_idmvae_config

    if steps < 5:
        raise ValueError(f"--steps={steps}: at least 5 timed steps")
    config = config.copy_and_resolve_references() if hasattr(config, "copy_and_resolve_references") else config
    dtypes = {"f32": "float32", "bf16": "bfloat16", "float32": "float32", "bfloat16": "bfloat16"}
    if precision is not None:
        if precision not in dtypes:
            raise ValueError(f"--precision={precision!r}; choose f32 or bf16")
        config.model.compute_dtype = dtypes[precision]
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

    init_fn = ts.make_init_fn(cfg, optimizer, int(config.seed))
    state, _ = parallel.init_state_on_mesh(init_fn, mesh)
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
    flops_device = cost_flops(compiled)
    flops_step = None if flops_device is None else flops_device * n_dev / k
    # Before partitioning and fusion: global under jit with the `auto` partitioner; under pmap and
    # under jit's shard_map the lowered program is one device's (the body at the local batch).
    flops_model = cost_flops(lowered)
    per_device_program = mode == "pmap" or partitioner == "shard_map"
    if flops_model is not None:
        flops_model = flops_model * (n_dev if per_device_program else 1) / k
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
    account = _op_account(compiled, call, op_profile, n_dev, k, median) if op_profile else None
    finite = bool(np.isfinite(pstep.fetch(holder["metrics"])["total"]))  # the last step's loss
    rss_after_step = max(process_rss, peak_rss_bytes())

    if peak_flops is None:
        peak = matmul_peak_flops(list(mesh.devices.flat), peak_matmul_n)
        peak_value, peak_source = peak["flops_per_sec"], f"measured f32 matmul n={peak['matmul_n']} on {n_dev} device(s)"
    else:
        peak_value, peak_source = float(peak_flops), "--peak_flops"
    achieved = None if flops_step is None else flops_step / median
    model_rate = None if flops_model is None else flops_model / median

    result = {
        "config": config_name,
        "step_time_s": summary(times),
        "examples_per_sec": batch_size / median,
        "compile_s": t2 - t1,
        "lower_s": t1 - t0,
        "flops_per_step": flops_step,
        "flops_per_device": None if flops_device is None else flops_device / k,
        "achieved_flops_per_sec": achieved,
        "peak_flops_per_sec": peak_value,
        "peak_flops_source": peak_source,
        "model_flops_per_step": flops_model,
        "model_flops_per_sec": model_rate,
        "mfu": None if model_rate is None or not peak_value else model_rate / peak_value,
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
        part_list = measure_parts(cfg, host_params, batch_size, optimizer, steps, warmup, int(config.seed))
        total = sum(p["total_s"] for p in part_list)
        by_type = collections.OrderedDict()
        for p in part_list:
            kind = p["name"].split("[")[0]
            acc = by_type.setdefault(kind, {"count": 0, "total_s": 0.0, "flops": 0.0})
            acc["count"] += p["count"]
            acc["total_s"] += p["total_s"]
            acc["flops"] += (p["flops"] or 0.0) * p["count"]
        for acc in by_type.values():
            acc["flops_per_sec"] = acc["flops"] / acc["total_s"] if acc["total_s"] else None
            acc["share_of_step"] = acc["total_s"] / median
        parts_flops = sum(a["flops"] for a in by_type.values())
        result["parts"] = {
            "note": ("each part compiled and timed alone on one device at the step's batch, precision "
                     "and remat; total_s = median x count; fwd+bwd except noise"),
            "items": part_list,
            "by_type": by_type,
            "sum_s": total,
            "step_over_sum": median / total if total else None,
            "flops_sum": parts_flops,
            "unaccounted_s": median - total,
        }
        result["peak_memory_bytes"]["rss"] = rss_after_step  # the step's, not the parts'
    return result


# ================================================================================ CLI
def main(argv=None) -> None:
    from absl import app, flags
    from ml_collections import config_flags

    config_flag = config_flags.DEFINE_config_file("config", None, "configs/NAME.py[:ARGS]", lock_config=True)
    flags.DEFINE_enum("mode", None, ["jit", "pmap"], "default: config.parallel.mode")
    flags.DEFINE_integer("steps", 10, "timed steps (>= 5)")
    flags.DEFINE_integer("warmup", 2, "untimed steps after compilation")
    flags.DEFINE_enum("precision", None, ["f32", "bf16"], "compute dtype (default: config.model.compute_dtype)")
    flags.DEFINE_integer("devices", None, "devices of the mesh (default: config.parallel.num_devices; 0 = all)")
    flags.DEFINE_float("peak_flops", None, "peak FLOP/s of all devices used (default: measured f32 matmul)")
    flags.DEFINE_integer("peak_matmul_n", None, "matmul size of the peak measurement (default 4096, CPU 2048)")
    flags.DEFINE_bool("parts", False, "also time the step's parts in isolation")
    flags.DEFINE_integer("op_profile", 0, "profile this many steps: time per HLO instruction by layer type")
    flags.DEFINE_integer("vocab_size", CUB_NOMINAL_VOCAB, "caption vocabulary assumed for cub")
    flags.mark_flags_as_required(["config"])
    FLAGS = flags.FLAGS

    def run(_):
        config_arg = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")), "")
        result = run_benchmark(
            config_flag.value, mode=FLAGS.mode, steps=FLAGS.steps, warmup=FLAGS.warmup,
            precision=FLAGS.precision, devices=FLAGS.devices, peak_flops=FLAGS.peak_flops,
            peak_matmul_n=FLAGS.peak_matmul_n, parts=FLAGS.parts, op_profile=FLAGS.op_profile, vocab_size=FLAGS.vocab_size,
            config_name=config_arg,
        )
        print(json.dumps(result, default=_json_default), flush=True)

    app.run(run, argv=argv)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


if __name__ == "__main__":
    main()
