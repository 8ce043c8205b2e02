"""Input pipeline on grain: seeded per-epoch order, per-process slices, prefetch, resumable state.

Order. For split size N and global batch B, position i of epoch e holds example
``grain.MapDataset.range(N).shuffle(s).repeat()[e·N + i]`` (grain's index shuffle, seed s + e for
epoch e, s a 32-bit hash of `seed`; example i without shuffling). Global batch k of epoch e is
positions [k·B, (k+1)·B) of the epoch (a short last one only with drop_remainder=False), a
function of (seed, e) alone, whatever the number of processes.

Slices. Process p of P yields rows [p·B/P, (p+1)·B/P) of each global batch (`np.array_split`
parts of a short one), so the processes' examples of an epoch are disjoint and cover it, and
`to_global_batch` reassembles the single-process batch. Element j of a grain MapDataset is this
process's j-th batch; `to_iter_dataset` reads up to `data.prefetch` batches ahead in
`data.decode_threads` threads (grain.ReadOptions; prefetch 0 reads in the caller's thread).

State. ``get_state()`` is (epoch, batch in epoch) of the next batch the caller receives plus the
settings the order depends on: JSON ints and strings, independent of P. Batches read ahead are
not counted, so ``set_state`` replays exactly what the original iterator would yield next.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from idmvae_jax.data import cache as cache_lib
from idmvae_jax.data.info import DatasetInfo
from idmvae_jax.data.options import DataOptions
from idmvae_jax.errors import DataError

Batch = dict[str, Any]


class SplitReader:
    """Random access to one split of a prepared dataset (ArrayRecord, no TensorFlow) as numpy."""

    def __init__(self, directory: str, split: str, info: DatasetInfo):
        if split not in info.splits:
            raise DataError(f"{info.name} has no split {split!r}; available: {sorted(info.splits)}")
        self._source = tfds.builder_from_directory(directory).as_data_source(split=split)
        self.info, self.split, self.num_examples = info, split, len(self._source)
        if self.num_examples != info.splits[split]:
            raise DataError(f"{directory}: split {split} holds {self.num_examples} examples but its "
                             f"info says {info.splits[split]}; delete the directory to rebuild it.")

    def read(self, indices: Sequence[int]) -> Batch:
        """The examples at `indices`, in that order, as one batch dict (layout: `make_iterator`)."""
        examples = self._source.__getitems__([int(i) for i in indices])
        info, views = self.info, self.info.views
        stack = lambda key, dtype=None: np.stack([np.asarray(ex[key], dtype) for ex in examples])
        batch: Batch = {"x": [stack(f"x_{m}", v.dtype).reshape((len(examples),) + v.shape)
                              for m, v in enumerate(views)], "y_shared": stack("y_shared", np.int32)}
        if info.num_private_classes is not None:
            batch["y_private"] = stack("y_private", np.int32)[:, :len(views)]
        batch["index"] = stack("index", np.int64)
        for key in info.extra_keys:
            batch[key] = stack(key)
            batch[key] = batch[key][:, :len(views)] if batch[key].ndim == 2 else batch[key]
        return batch


class BatchIterator(Iterator[Batch]):
    """Process-local batches of a split on grain; order, slices and state: module docstring."""

    def __init__(self, reader: SplitReader, *, global_batch_size: int, seed: int, shuffle: bool,
                 drop_remainder: bool, process_index: int, process_count: int,
                 num_epochs: int | None, prefetch: int, decode_threads: int = 1):
        import grain  # here, not at the top: it imports jax, which load_split does not need

        n, size, p, count = reader.num_examples, global_batch_size, process_index, process_count
        if size < 1 or size % count:
            raise DataError(f"batch_size={size} must be a positive multiple of the process count "
                             f"{count}")
        if not 0 <= p < count:
            raise ValueError(f"process_index={p} not in [0, {count})")
        self.batches_per_epoch = per = n // size if drop_remainder else -(-n // size)
        if per == 0:
            raise DataError(f"split {reader.split} has {n} examples, fewer than batch_size={size}; "
                             "lower the batch size or use drop_remainder=False")
        self._settings = {"seed": int(seed), "global_batch_size": size, "num_examples": n,
                          "shuffle": int(shuffle), "drop_remainder": int(drop_remainder),
                          "split": reader.split, "dataset": reader.info.name}
        order = grain.MapDataset.range(n)
        if shuffle:  # hashed, so that seed s's epoch 1 is not seed s+1's epoch 0
            order = order.shuffle(int(np.random.SeedSequence(int(seed)).generate_state(1)[0]))
        order = order.repeat()

        def read(j: int) -> Batch:
            epoch, k = divmod(j, per)
            start = epoch * n + k * size
            rows = np.array_split(np.arange(start, min(start + size, epoch * n + n)), count)[p]
            return reader.read([order[int(i)] for i in rows])

        self._length = sys.maxsize if num_epochs is None else per * num_epochs
        options = grain.ReadOptions(num_threads=min(decode_threads, prefetch),
                                    prefetch_buffer_size=prefetch)
        self._it = iter(grain.MapDataset.range(self._length).map(read).to_iter_dataset(options))

    def __next__(self) -> Batch:
        return next(self._it)

    def get_state(self) -> dict[str, Any]:
        """Position of the next batch and the settings it depends on (JSON-serialisable)."""
        epoch, batch = divmod(self._it.get_state()["next_index"], self.batches_per_epoch)
        return {"epoch": epoch, "batch": batch, **self._settings}

    def set_state(self, state: dict[str, Any]) -> None:
        """Moves to `state` (from `get_state`); ValueError naming the field for other settings."""
        for key, value in self._settings.items():
            if key in state and state[key] != value:
                raise DataError(f"iterator state has {key}={state[key]!r} but this iterator has "
                                 f"{value!r}; restore with the settings of the saved run")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch < self.batches_per_epoch:
            raise ValueError(f"iterator state position (epoch {epoch}, batch {batch}) is invalid")
        self._it.set_state({"next_index": min(epoch * self.batches_per_epoch + batch, self._length)})

    def close(self) -> None:
        """Stops grain's read-ahead threads."""
        self._it.close()


