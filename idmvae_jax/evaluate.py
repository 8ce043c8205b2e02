r"""Evaluation of a trained run (SPEC §5): classifiers, latent probes, coherence, FID, report.

    python -m idmvae_jax.evaluate --config=configs/polymnist_quadrant.py:mini --workdir=/tmp/pmq_mini

loads the latest checkpoint in WORKDIR (with the same config as training, overrides included) and
writes WORKDIR/eval/metrics.json, WORKDIR/eval/report.md and the report's PNG figures, then prints
the path of report.md.

What it computes (`config.eval.*` settings in brackets):
  classifier/shared_acc, classifier/private_acc
      mean test accuracy over views of the per-view label classifiers (trained once on the train
      split [classifier_steps (classifier_private_steps for the private label when > 0),
      classifier_batch_size, classifier_learning_rate; architecture
      classifier_conv_features, classifier_convs_per_level, classifier_hidden,
      classifier_mlp_hidden, classifier_max_shift] with seed 0, so
      every run of a dataset is scored by the same instrument, and cached under
      <data cache root>/classifiers, or WORKDIR/eval/classifiers when that is not writable).
  probe/{u,z,w}_{shared,private}
      logistic-regression probes of the posterior means, fitted on the first [num_fit] train
      tuples, scored on the [split] split (evaluation.probes).
  coherence/...
      conditional self/cross, private and its leak, unconditional agreement and entropy
      (evaluation.coherence) on the [split] split, with the Gaussian priors and, when the model has
      latent score networks and [priors] names 'diffusion', with the diffusion priors (keys
      suffixed `_diffusion`); coherence/entropy_reference = log(num_shared_classes), the entropy
      of a generator that produces every class equally often.
  fd_classifier/{unconditional,cross}[_diffusion]
      Fréchet distance between the shared classifiers' penultimate features of generated and real
      [split] examples, mean over views (works offline).
  fid/{unconditional,cross}[_diffusion]
      FID (Inception-v3 pool3) of image views over [fid_samples] samples, when [fid_weights] names
      the standard pytorch-fid weights file; otherwise skipped with a printed reason.

Private-label keys are omitted when the data has no private labels. Evaluation runs under the
training mesh ('data' axis, batch-sharded inputs, replicated parameters) in batches of
[batch_size] (rounded up to a multiple of the device count), and every random draw is a function
of (config.seed, purpose, prior, example index), so the numbers do not depend on the batch size or
the number of devices.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from idmvae_jax.evaluation import arrays
from idmvae_jax.evaluation import coherence as coherence_lib
from idmvae_jax.evaluation import frechet
from idmvae_jax.evaluation import probes as probes_lib
from idmvae_jax.evaluation import report as report_lib

PRIOR_SUFFIX = {"gaussian": "", "diffusion": "_diffusion"}
_PURPOSE = {"cross": 1, "private": 2, "unconditional": 3}
# At most this many training tuples are read for the classifiers (host memory at 64 px).
CLASSIFIER_MAX_TRAIN = 60_000
CLASSIFIER_SEED = 0
NUM_FIGURE_EXAMPLES = 4
NUM_FIGURE_SAMPLES = 8


def _log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


# ======================================================================= model functions
@dataclasses.dataclass
class ModelFns:
    """Host-level (numpy in, numpy out) functions of a trained model, one set per prior.

    encode_means(xs) -> (mu_z (M, B, Z), mu_w (M, B, W)) posterior means.
    cross[prior], private[prior], unconditional[prior]: see `evaluation.coherence` (CrossFn,
    PrivateFn, UnconditionalFn); generated views come back in the data's format (uint8 images,
    int32 caption tokens, float32 vectors/latents).
    """

    encode_means: Callable[[List[np.ndarray]], Tuple[np.ndarray, np.ndarray]]
    cross: Dict[str, Callable]
    private: Dict[str, Callable]
    unconditional: Dict[str, Callable]

    @property
    def priors(self) -> Tuple[str, ...]:
        return tuple(self.cross)


def to_data_format(kind: str, a):
    """Likelihood means -> the data's representation (what the classifiers were trained on)."""
    if kind == "image":
        return jnp.round(jnp.clip(a, 0.0, 1.0) * 255.0).astype(jnp.uint8)
    if kind == "caption":
        return jnp.argmax(a, axis=-1).astype(jnp.int32)
    return a.astype(jnp.float32)


