"""A trained model as the evaluators see it: host-level (numpy in, numpy out) encoding and
generation functions, jitted and batch-sharded over a mesh.

`make_model_fns(params, cfg, mesh, seed, priors)` wires `generation`'s pure functions into a
`ModelFns`: the posterior means for the probes, and per prior the cross-generation, the generation
from the private codes and the unconditional samples that `coherence` and `fid` score. Every random
draw is a function of (seed, purpose, prior, example index), so the outputs do not depend on the
batch size or the number of devices. Generated views come back in the data's format
(`to_data_format`), the one the classifiers were trained on.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from idmvae_jax import generation
from idmvae_jax.data import images

# The purposes a random draw is folded with: example i of purpose p under prior q uses
# fold_in(fold_in(fold_in(key(seed), PURPOSE[p]), PRIORS.index(q)), i).
PURPOSE = {"cross": 1, "private": 2, "unconditional": 3}


@dataclasses.dataclass
class ModelFns:
    """Host-level (numpy in, numpy out) functions of a trained model, one set per prior.

    encode_means(xs) -> (mu_z (M, B, Z), mu_w (M, B, W)) posterior means.
    cross[prior], private[prior], unconditional[prior]: see `coherence` (CrossFn,
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
        return images.float_to_uint8(a)
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


def make_model_fns(params, cfg, mesh, seed: int, priors: Sequence[str] = ("gaussian",),
                   encode: Optional[Callable] = None) -> ModelFns:
    """Jitted, batch-sharded generation and encoding functions of a trained model.

    Args:
      params: the model parameters (replicated over `mesh`).
      cfg: the run's IDMVAEConfig.
      mesh: a 1-D mesh with axis 'data' (`training.parallel.make_mesh`); batches are sharded over it.
      seed: the base of every random draw: example i of purpose p under prior q uses
        fold_in(fold_in(fold_in(key(seed), p), q), i).
      priors: 'gaussian' and/or 'diffusion' (the latter needs cfg.model.diffusion_prior).
      encode: the run's `make_encoder(cfg, mesh)`, when the caller has compiled it already.
    Returns:
      ModelFns; every call takes host arrays whose batch size is divisible by the mesh size.
    """
    data = NamedSharding(mesh, P("data"))
    repl = NamedSharding(mesh, P())
    kinds = [v.kind for v in cfg.model.views]
    base = jax.random.key(seed)

    def fmt(views):
        return [to_data_format(k, a) for k, a in zip(kinds, views)]


    def per_example(fn, purpose: str, prior: str):
        """fn(params, xs, key, cfg, prior) (or fn(params, key, num, cfg, prior) when xs is None)
        run on every example of a batch with its own key fold_in(key_{purpose, prior}, index)."""
        key = jax.random.fold_in(jax.random.fold_in(base, PURPOSE[purpose]),
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

    encode = encode or make_encoder(cfg, mesh)
    return ModelFns(lambda xs: encode(params, xs), cross, private, uncond)


def make_encoder(cfg, mesh) -> Callable:
    """`encode(params, xs) -> (mu_z (M, B, Z), mu_w (M, B, W))` host arrays: the posterior means,
    jitted once and batch-sharded over `mesh`; any parameters of the run's shapes (every
    checkpoint of it) reuse the compiled function."""
    data, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

    def encode_means(p, xs):
        post = generation.encode(p, xs, cfg)
        return jnp.swapaxes(post.mu_z, 0, 1), jnp.swapaxes(post.mu_w, 0, 1)  # batch first

    enc = jax.jit(encode_means, in_shardings=(repl, data), out_shardings=data)

    def encode_host(params, xs):
        mu_z, mu_w = _fetch(enc(params, _put(list(xs), data)))
        return np.swapaxes(mu_z, 0, 1), np.swapaxes(mu_w, 0, 1)

    return encode_host
