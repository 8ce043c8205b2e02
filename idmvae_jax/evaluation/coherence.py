"""Coherence of generated samples, scored by per-view label classifiers (SPEC §5).

Three families, each computed with the Gaussian priors (keys without a suffix) and, when the model
has latent score networks, with the diffusion priors (the same keys with the suffix `_diffusion`):

* conditional e -> d: z ~ q(z | x_e), w_d from the prior, decoded by D_d; correct when the shared
  classifier of view d predicts x_e's shared label. The (M, M) matrix gives
  `coherence/self` = mean of its diagonal and `coherence/cross` = mean over targets d of the mean
  over sources e != d.
* private: w ~ q(w_e | x_e), z from the prior, decoded by D_e; `coherence/private` = fraction whose
  private classifier agrees with x_e's private label (mean over the views that have one);
  `coherence/private_leak` = fraction whose *shared* classifier agrees with x_e's shared label
  (a disentangled model sits at chance, 1 / num_shared_classes).
* unconditional: z ~ p(z), w_m ~ p(w_m), all M views decoded; `coherence/unconditional` = fraction
  of samples whose M predicted shared labels all agree; `coherence/unconditional_entropy` = the
  entropy (nats) of the histogram of all M * N predicted labels (log(num_classes) for a generator
  that covers every class evenly, 0 for a collapsed one, which agrees trivially).

The scoring functions (`conditional_coherence_matrix`, `self_and_cross`, `label_agreement`,
`unconditional_agreement`, `label_entropy`) are pure numpy over predicted labels. The drivers
(`conditional_coherence`, `private_coherence`, `unconditional_coherence`,
`coherence_metrics`) run generation functions over the data in fixed-size batches (the last one
padded, then trimmed: `arrays.iterate_batches`) and classify each batch with
`predict(view, x) -> (B,) labels`, so memory stays bounded. Classifiers see whole (padded) batches, so they meet one batch shape; their
predictions for the padding are dropped. Generation functions receive the global indices of the
examples of a batch: a generator that derives its randomness from (seed, index) gives numbers that
do not depend on the batch size or the number of devices.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from idmvae_jax.evaluation.arrays import iterate_batches, trim, view_labels

# predict(view_index, x (B, ...)) -> (B,) integer labels.
PredictFn = Callable[[int, np.ndarray], np.ndarray]
# cross(xs: M arrays (B, ...), idx (B,) int) -> out[e][d] (B, ...) for every source e, target d.
CrossFn = Callable[[List[np.ndarray], np.ndarray], Sequence[Sequence[np.ndarray]]]
# private(xs, idx) -> M arrays (B, ...): view e decoded from [w ~ q(w_e | x_e), z ~ prior].
PrivateFn = Callable[[List[np.ndarray], np.ndarray], Sequence[np.ndarray]]
# unconditional(idx (B,)) -> M arrays (B, ...): joint samples from the priors.
UnconditionalFn = Callable[[np.ndarray], Sequence[np.ndarray]]
# on_batch(kind, start, outputs): sees every generated batch (kind: 'cross' | 'private' |
# 'unconditional'; outputs trimmed to the real examples), e.g. to collect features or figures.
BatchCallback = Callable[[str, int, object], None]


# --------------------------------------------------------------------------------- scoring
def conditional_coherence_matrix(predictions, labels) -> np.ndarray:
    """(M, M) matrix of conditional coherence from predicted labels.

    Args:
      predictions: (M_source, M_target, N) labels predicted for out[e][d] by view d's classifier.
      labels: (N,) true shared labels of the source tuples.
    Returns:
      float64 (M, M), entry [e, d] = fraction of examples with predictions[e, d] == labels.
    """
    p = np.asarray(predictions)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 3 or p.shape[2] != y.shape[0]:
        raise ValueError(f"predictions must be (M, M, N) with N = {y.shape[0]}, got {p.shape}")
    return np.mean(p == y[None, None, :], axis=2, dtype=np.float64)


def self_and_cross(matrix) -> Dict[str, float]:
    """{'self': mean of the diagonal, 'cross': mean over d of the mean over e != d of [e, d]}.

    With one view there is no cross-generation and 'cross' is NaN.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"coherence matrix must be square, got {a.shape}")
    m = a.shape[0]
    out = {"self": float(np.mean(np.diagonal(a)))}
    if m < 2:
        out["cross"] = float("nan")
    else:
        off = ~np.eye(m, dtype=bool)
        out["cross"] = float(np.mean([a[off[:, d], d].mean() for d in range(m)]))
    return out


