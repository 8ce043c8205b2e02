"""The step-parts account (`--parts`): the train step's components compiled and timed alone.

Parts, each fwd+bwd at the step's batch B, precision and remat policy, on the default device:
  encoder_w[g] / encoder_z[g]  one encoder branch of view group g on B rows
  decoder[g]                   one decoder of group g on B latent codes
  score_nets                   the whole diffusion loss (shared z net on M*B, one w net per view)
  noise                        `training.loss.draw_step_noise` for the batch (forward only)
  optimizer                    the optax update + apply_updates on every parameter
How often one step runs each network part comes from tracing the step's loss
(`step_calls.network_calls`); the others run once per step (score_nets when the loss has the
diffusion term). `parts_account` sets the sum of parts against the measured step.
"""
from __future__ import annotations

import collections
import time
from typing import Optional

import numpy as np

from idmvae_jax.benchmarking.step_calls import network_calls
from idmvae_jax.benchmarking.timing import summary, time_calls
from idmvae_jax.training.xla_cost import cost_flops

NETWORK_PARTS = ("encoder_w", "encoder_z", "decoder")


def part_plan(cfg, batch: dict) -> list:
    """The components of one train step of `cfg` on `batch` and how often each runs: a list of
    dicts {name, what, count, group} in the order `measure_parts` times them."""
    from idmvae_jax.models.multimodal import make_model

    calls = network_calls(cfg, batch)
    plan = []
    for g in range(len(make_model(cfg.model).groups)):
        for what in NETWORK_PARTS:
            plan.append(dict(name=f"{what}[{g}]", group=g, what=what, count=calls.get((what, g), 0)))
    if cfg.loss.diffusion_weight:  # loss_fn computes a term only when its weight is non-zero
        plan.append(dict(name="score_nets", group=None, what="score_nets", count=1))
    plan.append(dict(name="noise", group=None, what="noise", count=1))
    plan.append(dict(name="optimizer", group=None, what="optimizer", count=1))
    return plan


def _part_fn(what: str, cfg, group: Optional[int], params, batch_size: int, optimizer, rng):
    """(jit-able fn, its args, donate_argnums) of one part; args live on the default device."""
    import jax
    import jax.numpy as jnp

    from idmvae_jax import objective
    from idmvae_jax.generation import score_fns
    from idmvae_jax.models.encoders import encoder_input_shape
    from idmvae_jax.models.multimodal import group_name, make_model
    from idmvae_jax.training.loss import draw_step_noise

    mc = cfg.model
    model = make_model(mc)
    b = batch_size

    def fwd_bwd(apply, p, x):
        """Gradient w.r.t. params and input of sum(outputs): the backward of one use in the step
        (with model.remat the networks rematerialise their own blocks, as in the step)."""
        def scalar(p_, x_):
            out = apply(p_, x_)
            return sum(jnp.sum(o.astype(jnp.float32)) for o in jax.tree_util.tree_leaves(out))
        return jax.grad(scalar, argnums=(0, 1))(p, x)

    if what in NETWORK_PARTS:
        spec, idx = model.groups[group]
        name = group_name(idx)
        if what == "decoder":
            p = jax.tree_util.tree_map(lambda a: a[0], params["decoders"][name])
            apply = model.decoders[group].apply
            x = jnp.asarray(rng.standard_normal((b, mc.latent_dim), dtype=np.float32))
        else:
            p = jax.tree_util.tree_map(lambda a: a[0], params["encoders"][name])
            enc = model.encoders[group]
            apply = enc.apply_w if what == "encoder_w" else enc.apply_z
            x = jnp.asarray(rng.uniform(size=(b, *encoder_input_shape(spec))).astype(np.float32))
        return (lambda p_, x_: fwd_bwd(apply, p_, x_)), (p, x), ()

    m = mc.num_views
    if what == "score_nets":
        schedule = objective.diffusion.schedule_from_config(cfg.diffusion)
        t_max = cfg.diffusion.num_timesteps
        args = (
            {"score_z": params["score_z"], "score_w": params["score_w"]},
            jnp.asarray(rng.standard_normal((m, b, mc.z_dim), dtype=np.float32)),
            jnp.asarray(rng.standard_normal((m, b, mc.w_dim), dtype=np.float32)),
            jnp.asarray(rng.integers(0, t_max, (m, b)), dtype=jnp.int32),
            jnp.asarray(rng.standard_normal((m, b, mc.z_dim), dtype=np.float32)),
            jnp.asarray(rng.integers(0, t_max, (m, b)), dtype=jnp.int32),
            jnp.asarray(rng.standard_normal((m, b, mc.w_dim), dtype=np.float32)),
        )

        def score(p, mu_z, mu_w, t_z, n_z, t_w, n_w):
            loss = lambda p_, z_, w_: objective.diffusion_prior_loss(  # noqa: E731
                *score_fns(model, p_), z_, w_, t_z, n_z, t_w, n_w, schedule)
            return jax.grad(loss, argnums=(0, 1, 2))(p, mu_z, mu_w)

        return score, args, ()
    if what == "noise":
        return (lambda key: draw_step_noise(key, jnp.arange(b), cfg)), (jax.random.key(3),), ()
    if what == "optimizer":
        import optax

        opt_state = optimizer.init(params)
        grads = jax.tree_util.tree_map(lambda a: jnp.full_like(a, 1e-3), params)

        def update(p, s, g):
            updates, s = optimizer.update(g, s, p)
            return optax.apply_updates(p, updates), s

        return update, (jax.tree_util.tree_map(jnp.copy, params), opt_state, grads), (0, 1)
    raise ValueError(f"unknown part {what!r}")


