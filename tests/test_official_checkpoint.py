"""The authors' checkpoints in our layout (`idmvae_jax.tools.official_checkpoint`), without torch.

- The paper model's state-dict names and shapes (tests/data/official_manifest_*.json, listed from
  their model as built by their code at commit 359c7ba: facts about the file format) convert to
  exactly our parameter tree, every other key is reported with a reason, and the Adam parameter
  order derived from the names is the one their optimizer holds.
- Each layout transform is checked against an independent numpy computation of the layer in
  their convention (NCHW, OIHW kernels, (out, in) linear weights, (C, H, W) flattening): one
  convolution, one linear layer, and a whole converted encoder and decoder (different weights per
  view) against a numpy forward pass of their Enc / Dec.
- Their Adam state converts so that the next update is the one torch's Adam would make.
- A converted tiny checkpoint written as a torch.save file restores, evaluates and resumes training.
"""
import json
import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idmvae_jax import build, convert_official, errors
from idmvae_jax.config_defaults import load_config
from idmvae_jax.data.preprocess import network_inputs
from idmvae_jax.evaluation.torch_pickle_writer import save_torch_state_dict
from idmvae_jax.models.multimodal import make_model
from idmvae_jax.tools import official_checkpoint as oc

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(__file__).parent / "data"


def _cfg(variant):
    config = load_config(f"configs/polymnist_quadrant.py:{variant}")
    return config, build.build_idmvae_config(config, oc.view_infos(config))


def _random_params(cfg, seed=0):
    """Parameters with every leaf random (biases and the auxiliary prior too), so a transposed or
    misplaced tensor changes the numbers."""
    params = jax.eval_shape(make_model(cfg.model).init, jax.random.key(seed))
    rng = np.random.RandomState(seed)
    return jax.tree.map(lambda a: (0.3 * rng.randn(*a.shape)).astype(np.float32), params)


# =============================================================================== the manifest
# The MMVAE+ manifest (the diffusion one without the diffusion priors) in the slow set: CI time.
@pytest.mark.parametrize("variant,manifest", [
    ("paper,diffusion", "official_manifest_diffusion.json"),
    pytest.param("paper,mmvaeplus", "official_manifest_mmvaeplus.json", marks=pytest.mark.slow)])
def test_paper_state_dict_names_and_shapes_convert_to_exactly_our_tree(variant, manifest):
    listing = json.loads((DATA / manifest).read_text())
    _, cfg = _cfg(variant)
    mc = cfg.model
    _, sources = oc.model_layout(mc)
    shapes = {name: tuple(shape) for name, shape, _ in listing["state_dict"]}
    # every leaf of ours is built from tensors of exactly the shapes our transform expects
    for path, src in sources.items():
        for key in src.keys:
            assert shapes[key] == oc.their_shape(mc, path, src), (path, key)
    # ... and converts to our tree (zeros stand in for the values: np.zeros does not touch memory)
    state_dict = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    if mc.diffusion_prior:  # the schedule buffers must hold the config's schedule (checked on conversion)
        from idmvae_jax.objective import diffusion

        schedule = diffusion.schedule_from_config(cfg.diffusion)
        for name in state_dict:
            if name.endswith((".diffusion.betas", ".diffusion.alphas_cumprod")):
                state_dict[name] = np.asarray(getattr(schedule, name.rsplit(".", 1)[1]))
    conversion = oc.convert_state_dict(state_dict, cfg)
    ours = jax.eval_shape(make_model(mc).init, jax.random.key(0))
    assert jax.tree.structure(conversion.params) == jax.tree.structure(ours)
    assert jax.tree.map(lambda a: a.shape, conversion.params) == jax.tree.map(lambda a: a.shape, ours)
    # every key is used exactly once or reported with its reason
    used = [k for keys in conversion.mapped.values() for k in keys]
    assert len(used) == len(set(used))
    assert set(used) | set(conversion.unmapped) == set(shapes) and not set(used) & set(conversion.unmapped)
    assert all(conversion.unmapped.values()), [k for k, r in conversion.unmapped.items() if not r]
    assert any(k.endswith("conv_img_scale.weight") for k in conversion.unmapped)
    # the Adam parameter order from the names is their optimizer's; the export writes their order
    trainable = [name for name, _, requires_grad in listing["parameters"] if requires_grad]
    exported = [name for name in shapes if not name.startswith("pretrained_vae.") and "conv_img_scale" not in name
                and not re.search(r"\.diffusion\.(?!model\.)", name)]
    assert sorted(exported, key=oc._registration_rank) == exported
    assert oc.trainable_keys(shapes) == trainable
    assert listing["optimizer_param_count"] == len(trainable)


