"""Tests of the IDMVAE objective (`idmvae_jax.objective` composed by `training.loss.loss_fn`, SPEC §2) against independent numpy/scipy
computations written from the SPEC.

The references below use explicit loops over views, sources/targets, samples and examples; the
cosine critic, NT-Xent denominators (Σ_q S_pq − e^{1/τ}), the roll pairing (example b gets example
b−1's code), the sigmoid schedule ᾱ_t and the min-SNR weights are all recomputed here. Networks are
the only thing borrowed from the library: the single-view encoder/decoder/score-net `apply` of one
view's parameter slice (what is tested is the wiring, pairing, weighting and reductions, not the
convolutions).
"""
import dataclasses
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import special, stats

from idmvae_jax import objective
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.generation import score_fns
from idmvae_jax.training import loss as training_loss
from idmvae_jax.config import DiffusionConfig, IDMVAEConfig, LossConfig
from idmvae_jax.core.similarity import cosine_scores
from idmvae_jax.models.multimodal import group_name, make_model
from idmvae_jax.models.specs import ModelConfig, ViewSpec

LN2 = math.log(2.0)
B = 5  # odd on purpose: roll by +1 and by -1 differ, and no pairing is its own inverse


def _np(x):
    return np.asarray(x, np.float64)


# ====================================================================================== references
def np_cos(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def np_contrast(z_i, z_j, tau=1.0, head=None):
    """SPEC 2.2 literally: a = concat(z_i, z_j); S_pq = exp(cos(a_p, a_q)/τ);
    Contrast = mean_p log( exp(cos(z_i[b], z_j[b])/τ) / (Σ_q S_pq − e^{1/τ}) ), b = p mod B."""
    z_i, z_j = _np(z_i), _np(z_j)
    if head is not None:  # learnable critic: cosine of the projected codes
        z_i, z_j = head(z_i), head(z_j)
    n = z_i.shape[0]
    a = np.concatenate([z_i, z_j], axis=0)
    total = 0.0
    for p in range(2 * n):
        b = p % n
        positive = math.exp(np_cos(z_i[b], z_j[b]) / tau)
        denominator = sum(math.exp(np_cos(a[p], a[q]) / tau) for q in range(2 * n)) - math.exp(1.0 / tau)
        total += math.log(positive / denominator)
    return total / (2 * n)


def np_cross_mi(mu_z, tau=1.0, head=None):
    """(1/(M−1)) Σ_i Σ_{j≠i} −Contrast(z_i, z_j) over ordered pairs."""
    m = len(mu_z)
    return sum(-np_contrast(mu_z[i], mu_z[j], tau, head) for i in range(m) for j in range(m) if i != j) / (m - 1)


def np_projection_head(p):
    """The 2-layer MLP head g(x) = W2 relu(W1 x + b1) + b2 in numpy."""
    p = jax.tree.map(_np, p)
    return lambda x: np.maximum(x @ p["hidden"]["kernel"] + p["hidden"]["bias"], 0.0) @ p["out"]["kernel"] + p["out"]["bias"]


def np_scale(raw, family, eps):
    raw = _np(raw)
    if family == "normal":
        return np.log1p(np.exp(raw)) + eps
    e = np.exp(raw - raw.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True) * raw.shape[-1] + eps


def np_logpdf(family, x, loc, scale):
    law = stats.norm if family == "normal" else stats.laplace
    return float(np.sum(law.logpdf(_np(x), _np(loc), _np(scale))))


def np_alphas_cumprod(T=1000, s=-3.0, e=3.0, tau=1.0):
    """SPEC 2.4's sigmoid schedule, step by step in float64."""
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    f = lambda u: (sig(e / tau) - sig((u * (e - s) + s) / tau)) / (sig(e / tau) - sig(s / tau))  # noqa: E731
    abar_k = [f(k / T) / f(0.0) for k in range(T + 1)]
    out, prod = [], 1.0
    for k in range(1, T + 1):
        beta = min(max(1.0 - abar_k[k] / abar_k[k - 1], 0.0), 0.999)
        prod *= 1.0 - beta
        out.append(prod)
    return np.array(out)


ABAR = np_alphas_cumprod()


# The model-level functions are compiled with XLA's cheap backend settings: the tests check the
# semantics, and this halves the compile time of the big programs (loss_fn and its gradient).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def fast_jit(fn):
    """jax.jit(fn), compiled with FAST_COMPILE once per argument signature."""
    jfn, cache = jax.jit(fn), {}

    def call(*args):
        leaves, tree = jax.tree.flatten(args)
        sig = (tree, tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves))
        if sig not in cache:
            cache[sig] = jfn.lower(*args).compile(compiler_options=FAST_COMPILE)
        return cache[sig](*args)

    return call


@functools.lru_cache(maxsize=None)
def jitted(fn):
    """The library's single-network apply, compiled (eager flax applies recompile op by op)."""
    return fast_jit(fn)


def take(tree, i):
    """Slice i of a stacked parameter tree (in numpy: no device ops)."""
    return jax.tree.map(lambda p: np.asarray(p)[i], tree)


def view_params(model, params, kind, i):
    """The parameter slice of view i in params[kind] ('encoders', 'decoders', ...)."""
    for spec, idx in model.groups:
        if i in idx:
            return take(params[kind][group_name(idx)], idx.index(i))
    raise KeyError(i)


def group_of(model, i):
    for g, (spec, idx) in enumerate(model.groups):
        if i in idx:
            return g
    raise KeyError(i)


def np_preprocess(cfg, xs):
    out = []
    for spec, x in zip(cfg.views, xs):
        x = np.asarray(x)
        if spec.kind == "caption":
            out.append(np.eye(spec.vocab_size)[x])
        elif np.issubdtype(x.dtype, np.integer):
            out.append(x / 255.0)
        else:
            out.append(_np(x))
    return out


def np_posterior(model, params, xs):
    """Per view: the encoder apply of that view's slice, scales by the SPEC convention, (M, B, .)."""
    cfg = model.cfg
    mu_w, s_w, mu_z, s_z = [], [], [], []
    for i in range(cfg.num_views):
        enc = model.encoders[group_of(model, i)]
        a, ra, c, rc = jitted(enc.apply)(view_params(model, params, "encoders", i), np.asarray(xs[i], np.float32))
        mu_w.append(_np(a)), s_w.append(np_scale(ra, cfg.posterior, cfg.posterior_eps))
        mu_z.append(_np(c)), s_z.append(np_scale(rc, cfg.posterior, cfg.posterior_eps))
    return tuple(np.stack(v) for v in (mu_w, s_w, mu_z, s_z))


def np_decode(model, params, d, u):
    """Decoder of view d on codes u (N, W+Z) -> numpy dict."""
    dec = model.decoders[group_of(model, d)]
    out = jitted(dec.apply)(view_params(model, params, "decoders", d), np.asarray(u, np.float32))
    return {k: _np(v) for k, v in out.items()}


def np_mean(spec, out):
    if spec.likelihood == "categorical":
        return special.softmax(out["logits"], axis=-1)
    return out["loc"]


