"""Input pipeline: seeded per-epoch shuffling, per-process slices, prefetch, resumable state.

Global order. For split size N and global batch B, epoch e visits the examples in the order
``perm_e = permutation(N)`` drawn from ``SeedSequence([seed, e])`` (``arange(N)`` without shuffling);
global batch k of the epoch is ``perm_e[k·B : (k+1)·B]``. The order is a pure function of
(seed, epoch) and does not depend on the number of processes.

Per-process slices. Process p of P reads and yields only rows ``[p·B/P, (p+1)·B/P)`` of each global
batch, so over an epoch the processes' examples are disjoint and together cover the epoch's
examples (all N when B divides N or when `drop_remainder=False`; the ≤ B−1 examples in the
dropped tail differ per epoch when shuffling). `to_global_batch` reassembles the
process-local slices into the same global arrays a single process would produce, so a run gives
the same batches on 1 or many hosts. (This is the index-based equivalent of
`tfds.split_for_jax_process`, but balanced per batch rather than per file range.)

State. ``BatchIterator.get_state()`` is the position of the next batch the caller will receive
(epoch, batch in epoch) plus the settings it depends on, as JSON-friendly ints and strings;
batches sitting in the prefetch queue are not counted, so restoring with `set_state` replays
exactly the batches the original iterator would have yielded next.
"""
from __future__ import annotations

import queue
import threading
from concurrent import futures
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from idmvae_jax.data import cache as cache_lib
from idmvae_jax.data.info import DatasetInfo
from idmvae_jax.data.options import DataOptions

Batch = dict[str, Any]
_END = object()


class _ProducerError:
    def __init__(self, error: BaseException):
        self.error = error


