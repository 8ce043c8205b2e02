"""The label classifiers an evaluation scores with, and their budget and cache policy.

Every run of a dataset is scored by the same instrument: per-view classifiers of the shared label
(and of the private label, on the views that have one), trained once on the first training tuples
with seed 0 and the `config.eval.classifier_*` budget and architecture, and cached by the
fingerprint of their data and settings under <data cache root>/classifiers (or
WORKDIR/eval/classifiers when that is not writable). `train_or_load_classifiers` returns them as a
`Classifiers` pair whose calls pad their inputs to the evaluation's batch size, so each view's
classifier meets one compiled batch shape.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from idmvae_jax import storage
from idmvae_jax.data import DataOptions
from idmvae_jax.evaluation import arrays
from idmvae_jax.evaluation import classifier_training
from idmvae_jax.evaluation.classifiers import ClassifierConfig
from idmvae_jax.evaluation import runtime

# At most this many training tuples are read for the classifiers (host memory at 64 px).
CLASSIFIER_MAX_TRAIN = 60_000
CLASSIFIER_SEED = 0


@dataclasses.dataclass
class Classifiers:
    """Shared-label classifiers for every view and private-label ones for `private_views`.

    shared, private: objects with `predict(view, x)`, `features(view, x)` and `test_accuracy`
    (a list over their views), e.g. `evaluation.classifiers.ViewClassifiers`; `private` indexes its
    views 0..len(private_views)-1 and is None when the data has no private labels.
    batch_size: when set, inputs are padded to a multiple of it and the classifiers' own
    `eval_batch_size` is set to it, so every call runs one compiled batch shape per view.
    """

    shared: Any
    private: Any = None
    private_views: Tuple[int, ...] = ()
    batch_size: Optional[int] = None

    def __post_init__(self):
        if self.batch_size:
            for c in (self.shared, self.private):
                if c is not None and hasattr(c, "eval_batch_size"):
                    c.eval_batch_size = int(self.batch_size)

    def _call(self, fn, view: int, x) -> np.ndarray:
        x = np.asarray(x)
        if not self.batch_size or x.shape[0] == 0:
            return fn(view, x)
        return fn(view, arrays.pad_to_multiple(x, self.batch_size))[:x.shape[0]]

    def predict_shared(self, view: int, x) -> np.ndarray:
        return self._call(self.shared.predict, view, x)

    def predict_private(self, view: int, x) -> np.ndarray:
        return self._call(self.private.predict, self.private_views.index(view), x)

    def shared_features(self, view: int, x) -> np.ndarray:
        return self._call(self.shared.features, view, x)

    def accuracies(self) -> Dict[str, Any]:
        out = {"shared": [float(a) for a in self.shared.test_accuracy]}
        if self.private is not None:
            per_view = [None] * len(self.shared.test_accuracy)
            for j, v in enumerate(self.private_views):
                per_view[v] = float(self.private.test_accuracy[j])
            out["private"] = per_view
        return out


def classifier_cache_dir(config, workdir):
    """<data cache root>/classifiers when writable, else WORKDIR/eval/classifiers (either may be
    a bucket URL)."""
    try:
        return storage.check_writable(
            storage.path(DataOptions.from_config(config.data).cache_root) / "classifiers",
            what="classifier cache")
    except (storage.StorageError, ValueError):
        return storage.path(workdir) / "eval" / "classifiers"


def classifier_budget(eval_cfg, num_train: int, steps: Optional[int] = None,
                      pooled_views: int = 1) -> Tuple[int, int, int]:
    """(training tuples, epochs, batch size) realising `steps` (default eval.classifier_steps)
    Adam steps of one network that pools `pooled_views` views (each tuple gives it that many
    examples; an epoch is one pass over all of them)."""
    bs = int(eval_cfg.classifier_batch_size)
    steps = max(1, int(eval_cfg.classifier_steps if steps is None else steps))
    pool = max(1, int(pooled_views))
    n = max(1, min(num_train, CLASSIFIER_MAX_TRAIN, -(-steps * bs // pool)))
    bs = min(bs, n * pool)
    epochs = max(1, int(round(steps * bs / (n * pool))))
    return n, epochs, bs


def classifier_train_size(eval_cfg, num_train: int) -> int:
    """How many training tuples (the first ones of the split) the label classifiers read (at most:
    a network pooling several views reads fewer)."""
    return max(classifier_budget(eval_cfg, num_train, steps)[0]
               for steps in (None, private_classifier_steps(eval_cfg)))


def private_classifier_steps(eval_cfg) -> int:
    """eval.classifier_private_steps, or eval.classifier_steps when that is 0."""
    return int(eval_cfg.classifier_private_steps) or int(eval_cfg.classifier_steps)


def classifier_config(eval_cfg):
    """The classifiers' architecture: eval.classifier_<field> for every ClassifierConfig field."""
    fields = dataclasses.fields(ClassifierConfig)
    return ClassifierConfig.from_dict({f.name: eval_cfg[f"classifier_{f.name}"] for f in fields})


