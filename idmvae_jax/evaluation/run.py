r"""The evaluation of a trained run (SPEC §5), composed of the units of this package.

`evaluate(config, workdir)` restores the latest checkpoint in WORKDIR (`runtime`), reads the
train and evaluation splits, trains or loads the label classifiers (`label_classifiers`), wires the
model's functions (`model_fns`), computes every metric (`compute_metrics`: `probes`, `coherence`,
`fid`) and writes WORKDIR/eval/metrics.json, WORKDIR/eval/report.md and the report's PNG figures
(`report`). `compute_metrics` takes the model and the classifiers as plain functions, so it runs
on any stand-ins with the same contracts.

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
      tuples, scored on the [split] split (`probes`).
  eval/probe_curve.json
      [probe_curve] z -> shared and w -> private probes at every checkpoint kept in the workdir
      (`probe_curve`), drawn in the report beside the reference curves of the results file
      [baseline_results] (`baseline`); [report_note] opens the report.
  coherence/...
      conditional self/cross, private and its leak, unconditional agreement and entropy
      (`coherence`) on the [split] split, with the Gaussian priors and, when the model has
      latent score networks and [priors] names 'diffusion', with the diffusion priors (keys
      suffixed `_diffusion`); coherence/entropy_reference = log(num_shared_classes), the entropy
      of a generator that produces every class equally often.
  fd_classifier/{unconditional,cross}[_diffusion]
      Fréchet distance between the shared classifiers' penultimate features of generated and real
      [split] examples, mean over views (works offline; `fid`).
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
import time
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import numpy as np

from idmvae_jax import storage
from idmvae_jax.evaluation import baseline as baseline_lib
from idmvae_jax.evaluation import coherence as coherence_lib
from idmvae_jax.evaluation import fid as fid_lib
from idmvae_jax.evaluation import label_classifiers
from idmvae_jax.evaluation import model_fns as model_fns_lib
from idmvae_jax.evaluation import probe_curve as probe_curve_lib
from idmvae_jax.evaluation import probes as probes_lib
from idmvae_jax.evaluation import report as report_lib
from idmvae_jax.evaluation import runtime
from idmvae_jax.evaluation.label_classifiers import Classifiers
from idmvae_jax.evaluation.model_fns import ModelFns

PRIOR_SUFFIX = report_lib.PRIOR_SUFFIX
NUM_FIGURE_EXAMPLES = 4
NUM_FIGURE_SAMPLES = 8


@dataclasses.dataclass
class EvalSettings:
    """batch_size: examples per call; num_fit: training tuples the probes are fitted on (None or
    <= 0: all); fid_samples, fid_feature_fn: FID's sample count and feature function (None: no FID)."""

    batch_size: int = 256
    num_fit: Optional[int] = 10_000
    fid_samples: int = 0
    fid_feature_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None


def compute_metrics(fns: ModelFns, classifiers: Classifiers, info, train: dict, test: dict,
                    settings: EvalSettings, log: Callable[[str], None] = runtime.log
                    ) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """Every metric of SPEC §5 for one model; returns (metrics, artifacts for the report).

    Args:
      fns: the model's functions (`model_fns.make_model_fns`, or any stand-in with the same contract).
      classifiers: the per-view classifiers (`label_classifiers.Classifiers`).
      info: the DatasetInfo (views, class counts).
      train: the training tuples for the probes (`load_split` dict; at least num_fit of them).
      test: the evaluation tuples (`load_split` dict).
      settings: batch size, probe budget, FID.
    """
    m = info.num_views
    pviews = label_classifiers.private_views(info, test)
    art: Dict[str, Any] = {"private_views": pviews, "coherence": {}, "samples": {}, "cross": {},
                           "notes": []}
    # The reference of coherence/unconditional_entropy: every class equally often.
    metrics = {"coherence/entropy_reference": coherence_lib.max_entropy(info.num_shared_classes)}
    acc_metrics, art["classifier_accuracy"] = label_classifiers.classifier_metrics(classifiers)
    metrics.update(acc_metrics)

    t0 = time.time()
    probe, art["latents"] = probes_lib.probe_metrics(
        fns.encode_means, train["x"], test["x"], train, test, pviews,
        batch_size=settings.batch_size, num_fit=settings.num_fit)
    metrics.update(probe)
    log(f"probes: {time.time() - t0:.1f}s")

    image_views = [v for v, view in enumerate(info.views) if view.kind == "image"]
    spaces = fid_lib.feature_spaces(classifiers.shared_features, test["x"], image_views,
                                    settings.fid_feature_fn, settings.fid_samples)
    for prior in fns.priors:
        t0 = time.time()
        generated = fid_lib.GeneratedFeatures(spaces)

        def on_batch(kind, start, out, prior=prior):
            generated.on_batch(kind, start, out)
            if start == 0 and kind == "cross":  # the report's figures
                art["cross"][prior] = [[np.asarray(out[e][d][:NUM_FIGURE_EXAMPLES]) for d in range(m)]
                                       for e in range(m)]
            elif start == 0 and kind == "unconditional":
                art["samples"][prior] = [np.asarray(o[:NUM_FIGURE_SAMPLES]) for o in out]

        coh, art["coherence"][prior] = coherence_lib.coherence_metrics(
            cross_fn=fns.cross[prior], private_fn=fns.private[prior],
            unconditional_fn=fns.unconditional[prior],
            predict_shared=classifiers.predict_shared,
            predict_private=classifiers.predict_private if pviews else None,
            xs=test["x"], shared_labels=test["y_shared"],
            private_labels=test.get("y_private") if pviews else None,
            num_shared_classes=info.num_shared_classes, batch_size=settings.batch_size,
            private_views=pviews, suffix=PRIOR_SUFFIX[prior], on_batch=on_batch)
        metrics.update(coh)
        # Extra unconditional samples for FID beyond the coherence ones.
        generated.add_unconditional(fns.unconditional[prior], len(test["y_shared"]), settings.batch_size)
        metrics.update(generated.metrics(PRIOR_SUFFIX[prior]))
        log(f"coherence ({prior} prior): {time.time() - t0:.1f}s")
    return metrics, art


