"""Per-view label classifiers used to score generated samples (coherence) and as a feature space
for a Fréchet distance that works offline: the networks and the trained classifiers.

One classifier per view for one label (e.g. the digit, or a view's quadrant): a small strided CNN
for image views (NHWC, uint8 or float in [0, 1]; 28, 32 or 64 px, 1 or 3 channels) and an MLP for
vector views (standardised with the training mean/std). `ViewClassifiers` holds the trained
parameters of every view and predicts, extracts features (in fixed-size jitted batches) and saves
or loads itself as `<name>-<fingerprint>.npz` (parameters) next to `<name>-<fingerprint>.json`
(accuracies, shapes, hyper-parameters and the fingerprint of the data and settings it was trained
on). Training and the cache by fingerprint: `classifier_training`.
"""
import dataclasses
import io
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from idmvae_jax import storage
from idmvae_jax.evaluation.arrays import map_batches

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of the per-view classifiers.

    conv_features: channels of the image CNN's levels; each level is `convs_per_level` - 1 3x3
      stride-1 convolutions then one 3x3 stride-2 convolution ('SAME', ReLU).
    convs_per_level: convolutions per level (1 = strided convolutions only).
    hidden: width of the penultimate dense layer (the `features` dimension) for images.
    mlp_hidden: hidden widths of the vector-view MLP (the last one is the `features` dimension).
    max_shift: training-time augmentation of image views: each example is translated by a
      random integer offset in [-max_shift, max_shift] along both axes (edge padding).
      0 disables it; keep it well below the size of the label-relevant structures.
    share_views: train one network on the pooled examples of all views of the same kind and
      shape (each view still gets its own test accuracy) instead of one network per view: one
      training run instead of M, and a network that has seen every view's style.
    """

    conv_features: Tuple[int, ...] = (32, 64, 64)
    convs_per_level: int = 1
    hidden: int = 128
    mlp_hidden: Tuple[int, ...] = (256, 128)
    max_shift: int = 1
    share_views: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ClassifierConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class ImageClassifier(nn.Module):
    """Strided CNN: (N, H, W, C) standardised images -> (logits (N, K), features (N, hidden))."""

    num_classes: int
    conv_features: Sequence[int]
    hidden: int
    convs_per_level: int = 1

    @nn.compact
    def __call__(self, x):
        for i, f in enumerate(self.conv_features):
            for j in range(self.convs_per_level - 1):
                x = nn.relu(nn.Conv(f, (3, 3), padding="SAME", name=f"conv{i}_{j}")(x))
            x = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME", name=f"conv{i}")(x))
        x = x.reshape(x.shape[0], -1)
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(x))
        return nn.Dense(self.num_classes, name="head")(h), h


class VectorClassifier(nn.Module):
    """MLP: (N, D) standardised vectors -> (logits (N, K), features (N, mlp_hidden[-1]))."""

    num_classes: int
    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        for i, f in enumerate(self.hidden):
            h = nn.relu(nn.Dense(f, name=f"dense{i}")(h))
        return nn.Dense(self.num_classes, name="head")(h), h


def view_kind(example_shape: Tuple[int, ...]) -> str:
    """'image' for (H, W, C) or (H, W) examples, 'vector' for (D,)."""
    if len(example_shape) in (2, 3):
        return "image"
    if len(example_shape) == 1:
        return "vector"
    raise ValueError(f"cannot classify examples of shape {example_shape}")


def make_model(kind: str, num_classes: int, config: ClassifierConfig) -> nn.Module:
    if kind == "image":
        return ImageClassifier(num_classes, tuple(config.conv_features), config.hidden, config.convs_per_level)
    return VectorClassifier(num_classes, tuple(config.mlp_hidden))


def as_model_input(x, kind: str):
    """uint8 images -> [0, 1]; (N, H, W) -> (N, H, W, 1); float32 throughout (jnp or np)."""
    xp = jnp if isinstance(x, jax.Array) else np
    if kind == "image" and x.ndim == 3:
        x = x[..., None]
    scale = 1.0 / 255.0 if x.dtype == xp.uint8 else 1.0
    return x.astype(xp.float32) * scale

def make_apply_fn(kind: str, num_classes: int, config: ClassifierConfig
                  ) -> Callable[[Dict, jax.Array], Tuple[jax.Array, jax.Array]]:
    """`apply(variables, x) -> (logits, features)` for raw inputs (uint8 or float) of one view.

    `variables = {'params': flax params, 'input': {'mean', 'std'}}`.
    """
    model = make_model(kind, num_classes, config)

    def apply(variables, x):
        x = as_model_input(x, kind)
        x = (x - variables["input"]["mean"]) / variables["input"]["std"]
        return model.apply({"params": variables["params"]}, x)

    return apply

@dataclasses.dataclass
class ViewClassifiers:
    """Trained classifiers, one per view, for one label with `num_classes` classes.

    Attributes:
      variables: per view `{'params': ..., 'input': {'mean', 'std'}}` (numpy pytrees).
      num_classes: K.
      kinds: per view 'image' or 'vector'.
      example_shapes: per view shape of one input example.
      test_accuracy: per view accuracy on the test split given at training time.
      config: the architecture.
      fingerprint: SHA-256 of the training/test data and settings
        (`classifier_training.data_fingerprint`).
    """

    variables: List[Dict[str, Any]]
    num_classes: int
    kinds: List[str]
    example_shapes: List[Tuple[int, ...]]
    test_accuracy: List[float]
    config: ClassifierConfig = ClassifierConfig()
    fingerprint: str = ""
    eval_batch_size: int = 512

    def __post_init__(self):
        self._apply = [jax.jit(make_apply_fn(k, self.num_classes, self.config))
                       for k in self.kinds]
        self._device_variables = [None] * len(self.kinds)

    @property
    def num_views(self) -> int:
        return len(self.kinds)

    def _run(self, view_index: int, x) -> Tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        if tuple(x.shape[1:]) != tuple(self.example_shapes[view_index]):
            raise ValueError(f"view {view_index} expects examples of shape "
                             f"{self.example_shapes[view_index]}, got {x.shape[1:]}")
        if x.shape[0] == 0:
            feat_dim = (self.config.hidden if self.kinds[view_index] == "image"
                        else self.config.mlp_hidden[-1])
            return np.zeros((0, self.num_classes), np.float32), np.zeros((0, feat_dim), np.float32)
        if self._device_variables[view_index] is None:
            self._device_variables[view_index] = jax.device_put(self.variables[view_index])
        variables = self._device_variables[view_index]
        return map_batches(lambda batch: self._apply[view_index](variables, batch), x,
                           min(self.eval_batch_size, x.shape[0]))

    def logits(self, view_index: int, x) -> np.ndarray:
        """(N, K) float32 logits of view `view_index`'s classifier for inputs x (N, ...)."""
        return self._run(view_index, x)[0]

    def predict(self, view_index: int, x) -> np.ndarray:
        """(N,) int32 predicted labels for inputs x (N, ...) of view `view_index`."""
        return np.argmax(self.logits(view_index, x), axis=-1).astype(np.int32)

    def features(self, view_index: int, x) -> np.ndarray:
        """(N, F) float32 penultimate-layer activations (F = config.hidden for images)."""
        return self._run(view_index, x)[1]

    def accuracy(self, view_index: int, x, labels) -> float:
        """Fraction of inputs x (N, ...) whose predicted label equals labels (N,)."""
        return float(np.mean(self.predict(view_index, x) == np.asarray(labels).reshape(-1)))

    # ------------------------------------------------------------------------------ caching
    @staticmethod
    def _paths(path) -> Tuple[Any, Any]:
        """(`<stem>.npz`, `<stem>.json`) as storage paths (local or a bucket URL)."""
        text = os.fspath(path)
        stem = text[:-4] if text.endswith(".npz") else text
        return storage.path(stem + ".npz"), storage.path(stem + ".json")

    def save(self, path: str) -> None:
        """Writes `<path>.npz` (parameters) and `<path>.json` (metadata, accuracies)."""
        npz_path, json_path = self._paths(path)
        flat = {}
        for m, v in enumerate(self.variables):
            for key_path, leaf in jax.tree_util.tree_flatten_with_path(v)[0]:
                name = "/".join(str(k.key) for k in key_path)
                flat[f"view{m}/{name}"] = np.asarray(leaf)
        buffer = io.BytesIO()
        np.savez(buffer, **flat)
        storage.write_bytes(npz_path, buffer.getvalue())
        meta = {
            "format": FORMAT_VERSION, "num_classes": self.num_classes, "kinds": self.kinds,
            "example_shapes": [list(s) for s in self.example_shapes],
            "test_accuracy": [float(a) for a in self.test_accuracy],
            "config": self.config.to_dict(), "fingerprint": self.fingerprint,
        }
        storage.write_text(json_path, json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str, expected_fingerprint: Optional[str] = None) -> "ViewClassifiers":
        """Reads what `save` wrote; ValueError if `expected_fingerprint` is given and differs."""
        npz_path, json_path = cls._paths(path)
        meta = json.loads(json_path.read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{json_path}: unsupported classifier cache format {meta.get('format')}")
        if expected_fingerprint is not None and meta["fingerprint"] != expected_fingerprint:
            raise ValueError(f"{json_path}: classifiers were trained on different data "
                             f"(fingerprint {meta['fingerprint'][:16]}..., expected "
                             f"{expected_fingerprint[:16]}...)")
        variables: List[Dict[str, Any]] = [{} for _ in meta["kinds"]]
        with np.load(io.BytesIO(npz_path.read_bytes())) as data:
            for key in data.files:
                view, *parts = key.split("/")
                node = variables[int(view[len("view"):])]
                for p in parts[:-1]:
                    node = node.setdefault(p, {})
                node[parts[-1]] = data[key]
        return cls(variables=variables, num_classes=int(meta["num_classes"]),
                   kinds=list(meta["kinds"]),
                   example_shapes=[tuple(s) for s in meta["example_shapes"]],
                   test_accuracy=list(meta["test_accuracy"]),
                   config=ClassifierConfig.from_dict(meta["config"]),
                   fingerprint=meta["fingerprint"])
