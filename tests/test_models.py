"""Shapes of every network at the paper's sizes, and the stacked-view machinery."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idmvae_jax.core.similarity import cosine_scores
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.models.critic import make_critic
from idmvae_jax.models.decoders import make_decoder
from idmvae_jax.models.encoders import make_encoder
from idmvae_jax.models.multimodal import group_name, make_model
from idmvae_jax.models.score_net import make_score_net
from idmvae_jax.models.specs import ModelConfig, ViewSpec, view_groups

PAPER_IMAGE = ViewSpec("image", (64, 64, 3))
CAPTION = ViewSpec("caption", (32,), likelihood="categorical", likelihood_scale=None, vocab_size=1590,
                   hidden=(32, 64, 128), embed_dim=128, llik_scaling=5.0)
OMICS = ViewSpec("vector", (100,), likelihood_scale=None, hidden=(128, 64))
SD_LATENT = ViewSpec("latent", (32, 32, 4), likelihood_scale=0.01, channels=(64, 128, 256, 512, 1024),
                     llik_scaling=1 / 128)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: a.shape, tree)


@pytest.mark.parametrize(
    "spec, w_dim, z_dim",
    [(PAPER_IMAGE, 128, 32), (CAPTION, 256, 256), (OMICS, 32, 16), (SD_LATENT, 256, 256)],
    ids=["image64", "caption", "vector", "sd_latent"],
)
def test_encoder_and_decoder_shapes(spec, w_dim, z_dim):
    enc = make_encoder(spec, w_dim, z_dim)
    dec = make_decoder(spec, w_dim + z_dim)
    pe = jax.eval_shape(enc.init, jax.random.key(0))
    pd = jax.eval_shape(dec.init, jax.random.key(0))
    in_shape = (3, *spec.shape, spec.vocab_size) if spec.kind == "caption" else (3, *spec.shape)
    x = jax.ShapeDtypeStruct(in_shape, jnp.float32)
    assert _shapes(jax.eval_shape(enc.apply, pe, x)) == ((3, w_dim), (3, w_dim), (3, z_dim), (3, z_dim))
    assert _shapes(jax.eval_shape(enc.apply_w, pe, x)) == ((3, w_dim), (3, w_dim))
    assert _shapes(jax.eval_shape(enc.apply_z, pe, x)) == ((3, z_dim), (3, z_dim))
    out = jax.eval_shape(dec.apply, pd, jax.ShapeDtypeStruct((3, w_dim + z_dim), jnp.float32))
    key = "logits" if spec.likelihood == "categorical" else "loc"
    assert out[key].shape == in_shape
    assert ("scale" in out) == (spec.likelihood_scale is None and spec.likelihood != "categorical")


def test_paper_polymnist_quadrant_architecture():
    """SPEC 3: branch 64->512 channels at 8x8 before the heads; decoder projects to 512*8*8."""
    model = make_model(ModelConfig(views=(PAPER_IMAGE,) * 5, diffusion_prior=True))
    params = jax.eval_shape(model.init, jax.random.key(0))
    enc = params["encoders"][group_name(range(5))]
    assert enc["branch_z"]["mu"]["kernel"].shape == (5, 512 * 8 * 8, 32)
    assert enc["branch_w"]["mu"]["kernel"].shape == (5, 512 * 8 * 8, 128)
    assert enc["branch_z"]["stem"]["kernel"].shape == (5, 3, 3, 3, 64)
    assert "shortcut" not in enc["branch_z"]["block_0"] and "shortcut" in enc["branch_z"]["block_1"]
    assert enc["branch_z"]["block_1"]["shortcut"]["kernel"].shape == (5, 1, 1, 64, 128)
    dec = params["decoders"][group_name(range(5))]["body"]
    assert dec["project"]["kernel"].shape == (5, 160, 512 * 8 * 8)
    assert dec["out"]["kernel"].shape == (5, 3, 3, 64, 3)
    assert params["aux_prior_raw"].shape == (5, 128)
    assert params["score_w"]["out"]["kernel"].shape == (5, 512, 128)
    assert params["score_z"]["out"]["kernel"].shape == (512, 32)
    # The exact parameter count from SPEC §3's layer list (every conv and dense with a bias but the
    # 1x1 shortcuts), the score networks of SPEC §2.4 (width and time embedding 512): 122,798,255,
    # the reference model's 122.8 M.
    def conv(k, fin, fout):
        return k * k * fin * fout + fout

    def dense(fin, fout):
        return fin * fout + fout

    def res_block(fin, fout):
        hidden = min(fin, fout)
        return conv(3, fin, hidden) + conv(3, hidden, fout) + (fin * fout if fin != fout else 0)

    def branch(d):  # stem, 4 ResBlocks, heads for mu and the raw scale
        return (conv(3, 3, 64) + res_block(64, 64) + res_block(64, 128) + res_block(128, 256)
                + res_block(256, 512) + 2 * dense(512 * 8 * 8, d))

    def score_net(d, width=512, time_dim=512):
        return dense(d, width) + dense(width, width) + dense(time_dim, width) + dense(width, width) + dense(width, d)

    encoder = branch(128) + branch(32)
    decoder = (dense(160, 512 * 8 * 8) + res_block(512, 256) + res_block(256, 128) + res_block(128, 64)
               + res_block(64, 64) + conv(3, 64, 3))
    count = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))  # noqa: E731
    assert count(params["encoders"]) == 5 * encoder == 78_144_960
    assert count(params["decoders"]) == 5 * decoder == 39_232_975
    assert count(params["score_w"]) == 5 * score_net(128) and count(params["score_z"]) == score_net(32)
    assert count(params) == 5 * (encoder + decoder + score_net(128) + 128) + score_net(32) == 122_798_255


def test_score_net_and_critic_shapes():
    net = make_score_net(128)
    p = jax.eval_shape(net.init, jax.random.key(0))
    out = jax.eval_shape(net.apply, p, jax.ShapeDtypeStruct((7, 128), jnp.float32), jax.ShapeDtypeStruct((7,), jnp.int32))
    assert out.shape == (7, 128)
    critic = make_critic("projection", 32)
    pc = critic.init(jax.random.key(0))
    scores = critic.apply(pc, jnp.ones((4, 32)), jnp.ones((6, 32)))
    assert scores.shape == (4, 6)
    np.testing.assert_allclose(scores, 1.0, rtol=1e-5)  # identical inputs: cosine 1
    assert make_critic("cosine", 32).init(jax.random.key(0)) == {}


def test_cosine_scores_matches_numpy():
    r = np.random.RandomState(0)
    a, b = r.randn(5, 3), r.randn(4, 3)
    ref = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(cosine_scores(jnp.asarray(a), jnp.asarray(b)), ref, rtol=1e-5, atol=1e-6)


def test_centered_critic_matches_numpy_and_ignores_a_common_shift():
    r = np.random.RandomState(1)
    a, b = r.randn(6, 3), r.randn(5, 3)
    ca, cb = a - a.mean(0), b - b.mean(0)
    ref = (ca / np.linalg.norm(ca, axis=1, keepdims=True)) @ (cb / np.linalg.norm(cb, axis=1, keepdims=True)).T
    critic = make_critic("centered", 3)
    assert critic.init(jax.random.key(0)) == {}
    np.testing.assert_allclose(critic.apply({}, jnp.asarray(a), jnp.asarray(b)), ref, rtol=1e-5, atol=1e-6)
    shift = np.array([50.0, -20.0, 30.0])  # a large common component: the plain cosine goes to ~1
    np.testing.assert_allclose(critic.apply({}, jnp.asarray(a + shift), jnp.asarray(b + shift)), ref, rtol=1e-4, atol=1e-5)
    assert np.min(np.asarray(cosine_scores(jnp.asarray(a + shift), jnp.asarray(b + shift)))) > 0.9


def test_view_groups_stack_identical_specs():
    small = ViewSpec("image", (16, 16, 3), channels=(4, 8))
    vec = ViewSpec("vector", (5,), hidden=(8,))
    groups = view_groups((small, vec, small, vec, small))
    assert [idx for _, idx in groups] == [(0, 2, 4), (1, 3)]


@pytest.fixture(scope="module")
def mixed_model():
    small = ViewSpec("image", (16, 16, 3), channels=(4, 8))
    vec = ViewSpec("vector", (5,), hidden=(8,), likelihood_scale=None)
    cfg = ModelConfig(views=(small, vec, small), z_dim=3, w_dim=4)
    r = np.random.RandomState(0)
    xs = [r.randint(0, 256, (6, 16, 16, 3)).astype(np.uint8), r.randn(6, 5).astype(np.float32),
          r.randint(0, 256, (6, 16, 16, 3)).astype(np.uint8)]
    return cfg, xs


def test_vmapped_views_equal_looped_views_and_single_view_apply(mixed_model):
    """Stacked vmapped apply == a Python loop over views == each view's own encoder on its slice."""
    cfg, xs = mixed_model
    m_vmap = make_model(cfg)
    m_loop = make_model(ModelConfig(**{**cfg.__dict__, "vmap_views": False}))
    params = jax.jit(m_vmap.init)(jax.random.key(1))
    xp = network_inputs(cfg.views, xs)
    post_v, post_l = jax.jit(m_vmap.encode)(params, xp), jax.jit(m_loop.encode)(params, xp)
    for a, b in zip(post_v, post_l):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # view 2 is the second member of the image group: its own encoder on its own data
    enc = make_encoder(cfg.views[2], cfg.w_dim, cfg.z_dim)
    p2 = jax.tree_util.tree_map(lambda a: a[1], params["encoders"][group_name((0, 2))])
    mu_w, _, mu_z, _ = jax.jit(enc.apply)(p2, xp[2])
    np.testing.assert_allclose(post_v.mu_z[2], mu_z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post_v.mu_w[2], mu_w, rtol=1e-5, atol=1e-6)
    u = jnp.concatenate([post_v.mu_w, post_v.mu_z], -1)[:, None]
    for a, b in zip(jax.jit(m_vmap.decode_mean)(params, u), jax.jit(m_loop.decode_mean)(params, u)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        jax.jit(m_vmap.encode_branch_means, static_argnums=2)(params, xp, "z"), post_v.mu_z, rtol=1e-5, atol=1e-6
    )


