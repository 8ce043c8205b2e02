"""FLOP counts and rates: the step's FLOPs from XLA's cost analysis (`training.xla_cost.cost_flops`),
the devices' peak rate from a measured matmul, and MFU.

- per device: the cost analysis of the compiled step describes one device's program;
  `flops_per_step` sums it over the devices (work a partitioning replicates counts once per device);
- model FLOPs: the cost analysis of the lowered, un-partitioned program (the model's arithmetic,
  counted once whatever the device count); under pmap and jit's shard_map partitioner the lowered
  program is one device's body at the local batch, so it is scaled by the device count;
- MFU = model FLOPs per second / peak FLOPs per second.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from idmvae_jax.benchmarking.timing import summary, time_calls
from idmvae_jax.training.xla_cost import cost_flops


def step_flops(compiled, lowered, num_devices: int, steps_per_dispatch: int,
               per_device_program: bool) -> dict:
    """{per_device, step, model}: FLOPs per train step (None where the backend gives none)."""
    k = steps_per_dispatch
    device = cost_flops(compiled)
    model = cost_flops(lowered)
    return {
        "per_device": None if device is None else device / k,
        "step": None if device is None else device * num_devices / k,
        "model": None if model is None else model * (num_devices if per_device_program else 1) / k,
    }


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


def peak_rate(devices, peak_flops: Optional[float], matmul_n: Optional[int]) -> tuple:
    """(peak FLOP/s, where it comes from): `peak_flops` when given, else a measured matmul."""
    if peak_flops is not None:
        return float(peak_flops), "--peak_flops"
    peak = matmul_peak_flops(devices, matmul_n)
    return peak["flops_per_sec"], f"measured f32 matmul n={peak['matmul_n']} on {len(list(devices))} device(s)"


def rates(flops: dict, step_s: float, peak: float) -> dict:
    """achieved (compiled) and model FLOP/s of a step taking `step_s`, and MFU against `peak`."""
    achieved = None if flops["step"] is None else flops["step"] / step_s
    model = None if flops["model"] is None else flops["model"] / step_s
    return {"achieved": achieved, "model": model,
            "mfu": None if model is None or not peak else model / peak}
