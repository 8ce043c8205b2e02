"""Training of the per-view label classifiers (`classifiers.ViewClassifiers`), and their cache.

Training is a jitted step over minibatches gathered from the whole training view kept on the
device, optax Adam with a cosine decay, random-shift augmentation of image views, deterministic
given the seed. `load_or_train` caches the result as `<name>-<fingerprint[:16]>.{npz,json}`, the
fingerprint being the SHA-256 of the training and test data and of every setting, so a different
dataset never reuses a cache.
"""
import hashlib
import json
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from idmvae_jax import storage
from idmvae_jax.training.writers import format_duration
from idmvae_jax.evaluation.arrays import view_labels
from idmvae_jax.evaluation.classifiers import (FORMAT_VERSION, ClassifierConfig, ViewClassifiers,
                                               as_model_input, make_apply_fn, make_model, view_kind)


def _input_stats(x: np.ndarray, kind: str) -> Dict[str, np.ndarray]:
    if kind == "image":  # [0, 1] -> [-1, 1]
        return {"mean": np.float32(0.5), "std": np.float32(0.5)}
    x = as_model_input(np.asarray(x), kind).reshape(len(x), -1)
    std = x.std(axis=0)
    return {"mean": x.mean(axis=0).astype(np.float32),
            "std": np.where(std > 1e-6, std, 1.0).astype(np.float32)}

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


def view_groups(views: Sequence[np.ndarray], share_views: bool) -> List[List[int]]:
    """The views each trained network serves: one group per view, or (share_views) one group per
    (kind, example shape, dtype), in view order."""
    if not share_views:
        return [[m] for m in range(len(views))]
    groups: Dict[Tuple, List[int]] = {}
    for m, x in enumerate(views):
        x = np.asarray(x)
        groups.setdefault((view_kind(x.shape[1:]), x.shape[1:], x.dtype.str), []).append(m)
    return list(groups.values())


def _views_text(group: Sequence[int]) -> str:
    return f"view {group[0]}" if len(group) == 1 else "views " + ",".join(str(m) for m in group)


def train_view_classifiers(views_train: Sequence[np.ndarray], labels_train: np.ndarray,
                           num_classes: int, views_test: Sequence[np.ndarray],
                           labels_test: np.ndarray, *, seed: int = 0, epochs: int = 8,
                           batch_size: int = 128, learning_rate: float = 3e-3,
                           config: ClassifierConfig = ClassifierConfig(),
                           fingerprint: Optional[str] = None, label_name: str = "label",
                           log: Optional[Callable[[str], None]] = None) -> ViewClassifiers:
    """Trains the classifiers of one label for every view and records each view's test accuracy.

    One network per view, or with `config.share_views` one network per group of views of the same
    kind and shape, trained on the group's pooled examples (`view_groups`).

    Args:
      views_train: M arrays (N, ...) — images (N, H, W, C)/(N, H, W) uint8 or float in [0, 1],
        or vectors (N, D).
      labels_train: (N,) labels shared by all views, or (N, M) per-view labels, ints in [0, K).
      num_classes: K.
      views_test, labels_test: the same for the test split (accuracy only).
      seed: all randomness (init, minibatch order) derives from `jax.random.key(seed)`.
      epochs, batch_size, learning_rate: Adam training budget per network (an epoch is one pass
        over the network's training examples: N, or N x the group's views when shared), the
        learning rate decaying to 0 on a cosine (batches are drawn without replacement each
        epoch; the remainder of an epoch is skipped).
      config: architecture.
      fingerprint: stored with the result (computed by `load_or_train`).
      label_name: what the label is, for the log lines (e.g. 'digit').
      log: optional callable for progress lines (loss and ETA per epoch).
    Returns:
      ViewClassifiers with per-view parameters and test accuracies.
    """
    num_views = len(views_train)
    if len(views_test) != num_views:
        raise ValueError("views_train and views_test must have the same number of views")
    base_key = jax.random.key(seed)
    variables: List[Any] = [None] * num_views
    kinds = [view_kind(np.asarray(x).shape[1:]) for x in views_train]
    shapes = [tuple(np.asarray(x).shape[1:]) for x in views_train]
    train_steps: Dict[Tuple, Any] = {}
    permutation = jax.jit(jax.random.permutation, static_argnums=1)
    groups = view_groups(views_train, config.share_views)
    total_epochs, epochs_done, t_start = epochs * len(groups), 0, time.perf_counter()
    for m in range(num_views):
        y_tr = view_labels(labels_train, m, num_views)
        if np.asarray(views_train[m]).shape[0] != y_tr.shape[0]:
            raise ValueError(f"view {m}: {np.asarray(views_train[m]).shape[0]} training inputs, "
                             f"{y_tr.shape[0]} labels")
        if y_tr.min() < 0 or y_tr.max() >= num_classes:
            raise ValueError(f"view {m}: labels outside [0, {num_classes})")
    for group in groups:
        x_tr = np.concatenate([np.asarray(views_train[m]) for m in group])
        y_tr = np.concatenate([view_labels(labels_train, m, num_views) for m in group]).astype(np.int32)
        kind = kinds[group[0]]
        apply_fn = make_apply_fn(kind, num_classes, config)
        bs = min(batch_size, x_tr.shape[0])
        steps = x_tr.shape[0] // bs
        # Adam with a cosine decay of the learning rate to 0 over the whole run.
        tx = optax.adam(optax.cosine_decay_schedule(learning_rate, max(1, epochs * steps)))
        cache_key = (kind, x_tr.shape, x_tr.dtype.str, bs)
        if cache_key not in train_steps:  # networks of one data shape share one compiled step
            train_steps[cache_key] = _make_train_step(apply_fn, tx, kind, config.max_shift)
        train_step = train_steps[cache_key]

        init_key, order_key = jax.random.split(jax.random.fold_in(base_key, group[0]))
        model = make_model(kind, num_classes, config)
        example = jnp.zeros((1,) + as_model_input(x_tr[:1], kind).shape[1:], jnp.float32)
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
            loss = float(jnp.mean(jnp.stack(losses)))
            epochs_done += 1
            if log is not None:
                elapsed = time.perf_counter() - t_start
                eta = elapsed / epochs_done * (total_epochs - epochs_done)
                log(f"{label_name} classifier ({_views_text(group)}): epoch {epoch + 1}/{epochs}, "
                    f"loss {loss:.4f} | ETA {format_duration(eta)}")
        v = jax.tree.map(np.asarray, v)
        for m in group:
            variables[m] = v
    result = ViewClassifiers(variables, num_classes, kinds, shapes, [float("nan")] * num_views,
                             config, fingerprint or "")
    for m in range(num_views):
        result.test_accuracy[m] = result.accuracy(
            m, views_test[m], view_labels(labels_test, m, num_views))
    if log is not None:
        log(f"{label_name} classifier test accuracy: "
            + ", ".join(f"view {m} {a:.4f}" for m, a in enumerate(result.test_accuracy))
            + f" ({time.perf_counter() - t_start:.0f} s)")
    return result