def test_preprocess_and_invalid_specs():
    model = make_model(ModelConfig(views=(ViewSpec("image", (8, 8, 1), channels=(2, 2)),) * 2))
    x = network_inputs(model.cfg.views, [np.full((1, 8, 8, 1), 255, np.uint8)] * 2)[0]
    assert x.dtype == jnp.float32 and float(x.max()) == 1.0
    with pytest.raises(ValueError, match="divisible"):
        ViewSpec("image", (30, 30, 3), channels=(4, 8, 16))
    with pytest.raises(ValueError, match="at least 2 views"):
        ModelConfig(views=(ViewSpec("vector", (3,)),))
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"views": [{"kind": "vector", "shape": (3,)}] * 2, "zdim": 3})


@pytest.mark.parametrize("vmap_views", [pytest.param(True, marks=pytest.mark.slow), pytest.param(False, marks=pytest.mark.slow)],
                         ids=["vmapped", "looped"])
def test_remat_keeps_parameters_and_gradients(mixed_model, vmap_views, fast_compile):
    """model.remat recomputes the ResBlocks in the backward pass: same parameter tree, same loss and
    gradients as without it (mixed image/vector views, both view paths; slow set: in CI the looped
    image case runs in test_remat_lowers_the_compiled_peak_memory, and
    test_vmapped_views_equal_looped_views_and_single_view_apply ties the vmapped path to it)."""
    from idmvae_jax.training.loss import loss_fn
    from idmvae_jax.config import IDMVAEConfig

    model_cfg, xs = mixed_model
    cfgs = [IDMVAEConfig(model=ModelConfig(**{**model_cfg.__dict__, "vmap_views": vmap_views, "remat": r}))
            for r in (False, True)]
    params = [make_model(c.model).init(jax.random.key(3)) for c in cfgs]
    assert _shapes(params[0]) == _shapes(params[1])
    jax.tree_util.tree_map(np.testing.assert_array_equal, params[0], params[1])
    batch = {"x": xs}
    grads = [jax.jit(jax.value_and_grad(lambda p, c=c: loss_fn(p, batch, jax.random.key(5), c)[0]))(params[0])
             for c in cfgs]
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads[0][1], grads[1][1])


