"""FID Inception: torch-free weights reader, state-dict conversion, and the Flax forward pass
against an independent numpy implementation written from the PyTorch module definitions.

No torch here: synthetic weights files of the standard structure (zip layout and the legacy
pre-1.6 layout) are written by `save_torch_state_dict` with the key names and shapes of
`pt_inception-2015-12-05-6726825d.pth`; the table below is derived from the PyTorch modules
(BasicConv2d = conv without bias + BatchNorm(eps=1e-3)), not from the Flax module.
"""
import collections
import io
import os
import pickle
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idmvae_jax.evaluation import frechet_distance_from_features
from idmvae_jax.evaluation import inception as inc
from idmvae_jax.evaluation.torch_pickle import load_torch_state_dict
from idmvae_jax.evaluation.torch_pickle_writer import save_torch_state_dict

# ------------------------------------------------------------------ the PyTorch key/shape table
# (name, in_channels, out_channels, kernel (kh, kw)) of every BasicConv2d, in module order.


def _conv_table(div=1):
    c = lambda n: n // div  # noqa: E731
    t = [("Conv2d_1a_3x3", 3, c(32), (3, 3)), ("Conv2d_2a_3x3", c(32), c(32), (3, 3)),
         ("Conv2d_2b_3x3", c(32), c(64), (3, 3)), ("Conv2d_3b_1x1", c(64), c(80), (1, 1)),
         ("Conv2d_4a_3x3", c(80), c(192), (3, 3))]
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        t += [(f"{name}.branch1x1", c(cin), c(64), (1, 1)),
              (f"{name}.branch5x5_1", c(cin), c(48), (1, 1)),
              (f"{name}.branch5x5_2", c(48), c(64), (5, 5)),
              (f"{name}.branch3x3dbl_1", c(cin), c(64), (1, 1)),
              (f"{name}.branch3x3dbl_2", c(64), c(96), (3, 3)),
              (f"{name}.branch3x3dbl_3", c(96), c(96), (3, 3)),
              (f"{name}.branch_pool", c(cin), c(pool), (1, 1))]
    t += [("Mixed_6a.branch3x3", c(288), c(384), (3, 3)),
          ("Mixed_6a.branch3x3dbl_1", c(288), c(64), (1, 1)),
          ("Mixed_6a.branch3x3dbl_2", c(64), c(96), (3, 3)),
          ("Mixed_6a.branch3x3dbl_3", c(96), c(96), (3, 3))]
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        c7 = c(c7)
        t += [(f"{name}.branch1x1", c(768), c(192), (1, 1)),
              (f"{name}.branch7x7_1", c(768), c7, (1, 1)),
              (f"{name}.branch7x7_2", c7, c7, (1, 7)),
              (f"{name}.branch7x7_3", c7, c(192), (7, 1)),
              (f"{name}.branch7x7dbl_1", c(768), c7, (1, 1)),
              (f"{name}.branch7x7dbl_2", c7, c7, (7, 1)),
              (f"{name}.branch7x7dbl_3", c7, c7, (1, 7)),
              (f"{name}.branch7x7dbl_4", c7, c7, (7, 1)),
              (f"{name}.branch7x7dbl_5", c7, c(192), (1, 7)),
              (f"{name}.branch_pool", c(768), c(192), (1, 1))]
    t += [("Mixed_7a.branch3x3_1", c(768), c(192), (1, 1)),
          ("Mixed_7a.branch3x3_2", c(192), c(320), (3, 3)),
          ("Mixed_7a.branch7x7x3_1", c(768), c(192), (1, 1)),
          ("Mixed_7a.branch7x7x3_2", c(192), c(192), (1, 7)),
          ("Mixed_7a.branch7x7x3_3", c(192), c(192), (7, 1)),
          ("Mixed_7a.branch7x7x3_4", c(192), c(192), (3, 3))]
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        t += [(f"{name}.branch1x1", c(cin), c(320), (1, 1)),
              (f"{name}.branch3x3_1", c(cin), c(384), (1, 1)),
              (f"{name}.branch3x3_2a", c(384), c(384), (1, 3)),
              (f"{name}.branch3x3_2b", c(384), c(384), (3, 1)),
              (f"{name}.branch3x3dbl_1", c(cin), c(448), (1, 1)),
              (f"{name}.branch3x3dbl_2", c(448), c(384), (3, 3)),
              (f"{name}.branch3x3dbl_3a", c(384), c(384), (1, 3)),
              (f"{name}.branch3x3dbl_3b", c(384), c(384), (3, 1)),
              (f"{name}.branch_pool", c(cin), c(192), (1, 1))]
    return t


