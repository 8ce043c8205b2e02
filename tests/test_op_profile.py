"""op_profile: FLOPs and layer groups of compiled HLO instructions, and profiled time per instruction."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from idmvae_jax.benchmarking import op_profile

N, H, W, CIN, COUT, K = 4, 16, 12, 3, 8, 3


class Tower(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(5)(nn.Conv(COUT, (K, K))(x).reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def compiled_grad():
    model = Tower()
    x = jnp.ones((N, H, W, CIN))
    params = model.init(jax.random.PRNGKey(0), x)
    loss = lambda p, x: jnp.sum(jnp.tanh(model.apply(p, x)))  # noqa: E731
    fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return fn, fn.lower(params, x).compile(), (params, x)


def test_conv_and_dot_flops_match_a_hand_count(compiled_grad):
    _, compiled, _ = compiled_grad
    hlo = op_profile.parse_hlo(compiled.as_text())
    conv = sum(op_profile.instruction_flops(i, hlo) for i in hlo.instructions.values() if i.op == "convolution")
    dot = sum(op_profile.instruction_flops(i, hlo) for i in hlo.instructions.values() if i.op == "dot")
    # forward, input gradient and kernel gradient: each 2 * N*H*W * K*K*CIN * COUT FLOPs (SAME padding)
    assert conv == 3 * 2 * N * H * W * K * K * CIN * COUT
    # Dense(5) on N x (H*W*COUT): forward, input gradient, kernel gradient
    assert dot == 3 * 2 * N * H * W * COUT * 5


def test_formulas():
    assert op_profile.conv_flops((2, 8, 8, 4), (3, 3, 6, 4), "b01f_01io->b01f") == 2 * 2 * 64 * 4 * 9 * 6
    assert op_profile.dot_flops((7, 5), (7, 11), (1,)) == 2 * 7 * 5 * 11


def test_groups_name_the_network_direction_and_layer(compiled_grad):
    _, compiled, _ = compiled_grad
    hlo = op_profile.parse_hlo(compiled.as_text())
    groups = {op_profile.group_of(i, hlo) for i in hlo.instructions.values() if i.op == "convolution"}
    shape = f"{K}x{K} {H}x{W} {CIN}->{COUT}"
    assert groups == {f"Tower/fwd/conv {shape}", f"Tower/bwd/conv data {K}x{K} {H}x{W} {COUT}->{CIN}",
                      f"Tower/bwd/conv filter {K}x{K} {H}x{W} {CIN}->{COUT}"}


def test_profiled_account_covers_the_convolutions(compiled_grad, tmp_path):
    fn, compiled, args = compiled_grad
    seconds = op_profile.profile_op_times(lambda: compiled(*args), 3, str(tmp_path))
    assert seconds and all(s >= 0 for s in seconds.values())
    rows = op_profile.op_account(compiled.as_text(), seconds)
    conv_rows = [r for r in rows if "/conv " in r["group"]]
    assert len(conv_rows) == 3 and all(r["seconds"] > 0 for r in conv_rows)
    assert sum(r["flops"] for r in conv_rows) == 3 * 2 * N * H * W * K * K * CIN * COUT
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    kinds = {r["group"]: r for r in op_profile.rollup(rows, -1)}
    assert kinds["conv"]["count"] == 3 and kinds["conv"]["seconds"] == pytest.approx(
        sum(r["seconds"] for r in conv_rows))
    by_net = {r["group"] for r in op_profile.rollup(rows, 2)}
    assert {"Tower/fwd", "Tower/bwd"} <= by_net
    hlo = op_profile.parse_hlo(compiled.as_text())
    profiled = [s for n, s in seconds.items() if n in hlo.instructions]
    np.testing.assert_allclose(sum(r["seconds"] for r in rows), sum(profiled))  # every instruction in one row


def test_missing_trace_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="create_perfetto_trace"):
        op_profile.read_trace_op_times(str(tmp_path))
