"""Per-view label classifiers used to score generated samples (coherence) and as a feature space
for a Fréchet distance that works offline.

One classifier per view for one label (e.g. the digit, or a view's quadrant): a small strided CNN
for image views (NHWC, uint8 or float in [0, 1]; 28, 32 or 64 px, 1 or 3 channels) and an MLP for
vector views (standardised with the training mean/std). Training is a jitted step over minibatches
gathered from the whole training view kept on the device, optax Adam, deterministic
given the seed. Trained classifiers are cached as `<name>-<fingerprint>.npz` (parameters) next to
`<name>-<fingerprint>.json` (accuracies, shapes, hyper-parameters and the SHA-256 fingerprint of
the training and test data and settings), so a different dataset never reuses a cache.
"""
import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from idmvae_jax.evaluation.arrays import map_batches, view_labels

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
    """

    conv_features: Tuple[int, ...] = (32, 64, 64)
    convs_per_level: int = 1
    hidden: int = 128
    mlp_hidden: Tuple[int, ...] = (256, 128)
    max_shift: int = 1

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


def _make_model(kind: str, num_classes: int, config: ClassifierConfig) -> nn.Module:
    if kind == "image":
        return ImageClassifier(num_classes, tuple(config.conv_features), config.hidden, config.convs_per_level)
    return VectorClassifier(num_classes, tuple(config.mlp_hidden))


def _as_model_input(x, kind: str):
    """uint8 images -> [0, 1]; (N, H, W) -> (N, H, W, 1); float32 throughout (jnp or np)."""
    xp = jnp if isinstance(x, jax.Array) else np
    if kind == "image" and x.ndim == 3:
        x = x[..., None]
    scale = 1.0 / 255.0 if x.dtype == xp.uint8 else 1.0
    return x.astype(xp.float32) * scale


def _input_stats(x: np.ndarray, kind: str) -> Dict[str, np.ndarray]:
    if kind == "image":  # [0, 1] -> [-1, 1]
        return {"mean": np.float32(0.5), "std": np.float32(0.5)}
    x = _as_model_input(np.asarray(x), kind).reshape(len(x), -1)
    std = x.std(axis=0)
    return {"mean": x.mean(axis=0).astype(np.float32),
            "std": np.where(std > 1e-6, std, 1.0).astype(np.float32)}


def make_apply_fn(kind: str, num_classes: int, config: ClassifierConfig
                  ) -> Callable[[Dict, jax.Array], Tuple[jax.Array, jax.Array]]:
    """`apply(variables, x) -> (logits, features)` for raw inputs (uint8 or float) of one view.

    `variables = {'params': flax params, 'input': {'mean', 'std'}}`.
    """
    model = _make_model(kind, num_classes, config)

    def apply(variables, x):
        x = _as_model_input(x, kind)
        x = (x - variables["input"]["mean"]) / variables["input"]["std"]
        return model.apply({"params": variables["params"]}, x)

    return apply


def data_fingerprint(views_train, labels_train, views_test, labels_test, **settings) -> str:
    """SHA-256 over the shapes, dtypes and bytes of the data and the JSON of `settings`."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True,
                        default=str).encode())
    for group in (views_train, [labels_train], views_test, [labels_test]):
        for arr in group:
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.shape}{arr.dtype.str}".encode())
            h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


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
      fingerprint: SHA-256 of the training/test data and settings (see `data_fingerprint`).
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
    def _paths(path: str) -> Tuple[str, str]:
        stem = path[:-4] if path.endswith(".npz") else path
        return stem + ".npz", stem + ".json"

    def save(self, path: str) -> None:
        """Writes `<path>.npz` (parameters) and `<path>.json` (metadata, accuracies)."""
        npz_path, json_path = self._paths(os.fspath(path))
        os.makedirs(os.path.dirname(os.path.abspath(npz_path)), exist_ok=True)
        flat = {}
        for m, v in enumerate(self.variables):
            for key_path, leaf in jax.tree_util.tree_flatten_with_path(v)[0]:
                name = "/".join(str(k.key) for k in key_path)
                flat[f"view{m}/{name}"] = np.asarray(leaf)
        tmp = npz_path + ".tmp.npz"
        np.savez(tmp, **flat)
        os.replace(tmp, npz_path)
        meta = {
            "format": FORMAT_VERSION, "num_classes": self.num_classes, "kinds": self.kinds,
            "example_shapes": [list(s) for s in self.example_shapes],
            "test_accuracy": [float(a) for a in self.test_accuracy],
            "config": self.config.to_dict(), "fingerprint": self.fingerprint,
        }
        with open(json_path + ".tmp", "w") as f:
            json.dump(meta, f, indent=2)
        os.replace(json_path + ".tmp", json_path)

    @classmethod
    def load(cls, path: str, expected_fingerprint: Optional[str] = None) -> "ViewClassifiers":
        """Reads what `save` wrote; ValueError if `expected_fingerprint` is given and differs."""
        npz_path, json_path = cls._paths(os.fspath(path))
        with open(json_path) as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{json_path}: unsupported classifier cache format {meta.get('format')}")
        if expected_fingerprint is not None and meta["fingerprint"] != expected_fingerprint:
            raise ValueError(f"{json_path}: classifiers were trained on different data "
                             f"(fingerprint {meta['fingerprint'][:16]}..., expected "
                             f"{expected_fingerprint[:16]}...)")
        variables: List[Dict[str, Any]] = [{} for _ in meta["kinds"]]
        with np.load(npz_path) as data:
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