def _state_dict_shapes(div=1, with_fc=True, with_num_batches=True):
    shapes = collections.OrderedDict()
    for name, cin, cout, (kh, kw) in _conv_table(div):
        shapes[f"{name}.conv.weight"] = ((cout, cin, kh, kw), np.float32)
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{leaf}"] = ((cout,), np.float32)
        if with_num_batches:
            shapes[f"{name}.bn.num_batches_tracked"] = ((), np.int64)
    if with_fc:
        shapes["fc.weight"] = ((1008, 2048 // div), np.float32)
        shapes["fc.bias"] = ((1008,), np.float32)
    return shapes


def _random_state_dict(div, seed=0, **kw):
    rng = np.random.default_rng(seed)
    sd = collections.OrderedDict()
    for key, (shape, dtype) in _state_dict_shapes(div, **kw).items():
        if dtype == np.int64:
            sd[key] = np.array(7, np.int64)
        elif key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            sd[key] = (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif key.endswith("running_var"):
            sd[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key.endswith("bn.weight"):
            sd[key] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        else:
            sd[key] = (0.1 * rng.normal(size=shape)).astype(np.float32)
    return sd


DIV = 8  # the reduced network: every channel count / 8


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    sd = _random_state_dict(DIV, seed=0)
    path = str(tmp_path_factory.mktemp("fid") / "reduced_inception.pth")
    save_torch_state_dict(sd, path, archive_name="pt_inception-2015-12-05-6726825d")
    return sd, path, inc.load_fid_inception_params(path, channel_divisor=DIV)


# ----------------------------------------------------------------------- reader and conversion
@pytest.mark.parametrize("legacy", [False, True])
def test_state_dict_round_trip(tmp_path, legacy):
    sd = _random_state_dict(DIV, seed=1)
    path = str(tmp_path / "w.pth")
    save_torch_state_dict(sd, path, legacy=legacy, metadata={"": {"version": 1}})
    assert zipfile.is_zipfile(path) != legacy
    back = load_torch_state_dict(path)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape
        np.testing.assert_array_equal(back[k], sd[k])
    assert back._metadata == {"": {"version": 1}}


def test_reader_refuses_foreign_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = str(tmp_path / "evil.pth")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_torch_state_dict(path)


def test_full_size_table_matches_the_module_without_materialising():
    shapes = _state_dict_shapes(1)
    abstract_sd = {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in shapes.items()}
    converted = jax.eval_shape(inc.convert_state_dict, abstract_sd)
    expected = inc.abstract_variables(channel_divisor=1)
    as_shapes = lambda t: jax.tree.map(lambda a: tuple(a.shape), t)  # noqa: E731
    assert as_shapes(converted) == as_shapes(expected)
    n_conv = len(_conv_table(1))
    assert n_conv == 94
    assert len(jax.tree.leaves(expected)) == 5 * n_conv
    # pool3 of the full network is 2048-d at 299x299.
    out = jax.eval_shape(inc.InceptionV3FID().apply, expected,
                         jax.ShapeDtypeStruct((2, 299, 299, 3), jnp.float32))
    assert out.shape == (2, 2048)


def test_full_size_file_round_trip(tmp_path):
    start = time.time()
    rng = np.random.default_rng(0)
    sd = collections.OrderedDict(
        (k, np.zeros(s, d) if d == np.int64 else
         rng.standard_normal(s, dtype=np.float32) * np.float32(0.01))
        for k, (s, d) in _state_dict_shapes(1).items())
    path = str(tmp_path / inc.FID_WEIGHTS_FILENAME)
    save_torch_state_dict(sd, path, archive_name="pt_inception-2015-12-05-6726825d")
    assert os.path.getsize(path) > 90e6
    variables = inc.load_fid_inception_params(path)
    p = variables["params"]["Mixed_6b"]["branch7x7_2"]
    np.testing.assert_array_equal(p["conv"]["kernel"],
                                  sd["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"],
                                  sd["Mixed_7c.branch_pool.bn.running_var"])
    assert time.time() - start < 30


def test_conversion_and_validation_errors(reduced):
    sd, _, variables = reduced
    kernel = variables["params"]["Mixed_5b"]["branch5x5_2"]["conv"]["kernel"]
    assert kernel.shape == (5, 5, 48 // DIV, 64 // DIV)
    np.testing.assert_array_equal(kernel, sd["Mixed_5b.branch5x5_2.conv.weight"].transpose(2, 3, 1, 0))
    bn = variables["params"]["Conv2d_1a_3x3"]["bn"]
    np.testing.assert_array_equal(bn["scale"], sd["Conv2d_1a_3x3.bn.weight"])
    np.testing.assert_array_equal(bn["bias"], sd["Conv2d_1a_3x3.bn.bias"])
    stats = variables["batch_stats"]["Conv2d_1a_3x3"]["bn"]
    np.testing.assert_array_equal(stats["mean"], sd["Conv2d_1a_3x3.bn.running_mean"])
    with pytest.raises(ValueError, match="unexpected key"):
        inc.convert_state_dict({"Mixed_5b.branch1x1.conv.bias": np.zeros(3)})
    partial = inc.convert_state_dict({k: v for k, v in sd.items() if "Mixed_7c" not in k})
    with pytest.raises(ValueError, match="missing"):
        inc.check_variables(partial, channel_divisor=DIV)
    with pytest.raises(ValueError, match="wrong shapes"):  # a reduced file is not the real one
        inc.check_variables(inc.convert_state_dict(sd), channel_divisor=1)


def test_missing_weights_file_says_what_to_do(tmp_path):
    missing = str(tmp_path / "nope" / inc.FID_WEIGHTS_FILENAME)
    for call in (lambda: inc.load_fid_inception_params(missing),
                 lambda: inc.fid_from_weights(missing, np.zeros((2, 8, 8, 3), np.uint8),
                                              np.zeros((2, 8, 8, 3), np.uint8)),
                 lambda: inc.resolve_fid_weights(None)):
        with pytest.raises(FileNotFoundError) as err:
            call()
        msg = str(err.value)
        assert "pt_inception-2015-12-05-6726825d.pth" in msg
        assert "pytorch-fid" in msg and "eval.fid_weights" in msg


# ----------------------------------------------------------------- independent numpy reference
def _np_conv(x, w, stride=(1, 1), pad=(0, 0)):
    """NCHW x OIHW cross-correlation with symmetric zero padding (torch Conv2d semantics)."""
    ph, pw = pad
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def _np_basic(sd, name, x, stride=1, pad=(0, 0)):
    y = _np_conv(x, sd[f"{name}.conv.weight"].astype(np.float64), (stride, stride), pad)
    g = lambda k: sd[f"{name}.bn.{k}"].astype(np.float64)[None, :, None, None]  # noqa: E731
    y = (y - g("running_mean")) / np.sqrt(g("running_var") + 1e-3) * g("weight") + g("bias")
    return np.maximum(y, 0)


def _np_pool(x, kind, k=3, stride=1, pad=0):
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    ones = np.pad(np.ones((h, w)), pad)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for a in range(oh):
        for b in range(ow):
            win = xp[:, :, a * stride:a * stride + k, b * stride:b * stride + k]
            if kind == "max":
                out[:, :, a, b] = win.max(axis=(2, 3))
            else:  # count_include_pad=False: divide by the number of real pixels
                cnt = ones[a * stride:a * stride + k, b * stride:b * stride + k].sum()
                out[:, :, a, b] = win.sum(axis=(2, 3)) / cnt
    return out


def _np_block_a(sd, p, x):
    b1 = _np_basic(sd, f"{p}.branch1x1", x)
    b5 = _np_basic(sd, f"{p}.branch5x5_2", _np_basic(sd, f"{p}.branch5x5_1", x), pad=(2, 2))
    b3 = _np_basic(sd, f"{p}.branch3x3dbl_1", x)
    b3 = _np_basic(sd, f"{p}.branch3x3dbl_2", b3, pad=(1, 1))
    b3 = _np_basic(sd, f"{p}.branch3x3dbl_3", b3, pad=(1, 1))
    bp = _np_basic(sd, f"{p}.branch_pool", _np_pool(x, "avg", pad=1))
    return np.concatenate([b1, b5, b3, bp], axis=1)


def _np_block_b(sd, p, x):
    b3 = _np_basic(sd, f"{p}.branch3x3", x, stride=2)
    bd = _np_basic(sd, f"{p}.branch3x3dbl_1", x)
    bd = _np_basic(sd, f"{p}.branch3x3dbl_2", bd, pad=(1, 1))
    bd = _np_basic(sd, f"{p}.branch3x3dbl_3", bd, stride=2)
    return np.concatenate([b3, bd, _np_pool(x, "max", stride=2)], axis=1)


def _np_block_c(sd, p, x):
    b1 = _np_basic(sd, f"{p}.branch1x1", x)
    b7 = _np_basic(sd, f"{p}.branch7x7_1", x)
    b7 = _np_basic(sd, f"{p}.branch7x7_2", b7, pad=(0, 3))
    b7 = _np_basic(sd, f"{p}.branch7x7_3", b7, pad=(3, 0))
    bd = _np_basic(sd, f"{p}.branch7x7dbl_1", x)
    for i, pad in zip(range(2, 6), [(3, 0), (0, 3), (3, 0), (0, 3)]):
        bd = _np_basic(sd, f"{p}.branch7x7dbl_{i}", bd, pad=pad)
    bp = _np_basic(sd, f"{p}.branch_pool", _np_pool(x, "avg", pad=1))
    return np.concatenate([b1, b7, bd, bp], axis=1)


def _np_block_d(sd, p, x):
    b3 = _np_basic(sd, f"{p}.branch3x3_2", _np_basic(sd, f"{p}.branch3x3_1", x), stride=2)
    b7 = _np_basic(sd, f"{p}.branch7x7x3_1", x)
    b7 = _np_basic(sd, f"{p}.branch7x7x3_2", b7, pad=(0, 3))
    b7 = _np_basic(sd, f"{p}.branch7x7x3_3", b7, pad=(3, 0))
    b7 = _np_basic(sd, f"{p}.branch7x7x3_4", b7, stride=2)
    return np.concatenate([b3, b7, _np_pool(x, "max", stride=2)], axis=1)


def _np_block_e(sd, p, x, pool):
    b1 = _np_basic(sd, f"{p}.branch1x1", x)
    b3 = _np_basic(sd, f"{p}.branch3x3_1", x)
    b3 = np.concatenate([_np_basic(sd, f"{p}.branch3x3_2a", b3, pad=(0, 1)),
                         _np_basic(sd, f"{p}.branch3x3_2b", b3, pad=(1, 0))], axis=1)
    bd = _np_basic(sd, f"{p}.branch3x3dbl_1", x)
    bd = _np_basic(sd, f"{p}.branch3x3dbl_2", bd, pad=(1, 1))
    bd = np.concatenate([_np_basic(sd, f"{p}.branch3x3dbl_3a", bd, pad=(0, 1)),
                         _np_basic(sd, f"{p}.branch3x3dbl_3b", bd, pad=(1, 0))], axis=1)
    bp = _np_basic(sd, f"{p}.branch_pool", _np_pool(x, pool, pad=1))
    return np.concatenate([b1, b3, bd, bp], axis=1)


def _np_inception(sd, x):
    """Whole FID trunk, NCHW in [-1, 1] -> (N, C) pool3."""
    x = _np_basic(sd, "Conv2d_1a_3x3", x, stride=2)
    x = _np_basic(sd, "Conv2d_2a_3x3", x)
    x = _np_basic(sd, "Conv2d_2b_3x3", x, pad=(1, 1))
    x = _np_pool(x, "max", stride=2)
    x = _np_basic(sd, "Conv2d_3b_1x1", x)
    x = _np_basic(sd, "Conv2d_4a_3x3", x)
    x = _np_pool(x, "max", stride=2)
    for p in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = _np_block_a(sd, p, x)
    x = _np_block_b(sd, "Mixed_6a", x)
    for p in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = _np_block_c(sd, p, x)
    x = _np_block_d(sd, "Mixed_7a", x)
    x = _np_block_e(sd, "Mixed_7b", x, "avg")
    x = _np_block_e(sd, "Mixed_7c", x, "max")
    return x.mean(axis=(2, 3))


def _sub(variables, name):
    return {"params": variables["params"][name], "batch_stats": variables["batch_stats"][name]}


def _nhwc(x_nchw):
    return jnp.asarray(x_nchw.transpose(0, 2, 3, 1), jnp.float32)


def test_basic_conv_matches_numpy(reduced):
    sd, _, variables = reduced
    x = np.random.default_rng(0).normal(size=(2, 3, 11, 9))
    mod = inc.BasicConv2d(32 // DIV, (3, 3), strides=(2, 2))
    got = jax.jit(mod.apply)(_sub(variables, "Conv2d_1a_3x3"), _nhwc(x))
    want = _np_basic(sd, "Conv2d_1a_3x3", x, stride=2)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,module,ref", [
    ("Mixed_5b", inc.InceptionA(32, div=DIV), _np_block_a),
    ("Mixed_6a", inc.InceptionB(div=DIV), _np_block_b),
    ("Mixed_6c", inc.InceptionC(160, div=DIV), _np_block_c),
    ("Mixed_7a", inc.InceptionD(div=DIV), _np_block_d),
    ("Mixed_7b", inc.InceptionE("avg", div=DIV), lambda sd, p, x: _np_block_e(sd, p, x, "avg")),
    ("Mixed_7c", inc.InceptionE("max", div=DIV), lambda sd, p, x: _np_block_e(sd, p, x, "max")),
])
def test_inception_blocks_match_numpy(reduced, name, module, ref):
    sd, _, variables = reduced
    cin = {"Mixed_5b": 192, "Mixed_6a": 288, "Mixed_6c": 768, "Mixed_7a": 768,
           "Mixed_7b": 1280, "Mixed_7c": 2048}[name] // DIV
    x = np.random.default_rng(1).normal(size=(2, cin, 7, 7))
    got = np.asarray(jax.jit(module.apply)(_sub(variables, name), _nhwc(x))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, ref(sd, name, x), rtol=1e-4, atol=1e-4)


def test_whole_network_matches_numpy(reduced):
    # 83x83 float input: no resize, only 2x - 1; 7 images in batches of 4 (the last one padded).
    sd, _, variables = reduced
    imgs = np.random.default_rng(2).uniform(0, 1, size=(7, 83, 83, 3)).astype(np.float32)
    fn = inc.make_fid_feature_fn(variables, batch_size=4, image_size=83, channel_divisor=DIV)
    got = fn(imgs)
    assert got.shape == (7, 2048 // DIV) and got.dtype == np.float64
    want = _np_inception(sd, 2.0 * imgs.astype(np.float64).transpose(0, 3, 1, 2) - 1.0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def _np_resize_bilinear(img, size):
    """torch interpolate(mode='bilinear', align_corners=False, antialias=False), HWC."""
    h, w = img.shape[:2]

    def coords(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    r0, r1, fr = coords(h, size)
    c0, c1, fc = coords(w, size)
    top = img[r0][:, c0] * (1 - fc)[None, :, None] + img[r0][:, c1] * fc[None, :, None]
    bot = img[r1][:, c0] * (1 - fc)[None, :, None] + img[r1][:, c1] * fc[None, :, None]
    return top * (1 - fr)[:, None, None] + bot * fr[:, None, None]


@pytest.mark.parametrize("size_in", [32, 28, 400])
def test_preprocess_resizes_like_torch_and_scales_to_unit_interval(size_in):
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (2, size_in, size_in, 3), dtype=np.uint8)
    got = np.asarray(inc.preprocess_images(jnp.asarray(imgs), 299))
    want = np.stack([_np_resize_bilinear(i / 255.0, 299) for i in imgs]) * 2 - 1
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert got.shape == (2, 299, 299, 3)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 7 samples, 256-d features
def test_fid_from_weights(reduced):
    sd, path, variables = reduced
    rng = np.random.default_rng(4)
    real = rng.uniform(0, 1, (7, 83, 83, 3)).astype(np.float32)
    fake = np.clip(real + 0.3 * rng.normal(size=real.shape), 0, 1).astype(np.float32)
    fn = inc.make_fid_feature_fn(variables, batch_size=4, image_size=83, channel_divisor=DIV)
    fid = inc.fid_from_weights(path, real, fake, batch_size=4, channel_divisor=DIV, image_size=83)
    assert fid == pytest.approx(frechet_distance_from_features(fn(real), fn(fake)), rel=1e-4)
    assert fid > 1e-3
    assert inc.fid_from_weights(path, real, real, batch_size=4, channel_divisor=DIV,
                                image_size=83) == pytest.approx(0.0, abs=1e-6)


def test_a_file_that_is_not_the_weights_skips_fid_and_names_the_file(tmp_path):
    """The evaluation goes on without FID (the other metrics are still written), and says why."""
    import zipfile

    import ml_collections

    from idmvae_jax.evaluation import fid

    text, empty_zip = tmp_path / "weights.pth", tmp_path / "weights.zip"
    text.write_text("not weights")
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("readme.txt", "no data.pkl here")
    for path in (text, empty_zip):
        config = ml_collections.ConfigDict({"eval": {"fid_weights": str(path)}})
        feature_fn, skipped = fid.fid_feature_fn(config, 16)
        assert feature_fn is None
        assert skipped.startswith(f"FID skipped: {path} is not a readable FID Inception weights file")
        assert "pytorch-fid" in skipped and "--config.eval.fid_weights=" in skipped