def _put(tree, sharding):
    """Host numpy pytree (the same on every process) -> global arrays with `sharding`."""
    def put(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])
    return jax.tree.map(put, tree)


def _fetch(tree):
    """Global arrays -> host numpy (gathered across processes when needed)."""
    def get(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)
    return jax.tree.map(get, tree)


def make_model_fns(params, cfg, mesh, seed: int, priors: Sequence[str] = ("gaussian",)) -> ModelFns:
    """Jitted, batch-sharded generation and encoding functions of a trained model.

    Args:
      params: the model parameters (replicated over `mesh`).
      cfg: the run's IDMVAEConfig.
      mesh: a 1-D mesh with axis 'data' (`parallel.make_mesh`); batches are sharded over it.
      seed: the base of every random draw: example i of purpose p under prior q uses
        fold_in(fold_in(fold_in(key(seed), p), q), i).
      priors: 'gaussian' and/or 'diffusion' (the latter needs cfg.model.diffusion_prior).
    Returns:
      ModelFns; every call takes host arrays whose batch size is divisible by the mesh size.
    """
    from idmvae_jax import generation

    data = NamedSharding(mesh, P("data"))
    repl = NamedSharding(mesh, P())
    kinds = [v.kind for v in cfg.model.views]
    base = jax.random.key(seed)

    def fmt(views):
        return [to_data_format(k, a) for k, a in zip(kinds, views)]

    def encode_means(p, xs):
        post = generation.encode(p, xs, cfg)
        return jnp.swapaxes(post.mu_z, 0, 1), jnp.swapaxes(post.mu_w, 0, 1)  # batch first

    enc = jax.jit(encode_means, in_shardings=(repl, data), out_shardings=data)

    def per_example(fn, purpose: str, prior: str):
        """fn(params, xs, key, cfg, prior) (or fn(params, key, num, cfg, prior) when xs is None)
        run on every example of a batch with its own key fold_in(key_{purpose, prior}, index)."""
        key = jax.random.fold_in(jax.random.fold_in(base, _PURPOSE[purpose]),
                                 generation.PRIORS.index(prior))

        def run(p, xs, idx):
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)
            if xs is None:
                out = jax.vmap(lambda k: fn(p, k, 1, cfg, prior))(keys)
            else:
                out = jax.vmap(lambda x, k: fn(p, [a[None] for a in x], k, cfg, prior))(xs, keys)
            return jax.tree.map(lambda a: a[:, 0], out)  # (B, 1, ...) -> (B, ...)
        return run

    cross, private, uncond = {}, {}, {}
    for prior in priors:
        if prior not in generation.PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose from {generation.PRIORS}")
        if prior == "diffusion" and not cfg.model.diffusion_prior:
            raise ValueError("the diffusion prior needs a model with model.diffusion_prior=True")
        c = per_example(generation.cross_generate, "cross", prior)
        pr = per_example(generation.generate_from_private, "private", prior)
        u = per_example(generation.sample_unconditional, "unconditional", prior)
        c_jit = jax.jit(lambda p, xs, idx, c=c: [fmt(row) for row in c(p, xs, idx)],
                        in_shardings=(repl, data, data), out_shardings=data)
        p_jit = jax.jit(lambda p, xs, idx, pr=pr: fmt(pr(p, xs, idx)),
                        in_shardings=(repl, data, data), out_shardings=data)
        u_jit = jax.jit(lambda p, idx, u=u: fmt(u(p, None, idx)),
                        in_shardings=(repl, data), out_shardings=data)
        cross[prior] = (lambda xs, idx, f=c_jit: _fetch(f(params, _put(list(xs), data), _put(idx, data))))
        private[prior] = (lambda xs, idx, f=p_jit: _fetch(f(params, _put(list(xs), data), _put(idx, data))))
        uncond[prior] = (lambda idx, f=u_jit: _fetch(f(params, _put(idx, data))))

    def encode_host(xs):
        mu_z, mu_w = _fetch(enc(params, _put(list(xs), data)))
        return np.swapaxes(mu_z, 0, 1), np.swapaxes(mu_w, 0, 1)

    return ModelFns(encode_host, cross, private, uncond)