def active_priors(config, cfg) -> Tuple[str, ...]:
    """'gaussian', and 'diffusion' when eval.priors names it and the model has the diffusion prior."""
    requested = tuple(config.eval.get("priors", ("gaussian", "diffusion")))
    priors = ["gaussian"]
    if "diffusion" in requested and cfg.model.diffusion_prior:
        priors.append("diffusion")
    return tuple(priors)


def write_metrics_json(path, metrics: Dict[str, float]) -> None:
    """metrics.json (written atomically; a local path or a bucket URL): sorted keys, non-finite
    values as the strings 'nan' / 'inf'."""
    storage.write_text(path, json.dumps({k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()},
                                        indent=2, sort_keys=True))


def load_eval_data(config, info) -> Tuple[dict, dict]:
    """(the first training tuples the classifiers and probes read, the evaluation split)."""
    from idmvae_jax.data import load_split

    test = load_split(config.data, str(config.eval.get("split", "test")))
    n_cls = label_classifiers.classifier_train_size(config.eval, info.splits.get("train", 0))
    num_fit = int(config.eval.num_fit)
    n_train = max(n_cls, num_fit if num_fit > 0 else info.splits.get("train", 0))
    return load_split(config.data, "train", max_examples=n_train), test


def prepare_classifiers(config, workdir: storage.PathLike) -> None:
    """Trains (and caches) the label classifiers of the config's dataset now, unless the cache
    has them: what `main --evaluate` does before training, so that their one-time cost is paid,
    with its own ETA, before the training's ETA starts counting. Needs no checkpoint."""
    from idmvae_jax.data import get_dataset_info

    info = get_dataset_info(config.data)
    train, test = load_eval_data(config, info)
    label_classifiers.train_or_load_classifiers(
        config, info, train, test, label_classifiers.classifier_cache_dir(config, workdir))


# Fixed costs of an evaluation beside its model passes (loading the data, the probes' logistic
# regressions, the figures), as a factor on the passes' time: measured on `quick` (2 CPU cores,
# 67 s against 29 s of passes estimated from the train step's time).
EVAL_OVERHEAD = 2.3