class SplitReader:
    """Random access to one split of a prepared dataset, returning numpy batches.

    Args:
      directory: the prepared dataset directory (from `prepare`).
      split: 'train' | 'val' | 'test'.
      info: the dataset's DatasetInfo, already restricted to the views to return.
      decode_threads: threads that read and decode chunks of a batch in parallel.
    """

    def __init__(self, directory: str, split: str, info: DatasetInfo, decode_threads: int = 1):
        if split not in info.splits:
            raise ValueError(f"{info.name} has no split {split!r}; available: {sorted(info.splits)}")
        builder = tfds.builder_from_directory(directory)
        self._source = builder.as_data_source(split=split)
        self.info = info
        self.split = split
        self.num_examples = len(self._source)
        if self.num_examples != info.splits[split]:
            raise ValueError(f"{directory}: split {split} holds {self.num_examples} examples but its "
                             f"info says {info.splits[split]}; delete the directory to rebuild it.")
        self._decode_threads = decode_threads
        self._executor = (futures.ThreadPoolExecutor(decode_threads) if decode_threads > 1 else None)

    def read(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The examples at `indices` (any order), as one batch dict in that order.

        Returns:
          {"x": [x_0, ..., x_{M-1}] each (b, *view.shape) of view.dtype, "y_shared": int32 (b,),
           "y_private": int32 (b, M) if the data has private labels, "index": int64 (b,), plus
           each of info.extra_keys, e.g. "mnist_index": int64 (b, M)}.
        """
        keys = [int(i) for i in indices]
        if self._executor is None or len(keys) < 2 * self._decode_threads:
            examples = self._source.__getitems__(keys)
        else:
            chunks = np.array_split(np.asarray(keys), self._decode_threads)
            parts = self._executor.map(lambda c: self._source.__getitems__([int(k) for k in c]), chunks)
            examples = [ex for part in parts for ex in part]
        return self._collate(examples)

    def _collate(self, examples: list[dict[str, Any]]) -> Batch:
        num_views = len(self.info.views)
        batch: Batch = {"x": []}
        for m, view in enumerate(self.info.views):
            stacked = np.stack([ex[f"x_{m}"] for ex in examples]).astype(view.dtype, copy=False)
            batch["x"].append(stacked.reshape((len(examples),) + view.shape))
        batch["y_shared"] = np.asarray([ex["y_shared"] for ex in examples], dtype=np.int32)
        if self.info.num_private_classes is not None:
            y_private = np.stack([ex["y_private"] for ex in examples]).astype(np.int32)
            batch["y_private"] = y_private[:, :num_views]
        batch["index"] = np.asarray([ex["index"] for ex in examples], dtype=np.int64)
        for key in self.info.extra_keys:
            values = np.stack([np.asarray(ex[key]) for ex in examples])
            batch[key] = values[:, :num_views] if values.ndim == 2 else values
        return batch

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def epoch_order(num_examples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Example order of one epoch: int64 (num_examples,), a pure function of (seed, epoch)."""
    if not shuffle:
        return np.arange(num_examples, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
    return rng.permutation(num_examples).astype(np.int64)


class BatchIterator:
    """Iterates process-local batches; see the module docstring for order, slicing and state.

    Args:
      reader: the split's SplitReader.
      global_batch_size: B, the batch over all processes.
      seed: shuffling seed.
      shuffle: shuffle each epoch.
      drop_remainder: drop the last incomplete global batch of each epoch.
      process_index: p.
      process_count: P; B must be divisible by P.
      num_epochs: stop after this many epochs (None: never stop).
      prefetch: batches prepared ahead by a background thread (0: no thread).
    """

    def __init__(self, reader: SplitReader, *, global_batch_size: int, seed: int, shuffle: bool,
                 drop_remainder: bool, process_index: int, process_count: int,
                 num_epochs: int | None, prefetch: int):
        if global_batch_size < 1 or global_batch_size % process_count:
            raise ValueError(f"batch_size={global_batch_size} must be a positive multiple of the "
                             f"process count {process_count}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} not in [0, {process_count})")
        n = reader.num_examples
        self._batches_per_epoch = n // global_batch_size if drop_remainder else -(-n // global_batch_size)
        if self._batches_per_epoch == 0:
            raise ValueError(f"split {reader.split} has {n} examples, fewer than batch_size="
                             f"{global_batch_size}; lower the batch size or use drop_remainder=False")
        self._reader = reader
        self._batch_size = global_batch_size
        self._seed = int(seed)
        self._shuffle = bool(shuffle)
        self._drop_remainder = bool(drop_remainder)
        self._process_index = process_index
        self._process_count = process_count
        self._num_epochs = num_epochs
        self._prefetch = prefetch
        self._epoch = 0
        self._batch = 0
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop: threading.Event | None = None
        self._order_cache: tuple[int, np.ndarray] | None = None

    # ----------------------------------------------------------------------------------- public
    @property
    def batches_per_epoch(self) -> int:
        return self._batches_per_epoch

    @property
    def local_batch_size(self) -> int:
        return self._batch_size // self._process_count

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self) -> Batch:
        if self._finished(self._epoch):
            raise StopIteration
        if self._prefetch == 0:
            batch = self._make_batch(self._epoch, self._batch)
        else:
            if self._thread is None:
                self._start_producer()
            item = self._queue.get()
            if item is _END:
                raise StopIteration
            if isinstance(item, _ProducerError):
                self._stop_producer()
                raise item.error
            (epoch, index), batch = item
            assert (epoch, index) == (self._epoch, self._batch), "prefetch out of step"
        self._epoch, self._batch = self._advance(self._epoch, self._batch)
        return batch

    def get_state(self) -> dict[str, Any]:
        """Position of the next batch and the settings it depends on (JSON-serialisable)."""
        return {"epoch": self._epoch, "batch": self._batch, "seed": self._seed,
                "global_batch_size": self._batch_size, "num_examples": self._reader.num_examples,
                "shuffle": int(self._shuffle), "drop_remainder": int(self._drop_remainder),
                "split": self._reader.split, "dataset": self._reader.info.name}

    def set_state(self, state: dict[str, Any]) -> None:
        """Moves to `state` (from `get_state`); the next batch is the one it recorded.

        Raises ValueError when the state was taken with a different seed, batch size, split,
        dataset or shuffling, since its position would then mean different batches.
        """
        current = self.get_state()
        for key in ("seed", "global_batch_size", "num_examples", "shuffle", "drop_remainder",
                    "split", "dataset"):
            if key in state and state[key] != current[key]:
                raise ValueError(f"iterator state has {key}={state[key]!r} but this iterator has "
                                 f"{current[key]!r}; restore with the settings of the saved run")
        epoch, index = int(state["epoch"]), int(state["batch"])
        if not 0 <= index < self._batches_per_epoch or epoch < 0:
            raise ValueError(f"iterator state position (epoch {epoch}, batch {index}) is invalid")
        self._stop_producer()
        self._epoch, self._batch = epoch, index

    def close(self) -> None:
        """Stops the prefetch thread and the decode threads."""
        self._stop_producer()
        self._reader.close()

    def __enter__(self) -> "BatchIterator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self._stop_producer()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ---------------------------------------------------------------------------------- private
    def _finished(self, epoch: int) -> bool:
        return self._num_epochs is not None and epoch >= self._num_epochs

    def _advance(self, epoch: int, index: int) -> tuple[int, int]:
        index += 1
        if index == self._batches_per_epoch:
            return epoch + 1, 0
        return epoch, index

    def _order(self, epoch: int) -> np.ndarray:
        if self._order_cache is None or self._order_cache[0] != epoch:
            self._order_cache = (epoch, epoch_order(self._reader.num_examples, self._seed, epoch,
                                                    self._shuffle))
        return self._order_cache[1]

    def local_indices(self, epoch: int, index: int) -> np.ndarray:
        """Example ids of this process's slice of global batch `index` of `epoch`: int64 (b,)."""
        global_ids = self._order(epoch)[index * self._batch_size:(index + 1) * self._batch_size]
        if len(global_ids) == self._batch_size:
            local = self.local_batch_size
            return global_ids[self._process_index * local:(self._process_index + 1) * local]
        return np.array_split(global_ids, self._process_count)[self._process_index]

    def _make_batch(self, epoch: int, index: int) -> Batch:
        return self._reader.read(self.local_indices(epoch, index))

    def _start_producer(self) -> None:
        self._queue = queue.Queue(maxsize=self._prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(self._epoch, self._batch, self._queue, self._stop),
            name="idmvae-data-prefetch", daemon=True)
        self._thread.start()

    def _produce(self, epoch: int, index: int, out: queue.Queue, stop: threading.Event) -> None:
        try:
            while not stop.is_set() and not self._finished(epoch):
                item = ((epoch, index), self._make_batch(epoch, index))
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                epoch, index = self._advance(epoch, index)
            if not stop.is_set():
                out.put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            out.put(_ProducerError(error))

    def _stop_producer(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        self._thread = self._queue = self._stop = None


# -------------------------------------------------------------------------------- entry points
def open_split(data_cfg: Any, split: str) -> SplitReader:
    """Prepares the dataset if needed and opens `split` for random access."""
    options = DataOptions.from_config(data_cfg)
    directory = cache_lib.prepare(options)
    info = cache_lib.read_prepared_info(directory).select_views(options.num_views)
    return SplitReader(directory, split, info, decode_threads=options.decode_threads)


def make_iterator(data_cfg: Any, split: str, batch_size: int, *, seed: int, shuffle: bool = True,
                  drop_remainder: bool = True, process_index: int | None = None,
                  process_count: int | None = None, num_epochs: int | None = None) -> BatchIterator:
    """Iterator over process-local numpy batches of `split`.

    Args:
      data_cfg: the `config.data` section (see `idmvae_jax.data`).
      split: 'train', 'val' (where it exists) or 'test'.
      batch_size: the GLOBAL batch size B; each process yields B / process_count examples.
      seed: shuffling seed (the order of epoch e depends only on (seed, e)).
      shuffle: reshuffle every epoch.
      drop_remainder: drop each epoch's last incomplete global batch.
      process_index, process_count: default `jax.process_index()`, `jax.process_count()`.
      num_epochs: None for an endless iterator.

    Yields:
      {"x": [x_m (b, *shape_m)], "y_shared": int32 (b,), "y_private": int32 (b, M) (when the data
      has private labels), "index": int64 (b,), extra keys such as "mnist_index": int64 (b, M)}.
    """
    if process_index is None or process_count is None:
        import jax  # only needed for the defaults

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    options = DataOptions.from_config(data_cfg)
    reader = open_split(options, split)
    return BatchIterator(reader, global_batch_size=batch_size, seed=seed, shuffle=shuffle,
                         drop_remainder=drop_remainder, process_index=process_index,
                         process_count=process_count, num_epochs=num_epochs,
                         prefetch=options.prefetch)


def load_split(data_cfg: Any, split: str, max_examples: int | None = None) -> Batch:
    """A whole split (or its first `max_examples` examples) in dataset order, as one batch dict.

    Same keys, dtypes and per-example shapes as a `make_iterator` batch.
    """
    reader = open_split(data_cfg, split)
    try:
        count = reader.num_examples if max_examples is None else min(max_examples, reader.num_examples)
        parts = [reader.read(range(start, min(start + 1024, count))) for start in range(0, count, 1024)]
    finally:
        reader.close()
    if not parts:
        raise ValueError(f"split {split} is empty or max_examples={max_examples} selects nothing")
    merged: Batch = {"x": [np.concatenate([p["x"][m] for p in parts]) for m in range(len(parts[0]["x"]))]}
    for key in parts[0]:
        if key != "x":
            merged[key] = np.concatenate([p[key] for p in parts])
    return merged


def to_global_batch(local_batch: Batch, sharding) -> Batch:
    """Assembles process-local numpy batches into global `jax.Array`s (lists kept as lists).

    Args:
      local_batch: a batch from `make_iterator` (this process's slice).
      sharding: one `jax.sharding.Sharding` for every leaf (e.g. NamedSharding(mesh, P('data')),
        which shards the leading batch axis), or a pytree of shardings matching the batch.

    Returns:
      The same structure with `jax.make_array_from_process_local_data` arrays of global batch size.
    """
    import jax

    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), local_batch)
    return jax.tree.map(lambda s, a: jax.make_array_from_process_local_data(s, a), sharding,
                        local_batch)


def iterate_batches(data_cfg: Any, split: str, batch_size: int) -> Iterator[Batch]:
    """One pass over `split` in dataset order with a final smaller batch (for evaluation)."""
    return make_iterator(data_cfg, split, batch_size, seed=0, shuffle=False, drop_remainder=False,
                         process_index=0, process_count=1, num_epochs=1)
