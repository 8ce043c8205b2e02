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


def _format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Console progress lines with throughput and ETA (process 0 only)."""

    def __init__(self, total_steps: int, start_step: int = 0, active: bool = True, stream=None):
        self.total = int(total_steps)
        self.start_step = int(start_step)
        self.active = active
        self.stream = stream or sys.stdout
        self._t0: Optional[float] = None
        self._s0 = int(start_step)

    def start(self, step: int) -> None:
        """Starts the clock (call after compilation so the ETA is not skewed by it)."""
        self._t0, self._s0 = time.perf_counter(), int(step)

    def line(self, step: int, scalars: Mapping[str, float], keys: Sequence[str] = ("total", "elbo")) -> str:
        elapsed = time.perf_counter() - (self._t0 or time.perf_counter())
        done = step - self._s0
        rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
        eta = (self.total - step) / rate if rate == rate and rate > 0 else float("nan")
        pct = 100.0 * step / max(self.total, 1)
        terms = " ".join(f"{k}={scalars[k]:.4g}" for k in keys if k in scalars)
        eta_s = _format_duration(eta) if eta == eta else "--:--"
        return (f"step {step}/{self.total} ({pct:5.1f}%) {terms} | {rate:.2f} steps/s | "
                f"elapsed {_format_duration(elapsed)} | ETA {eta_s}")

    def report(self, step: int, scalars: Mapping[str, float], keys: Sequence[str] = ("total", "elbo")) -> None:
        if self.active:
            print(self.line(step, scalars, keys), file=self.stream, flush=True)
