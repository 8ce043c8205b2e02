"""Memory of a compiled step: XLA's memory analysis for one device (the process's resident set is
`training.host_memory`'s)."""
from __future__ import annotations

from typing import Optional

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