def test_a_checkpoint_of_another_model_is_refused_with_the_reason():
    _, cfg = _cfg("tiny,diffusion")
    _, plain = _cfg("tiny")
    state_dict = oc.to_state_dict(_random_params(cfg), cfg)
    with pytest.raises(oc.OfficialCheckpointError, match="use a config variant with them"):
        oc.convert_state_dict(state_dict, plain)
    bad = dict(state_dict, **{"vaes.0.enc.fc_mu_z.weight": np.zeros((3, 5), np.float32)})
    with pytest.raises(oc.OfficialCheckpointError, match="vaes.0.enc.fc_mu_z.weight has shape"):
        oc.convert_state_dict(bad, cfg)
    shifted = dict(state_dict, **{"pz_params.1": np.ones((1, cfg.model.z_dim), np.float32)})
    with pytest.raises(oc.OfficialCheckpointError, match="prior_raw_scale"):
        oc.convert_state_dict(shifted, cfg)


def test_conversion_inverts_the_export_exactly():
    _, cfg = _cfg("tiny,diffusion")
    params = _random_params(cfg)
    back = oc.convert_state_dict(oc.to_state_dict(params, cfg), cfg).params
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), back)


# =============================================================================== layer by layer
def np_conv_nchw(x, weight, bias, padding=1):
    """Cross-correlation as torch.nn.Conv2d: x (B, I, H, W), weight (O, I, kh, kw), stride 1."""
    kh, kw = weight.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h, w = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.zeros((x.shape[0], weight.shape[0], h, w))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bihw,oi->bohw", xp[:, :, i:i + h, j:j + w], weight[:, :, i, j])
    return out if bias is None else out + bias[None, :, None, None]


def test_convolution_kernel_oihw_to_hwio():
    rng = np.random.RandomState(1)
    x, weight, bias = rng.randn(2, 3, 6, 5), rng.randn(4, 3, 3, 3), rng.randn(4)
    conv = nn.Conv(4, (3, 3), padding=1)
    ours = conv.apply({"params": {"kernel": oc.to_ours(weight, "conv"), "bias": bias}}, x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), np_conv_nchw(x, weight, bias), rtol=1e-5,
                               atol=1e-5)


def test_linear_out_in_to_in_out():
    rng = np.random.RandomState(2)
    x, weight, bias = rng.randn(3, 7), rng.randn(5, 7), rng.randn(5)
    ours = nn.Dense(5).apply({"params": {"kernel": oc.to_ours(weight, "dense"), "bias": bias}}, x)
    np.testing.assert_allclose(ours, x @ weight.T + bias, rtol=1e-5, atol=1e-5)


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def _np_resblock(sd, prefix, x):
    """Their ResnetBlock: shortcut (1x1 conv without bias when fin != fout) + 0.1 * conv(lrelu(conv(lrelu x)))."""
    dx = np_conv_nchw(_lrelu(x), sd[prefix + "conv_0.weight"], sd[prefix + "conv_0.bias"])
    dx = np_conv_nchw(_lrelu(dx), sd[prefix + "conv_1.weight"], sd[prefix + "conv_1.bias"])
    shortcut = x
    if prefix + "conv_s.weight" in sd:
        shortcut = np_conv_nchw(x, sd[prefix + "conv_s.weight"], None, padding=0)
    return shortcut + 0.1 * dx


