"""What a run writes besides checkpoints: metrics, TensorBoard events, config, progress, images.

WORKDIR/metrics.jsonl   one JSON object per log step; on resume the rows after the restored step
                        are dropped, so every step appears once and in order
WORKDIR/tensorboard/    TensorBoard event files (tensorboardX; a resume purges the later steps)
WORKDIR/config.json     the run's ConfigDict, plus the resolved number of steps and the dataset's
                        DatasetInfo (`dataset_info`: the views' kinds and shapes, labels, splits)
WORKDIR/samples/        PNG grids: reconstructions, cross-generations, unconditional samples

WORKDIR may be a bucket URL (`storage`): files are rewritten whole (object stores cannot append),
TensorBoard writes gs:// itself. Only process 0 writes (`MetricWriter(active=jax.process_index()
== 0)`).
"""
from __future__ import annotations

import io
import json
import math
import sys
import time
import uuid
from typing import Mapping, Optional, Sequence

import numpy as np

from idmvae_jax import storage


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


def write_config(workdir: storage.PathLike, config, extra: Optional[Mapping] = None):
    """WORKDIR/config.json from a ConfigDict (or mapping), with `extra` entries added."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d.update(extra or {})
    return storage.write_text(storage.path(workdir) / "config.json",
                              json.dumps(d, indent=2, sort_keys=True, default=str))


class MetricWriter:
    """metrics.jsonl + TensorBoard scalars; a no-op when not active (processes other than 0).

    start_step: the step the run starts (or resumes) from. Rows of metrics.jsonl after it, left by
    an earlier run that went further than its last checkpoint, are dropped, and TensorBoard is told
    to purge its events after it, so a resumed run never shows a step twice.
    """

    def __init__(self, workdir: storage.PathLike, active: bool = True, tensorboard: bool = True,
                 start_step: int = 0):
        self.active = active
        self.path = storage.path(workdir) / "metrics.jsonl"
        self._tb = None
        self._lines: list[str] = []
        if active:
            self._lines = [json.dumps(r) for r in read_metrics(workdir) if r.get("step", 0) <= start_step]
            if tensorboard:
                from tensorboardX import SummaryWriter

                _register_bucket_event_files()
                self._tb = SummaryWriter(str(storage.path(workdir) / "tensorboard"),
                                         purge_step=int(start_step) + 1 if start_step else None,
                                         filename_suffix=f".{uuid.uuid4().hex[:8]}")  # one file per writer

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.active:
            return
        record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
        self._lines.append(json.dumps(record))
        storage.write_text(self.path, "\n".join(self._lines) + "\n")
        if self._tb is not None:
            for name, value in scalars.items():
                if isinstance(value, (int, float, np.number)):
                    self._tb.add_scalar(name, float(value), int(step))

    def write_text(self, step: int, name: str, text: str) -> None:
        if self.active and self._tb is not None:
            self._tb.add_text(name, text, int(step))

    def write_image(self, step: int, name: str, image: np.ndarray) -> None:
        """image: (H, W, C) floats in [0, 1]."""
        if self.active and self._tb is not None:
            self._tb.add_image(name, np.clip(image, 0.0, 1.0), int(step), dataformats="HWC")

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class _BucketEventFile:
    """A TensorBoard event file in a bucket, written through `storage`: object stores cannot
    append, so the file is kept in memory and rewritten whole at each flush."""

    def __init__(self, path: str):
        self._path, self._buffer, self._dirty = path, io.BytesIO(), False

    def write(self, data: bytes) -> None:
        self._buffer.write(data)
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            storage.write_bytes(self._path, self._buffer.getvalue())
            self._dirty = False

    def close(self) -> None:
        self.flush()


class _BucketEventFiles:
    """tensorboardX's writer factory interface (`open`, `directory_check`) for bucket URLs."""

    def open(self, path: str) -> _BucketEventFile:
        return _BucketEventFile(path)

    def directory_check(self, path: str) -> None:
        del path  # buckets have no directories to create


def _register_bucket_event_files() -> None:
    """Routes tensorboardX's gs:// and s3:// event files through `storage` (one path abstraction
    for everything a run writes; tensorboardX's own gs:// writer re-uploads on garbage
    collection, after the run has ended)."""
    from tensorboardX import record_writer

    for url_scheme in storage.URL_SCHEMES:
        record_writer.register_writer_factory(url_scheme, _BucketEventFiles())


def read_metrics(workdir: storage.PathLike) -> list[dict]:
    """The records of WORKDIR/metrics.jsonl (none when it does not exist)."""
    path = storage.path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


