"""Coherence metrics (SPEC §5) on constructed cases with known answers.

The views are vectors [one-hot(shared label), one-hot(private label of the view)] and the
"classifiers" read the label back with an argmax, so an oracle generator scores exactly 1 and a
generator that ignores its input scores chance.
"""
import math

import numpy as np
import pytest

from idmvae_jax.evaluation import coherence as coh

K, P, M = 10, 4, 3  # shared classes, private classes, views


def make_data(n, seed=0, m=M):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    yp = rng.integers(0, P, (n, m))
    xs = [encode(y, yp[:, v]) for v in range(m)]
    return xs, y, yp


def encode(shared, private):
    return np.concatenate([np.eye(K)[shared], np.eye(P)[private]], axis=1).astype(np.float32)


def predict_shared(view, x):
    return np.argmax(np.asarray(x)[:, :K], axis=1)


def predict_private(view, x):
    return np.argmax(np.asarray(x)[:, K:], axis=1)


def rng_for(idx, salt):
    """Randomness that depends only on the example indices (batch-size invariant)."""
    return [np.random.default_rng([salt, int(i)]) for i in idx]


def oracle_fns(m=M):
    def cross(xs, idx):
        rs = rng_for(idx, 1)
        return [[encode(predict_shared(e, xs[e]), [r.integers(P) for r in rs]) for _ in range(m)]
                for e in range(m)]

    def private(xs, idx):
        rs = rng_for(idx, 2)
        return [encode([r.integers(K) for r in rs], predict_private(e, xs[e])) for e in range(m)]

    def unconditional(idx):
        rs = rng_for(idx, 3)
        labels = [r.integers(K) for r in rs]
        return [encode(labels, [r.integers(P) for r in rs]) for _ in range(m)]

    return cross, private, unconditional


def ignoring_fns(m=M):
    def cross(xs, idx):
        rs = rng_for(idx, 4)
        return [[encode([r.integers(K) for r in rs], [r.integers(P) for r in rs]) for _ in range(m)]
                for _ in range(m)]

    def private(xs, idx):
        rs = rng_for(idx, 5)
        return [encode([r.integers(K) for r in rs], [r.integers(P) for r in rs]) for _ in range(m)]

    def unconditional(idx):
        rs = rng_for(idx, 6)
        return [encode([r.integers(K) for r in rs], [r.integers(P) for r in rs]) for _ in range(m)]

    return cross, private, unconditional


def run(fns, xs, y, yp, batch_size=64, **kw):
    cross, private, unconditional = fns
    return coh.coherence_metrics(
        cross_fn=cross, private_fn=private, unconditional_fn=unconditional,
        predict_shared=predict_shared, predict_private=predict_private, xs=xs, shared_labels=y,
        private_labels=yp, num_shared_classes=K, batch_size=batch_size, **kw)


# ------------------------------------------------------------------------------ scoring
def test_matrix_self_and_cross_by_hand():
    y = np.array([0, 1, 2, 3])
    preds = np.tile(y, (2, 2, 1))
    preds[0, 1] = [0, 1, 9, 9]  # 0 -> 1: half right
    preds[1, 1] = [9, 9, 9, 3]  # 1 -> 1: a quarter right
    mat = coh.conditional_coherence_matrix(preds, y)
    np.testing.assert_allclose(mat, [[1.0, 0.5], [1.0, 0.25]])
    sc = coh.self_and_cross(mat)
    assert sc["self"] == pytest.approx((1.0 + 0.25) / 2)
    assert sc["cross"] == pytest.approx((1.0 + 0.5) / 2)  # d=0: from e=1; d=1: from e=0


def test_cross_is_mean_over_targets_of_mean_over_sources():
    mat = np.arange(9, dtype=float).reshape(3, 3) / 10
    expected = np.mean([np.mean([mat[e, d] for e in range(3) if e != d]) for d in range(3)])
    assert coh.self_and_cross(mat)["cross"] == pytest.approx(expected)
    assert coh.self_and_cross(mat)["self"] == pytest.approx(np.mean(np.diag(mat)))
    assert math.isnan(coh.self_and_cross(np.ones((1, 1)))["cross"])