def np_loglik(spec, out, x):
    """log p(x | out) summed over data dims: out arrays (S * B, ...), x (B, ...) -> (S, B)."""
    b = x.shape[0]
    out = {k: v.reshape(-1, *x.shape) for k, v in out.items()}
    if spec.likelihood == "categorical":
        lp = x[None] * special.log_softmax(out["logits"], axis=-1)
    else:
        scale = out["scale"] if "scale" in out else spec.likelihood_scale
        law = stats.laplace if spec.likelihood == "laplace" else stats.norm
        lp = law.logpdf(x[None], out["loc"], scale)
    return lp.reshape(lp.shape[0], b, -1).sum(-1)


def np_elbo(model, params, xs, eps_w, eps_z, eps_aux, beta):
    """SPEC 2.1 with explicit loops. eps_aux[d, r] is the base noise of target d's private code when
    reconstructing from source r (d != r). Returns (pieces (M, K, B) dict, L_elbo)."""
    cfg = model.cfg
    fam, eps = cfg.posterior, cfg.posterior_eps
    m, k_num, b_num = eps_w.shape[:3]
    mu_w, s_w, mu_z, s_z = np_posterior(model, params, xs)
    aux_scale = np_scale(params["aux_prior_raw"], fam, eps)
    prior = (LN2 if fam == "normal" else 1.0) + eps
    w = mu_w[:, None] + s_w[:, None] * _np(eps_w)  # (M, K, B, W)
    z = mu_z[:, None] + s_z[:, None] * _np(eps_z)
    loglik = np.zeros((m, k_num, b_num))
    for d, spec in enumerate(cfg.views):
        codes = np.zeros((m, k_num, b_num, cfg.latent_dim))
        for r in range(m):
            for k in range(k_num):
                for b in range(b_num):
                    w_d = w[r, k, b] if d == r else aux_scale[d] * _np(eps_aux[d, r, k, b])
                    codes[r, k, b] = np.concatenate([w_d, z[r, k, b]])
        out = np_decode(model, params, d, codes.reshape(-1, cfg.latent_dim))
        loglik += spec.llik_scaling * np_loglik(spec, out, xs[d]).reshape(m, k_num, b_num)
    pieces = {n: np.zeros((m, k_num, b_num)) for n in ("log_prior_z", "log_prior_w", "log_q_z", "log_q_w")}
    for r in range(m):
        for k in range(k_num):
            for b in range(b_num):
                pieces["log_prior_z"][r, k, b] = np_logpdf(fam, z[r, k, b], 0.0, prior)
                pieces["log_prior_w"][r, k, b] = np_logpdf(fam, w[r, k, b], 0.0, prior)
                experts = [np_logpdf(fam, z[r, k, b], mu_z[e, b], s_z[e, b]) for e in range(m)]
                pieces["log_q_z"][r, k, b] = special.logsumexp(experts) - math.log(m)
                pieces["log_q_w"][r, k, b] = np_logpdf(fam, w[r, k, b], mu_w[r, b], s_w[r, b])
    pieces["log_likelihood"] = loglik
    log_w = loglik + beta * (pieces["log_prior_z"] + pieces["log_prior_w"] - pieces["log_q_z"] - pieces["log_q_w"])
    per_rb = [special.logsumexp(log_w[r, :, b]) - math.log(k_num) for r in range(m) for b in range(b_num)]
    return pieces, -float(np.mean(per_rb))


def np_genaug(model, params, mu_w, mu_z, w_swap, z_swap, w_b, z_a, tau=1.0, loss_type="contrastive", heads=None):
    """SPEC 2.3 view by view: decode [w_swap, z~a] and [w~b, z_swap] with the view's decoder mean,
    re-encode with the view's encoder, compare means. heads = (head_z, [head_w per view]) overrides
    the model's critic (the cosine of the projected codes)."""
    cfg = model.cfg
    heads_z = heads_w = None
    if heads is not None:
        heads_z, heads_w = heads
    elif "critic" in params:
        heads_z = np_projection_head(params["critic"]["z"])
        heads_w = [np_projection_head(take(params["critic"]["w"], i)) for i in range(cfg.num_views)]
    loss_z, loss_w = [], []
    for i, spec in enumerate(cfg.views):
        enc = model.encoders[group_of(model, i)]
        p_enc = view_params(model, params, "encoders", i)
        x_a = np_mean(spec, np_decode(model, params, i, np.concatenate([_np(w_swap[i]), _np(z_a[i])], -1)))
        x_b = np_mean(spec, np_decode(model, params, i, np.concatenate([_np(w_b[i]), _np(z_swap[i])], -1)))
        mu_z_plus = _np(jitted(enc.apply)(p_enc, np.asarray(x_a, np.float32))[2])
        mu_w_plus = _np(jitted(enc.apply)(p_enc, np.asarray(x_b, np.float32))[0])
        if loss_type == "l2":
            loss_z.append(np.mean(np.sum((mu_z[i] - mu_z_plus) ** 2, -1)))
            loss_w.append(np.mean(np.sum((mu_w[i] - mu_w_plus) ** 2, -1)))
        else:
            loss_z.append(-np_contrast(mu_z[i], mu_z_plus, tau, heads_z))
            loss_w.append(-np_contrast(mu_w[i], mu_w_plus, tau, heads_w and heads_w[i]))
    loss_z, loss_w = np.array(loss_z), np.array(loss_w)
    return float(np.sum(0.5 * (loss_z + loss_w))), loss_z, loss_w


def np_diffusion(model, params, mu_z, mu_w, t_z, n_z, t_w, n_w):
    """(1/M) Σ_m [D_z(μ_z_m) + D_w_m(μ_w_m)], D = mean_B clip(SNR_t, 1, 100) Σ_dims (f(x_t, t) − x0)²."""
    snr = ABAR / (1.0 - ABAR)

    def d_loss(apply, p, x0, t, noise):
        x0, t, noise = _np(x0), np.asarray(t), _np(noise)
        per_example = []
        xt = np.stack([math.sqrt(ABAR[t[b]]) * x0[b] + math.sqrt(1.0 - ABAR[t[b]]) * noise[b] for b in range(len(t))])
        f = _np(jitted(apply)(p, np.asarray(xt, np.float32), np.asarray(t, np.int32)))
        for b in range(len(t)):
            per_example.append(min(max(snr[t[b]], 1.0), 100.0) * np.sum((f[b] - x0[b]) ** 2))
        return np.mean(per_example)

    m = len(mu_z)
    total = 0.0
    for i in range(m):
        p_w = take(params["score_w"], i)
        total += d_loss(model.score_z.apply, params["score_z"], mu_z[i], t_z[i], n_z[i])
        total += d_loss(model.score_w.apply, p_w, mu_w[i], t_w[i], n_w[i])
    return total / m


# ====================================================================================== fixtures
IMG = ViewSpec("image", (8, 8, 3), channels=(4, 8))
VEC = ViewSpec("vector", (5,), likelihood_scale=None, hidden=(8,), llik_scaling=0.5)
CAP = ViewSpec("caption", (8,), likelihood="categorical", likelihood_scale=None, vocab_size=6,
               hidden=(4,), embed_dim=8, llik_scaling=2.0)
# Two identical image views around a vector view: a stacked group whose views are not contiguous.
NUMERIC_MODEL = ModelConfig(views=(IMG, VEC, IMG), z_dim=3, w_dim=4, critic="projection", critic_width=8,
                            critic_dim=5, diffusion_prior=True, score_width=16, score_time_dim=8)
