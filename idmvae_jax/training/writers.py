"""What a run writes besides checkpoints: metrics, TensorBoard events, config, progress, images.

WORKDIR/metrics.jsonl   one JSON object per log step (appended on resume)
WORKDIR/tensorboard/    TensorBoard event files (tensorboardX)
WORKDIR/config.json     the run's ConfigDict, plus the resolved number of steps and the dataset's
                        DatasetInfo (`dataset_info`: the views' kinds and shapes, labels, splits)
WORKDIR/samples/        PNG grids: reconstructions, cross-generations, unconditional samples

Only process 0 writes (`MetricWriter(active=jax.process_index() == 0)`).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Mapping, Optional, Sequence

import numpy as np


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


def write_config(workdir: str, config, extra: Optional[Mapping] = None) -> str:
    """WORKDIR/config.json from a ConfigDict (or mapping), with `extra` entries added."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d.update(extra or {})
    path = os.path.join(workdir, "config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2, sort_keys=True, default=str)
    return path


class MetricWriter:
    """metrics.jsonl + TensorBoard scalars; a no-op when not active (processes other than 0)."""

    def __init__(self, workdir: str, active: bool = True, tensorboard: bool = True):
        self.active = active
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if active:
            os.makedirs(workdir, exist_ok=True)
            if tensorboard:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.active:
            return
        record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
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


def read_metrics(workdir: str) -> list[dict]:
    """The records of WORKDIR/metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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


# ------------------------------------------------------------------------------------ images
def image_grid(rows: Sequence[np.ndarray], pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tiles rows of images into one (H, W, 3) float32 array in [0, 1].

    rows: a list of R arrays (N, h, w, C) (C in {1, 3}; the same h, w, C for every row; floats in
    [0, 1] or uint8)."""
    from idmvae_jax.data import images  # (the data package imports tensorflow_datasets)

    rows = [np.asarray(r) for r in rows]
    rows = [r.astype(np.float32) / 255.0 if r.dtype == np.uint8 else r.astype(np.float32) for r in rows]
    return images.tile([[np.clip(images.to_rgb(img), 0.0, 1.0) for img in row] for row in rows],
                       pad=pad, fill=pad_value)


def save_png(path: str, image: np.ndarray) -> str:
    """Writes an (H, W, 3) float [0, 1] image as PNG."""
    from PIL import Image

    from idmvae_jax.data import images

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(images.float_to_uint8(np.asarray(image))).save(path)
    return path