# ======================================================================= classifiers
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


def classifier_cache_dir(config, workdir: str) -> str:
    """<data cache root>/classifiers when writable, else WORKDIR/eval/classifiers."""
    from idmvae_jax.data import DataOptions

    try:
        root = os.path.join(DataOptions.from_config(config.data).cache_root, "classifiers")
        os.makedirs(root, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except (OSError, ValueError):
        pass
    path = os.path.join(workdir, "eval", "classifiers")
    os.makedirs(path, exist_ok=True)
    return path


def classifier_budget(eval_cfg, num_train: int, steps: Optional[int] = None) -> Tuple[int, int, int]:
    """(training examples, epochs, batch size) realising `steps` (default eval.classifier_steps)
    Adam steps."""
    bs = int(eval_cfg.classifier_batch_size)
    steps = max(1, int(eval_cfg.classifier_steps if steps is None else steps))
    n = max(1, min(num_train, CLASSIFIER_MAX_TRAIN, steps * bs))
    bs = min(bs, n)
    epochs = max(1, int(round(steps * bs / n)))
    return n, epochs, bs


def classifier_train_size(eval_cfg, num_train: int) -> int:
    """How many training tuples (the first ones of the split) the label classifiers read."""
    return max(classifier_budget(eval_cfg, num_train, steps)[0]
               for steps in (None, private_classifier_steps(eval_cfg)))


def private_classifier_steps(eval_cfg) -> int:
    """eval.classifier_private_steps, or eval.classifier_steps when that is 0."""
    return int(eval_cfg.classifier_private_steps) or int(eval_cfg.classifier_steps)


def classifier_config(eval_cfg):
    """The classifiers' architecture: eval.classifier_<field> for every ClassifierConfig field."""
    from idmvae_jax.evaluation import classifiers as clf_lib

    fields = dataclasses.fields(clf_lib.ClassifierConfig)
    return clf_lib.ClassifierConfig.from_dict({f.name: eval_cfg[f"classifier_{f.name}"] for f in fields})


def train_or_load_classifiers(config, info, train: dict, test: dict, cache_dir: str,
                              log: Callable[[str], None] = _log,
                              batch_size: Optional[int] = None) -> Classifiers:
    """Per-view shared (and private) label classifiers, from the cache or trained now."""
    from idmvae_jax.evaluation import classifiers as clf_lib

    e = config.eval
    common = dict(seed=CLASSIFIER_SEED, learning_rate=float(e.classifier_learning_rate),
                  config=classifier_config(e), log=log)
    n, epochs, bs = classifier_budget(e, len(train["y_shared"]))
    shared = clf_lib.load_or_train(cache_dir, [x[:n] for x in train["x"]], train["y_shared"][:n],
                                   info.num_shared_classes, test["x"], test["y_shared"],
                                   name=f"{info.name}-shared", epochs=epochs, batch_size=bs, **common)
    private, pviews = None, private_views(info, train)
    if pviews:
        n, epochs, bs = classifier_budget(e, len(train["y_shared"]), private_classifier_steps(e))
        private = clf_lib.load_or_train(
            cache_dir, [train["x"][m][:n] for m in pviews], train["y_private"][:n][:, pviews],
            info.num_private_classes, [test["x"][m] for m in pviews], test["y_private"][:, pviews],
            name=f"{info.name}-private", epochs=epochs, batch_size=bs, **common)
    return Classifiers(shared, private, tuple(pviews), batch_size)


def private_views(info, data: dict) -> List[int]:
    """Views that carry a private label (none when the data has no private labels)."""
    if not info.num_private_classes or data.get("y_private") is None:
        return []
    return [m for m, v in enumerate(info.views) if v.has_private_label]


# ======================================================================= the metrics
@dataclasses.dataclass
class EvalSettings:
    batch_size: int = 256
    num_fit: Optional[int] = 10_000
    fid_samples: int = 0
    fid_feature_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None  # None: FID skipped


def probe_metrics(encode_means, train_xs, test_xs, train_labels: dict, test_labels: dict,
                  pviews: Sequence[int], *, batch_size: int, num_fit: Optional[int]
                  ) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Latent probes of the posterior means (the private ones on the views `pviews` only).

    Returns (the `probe/...` metrics, the split's posterior means {'z', 'w'} (M, N, dim)).
    """
    def means(xs):
        n = len(xs[0])
        zs, ws = [], []
        for start, count, _, xb in arrays.iterate_batches(n, batch_size, xs):
            z, w = encode_means(xb)
            zs.append(np.asarray(z)[:, :count])
            ws.append(np.asarray(w)[:, :count])
        return {"z": np.concatenate(zs, 1), "w": np.concatenate(ws, 1)}

    n_fit = None if not num_fit or num_fit <= 0 else int(num_fit)
    lat_tr = means([x[:n_fit] for x in train_xs])
    lat_te = means(test_xs)
    pv = list(pviews)
    if pv == list(range(len(train_xs))):  # every view has a private label: one pass
        return probes_lib.latent_probes(
            lat_tr, lat_te, {"shared": train_labels["y_shared"], "private": train_labels["y_private"]},
            {"shared": test_labels["y_shared"], "private": test_labels["y_private"]}, n_fit=n_fit), lat_te
    out = probes_lib.latent_probes(lat_tr, lat_te, {"shared": train_labels["y_shared"]},
                                   {"shared": test_labels["y_shared"]}, n_fit=n_fit)
    if pv:  # only some views have one (e.g. CUB: the image, not the caption)
        sub = lambda lat: {k: v[pv] for k, v in lat.items()}  # noqa: E731
        priv = probes_lib.latent_probes(
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


def _frechet(real, fake) -> float:
    """Fréchet distance of two feature sets; with fewer samples than feature dimensions the
    covariances are singular (handled by `frechet`'s diagonal offset), which is not worth a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return frechet.frechet_distance_from_features(real, fake)


def _image_views(info) -> List[int]:
    return [m for m, v in enumerate(info.views) if v.kind == "image"]


def compute_metrics(fns: ModelFns, classifiers: Classifiers, info, train: dict, test: dict,
                    settings: EvalSettings, log: Callable[[str], None] = _log
                    ) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """Every metric of SPEC §5 for one model; returns (metrics, artifacts for the report).

    Args:
      fns: the model's functions (`make_model_fns`, or any stand-in with the same contract).
      classifiers: the per-view classifiers.
      info: the DatasetInfo (views, class counts).
      train: the training tuples for the probes (`load_split` dict; at least num_fit of them).
      test: the evaluation tuples (`load_split` dict).
      settings: batch size, probe budget, FID.
    """
    m = info.num_views
    pviews = private_views(info, test)
    metrics: Dict[str, float] = {}
    art: Dict[str, Any] = {"private_views": pviews, "coherence": {}, "samples": {}, "cross": {},
                           "notes": []}

    # The reference of coherence/unconditional_entropy: every class equally often.
    metrics["coherence/entropy_reference"] = coherence_lib.max_entropy(info.num_shared_classes)
    acc = classifiers.accuracies()
    art["classifier_accuracy"] = acc
    metrics["classifier/shared_acc"] = float(np.mean(acc["shared"]))
    for v, a in enumerate(acc["shared"]):
        metrics[f"classifier/view{v}/shared_acc"] = a
    if "private" in acc:
        metrics["classifier/private_acc"] = float(np.mean([a for a in acc["private"] if a is not None]))
        for v, a in enumerate(acc["private"]):
            if a is not None:
                metrics[f"classifier/view{v}/private_acc"] = a

    t0 = time.time()
    probe, latents_test = probe_metrics(
        fns.encode_means, train["x"], test["x"], train, test, pviews,
        batch_size=settings.batch_size, num_fit=settings.num_fit)
    metrics.update(probe)
    art["latents"] = latents_test
    log(f"probes: {time.time() - t0:.1f}s")

    real_feats = [classifiers.shared_features(v, test["x"][v]) for v in range(m)]
    image_views = _image_views(info)
    fid_on = settings.fid_feature_fn is not None and image_views and settings.fid_samples > 1
    # FID: the first fid_samples real examples of the split against fid_samples generated ones.
    n_fid = settings.fid_samples if fid_on else 0
    real_fid = {v: settings.fid_feature_fn(test["x"][v][:n_fid]) for v in image_views} if fid_on else {}

    for prior in fns.priors:
        t0 = time.time()
        sfx = PRIOR_SUFFIX[prior]
        feats = {"cross": [[] for _ in range(m)], "unconditional": [[] for _ in range(m)]}
        fid_feats = {"cross": {v: [] for v in image_views}, "unconditional": {v: [] for v in image_views}}
        fid_count = {"cross": dict.fromkeys(image_views, 0), "unconditional": dict.fromkeys(image_views, 0)}

        def collect_fid(kind, v, images):
            room = n_fid - fid_count[kind][v]
            if room > 0:
                images = images[:room]
                fid_feats[kind][v].append(settings.fid_feature_fn(images))
                fid_count[kind][v] += len(images)

        def on_batch(kind, start, out, prior=prior):
            if kind == "cross":
                for d in range(m):
                    if m > 1:
                        feats["cross"][d].append(np.concatenate(
                            [classifiers.shared_features(d, out[e][d]) for e in range(m) if e != d]))
                    if fid_on and d in image_views and m > 1:
                        collect_fid("cross", d, np.concatenate([out[e][d] for e in range(m) if e != d]))
                if start == 0:
                    art["cross"][prior] = [[np.asarray(out[e][d][:NUM_FIGURE_EXAMPLES]) for d in range(m)]
                                           for e in range(m)]
            elif kind == "unconditional":
                for v in range(m):
                    feats["unconditional"][v].append(classifiers.shared_features(v, out[v]))
                    if fid_on and v in image_views:
                        collect_fid("unconditional", v, out[v])
                if start == 0:
                    art["samples"][prior] = [np.asarray(o[:NUM_FIGURE_SAMPLES]) for o in out]

        coh, details = coherence_lib.coherence_metrics(
            cross_fn=fns.cross[prior], private_fn=fns.private[prior],
            unconditional_fn=fns.unconditional[prior],
            predict_shared=classifiers.predict_shared,
            predict_private=classifiers.predict_private if pviews else None,
            xs=test["x"], shared_labels=test["y_shared"],
            private_labels=test.get("y_private") if pviews else None,
            num_shared_classes=info.num_shared_classes, batch_size=settings.batch_size,
            private_views=pviews, suffix=sfx, on_batch=on_batch)
        metrics.update(coh)
        art["coherence"][prior] = details

        # Extra unconditional samples for FID beyond the coherence ones.
        n_test = len(test["y_shared"])
        if fid_on and n_fid > n_test:
            for start, count, idx, _ in arrays.iterate_batches(n_fid - n_test, settings.batch_size):
                out = fns.unconditional[prior](idx + n_test)
                for v in image_views:
                    collect_fid("unconditional", v, np.asarray(out[v])[:count])

        for kind in ("unconditional", "cross"):
            if kind == "cross" and m < 2:
                continue
            per_view = []
            for v in range(m):
                fd = _frechet(real_feats[v], np.concatenate(feats[kind][v]))
                metrics[f"fd_classifier/view{v}/{kind}{sfx}"] = fd
                per_view.append(fd)
            metrics[f"fd_classifier/{kind}{sfx}"] = float(np.mean(per_view))
            if fid_on:
                per_view = []
                for v in image_views:
                    fid = _frechet(real_fid[v], np.concatenate(fid_feats[kind][v]))
                    metrics[f"fid/view{v}/{kind}{sfx}"] = fid
                    per_view.append(fid)
                metrics[f"fid/{kind}{sfx}"] = float(np.mean(per_view))
        log(f"coherence ({prior} prior): {time.time() - t0:.1f}s")
    return metrics, art


# ======================================================================= the run
def _active_priors(config, cfg) -> Tuple[str, ...]:
    requested = tuple(config.eval.get("priors", ("gaussian", "diffusion")))
    priors = ["gaussian"]
    if "diffusion" in requested and cfg.model.diffusion_prior:
        priors.append("diffusion")
    return tuple(priors)


def _fid_feature_fn(config, batch_size: int, log):
    """The Inception feature function, or (None, reason) when FID is skipped."""
    path = str(config.eval.get("fid_weights", "") or "")
    if not path:
        return None, ("FID skipped: config.eval.fid_weights is not set (FID needs the standard "
                      "pytorch-fid Inception weights file; see idmvae_jax.evaluation.inception)")
    from idmvae_jax.evaluation import inception

    try:
        variables = inception.load_fid_inception_params(path)
    except FileNotFoundError as err:
        return None, f"FID skipped: {err}"
    return inception.make_fid_feature_fn(variables, batch_size=min(batch_size, 50)), None


def restore_for_eval(config, workdir: str, mesh):
    """(typed cfg, DatasetInfo, params on `mesh`, checkpoint step) of the latest checkpoint."""
    from idmvae_jax import build, checkpointing, parallel, train_step
    from idmvae_jax.data import get_dataset_info

    info = get_dataset_info(config.data)
    cfg = build.build_idmvae_config(config, info)
    init_fn = train_step.make_init_fn(cfg, train_step.make_optimizer(config.train), int(config.seed))
    abstract = parallel.abstract_state(init_fn, mesh)
    ckpt = checkpointing.Checkpointer(workdir, async_save=False)
    try:
        step = ckpt.latest_step()
        if step is None:
            raise FileNotFoundError(
                f"no checkpoint in {ckpt.directory}; train first: "
                f"python -m idmvae_jax.main --config=... --workdir={workdir}")
        state, _ = ckpt.restore(abstract, step)
    finally:
        ckpt.close()
    return cfg, info, state.params, int(step)


def evaluate(config, workdir: str) -> Dict[str, float]:
    """Evaluates the latest checkpoint in `workdir`; writes WORKDIR/eval/{metrics.json, report.md,
    *.png} and returns the metrics (flat dict of floats)."""
    from idmvae_jax import checkpointing, parallel
    from idmvae_jax.data import load_split

    t_start = time.time()
    workdir = checkpointing.local_workdir(workdir)
    eval_dir = os.path.join(workdir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    mesh = parallel.make_mesh(int(config.parallel.get("num_devices", 0)))
    n_dev = mesh.devices.size
    bs = int(config.eval.batch_size)
    bs = max(n_dev, int(math.ceil(bs / n_dev)) * n_dev)

    with jax.set_mesh(mesh):
        cfg, info, params, step = restore_for_eval(config, workdir, mesh)
        _log(f"evaluating {workdir} at step {step} on {n_dev} device(s), batch {bs}")

        split = str(config.eval.get("split", "test"))
        test = load_split(config.data, split)
        n_cls = classifier_train_size(config.eval, info.splits.get("train", 0))
        num_fit = int(config.eval.num_fit)
        n_train = max(n_cls, num_fit if num_fit > 0 else info.splits.get("train", 0))
        train = load_split(config.data, "train", max_examples=n_train)
        _log(f"data: {len(train['y_shared'])} train / {len(test['y_shared'])} {split} tuples "
             f"({time.time() - t_start:.0f}s)")

        t0 = time.time()
        classifiers = train_or_load_classifiers(config, info, train, test,
                                                classifier_cache_dir(config, workdir),
                                                batch_size=bs)
        _log(f"classifiers: {time.time() - t0:.1f}s")
        fid_fn, fid_skip = _fid_feature_fn(config, bs, _log)
        if fid_skip:
            _log(fid_skip)
        priors = _active_priors(config, cfg)
        fns = make_model_fns(params, cfg, mesh, int(config.seed), priors)
        settings = EvalSettings(batch_size=bs, num_fit=num_fit, fid_samples=int(config.eval.fid_samples),
                                fid_feature_fn=fid_fn)
        metrics, art = compute_metrics(fns, classifiers, info, train, test, settings)

    notes = list(art["notes"])
    if fid_skip:
        notes.append(fid_skip)
    if "diffusion" in tuple(config.eval.get("priors", ())) and not cfg.model.diffusion_prior:
        notes.append("The model has no diffusion prior: the `_diffusion` metrics are not computed.")
    metrics = {k: float(v) for k, v in sorted(metrics.items())}
    path = None
    if jax.process_index() == 0:
        with open(os.path.join(eval_dir, "metrics.json"), "w") as f:
            json.dump({k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()}, f,
                      indent=2, sort_keys=True)
        path = report_lib.write_report(
            eval_dir, metrics, info=info, artifacts=art, test=test, notes=notes, step=step,
            priors=priors, split=split, elapsed=time.time() - t_start)
    _log(f"wrote {os.path.join(eval_dir, 'metrics.json')}")
    if path:
        _log(path)
    return metrics


# ======================================================================= CLI
USAGE = ("usage: python -m idmvae_jax.evaluate --config=configs/NAME.py[:ARGS] --workdir=DIR "
         "[--config.X=Y ...]")


def parse_flags(argv: Sequence[str]):
    """(config, workdir, flags) from `--config=FILE[:ARGS] --workdir=DIR [--config.X=Y ...]`.

    Uses its own absl FlagValues, so it coexists with `idmvae_jax.main`'s global flags. The
    multi-process flags are those of `idmvae_jax.main`.
    """
    from absl import flags
    from ml_collections import config_flags

    argv = list(argv)
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "The run's training config file.",
                                    flag_values=fv, lock_config=True, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "The run's directory (checkpoints).", flag_values=fv)
    flags.DEFINE_bool("distributed", False, "jax.distributed.initialize() with cluster auto-detection.",
                      flag_values=fv)
    flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS", ""),
                        "host:port of process 0's coordinator.", flag_values=fv)
    flags.DEFINE_integer("num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "0") or 0),
                         "Number of processes.", flag_values=fv)
    flags.DEFINE_integer("process_id", int(os.environ.get("JAX_PROCESS_ID", "-1") or -1),
                         "This process's index.", flag_values=fv)
    try:
        fv(argv)
    except flags.Error as err:
        raise SystemExit(f"{err}\n{USAGE}")
    if fv.config is None or not fv.workdir:
        raise SystemExit(USAGE)
    return fv.config, fv.workdir, fv


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The CLI: evaluates, writes the metrics and the report, prints the report's path last."""
    config, workdir, fv = parse_flags(sys.argv if argv is None else argv)
    if fv.coordinator_address or fv.distributed:
        from idmvae_jax.main import initialize_distributed

        initialize_distributed(fv.coordinator_address, fv.num_processes, fv.process_id, fv.distributed)
    _log(f"jax {jax.__version__}, {jax.device_count()} device(s) ({jax.devices()[0].platform}), "
         f"{jax.process_count()} process(es)")
    evaluate(config, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
