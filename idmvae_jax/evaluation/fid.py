"""Fréchet distances of generated against real examples, in two feature spaces.

  fd_classifier/{unconditional,cross}[suffix]
      the shared-label classifiers' penultimate features (`label_classifiers.Classifiers
      .shared_features`), every view, mean over views; works offline.
  fid/{unconditional,cross}[suffix]
      Inception-v3 pool3 features (`inception.make_fid_feature_fn`), image views only, over
      `fid_samples` generated examples against the first `fid_samples` real ones of the split;
      only when `eval.fid_weights` names the pytorch-fid weights file (`fid_feature_fn`).

`cross` pools, for each target view d, the generations e -> d over the sources e != d (no key with
one view). `FeatureSpaces` holds the feature functions and the real examples' features (computed
once); a `GeneratedFeatures` per prior collects the generated batches as a coherence `on_batch`
callback, tops the unconditional samples up to `fid_samples`, and scores them (`metrics`).
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg

from idmvae_jax.evaluation import frechet
from idmvae_jax.evaluation.arrays import iterate_batches

KINDS = ("unconditional", "cross")


def quiet_frechet(real, fake) -> float:
    """Fréchet distance of two feature sets; with fewer samples than feature dimensions the
    covariances are singular (handled by `frechet`'s diagonal offset), which is not worth a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return frechet.frechet_distance_from_features(real, fake)


def fid_feature_fn(config, batch_size: int) -> Tuple[Optional[Callable], Optional[str]]:
    """(the Inception feature function, None), or (None, the reason FID is skipped)."""
    path = str(config.eval.get("fid_weights", "") or "")
    if not path:
        return None, ("FID skipped: config.eval.fid_weights is not set (FID needs the standard "
                      "pytorch-fid Inception weights file; see idmvae_jax.evaluation.inception)")
    from idmvae_jax.evaluation import inception

    try:
        variables = inception.load_fid_inception_params(path)
    except FileNotFoundError as err:
        return None, f"FID skipped: {err}"
    except Exception as err:  # noqa: BLE001 - a file that is not the weights: the other metrics go on
        return None, (f"FID skipped: {path} is not a readable FID Inception weights file "
                      f"({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
                      f"{inception.missing_weights_message(path).split('. ', 1)[1]}")
    return inception.make_fid_feature_fn(variables, batch_size=min(batch_size, 50)), None


@dataclasses.dataclass
class FeatureSpaces:
    """The feature functions and the real examples' features in each.

    classifier(view, x) -> (N, F): features of every view; real_classifier[v]: of the split's view v.
    fid(images) -> (N, F) or None (FID off); real_fid[v]: of the first fid_samples real examples of
    each image view.
    """

    classifier: Callable[[int, np.ndarray], np.ndarray]
    real_classifier: List[np.ndarray]
    image_views: List[int]
    fid: Optional[Callable[[np.ndarray], np.ndarray]] = None
    real_fid: Dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    fid_samples: int = 0


def feature_spaces(classifier_features: Callable, real_xs: Sequence[np.ndarray], image_views: Sequence[int],
                   fid_features: Optional[Callable] = None, fid_samples: int = 0) -> FeatureSpaces:
    """The real examples' features; FID is on when `fid_features` is given, there are image
    views and `fid_samples` > 1."""
    image_views = list(image_views)
    real = [classifier_features(v, real_xs[v]) for v in range(len(real_xs))]
    if fid_features is None or not image_views or fid_samples <= 1:
        return FeatureSpaces(classifier_features, real, image_views)
    real_fid = {v: fid_features(real_xs[v][:fid_samples]) for v in image_views}
    return FeatureSpaces(classifier_features, real, image_views, fid_features, real_fid, int(fid_samples))


class GeneratedFeatures:
    """The features of one prior's generated examples, collected batch by batch."""

    def __init__(self, spaces: FeatureSpaces):
        self.spaces = spaces
        self.m = len(spaces.real_classifier)
        image_views = spaces.image_views
        self.feats = {kind: [[] for _ in range(self.m)] for kind in KINDS}
        self.fid_feats = {kind: {v: [] for v in image_views} for kind in KINDS}
        self.fid_count = {kind: dict.fromkeys(image_views, 0) for kind in KINDS}

    def _collect_fid(self, kind: str, v: int, images) -> None:
        room = self.spaces.fid_samples - self.fid_count[kind][v]
        if room > 0:
            images = images[:room]
            self.fid_feats[kind][v].append(self.spaces.fid(images))
            self.fid_count[kind][v] += len(images)

    def on_batch(self, kind: str, start: int, out) -> None:
        """A coherence `on_batch` callback: 'cross' (out[e][d]) and 'unconditional' (out[v])
        batches are kept; 'private' ones are not scored."""
        fid_on, m, classifier = self.spaces.fid is not None, self.m, self.spaces.classifier
        if kind == "cross" and m > 1:
            for d in range(m):
                self.feats["cross"][d].append(np.concatenate(
                    [classifier(d, out[e][d]) for e in range(m) if e != d]))
                if fid_on and d in self.spaces.image_views:
                    self._collect_fid("cross", d, np.concatenate([out[e][d] for e in range(m) if e != d]))
        elif kind == "unconditional":
            for v in range(m):
                self.feats["unconditional"][v].append(classifier(v, out[v]))
                if fid_on and v in self.spaces.image_views:
                    self._collect_fid("unconditional", v, out[v])

    def add_unconditional(self, unconditional_fn: Callable, first_index: int, batch_size: int) -> None:
        """Unconditional samples `first_index`, ... (after those of the coherence) until FID has
        `fid_samples` of them; nothing when FID is off or has enough."""
        if self.spaces.fid is None or self.spaces.fid_samples <= first_index:
            return
        for _, count, idx, _ in iterate_batches(self.spaces.fid_samples - first_index, batch_size):
            out = unconditional_fn(idx + first_index)
            for v in self.spaces.image_views:
                self._collect_fid("unconditional", v, np.asarray(out[v])[:count])

    def metrics(self, suffix: str = "") -> Dict[str, float]:
        """`fd_classifier/...` and (FID on) `fid/...` keys, per view and their means."""
        metrics: Dict[str, float] = {}
        for kind in KINDS:
            if kind == "cross" and self.m < 2:
                continue
            per_view = []
            for v in range(self.m):
                fd = quiet_frechet(self.spaces.real_classifier[v], np.concatenate(self.feats[kind][v]))
                metrics[f"fd_classifier/view{v}/{kind}{suffix}"] = fd
                per_view.append(fd)
            metrics[f"fd_classifier/{kind}{suffix}"] = float(np.mean(per_view))
            if self.spaces.fid is not None:
                per_view = []
                for v in self.spaces.image_views:
                    fid = quiet_frechet(self.spaces.real_fid[v], np.concatenate(self.fid_feats[kind][v]))
                    metrics[f"fid/view{v}/{kind}{suffix}"] = fid
                    per_view.append(fid)
                metrics[f"fid/{kind}{suffix}"] = float(np.mean(per_view))
        return metrics
