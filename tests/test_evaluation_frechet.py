"""Fréchet distance vs independent closed forms and an eigendecomposition route."""
import numpy as np
import pytest
import scipy.linalg

from idmvae_jax.evaluation import feature_statistics, frechet_distance, frechet_distance_from_features


def _random_spd(rng, f, rank=None):
    a = rng.normal(size=(f, rank or f))
    return a @ a.T / (rank or f) + (0.0 if rank else 0.1) * np.eye(f)


def _reference(mu1, s1, mu2, s2):
    """tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), the latter symmetric PSD: use eigh only."""
    w1, v1 = scipy.linalg.eigh(s1)
    r1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    w = scipy.linalg.eigvalsh(r1 @ s2 @ r1)
    tr = np.sum(np.sqrt(np.clip(w, 0, None)))
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * tr


def test_one_dimensional_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    got = frechet_distance([1.5], [[0.7 ** 2]], [-0.5], [[2.0 ** 2]])
    assert got == pytest.approx((1.5 + 0.5) ** 2 + (0.7 - 2.0) ** 2, rel=1e-10)


def test_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_commuting_covariances_share_eigenvectors():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a, b = rng.uniform(0.2, 2, 8), rng.uniform(0.2, 2, 8)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    mu = rng.normal(size=8)
    expected = np.sum(a + b - 2 * np.sqrt(a * b))
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-8)


def test_general_covariances_match_eigh_reference():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    s1, s2 = _random_spd(rng, 16), _random_spd(rng, 16)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference(mu1, s1, mu2, s2),
                                                              rel=1e-8)


def test_identical_and_symmetric():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 10)), rng.normal(size=(300, 10)) * 1.5 + 0.3
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_from_features(x, y) == pytest.approx(
        frechet_distance_from_features(y, x), rel=1e-8)


def test_singular_covariances_from_few_samples():
    # Fewer samples than dimensions: both covariances are singular.
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 32)), rng.normal(size=(10, 32)) + 0.5
    (m1, s1), (m2, s2) = feature_statistics(x), feature_statistics(y)
    got = frechet_distance(m1, s1, m2, s2)
    assert np.isfinite(got)
    assert got == pytest.approx(_reference(m1, s1, m2, s2), rel=1e-3)


def test_eps_fallback_when_sqrtm_is_not_finite(monkeypatch):
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def flaky_sqrtm(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    s = np.diag([1.0, 4.0])
    got = frechet_distance(np.zeros(2), s, np.zeros(2), s, eps=1e-6)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s + 1e-6 * np.eye(2)) @ (s + 1e-6 * np.eye(2)))
    assert got == pytest.approx(0.0, abs=1e-5)


def test_large_imaginary_component_is_an_error():
    # Not a covariance: sqrtm(diag(1, -1)) = diag(1, i).
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_feature_statistics_and_shape_checks():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0))
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False))
    with pytest.raises(ValueError):
        feature_statistics(x[:1])
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
