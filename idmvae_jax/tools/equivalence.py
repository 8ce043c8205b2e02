r"""Our side of a comparison with the authors' PyTorch code: the same weights, batch and draws.

    python -m idmvae_jax.tools.equivalence inputs --config=configs/polymnist_quadrant.py:paper,diffusion \
        --batch_size=32 --out=DIR
    python -m idmvae_jax.tools.equivalence compare --config=... --checkpoint=model_2.rar \
        --inputs=DIR --theirs=theirs.npz --out=result.json

`inputs` writes DIR/batch.npz (uint8 images x_0..x_{M-1}, (B, H, W, 3)) and DIR/draws.npz, every
random draw of one training step named after the call in their code that consumes it (the list
is in docs/equivalence.md): `enc_eps_<m>` (K, B, W+Z) for view m's posterior sample,
`aux_eps_<e>_<d>` (K, B, 1, W) for the auxiliary prior of target view d decoding from source e,
`ga_rp_w_<m>`, `ga_rp_z_<m>`, `ga_rs_w_<m>`, `ga_rs_z_<m>` (1, B, .) for the cycle term's posterior
samples (roles roll_private / roll_shared), `diff_tz_<m>`, `diff_nz_<m>`, `diff_tw_<m>`,
`diff_nw_<m>` for the diffusion losses' steps and noise, and `dec_u` (K, B, W+Z) for a decoder
check. `compare` converts their checkpoint (`tools.official_checkpoint`), computes the encoders'
outputs, the decoders' means at `dec_u`, every loss term, the total and the gradients with these
draws in place of ours (`loss_fn(..., noise=...)`), and compares them with their numbers
(theirs.npz: `enc_mean_<m>`, `enc_scale_<m>`, `dec_mean_<m>` NHWC, the terms, `grad/<name>`).
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Mapping

import numpy as np

# their term -> ours (`loss_fn`'s aux); with K = 1 their log-mean-exp over samples is the identity
TERMS = {"total": "total", "elbo": "elbo", "llik_recon": "recon", "kl_div": "kl", "cross_mi": "cross_mi",
         "gen_aug": "genaug", "diffusion": "diffusion"}


def make_inputs(cfg, batch_size: int, seed: int = 0) -> tuple[dict, dict]:
    """(batch, draws) as numpy arrays in their draw names (module docstring)."""
    mc, lc = cfg.model, cfg.loss
    m_views, k, w, z = mc.num_views, lc.num_samples, mc.w_dim, mc.z_dim
    rng = np.random.RandomState(seed)
    batch = {f"x_{m}": rng.randint(0, 256, (batch_size, *mc.views[m].shape)).astype(np.uint8)
             for m in range(m_views)}

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    draws = {f"enc_eps_{m}": normal(k, batch_size, w + z) for m in range(m_views)}
    draws.update({f"aux_eps_{e}_{d}": normal(k, batch_size, 1, w)
                  for e in range(m_views) for d in range(m_views) if e != d})
    if lc.genaug_weight:
        for m in range(m_views):
            draws.update({f"ga_rp_w_{m}": normal(1, batch_size, w), f"ga_rp_z_{m}": normal(1, batch_size, z),
                          f"ga_rs_w_{m}": normal(1, batch_size, w), f"ga_rs_z_{m}": normal(1, batch_size, z)})
    if lc.diffusion_weight:
        t = cfg.diffusion.num_timesteps
        for m in range(m_views):
            draws.update({f"diff_tz_{m}": rng.randint(0, t, batch_size).astype(np.int64),
                          f"diff_nz_{m}": normal(batch_size, z),
                          f"diff_tw_{m}": rng.randint(0, t, batch_size).astype(np.int64),
                          f"diff_nw_{m}": normal(batch_size, w)})
    draws["dec_u"] = normal(k, batch_size, w + z)
    return batch, draws


def our_noise(draws: Mapping[str, np.ndarray], cfg) -> dict:
    """Their named draws -> `loss_fn`'s noise dict (`training.loss.noise_draws` layouts)."""
    mc, lc = cfg.model, cfg.loss
    if lc.genaug_weight and lc.genaug_sampling != "posterior":
        raise ValueError(f"loss.genaug_sampling={lc.genaug_sampling!r}: the comparison feeds the draws of the "
                         f"'posterior' scheme only (the paper's)")
    m_views, w = mc.num_views, mc.w_dim
    enc = np.stack([draws[f"enc_eps_{m}"] for m in range(m_views)])  # (M, K, B, W+Z)
    k, b = enc.shape[1:3]
    aux = np.zeros((m_views, m_views, k, b, w), np.float32)  # (target, source, K, B, W)
    for e in range(m_views):
        for d in range(m_views):
            if e != d:
                aux[d, e] = draws[f"aux_eps_{e}_{d}"][:, :, 0]
    noise = {"elbo_w": enc[..., :w], "elbo_z": enc[..., w:], "aux_w": aux}
    if lc.genaug_weight:
        def rows(name):
            return np.stack([draws[f"{name}_{m}"][0] for m in range(m_views)])

        noise.update(genaug_a_w=rows("ga_rp_w"), genaug_a_z=rows("ga_rp_z"), genaug_b_w=rows("ga_rs_w"),
                     genaug_b_z=rows("ga_rs_z"))
        noise.update(swap_w=np.zeros_like(noise["genaug_a_w"]), swap_z=np.zeros_like(noise["genaug_a_z"]))
    if lc.diffusion_weight:
        for ours, theirs in (("diff_t_z", "diff_tz"), ("diff_t_w", "diff_tw")):
            noise[ours] = np.stack([draws[f"{theirs}_{m}"] for m in range(m_views)]).astype(np.int32)
        for ours, theirs in (("diff_noise_z", "diff_nz"), ("diff_noise_w", "diff_nw")):
            noise[ours] = np.stack([draws[f"{theirs}_{m}"] for m in range(m_views)])
    return noise