def label_agreement(predictions, labels) -> float:
    """Fraction of predictions equal to labels (same shape, or (M, N) vs (N,))."""
    p, y = np.asarray(predictions), np.asarray(labels)
    if p.ndim == 2 and y.ndim == 1:
        y = y[None, :]
    return float(np.mean(p == y))


def unconditional_agreement(predictions) -> float:
    """Fraction of samples whose M predicted labels all agree; predictions (M, N)."""
    p = np.asarray(predictions)
    if p.ndim != 2:
        raise ValueError(f"predictions must be (M, N), got shape {p.shape}")
    return float(np.mean(np.all(p == p[:1], axis=0)))


def label_histogram(predictions, num_classes: int) -> np.ndarray:
    """Counts (num_classes,) of every predicted label (any shape)."""
    return np.bincount(np.asarray(predictions).reshape(-1).astype(np.int64), minlength=num_classes)


def label_entropy(predictions, num_classes: int) -> float:
    """Entropy in nats of the empirical distribution of all predicted labels (any shape).

    log(num_classes) for predictions spread evenly over every class; 0 for a single class.
    """
    counts = label_histogram(predictions, num_classes).astype(np.float64)
    if counts.sum() == 0:
        return float("nan")
    q = counts / counts.sum()
    q = q[q > 0]
    return max(0.0, float(-np.sum(q * np.log(q))))  # no -0.0


def max_entropy(num_classes: int) -> float:
    """The reference value of `label_entropy`: log(num_classes) nats."""
    return float(math.log(num_classes))


# --------------------------------------------------------------------------------- drivers
def conditional_coherence(cross_fn: CrossFn, predict_shared: PredictFn, xs: Sequence[np.ndarray],
                          shared_labels, *, batch_size: int,
                          on_batch: Optional[BatchCallback] = None) -> Dict[str, object]:
    """Conditional coherence of `cross_fn` on the tuples xs (M arrays (N, ...)).

    Returns {'matrix': (M, M) float64, 'self': float, 'cross': float}.
    """
    m, n = len(xs), int(np.asarray(shared_labels).shape[0])
    preds = np.zeros((m, m, n), np.int64)
    for start, count, idx, xb in iterate_batches(n, batch_size, xs):
        out = cross_fn(xb, idx)
        if on_batch is not None:
            on_batch("cross", start, trim(out, count))
        for e in range(m):
            for d in range(m):
                preds[e, d, start:start + count] = predict_shared(d, out[e][d])[:count]
    matrix = conditional_coherence_matrix(preds, shared_labels)
    return {"matrix": matrix, **self_and_cross(matrix)}


def private_coherence(private_fn: PrivateFn, predict_shared: PredictFn,
                      predict_private: Optional[PredictFn], xs: Sequence[np.ndarray], shared_labels,
                      private_labels=None, *, batch_size: int, private_views: Optional[Sequence[int]] = None,
                      on_batch: Optional[BatchCallback] = None) -> Dict[str, object]:
    """Private coherence and its leakage check on the tuples xs.

    Args:
      private_fn: generation from the private codes (see `PrivateFn`).
      predict_shared: shared-label classifiers (the leakage check).
      predict_private: private-label classifiers, or None when the data has no private labels.
      xs: M arrays (N, ...); shared_labels (N,); private_labels (N, M) or (N,) or None.
      private_views: the views with a private label (default: all when private labels are given);
        `predict_private` is only called for these.
    Returns:
      {'private_leak': float, 'private_leak_per_view': (M,)} plus, when private labels are
      given, {'private': float (mean over private_views), 'private_per_view': (M,) with NaN for
      views without a private label}.
    """
    m, n = len(xs), int(np.asarray(shared_labels).shape[0])
    has_private = private_labels is not None and predict_private is not None
    if has_private and private_views is None:
        private_views = list(range(m))
    private_views = list(private_views or []) if has_private else []
    pred_shared = np.zeros((m, n), np.int64)
    pred_private = np.full((m, n), -1, np.int64)
    for start, count, idx, xb in iterate_batches(n, batch_size, xs):
        out = private_fn(xb, idx)
        if on_batch is not None:
            on_batch("private", start, trim(out, count))
        for e in range(m):
            pred_shared[e, start:start + count] = predict_shared(e, out[e])[:count]
            if e in private_views:
                pred_private[e, start:start + count] = predict_private(e, out[e])[:count]
    y = np.asarray(shared_labels).reshape(-1)
    result: Dict[str, object] = {
        "private_leak": label_agreement(pred_shared, y),
        "private_leak_per_view": np.mean(pred_shared == y[None], axis=1),
    }
    if has_private:
        per_view = np.full((m,), np.nan)
        for e in private_views:
            per_view[e] = np.mean(pred_private[e] == view_labels(private_labels, e, m))
        result["private_per_view"] = per_view
        result["private"] = float(np.nanmean(per_view)) if private_views else float("nan")
    return result