def load_or_train(cache_dir: str, views_train: Sequence[np.ndarray], labels_train: np.ndarray,
                  num_classes: int, views_test: Sequence[np.ndarray], labels_test: np.ndarray,
                  *, name: str = "classifiers", seed: int = 0, epochs: int = 8,
                  batch_size: int = 128, learning_rate: float = 3e-3,
                  config: ClassifierConfig = ClassifierConfig(), label_name: str = "label",
                  log: Optional[Callable[[str], None]] = None) -> ViewClassifiers:
    """Returns the cached classifiers for exactly this data and these settings, else trains them.

    The cache is `<cache_dir>/<name>-<fingerprint[:16]>.{npz,json}`; the full fingerprint
    (data bytes + num_classes + seed + training settings + architecture) is checked on load, so a
    different dataset, split or setting trains (and caches) anew. Arguments as
    `train_view_classifiers`.
    """
    architecture = config.to_dict()
    if not config.share_views:  # caches trained before the option keep their fingerprint
        del architecture["share_views"]
    settings = dict(num_classes=num_classes, seed=seed, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, config=architecture)
    fp = data_fingerprint(list(views_train), labels_train, list(views_test), labels_test,
                          **settings)
    path = storage.path(cache_dir) / f"{name}-{fp[:16]}"
    if path.with_suffix(".json").exists() and path.with_suffix(".npz").exists():
        try:
            result = ViewClassifiers.load(path, expected_fingerprint=fp)
            if log is not None:
                log(f"{label_name} classifiers: loaded from the cache {path}.npz")
            return result
        except (ValueError, KeyError, OSError) as e:  # a stale or damaged cache: retrain
            logging.warning("ignoring classifier cache %s: %s", path, e)
    if log is not None:
        log(f"{label_name} classifiers: training them once for this dataset (cached in {path}.npz "
            "for every later evaluation)")
    result = train_view_classifiers(views_train, labels_train, num_classes, views_test,
                                    labels_test, seed=seed, epochs=epochs,
                                    batch_size=batch_size, learning_rate=learning_rate,
                                    config=config, fingerprint=fp, label_name=label_name, log=log)
    result.save(path)
    return result