def our_numbers(params, cfg, batch: Mapping[str, np.ndarray], draws: Mapping[str, np.ndarray]) -> dict:
    """Encoder outputs, decoder means at dec_u, terms and gradients (in their names) of our model."""
    import jax
    import jax.numpy as jnp

    from idmvae_jax.data.preprocess import network_inputs
    from idmvae_jax.models.multimodal import make_model
    from idmvae_jax.tools.official_checkpoint import to_state_dict
    from idmvae_jax.training.loss import loss_fn

    mc = cfg.model
    model = make_model(mc)
    xs = [np.asarray(batch[f"x_{m}"]) for m in range(mc.num_views)]
    noise = our_noise(draws, cfg)
    out = {}
    post = jax.jit(lambda p, x: model.encode(p, network_inputs(mc.views, x)))(params, xs)
    for m in range(mc.num_views):
        out[f"enc_mean_{m}"] = np.concatenate([post.mu_w[m], post.mu_z[m]], -1)
        out[f"enc_scale_{m}"] = np.concatenate([post.scale_w[m], post.scale_z[m]], -1)
    u = jnp.broadcast_to(jnp.asarray(draws["dec_u"]), (mc.num_views, *draws["dec_u"].shape))
    means = jax.jit(model.decode_mean)(params, u)
    out.update({f"dec_mean_{m}": np.asarray(means[m]) for m in range(mc.num_views)})

    def value(p):
        return loss_fn(p, {"x": xs}, jax.random.key(0), cfg, noise=noise)

    (_, aux), grads = jax.jit(jax.value_and_grad(value, has_aux=True))(params)
    out.update({theirs: float(aux[ours]) for theirs, ours in TERMS.items()})
    grads = jax.tree.map(np.asarray, grads)
    # their names of our gradients; the fixed priors `to_state_dict` writes are constants, not gradients
    out.update({f"grad/{k}": v for k, v in to_state_dict(grads, cfg).items()
                if not k.startswith(("pz_params", "pws_params.")) and not re.fullmatch(r"pws_params_aux\.\d+\.0", k)})
    return out


