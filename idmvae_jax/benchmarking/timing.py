"""Timing: calls bracketed by `block_until_ready`, and their median / min / max."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


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
    """{median, min, max} of `times` (seconds)."""
    return {"median": float(np.median(times)), "min": float(np.min(times)), "max": float(np.max(times))}