def _np_avgpool(x):
    """AvgPool2d(3, stride 2, padding 1), zero padding counted (torch's default)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2] // 2, x.shape[3] // 2
    return sum(xp[:, :, i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3) for j in range(3)) / 9.0


def np_encoder(sd, m, x, levels, branch):
    """Their Enc for view m, one branch: x (B, 3, H, W) -> (mean, softplus(raw) + 1e-8)."""
    p = f"vaes.{m}.enc."
    h = np_conv_nchw(x, sd[f"{p}conv_img_{branch}.weight"], sd[f"{p}conv_img_{branch}.bias"])
    h = _np_resblock(sd, f"{p}resnet_{branch}.0.", h)
    for i in range(1, levels + 1):
        h = _np_resblock(sd, f"{p}resnet_{branch}.{2 * i}.", _np_avgpool(h))
    flat = h.reshape(h.shape[0], -1)  # torch's view(B, C*H*W) of an NCHW map
    mean = flat @ sd[f"{p}fc_mu_{branch}.weight"].T + sd[f"{p}fc_mu_{branch}.bias"]
    raw = flat @ sd[f"{p}fc_lv_{branch}.weight"].T + sd[f"{p}fc_lv_{branch}.bias"]
    return mean, np.logaddexp(0.0, raw) + 1e-8


def np_decoder(sd, m, u, channels, size):
    """Their Dec for view m: u (N, W+Z) -> sigmoid mean (N, 3, H, W)."""
    p, levels = f"vaes.{m}.dec.", len(channels) - 1
    s = size // 2 ** levels
    h = (u @ sd[p + "fc.weight"].T + sd[p + "fc.bias"]).reshape(-1, channels[-1], s, s)
    for k in range(levels):
        h = _np_resblock(sd, f"{p}resnet.{2 * k}.", h)
        h = h.repeat(2, axis=2).repeat(2, axis=3)  # nn.Upsample(scale_factor=2), nearest
    h = _np_resblock(sd, f"{p}resnet.{2 * levels}.", h)
    out = np_conv_nchw(_lrelu(h), sd[p + "conv_img_mean.weight"], sd[p + "conv_img_mean.bias"])
    return 1.0 / (1.0 + np.exp(-out))


def test_converted_encoders_and_decoders_compute_their_networks():
    """Whole converted networks (every view its own weights) against numpy forward passes of
    their modules: the flatten order into the heads, the decoder's (C, H, W) projection, the
    block order, the residual scale 0.1, leaky ReLU 0.2, counted-padding pooling, nearest
    upsampling and the sigmoid mean, in one comparison."""
    _, cfg = _cfg("tiny")
    mc = cfg.model
    their_tensors = oc.to_state_dict(_random_params(cfg, seed=3), cfg)
    state_dict = {k: v.astype(np.float64) for k, v in their_tensors.items()}
    params = oc.convert_state_dict(their_tensors, cfg).params
    model = make_model(mc)
    view = mc.views[0]
    size, levels = view.shape[0], len(view.channels) - 1
    rng = np.random.RandomState(4)
    images = [rng.randint(0, 256, (2, *view.shape)).astype(np.uint8) for _ in range(mc.num_views)]
    post = model.encode(params, network_inputs(mc.views, images))
    u = rng.randn(mc.num_views, 1, 2, mc.w_dim + mc.z_dim).astype(np.float32)
    means = model.decode_mean(params, jnp.asarray(u))
    for m in (0, mc.num_views - 1):
        x = images[m].astype(np.float64).transpose(0, 3, 1, 2) / 255.0
        for branch, mu, scale in (("w", post.mu_w, post.scale_w), ("z", post.mu_z, post.scale_z)):
            want_mu, want_scale = np_encoder(state_dict, m, x, levels, branch)
            np.testing.assert_allclose(mu[m], want_mu, rtol=2e-4, atol=2e-5)
            np.testing.assert_allclose(scale[m], want_scale, rtol=2e-4, atol=2e-5)
        want = np_decoder(state_dict, m, u[m, 0].astype(np.float64), view.channels, size)
        np.testing.assert_allclose(np.asarray(means[m][0]).transpose(0, 3, 1, 2), want, rtol=2e-4, atol=2e-5)
    # the auxiliary priors' log-variances land in their views' rows
    for m in range(mc.num_views):
        np.testing.assert_array_equal(params["aux_prior_raw"][m], state_dict[f"pws_params_aux.{m}.1"][0])


# =============================================================================== Adam
def _torch_adam_state(state_dict, step, rng, lr=5e-4, skip=("conv_img_scale",)):
    """A torch.optim.Adam state dict over `trainable_keys`: random moments, none for `skip`."""
    keys = oc.trainable_keys(state_dict)
    state = {}
    for i, key in enumerate(keys):
        if any(s in key for s in skip):
            continue
        shape = state_dict[key].shape
        state[i] = {"step": np.asarray(float(step), np.float32),
                    "exp_avg": (0.01 * rng.randn(*shape)).astype(np.float32),
                    "exp_avg_sq": (1e-4 * rng.rand(*shape)).astype(np.float32)}
    groups = [{"lr": lr, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "amsgrad": False,
               "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
               "fused": None, "params": list(range(len(keys)))}]
    return {"state": state, "param_groups": groups}


def test_their_adam_state_gives_torch_adams_next_update():
    config, cfg = _cfg("tiny,diffusion")
    from idmvae_jax.training import step as step_lib

    rng = np.random.RandomState(5)
    state_dict = oc.to_state_dict(_random_params(cfg), cfg)
    torch_state = _torch_adam_state(state_dict, step=7, rng=rng)
    optimizer = step_lib.make_optimizer(config.train)
    params = oc.convert_state_dict(state_dict, cfg).params
    opt_state, count, _ = oc.convert_adam_state(torch_state, state_dict, cfg, optimizer.init(params), config.train)
    assert count == 7
    grads = jax.tree.map(lambda a: rng.randn(*a.shape).astype(np.float32), params)
    updates, _ = jax.jit(optimizer.update)(grads, opt_state, params)
    their_grads = oc.to_state_dict(grads, cfg)
    their_updates = oc.to_state_dict(jax.tree.map(np.asarray, updates), cfg)
    keys = oc.trainable_keys(state_dict)
    lr, b1, b2, eps = 5e-4, 0.9, 0.999, 1e-8
    for i, key in enumerate(keys):  # torch.optim.Adam.step, written out
        g = their_grads[key].astype(np.float64)
        entry = torch_state["state"].get(i, {"exp_avg": 0.0, "exp_avg_sq": 0.0, "step": 0.0})
        t = float(entry["step"]) + 1
        m = b1 * entry["exp_avg"] + (1 - b1) * g
        v = b2 * entry["exp_avg_sq"] + (1 - b2) * g * g
        want = -lr * (m / (1 - b1 ** t)) / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
        np.testing.assert_allclose(their_updates[key], want, rtol=2e-4, atol=1e-9, err_msg=key)


def test_an_optimizer_state_we_cannot_continue_exactly_is_refused():
    """Another run's file, a converted parameter without state (our Adam keeps one step count),
    or other Adam settings than config.train: each is refused, naming the reason."""
    config, cfg = _cfg("tiny")
    state_dict = oc.to_state_dict(_random_params(cfg), cfg)

    def fresh(**kw):
        return _torch_adam_state(state_dict, step=2, rng=np.random.RandomState(0), **kw)

    other_run = fresh()
    other_run["param_groups"][0]["params"].pop()
    with pytest.raises(oc.OfficialCheckpointError, match="not from the same run"):
        oc.convert_adam_state(other_run, state_dict, cfg, None, config.train)
    with pytest.raises(oc.OfficialCheckpointError, match="have no Adam state while the others were stepped 2"):
        oc.convert_adam_state(fresh(skip=("conv_img_scale", "pws_params_aux.0.1")), state_dict, cfg, None,
                              config.train)
    betas = fresh()
    betas["param_groups"][0]["betas"] = (0.5, 0.999)
    with pytest.raises(oc.OfficialCheckpointError, match=r"betas: theirs \(0.5, 0.999\), config.train \(0.9, 0.999\)"):
        oc.convert_adam_state(betas, state_dict, cfg, None, config.train)
    config.train.amsgrad = True
    with pytest.raises(oc.OfficialCheckpointError, match="amsgrad: theirs False, config.train True"):
        oc.convert_adam_state(fresh(), state_dict, cfg, None, config.train)


def test_score_networks_compute_their_dnn_with_time_embedding():
    """The converted score networks (z, and view m's w) against a numpy forward pass of their
    DNNWithTimeEmb: net2(GELU(net1(x) + time_mlp(sinusoidal(t)))), exact GELU, [sin, cos] embedding."""
    from scipy.special import erf

    from idmvae_jax.models.score_net import make_score_net

    _, cfg = _cfg("tiny,diffusion")
    mc = cfg.model
    their = oc.to_state_dict(_random_params(cfg, seed=7), cfg)
    params = oc.convert_state_dict(their, cfg).params

    def gelu(x):
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))

    def linear(p, x):
        return x @ their[p + ".weight"].T.astype(np.float64) + their[p + ".bias"]

    def np_dnn(prefix, x, t):
        half = mc.score_time_dim // 2
        freqs = np.exp(np.arange(half) * -(np.log(10000.0) / (half - 1)))
        emb = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
        h = linear(prefix + "net1.2", gelu(linear(prefix + "net1.0", x)))
        temb = linear(prefix + "time_mlp.3", gelu(linear(prefix + "time_mlp.1", emb)))
        return linear(prefix + "net2.1", gelu(h + temb))

    rng = np.random.RandomState(8)
    t = np.array([0, 17, 999])
    for dim, tree, prefix in ((mc.z_dim, params["score_z"], "pz_diffusion.dnn."),
                              (mc.w_dim, jax.tree.map(lambda a: a[2], params["score_w"]), "pws_diffusion.2.dnn.")):
        x = rng.randn(3, dim)
        net = make_score_net(dim, mc.score_width, mc.score_time_dim)
        ours = net.apply(tree, jnp.asarray(x, jnp.float32), jnp.asarray(t))
        np.testing.assert_allclose(ours, np_dnn(prefix, x, t.astype(np.float64)), rtol=2e-4, atol=2e-5)


# =============================================================================== end to end
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp().parent / "idmvae_data")  # shared with the other tests


def _convert_files_written_like_theirs(tmp_path, capsys):
    """Tiny with 2 views (as tests/test_train.py's runs: their compiled step is in the compilation
    cache): their state dict (with their unused tensors) and Adam state at step 3 as torch.save
    files, converted by the CLI. Returns (config, cfg, state_dict, workdir)."""
    config, cfg = _cfg("tiny")
    config.data.num_views = 2
    cfg = build.build_idmvae_config(config, oc.view_infos(config))
    state_dict = oc.to_state_dict(_random_params(cfg, seed=6), cfg)
    state_dict["vaes.0.dec.conv_img_scale.weight"] = np.zeros((3, 4, 3, 3), np.float32)
    state_dict["pretrained_vae.encoder.conv_in.weight"] = np.zeros((128, 3, 3, 3), np.float32)
    save_torch_state_dict(state_dict, str(tmp_path / "model_3.rar"))
    save_torch_state_dict(_torch_adam_state(state_dict, 3, np.random.RandomState(1)), str(tmp_path / "optimizer_3.rar"))
    workdir = tmp_path / "run"
    assert convert_official.main(
        ["convert_official", f"--checkpoint={tmp_path}/model_3.rar", f"--optimizer={tmp_path}/optimizer_3.rar",
         f"--config={ROOT}/configs/polymnist_quadrant.py:tiny", f"--workdir={workdir}",
         "--config.data.num_views=2"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint step 3" in out
    assert "conv_img_scale.weight: registered by their decoder but never used" in out
    assert "pretrained_vae.encoder.conv_in.weight: the frozen Stable-Diffusion VAE" in out
    return config, cfg, state_dict, workdir


@pytest.mark.usefixtures("fast_compile")
def test_a_converted_checkpoint_restores_for_evaluation_and_resumes(tmp_path, data_dir, capsys):
    """The CLI's workdir: the evaluation's restore (`runtime.restore_for_eval`, with the prepared
    dataset's view info) gives exactly the converted arrays at their step, and `main`'s loop resumes
    the run from there. (The whole evaluation of a converted workdir: the slow test below; CI runs
    `evaluate` on tiny through tests/test_doc_commands.py, whose restore is this one.)"""
    config, cfg, state_dict, workdir = _convert_files_written_like_theirs(tmp_path, capsys)
    # a second conversion into the same workdir is refused in one line, and changes nothing
    with pytest.raises(SystemExit) as exit_info:
        convert_official.main(["convert_official", f"--checkpoint={tmp_path}/model_3.rar",
                               f"--config={ROOT}/configs/polymnist_quadrant.py:tiny",
                               f"--workdir={workdir}", "--config.data.num_views=2"])
    assert exit_info.value.code == errors.EXIT_USER_ERROR
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ERROR: {workdir} already holds checkpoints [3]; convert into a new --workdir"]
    report = json.loads((workdir / "conversion.json").read_text())
    assert report["step"] == 3 and sorted(report["unmapped"]) == sorted(set(state_dict) - {
        k for keys in report["mapped"].values() for k in keys})

    from idmvae_jax.evaluation import runtime
    from idmvae_jax.training import loop, parallel

    config.data.cache_dir = data_dir
    _, _, converted, step = runtime.restore_for_eval(config, str(workdir), parallel.make_mesh(1))
    assert step == 3
    converted = jax.tree.map(parallel.to_host, converted)
    jax.tree.map(np.testing.assert_array_equal, converted, oc.convert_state_dict(state_dict, cfg).params)
    config.train.update(num_steps=4, log_every=1, sample_every=0)
    state = loop.train_and_evaluate(config, str(workdir))
    assert int(state.step) == 4
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4] and np.isfinite(rows[0]["total"])
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(jax.tree.map(parallel.to_host, state.params)),
                                                       jax.tree.leaves(converted)))


@pytest.mark.slow
@pytest.mark.usefixtures("fast_compile")
def test_a_converted_checkpoint_evaluates(tmp_path, data_dir, monkeypatch, capsys):
    """`evaluate` on the converted workdir (64 test tuples, the Gaussian prior): a report."""
    from idmvae_jax.evaluation import run as evaluation

    config, _, _, workdir = _convert_files_written_like_theirs(tmp_path, capsys)
    config.data.cache_dir = data_dir
    load = evaluation.load_eval_data
    monkeypatch.setattr(evaluation, "load_eval_data", lambda c, info: (
        lambda train, test: (train, {k: [a[:64] for a in v] if k == "x" else v[:64] for k, v in test.items()}))(
        *load(c, info)))
    config.eval.update(priors=("gaussian",), probe_curve=False, classifier_steps=2)
    evaluation.evaluate(config, str(workdir))
    metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    for key in ("probe/z_shared", "probe/w_private", "coherence/cross", "coherence/unconditional"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert (workdir / "eval" / "report.md").exists()


# =============================================================================== the comparison tool
def test_their_named_draws_fill_every_draw_of_our_step():
    """tools/equivalence.py: each of their draws lands in the slot of ours that plays its role
    (the auxiliary prior of target d for source e, the cycle term's branches, the diffusion
    steps), with the layouts `loss_fn` expects."""
    from idmvae_jax.tools import equivalence
    from idmvae_jax.training.loss import draw_step_noise

    _, cfg = _cfg("tiny,diffusion")
    batch, draws = equivalence.make_inputs(cfg, batch_size=3)
    noise = equivalence.our_noise(draws, cfg)
    expected = jax.eval_shape(lambda: draw_step_noise(jax.random.key(0), jnp.arange(3), cfg))
    assert {k: (v.shape, np.dtype(v.dtype).kind) for k, v in noise.items()} == {
        k: (v.shape, np.dtype(v.dtype).kind) for k, v in expected.items()}
    w = cfg.model.w_dim
    np.testing.assert_array_equal(noise["aux_w"][3, 1], draws["aux_eps_1_3"][:, :, 0])  # target 3 from source 1
    np.testing.assert_array_equal(noise["elbo_z"][2], draws["enc_eps_2"][..., w:])
    np.testing.assert_array_equal(noise["genaug_b_z"][4], draws["ga_rs_z_4"][0])
    np.testing.assert_array_equal(noise["diff_t_w"][1], draws["diff_tw_1"])
    assert set(batch) == {f"x_{m}" for m in range(cfg.model.num_views)}
