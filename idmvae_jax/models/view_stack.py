"""One network applied to a group of views whose parameters are stacked on a leading axis.

`ViewStack(vmap, remat)` is the only place that knows how the views of a group run:
- vmap=True (accelerators): one `jax.vmap` over the stacked parameters and inputs.
- vmap=False (the CPU default, `model.vmap_views='auto'`): a Python loop over the views. XLA:CPU
  runs the gradient of a vmapped convolution (a grouped convolution) far slower than a loop
  (docs/benchmarks.md: a vmapped `mini` step did not finish in 5 minutes), so the CPU keeps it.
  The stacked parameters are split by `unstack_tree`, whose gradient is one stacked array instead
  of one zero-padded copy of the stack per view (up to eight live 80 MiB copies at paper size).
  With remat, view i's input is tied to view i-1's output, so in the backward pass the views'
  recomputations run one after another, and `map_samples` decodes one sample index at a time
  (docs/benchmarks.md, "What model.remat=True does now": 5.39 -> 2.74 GiB with the units).
Same parameters and the same numbers on both paths (tests/test_golden.py).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from idmvae_jax.models.blocks import tie


def group_name(indices) -> str:
    """Parameter-tree key of a view group, e.g. 'views_0_1_2_3_4'."""
    return "views_" + "_".join(str(i) for i in indices)


def stack_trees(trees):
    """n trees of (...) leaves -> one tree of (n, ...) leaves."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


@jax.custom_vjp
def _unstack(x: jax.Array) -> tuple:
    """(n, ...) -> n arrays (...); its gradient stacks the n cotangents into one (n, ...) array."""
    return tuple(x[i] for i in range(x.shape[0]))


def _unstack_fwd(x):
    return _unstack(x), None


def _unstack_bwd(_, cotangents):
    return (jnp.stack(cotangents),)


_unstack.defvjp(_unstack_fwd, _unstack_bwd)


def unstack_tree(tree) -> list:
    """A tree of (n, ...) leaves -> n trees of (...) leaves (gradients stacked, see _unstack)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    per_leaf = [_unstack(leaf) for leaf in leaves]
    n = len(per_leaf[0]) if per_leaf else 0
    return [jax.tree_util.tree_unflatten(treedef, [views[i] for views in per_leaf]) for i in range(n)]


class ViewStack:
    """How the views of one group run: vmapped, or as a (remat-chained) loop."""

    def __init__(self, vmap: bool, remat: bool):
        self.vmap, self.remat = vmap, remat

    def map(self, fn: Callable, params_g, *args):
        """fn(params_i, *args_i) for every view i of a group: params and args (Mg, ...) -> (Mg, ...)."""
        if self.vmap:
            return jax.vmap(fn)(params_g, *args)
        return stack_trees(self._chain(fn, unstack_tree(params_g), args))

    def _chain(self, fn: Callable, params_views: list, args, after=None) -> list:
        """[fn(params_i, *args_i) for each view i] as a loop; with remat view i's input waits for
        view i-1's output (view 0's for `after`)."""
        outs = []
        for i, params_i in enumerate(params_views):
            args_i = [a[i] for a in args]
            prev = outs[-1] if outs else after
            if self.remat and prev is not None:
                args_i[0] = tie(args_i[0], jax.tree_util.tree_leaves(prev)[0])
            outs.append(fn(params_i, *args_i))
        return outs

    def map_samples(self, fn: Callable, params_g, u: jax.Array):
        """fn over S samples per example: u (Mg, S, B, D) -> outputs with leading (Mg, S, B)."""
        mg, s, b, d = u.shape
        if self.remat and not self.vmap and s > 1:
            # one sample index at a time, chained like the views: the backward pass holds the
            # activations of B decodes instead of S * B (the ELBO decodes S = M * K per example)
            params_views, per_sample, last = unstack_tree(params_g), [], None
            for j in range(s):
                outs = self._chain(fn, params_views, [u[:, j]], last)
                per_sample.append(stack_trees(outs))  # (Mg, B, ...)
                last = outs[-1]
            return jax.tree_util.tree_map(lambda *a: jnp.stack(a, axis=1), *per_sample)
        # Fold samples into the batch batch-major: a batch axis sharded over a mesh then stays a
        # contiguous tiling of the folded axis (sample-major folding makes XLA replicate the decodes).
        flat = u.transpose(0, 2, 1, 3).reshape(mg, b * s, d)
        out = self.map(fn, params_g, flat)
        return jax.tree_util.tree_map(lambda a: a.reshape(mg, b, s, *a.shape[2:]).swapaxes(1, 2), out)