def random_shift(images, key, max_shift: int):
    """Translates each (H, W, C) image of a batch by a random offset in [-max_shift, max_shift]^2."""
    n, h, w = images.shape[:3]
    pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift)) + ((0, 0),) * (images.ndim - 3)
    padded = jnp.pad(images, pad, mode="edge")
    offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1]) + (0,) * (img.ndim - 2),
                                     (h, w) + img.shape[2:])

    return jax.vmap(crop)(padded, offsets)


def _make_train_step(apply_fn, tx, kind: str = "vector", max_shift: int = 0):
    """Jitted `step(variables, opt_state, x, y, idx, key, i) -> (variables, opt_state, loss)`.

    The whole training view stays on the device and the step gathers its minibatch `x[idx]`.
    The epoch loop runs on the host (dispatch is asynchronous, nothing is fetched per step):
    on XLA:CPU convolutions inside a `lax.scan`/while body run ~25x slower than at top level.
    """

    def loss_fn(params, variables, xb, yb):
        logits, _ = apply_fn({**variables, "params": params}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(variables, opt_state, x, y, idx, key, i):
        xb = x[idx]
        if kind == "image" and max_shift > 0:
            xb = random_shift(xb, jax.random.fold_in(key, i), max_shift)
        loss, grads = jax.value_and_grad(loss_fn)(variables["params"], variables, xb, y[idx])
        updates, opt_state = tx.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], updates)
        return {**variables, "params": params}, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def train_view_classifiers(views_train: Sequence[np.ndarray], labels_train: np.ndarray,
                           num_classes: int, views_test: Sequence[np.ndarray],
                           labels_test: np.ndarray, *, seed: int = 0, epochs: int = 8,
                           batch_size: int = 128, learning_rate: float = 3e-3,
                           config: ClassifierConfig = ClassifierConfig(),
                           fingerprint: Optional[str] = None,
                           log: Optional[Callable[[str], None]] = None) -> ViewClassifiers:
    """Trains one classifier per view for one label and records its test accuracy.

    Args:
      views_train: M arrays (N, ...) — images (N, H, W, C)/(N, H, W) uint8 or float in [0, 1],
        or vectors (N, D).
      labels_train: (N,) labels shared by all views, or (N, M) per-view labels, ints in [0, K).
      num_classes: K.
      views_test, labels_test: the same for the test split (accuracy only).
      seed: all randomness (init, minibatch order) derives from `jax.random.key(seed)`.
      epochs, batch_size, learning_rate: Adam training budget, the learning rate decaying to 0
        on a cosine (batches are drawn without replacement each epoch; the remainder of an
        epoch is skipped).
      config: architecture.
      fingerprint: stored with the result (computed by `load_or_train`).
      log: optional callable for progress lines.
    Returns:
      ViewClassifiers with per-view parameters and test accuracies.
    """
    num_views = len(views_train)
    if len(views_test) != num_views:
        raise ValueError("views_train and views_test must have the same number of views")
    base_key = jax.random.key(seed)
    variables, kinds, shapes, accs = [], [], [], []
    train_steps: Dict[Tuple, Any] = {}
    permutation = jax.jit(jax.random.permutation, static_argnums=1)
    for m in range(num_views):
        x_tr, x_te = np.asarray(views_train[m]), np.asarray(views_test[m])
        y_tr = view_labels(labels_train, m, num_views).astype(np.int32)
        y_te = view_labels(labels_test, m, num_views).astype(np.int32)
        if x_tr.shape[0] != y_tr.shape[0]:
            raise ValueError(f"view {m}: {x_tr.shape[0]} training inputs, {y_tr.shape[0]} labels")
        if y_tr.min() < 0 or y_tr.max() >= num_classes:
            raise ValueError(f"view {m}: labels outside [0, {num_classes})")
        kind = view_kind(x_tr.shape[1:])
        apply_fn = make_apply_fn(kind, num_classes, config)
        bs = min(batch_size, x_tr.shape[0])
        steps = x_tr.shape[0] // bs
        # Adam with a cosine decay of the learning rate to 0 over the whole run.
        tx = optax.adam(optax.cosine_decay_schedule(learning_rate, max(1, epochs * steps)))
        cache_key = (kind, x_tr.shape, x_tr.dtype.str, bs)
        if cache_key not in train_steps:  # views of one shape share one compiled step
            train_steps[cache_key] = _make_train_step(apply_fn, tx, kind, config.max_shift)
        train_step = train_steps[cache_key]

        init_key, order_key = jax.random.split(jax.random.fold_in(base_key, m))
        model = _make_model(kind, num_classes, config)
        example = jnp.zeros((1,) + _as_model_input(x_tr[:1], kind).shape[1:], jnp.float32)
        params = jax.jit(model.init)(init_key, example)["params"]
        v = {"params": params, "input": jax.tree.map(jnp.asarray, _input_stats(x_tr, kind))}
        opt_state = tx.init(params)
        x_dev, y_dev = jax.device_put(x_tr), jax.device_put(y_tr)
        for epoch in range(epochs):
            epoch_key, aug_key = jax.random.split(jax.random.fold_in(order_key, epoch))
            # Host copy: indexing a device array with Python ints compiles one slice per int.
            order = np.asarray(permutation(epoch_key, x_tr.shape[0]))
            order = order[:steps * bs].reshape(steps, bs)
            losses = []
            for i in range(steps):
                v, opt_state, loss = train_step(v, opt_state, x_dev, y_dev, order[i], aug_key,
                                                np.int32(i))
                losses.append(loss)
            if log is not None:
                log(f"classifier view {m} epoch {epoch + 1}/{epochs}: "
                    f"loss {float(jnp.mean(jnp.stack(losses))):.4f}")
        v = jax.tree.map(np.asarray, v)
        variables.append(v)
        kinds.append(kind)
        shapes.append(tuple(x_tr.shape[1:]))
        accs.append(float("nan"))
    result = ViewClassifiers(variables, num_classes, kinds, shapes, accs, config,
                             fingerprint or "")
    for m in range(num_views):
        result.test_accuracy[m] = result.accuracy(
            m, views_test[m], view_labels(labels_test, m, num_views))
        if log is not None:
            log(f"classifier view {m}: test accuracy {result.test_accuracy[m]:.4f}")
    return result