def measure_parts(cfg, params, batch: dict, optimizer, steps: int, warmup: int, seed: int = 0) -> list:
    """Times every part of `part_plan(cfg, batch)` in isolation on the default device; returns per
    part name, count, time_s {median, min, max} per call, total_s, compile_s, flops per call and
    achieved FLOP/s."""
    import jax

    rng = np.random.default_rng(seed)
    batch_size = int(batch["x"][0].shape[0])
    out = []
    for entry in part_plan(cfg, batch):
        fn, args, donate = _part_fn(entry["what"], cfg, entry["group"], params, batch_size, optimizer, rng)
        t0 = time.perf_counter()
        compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
        compile_s = time.perf_counter() - t0
        state = {"args": args}

        def call():
            result = compiled(*state["args"])
            if donate:  # optimizer: feed the new params/state back, as the step does
                state["args"] = (*result, *state["args"][len(result):])
            return result

        times = time_calls(call, steps, warmup)
        flops = cost_flops(compiled)
        med = float(np.median(times))
        out.append({
            **{k: entry[k] for k in ("name", "count")},
            "time_s": summary(times),
            "total_s": med * entry["count"],
            "compile_s": compile_s,
            "flops": flops,
            "flops_per_sec": None if flops is None else flops / med,
        })
        del compiled, state, args
    return out


def parts_account(part_list: list, step_s: float) -> dict:
    """The JSON `parts`: the measured parts, summed by type, against the step's median `step_s`."""
    total = sum(p["total_s"] for p in part_list)
    by_type = collections.OrderedDict()
    for p in part_list:
        kind = p["name"].split("[")[0]
        acc = by_type.setdefault(kind, {"count": 0, "total_s": 0.0, "flops": 0.0})
        acc["count"] += p["count"]
        acc["total_s"] += p["total_s"]
        acc["flops"] += (p["flops"] or 0.0) * p["count"]
    for acc in by_type.values():
        acc["flops_per_sec"] = acc["flops"] / acc["total_s"] if acc["total_s"] else None
        acc["share_of_step"] = acc["total_s"] / step_s
    return {
        "note": ("each part compiled and timed alone on one device at the step's batch, precision "
                 "and remat; total_s = median x count; fwd+bwd except noise"),
        "items": part_list,
        "by_type": by_type,
        "sum_s": total,
        "step_over_sum": step_s / total if total else None,
        "flops_sum": sum(a["flops"] for a in by_type.values()),
        "unaccounted_s": step_s - total,
    }