def compare(ours: Mapping, theirs: Mapping, cfg) -> dict:
    """Differences of `ours` from `theirs` (both in their names, e.g. `our_numbers` and their
    file): absolute and relative per term, largest per output, gradient cosine and relative L2
    per tensor and over all tensors."""
    result = {"terms": {}, "outputs": {}, "gradients": {}}
    for name in TERMS:
        a, b = float(np.asarray(ours[name])), float(np.asarray(theirs[name]))
        result["terms"][name] = {"ours": a, "theirs": b, "abs_diff": abs(a - b),
                                 "rel_diff": abs(a - b) / max(abs(b), 1e-30)}
    for kind in ("enc_mean", "enc_scale", "dec_mean"):
        diffs = [np.abs(np.asarray(ours[f"{kind}_{m}"], np.float64) - np.asarray(theirs[f"{kind}_{m}"], np.float64))
                 for m in range(cfg.model.num_views)]
        scale = max(float(np.abs(np.asarray(theirs[f"{kind}_{m}"])).max()) for m in range(cfg.model.num_views))
        result["outputs"][kind] = {"max_abs_diff": float(max(d.max() for d in diffs)),
                                   "max_rel_to_max": float(max(d.max() for d in diffs)) / scale}
    names = sorted(k[5:] for k in theirs if k.startswith("grad/"))
    missing = [n for n in names if f"grad/{n}" not in ours]
    pairs = {n: (np.asarray(ours[f"grad/{n}"], np.float64).ravel(), np.asarray(theirs[f"grad/{n}"], np.float64).ravel())
             for n in names if n not in missing}
    worst_cos, worst_rel = (1.0, ""), (0.0, "")
    for name, (a, b) in pairs.items():
        if b @ b > 0:
            worst_cos = min(worst_cos, (float(a @ b / np.sqrt((a @ a) * (b @ b))), name))
            worst_rel = max(worst_rel, (float(np.linalg.norm(a - b) / np.linalg.norm(b)), name))
    flat_a = np.concatenate([a for a, _ in pairs.values()])
    flat_b = np.concatenate([b for _, b in pairs.values()])
    dot, na, nb = flat_a @ flat_b, flat_a @ flat_a, flat_b @ flat_b
    result["gradients"] = {
        "tensors": len(names) - len(missing), "missing_in_ours": missing,
        "cosine_all": float(dot / np.sqrt(na * nb)),
        "rel_l2_all": float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_b)),
        "max_abs_diff": float(np.abs(flat_a - flat_b).max()), "max_abs_theirs": float(np.abs(flat_b).max()),
        "norm_ours": float(np.sqrt(na)), "norm_theirs": float(np.sqrt(nb)),
        "worst_tensor_cosine": {"cosine": worst_cos[0], "tensor": worst_cos[1]},
        "worst_tensor_rel_l2": {"rel_l2": worst_rel[0], "tensor": worst_rel[1]},
    }
    return result


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m idmvae_jax.tools.equivalence", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["inputs", "compare"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint")
    parser.add_argument("--inputs")
    parser.add_argument("--theirs")
    parser.add_argument("--reference", help="their numbers in float64: both float32 results are compared with it")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from idmvae_jax import build
    from idmvae_jax.config_defaults import load_config
    from idmvae_jax.tools import official_checkpoint as oc

    config = load_config(args.config)
    cfg = build.build_idmvae_config(config, oc.view_infos(config))
    if args.command == "inputs":
        os.makedirs(args.out, exist_ok=True)
        batch, draws = make_inputs(cfg, args.batch_size, args.seed)
        np.savez(os.path.join(args.out, "batch.npz"), **batch)
        np.savez(os.path.join(args.out, "draws.npz"), **draws)
        print(f"wrote {args.out}/batch.npz and draws.npz (batch {args.batch_size}, {len(draws)} draws)")
        return 0
    if not (args.checkpoint and args.inputs and args.theirs):
        parser.error("compare needs --checkpoint, --inputs and --theirs")
    from idmvae_jax.evaluation.torch_pickle import load_torch_state_dict

    batch = dict(np.load(f"{args.inputs}/batch.npz"))
    # our numbers are kept beside the result, for the same config, checkpoint and inputs only
    cached, source = args.out + ".ours.npz", f"{args.config}|{os.path.abspath(args.checkpoint)}|" \
        f"{os.path.abspath(args.inputs)}"
    if os.path.exists(cached) and str(np.load(cached)["source"]) == source:
        ours = dict(np.load(cached))
    else:
        params = oc.convert_state_dict(load_torch_state_dict(args.checkpoint), cfg).params
        ours = our_numbers(params, cfg, batch, dict(np.load(f"{args.inputs}/draws.npz")))
        np.savez(cached, source=np.asarray(source), **ours)
    theirs = dict(np.load(args.theirs))
    result = compare(ours, theirs, cfg)
    if args.reference:
        reference = dict(np.load(args.reference))
        result["float64_reference"] = {"ours": compare(ours, reference, cfg),
                                       "theirs": compare(theirs, reference, cfg)}
    result["setup"] = {"config": args.config, "checkpoint": args.checkpoint, "batch_size": int(batch["x_0"].shape[0])}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    for name, t in result["terms"].items():
        print(f"{name:>11}: ours {t['ours']:.9g}  theirs {t['theirs']:.9g}  rel {t['rel_diff']:.2e}")
    g = result["gradients"]
    print(f"gradients: cosine {g['cosine_all']:.9f}, relative L2 {g['rel_l2_all']:.2e} over {g['tensors']} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
