"""Latent linear probes (SPEC §5): how much label information each latent carries, linearly.

One scikit-learn `LogisticRegression(solver="lbfgs", C=1.0, max_iter=1000)` per view ×
latent {u = [w, z], z, w} × label {shared, private}, no feature scaling, fitted on the first
`n_fit` training examples and scored (accuracy) on the test split. Ideal values for a
disentangled model: z -> shared high, z -> private at chance, w -> private high, w -> shared at
chance, u -> both high.

`latent_probes` scores given posterior means; `probe_metrics` computes them first with a model's
`encode_means(xs) -> (mu_z (M, B, Z), mu_w (M, B, W))` (`model_fns.ModelFns.encode_means`, or any
function of that contract) in fixed-size batches.
"""
import warnings
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from idmvae_jax.evaluation.arrays import iterate_batches, view_labels

LATENT_KINDS = ("u", "z", "w")
LABEL_KINDS = ("shared", "private")


def probe_accuracy(train_features, train_labels, test_features, test_labels, *,
                   max_iter: int = 1000) -> float:
    """Test accuracy of a multinomial logistic regression fitted on the training features.

    Args:
      train_features: (N_train, F) array.
      train_labels: (N_train,) integer labels.
      test_features: (N_test, F) array.
      test_labels: (N_test,) integer labels.
    Returns:
      Fraction of test examples whose predicted label is correct, in [0, 1]. When the training
      labels hold a single class the constant prediction of that class is scored.
    """
    x_tr = np.asarray(train_features, dtype=np.float64).reshape(len(train_features), -1)
    x_te = np.asarray(test_features, dtype=np.float64).reshape(len(test_features), -1)
    y_tr = np.asarray(train_labels).reshape(-1)
    y_te = np.asarray(test_labels).reshape(-1)
    if x_tr.shape[0] != y_tr.shape[0] or x_te.shape[0] != y_te.shape[0]:
        raise ValueError("features and labels must have the same number of rows")
    classes = np.unique(y_tr)
    if classes.size < 2:  # sklearn refuses a one-class fit; the Bayes rule is the constant.
        return float(np.mean(y_te == classes[0]))
    clf = LogisticRegression(solver="lbfgs", C=1.0, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_tr, y_tr)
    return float(np.mean(clf.predict(x_te) == y_te))


def _get_labels(labels, kind: str) -> Optional[np.ndarray]:
    """Reads the shared or private labels from a dict ({'shared'|'y_shared': ...}) or array."""
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        for key in (kind, f"y_{kind}"):
            if key in labels and labels[key] is not None:
                return np.asarray(labels[key])
        return None
    return np.asarray(labels) if kind == "shared" else None


