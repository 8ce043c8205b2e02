"""Latent linear probes on constructed latents with known answers."""
import numpy as np
import pytest

from idmvae_jax.evaluation import latent_probes, probe_accuracy


def _one_hot(y, k):
    return np.eye(k)[y]


def test_perfect_features_give_one():
    rng = np.random.default_rng(0)
    y_tr, y_te = rng.integers(0, 10, 500), rng.integers(0, 10, 300)
    f_tr = _one_hot(y_tr, 10) + 0.05 * rng.normal(size=(500, 10))
    f_te = _one_hot(y_te, 10) + 0.05 * rng.normal(size=(300, 10))
    assert probe_accuracy(f_tr, y_tr, f_te, y_te) == 1.0


def test_noise_features_give_chance():
    rng = np.random.default_rng(1)
    y_tr, y_te = rng.integers(0, 4, 2000), rng.integers(0, 4, 2000)
    acc = probe_accuracy(rng.normal(size=(2000, 8)), y_tr, rng.normal(size=(2000, 8)), y_te)
    assert abs(acc - 0.25) < 0.04


def test_single_class_training_labels():
    assert probe_accuracy(np.ones((5, 2)), np.zeros(5, int), np.ones((4, 2)),
                          np.array([0, 0, 1, 0])) == 0.75


def _disentangled_latents(rng, n, m, shared, private):
    z = np.stack([_one_hot(shared, 10) + 0.05 * rng.normal(size=(n, 10)) for _ in range(m)])
    w = np.stack([_one_hot(private[:, v], 4) + 0.05 * rng.normal(size=(n, 4))
                  for v in range(m)])
    return {"z": z, "w": w}


def test_latent_probes_on_an_oracle_encoder():
    rng = np.random.default_rng(2)
    m, n_tr, n_te = 3, 1200, 800
    ys_tr, ys_te = rng.integers(0, 10, n_tr), rng.integers(0, 10, n_te)
    yp_tr, yp_te = rng.integers(0, 4, (n_tr, m)), rng.integers(0, 4, (n_te, m))
    lat_tr = _disentangled_latents(rng, n_tr, m, ys_tr, yp_tr)
    lat_te = _disentangled_latents(rng, n_te, m, ys_te, yp_te)
    out = latent_probes(lat_tr, lat_te, {"shared": ys_tr, "private": yp_tr},
                        {"y_shared": ys_te, "y_private": yp_te}, n_fit=1000)
    assert out["probe/z_shared"] == 1.0
    assert out["probe/w_private"] == 1.0
    assert out["probe/u_shared"] == 1.0 and out["probe/u_private"] == 1.0
    assert abs(out["probe/z_private"] - 0.25) < 0.06
    assert abs(out["probe/w_shared"] - 0.10) < 0.05
    for v in range(m):
        for key in ("u_shared", "u_private", "z_shared", "z_private", "w_shared", "w_private"):
            assert 0.0 <= out[f"probe/view{v}/{key}"] <= 1.0
    assert out["probe/z_shared"] == np.mean([out[f"probe/view{v}/z_shared"] for v in range(m)])


def test_latent_probes_without_private_labels():
    rng = np.random.default_rng(3)
    y_tr, y_te = rng.integers(0, 10, 300), rng.integers(0, 10, 200)
    private = np.zeros((300, 2), int)
    lat_tr = _disentangled_latents(rng, 300, 2, y_tr, private)
    lat_te = _disentangled_latents(rng, 200, 2, y_te, np.zeros((200, 2), int))
    out = latent_probes(lat_tr, lat_te, {"shared": y_tr, "private": None}, y_te)
    assert not any("private" in k for k in out)
    assert {"probe/z_shared", "probe/w_shared", "probe/u_shared"} <= set(out)


def test_probes_fit_only_the_first_n_fit_examples():
    rng = np.random.default_rng(4)
    n, n_fit = 600, 300
    y_tr, y_te = rng.integers(0, 4, n), rng.integers(0, 4, 400)
    z_tr = _one_hot(y_tr, 4) + 0.05 * rng.normal(size=(n, 4))
    z_tr[n_fit:] = _one_hot((y_tr[n_fit:] + 1) % 4, 4)  # rows beyond n_fit lie about the label
    z_te = _one_hot(y_te, 4)
    lat_tr, lat_te = {"z": z_tr[None]}, {"z": z_te[None]}
    assert latent_probes(lat_tr, lat_te, y_tr, y_te, n_fit=n_fit)["probe/z_shared"] == 1.0
    assert latent_probes(lat_tr, lat_te, y_tr, y_te, n_fit=None)["probe/z_shared"] < 0.9


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        latent_probes({"z": np.zeros((5, 3))}, {"z": np.zeros((5, 3))}, np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError):
        latent_probes({"z": np.zeros((2, 5, 3))}, {"z": np.zeros((2, 5, 3))},
                      {"shared": np.zeros(5), "private": np.zeros((5, 3))},
                      {"shared": np.zeros(5), "private": np.zeros((5, 3))})


def test_curve_point_is_the_mean_over_views_of_sklearn_probes_of_z_and_w():
    """probe_curve.curve_point on a stand-in encoder (z = noisy one-hot digit, w = noisy one-hot
    quadrant, per view) equals scikit-learn's logistic regressions fitted directly, averaged over
    views; only the views with a private label enter w -> private."""
    from sklearn.linear_model import LogisticRegression

    from idmvae_jax.evaluation import probe_curve

    rng = np.random.default_rng(3)

    def split(n):
        y, q = rng.integers(0, 10, n), rng.integers(0, 4, (n, 2))
        xs = [np.concatenate([_one_hot(y, 10) + rng.normal(scale=s, size=(n, 10)),
                              _one_hot(q[:, m], 4) + rng.normal(scale=s, size=(n, 4))], 1).astype(np.float32)
              for m, s in enumerate((0.6, 0.9))]
        return {"x": xs, "y_shared": y, "y_private": q}

    def encode_means(xs):  # (M, B, Z), (M, B, W): the digit block and the quadrant block
        return np.stack([x[:, :10] for x in xs]), np.stack([x[:, 10:] for x in xs])

    train, test = split(600), split(300)
    point = probe_curve.curve_point(encode_means, train, test, [1], batch_size=64, num_fit=400)

    def sk(f_tr, y_tr, f_te, y_te):
        clf = LogisticRegression(max_iter=1000).fit(f_tr, y_tr)
        return np.mean(clf.predict(f_te) == y_te)

    z = np.mean([sk(train["x"][m][:400, :10], train["y_shared"][:400], test["x"][m][:, :10], test["y_shared"])
                 for m in range(2)])
    w = sk(train["x"][1][:400, 10:], train["y_private"][:400, 1], test["x"][1][:, 10:], test["y_private"][:, 1])
    assert point["probe/z_shared"] == pytest.approx(z, abs=1e-9)
    assert point["probe/w_private"] == pytest.approx(w, abs=1e-9)
    assert 0.3 < point["probe/z_shared"] < 1.0 and point["probe/w_private"] > 0.5
    assert set(probe_curve.curve_point(encode_means, train, test, [], batch_size=64, num_fit=400)) == {"probe/z_shared"}
