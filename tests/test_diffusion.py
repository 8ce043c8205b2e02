"""Tests of the diffusion latent prior (SPEC §2.4): schedule, loss, DDIM sampler and score network.

Every reference below is an independent float64 numpy computation, written differently from the
library code (ratios of sigmoids via tanh, explicit loops, scipy's erf for the exact GELU).
"""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy.special import erf

from idmvae_jax.objective import diffusion
from idmvae_jax.models.score_net import ScoreNet, make_score_net, sinusoidal_embedding

T = 1000


# ----------------------------------------------------------------------------- numpy references
def _sigmoid_via_tanh(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def _reference_alphas_cumprod(T=T, s=-3.0, e=3.0, tau=1.0):
    """Training ᾱ_t, t = 0..T−1, as a running product of directly computed per-step ratios."""
    def f(k):
        u = k / T
        num = _sigmoid_via_tanh(e / tau) - _sigmoid_via_tanh((u * (e - s) + s) / tau)
        return num / (_sigmoid_via_tanh(e / tau) - _sigmoid_via_tanh(s / tau))

    out, running = [], 1.0
    for k in range(1, T + 1):
        ratio = f(k) / f(k - 1)  # ᾱ_k / ᾱ_{k−1}; the f(u_0) normalisations cancel
        beta = min(max(1.0 - ratio, 0.0), 0.999)
        running *= 1.0 - beta
        out.append(running)
    return np.array(out, np.float64)


ABAR = _reference_alphas_cumprod()
SNR = ABAR / (1.0 - ABAR)
# DDIM times written out: 999, 989, ..., 9, then −1.
REF_TIMES = [T - 1 - 10 * i for i in range(100)] + [-1]


def _np_gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _np_sinusoidal(t, dim):
    half = dim // 2
    out = np.zeros((len(t), dim))
    for i in range(half):
        freq = math.exp(-i * math.log(10000.0) / (half - 1))
        out[:, i] = np.sin(np.asarray(t, np.float64) * freq)
        out[:, half + i] = np.cos(np.asarray(t, np.float64) * freq)
    return out


def _np_score_net(params, x, t, gelu=_np_gelu):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)

    def dense(name, v):
        return v @ p[name]["kernel"] + p[name]["bias"]

    temb_dim = p["t_in"]["kernel"].shape[0]
    h = dense("x_out", gelu(dense("x_in", np.asarray(x, np.float64))))
    temb = dense("t_out", gelu(dense("t_in", _np_sinusoidal(t, temb_dim))))
    return dense("out", gelu(h + temb))


def _gaussian_posterior_mean(params, x, t):
    """E[x0 | x_t] for x0 ~ N(m, s²) per dim, with the independently computed reference ᾱ."""
    m, s, abar_table = params
    a = abar_table[t][:, None]
    return m + jnp.sqrt(a) * s**2 / (a * s**2 + 1.0 - a) * (x - jnp.sqrt(a) * m)


def _np_ddim_gaussian(x, m, s):
    x = np.asarray(x, np.float64)
    for t, t_next in zip(REF_TIMES[:-1], REF_TIMES[1:]):
        a = ABAR[t]
        x0 = m + math.sqrt(a) * s**2 / (a * s**2 + 1 - a) * (x - math.sqrt(a) * m)
        if t_next < 0:
            return x0
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        x = math.sqrt(ABAR[t_next]) * x0 + math.sqrt(1 - ABAR[t_next]) * eps
    raise AssertionError("unreachable")


def _linear_predictor(params, x, t):
    w, b = params
    return x @ w + b + 1e-3 * t[:, None].astype(x.dtype)


