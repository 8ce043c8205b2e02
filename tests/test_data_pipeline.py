"""The input pipeline: per-process slices, seeded order, resumable state, global batches."""
import json

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from idmvae_jax import data

NUM_TRAIN = 103  # not a multiple of the batch size, so remainders are exercised


@pytest.fixture(scope="module")
def npz_cfg(tmp_path_factory):
    """A small generic dataset: an image view, a vector view, shared and private labels."""
    folder = tmp_path_factory.mktemp("npz_user")
    rng = np.random.default_rng(0)
    for name, n in (("train", NUM_TRAIN), ("test", 20)):
        np.savez(folder / f"{name}.npz",
                 x_0=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                 x_1=rng.normal(size=(n, 6)).astype(np.float32),
                 y_shared=np.arange(n) % 3, y_private=rng.integers(0, 2, (n, 2)))
    return dict(name="npz", path=str(folder), cache_dir=str(tmp_path_factory.mktemp("npz_cache")))


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "x":
            for u, v in zip(a["x"], b["x"]):
                np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_array_equal(a[key], b[key])


def test_no_tensorflow_needed(npz_cfg):
    import sys
    data.load_split(npz_cfg, "test")
    assert "tensorflow" not in sys.modules


def test_batch_layout(npz_cfg):
    it = data.make_iterator(npz_cfg, "train", 16, seed=0, process_index=0, process_count=1)
    batch = next(it)
    it.close()
    assert batch["x"][0].shape == (16, 8, 8, 3) and batch["x"][0].dtype == np.uint8
    assert batch["x"][1].shape == (16, 6) and batch["x"][1].dtype == np.float32
    assert batch["y_shared"].dtype == np.int32 and batch["y_private"].shape == (16, 2)
    assert batch["index"].dtype == np.int64
    full = data.load_split(npz_cfg, "train")
    np.testing.assert_array_equal(full["index"], np.arange(NUM_TRAIN))
    np.testing.assert_array_equal(batch["x"][1], full["x"][1][batch["index"]])
    np.testing.assert_array_equal(batch["y_shared"], batch["index"] % 3)


def _epoch(cfg, batch_size, process_index, process_count, **kw):
    return list(data.make_iterator(cfg, "train", batch_size, seed=5, process_index=process_index,
                                   process_count=process_count, num_epochs=1, **kw))


@pytest.mark.parametrize("count", [1, 2, 4])
def test_process_slices_are_disjoint_cover_the_split_and_keep_the_global_order(npz_cfg, count):
    local = [_epoch(npz_cfg, 8, p, count, drop_remainder=False) for p in range(count)]
    seen = [np.concatenate([b["index"] for b in batches]) for batches in local]
    assert all(b["index"].shape[0] <= 8 // count for batches in local for b in batches)
    for p in range(count):
        for q in range(p):
            assert set(seen[p]).isdisjoint(seen[q])
    assert np.sort(np.concatenate(seen)).tolist() == list(range(NUM_TRAIN))
    # Per global batch (the short last one too), the slices are the single-process batch in order.
    single = _epoch(npz_cfg, 8, 0, 1, drop_remainder=False)
    assert [len(batches) for batches in local] == [len(single)] * count == [13] * count
    for k, batch in enumerate(single):
        np.testing.assert_array_equal(
            np.concatenate([local[p][k]["index"] for p in range(count)]), batch["index"])


def test_order_is_a_function_of_seed_and_epoch(npz_cfg):
    def epoch_ids(seed):
        it = data.make_iterator(npz_cfg, "train", 10, seed=seed, process_index=0, process_count=1,
                                num_epochs=2)
        ids = [b["index"] for b in it]
        return np.concatenate(ids[:10]), np.concatenate(ids[10:])
    first, second = epoch_ids(1)
    again_first, again_second = epoch_ids(1)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)  # reshuffled per epoch
    assert not np.array_equal(first, epoch_ids(2)[0])
    assert len(set(first)) == 100  # drop_remainder: 10 full batches, no repeats