def _pooled_views(eval_cfg, views) -> int:
    """How many views one network pools: the largest group of `views` it serves (1 per view
    unless eval.classifier_share_views)."""
    groups = classifier_training.view_groups(views, classifier_config(eval_cfg).share_views)
    return max(len(g) for g in groups)


def train_or_load_classifiers(config, info, train: dict, test: dict, cache_dir: str,
                              log: Callable[[str], None] = runtime.log,
                              batch_size: Optional[int] = None) -> Classifiers:
    """Per-view shared (and private) label classifiers, from the cache or trained now."""
    e = config.eval
    common = dict(seed=CLASSIFIER_SEED, learning_rate=float(e.classifier_learning_rate),
                  config=classifier_config(e), log=log)
    num_train = len(train["y_shared"])
    n, epochs, bs = classifier_budget(e, num_train, pooled_views=_pooled_views(e, train["x"]))
    shared = classifier_training.load_or_train(
        cache_dir, [x[:n] for x in train["x"]], train["y_shared"][:n], info.num_shared_classes,
        test["x"], test["y_shared"], name=f"{info.name}-shared", epochs=epochs, batch_size=bs,
        label_name=info.shared_label_name or "shared-label", **common)
    private, pviews = None, private_views(info, train)
    if pviews:
        n, epochs, bs = classifier_budget(e, num_train, private_classifier_steps(e),
                                          pooled_views=_pooled_views(e, [train["x"][m] for m in pviews]))
        private = classifier_training.load_or_train(
            cache_dir, [train["x"][m][:n] for m in pviews], train["y_private"][:n][:, pviews],
            info.num_private_classes, [test["x"][m] for m in pviews], test["y_private"][:, pviews],
            name=f"{info.name}-private", epochs=epochs, batch_size=bs,
            label_name=info.private_label_name or "private-label", **common)
    return Classifiers(shared, private, tuple(pviews), batch_size)


def private_views(info, data: dict) -> List[int]:
    """Views that carry a private label (none when the data has no private labels)."""
    if not info.num_private_classes or data.get("y_private") is None:
        return []
    return [m for m, v in enumerate(info.views) if v.has_private_label]


def classifier_metrics(classifiers: Classifiers) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """(the `classifier/...` test accuracies: mean and per view, the per-view accuracies)."""
    acc = classifiers.accuracies()
    metrics = {"classifier/shared_acc": float(np.mean(acc["shared"]))}
    for v, a in enumerate(acc["shared"]):
        metrics[f"classifier/view{v}/shared_acc"] = a
    if "private" in acc:
        metrics["classifier/private_acc"] = float(np.mean([a for a in acc["private"] if a is not None]))
        for v, a in enumerate(acc["private"]):
            if a is not None:
                metrics[f"classifier/view{v}/private_acc"] = a
    return metrics, acc