def open_split(data_cfg: Any, split: str) -> SplitReader:
    """Prepares the dataset if needed and opens `split` for random access."""
    options = DataOptions.from_config(data_cfg)
    directory = cache_lib.prepare(options)
    info = cache_lib.read_prepared_info(directory).select_views(options.num_views)
    return SplitReader(directory, split, info)


def make_iterator(data_cfg: Any, split: str, batch_size: int, *, seed: int, shuffle: bool = True,
                  drop_remainder: bool = True, process_index: int | None = None,
                  process_count: int | None = None, num_epochs: int | None = None) -> BatchIterator:
    """Iterator over process-local numpy batches of `split` (batch layout: `idmvae_jax.data`).

    `batch_size` is the GLOBAL batch B; each process yields B / process_count rows. The order of
    epoch e depends only on (seed, e); `shuffle` reshuffles every epoch; `drop_remainder` drops
    each epoch's last short global batch; `num_epochs` None never stops; process_index and
    process_count default to `jax.process_index()` and `jax.process_count()`.
    """
    if process_index is None or process_count is None:
        import jax  # only for the defaults

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    options = DataOptions.from_config(data_cfg)
    return BatchIterator(open_split(options, split), global_batch_size=batch_size, seed=seed,
                         shuffle=shuffle, drop_remainder=drop_remainder, process_index=process_index,
                         process_count=process_count, num_epochs=num_epochs,
                         prefetch=options.prefetch, decode_threads=options.decode_threads)


def load_split(data_cfg: Any, split: str, max_examples: int | None = None) -> Batch:
    """A whole split (or its first `max_examples` examples) in dataset order, as one batch dict."""
    reader = open_split(data_cfg, split)
    count = reader.num_examples if max_examples is None else min(max_examples, reader.num_examples)
    parts = [reader.read(range(start, min(start + 1024, count))) for start in range(0, count, 1024)]
    if not parts:
        raise ValueError(f"split {split} is empty or max_examples={max_examples} selects nothing")
    return {key: ([np.concatenate(xs) for xs in zip(*(p["x"] for p in parts))] if key == "x"
                  else np.concatenate([p[key] for p in parts])) for key in parts[0]}


def to_global_batch(local_batch: Batch, sharding) -> Batch:
    """Process-local batches as global `jax.Array`s (lists stay lists).

    `sharding`: one `jax.sharding.Sharding` for every leaf (e.g. NamedSharding(mesh, P('data')))
    or a pytree of them matching the batch.
    """
    import jax

    if isinstance(sharding, jax.sharding.Sharding):
        sharding = jax.tree.map(lambda _, s=sharding: s, local_batch)
    return jax.tree.map(jax.make_array_from_process_local_data, sharding, local_batch)


def iterate_batches(data_cfg: Any, split: str, batch_size: int) -> Iterator[Batch]:
    """One pass over `split` in dataset order with a final smaller batch (for evaluation)."""
    return make_iterator(data_cfg, split, batch_size, seed=0, shuffle=False, drop_remainder=False,
                         process_index=0, process_count=1, num_epochs=1)