FULL_LOSS = LossConfig(beta=2.5, num_samples=1, cross_mi_weight=0.7, genaug_weight=0.3,
                       diffusion_weight=0.2, temperature=0.5)
MMVAEPLUS_LOSS = LossConfig(beta=2.5, num_samples=1, cross_mi_weight=0.0, genaug_weight=0.0, diffusion_weight=0.0)


def make_batch(cfg, seed, b=B):
    rng = np.random.default_rng(seed)
    xs = []
    for spec in cfg.views:
        if spec.kind == "image":
            xs.append(rng.integers(0, 256, size=(b, *spec.shape), dtype=np.uint8))
        elif spec.kind == "caption":
            xs.append(rng.integers(0, spec.vocab_size, size=(b, *spec.shape)).astype(np.int32))
        else:
            xs.append(rng.normal(size=(b, *spec.shape)).astype(np.float32))
    return {"x": xs}


def random_params(model, seed):
    """A parameter tree of `model.init`'s structure filled with numpy draws (no init compiles):
    kernels ~ N(0, 1/fan_in), biases, norm offsets, auxiliary prior and likelihood raw scales all
    random and non-zero, so that every pairing and scale mapping shows in the numbers."""
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        keys = [getattr(p, "key", None) for p in path]
        stacked = keys[0] in ("encoders", "decoders", "score_w") or keys[:2] == ["critic", "w"]
        shape = leaf.shape
        if keys[-1] == "kernel":
            fan_in = int(np.prod(shape[1 if stacked else 0:-1]))
            value = rng.normal(size=shape) / math.sqrt(fan_in)
        elif keys[-1] == "scale":  # norm gain
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif keys[-1] in ("aux_prior_raw", "raw_likelihood_scale"):
            value = 0.5 * rng.normal(size=shape)
        else:
            value = 0.1 * rng.normal(size=shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.lru_cache(maxsize=None)
def numeric_setup():
    model = make_model(NUMERIC_MODEL)
    params = random_params(model, 0)
    batch = make_batch(NUMERIC_MODEL, 1)
    xs_np = np_preprocess(NUMERIC_MODEL, batch["x"])
    xs = network_inputs(NUMERIC_MODEL.views, batch["x"])
    post = fast_jit(model.encode)(params, xs)
    return model, params, batch, xs, xs_np, post


draw_noise = jax.jit(training_loss.draw_step_noise, static_argnums=(2,))


@functools.lru_cache(maxsize=None)
def jitted_loss(cfg):
    return fast_jit(functools.partial(training_loss.loss_fn, cfg=cfg))


# ====================================================================================== InfoNCE
def _orthonormal(b, d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q[:b].astype(np.float32)  # b mutually orthogonal unit rows


def golden_infonce_loss(b, tau):
    """Identical, mutually orthogonal embeddings: each anchor has cos 1 with its positive and cos 0
    with its 2B−2 negatives, so −Contrast = −log(e^{1/τ} / (e^{1/τ} + 2B − 2)) = log(1 + (2B−2) e^{−1/τ})."""
    return math.log(1.0 + (2 * b - 2) * math.exp(-1.0 / tau))


class InfoNCETest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.1, 0.5, 1.0, 2.0)
    def test_infonce_matches_spec_form(self, tau):
        rng = np.random.default_rng(int(tau * 10))
        za = rng.normal(size=(4, 8)).astype(np.float32)
        zb = (za + 0.7 * rng.normal(size=(4, 8))).astype(np.float32)
        got = self.variant(lambda a, b: objective.infonce(a, b, tau))(za, zb)
        np.testing.assert_allclose(got, np_contrast(za, zb, tau), rtol=2e-5, atol=2e-5)
        self.assertLessEqual(float(got), math.log(2 * 4 - 1) + 1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.5, 1.0, 2.0)
    def test_golden_identical_orthogonal(self, tau):
        b = 4
        z = _orthonormal(b, 8, int(10 * tau)) * 3.0  # the norm must not matter for the cosine critic
        got = self.variant(lambda a, c: -objective.infonce(a, c, tau))(z, z)
        np.testing.assert_allclose(got, golden_infonce_loss(b, tau), rtol=1e-5)
        # every ordered pair of M identical views contributes the same: L = M * golden
        m = 3
        got = self.variant(lambda x: objective.cross_view_infonce_loss(x, tau))(np.stack([z] * m))
        np.testing.assert_allclose(got, m * golden_infonce_loss(b, tau), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters((3, 1.0), (3, 0.5))
    def test_cross_view_infonce_matches_loop(self, m, tau):
        rng = np.random.default_rng(m)
        shared = rng.normal(size=(4, 8))
        mu_z = (shared[None] + 0.8 * rng.normal(size=(m, 4, 8))).astype(np.float32)
        got = self.variant(lambda x: objective.cross_view_infonce_loss(x, tau))(mu_z)
        np.testing.assert_allclose(got, np_cross_mi(mu_z, tau), rtol=2e-5, atol=2e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_learnable_critic_and_scores(self):
        """A critic with a learnable projection: cosine of the projected codes, same NT-Xent form."""
        rng = np.random.default_rng(7)
        head_p = {"hidden": {"kernel": rng.normal(size=(8, 8)), "bias": rng.normal(size=8) * 0.1},
                  "out": {"kernel": rng.normal(size=(8, 5)), "bias": rng.normal(size=5) * 0.1}}
        head_p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), head_p)
        from idmvae_jax.models.critic import make_critic

        critic = make_critic("projection", 8, 8, 5)
        mu_z = rng.normal(size=(3, 4, 8)).astype(np.float32)
        fn = self.variant(lambda x, p: objective.cross_view_infonce_loss(x, 0.5, lambda a, c: critic.apply(p, a, c)))
        np.testing.assert_allclose(fn(mu_z, head_p), np_cross_mi(mu_z, 0.5, np_projection_head(head_p)), rtol=2e-5)
        one = self.variant(lambda a, b, p: objective.infonce(a, b, 2.0, lambda x, y: critic.apply(p, x, y)))
        np.testing.assert_allclose(one(mu_z[0], mu_z[1], head_p),
                                   np_contrast(mu_z[0], mu_z[1], 2.0, np_projection_head(head_p)), rtol=2e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_contrast_from_scores_and_per_view(self):
        """Arbitrary scores: positive s_{p, p±B}, denominator over q != p (the 2B − 1 others)."""
        rng = np.random.default_rng(8)
        scores = rng.normal(size=(3, 8, 8)).astype(np.float32)
        want = []
        for v in range(3):
            s = _np(scores[v])
            vals = []
            for p in range(8):
                partner = p + 4 if p < 4 else p - 4
                others = [s[p, q] for q in range(8) if q != p]
                vals.append(s[p, partner] - special.logsumexp(others))
            want.append(np.mean(vals))
        fn = self.variant(objective.contrast_from_scores)
        got = [fn(scores[v]) for v in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # per_view_contrast with the cosine critic vmapped over views == the SPEC form per view
        a = rng.normal(size=(3, 4, 8)).astype(np.float32)
        c = rng.normal(size=(3, 4, 8)).astype(np.float32)
        pv = self.variant(lambda x, y: objective.per_view_contrast(x, y, jax.vmap(lambda t: cosine_scores(t, t)), 0.5))(a, c)
        np.testing.assert_allclose(pv, [np_contrast(a[v], c[v], 0.5) for v in range(3)], rtol=2e-5, atol=2e-5)


class InfoNCEChanceTest(parameterized.TestCase):
    """cross_view_infonce_chance(M, B) = M log(2B - 1): the L_crossMI of scores that ignore the pairing."""

    @parameterized.parameters((2, 1), (2, 4), (3, 5), (5, 32), (4, 7))
    def test_constant_scores_give_the_chance_value(self, m, b):
        mu_z = np.random.default_rng(m * 100 + b).normal(size=(m, b, 6)).astype(np.float32)
        want = objective.cross_view_infonce_chance(m, b)
        self.assertAlmostEqual(want, m * math.log(2 * b - 1), places=12)
        for tau in (0.1, 1.0):
            for c in (0.0, 3.5, -4.0):  # (float32: / tau keeps them below 40)
                const = lambda a, q, c=c: jnp.full((a.shape[0], q.shape[0]), c, jnp.float32)  # noqa: E731
                got = jax.jit(lambda x: objective.cross_view_infonce_loss(x, tau, const))(mu_z)
                np.testing.assert_allclose(float(got), want, rtol=1e-5)
        self.assertAlmostEqual(objective.cross_view_infonce_chance(5, 32), 20.7157, places=4)  # docs' 5 log 63

    def test_random_codes_sit_at_or_just_above_chance(self):
        """An untrained cosine critic on codes unrelated across views: near the chance value and,
        on average, not below it (log-sum-exp >= mean + log n)."""
        m, b, d = 5, 32, 64
        want = objective.cross_view_infonce_chance(m, b)
        fn = jax.jit(lambda x: objective.cross_view_infonce_loss(x, 1.0))
        got = np.array([float(fn(np.random.default_rng(s).normal(size=(m, b, d)).astype(np.float32)))
                        for s in range(8)])
        np.testing.assert_allclose(got, want, rtol=0.01)
        self.assertGreater(got.mean(), want)

    def test_loss_fn_with_a_constant_critic_is_at_chance(self):
        """Through loss_fn: L_crossMI with a critic that scores every pair alike is M log(2B - 1)."""
        _, params, batch, *_ = numeric_setup()
        m, b = len(NUMERIC_MODEL.views), batch["x"][0].shape[0]
        cfg = IDMVAEConfig(NUMERIC_MODEL, FULL_LOSS)
        const = lambda a, q: jnp.zeros((a.shape[0], q.shape[0]), jnp.float32)  # noqa: E731
        fn = fast_jit(lambda p, x, k: training_loss.loss_fn(p, x, k, cfg, critic_z=const))
        _, aux = fn(params, batch, jax.random.key(7))
        np.testing.assert_allclose(float(aux["cross_mi"]), objective.cross_view_infonce_chance(m, b), rtol=1e-6)


# ====================================================================================== ELBO pieces
class ElboReductionTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(1, 3)
    def test_log_weights_and_looser_iwae(self, k):
        rng = np.random.default_rng(k)
        shape = (3, k, 4)
        terms = objective.ElboTerms(*(rng.normal(size=shape).astype(np.float32) * 5 for _ in range(5)))
        beta = 2.5
        log_w = self.variant(lambda t: objective.elbo_log_weights(t, beta))(terms)
        ll, pz, pw, qz, qw = (_np(t) for t in terms)
        want_w = np.empty(shape)
        for idx in np.ndindex(*shape):
            want_w[idx] = ll[idx] + beta * (pz[idx] + pw[idx] - qz[idx] - qw[idx])
        np.testing.assert_allclose(log_w, want_w, rtol=1e-5, atol=1e-4)
        got = self.variant(objective.iwae_looser_loss)(jnp.asarray(want_w, jnp.float32))
        # −mean_B mean_r logmeanexp_K
        per = [math.log(np.mean(np.exp(want_w[r, :, b]))) for r in range(3) for b in range(4)]
        np.testing.assert_allclose(got, -np.mean(per), rtol=1e-5)

    def test_looser_bound_is_not_the_tight_one(self):
        """logmeanexp over K per source view (looser), not over (K, views) jointly."""
        log_w = jnp.asarray([[[0.0]], [[4.0]]])  # M = 2, K = 1, B = 1
        np.testing.assert_allclose(objective.iwae_looser_loss(log_w), -2.0)


# ====================================================================================== model
class ModelWiringTest(parameterized.TestCase):
    def test_preprocess_and_encode(self):
        model, params, batch, xs, xs_np, post = numeric_setup()
        for a, b in zip(xs, xs_np):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        mu_w, s_w, mu_z, s_z = np_posterior(model, params, xs_np)
        for got, want in zip(post, (mu_w, s_w, mu_z, s_z)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # the parameter groups of the tree
        self.assertEqual(set(params), {"encoders", "decoders", "aux_prior_raw", "critic", "score_z", "score_w"})
        aux_init = jax.jit(lambda key: model.init(key)["aux_prior_raw"])(jax.random.key(0))
        np.testing.assert_array_equal(aux_init, np.zeros((3, 4), np.float32))

    def test_elbo_terms_k3(self):
        model, params, batch, xs, xs_np, post = numeric_setup()
        k, m = 3, 3
        rng = np.random.default_rng(3)
        eps_w = rng.normal(size=(m, k, B, 4)).astype(np.float32)
        eps_z = rng.normal(size=(m, k, B, 3)).astype(np.float32)
        eps_aux = rng.normal(size=(m, m, k, B, 4)).astype(np.float32)
        fn = fast_jit(lambda p, x, po, a, b_, c: objective.elbo_terms(
            lambda u: model.log_likelihood(p, u, x), po, a, b_, c, model.aux_prior_scale(p), *model.prior_scales(),
            model.cfg.posterior))
        terms = fn(params, xs, post, eps_w, eps_z, eps_aux)
        pieces, want_loss = np_elbo(model, params, xs_np, eps_w, eps_z, eps_aux, beta=2.5)
        for name in objective.ElboTerms._fields:
            np.testing.assert_allclose(getattr(terms, name), pieces[name], rtol=1e-4, atol=1e-3, err_msg=name)
        got_loss = objective.iwae_looser_loss(objective.elbo_log_weights(terms, 2.5))
        np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)

    def test_roll_batch_pairs_b_with_b_minus_1(self):
        x = np.arange(2 * B * 3, dtype=np.float32).reshape(2, B, 3)
        got = np.asarray(objective.roll_batch(x))
        for v in range(2):
            for b in range(B):
                np.testing.assert_array_equal(got[v, b], x[v, (b - 1) % B])
        np.testing.assert_array_equal(objective.GlobalBatch().roll(jnp.asarray(x), axis=1), got)
        np.testing.assert_array_equal(objective.GlobalBatch().positions(B), np.arange(B))

    def test_genaug_loss(self, loss_type="contrastive"):
        """Contrastive cycle term with the projection critic (the 'l2' type is checked end to end
        through loss_fn in LossFnTest.test_laplace_posterior_k2_l2_cycle_cosine_critic)."""
        model, params, batch, xs, xs_np, post = numeric_setup()
        rng = np.random.default_rng(4)
        w_s = (post.mu_w + rng.normal(size=post.mu_w.shape)).astype(np.float32)
        z_s = (post.mu_z + rng.normal(size=post.mu_z.shape)).astype(np.float32)
        # roll_B(., 1): example b gets example b − 1's code (explicit index, not np.roll)
        prev = [(b - 1) % B for b in range(B)]
        w_swap, z_swap = w_s[:, prev], z_s[:, prev]
        fn = fast_jit(lambda p, po, w_swap_, z_, w_, z_swap_: objective.genaug_loss(
            lambda u: model.decode_mean(p, u), lambda x, branch: model.encode_branch_means(p, x, branch),
            functools.partial(model.critic_scores_z, p), functools.partial(model.critic_scores_w, p),
            po, w_swap_, z_, w_, z_swap_, loss_type=loss_type, temperature=0.5))
        got, got_z, got_w = fn(params, post, objective.roll_batch(w_s), z_s, w_s, objective.roll_batch(z_s))
        want, want_z, want_w = np_genaug(model, params, _np(post.mu_w), _np(post.mu_z), w_swap, z_swap, w_s, z_s,
                                         0.5, loss_type)
        np.testing.assert_allclose(got_z, want_z, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(got_w, want_w, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(got, want, rtol=2e-4)

    def test_diffusion_prior_loss(self):
        model, params, batch, xs, xs_np, post = numeric_setup()
        rng = np.random.default_rng(5)
        m = 3
        # include both ends of the schedule: SNR clipped at 100 (t = 0) and at 1 (t = T − 1)
        t_z = np.array([[0, 999, 500, 3, 700], [999, 0, 120, 640, 880], [10, 300, 999, 0, 450]], np.int32)
        t_w = t_z[::-1, ::-1].copy()
        n_z = rng.normal(size=(m, B, 3)).astype(np.float32)
        n_w = rng.normal(size=(m, B, 4)).astype(np.float32)
        schedule = jax.tree.map(jnp.asarray, objective.diffusion.schedule_from_config(DiffusionConfig()))
        np.testing.assert_allclose(schedule.alphas_cumprod, ABAR, rtol=1e-5, atol=1e-7)
        fn = fast_jit(lambda p, a, b_, c, d, e, f, s: objective.diffusion_prior_loss(*score_fns(model, p), a, b_, c, d, e, f, s))
        got = fn(params, post.mu_z, post.mu_w, t_z, n_z, t_w, n_w, schedule)
        want = np_diffusion(model, params, _np(post.mu_z), _np(post.mu_w), t_z, n_z, t_w, n_w)
        np.testing.assert_allclose(got, want, rtol=1e-4)


# ====================================================================================== randomness
class NoiseTest(parameterized.TestCase):
    CFG = IDMVAEConfig(NUMERIC_MODEL, dataclasses.replace(FULL_LOSS, num_samples=2))

    def test_per_example_noise_does_not_depend_on_the_batch_split(self):
        """Every draw is a function of (key, global position): the draws of positions 0..5 are the
        concatenation of those of 0..2 and 3..5, and any subset gives the same columns."""
        cfg, key = self.CFG, jax.random.key(42)
        full = draw_noise(key, jnp.arange(6), cfg)
        lo = draw_noise(key, jnp.arange(3), cfg)
        hi = draw_noise(key, jnp.arange(3, 6), cfg)
        subset = draw_noise(key, jnp.array([4, 0, 2]), cfg)
        m, k, w, z = 3, 2, 4, 3
        shapes = {"elbo_w": (m, k, 6, w), "elbo_z": (m, k, 6, z), "aux_w": (m, m, k, 6, w),
                  "genaug_a_w": (m, 6, w), "genaug_a_z": (m, 6, z), "genaug_b_w": (m, 6, w),
                  "genaug_b_z": (m, 6, z), "swap_w": (m, 6, w), "swap_z": (m, 6, z),
                  "diff_t_z": (m, 6), "diff_t_w": (m, 6), "diff_noise_z": (m, 6, z), "diff_noise_w": (m, 6, w)}
        self.assertEqual(set(full), set(shapes))
        batch_axis = {"elbo_w": 2, "elbo_z": 2, "aux_w": 3}
        for name, arr in full.items():
            self.assertEqual(arr.shape, shapes[name], name)
            ax = batch_axis.get(name, 1)
            np.testing.assert_array_equal(arr, np.concatenate([lo[name], hi[name]], axis=ax), err_msg=name)
            np.testing.assert_array_equal(np.take(arr, [4, 0, 2], axis=ax), subset[name], err_msg=name)
        self.assertTrue(np.issubdtype(full["diff_t_z"].dtype, np.integer))
        # a different key gives different draws, and the named draws are not copies of each other
        other = draw_noise(jax.random.key(43), jnp.arange(6), cfg)
        self.assertFalse(np.allclose(other["elbo_z"], full["elbo_z"]))
        self.assertFalse(np.allclose(full["genaug_a_z"], full["swap_z"]))
        self.assertFalse(np.allclose(full["genaug_a_w"], full["genaug_b_w"]))  # four draws per view
        self.assertFalse(np.allclose(full["elbo_z"][:, 0], full["elbo_z"][:, 1]))
        self.assertFalse(np.allclose(full["aux_w"][0, 1], full["aux_w"][1, 0]))

    def test_noise_layout_depends_on_the_weights(self):
        cfg = IDMVAEConfig(NUMERIC_MODEL, dataclasses.replace(MMVAEPLUS_LOSS, num_samples=2))
        noise = draw_noise(jax.random.key(0), jnp.arange(3), cfg)
        self.assertEqual(set(noise), {"elbo_w", "elbo_z", "aux_w"})
        # the ELBO draws come first in each example's stream: identical whatever terms are on
        full = draw_noise(jax.random.key(0), jnp.arange(3), self.CFG)
        for name in noise:
            np.testing.assert_array_equal(noise[name], full[name])

    @parameterized.parameters("normal", "laplace")
    def test_noise_distributions(self, family):
        cfg = self.CFG
        if family == "laplace":
            cfg = IDMVAEConfig(dataclasses.replace(NUMERIC_MODEL, posterior="laplace"), cfg.loss)
        noise = draw_noise(jax.random.key(1), jnp.arange(200), cfg)
        law, other = (stats.norm, stats.laplace) if family == "normal" else (stats.laplace, stats.norm)
        for name in ("elbo_w", "elbo_z", "aux_w", "genaug_a_w", "genaug_b_z", "swap_z"):
            self.assertGreater(stats.kstest(_np(noise[name]).ravel(), law.cdf).pvalue, 1e-4, name)
        self.assertLess(stats.kstest(_np(noise["aux_w"]).ravel(), other.cdf).pvalue, 1e-4)
        for name in ("diff_noise_z", "diff_noise_w"):  # diffusion noise is Gaussian in both families
            self.assertGreater(stats.kstest(_np(noise[name]).ravel(), stats.norm.cdf).pvalue, 1e-4, name)
        t = np.asarray(noise["diff_t_z"]).ravel()
        self.assertTrue(t.min() >= 0 and t.max() <= 999)
        self.assertGreater(stats.kstest(t, stats.randint(0, 1000).cdf).pvalue, 1e-4)

    @parameterized.parameters("normal", "laplace")
    def test_extreme_uniforms_map_to_finite_noise(self, transform):
        """The inverse CDFs at the ends of the uniform grid stay finite: a uniform of exactly 0
        (probability 2^-23 per draw, i.e. several times per mini run) once gave -inf and a NaN loss."""
        k = jnp.array([0, 1, 2**22, 2**23 - 2, 2**23 - 1], jnp.uint32)
        u = (k.astype(jnp.float32) + 0.5) * 2.0**-23  # what _open_unit_uniform produces for these k
        x = np.asarray(objective.noise._from_uniform(u, transform, 1000))
        self.assertTrue(np.all(np.isfinite(x)), x)
        law = stats.norm if transform == "normal" else stats.laplace
        np.testing.assert_allclose(x, law.ppf(np.asarray(u, np.float64)), rtol=1e-4, atol=1e-4)
        draws = np.asarray(objective.noise._open_unit_uniform(jax.random.key(0), 1 << 16))
        self.assertTrue(draws.min() > 0.0 and draws.max() < 1.0)
        self.assertGreater(stats.kstest(draws, stats.uniform.cdf).pvalue, 1e-4)


# ====================================================================================== loss_fn
def np_loss_fn(model, params, batch, key, cfg):
    """The whole objective recomputed with numpy from the per-example draws of `draw_example_noise`."""
    lc = cfg.loss
    xs_np = np_preprocess(model.cfg, batch["x"])
    b = xs_np[0].shape[0]
    noise = {k: np.asarray(v) for k, v in draw_noise(key, jnp.arange(b), cfg).items()}
    pieces, elbo = np_elbo(model, params, xs_np, noise["elbo_w"], noise["elbo_z"], noise["aux_w"], lc.beta)
    out = {"elbo": elbo, "cross_mi": 0.0, "genaug": 0.0, "diffusion": 0.0,
           "recon": -np.mean(pieces["log_likelihood"]),
           "kl": np.mean(pieces["log_q_z"] + pieces["log_q_w"] - pieces["log_prior_z"] - pieces["log_prior_w"])}
    mu_w, s_w, mu_z, s_z = np_posterior(model, params, xs_np)
    head_z = np_projection_head(params["critic"]["z"]) if "critic" in params else None
    if lc.cross_mi_weight:
        out["cross_mi"] = np_cross_mi(mu_z, lc.temperature, head_z)
    if lc.genaug_weight:
        w_a, z_a = mu_w + s_w * noise["genaug_a_w"], mu_z + s_z * noise["genaug_a_z"]
        w_b, z_b = mu_w + s_w * noise["genaug_b_w"], mu_z + s_z * noise["genaug_b_z"]
        prev = [(i - 1) % b for i in range(b)]
        out["genaug"] = np_genaug(model, params, mu_w, mu_z, w_a[:, prev], z_b[:, prev], w_b, z_a,
                                  lc.temperature, lc.genaug_loss)[0]
    if lc.diffusion_weight:
        out["diffusion"] = np_diffusion(model, params, mu_z, mu_w, noise["diff_t_z"], noise["diff_noise_z"],
                                        noise["diff_t_w"], noise["diff_noise_w"])
    out["total"] = (out["elbo"] + lc.cross_mi_weight * out["cross_mi"] + lc.genaug_weight * out["genaug"]
                    + lc.diffusion_weight * out["diffusion"])
    return out


AUX_KEYS = {"elbo", "recon", "kl", "cross_mi", "genaug", "diffusion", "total"}


class LossFnTest(parameterized.TestCase):
    def test_mmvaeplus_is_the_elbo_exactly(self):
        model, params, batch, *_ = numeric_setup()
        cfg = IDMVAEConfig(NUMERIC_MODEL, MMVAEPLUS_LOSS)
        key = jax.random.key(7)
        total, aux = jitted_loss(cfg)(params, batch, key)
        self.assertEqual(set(aux), AUX_KEYS)
        self.assertEqual(float(total), float(aux["elbo"]))
        self.assertEqual(float(aux["total"]), float(aux["elbo"]))
        for name in ("cross_mi", "genaug", "diffusion"):
            self.assertEqual(float(aux[name]), 0.0)
        want = np_loss_fn(model, params, batch, key, cfg)
        for name in ("elbo", "recon", "kl", "total"):
            np.testing.assert_allclose(aux[name], want[name], rtol=1e-5, atol=1e-4, err_msg=name)

    def test_full_objective_and_elbo_shared_across_variants(self):
        model, params, batch, *_ = numeric_setup()
        key = jax.random.key(7)
        cfg = IDMVAEConfig(NUMERIC_MODEL, FULL_LOSS)
        total, aux = jitted_loss(cfg)(params, batch, key)
        want = np_loss_fn(model, params, batch, key, cfg)
        for name in sorted(AUX_KEYS):
            np.testing.assert_allclose(aux[name], want[name], rtol=2e-4, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(total, aux["total"])
        expected = aux["elbo"] + 0.7 * aux["cross_mi"] + 0.3 * aux["genaug"] + 0.2 * aux["diffusion"]
        np.testing.assert_allclose(total, expected, rtol=1e-6)
        # the ELBO term does not depend on which other terms are on (same key, same draws)
        _, aux_mm = jitted_loss(IDMVAEConfig(NUMERIC_MODEL, MMVAEPLUS_LOSS))(params, batch, key)
        for name in ("elbo", "recon", "kl"):
            np.testing.assert_allclose(aux[name], aux_mm[name], rtol=1e-6, err_msg=name)
        # a different key changes the draws
        _, aux_other = jitted_loss(cfg)(params, batch, jax.random.key(8))
        self.assertNotAlmostEqual(float(aux_other["elbo"]), float(aux["elbo"]), places=4)

    def test_laplace_posterior_k2_l2_cycle_cosine_critic(self):
        """The 'laplace' family (softmax·dim scales, Laplace priors/posteriors), K = 2, the 'l2'
        cycle loss and the parameter-free cosine critic, recomputed end to end."""
        model_cfg = ModelConfig(views=(IMG, VEC, IMG), z_dim=3, w_dim=4, posterior="laplace", posterior_eps=1e-6)
        model = make_model(model_cfg)
        params = random_params(model, 3)
        self.assertNotIn("critic", params)
        batch = make_batch(model_cfg, 4)
        cfg = IDMVAEConfig(model_cfg, LossConfig(beta=1.5, num_samples=2, cross_mi_weight=0.4, genaug_weight=0.6,
                                                 genaug_loss="l2", temperature=1.0))
        key = jax.random.key(11)
        total, aux = jitted_loss(cfg)(params, batch, key)
        want = np_loss_fn(model, params, batch, key, cfg)
        for name in sorted(AUX_KEYS):
            np.testing.assert_allclose(aux[name], want[name], rtol=2e-4, atol=1e-4, err_msg=name)

    def test_centered_critic_in_cross_mi(self):
        """critic='centered': L_crossMI is the cosine InfoNCE of the codes minus their mean over all
        M * B rows (the rows the critic is given), recomputed with numpy."""
        model_cfg = dataclasses.replace(NUMERIC_MODEL, critic="centered")
        model = make_model(model_cfg)
        params = random_params(model, 5)
        self.assertNotIn("critic", params)
        batch = make_batch(model_cfg, 6)
        cfg = IDMVAEConfig(model_cfg, FULL_LOSS)
        _, aux = jitted_loss(cfg)(params, batch, jax.random.key(2))
        _, _, mu_z, _ = np_posterior(model, params, np_preprocess(model_cfg, batch["x"]))
        mean = mu_z.reshape(-1, mu_z.shape[-1]).mean(0)
        want = np_cross_mi(mu_z, FULL_LOSS.temperature, head=lambda x: x - mean)
        np.testing.assert_allclose(aux["cross_mi"], want, rtol=2e-4)

    def test_critic_arguments_replace_the_models_critic(self):
        """critic_z / critic_w given to loss_fn: the cosine of fixed linear maps of the codes,
        recomputed with numpy; the ELBO and diffusion terms are untouched."""
        model, params, batch, *_ = numeric_setup()
        self.assertIn("critic", params)  # the projection critic, replaced here
        cfg = IDMVAEConfig(NUMERIC_MODEL, FULL_LOSS)
        rng = np.random.default_rng(12)
        a_z = rng.normal(size=(NUMERIC_MODEL.z_dim, 6)).astype(np.float32)
        a_w = rng.normal(size=(NUMERIC_MODEL.w_dim, 5)).astype(np.float32)
        critic_z = lambda a, b: cosine_scores(a @ a_z, b @ a_z)  # noqa: E731
        critic_w = lambda a, b: cosine_scores(a @ a_w, b @ a_w)  # noqa: E731
        key = jax.random.key(7)
        fn = fast_jit(lambda p, b, k: training_loss.loss_fn(p, b, k, cfg, critic_z=critic_z, critic_w=critic_w))
        total, aux = fn(params, batch, key)
        _, default = jitted_loss(cfg)(params, batch, key)

        xs_np = np_preprocess(model.cfg, batch["x"])
        b = xs_np[0].shape[0]
        noise = {k: np.asarray(v) for k, v in draw_noise(key, jnp.arange(b), cfg).items()}
        mu_w, s_w, mu_z, s_z = np_posterior(model, params, xs_np)
        head_z, head_w = (lambda x: x @ a_z), (lambda x: x @ a_w)
        w_a, z_a = mu_w + s_w * noise["genaug_a_w"], mu_z + s_z * noise["genaug_a_z"]
        w_b, z_b = mu_w + s_w * noise["genaug_b_w"], mu_z + s_z * noise["genaug_b_z"]
        prev = [(i - 1) % b for i in range(b)]
        want_genaug = np_genaug(model, params, mu_w, mu_z, w_a[:, prev], z_b[:, prev], w_b, z_a, cfg.loss.temperature,
                                heads=(head_z, [head_w] * len(NUMERIC_MODEL.views)))[0]
        np.testing.assert_allclose(aux["cross_mi"], np_cross_mi(mu_z, cfg.loss.temperature, head_z), rtol=2e-4)
        np.testing.assert_allclose(aux["genaug"], want_genaug, rtol=2e-4)
        self.assertGreater(abs(float(aux["cross_mi"]) - float(default["cross_mi"])), 1e-3)
        for name in ("elbo", "diffusion"):
            np.testing.assert_allclose(aux[name], default[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(total, aux["total"])


# ====================================================================================== gradients
GRAD_MODEL = ModelConfig(views=(IMG, VEC, IMG, CAP), z_dim=3, w_dim=4, critic="projection", critic_width=8,
                         critic_dim=5, diffusion_prior=True, score_width=16, score_time_dim=8)


def _bias_before_batch_norm(spec, keys):
    """Biases of the caption convs that feed an `example_norm` (every encoder conv; every decoder
    deconv but the last): at CAP's widths each norm group is one channel, whose per-example mean
    removes the bias, so their gradient is 0 by construction."""
    if keys[-1] != "bias":
        return False
    if keys[0] == "encoders":
        return keys[-2].startswith("conv_")
    return keys[-2].startswith("deconv_") and int(keys[-2].split("_")[1]) < len(spec.hidden) - 1


class GradientTest(parameterized.TestCase):
    def test_gradients_finite_and_nonzero_for_every_parameter(self):
        model = make_model(GRAD_MODEL)
        params = random_params(model, 5)
        batch = make_batch(GRAD_MODEL, 6)
        cfg = IDMVAEConfig(GRAD_MODEL, FULL_LOSS)
        grad_fn = fast_jit(jax.value_and_grad(functools.partial(training_loss.loss_fn, cfg=cfg), has_aux=True))
        (total, aux), grads = grad_fn(params, batch, jax.random.key(3))
        self.assertEqual(set(aux), AUX_KEYS)
        for name in AUX_KEYS:
            self.assertTrue(np.isfinite(float(aux[name])), name)
            if name != "kl":
                self.assertNotEqual(float(aux[name]), 0.0, name)
        self.assertEqual(set(grads), {"encoders", "decoders", "aux_prior_raw", "critic", "score_z", "score_w"})
        caption = group_name((3,))
        zero_by_construction = []
        for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
            keys = [str(getattr(p, "key", p)) for p in path]
            where = "/".join(keys)
            g = np.asarray(g)
            self.assertTrue(np.all(np.isfinite(g)), where)
            stacked = keys[0] in ("encoders", "decoders", "score_w", "aux_prior_raw") or keys[:2] == ["critic", "w"]
            if keys[0] in ("encoders", "decoders") and keys[1] == caption and _bias_before_batch_norm(CAP, keys):
                zero_by_construction.append(where)
                self.assertLess(np.max(np.abs(g)), 1e-4, where)
                continue
            # every view's slice of a stacked leaf gets its own non-zero gradient
            for i, gi in enumerate(g if stacked else [g]):
                self.assertGreater(np.max(np.abs(gi)), 1e-7, f"{where}[{i}]")
        self.assertEqual(zero_by_construction, [f"encoders/{caption}/branch_{b}/conv_0/bias" for b in "wz"])


def _max_abs(tree) -> float:
    return max(float(np.max(np.abs(np.asarray(g)))) for g in jax.tree_util.tree_leaves(tree))


class SamplingOptionsTest(parameterized.TestCase):
    """The options SPEC names for the cycle term's swapped codes and the diffusion prior's input."""

    def _aux_and_noise(self, **loss_changes):
        model, params, batch, *_ = numeric_setup()
        cfg = IDMVAEConfig(NUMERIC_MODEL, dataclasses.replace(FULL_LOSS, **loss_changes))
        key = jax.random.key(11)
        _, aux = jitted_loss(cfg)(params, batch, key)
        noise = {k: np.asarray(v) for k, v in draw_noise(key, jnp.arange(B), cfg).items()}
        return model, params, batch, cfg, key, aux, noise

    def _np_genaug_with(self, model, params, batch, noise, w_swap, z_swap):
        mu_w, s_w, mu_z, s_z = np_posterior(model, params, np_preprocess(model.cfg, batch["x"]))
        z_a = mu_z + s_z * noise["genaug_a_z"]
        w_b = mu_w + s_w * noise["genaug_b_w"]
        return np_genaug(model, params, mu_w, mu_z, w_swap, z_swap, w_b, z_a, FULL_LOSS.temperature)[0]

    def test_prior_sampling_swaps_in_scaled_prior_noise(self):
        """genaug_sampling='prior': w_swap = sigma_w * eps, z_swap = sigma_z * eps from the step's
        swap draws; the cycle term equals the numpy cycle term on those codes."""
        model, params, batch, cfg, key, aux, noise = self._aux_and_noise(genaug_sampling="prior")
        scale_w, scale_z = (np.asarray(s, np.float64) for s in model.prior_scales())
        want = self._np_genaug_with(model, params, batch, noise, scale_w * noise["swap_w"], scale_z * noise["swap_z"])
        np.testing.assert_allclose(aux["genaug"], want, rtol=2e-4)
        _, posterior_aux = jitted_loss(IDMVAEConfig(NUMERIC_MODEL, FULL_LOSS))(params, batch, key)
        self.assertGreater(abs(float(aux["genaug"]) - float(posterior_aux["genaug"])), 1e-3)  # it changes the term

    def test_diffusion_prior_sampling_uses_the_ddim_codes_without_their_gradient(self):
        """genaug_sampling='diffusion_prior': the swapped codes are DDIM samples of the latent score
        networks from the step's base noise (sample_diffusion_prior, checked against numpy in
        test_diffusion), decoded by the numpy cycle term to the same value; no gradient of the
        cycle term reaches the score networks."""
        from idmvae_jax.generation import sample_diffusion_prior

        model, params, batch, cfg, key, aux, noise = self._aux_and_noise(genaug_sampling="diffusion_prior")
        z, w = jax.jit(lambda p, xz, xw: sample_diffusion_prior(model, p, xz, xw, cfg))(
            params, noise["swap_z"], noise["swap_w"])
        want = self._np_genaug_with(model, params, batch, noise, np.asarray(w, np.float64), np.asarray(z, np.float64))
        np.testing.assert_allclose(aux["genaug"], want, rtol=2e-4)
        grads = fast_jit(jax.grad(lambda p: training_loss.loss_fn(p, batch, key, cfg)[1]["genaug"]))(params)
        self.assertEqual(_max_abs(grads["score_z"]), 0.0)
        self.assertEqual(_max_abs(grads["score_w"]), 0.0)
        self.assertGreater(_max_abs(grads["decoders"]), 1e-6)

    @parameterized.parameters(False, True)
    def test_diffusion_stop_gradient_decides_whether_the_prior_term_trains_the_encoders(self, stop):
        """diffusion_stop_gradient: the diffusion term's gradient reaches the encoders (through the
        posterior means) unless it is set; the score networks train either way; the value is the same."""
        model, params, batch, cfg, key, aux, _ = self._aux_and_noise(diffusion_stop_gradient=stop)
        _, aux_other = jitted_loss(IDMVAEConfig(NUMERIC_MODEL, dataclasses.replace(
            FULL_LOSS, diffusion_stop_gradient=not stop)))(params, batch, key)
        self.assertEqual(float(aux["diffusion"]), float(aux_other["diffusion"]))
        grads = fast_jit(jax.grad(lambda p: training_loss.loss_fn(p, batch, key, cfg)[1]["diffusion"]))(params)
        self.assertGreater(_max_abs(grads["score_z"]), 1e-6)
        self.assertGreater(_max_abs(grads["score_w"]), 1e-6)
        if stop:
            self.assertEqual(_max_abs(grads["encoders"]), 0.0)
        else:
            self.assertGreater(_max_abs(grads["encoders"]), 1e-6)
        self.assertEqual(_max_abs(grads["decoders"]), 0.0)  # the prior term never sees a decoder


class PrecisionTest(parameterized.TestCase):
    def test_bfloat16_compute_is_within_one_percent_of_float32_on_every_term(self):
        """compute_dtype='bfloat16' (parameters stay float32) on a fixed batch and key: every loss
        term within 1 % of float32 (measured: at most 0.42 %, the diffusion term), and not equal to
        it (the option is in effect)."""
        model, params, batch, *_ = numeric_setup()
        key = jax.random.key(5)
        _, f32 = jitted_loss(IDMVAEConfig(NUMERIC_MODEL, FULL_LOSS))(params, batch, key)
        bf16_model = dataclasses.replace(NUMERIC_MODEL, compute_dtype="bfloat16")
        _, bf16 = jitted_loss(IDMVAEConfig(bf16_model, FULL_LOSS))(params, batch, key)
        for name in sorted(AUX_KEYS):
            np.testing.assert_allclose(bf16[name], f32[name], rtol=1e-2, err_msg=name)
        self.assertGreater(max(abs(float(bf16[k]) / float(f32[k]) - 1.0) for k in AUX_KEYS), 1e-4)


@pytest.mark.parametrize("loss_cfg", [
    MMVAEPLUS_LOSS,  # the networks' custom VJPs all sit under the ELBO: a third of the compile time
    pytest.param(FULL_LOSS, marks=pytest.mark.slow)])  # every term (the others are plain autodiff)
def test_looped_and_rematerialised_views_give_the_vmapped_gradient_and_finite_differences(loss_cfg):
    """The gradient of the objective through the looped views (a custom VJP stacks the
    per-view cotangents) and through the looped, rematerialised views (custom VJPs that
    recompute the forward) equals the vmapped path's, which uses neither; and the vmapped
    gradient matches central finite differences along random directions (float32: step 1e-2
    along unit directions, agreement within 2 %)."""
    params = random_params(make_model(NUMERIC_MODEL), 5)
    batch = make_batch(NUMERIC_MODEL, 6)
    key = jax.random.key(9)

    def loss_of(vmap, remat):
        cfg = IDMVAEConfig(dataclasses.replace(NUMERIC_MODEL, vmap_views=vmap, remat=remat), loss_cfg)
        return lambda p: training_loss.loss_fn(p, batch, key, cfg)[0]

    reference = fast_jit(jax.grad(loss_of(True, False)))(params)
    for vmap, remat in ((False, False), (False, True)):
        grads = fast_jit(jax.grad(loss_of(vmap, remat)))(params)
        for (path, got), want in zip(jax.tree_util.tree_flatten_with_path(grads)[0], jax.tree.leaves(reference)):
            got, want = np.asarray(got), np.asarray(want)
            scale = max(float(np.max(np.abs(want))), 1e-6)
            assert float(np.max(np.abs(got - want))) <= 1e-4 * scale, \
                f"vmap={vmap} remat={remat} {jax.tree_util.keystr(path)}"

    loss = fast_jit(loss_of(True, False))
    rng = np.random.default_rng(0)
    leaves, treedef = jax.tree.flatten(params)
    for _ in range(3):
        direction = [rng.normal(size=np.shape(leaf)) for leaf in leaves]
        norm = math.sqrt(sum(float(np.sum(d * d)) for d in direction))
        direction = [d / norm for d in direction]
        shifted = lambda h: jax.tree.unflatten(treedef, [  # noqa: E731
            jnp.asarray(np.asarray(leaf, np.float64) + h * d, jnp.float32) for leaf, d in zip(leaves, direction)])
        h = 1e-2
        numeric = (float(loss(shifted(h))) - float(loss(shifted(-h)))) / (2 * h)
        analytic = sum(float(np.sum(np.asarray(g, np.float64) * d))
                       for g, d in zip(jax.tree.leaves(reference), direction))
        assert abs(numeric - analytic) < 2e-2 * abs(analytic) + 1e-2, (numeric, analytic)