@pytest.mark.parametrize("prefetch,decode_threads", [(0, 1), (3, 1), (3, 2)])
def test_resume_yields_the_same_batches(npz_cfg, prefetch, decode_threads):
    cfg = dict(npz_cfg, prefetch=prefetch, decode_threads=decode_threads)
    original = data.make_iterator(cfg, "train", 16, seed=3, process_index=0, process_count=1)
    _take(original, 9)  # crosses an epoch boundary (6 batches per epoch)
    state = original.get_state()
    assert (state["epoch"], state["batch"]) == (1, 3)
    state = json.loads(json.dumps(state))  # a checkpoint stores it as JSON
    expected = _take(original, 8)  # crosses the next epoch boundary
    restored = data.make_iterator(cfg, "train", 16, seed=3, process_index=0, process_count=1)
    next(restored)  # prefetching has started from elsewhere
    restored.set_state(state)
    for want, got in zip(expected, _take(restored, 8)):
        _same(want, got)
    original.close()
    restored.close()


def test_state_is_independent_of_the_process_count(npz_cfg):
    single = data.make_iterator(npz_cfg, "train", 16, seed=3, process_index=0, process_count=1)
    _take(single, 4)
    state = json.loads(json.dumps(single.get_state()))
    expected = _take(single, 4)
    halves = [data.make_iterator(npz_cfg, "train", 16, seed=3, process_index=p, process_count=2)
              for p in range(2)]
    for it in halves:
        it.set_state(state)
        assert it.get_state() == state
    for want in expected:
        np.testing.assert_array_equal(np.concatenate([next(it)["index"] for it in halves]),
                                      want["index"])
    for it in halves + [single]:
        it.close()


def test_state_from_other_settings_is_rejected(npz_cfg):
    it = data.make_iterator(npz_cfg, "train", 16, seed=3, process_index=0, process_count=1)
    state = it.get_state()
    it.close()
    for field, kwargs in (("seed", dict(batch_size=16, seed=4)),
                          ("global_batch_size", dict(batch_size=8, seed=3)),
                          ("shuffle", dict(batch_size=16, seed=3, shuffle=False))):
        other = data.make_iterator(npz_cfg, "train", process_index=0, process_count=1, **kwargs)
        with pytest.raises(ValueError, match=field):
            other.set_state(state)
        other.close()
    with pytest.raises(ValueError, match="num_examples"):  # another split
        data.make_iterator(npz_cfg, "test", 16, seed=3, process_index=0,
                           process_count=1).set_state(state)
    with pytest.raises(ValueError, match="invalid"):
        data.make_iterator(npz_cfg, "train", 16, seed=3, process_index=0,
                           process_count=1).set_state(dict(state, batch=6))


def test_num_epochs_and_remainder(npz_cfg):
    batches = list(data.make_iterator(npz_cfg, "test", 8, seed=0, shuffle=False,
                                      drop_remainder=False, process_index=0, process_count=1,
                                      num_epochs=1))
    assert [b["index"].shape[0] for b in batches] == [8, 8, 4]
    it = data.make_iterator(npz_cfg, "test", 8, seed=0, process_index=0, process_count=1,
                            num_epochs=2)
    assert len(list(it)) == 4 and it.get_state()["epoch"] == 2  # drop_remainder: 2 per epoch
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]), np.arange(20))
    with pytest.raises(ValueError, match="fewer than batch_size"):
        data.make_iterator(npz_cfg, "test", 64, seed=0, process_index=0, process_count=1)
    with pytest.raises(ValueError, match="multiple of the process count"):
        data.make_iterator(npz_cfg, "train", 9, seed=0, process_index=0, process_count=2)
    with pytest.raises(ValueError, match="no split 'val'"):
        data.make_iterator(npz_cfg, "val", 8, seed=0, process_index=0, process_count=1)


def test_to_global_batch_on_a_mesh(npz_cfg):
    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    it = data.make_iterator(npz_cfg, "train", 16, seed=0)  # jax.process_count() == 1
    local = next(it)
    it.close()
    batch = data.to_global_batch(local, sharding)
    assert isinstance(batch["x"], list) and len(batch["x"]) == 2
    assert batch["x"][0].shape == (16, 8, 8, 3) and batch["x"][0].sharding == sharding
    assert batch["y_private"].shape == (16, 2)
    np.testing.assert_array_equal(np.asarray(batch["x"][1]), local["x"][1])
    np.testing.assert_array_equal(np.asarray(batch["index"]), local["index"])
