"""FLOPs of a compiled (or lowered) XLA program from its cost analysis: the one reader of
`cost_analysis()` that the training loop's log line and the benchmark share."""
from __future__ import annotations

from typing import Optional


def cost_flops(compiled) -> Optional[float]:
    """FLOPs of `compiled` (a jax Compiled or Lowered) from `cost_analysis()`: a dict in new JAX, a
    list of dicts (one per program, summed) in some older versions; None when the backend gives none."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if isinstance(ca, (list, tuple)):
        vals = [d.get("flops") for d in ca if isinstance(d, dict) and d.get("flops") is not None]
        return float(sum(vals)) if vals else None
    if isinstance(ca, dict):
        v = ca.get("flops")
        return None if v is None else float(v)
    return None
