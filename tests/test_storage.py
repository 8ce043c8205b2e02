"""Local paths and bucket URLs through one abstraction (`idmvae_jax.storage`), on the GCS emulator."""
import json
import os
import subprocess
import sys
import time

import pytest

import gcs_emulator
from idmvae_jax import storage
from idmvae_jax.training import writers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_local_paths_are_absolute_and_urls_keep_their_scheme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(storage.path("run")) == str(tmp_path / "run")
    assert storage.scheme("gs://b/run") == "gs" and not storage.is_url("run")
    with pytest.raises(storage.StorageError, match="unsupported URL scheme ftp"):
        storage.path("ftp://host/run")
    assert not os.path.exists(tmp_path / "gs:")


def test_atomic_writes_and_reads_on_local_disk_and_in_a_bucket(tmp_path, gcs_emulator):
    for root in (str(tmp_path), f"gs://{gcs_emulator.bucket}/atomic"):
        target = storage.path(root) / "sub" / "a.json"
        storage.write_text(target, "one")
        storage.write_text(target, "two")
        assert target.read_text() == "two"
        assert [p.name for p in target.parent.iterdir()] == ["a.json"]  # no temporary left
        storage.remove(target)
        storage.remove(target)  # absent: no error
        assert not target.exists()


def test_metrics_in_a_bucket_keep_one_row_per_step_across_a_resume(gcs_emulator):
    workdir = f"gs://{gcs_emulator.bucket}/metrics_resume"
    first = writers.MetricWriter(workdir, tensorboard=True)
    for step in (2, 4, 6):
        first.write_scalars(step, {"total": float(step)})
    first.close()  # then the run dies; its last checkpoint was step 4
    resumed = writers.MetricWriter(workdir, tensorboard=True, start_step=4)
    for step in (6, 8):
        resumed.write_scalars(step, {"total": step + 0.5})
    resumed.close()
    rows = writers.read_metrics(workdir)
    assert [(r["step"], r["total"]) for r in rows] == [(2, 2.0), (4, 4.0), (6, 6.5), (8, 8.5)]
    events = list((storage.path(workdir) / "tensorboard").iterdir())
    assert len(events) == 2 and all(e.read_bytes() for e in events)


def test_a_bucket_that_refuses_the_write_is_one_message(gcs_emulator):
    with pytest.raises(storage.StorageError) as info:
        storage.check_writable("gs://no-such-bucket/run")
    assert "workdir gs://no-such-bucket/run cannot be written" in str(info.value)
    assert "credentials" in str(info.value)


def test_an_unreachable_bucket_fails_fast_with_the_path_and_the_fix(tmp_path):
    dead = f"http://127.0.0.1:{gcs_emulator.free_port()}"  # nothing listens there
    env = dict(os.environ, **gcs_emulator.emulator_env(dead), IDMVAE_STORAGE_TIMEOUT_S="3",
               JAX_PLATFORMS="cpu")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "idmvae_jax.main", "--config=configs/polymnist_quadrant.py:tiny",
                          "--workdir=gs://unreachable/run"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert time.monotonic() - t0 < 60
    errors = [line for line in out.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == ["ERROR: workdir gs://unreachable/run: no answer from the bucket within 3 s; check the "
                      "bucket name, the network, and credentials (`gcloud auth application-default login`, "
                      "or GOOGLE_APPLICATION_CREDENTIALS=key.json)"], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert json.loads(json.dumps(errors))  # one line


def test_a_prepared_dataset_in_a_bucket_reads_as_the_local_one(gcs_emulator, tmp_path):
    """data.cache_dir=gs://...: built locally once, copied up (info file last), then read from the
    bucket (ArrayRecord over gs://) by load_split and the training iterator."""
    import numpy as np

    from idmvae_jax import data
    from idmvae_jax.data import cache

    rng = np.random.default_rng(0)
    for name, n in (("train", 40), ("test", 12)):
        np.savez(tmp_path / f"{name}.npz", x_0=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                 x_1=rng.normal(size=(n, 6)).astype(np.float32), y_shared=np.arange(n) % 3)
    local = dict(name="npz", path=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    remote = dict(local, cache_dir=f"gs://{gcs_emulator.bucket}/{tmp_path.name}/data")
    directory = data.prepare(remote)
    assert directory.startswith(remote["cache_dir"] + "/") and (storage.path(directory) / cache.INFO_FILE).exists()
    cache._MEMO.clear()  # found in the bucket, not rebuilt
    assert data.prepare(remote) == directory
    want, got = data.load_split(local, "test"), data.load_split(remote, "test")
    assert want.keys() == got.keys()
    for key in want:
        for a, b in zip(want[key], got[key]):  # the views of "x", the rows of the others
            np.testing.assert_array_equal(a, b)
    it = data.make_iterator(remote, "train", 8, seed=0, process_index=0, process_count=1)
    batch = next(it)
    it.close()
    np.testing.assert_array_equal(batch["x"][1], data.load_split(local, "train")["x"][1][batch["index"]])