# ----------------------------------------------------------------------------- schedule
class ScheduleTest(chex.TestCase):

    def test_sigmoid_schedule_alphas_cumprod_matches_reference(self):
        sched = diffusion.sigmoid_schedule()
        self.assertEqual(sched.num_timesteps, T)
        for arr in sched:
            self.assertEqual(arr.shape, (T,))
            self.assertEqual(arr.dtype, jnp.float32)
        np.testing.assert_allclose(np.asarray(sched.alphas_cumprod), ABAR, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(np.asarray(sched.snr), SNR, rtol=2e-5)
        ratios = np.concatenate([[ABAR[0]], ABAR[1:] / ABAR[:-1]])
        np.testing.assert_allclose(np.asarray(sched.betas), 1.0 - ratios, rtol=1e-5, atol=1e-8)

    def test_schedule_properties(self):
        sched = diffusion.sigmoid_schedule()
        abar = np.asarray(sched.alphas_cumprod)
        self.assertTrue(np.all(np.diff(abar) < 0))
        self.assertGreater(abar[0], 0.999)
        self.assertLess(abar[-1], 1e-6)
        # The last continuous ᾱ_T is 0, so β_T is clipped to 0.999.
        self.assertAlmostEqual(float(sched.betas[-1]), 0.999, places=6)
        # Away from the clip, the product telescopes: training ᾱ_t = f(u_{t+1}) / f(u_0).
        u = np.arange(1, T) / T
        f = lambda v: (_sigmoid_via_tanh(3.0) - _sigmoid_via_tanh(6.0 * v - 3.0))
        np.testing.assert_allclose(abar[:-1], f(u) / f(0.0), rtol=1e-5)
        # Different hyper-parameters give a different schedule.
        other = diffusion.sigmoid_schedule(num_timesteps=50, start=0.0, end=3.0, tau=0.7)
        self.assertEqual(other.num_timesteps, 50)
        np.testing.assert_allclose(
            np.asarray(other.alphas_cumprod),
            _reference_alphas_cumprod(T=50, s=0.0, e=3.0, tau=0.7), rtol=1e-6, atol=1e-10)

    @chex.variants(with_jit=True, without_jit=True)
    def test_min_snr_weight(self):
        sched = diffusion.sigmoid_schedule()
        t = jnp.arange(T)
        w = self.variant(diffusion.min_snr_weight)(sched, t)
        np.testing.assert_allclose(np.asarray(w), np.clip(SNR, 1.0, 100.0), rtol=2e-5)
        self.assertEqual(float(w[0]), 100.0)
        self.assertEqual(float(w[-1]), 1.0)
        w2 = self.variant(functools.partial(diffusion.min_snr_weight, min_weight=0.5,
                                            max_weight=5.0))(sched, t)
        np.testing.assert_allclose(np.asarray(w2), np.clip(SNR, 0.5, 5.0), rtol=2e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_sample(self):
        sched = diffusion.sigmoid_schedule()
        rng = np.random.default_rng(0)
        x0 = rng.normal(size=(6, 5)).astype(np.float32)
        noise = rng.normal(size=(6, 5)).astype(np.float32)
        t = np.array([0, 1, 250, 500, 998, 999])
        got = self.variant(diffusion.q_sample)(sched, x0, jnp.asarray(t), noise)
        a = ABAR[t][:, None]
        want = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)

    def test_sample_timesteps_and_noise(self):
        t, noise = diffusion.sample_timesteps_and_noise(jax.random.key(0), (4096, 3), T)
        self.assertEqual(t.shape, (4096,))
        self.assertEqual(noise.shape, (4096, 3))
        self.assertTrue(jnp.issubdtype(t.dtype, jnp.integer))
        self.assertGreaterEqual(int(t.min()), 0)
        self.assertLess(int(t.max()), T)
        self.assertGreater(len(np.unique(np.asarray(t))), 900)
        self.assertLess(abs(float(noise.mean())), 0.05)
        self.assertLess(abs(float(noise.std()) - 1.0), 0.05)


# ----------------------------------------------------------------------------- loss
class LossTest(chex.TestCase):

    def _batch(self, d, seed=0):
        rng = np.random.default_rng(seed)
        t = np.concatenate([[0, 9, 500, 998, 999], rng.integers(0, T, size=11)])
        x0 = rng.normal(size=(len(t), d)).astype(np.float32)
        noise = rng.normal(size=(len(t), d)).astype(np.float32)
        return x0, t, noise

    @chex.variants(with_jit=True, without_jit=True)
    def test_loss_linear_predictor(self):
        sched = diffusion.sigmoid_schedule()
        d = 4
        x0, t, noise = self._batch(d)
        rng = np.random.default_rng(1)
        w = (0.3 * rng.normal(size=(d, d))).astype(np.float32)
        b = (0.1 * rng.normal(size=(d,))).astype(np.float32)

        a = ABAR[t][:, None]
        xt = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
        pred = xt @ w + b + 1e-3 * t[:, None]
        per_ex = np.clip(SNR[t], 1, 100) * ((pred - x0) ** 2).sum(-1)

        args = ((w, b), x0, jnp.asarray(t), noise, sched)
        got_per = self.variant(functools.partial(diffusion.diffusion_loss_per_example,
                                                 _linear_predictor))(*args)
        got = self.variant(functools.partial(diffusion.diffusion_loss, _linear_predictor))(*args)
        self.assertEqual(got_per.shape, (len(t),))
        self.assertEqual(got.shape, ())
        np.testing.assert_allclose(np.asarray(got_per), per_ex, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(float(got), per_ex.mean(), rtol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_loss_score_net(self):
        sched = diffusion.sigmoid_schedule()
        d = 8
        net = make_score_net(d, width=32, time_embed_dim=16)
        params = net.init(jax.random.key(0))
        x0, t, noise = self._batch(d, seed=2)

        a = ABAR[t][:, None]
        xt = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
        pred = _np_score_net(params, xt, t)
        want = (np.clip(SNR[t], 1, 100) * ((pred - x0) ** 2).sum(-1)).mean()

        got = self.variant(functools.partial(diffusion.diffusion_loss, net.apply))(
            params, x0, jnp.asarray(t), noise, sched)
        np.testing.assert_allclose(float(got), want, rtol=1e-4)

    def test_loss_gradients(self):
        sched = diffusion.sigmoid_schedule()
        d = 8
        net = make_score_net(d, width=32, time_embed_dim=16)
        params = net.init(jax.random.key(0))
        x0, t, noise = self._batch(d, seed=3)
        loss = jax.jit(functools.partial(diffusion.diffusion_loss, net.apply))
        g_params, g_x0 = jax.grad(loss, argnums=(0, 1))(params, x0, jnp.asarray(t), noise, sched)
        for leaf in jax.tree.leaves(g_params):
            self.assertTrue(bool(jnp.all(jnp.isfinite(leaf))))
            self.assertGreater(float(jnp.abs(leaf).sum()), 0.0)
        self.assertEqual(g_x0.shape, x0.shape)
        self.assertTrue(bool(jnp.all(jnp.isfinite(g_x0))))
        self.assertGreater(float(jnp.abs(g_x0).sum()), 0.0)


# ----------------------------------------------------------------------------- DDIM
class DDIMTest(chex.TestCase):

    def test_ddim_timesteps(self):
        pairs = diffusion.ddim_timesteps(1000, 100)
        self.assertEqual(pairs.shape, (100, 2))
        self.assertTrue(np.issubdtype(pairs.dtype, np.integer))
        self.assertEqual(tuple(pairs[0]), (999, 989))
        self.assertEqual(tuple(pairs[1]), (989, 979))
        self.assertEqual(tuple(pairs[-1]), (9, -1))
        np.testing.assert_array_equal(pairs[:, 0] - pairs[:, 1], 10)
        np.testing.assert_array_equal(pairs[1:, 0], pairs[:-1, 1])
        np.testing.assert_array_equal(pairs.ravel(), np.repeat(REF_TIMES, 2)[1:-1])
        self.assertEqual(diffusion.ddim_timesteps().tolist(), pairs.tolist())
        small = diffusion.ddim_timesteps(10, 5)
        self.assertEqual(small.tolist(), [[9, 7], [7, 5], [5, 3], [3, 1], [1, -1]])

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddim_golden_gaussian(self):
        """DDIM with the exact posterior mean of Gaussian data maps N(0, I) to ≈ N(m, s²)."""
        sched = diffusion.sigmoid_schedule()
        m = np.array([1.5, -0.5])
        s = np.array([0.5, 2.0])
        params = (jnp.asarray(m, jnp.float32), jnp.asarray(s, jnp.float32),
                  jnp.asarray(ABAR, jnp.float32))
        x_T = jax.random.normal(jax.random.key(42), (20000, 2))
        # Whitened, so the statistics below carry no sampling noise (the map x_T -> x0 is affine).
        x_T = (x_T - x_T.mean(0)) / x_T.std(0)
        sample = self.variant(functools.partial(diffusion.ddim_sample, _gaussian_posterior_mean))
        x0 = np.asarray(sample(params, x_T, sched))
        self.assertEqual(x0.shape, (20000, 2))
        # η = 0 DDIM with 100 steps shrinks the std by about 2 % (discretisation); the mean is exact.
        np.testing.assert_allclose((x0.mean(0) - m) / s, 0.0, atol=0.005)
        np.testing.assert_allclose(x0.std(0), s, rtol=0.025)
        # Sample by sample against a float64 loop over the written-out time pairs.
        np.testing.assert_allclose(x0, _np_ddim_gaussian(x_T, m, s), rtol=1e-4, atol=1e-4)

    def test_ddim_golden_is_affine_and_differentiable(self):
        """For Gaussian data the sampler is affine in x_T; its slope is the product of step gains."""
        sched = diffusion.sigmoid_schedule()
        m = np.array([1.5, -0.5])
        s = np.array([0.5, 2.0])
        params = (jnp.asarray(m, jnp.float32), jnp.asarray(s, jnp.float32),
                  jnp.asarray(ABAR, jnp.float32))
        sample = jax.jit(functools.partial(diffusion.ddim_sample, _gaussian_posterior_mean))
        x_T = jnp.zeros((1, 2))
        grad = jax.grad(lambda x: sample(params, x, sched).sum())(x_T)
        slope = _np_ddim_gaussian(np.ones((1, 2)), m, s) - _np_ddim_gaussian(np.zeros((1, 2)), m, s)
        np.testing.assert_allclose(np.asarray(grad), slope, rtol=1e-4)
        self.assertTrue(np.all(np.abs(slope / s - 1.0) < 0.03))

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddim_score_net_shapes_and_grad(self):
        sched = diffusion.sigmoid_schedule()
        net = make_score_net(6, width=32, time_embed_dim=16)
        params = net.init(jax.random.key(1))
        x_T = jax.random.normal(jax.random.key(2), (3, 6))
        sample = self.variant(functools.partial(diffusion.ddim_sample, net.apply, num_steps=10))
        x0 = sample(params, x_T, sched)
        self.assertEqual(x0.shape, (3, 6))
        self.assertTrue(bool(jnp.all(jnp.isfinite(x0))))
        # Deterministic given x_T.
        np.testing.assert_array_equal(np.asarray(x0), np.asarray(sample(params, x_T, sched)))
        gp, g = jax.grad(lambda p, x: jnp.sum(sample(p, x, sched) ** 2), argnums=(0, 1))(
            params, x_T)
        self.assertTrue(bool(jnp.all(jnp.isfinite(g))))
        self.assertGreater(float(jnp.abs(g).sum()), 0.0)
        self.assertTrue(all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(gp)))

    def test_ddim_schedule_closed_over(self):
        sched = diffusion.sigmoid_schedule(num_timesteps=100)
        f = jax.jit(lambda x: diffusion.ddim_sample(
            lambda p, x, t: 0.5 * x, None, x, sched, num_steps=10))
        self.assertEqual(f(jnp.ones((2, 3))).shape, (2, 3))


# ----------------------------------------------------------------------------- score network
class ScoreNetTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_sinusoidal_embedding(self):
        t = np.array([0, 1, 2, 17, 500, 998, 999])
        for dim in (512, 16):
            got = self.variant(functools.partial(sinusoidal_embedding, dim=dim))(jnp.asarray(t))
            self.assertEqual(got.shape, (len(t), dim))
            np.testing.assert_allclose(np.asarray(got), _np_sinusoidal(t, dim), atol=2e-4)
        emb = np.asarray(sinusoidal_embedding(jnp.array([0, 999])))
        np.testing.assert_array_equal(emb[0], np.r_[np.zeros(256), np.ones(256)])

    @parameterized.parameters(32, 128)
    def test_apply_shapes_paper_size(self, d):
        net = make_score_net(d)
        params = jax.jit(net.init)(jax.random.key(0))
        p = params
        self.assertEqual(p["x_in"]["kernel"].shape, (d, 512))
        self.assertEqual(p["x_out"]["kernel"].shape, (512, 512))
        self.assertEqual(p["t_in"]["kernel"].shape, (512, 512))
        self.assertEqual(p["t_out"]["kernel"].shape, (512, 512))
        self.assertEqual(p["out"]["kernel"].shape, (512, d))
        out = net.apply(params, jnp.ones((5, d)), jnp.arange(5, dtype=jnp.int32))
        self.assertEqual(out.shape, (5, d))
        self.assertTrue(bool(jnp.all(jnp.isfinite(out))))

    @chex.variants(with_jit=True, without_jit=True)
    def test_forward_matches_numpy_exact_gelu(self):
        d = 12
        net = make_score_net(d, width=64, time_embed_dim=32)
        params = net.init(jax.random.key(3))
        # Scale the parameters up so the GELUs see O(1)–O(3) inputs where erf and tanh forms differ.
        params = jax.tree.map(lambda a: 3.0 * a, params)
        rng = np.random.default_rng(4)
        x = rng.normal(size=(9, d)).astype(np.float32) * 2.0
        t = rng.integers(0, T, size=9)
        got = np.asarray(self.variant(net.apply)(params, x, jnp.asarray(t)))
        want = _np_score_net(params, x, t)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        # The test discriminates: the tanh approximation is far outside that tolerance.
        approx = _np_score_net(params, x, t, gelu=_np_gelu_tanh)
        self.assertGreater(np.abs(approx - want).max(), 2e-3)

    def test_module_fields(self):
        mod = ScoreNet(dim=4)
        self.assertEqual((mod.width, mod.time_embed_dim), (512, 512))
