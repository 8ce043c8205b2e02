"""The evaluation of a trained run (SPEC §5), one unit per concern.

Run it with `python -m idmvae_jax.evaluate` (the CLI) or `run.evaluate(config, workdir)`.

* `run`: `evaluate(config, workdir)` composes the units below; `compute_metrics` computes every
  metric from a model's functions and the classifiers, given as plain functions.
* `runtime`: the mesh and batch size, the checkpoint restored for evaluation, process-0 logging.
* `model_fns`: a trained model as jitted, batch-sharded host functions (encode, generate).
* `label_classifiers`: the per-view label classifiers of a run, their budget and cache policy.
* `classifiers`: the classifier networks; `classifier_training`: their training and disk cache.
* `probes`: latent linear probes (logistic regression on posterior means).
* `coherence`: coherence of generated samples, scored by the classifiers.
* `fid`: Fréchet distances of generated against real examples (classifier features, FID).
* `frechet`: the Fréchet distance between Gaussians fitted to feature sets.
* `inception`: the FID Inception-v3 in Flax and a torch-free loader for its standard weights.
* `torch_pickle`: the restricted reader of `torch.save` state dicts; `torch_pickle_writer`: a
  writer of the same layouts.
* `report`: report.md and its figures.
* `arrays`: fixed-size batches and per-view labels, shared by the units.
"""
from idmvae_jax.evaluation.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
)
from idmvae_jax.evaluation.probes import latent_probes, probe_accuracy
from idmvae_jax.evaluation.classifiers import ClassifierConfig, ViewClassifiers
from idmvae_jax.evaluation.classifier_training import (
    data_fingerprint,
    load_or_train,
    train_view_classifiers,
)
from idmvae_jax.evaluation.inception import (
    FID_WEIGHTS_CONFIG_KEY,
    FID_WEIGHTS_FILENAME,
    FID_WEIGHTS_URL,
    InceptionV3FID,
    fid_from_weights,
    load_fid_inception_params,
    make_fid_feature_fn,
    preprocess_images,
    resolve_fid_weights,
)
from idmvae_jax.evaluation.torch_pickle import load_torch_state_dict
from idmvae_jax.evaluation.torch_pickle_writer import save_torch_state_dict

__all__ = [
    "ClassifierConfig",
    "FID_WEIGHTS_CONFIG_KEY",
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_URL",
    "InceptionV3FID",
    "ViewClassifiers",
    "data_fingerprint",
    "feature_statistics",
    "fid_from_weights",
    "frechet_distance",
    "frechet_distance_from_features",
    "latent_probes",
    "load_fid_inception_params",
    "load_or_train",
    "load_torch_state_dict",
    "make_fid_feature_fn",
    "preprocess_images",
    "probe_accuracy",
    "resolve_fid_weights",
    "save_torch_state_dict",
    "train_view_classifiers",
]