@pytest.mark.slow  # a memory property, as the benchmarks measure it; CI: test_remat_keeps_parameters_and_gradients
def test_remat_lowers_the_compiled_peak_memory():
    """XLA:CPU drops jax.checkpoint's barriers (docs/benchmarks.md); the ResBlock remat must still
    shrink the temporaries of a train-step gradient."""
    from idmvae_jax.training.loss import loss_fn
    from idmvae_jax.config import IDMVAEConfig

    spec = ViewSpec("image", (32, 32, 3), channels=(8, 16))
    xs = [np.random.RandomState(m).randint(0, 256, (16, 32, 32, 3)).astype(np.uint8) for m in range(2)]
    temps, grads, params = [], [], None
    for remat in (False, True):
        cfg = IDMVAEConfig(model=ModelConfig(views=(spec,) * 2, z_dim=4, w_dim=4, vmap_views=False, remat=remat))
        params = make_model(cfg.model).init(jax.random.key(0)) if params is None else params
        grad = jax.jit(jax.value_and_grad(lambda p: loss_fn(p, {"x": xs}, jax.random.key(1), cfg)[0]))
        compiled = grad.lower(params).compile()
        temps.append(compiled.memory_analysis().temp_size_in_bytes)
        grads.append(compiled(params))
    assert temps[1] < 0.8 * temps[0], temps
    # ... and computes the same loss and gradients (the looped-views path, optimised as in training)
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads[0][1], grads[1][1])


