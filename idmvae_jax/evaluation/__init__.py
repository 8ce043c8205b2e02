"""Model-independent evaluation metrics (SPEC §5).

* `classifiers`: per-view label classifiers (CNN for images, MLP for vectors), cached on disk,
  for coherence scores and a Fréchet distance on their penultimate features.
* `probes`: latent linear probes (logistic regression on posterior means).
* `frechet`: the Fréchet distance between Gaussians fitted to feature sets.
* `inception`: the FID Inception-v3 in Flax and a torch-free loader for its standard weights.
* `torch_pickle`: the restricted reader (and a writer) for `torch.save` state dicts.
"""
from idmvae_jax.evaluation.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
)
from idmvae_jax.evaluation.probes import latent_probes, probe_accuracy
from idmvae_jax.evaluation.classifiers import (
    ClassifierConfig,
    ViewClassifiers,
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
from idmvae_jax.evaluation.torch_pickle import load_torch_state_dict, save_torch_state_dict

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