def load_or_train(cache_dir: str, views_train: Sequence[np.ndarray], labels_train: np.ndarray,
                  num_classes: int, views_test: Sequence[np.ndarray], labels_test: np.ndarray,
                  *, name: str = "classifiers", seed: int = 0, epochs: int = 8,
                  batch_size: int = 128, learning_rate: float = 3e-3,
                  config: ClassifierConfig = ClassifierConfig(),
                  log: Optional[Callable[[str], None]] = None) -> ViewClassifiers:
    """Returns the cached classifiers for exactly this data and these settings, else trains them.

    The cache is `<cache_dir>/<name>-<fingerprint[:16]>.{npz,json}`; the full fingerprint
    (data bytes + num_classes + seed + training settings + architecture) is checked on load, so a
    different dataset, split or setting trains (and caches) anew. Arguments as
    `train_view_classifiers`.
    """
    settings = dict(num_classes=num_classes, seed=seed, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, config=config.to_dict())
    fp = data_fingerprint(list(views_train), labels_train, list(views_test), labels_test,
                          **settings)
    path = os.path.join(cache_dir, f"{name}-{fp[:16]}")
    if os.path.exists(path + ".json") and os.path.exists(path + ".npz"):
        try:
            result = ViewClassifiers.load(path, expected_fingerprint=fp)
            if log is not None:
                log(f"loaded cached classifiers {path}.npz")
            return result
        except (ValueError, KeyError, OSError) as e:  # a stale or damaged cache: retrain
            logging.warning("ignoring classifier cache %s: %s", path, e)
    result = train_view_classifiers(views_train, labels_train, num_classes, views_test,
                                    labels_test, seed=seed, epochs=epochs,
                                    batch_size=batch_size, learning_rate=learning_rate,
                                    config=config, fingerprint=fp, log=log)
    result.save(path)
    return result
