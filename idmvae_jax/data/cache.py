"""Building prepared datasets once and finding them again: the cache.

Layout: ``<cache_root>/<builder>/<key>/<builder>/1.0.0/`` is the TFDS directory of one prepared
dataset (ArrayRecord shards, TFDS's dataset_info.json/features.json) plus ``idmvae_info.json`` (the
DatasetInfo, written last: its presence marks a complete build) and ``source.json`` (what the key
was computed from).

The key is the SHA-256 of (builder name and version, absolute source path, fingerprint of the source
files, the settings that change the data). Raw inputs are validated before the key is computed, so
a broken or different folder never reaches an old cache entry. A file lock serialises concurrent
builds of the same key (several processes or test workers).

A bucket cache (`data.cache_dir=gs://...`): the key is computed as above (the sources are read
locally), and a dataset already in the bucket under it is read from there; one that is not is
built in the local cache (`DataOptions.local_cache_root`) and copied up, `idmvae_info.json` last,
so a reader never sees a partial copy. Processes that find it missing at the same moment each copy
the same bytes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import shutil
import sys
import threading
from typing import Any

from idmvae_jax import storage
from idmvae_jax.data import sources
from idmvae_jax.data.builders import base
from idmvae_jax.data.info import DatasetInfo
from idmvae_jax.data.options import USER_FOLDER_DATASETS, DataOptions

INFO_FILE = "idmvae_info.json"
SOURCE_FILE = "source.json"

# In-process memo: options -> (prepared directory, {source file: (size, mtime_ns)}).
_MEMO: dict[DataOptions, tuple[str, dict[str, tuple[int, int]]]] = {}
_MEMO_LOCK = threading.Lock()


def make_source(options: DataOptions) -> base.DatasetSource:
    """The DatasetSource for `options.name` (downloads, if any and allowed, happen in validate)."""
    from idmvae_jax.data.builders import registry  # builders import tfds; keep it lazy

    return registry.make_source(options)


def cache_key(source: base.DatasetSource) -> tuple[str, dict[str, Any]]:
    """(16-hex-digit key, the JSON-able inputs it hashes) of a validated source."""
    inputs = {
        "builder": source.builder_name,
        "version": str(base.SourceBuilder.VERSION),
        "source_path": source.source_path,
        "source_fingerprint": sources.fingerprint(source.source_files()),
        "params": source.cache_params(),
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return digest[:16], inputs


def _stat_signature(files: list[str]) -> dict[str, tuple[int, int]]:
    signature = {}
    for path in files:
        stat = os.stat(path)
        signature[path] = (stat.st_size, stat.st_mtime_ns)
    return signature


def _memo_hit(options: DataOptions) -> str | None:
    with _MEMO_LOCK:
        entry = _MEMO.get(options)
    if entry is None:
        return None
    directory, signature = entry
    try:
        if _stat_signature(list(signature)) == signature and (storage.path(directory) / INFO_FILE).exists():
            return directory
    except OSError:
        pass
    return None


def prepare(data_cfg: Any) -> str:
    """Builds the dataset `data_cfg` selects unless already cached; returns its directory.

    Idempotent. Raw inputs are validated first (ValueError / MissingSourceError with the fix), then
    the cache is consulted. Returns the TFDS dataset directory (readable with
    `tfds.builder_from_directory`).
    """
    options = DataOptions.from_config(data_cfg)
    hit = _memo_hit(options)
    if hit is not None:
        return hit
    if storage.is_url(options.cache_root):
        return _prepare_in_bucket(options)
    source = make_source(options)
    source.validate()
    key, inputs = cache_key(source)
    data_dir = os.path.join(options.cache_root, source.builder_name, key)
    builder = base.make_builder(source, data_dir)
    directory = os.fspath(builder.data_dir)
    if not os.path.isfile(os.path.join(directory, INFO_FILE)):
        os.makedirs(data_dir, exist_ok=True)
        with _file_lock(data_dir + ".lock"):
            if not os.path.isfile(os.path.join(directory, INFO_FILE)):
                _build(builder, source, directory, inputs)
    with _MEMO_LOCK:
        _MEMO[options] = (directory, _stat_signature(source.source_files()))
    return directory


def _prepare_in_bucket(options: DataOptions) -> str:
    """`prepare` for a bucket cache root (module docstring); returns the bucket directory."""
    local_options = dataclasses.replace(options, cache_dir=options.local_cache_root, path=(
        options.path if options.name in USER_FOLDER_DATASETS else ""))
    source = make_source(local_options)
    source.validate()
    key, _ = cache_key(source)
    local_data_dir = os.path.join(local_options.cache_root, source.builder_name, key)
    local_dir = os.fspath(base.make_builder(source, local_data_dir).data_dir)
    remote = storage.path(options.cache_root) / os.path.relpath(local_dir, local_options.cache_root)
    if not (remote / INFO_FILE).exists():
        local_dir = prepare(local_options)
        files = sorted(os.path.relpath(os.path.join(d, f), local_dir)
                       for d, _, names in os.walk(local_dir) for f in names)
        for name in [f for f in files if f != INFO_FILE] + [INFO_FILE]:
            with open(os.path.join(local_dir, name), "rb") as handle:
                storage.write_bytes(remote / name, handle.read())
    with _MEMO_LOCK:
        _MEMO[options] = (str(remote), _stat_signature(source.source_files()))
    return str(remote)


def _build(builder: base.SourceBuilder, source: base.DatasetSource, directory: str,
           inputs: dict[str, Any]) -> None:
    if os.path.exists(directory):  # an interrupted build: TFDS finished but our marker is missing
        shutil.rmtree(directory)
    import tensorflow_datasets as tfds

    # TFDS prints "Downloading and preparing dataset Unknown size ..." for data that is never
    # downloaded, and draws progress bars (escape codes in log files): one line of ours instead.
    print(f"idmvae_jax: preparing {source.builder_name} once in {directory} (offline; later runs reuse it)",
          file=sys.stderr, flush=True)
    tfds.disable_progress_bar()
    with contextlib.redirect_stdout(io.StringIO()):
        builder.download_and_prepare()
    builder.write_extras()
    storage.write_text(os.path.join(directory, SOURCE_FILE), json.dumps(inputs, indent=2, sort_keys=True))
    storage.write_text(os.path.join(directory, INFO_FILE), source.dataset_info().to_json())


@contextlib.contextmanager
def _file_lock(path: str):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_prepared_info(directory: str) -> DatasetInfo:
    """The DatasetInfo stored in a prepared directory."""
    path = storage.path(directory) / INFO_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: {directory} is not a complete prepared dataset; "
                                "call idmvae_jax.data.prepare(config.data) to build it.")
    return DatasetInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))


def get_dataset_info(data_cfg: Any) -> DatasetInfo:
    """DatasetInfo of the configured dataset (prepares it first if needed), restricted to
    `data.num_views` views when that is set."""
    options = DataOptions.from_config(data_cfg)
    return read_prepared_info(prepare(options)).select_views(options.num_views)
