"""How often one train step runs each network, read from the step's loss itself.

The `--parts` account times one encoder branch or one decoder at the step's batch B and multiplies
by how often the step runs it. Those counts are not restated here: `network_calls` traces
`training.loss.loss_fn` once, abstractly (`jax.eval_shape`: no compilation, no arithmetic), on the
config's model whose encoders' `apply` / `apply_w` / `apply_z` and decoders' `apply` are wrapped
to note every call and the leading size of its input (the rows it runs on). A call on n rows counts
n / B calls at batch B. The encoders' `apply` runs both branches, so it counts once for `encoder_w`
and once for `encoder_z`; `apply_w` / `apply_z` count for their branch.

The trace runs the model config with `vmap_views=False` and `remat=False`: each view of a group is
then one Python call (a vmapped group is traced once for all its views), and the samples of a
decode are folded into its rows (B x S) instead of one call per sample. Both settings change how
the views run, not what they compute, so the counts hold for every setting.

Limits: a network called inside `lax.scan` / `while_loop` would be traced once whatever its trip
count; the loss calls no encoder or decoder in a loop. The score networks are not counted this way
(the cycle term's diffusion sampler calls them in a loop): the `score_nets` part is the whole
diffusion loss, once per step when the loss has that term.

The wrapped functions replace the (cached, shared) model's `encoders` / `decoders` only during the
trace and are put back afterwards, also on an error.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
from fractions import Fraction

ENCODER_PARTS = {"apply": ("encoder_w", "encoder_z"), "apply_w": ("encoder_w",), "apply_z": ("encoder_z",)}


@contextlib.contextmanager
def _counting(model, rows: collections.Counter):
    """model.encoders / model.decoders wrapped to add each call's input rows to rows[(part, group)]."""
    def counted(fn, parts, group):
        def wrapped(params, x, *args, **kwargs):
            for part in parts:
                rows[(part, group)] += int(x.shape[0])
            return fn(params, x, *args, **kwargs)
        return wrapped

    encoders, decoders = model.encoders, model.decoders
    model.encoders = tuple(
        enc._replace(**{name: counted(getattr(enc, name), parts, g) for name, parts in ENCODER_PARTS.items()})
        for g, enc in enumerate(encoders))
    model.decoders = tuple(dec._replace(apply=counted(dec.apply, ("decoder",), g)) for g, dec in enumerate(decoders))
    try:
        yield
    finally:
        model.encoders, model.decoders = encoders, decoders


def network_calls(cfg, batch: dict) -> dict:
    """{(part, group): calls at batch B} of one step of `cfg` (an IDMVAEConfig) on `batch`
    ({"x": [x_0, ...]} with B rows; arrays or jax.ShapeDtypeStructs), part in encoder_w, encoder_z,
    decoder. A count is an int (a Fraction if a call's rows are not a multiple of B)."""
    import jax

    from idmvae_jax.models.multimodal import make_model
    from idmvae_jax.training.loss import loss_fn

    trace_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vmap_views=False, remat=False))
    model = make_model(trace_cfg.model)
    key = jax.random.key(0)
    params = jax.eval_shape(model.init, key)
    rows = collections.Counter()
    with _counting(model, rows):
        jax.eval_shape(lambda p, b, k: loss_fn(p, b, k, trace_cfg), params, batch, key)
    b = int(batch["x"][0].shape[0])
    out = {}
    for part_group, n in rows.items():
        count = Fraction(n, b)
        out[part_group] = int(count) if count.denominator == 1 else count
    return out
