"""Fréchet distance between Gaussians fitted to feature sets (FID and its classifier-feature cousin).

For N(mu1, S1) and N(mu2, S2) the squared Fréchet (2-Wasserstein) distance is

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).

Everything is computed on the host in float64 with scipy; the feature extractors that feed it
(`inception.make_fid_feature_fn`, `classifiers.ViewClassifiers.features`) are the jitted part.
"""
from typing import Tuple

import numpy as np
import scipy.linalg

# Added to both covariance diagonals when sqrtm(S1 S2) is not finite (singular product).
SQRTM_EPS = 1e-6
# Largest imaginary part on the diagonal of sqrtm(S1 S2) that is still treated as round-off.
IMAG_ATOL = 1e-3


def feature_statistics(features) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
      features: (N, F) array, N >= 2.
    Returns:
      (mu, sigma): mu (F,) float64, sigma (F, F) float64 unbiased sample covariance (N - 1).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, F), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {x.shape[0]}")
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False)
    return mu, np.atleast_2d(sigma)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = SQRTM_EPS) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
      mu1, mu2: (F,) means.
      sigma1, sigma2: (F, F) covariances (symmetric positive semi-definite).
      eps: diagonal offset added to both covariances when sqrtm(sigma1 @ sigma2) is not finite
        (a singular product, e.g. fewer samples than feature dimensions).
    Returns:
      The distance as a Python float (>= 0 up to round-off).
    Raises:
      ValueError: on shape mismatch, or when sqrtm(sigma1 @ sigma2) has a diagonal imaginary part
        larger than IMAG_ATOL (the covariances are not valid or far too ill-conditioned).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean shapes differ: {mu1.shape} vs {mu2.shape}")
    f = mu1.shape[0]
    if sigma1.shape != (f, f) or sigma2.shape != (f, f):
        raise ValueError(
            f"covariances must be ({f}, {f}), got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(f) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if max_imag > IMAG_ATOL:
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has a large imaginary component ({max_imag:.3g}); "
                "the covariance estimates are invalid or too ill-conditioned")
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def frechet_distance_from_features(features1, features2, eps: float = SQRTM_EPS) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, F) and (N2, F)."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)