# The console's order of the step's scalars; any others follow in name order.
CONSOLE_TERMS = ("total", "elbo", "recon", "kl", "cross_mi", "genaug", "diffusion", "grad_norm")
# Throughput, shown once at the end of the line rather than as a term.
_RATE_KEYS = ("steps_per_sec", "examples_per_sec")


def format_value(x) -> str:
    """4 significant digits; magnitudes in [1e4, 1e7) as whole numbers (no exponent)."""
    x = float(x)
    if math.isfinite(x) and 1e4 <= abs(x) < 1e7:
        return f"{x:.0f}"
    return f"{x:.4g}"


class Progress:
    """Console progress lines, one per log step (process 0 only), plain text (no \\r, no escape codes).

    step 4/6 ( 66.7%) | total=12805 elbo=11059 recon=11051 kl=3.132 cross_mi=17.51 (chance 17.17)
        genaug=17.27 grad_norm=1736 | 2.148 steps/s | elapsed 00:20 | ETA 00:13

    (one line; the `tiny` config). Terms: every scalar of the step in CONSOLE_TERMS order, then any others by name,
    less `hide` (terms whose weight is 0, which read 0); `chance` maps a term to the value it takes
    with an uninformative critic (`objective.cross_view_infonce_chance` for cross_mi), shown after it.

    Two clocks, on purpose:
    - steps/s is the number passed in (`steps_per_sec`), the same one metrics.jsonl records: steps
      over the time since the previous log step, with checkpoint and sample time left out, so it
      measures training alone.
    - ETA and elapsed are wall time since `start`, checkpoints and sample grids included: the ETA is
      (steps left) / (steps done / wall seconds), when the command will finish training.
    extra_seconds > 0 (an estimate of work after training, e.g. an evaluation; settable between
    reports) makes the ETA that of the whole command: `ETA 07:10 (training 05:40 + evaluation
    ~01:30)`.
    """

    def __init__(self, total_steps: int, start_step: int = 0, active: bool = True, stream=None, *,
                 terms: Sequence[str] = CONSOLE_TERMS, hide: Sequence[str] = (),
                 chance: Optional[Mapping[str, float]] = None, extra_seconds: float = 0.0,
                 extra_label: str = "evaluation"):
        self.total = int(total_steps)
        self.start_step = int(start_step)
        self.active = active
        self.stream = stream or sys.stdout
        self.terms, self.hide = tuple(terms), frozenset(hide)
        self.chance = dict(chance or {})
        self.extra_seconds, self.extra_label = float(extra_seconds), extra_label
        self._t0: Optional[float] = None
        self._s0 = int(start_step)

    def start(self, step: int) -> None:
        """Starts the wall clock (call after compilation so the ETA is not skewed by it)."""
        self._t0, self._s0 = time.perf_counter(), int(step)

    def _shown(self, scalars: Mapping[str, float]) -> list[str]:
        numeric = {k for k, v in scalars.items() if isinstance(v, (int, float, np.number))}
        known = [k for k in self.terms if k in numeric]
        others = sorted(numeric - set(self.terms) - set(_RATE_KEYS))
        return [k for k in known + others if k not in self.hide]

    def line(self, step: int, scalars: Mapping[str, float], steps_per_sec: Optional[float] = None) -> str:
        """The line of log step `step`; steps_per_sec: metrics.jsonl's rate (default: scalars'
        `steps_per_sec`; `--` when there is none, e.g. the first log step right after compilation)."""
        elapsed = time.perf_counter() - (self._t0 or time.perf_counter())
        done = step - self._s0
        wall_rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
        eta = (self.total - step) / wall_rate if wall_rate == wall_rate and wall_rate > 0 else float("nan")
        if steps_per_sec is None:
            steps_per_sec = scalars.get("steps_per_sec")
        rate = format_value(steps_per_sec) if steps_per_sec is not None else "--"
        pct = 100.0 * step / max(self.total, 1)
        parts = []
        for k in self._shown(scalars):
            part = f"{k}={format_value(scalars[k])}"
            if k in self.chance:
                part += f" (chance {format_value(self.chance[k])})"
            parts.append(part)
        eta_s = format_duration(eta) if eta == eta else "--:--"
        if self.extra_seconds > 0 and eta == eta:  # one ETA for the whole command
            eta_s = (f"{format_duration(eta + self.extra_seconds)} (training {eta_s} + "
                     f"{self.extra_label} ~{format_duration(self.extra_seconds)})")
        return (f"step {step}/{self.total} ({pct:5.1f}%) | {' '.join(parts)} | {rate} steps/s | "
                f"elapsed {format_duration(elapsed)} | ETA {eta_s}")

    def report(self, step: int, scalars: Mapping[str, float], steps_per_sec: Optional[float] = None) -> None:
        if self.active:
            print(self.line(step, scalars, steps_per_sec), file=self.stream, flush=True)