def test_a_registered_learnable_critic_gets_its_own_parameters_and_gradients(request):
    """register_critic: a bilinear critic s_pq = a_p^T A b_q is one factory and one call; the model
    gives it params['critic'] (z shared, w stacked over the views) and the objective trains it."""
    import functools

    from idmvae_jax import objective
    from idmvae_jax.config import IDMVAEConfig, LossConfig
    from idmvae_jax.models import critic as critic_module
    from idmvae_jax.models.critic import critic_names, register_critic
    from idmvae_jax.models.network import Network
    from idmvae_jax.training.loss import loss_fn

    def bilinear(dim, width, out):
        return Network(lambda key: {"a": jax.random.normal(key, (dim, dim)) / dim},
                       lambda params, a, b: a @ params["a"] @ b.T)

    register_critic("bilinear_test", bilinear)
    request.addfinalizer(lambda: critic_module._CRITICS.pop("bilinear_test"))
    assert "bilinear_test" in critic_names()
    vec = ViewSpec("vector", (5,), likelihood_scale=None, hidden=(8,))
    cfg = IDMVAEConfig(ModelConfig(views=(vec,) * 3, z_dim=3, w_dim=4, critic="bilinear_test"),
                       LossConfig(cross_mi_weight=1.0, genaug_weight=1.0))
    model = make_model(cfg.model)
    params = jax.jit(model.init)(jax.random.key(0))
    assert _shapes(params["critic"]) == {"z": {"a": (3, 3)}, "w": {"a": (3, 4, 4)}}
    xs = [np.random.RandomState(m).randn(6, 5).astype(np.float32) for m in range(3)]
    (_, aux), grads = jax.jit(jax.value_and_grad(functools.partial(loss_fn, cfg=cfg), has_aux=True))(
        params, {"x": xs}, jax.random.key(1))
    mu_z = model.encode(params, network_inputs(cfg.model.views, xs)).mu_z
    a_z = np.asarray(params["critic"]["z"]["a"], np.float64)
    np.testing.assert_allclose(aux["cross_mi"], objective.cross_view_infonce_loss(
        mu_z, 1.0, lambda p, q: p @ jnp.asarray(a_z, jnp.float32) @ q.T), rtol=1e-5)
    assert np.all(np.abs(np.asarray(grads["critic"]["z"]["a"])) > 0)
    assert all(np.max(np.abs(np.asarray(g))) > 0 for g in grads["critic"]["w"]["a"])  # every view's critic
    with pytest.raises(ValueError, match="register_critic"):
        make_critic("no_such_critic", 3)