def latent_probes(latents_train: Mapping[str, np.ndarray], latents_test: Mapping[str, np.ndarray],
                  labels_train, labels_test, *, n_fit: Optional[int] = 10000,
                  max_iter: int = 1000) -> Dict[str, float]:
    """Linear probes of every view's latents for the shared and private labels.

    Args:
      latents_train, latents_test: dicts of per-view posterior means, `{'z': (M, N, Z),
        'w': (M, N, W)}` (either key may be absent; u = concat([w, z], -1) is formed when both are
        present).
      labels_train, labels_test: dicts with the shared labels (N,) under 'shared' (or 'y_shared')
        and the private labels (N, M) or (N,) under 'private' (or 'y_private'), the latter absent
        or None when the data has none. A bare array is taken as the shared labels.
      n_fit: number of leading training examples the probes are fitted on (None = all).
      max_iter: lbfgs iterations (SPEC: 1000).
    Returns:
      Flat dict of accuracies: per view `probe/view{m}/{u,z,w}_{shared,private}` and the means
      over views `probe/{u,z,w}_{shared,private}`. Private keys are omitted when there are no
      private labels.
    """
    feats_train, feats_test = {}, {}
    for kind in ("z", "w"):
        if kind in latents_train and latents_train[kind] is not None:
            feats_train[kind] = np.asarray(latents_train[kind])
            feats_test[kind] = np.asarray(latents_test[kind])
    if "z" in feats_train and "w" in feats_train:
        feats_train["u"] = np.concatenate([feats_train["w"], feats_train["z"]], axis=-1)
        feats_test["u"] = np.concatenate([feats_test["w"], feats_test["z"]], axis=-1)
    if not feats_train:
        raise ValueError("latents must hold 'z' and/or 'w' arrays of shape (M, N, D)")
    for name, arr in list(feats_train.items()) + list(feats_test.items()):
        if arr.ndim != 3:
            raise ValueError(f"latent {name!r} must be (M, N, D), got shape {arr.shape}")
    num_views = next(iter(feats_train.values())).shape[0]

    labels = {}
    for label_kind in LABEL_KINDS:
        tr, te = _get_labels(labels_train, label_kind), _get_labels(labels_test, label_kind)
        if tr is not None and te is not None:
            labels[label_kind] = (tr, te)
    if "shared" not in labels:
        raise ValueError("shared labels are required for the latent probes")

    n_total = next(iter(feats_train.values())).shape[1]
    n = n_total if n_fit is None else min(int(n_fit), n_total)
    results: Dict[str, float] = {}
    for latent_kind in LATENT_KINDS:
        if latent_kind not in feats_train:
            continue
        for label_kind, (y_tr, y_te) in labels.items():
            accs = []
            for m in range(num_views):
                acc = probe_accuracy(
                    feats_train[latent_kind][m, :n], view_labels(y_tr, m, num_views)[:n],
                    feats_test[latent_kind][m], view_labels(y_te, m, num_views),
                    max_iter=max_iter)
                results[f"probe/view{m}/{latent_kind}_{label_kind}"] = acc
                accs.append(acc)
            results[f"probe/{latent_kind}_{label_kind}"] = float(np.mean(accs))
    return results


def posterior_means(encode_means: Callable, xs, batch_size: int) -> Dict[str, np.ndarray]:
    """{'z': (M, N, Z), 'w': (M, N, W)} posterior means of the N tuples `xs` (M arrays), encoded
    in padded batches of `batch_size` by `encode_means(xs) -> (mu_z (M, B, Z), mu_w (M, B, W))`."""
    zs, ws = [], []
    for _, count, _, xb in iterate_batches(len(xs[0]), batch_size, xs):
        z, w = encode_means(xb)
        zs.append(np.asarray(z)[:, :count])
        ws.append(np.asarray(w)[:, :count])
    return {"z": np.concatenate(zs, 1), "w": np.concatenate(ws, 1)}


def probe_metrics(encode_means: Callable, train_xs, test_xs, train_labels: dict, test_labels: dict,
                  pviews: Sequence[int], *, batch_size: int, num_fit: Optional[int]
                  ) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Latent probes of the posterior means (the private ones on the views `pviews` only).

    Returns (the `probe/...` metrics, the split's posterior means {'z', 'w'} (M, N, dim)).
    """
    n_fit = None if not num_fit or num_fit <= 0 else int(num_fit)
    lat_tr = posterior_means(encode_means, [x[:n_fit] for x in train_xs], batch_size)
    lat_te = posterior_means(encode_means, test_xs, batch_size)
    pv = list(pviews)
    if pv == list(range(len(train_xs))):  # every view has a private label: one pass
        return latent_probes(
            lat_tr, lat_te, {"shared": train_labels["y_shared"], "private": train_labels["y_private"]},
            {"shared": test_labels["y_shared"], "private": test_labels["y_private"]}, n_fit=n_fit), lat_te
    out = latent_probes(lat_tr, lat_te, {"shared": train_labels["y_shared"]},
                        {"shared": test_labels["y_shared"]}, n_fit=n_fit)
    if pv:  # only some views have one (e.g. CUB: the image, not the caption)
        sub = lambda lat: {k: v[pv] for k, v in lat.items()}  # noqa: E731
        priv = latent_probes(
            sub(lat_tr), sub(lat_te),
            {"shared": train_labels["y_shared"], "private": train_labels["y_private"][:, pv]},
            {"shared": test_labels["y_shared"], "private": test_labels["y_private"][:, pv]},
            n_fit=n_fit)
        for key, value in priv.items():
            if key.endswith("_private"):
                if key.startswith("probe/view"):
                    j = int(key[len("probe/view"):].split("/")[0])
                    key = key.replace(f"probe/view{j}/", f"probe/view{pv[j]}/")
                out[key] = value
    return out, lat_te
