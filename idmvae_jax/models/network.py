"""The one shape every network in `idmvae_jax.models` takes: a pair of pure functions.

`init(key, *example_inputs) -> params` and `apply(params, *inputs) -> outputs`. Factories
(`make_encoder`, `make_decoder`, `make_critic`, `make_score_net`) capture the static
hyper-parameters and return a `Network`; arrays only ever enter as arguments, so the functions can
be jit-ed, vmapped over stacked parameters, differentiated and forked freely.
"""
from typing import Any, Callable, NamedTuple


class Network(NamedTuple):
    """A pure network: `init(key, *example) -> params`, `apply(params, *inputs) -> outputs`."""

    init: Callable[..., Any]
    apply: Callable[..., Any]
