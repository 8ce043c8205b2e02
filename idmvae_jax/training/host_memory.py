"""The host process's memory: peak resident set (RSS) and handing freed heap back to the OS.

On CPU the XLA buffers are host memory, so these are what a batch-size or remat choice costs.
`release_free_memory` matters after compilation: XLA's compiler frees hundreds of MiB (0.8 GiB
for the paper-size step) that glibc keeps in its heap, and the step's buffers would otherwise sit
on top of it.
"""

from __future__ import annotations

import ctypes
import resource
import sys
from typing import Any, Callable, Optional


def release_free_memory() -> bool:
    """Returns the C heap's free pages to the OS (glibc `malloc_trim(0)`); False where the C
    library has no malloc_trim (macOS, musl). Safe at any time; costs milliseconds."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process already has loaded
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def peak_rss_bytes() -> int:
    """Peak resident set of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark of this process (Linux: '5' > /proc/self/clear_refs), so
    `current_peak_rss_bytes` then measures from now on; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_with_peak_rss(fn: Callable[[], Any]) -> tuple:
    """(fn(), the process's peak RSS including everything before fn, the peak RSS during fn or None).

    The reset that isolates fn also resets getrusage's ru_maxrss on Linux, so the process peak is
    read before it and combined with the peak after fn."""
    before = peak_rss_bytes()
    reset = reset_peak_rss()
    out = fn()
    during = current_peak_rss_bytes() if reset else None
    return out, max(before, peak_rss_bytes()), during


def current_peak_rss_bytes() -> Optional[int]:
    """VmHWM of /proc/self/status (peak RSS since start or the last `reset_peak_rss`), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