def _np_conv_same(x, kernel, bias=None):
    """float64 'SAME' convolution (cross-correlation, zero padding) of (H, W, I) with (k, k, I, O)."""
    k = kernel.shape[0]
    pad = k // 2
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:2] + (kernel.shape[-1],))
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = np.einsum("abi,abio->o", xp[i:i + k, j:j + k], kernel)
    return out if bias is None else out + bias


def test_resblock_pool_and_upsample_by_value():
    """The architecture constants by value, in float64 numpy: a ResBlock is shortcut(x) +
    0.1 * conv3x3(lrelu_0.2(conv3x3(lrelu_0.2(x)))) with a bias-free 1x1 shortcut when the width
    changes; the encoder's pooling is a 3x3/2 average that counts the zero padding; the decoder's
    upsampling repeats each pixel 2x2."""
    from idmvae_jax.models import blocks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
    block = blocks.ResBlock(3)
    params = block.init(jax.random.key(0), x)["params"]
    params = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)  # biases too
    got = np.asarray(block.apply({"params": params}, x))[0]

    lrelu = lambda a: np.where(a > 0, a, 0.2 * a)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = _np_conv_same(lrelu(x[0].astype(np.float64)), p["conv_0"]["kernel"], p["conv_0"]["bias"])
    h = _np_conv_same(lrelu(h), p["conv_1"]["kernel"], p["conv_1"]["bias"])
    want = x[0].astype(np.float64) @ p["shortcut"]["kernel"][0, 0] + 0.1 * h
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert p["conv_0"]["kernel"].shape == (3, 3, 2, 2)  # hidden width min(fin, fout)

    image = rng.normal(size=(1, 4, 4, 1))
    pooled = np.asarray(blocks.avg_pool_3s2(jnp.asarray(image, jnp.float32)))[0, :, :, 0]
    padded = np.pad(image[0, :, :, 0], 1)
    want_pool = np.array([[padded[2 * i:2 * i + 3, 2 * j:2 * j + 3].sum() / 9.0 for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(pooled, want_pool, rtol=1e-5, atol=1e-6)  # /9 even at the border
    up = np.asarray(blocks.upsample_nearest_2x(jnp.asarray(image, jnp.float32)))[0, :, :, 0]
    np.testing.assert_array_equal(up, np.kron(image[0, :, :, 0], np.ones((2, 2))).astype(np.float32))


def test_caption_norm_is_a_per_example_group_norm_by_value():
    """blocks.example_norm in float64 numpy: per example, mean and variance over the positions and
    the channels of each of gcd(32, C) groups, (x - mean) / sqrt(var + 1e-5) * gamma + beta."""
    from idmvae_jax.models import blocks

    assert [blocks.norm_groups(c) for c in (4, 32, 48, 64, 128)] == [4, 32, 16, 32, 32]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 5, 64)).astype(np.float32) * 3.0 + 1.0
    norm = blocks.example_norm(64)
    params = {"scale": rng.normal(size=64).astype(np.float32), "bias": rng.normal(size=64).astype(np.float32)}
    got = np.asarray(norm.apply({"params": params}, x))
    g = x.astype(np.float64).reshape(3, 2, 5, 32, 2)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    want = ((g - mean) / np.sqrt(var + 1e-5)).reshape(x.shape) * params["scale"] + params["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

