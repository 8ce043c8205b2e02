"""Tests of `idmvae_jax.core.distributions` and `idmvae_jax.models.likelihoods` (SPEC §1) against independent numpy/scipy references.

Every reference is written from the SPEC, not from the library: scales from their definitions
(log1p(exp(.)), an explicit softmax loop), densities from `scipy.stats`, the mixture of experts as
an explicit loop over examples and experts, KL divergences from their closed forms.
"""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy import special, stats

from idmvae_jax.core import distributions as dist
from idmvae_jax.models import likelihoods
from idmvae_jax.models.multimodal import make_model
from idmvae_jax.models.specs import ModelConfig, ViewSpec

LN2 = math.log(2.0)


def _np(x):
    return np.asarray(x, np.float64)


def _softplus_ref(v):
    return np.log1p(np.exp(v))


def _softmax_ref(v):
    """Softmax over the last axis, one vector at a time."""
    v = _np(v)
    flat = v.reshape(-1, v.shape[-1])
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        e = np.exp(row - row.max())
        out[i] = e / e.sum()
    return out.reshape(v.shape)


# ------------------------------------------------------------------------------------------ scales
class ScaleTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(1e-8, 1e-6)
    def test_normal_scale_is_softplus_plus_eps(self, eps):
        raw = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32) * 3
        got = self.variant(lambda r: dist.latent_scale(r, "normal", eps))(raw)
        np.testing.assert_allclose(got, _softplus_ref(_np(raw)) + eps, rtol=2e-6, atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(1e-8, 1e-6)
    def test_laplace_scale_is_softmax_times_dim_plus_eps(self, eps):
        raw = np.random.default_rng(1).normal(size=(3, 5, 7)).astype(np.float32) * 2
        got = self.variant(lambda r: dist.latent_scale(r, "laplace", eps))(raw)
        want = _softmax_ref(raw) * 7 + eps
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
        # the softmax runs over the latent dims only: every row sums to dim (+ dim * eps)
        np.testing.assert_allclose(np.sum(_np(got), axis=-1), 7 * (1 + eps), rtol=1e-6)

    def test_unknown_family_raises(self):
        with self.assertRaises(ValueError):
            dist.latent_scale(jnp.zeros(3), "cauchy", 1e-8)
        with self.assertRaises(ValueError):
            dist.log_density("cauchy", jnp.zeros(3), 0.0, 1.0)

    @parameterized.parameters(1, 4, 32, 128)
    def test_prior_scale_values(self, dim):
        # SPEC §1: normal -> softplus(0) + eps = ln 2 = 0.6931...; laplace -> softmax(0) * dim + eps = 1
        np.testing.assert_allclose(dist.prior_scale(dim, "normal", 1e-8), np.full(dim, LN2 + 1e-8), rtol=1e-6)
        np.testing.assert_allclose(dist.prior_scale(dim, "laplace", 1e-8), np.full(dim, 1.0), rtol=1e-6)
        self.assertEqual(dist.prior_scale(dim, "normal", 1e-6).shape, (dim,))
        np.testing.assert_allclose(float(dist.prior_scale(dim, "normal", 1e-8)[0]), 0.6931, atol=1e-4)

    def test_model_prior_and_aux_scales(self):
        views = (ViewSpec("vector", (2,), hidden=()), ViewSpec("vector", (2,), hidden=()))
        raw = np.random.default_rng(2).normal(size=(2, 6)).astype(np.float32)
        for fam, value in (("normal", LN2), ("laplace", 1.0)):
            for eps in (1e-8, 1e-6):
                model = make_model(ModelConfig(views=views, z_dim=3, w_dim=6, posterior=fam, posterior_eps=eps))
                pw, pz = model.prior_scales()
                # laplace: the softmax runs separately over the w part and the z part -> 1 + eps each
                np.testing.assert_allclose(pw, np.full(6, value + eps), rtol=1e-6)
                np.testing.assert_allclose(pz, np.full(3, value + eps), rtol=1e-6)
                # auxiliary private prior r_m: raw (M, W), init 0 -> the prior's value; same convention
                aux0 = model.aux_prior_scale({"aux_prior_raw": jnp.zeros((2, 6))})
                np.testing.assert_allclose(aux0, np.full((2, 6), value + eps), rtol=1e-6)
                got = model.aux_prior_scale({"aux_prior_raw": jnp.asarray(raw)})
                want = _softplus_ref(raw) + eps if fam == "normal" else _softmax_ref(raw) * 6 + eps
                np.testing.assert_allclose(got, want, rtol=2e-6)
        # init: the auxiliary raw scales start at 0 (jit drops every other initialiser: cheap)
        aux_init = jax.jit(lambda key: model.init(key)["aux_prior_raw"])(jax.random.key(0))
        np.testing.assert_array_equal(aux_init, np.zeros((2, 6), np.float32))
        # the raw prior scale is a config value whose default (0) reproduces the reference values
        model = make_model(ModelConfig(views=views, z_dim=3, w_dim=6, prior_raw_scale=1.0))
        np.testing.assert_allclose(model.prior_scales()[1], np.full(3, _softplus_ref(1.0) + 1e-8), rtol=1e-6)


# ------------------------------------------------------------------------------------- densities
class DensityTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("normal", "laplace")
    def test_log_density_matches_scipy(self, family):
        rng = np.random.default_rng(3)
        x = rng.normal(size=(2, 4, 6)).astype(np.float32)
        loc = rng.normal(size=(4, 6)).astype(np.float32)
        scale = rng.uniform(0.2, 2.0, size=(4, 6)).astype(np.float32)
        got = self.variant(lambda a, m, s: dist.log_density(family, a, m, s))(x, loc, scale)
        law = stats.norm if family == "normal" else stats.laplace
        want = law.logpdf(_np(x), loc=_np(loc), scale=_np(scale)).sum(axis=-1)
        self.assertEqual(got.shape, (2, 4))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("normal", "laplace")
    def test_log_density_with_scalar_zero_mean(self, family):
        x = np.random.default_rng(4).normal(size=(3, 5)).astype(np.float32)
        scale = np.float32(LN2)
        got = self.variant(lambda a: dist.log_density(family, a, 0.0, scale))(x)
        law = stats.norm if family == "normal" else stats.laplace
        np.testing.assert_allclose(got, law.logpdf(_np(x), 0.0, LN2).sum(-1), rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(("normal", 1), ("normal", 3), ("laplace", 2), ("laplace", 4))
    def test_mixture_of_experts_density(self, family, num_experts):
        rng = np.random.default_rng(5 + num_experts)
        s, b, d = 3, 4, 5
        x = rng.normal(size=(s, b, d)).astype(np.float32)
        locs = rng.normal(size=(num_experts, b, d)).astype(np.float32)
        scales = rng.uniform(0.3, 1.5, size=(num_experts, b, d)).astype(np.float32)
        got = self.variant(lambda a, m, sc: dist.mixture_log_density(family, a, m, sc))(x, locs, scales)
        law = stats.norm if family == "normal" else stats.laplace
        want = np.empty((s, b))
        for i in range(s):
            for j in range(b):
                # log (1/M) sum_m prod_d q_m(x_d)
                log_q = [law.logpdf(_np(x[i, j]), _np(locs[m, j]), _np(scales[m, j])).sum() for m in range(num_experts)]
                want[i, j] = special.logsumexp(log_q, b=np.full(num_experts, 1.0 / num_experts))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    def test_mixture_of_identical_experts_is_the_expert(self):
        rng = np.random.default_rng(6)
        x = rng.normal(size=(3, 4, 5)).astype(np.float32)
        loc = rng.normal(size=(1, 4, 5)).astype(np.float32)
        scale = rng.uniform(0.5, 1.0, size=(1, 4, 5)).astype(np.float32)
        single = stats.norm.logpdf(_np(x), _np(loc), _np(scale)).sum(-1)
        three = dist.mixture_log_density("normal", x, np.repeat(loc, 3, 0), np.repeat(scale, 3, 0))
        np.testing.assert_allclose(three, single, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reparameterize(self):
        rng = np.random.default_rng(7)
        loc = rng.normal(size=(3, 1, 4)).astype(np.float32)
        scale = rng.uniform(0.5, 1.0, size=(3, 1, 4)).astype(np.float32)
        noise = rng.normal(size=(3, 2, 4)).astype(np.float32)
        got = self.variant(dist.reparameterize)(loc, scale, noise)
        np.testing.assert_allclose(got, _np(loc) + _np(scale) * _np(noise), rtol=1e-6, atol=1e-6)

    @parameterized.parameters("normal", "laplace")
    def test_standard_noise_distribution(self, family):
        draws = np.asarray(dist.standard_noise(family, jax.random.key(11), (4000, 5))).ravel()
        law = stats.norm if family == "normal" else stats.laplace
        self.assertGreater(stats.kstest(draws, law.cdf).pvalue, 1e-3)
        other = stats.laplace if family == "normal" else stats.norm
        self.assertLess(stats.kstest(draws, other.cdf).pvalue, 1e-3)


# ------------------------------------------------------------------------------------ golden KL
class KLTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("normal", "laplace")
    def test_equal_distributions_have_zero_kl(self, family):
        """Posterior == prior (loc 0, prior scale): log q - log p is 0 for every sample, with log p
        from scipy (float64) and log q from the package's density at the posterior's draws."""
        d = 6
        scale = dist.prior_scale(d, family, 1e-8)
        noise = dist.standard_noise(family, jax.random.key(0), (64, d))

        def draws_and_log_q(eps):
            x = dist.reparameterize(jnp.zeros(d), scale, eps)
            return x, dist.log_density(family, x, jnp.zeros(d), scale)

        x, log_q = map(np.asarray, self.variant(draws_and_log_q)(noise))
        law = stats.norm if family == "normal" else stats.laplace
        log_p = law.logpdf(x.astype(np.float64), loc=0.0, scale=np.asarray(scale, np.float64)).sum(-1)
        np.testing.assert_allclose(log_q - log_p, np.zeros(64), atol=1e-4)

    @parameterized.parameters("normal", "laplace")
    def test_monte_carlo_kl_matches_closed_form(self, family):
        d, n = 3, 200_000
        m1 = np.array([0.3, -1.0, 0.5])
        s1 = np.array([0.7, 1.3, 0.4])
        m2 = np.array([0.0, 0.2, -0.5])
        s2 = np.array([1.0, 0.9, 0.6])
        eps = dist.standard_noise(family, jax.random.key(1), (n, d))
        x = dist.reparameterize(jnp.asarray(m1, jnp.float32), jnp.asarray(s1, jnp.float32), eps)
        mc = np.mean(_np(dist.log_density(family, x, m1, s1) - dist.log_density(family, x, m2, s2)))
        if family == "normal":
            kl = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
        else:
            a = np.abs(m1 - m2)
            kl = np.log(s2 / s1) + a / s2 + (s1 / s2) * np.exp(-a / s1) - 1.0
        self.assertGreater(kl.sum(), 0.5)
        np.testing.assert_allclose(mc, kl.sum(), atol=0.02)


# ----------------------------------------------------------------------------------- likelihoods
class LikelihoodTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_laplace_fixed_scale_image(self):
        spec = ViewSpec("image", (4, 4, 3), likelihood="laplace", likelihood_scale=0.75, channels=(4,))
        rng = np.random.default_rng(8)
        x = rng.uniform(size=(2, 3, 4, 4, 3)).astype(np.float32)
        loc = rng.uniform(size=(2, 3, 4, 4, 3)).astype(np.float32)
        got = self.variant(lambda a, m: likelihoods.likelihood_log_prob(spec, {"loc": m}, a))(x, loc)
        want = stats.laplace.logpdf(_np(x), _np(loc), 0.75).reshape(2, 3, -1).sum(-1)
        self.assertEqual(got.shape, (2, 3))
        np.testing.assert_allclose(got, want, rtol=1e-5)
        mean = self.variant(lambda m: likelihoods.likelihood_mean(spec, {"loc": m}))(loc)
        np.testing.assert_array_equal(mean, loc)

    @chex.variants(with_jit=True, without_jit=True)
    def test_laplace_learned_scale_vector_and_broadcast(self):
        spec = ViewSpec("vector", (5,), likelihood="laplace", likelihood_scale=None)
        rng = np.random.default_rng(9)
        x = rng.normal(size=(1, 4, 5)).astype(np.float32)  # broadcast over the leading sample axis
        loc = rng.normal(size=(3, 4, 5)).astype(np.float32)
        scale = rng.uniform(0.1, 2.0, size=(3, 4, 5)).astype(np.float32)
        got = self.variant(lambda a, m, s: likelihoods.likelihood_log_prob(spec, {"loc": m, "scale": s}, a))(x, loc, scale)
        want = stats.laplace.logpdf(_np(x), _np(loc), _np(scale)).sum(-1)
        np.testing.assert_allclose(got, want, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_normal_likelihood(self):
        spec = ViewSpec("latent", (4, 4, 2), likelihood="normal", likelihood_scale=0.01, channels=(4,))
        rng = np.random.default_rng(10)
        loc = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
        x = (loc + 0.01 * rng.normal(size=loc.shape)).astype(np.float32)
        got = self.variant(lambda a, m: likelihoods.likelihood_log_prob(spec, {"loc": m}, a))(x, loc)
        want = stats.norm.logpdf(_np(x), _np(loc), 0.01).reshape(3, -1).sum(-1)
        np.testing.assert_allclose(got, want, rtol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_categorical_one_hot(self):
        length, vocab = 8, 6
        spec = ViewSpec("caption", (length,), likelihood="categorical", likelihood_scale=None, vocab_size=vocab)
        rng = np.random.default_rng(11)
        tokens = rng.integers(0, vocab, size=(2, 3, length))
        x = np.eye(vocab, dtype=np.float32)[tokens]
        logits = rng.normal(size=(2, 3, length, vocab)).astype(np.float32) * 2
        got = self.variant(lambda a, lg: likelihoods.likelihood_log_prob(spec, {"logits": lg}, a))(x, logits)
        want = np.zeros((2, 3))
        for i in range(2):
            for j in range(3):
                for pos in range(length):
                    p = special.softmax(_np(logits[i, j, pos]))
                    want[i, j] += stats.multinomial.logpmf(x[i, j, pos], n=1, p=p)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        mean = self.variant(lambda lg: likelihoods.likelihood_mean(spec, {"logits": lg}))(logits)
        np.testing.assert_allclose(mean, special.softmax(_np(logits), axis=-1), rtol=1e-5, atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_bernoulli(self):
        spec = ViewSpec("image", (4, 4, 1), likelihood="bernoulli", likelihood_scale=None, channels=(4,))
        rng = np.random.default_rng(12)
        x = rng.integers(0, 2, size=(3, 4, 4, 1)).astype(np.float32)
        logits = rng.normal(size=(3, 4, 4, 1)).astype(np.float32) * 3
        fn = self.variant(lambda a, lg: likelihoods.likelihood_log_prob(spec, {"logits": lg}, a))
        p = special.expit(_np(logits))
        want = stats.bernoulli.logpmf(x, p).reshape(3, -1).sum(-1)
        np.testing.assert_allclose(fn(x, logits), want, rtol=1e-5)
        # fractional targets: the cross-entropy x log p + (1 - x) log(1 - p)
        xf = rng.uniform(size=x.shape).astype(np.float32)
        want_f = (xf * np.log(p) + (1 - xf) * np.log1p(-p)).reshape(3, -1).sum(-1)
        np.testing.assert_allclose(fn(xf, logits), want_f, rtol=1e-5)
        mean = self.variant(lambda lg: likelihoods.likelihood_mean(spec, {"logits": lg}))(logits)
        np.testing.assert_allclose(mean, p, rtol=1e-5)