def unconditional_coherence(unconditional_fn: UnconditionalFn, predict_shared: PredictFn,
                            num_views: int, num_samples: int, num_classes: int, *, batch_size: int,
                            on_batch: Optional[BatchCallback] = None) -> Dict[str, object]:
    """Unconditional coherence of `num_samples` joint samples.

    Returns {'unconditional': fraction whose M predicted labels agree, 'unconditional_entropy':
    entropy (nats) of the predicted-label histogram, 'histogram': (num_classes,) counts}.
    """
    preds = np.zeros((num_views, num_samples), np.int64)
    for start, count, idx, _ in iterate_batches(num_samples, batch_size):
        out = unconditional_fn(idx)
        if on_batch is not None:
            on_batch("unconditional", start, trim(out, count))
        for v in range(num_views):
            preds[v, start:start + count] = predict_shared(v, out[v])[:count]
    return {
        "unconditional": unconditional_agreement(preds),
        "unconditional_entropy": label_entropy(preds, num_classes),
        "histogram": label_histogram(preds, num_classes),
    }


def coherence_metrics(*, cross_fn: CrossFn, private_fn: PrivateFn, unconditional_fn: UnconditionalFn,
                      predict_shared: PredictFn, predict_private: Optional[PredictFn],
                      xs: Sequence[np.ndarray], shared_labels, private_labels=None,
                      num_shared_classes: int, batch_size: int, num_unconditional: Optional[int] = None,
                      private_views: Optional[Sequence[int]] = None, suffix: str = "",
                      prefix: str = "coherence/", on_batch: Optional[BatchCallback] = None
                      ) -> tuple[Dict[str, float], Dict[str, object]]:
    """Every coherence metric of one prior as flat `coherence/...{suffix}` keys.

    Args:
      cross_fn, private_fn, unconditional_fn: the generators of one prior (see the type aliases).
      predict_shared, predict_private: the classifiers (predict_private None without private labels).
      xs, shared_labels, private_labels: the evaluation tuples (M arrays (N, ...)), (N,), (N, M)|None.
      num_shared_classes: for the entropy.
      batch_size: examples per generation call.
      num_unconditional: unconditional samples (default N).
      private_views: views with a private label (default all, when private labels are given).
      suffix: '' for the Gaussian prior, '_diffusion' for the diffusion prior.
    Returns:
      (metrics, details): metrics holds `self`, `cross`, `unconditional`,
      `unconditional_entropy`, `private_leak` and, with private labels, `private`, all prefixed
      and suffixed; details holds the coherence matrix, per-view values and the histogram.
    """
    n = int(np.asarray(shared_labels).shape[0])
    cond = conditional_coherence(cross_fn, predict_shared, xs, shared_labels, batch_size=batch_size,
                                 on_batch=on_batch)
    priv = private_coherence(private_fn, predict_shared, predict_private, xs, shared_labels,
                             private_labels, batch_size=batch_size, private_views=private_views,
                             on_batch=on_batch)
    unc = unconditional_coherence(unconditional_fn, predict_shared, len(xs),
                                  n if num_unconditional is None else int(num_unconditional),
                                  num_shared_classes, batch_size=batch_size, on_batch=on_batch)
    metrics = {
        f"{prefix}self{suffix}": cond["self"],
        f"{prefix}cross{suffix}": cond["cross"],
        f"{prefix}unconditional{suffix}": unc["unconditional"],
        f"{prefix}unconditional_entropy{suffix}": unc["unconditional_entropy"],
        f"{prefix}private_leak{suffix}": priv["private_leak"],
    }
    if "private" in priv:
        metrics[f"{prefix}private{suffix}"] = priv["private"]
    details = {"matrix": cond["matrix"], "histogram": unc["histogram"],
               "private_leak_per_view": priv["private_leak_per_view"]}
    if "private_per_view" in priv:
        details["private_per_view"] = priv["private_per_view"]
    return metrics, details


def chance_levels(num_shared_classes: int, num_private_classes: Optional[int]) -> Mapping[str, float]:
    """Reference values a generator that ignores its input reaches (uniform labels)."""
    ref = {"shared": 1.0 / num_shared_classes, "entropy": max_entropy(num_shared_classes)}
    if num_private_classes:
        ref["private"] = 1.0 / num_private_classes
    return ref
