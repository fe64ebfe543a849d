"""gsbnp.quant.product: the binarized attention product from the heads to Y = A V (Eqs. 7-8, 9-35),
checked against the frozen-residual surrogate in float64, its maps, its initialisation step and the
Eq. 35 hook."""

import numpy as np
import pytest

from gsbnp.bitops import gsb_av_bitwise
from gsbnp.gradcheck import check_surrogate
from gsbnp.quant import (SCALE_FLOOR, act_sign_init, attention_product_backward, attention_product_forward,
                         gsb_attention_init, gsb_value_init)

B, H, N, Dh = 2, 2, 5, 3
TOL = 1e-7
NAMES = ("q_alpha", "k_alpha", "q_bias", "k_bias", "Phi", "Omega", "alphas", "betas")


def make(rng, phi="HNN", k_a=2, k_v=2):
    q, k, v = (rng.standard_normal((B, H, N, Dh)) for _ in range(3))
    params = {"q_alpha": np.array(1.3), "k_alpha": np.array(0.9),
              "q_bias": rng.standard_normal((H, 1, Dh)) * 0.1, "k_bias": rng.standard_normal((H, 1, Dh)) * 0.1,
              "Omega": rng.standard_normal((H, 1, Dh)) * 0.1,
              "alphas": rng.uniform(0.05, 0.3, k_a + 1), "betas": rng.uniform(0.2, 0.8, k_v + 1)}
    if phi == "HNN":
        params["Phi"] = rng.standard_normal((H, N, N)) * 0.02
    elif phi == "HN":
        params["Phi"] = rng.standard_normal((H, 1, N)) * 0.02
    return q, k, v, params


@pytest.mark.parametrize("opts", [
    dict(mode="gsb"),
    dict(mode="baseline"),
    dict(mode="baseline", baseline_attn="eq2"),
    dict(mode="gsb", phi="HN", k_a=1, k_v=3),
    dict(mode="gsb", phi="mean", gsb_v=False),
    dict(mode="gsb", phi="zero", gsb_att=False, v_grad="unmasked"),
    dict(mode="gsb", abin="mask", threshold_scope="batch"),
])
def test_product_gradients_against_the_frozen_residual_surrogate(opts):
    rng = np.random.default_rng(0)
    q, k, v, params = make(rng, phi=opts.get("phi", "HNN"), k_a=opts.get("k_a", 2), k_v=opts.get("k_v", 2))
    gsb = opts["mode"] == "gsb"
    names = [n for n in NAMES if n in params and gsb and not (n == "Phi" and not opts.get("gsb_att", True))
             and not (n == "alphas" and not opts.get("gsb_att", True))
             and not (n in ("betas", "Omega") and not opts.get("gsb_v", True))]
    arrays = [q, k, v] + [params[n] for n in names]

    def forward():
        Y, _, _, cache = attention_product_forward(q, k, v, params, scale_grad="sum", **opts)
        return Y, cache

    def backward(dY, cache):
        dq, dk, dv, dparams = attention_product_backward(dY, cache)
        assert set(dparams) == set(names)
        return (dq, dk, dv, *[dparams[n] for n in names])

    errs = check_surrogate(forward, backward, arrays, rng=np.random.default_rng(1))
    assert max(errs) < TOL, dict(zip(["q", "k", "v", *names], errs))


def test_maps_are_the_arrays_the_product_used():
    rng = np.random.default_rng(2)
    q, k, v, params = make(rng)
    Y, maps, new, _ = attention_product_forward(q, k, v, params, mode="gsb")
    assert new == {}
    np.testing.assert_array_equal(Y, maps["A"] @ maps["V"])  # Eq. 35 as the superposed product
    np.testing.assert_allclose(maps["A_re"].sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(maps["A_ret"], maps["A_re"] - params["Phi"])  # Eq. 9
    np.testing.assert_array_equal(maps["V0"], v - params["Omega"])  # Eq. 26
    assert set(np.unique(np.abs(maps["Q_b"]))) <= {1.3}  # alpha_q sign(...)
    _, bmaps, _, _ = attention_product_forward(q, k, v, params, mode="baseline")
    assert "A_ret" not in bmaps and "V0" not in bmaps and set(np.unique(np.abs(bmaps["Q_b"]))) == {1.0}


def test_initialize_computes_the_scales_where_the_forward_needs_them():
    rng = np.random.default_rng(3)
    q, k, v, params = make(rng)
    params = {n: a.astype(np.float32) for n, a in params.items()}
    q, k, v = (a.astype(np.float32) for a in (q, k, v))
    Y, maps, new, _ = attention_product_forward(q, k, v, params, mode="gsb", initialize=True)
    assert set(new) == {"q_alpha", "k_alpha", "alphas", "betas"}
    assert all(new[n].dtype == np.float32 and new[n].shape == params[n].shape for n in new)
    assert new["q_alpha"] == np.float32(max(act_sign_init(q), SCALE_FLOOR))
    np.testing.assert_array_equal(new["alphas"], gsb_attention_init(maps["A_ret"], 2).astype(np.float32))
    np.testing.assert_array_equal(new["betas"], gsb_value_init(maps["V0"], 2).astype(np.float32))
    # the forward used them: the same call with them stored gives the same output, bit for bit
    stored = {**params, **new}
    Y2, _, new2, _ = attention_product_forward(q, k, v, stored, mode="gsb")
    assert new2 == {} and np.array_equal(Y, Y2)
    # the parameters passed in are not written
    assert params["q_alpha"] == np.float32(1.3)


def test_eq35_hook_gets_the_component_stacks():
    rng = np.random.default_rng(4)
    q, k, v, params = make(rng)
    Y, maps, _, _ = attention_product_forward(q, k, v, params, mode="gsb")
    seen = {}

    def av(A_stack, V_stack, alphas, betas):
        seen.update(A=A_stack, V=V_stack)
        return gsb_av_bitwise(A_stack, V_stack, alphas, betas)
    Yb, _, _, _ = attention_product_forward(q, k, v, params, mode="gsb", av_product=av)
    assert seen["A"].shape == (3, B, H, N, N) and seen["V"].shape == (3, B, H, N, Dh)
    np.testing.assert_allclose(Yb, Y, rtol=0, atol=1e-12)  # the decomposition of Eq. 35 on bits
    # not with abin="mask" (A_bin is then a mask scale): the float product is used
    seen.clear()
    attention_product_forward(q, k, v, params, mode="gsb", abin="mask", av_product=av)
    assert seen == {}


def test_unknown_mode_is_refused_with_its_name():
    q = np.zeros((1, 1, 3, 2))
    with pytest.raises(ValueError, match="mode"):
        attention_product_forward(q, q, q, {}, mode="fp")