def test_agreement_and_entropy():
    preds = np.array([[0, 1, 2, 3], [0, 1, 5, 3], [0, 2, 2, 3]])
    assert coh.unconditional_agreement(preds) == pytest.approx(0.5)
    assert coh.label_entropy(np.zeros(100, int), K) == 0.0  # collapsed
    assert coh.label_entropy(np.arange(K * 7) % K, K) == pytest.approx(math.log(K))
    assert coh.label_entropy([0, 0, 1, 1], K) == pytest.approx(math.log(2))
    assert coh.max_entropy(K) == pytest.approx(math.log(K))
    np.testing.assert_array_equal(coh.label_histogram([1, 1, 3], 4), [0, 2, 0, 1])
    assert coh.label_agreement(np.array([[1, 2], [1, 0]]), np.array([1, 2])) == pytest.approx(0.75)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        coh.conditional_coherence_matrix(np.zeros((2, 2, 3)), np.zeros(4))
    with pytest.raises(ValueError):
        coh.self_and_cross(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        coh.unconditional_agreement(np.zeros(3))


# ------------------------------------------------------------------------------ drivers
def test_oracle_generator_is_perfectly_coherent():
    xs, y, yp = make_data(3000)
    metrics, details = run(oracle_fns(), xs, y, yp, batch_size=256)
    assert metrics["coherence/self"] == 1.0
    assert metrics["coherence/cross"] == 1.0
    assert metrics["coherence/unconditional"] == 1.0
    assert metrics["coherence/private"] == 1.0
    np.testing.assert_array_equal(details["matrix"], np.ones((M, M)))
    # The oracle's private generations carry no shared information: leak at chance.
    assert metrics["coherence/private_leak"] == pytest.approx(1 / K, abs=0.02)
    # ... and its unconditional samples cover the classes evenly.
    assert metrics["coherence/unconditional_entropy"] == pytest.approx(math.log(K), abs=0.01)
    assert details["histogram"].sum() == 3000 * M


def test_generator_ignoring_its_input_is_at_chance():
    xs, y, yp = make_data(3000)
    metrics, _ = run(ignoring_fns(), xs, y, yp, batch_size=256)
    assert metrics["coherence/self"] == pytest.approx(1 / K, abs=0.02)
    assert metrics["coherence/cross"] == pytest.approx(1 / K, abs=0.02)
    assert metrics["coherence/private"] == pytest.approx(1 / P, abs=0.03)
    assert metrics["coherence/private_leak"] == pytest.approx(1 / K, abs=0.02)
    # M independent labels agree with probability K^-(M-1).
    assert metrics["coherence/unconditional"] == pytest.approx(K ** -(M - 1), abs=0.01)


def test_collapsed_generator_agrees_trivially_but_has_zero_entropy():
    xs, y, yp = make_data(200)
    cross, private, _ = oracle_fns()
    unconditional = lambda idx: [encode(np.full(len(idx), 3), np.zeros(len(idx), int))] * M  # noqa: E731
    metrics, _ = run((cross, private, unconditional), xs, y, yp)
    assert metrics["coherence/unconditional"] == 1.0
    assert metrics["coherence/unconditional_entropy"] == 0.0


@pytest.mark.parametrize("batch_size", [1, 7, 64, 500])
def test_batching_does_not_change_the_numbers(batch_size):
    """Padding of the last batch is trimmed, and per-index randomness makes the result exact."""
    xs, y, yp = make_data(101, seed=3)
    ref, ref_details = run(ignoring_fns(), xs, y, yp, batch_size=101)
    got, details = run(ignoring_fns(), xs, y, yp, batch_size=batch_size)
    assert got == ref
    np.testing.assert_array_equal(details["matrix"], ref_details["matrix"])


def test_callback_sees_every_example_once():
    xs, y, yp = make_data(50)
    seen = {"cross": [], "private": [], "unconditional": []}

    def on_batch(kind, start, out):
        n = len(out[0][0]) if kind == "cross" else len(out[0])
        seen[kind].append((start, n))

    run(oracle_fns(), xs, y, yp, batch_size=16, on_batch=on_batch, num_unconditional=20)
    assert seen["cross"] == [(0, 16), (16, 16), (32, 16), (48, 2)]
    assert seen["private"] == seen["cross"]
    assert seen["unconditional"] == [(0, 16), (16, 4)]


def test_without_private_labels_the_private_key_is_omitted_and_suffix_applies():
    xs, y, _ = make_data(40)
    cross, private, unconditional = oracle_fns()
    metrics, details = coh.coherence_metrics(
        cross_fn=cross, private_fn=private, unconditional_fn=unconditional,
        predict_shared=predict_shared, predict_private=None, xs=xs, shared_labels=y,
        private_labels=None, num_shared_classes=K, batch_size=16, suffix="_diffusion")
    assert set(metrics) == {"coherence/self_diffusion", "coherence/cross_diffusion",
                            "coherence/unconditional_diffusion",
                            "coherence/unconditional_entropy_diffusion",
                            "coherence/private_leak_diffusion"}
    assert "private_per_view" not in details


def test_private_coherence_only_on_views_with_a_private_label():
    xs, y, yp = make_data(80)
    yp[:, 1] = -1  # view 1 has no private label
    calls = []

    def predict_private_logged(view, x):
        calls.append(view)
        return predict_private(view, x)

    _, private, _ = oracle_fns()
    out = coh.private_coherence(private, predict_shared, predict_private_logged, xs, y, yp,
                                batch_size=32, private_views=[0, 2])
    assert out["private"] == 1.0
    assert np.isnan(out["private_per_view"][1])
    assert 1 not in calls