def estimate_seconds(config, step_seconds: float) -> float:
    """A rough estimate of `evaluate`'s duration after training (classifiers cached), from the
    measured seconds of one train step; what `main --evaluate` adds to the training's ETA.

    The evaluation runs V = (K + 1)(num_fit + N) M encoder passes (the probes at K kept checkpoints
    and at the last) and N (M^2 + 2M) decoder passes (coherence: every view from every view, from
    the private codes, unconditional) on the N evaluation tuples; a train step runs about
    3 B (M + M^2) passes (forward and backward, every view encoded and decoded from every view):

        seconds ~ EVAL_OVERHEAD * step_seconds * V / (3 B (M + M^2))
    """
    from idmvae_jax.data import get_dataset_info
    from idmvae_jax.training.loop import resolve_num_steps

    info = get_dataset_info(config.data)
    tc, e, m = config.train, config.eval, info.num_views
    n_eval = int(info.splits.get(str(e.get("split", "test")), 0))
    num_fit = int(e.num_fit) if int(e.num_fit) > 0 else int(info.splits.get("train", 0))
    k = 0
    if bool(e.get("probe_curve", True)) and tc.checkpoint_every:
        k = min(int(tc.keep_checkpoints) or 10**9, -(-resolve_num_steps(config, info) // int(tc.checkpoint_every)))
    passes = (k + 1) * (num_fit + n_eval) * m + n_eval * (m * m + 2 * m)
    return EVAL_OVERHEAD * float(step_seconds) * passes / (3.0 * int(tc.batch_size) * (m + m * m))


def reference_curves(config) -> Tuple[list, Optional[str]]:
    """(the reference probe curves of eval.baseline_results, a note when it names a file that is
    not there)."""
    setting = str(config.eval.get("baseline_results", ""))
    if not setting:
        return [], None
    path = baseline_lib.resolve(setting)
    if path is None:
        return [], (f"eval.baseline_results names {setting}, which is not there (relative paths are "
                    "read from the working directory or the repository): no reference curves.")
    try:
        return baseline_lib.load_reference_curves(path), None
    except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged file costs the curves only
        return [], f"eval.baseline_results: {path} is not a results file of idmvae_jax.tools.results ({e!r}): no reference curves."


def evaluate(config, workdir: storage.PathLike) -> Dict[str, float]:
    """Evaluates the latest checkpoint in `workdir` (a local path or a bucket URL); writes
    WORKDIR/eval/{metrics.json, report.md, *.png} and returns the metrics (flat dict of floats).

    The previous eval/metrics.json and eval/probe_curve.json are removed first, so a failed
    evaluation never leaves stale numbers behind; the new ones are written atomically at the end."""
    t_start = time.time()
    workdir = storage.check_writable(workdir)
    eval_dir = workdir / "eval"
    if jax.process_index() == 0:  # no stale numbers survive a failed or different evaluation
        storage.remove(eval_dir / "metrics.json")
        storage.remove(eval_dir / "probe_curve.json")
    references, reference_note = reference_curves(config)
    mesh, bs = runtime.make_eval_mesh(config)

    with jax.set_mesh(mesh):
        cfg, info, params, step = runtime.restore_for_eval(config, workdir, mesh)
        runtime.log(f"evaluating {workdir} at step {step} on {mesh.devices.size} device(s), batch {bs}")

        split = str(config.eval.get("split", "test"))
        train, test = load_eval_data(config, info)
        runtime.log(f"data: {len(train['y_shared'])} train / {len(test['y_shared'])} {split} tuples "
                    f"({time.time() - t_start:.0f}s)")

        t0 = time.time()
        classifiers = label_classifiers.train_or_load_classifiers(
            config, info, train, test, label_classifiers.classifier_cache_dir(config, workdir), batch_size=bs)
        runtime.log(f"classifiers: {time.time() - t0:.1f}s")
        num_fit = int(config.eval.num_fit)
        fid_fn, fid_skip = fid_lib.fid_feature_fn(config, bs)
        if fid_skip:
            runtime.log(fid_skip)
        encode = model_fns_lib.make_encoder(cfg, mesh)  # compiled once: the curve and the metrics
        curve = []
        if bool(config.eval.get("probe_curve", True)):
            t0 = time.time()
            curve = probe_curve_lib.probe_curve(
                config, workdir, cfg, mesh, train, test, label_classifiers.private_views(info, test),
                batch_size=bs, num_fit=num_fit, log=runtime.log, encode=encode)
            runtime.log(f"probe curve ({len(curve)} checkpoints): {time.time() - t0:.1f}s")
        priors = active_priors(config, cfg)
        fns = model_fns_lib.make_model_fns(params, cfg, mesh, int(config.seed), priors, encode=encode)
        settings = EvalSettings(batch_size=bs, num_fit=num_fit, fid_samples=int(config.eval.fid_samples),
                                fid_feature_fn=fid_fn)
        metrics, art = compute_metrics(fns, classifiers, info, train, test, settings)

    notes = list(art["notes"])
    if fid_skip:
        notes.append(fid_skip)
    if "diffusion" in tuple(config.eval.get("priors", ())) and not cfg.model.diffusion_prior:
        notes.append("The model has no diffusion prior: the `_diffusion` metrics are not computed.")
    if reference_note:
        notes.append(reference_note)
    metrics = {k: float(v) for k, v in sorted(metrics.items())}
    path = None
    if jax.process_index() == 0:
        write_metrics_json(eval_dir / "metrics.json", metrics)
        if curve:
            probe_curve_lib.write_curve(eval_dir / "probe_curve.json", curve)
        path = report_lib.write_report(
            eval_dir, metrics, info=info, artifacts=art, test=test, notes=notes, step=step,
            priors=priors, split=split, elapsed=time.time() - t_start, curve=curve,
            references=references, summary=str(config.eval.get("report_note", "")))
    runtime.log(f"wrote {eval_dir / 'metrics.json'}")
    if path:
        runtime.log(path)
    return metrics
