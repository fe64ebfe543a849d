"""Tests of gsbnp.quant.value: the GSB value matrix (Eqs. 26-32)."""

import math

import numpy as np
import pytest

from gsbnp.gradcheck import check_surrogate, rel_error
from gsbnp.quant import gsb_value_backward, gsb_value_forward

B, H, N, Dh = 2, 3, 5, 4
TOL = 1e-8
BETAS = np.array([0.5, 0.25, 0.375, 0.125, 0.625])


def surrogate_errors(forward, backward, arrays, rng, h=1e-5):
    """rel_error of each analytic gradient vs the numerical derivative of the frozen-residual surrogate."""
    return check_surrogate(forward, backward, arrays, rng=rng, h=h)


def literal_c(i, k):
    return 0.5 + 0.4 * i / k


def value_edge_input(rng, k, betas):
    """Dyadic V0: sample 0 has max 4 and min -2 (so c_i v_max, c_i v_min are exact), entries on them,
    exact zeros and entries on the window edges V0 = +-beta_i. Sample 1 is all positive (v_min > 0)."""
    V0 = rng.integers(-15, 33, size=(B, H, N, Dh)) / 8.0
    V0[0, 0, 0, :2] = [4.0, -2.0]
    V0[0, 1, 1, :2] = 0.0
    ks = max(k, 1)
    flat = V0[0].reshape(-1)
    flat[8:8 + ks] = [literal_c(i, ks) * 4.0 for i in range(1, ks + 1)]  # on upper thresholds
    flat[16:16 + ks] = [literal_c(i, ks) * -2.0 for i in range(1, ks + 1)]  # on lower thresholds
    flat[24:24 + len(betas)] = betas  # |V0 / beta_i| = 1
    flat[30:30 + len(betas)] = -betas
    V0[1] = 0.25 + rng.random((H, N, Dh))  # v_min > 0: the lower condition never holds
    return V0


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("v_grad", ["masked", "unmasked"])
@pytest.mark.parametrize("scope", ["sample", "batch"])
def test_value_matches_surrogate(k, v_grad, scope):
    rng = np.random.default_rng(k)
    betas = BETAS[: k + 1].copy()
    V0 = value_edge_input(rng, k, betas)
    errs = surrogate_errors(
        lambda: gsb_value_forward(V0, betas, k, scale_grad="sum", threshold_scope=scope, v_grad=v_grad),
        gsb_value_backward, [V0, betas], rng)
    assert max(errs) < TOL, errs


def literal_value(V0, betas, k, g, scope, v_grad, scale_grad):
    """Eqs. 26-32 written out component by component."""
    axes = (1, 2, 3)
    vmax = V0.max(axis=axes, keepdims=True) if scope == "sample" else V0.max()
    vmin = V0.min(axis=axes, keepdims=True) if scope == "sample" else V0.min()
    sign = np.where(V0 >= 0, 1.0, -1.0)
    M = [np.ones_like(V0)] + [
        np.where((V0 > literal_c(i, k) * vmax) | (V0 < literal_c(i, k) * vmin), 1.0, 0.0)
        for i in range(1, k + 1)]  # Eq. 27
    out = sum(betas[i] * sign * M[i] for i in range(k + 1))  # Eq. 26
    Vi = [np.where((np.abs(V0 / betas[i]) <= 1) & (M[i] != 0), 1.0, 0.0) for i in range(k + 1)]  # Eqs. 31, 32
    if v_grad == "unmasked":
        Vi = [np.where(np.abs(V0 * M[i] / betas[i]) <= 1, 1.0, 0.0) for i in range(k + 1)]
    dV0 = g * sum(Vi)  # Eq. 30
    # Eq. 29 on V_re^i = V0 * M_i: sign(V_re^i) is sign(V0) masked
    elem = [M[i] * np.where(np.abs(V0 / betas[i]) <= 1, sign - V0 / betas[i], sign) for i in range(k + 1)]
    if scale_grad == "mean":  # Eq. 28, batch included
        dbetas = [np.sum(g * e) / V0.size for e in elem]
    elif scale_grad == "sqrt":
        dbetas = [np.sum(g * elem[0]) / math.sqrt(V0.size)]
        dbetas += [np.sum(g * elem[i]) / math.sqrt(max(M[i].sum(), 1)) for i in range(1, k + 1)]
    else:
        dbetas = [np.sum(g * e) for e in elem]
    windows = [(np.abs(V0 / betas[i]) <= 1) & (M[i] != 0) for i in range(k + 1)]
    return out, dV0, np.array(dbetas), M, windows


@pytest.mark.parametrize("k", [0, 1, 2, 4])
@pytest.mark.parametrize("v_grad", ["masked", "unmasked"])
@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize("scale_grad", ["mean", "sqrt", "sum"])
def test_value_matches_paper_formula(k, v_grad, scope, scale_grad):
    rng = np.random.default_rng(10 + k)
    betas = BETAS[: k + 1].copy()
    V0 = value_edge_input(rng, k, betas)
    g = rng.standard_normal(V0.shape)
    out, cache = gsb_value_forward(V0, betas, k, scale_grad=scale_grad, threshold_scope=scope, v_grad=v_grad)
    dV0, dbetas = gsb_value_backward(g, cache)
    out_l, dV0_l, dbetas_l, M, windows = literal_value(V0, betas, k, g, scope, v_grad, scale_grad)
    assert rel_error(out, out_l) < 1e-15
    assert cache["M"].dtype == bool and cache["M"].shape == (k + 1, B, H, N, Dh)
    for i in range(k + 1):
        assert np.array_equal(cache["M"][i], M[i] != 0)
        assert np.array_equal(cache["window"][i], windows[i])
    assert np.array_equal(dV0, dV0_l)
    assert rel_error(dbetas, dbetas_l) < 1e-12
    # the constructed edges are present
    assert np.any(np.abs(V0[None] / betas.reshape(-1, 1, 1, 1, 1)) == 1)
    if k and scope == "sample":
        for i in range(1, k + 1):  # entries exactly on c_i v_max / c_i v_min are not in M_i (strict)
            for t in (literal_c(i, k) * 4.0, literal_c(i, k) * -2.0):
                on = V0[0] == t
                assert on.any() and not cache["M"][i, 0][on].any()
        for i in range(1, k + 1):  # sample 1 has v_min > 0: only the upper condition can hold
            assert np.array_equal(cache["M"][i, 1], V0[1] > literal_c(i, k) * V0[1].max())


def test_value_takes_only_superposed_levels():
    """V_gsb entries lie in {+-(beta_0 + ... + beta_j)}: masks are nested, so each entry is sign(V0)
    times the cumulative sum up to the highest mask that contains it."""
    rng = np.random.default_rng(20)
    for trial in range(150):
        k = int(rng.integers(0, 5))
        betas = rng.uniform(1e-5, 2.0, size=k + 1)
        V0 = rng.standard_normal((B, H, N, Dh)) * rng.uniform(0.1, 10) + rng.uniform(-1, 1)
        V0[rng.random(V0.shape) < 0.1] = 0.0
        scope = "sample" if trial % 2 else "batch"
        out, cache = gsb_value_forward(V0, betas, k, threshold_scope=scope)
        levels = np.cumsum(betas)
        j = cache["M"].sum(axis=0) - 1  # index of the highest mask (nested masks)
        assert np.all(cache["M"][np.arange(k + 1)[:, None, None, None, None] <= j[None]])  # nested
        expected = np.where(V0 >= 0, 1.0, -1.0) * levels[j]
        assert rel_error(out, expected) < 1e-15
        assert np.all(np.isin(np.abs(np.round(out, 12)), np.round(levels, 12)))


def test_value_scale_grad_relations():
    rng = np.random.default_rng(30)
    V0 = rng.standard_normal((B, H, N, Dh))
    betas = np.array([0.8, 0.4, 0.2])
    g = rng.standard_normal(V0.shape)
    d = {s: gsb_value_backward(g, gsb_value_forward(V0, betas, 2, scale_grad=s)[1])
         for s in ("mean", "sqrt", "sum")}
    counts = gsb_value_forward(V0, betas, 2)[1]["M"].reshape(3, -1).sum(axis=1)
    assert counts[0] == V0.size and np.all(counts > 0)
    assert rel_error(d["mean"][1] * V0.size, d["sum"][1]) < 1e-13
    assert rel_error(d["sqrt"][1] * np.sqrt(counts), d["sum"][1]) < 1e-13
    for s in ("mean", "sqrt"):
        assert np.array_equal(d[s][0], d["sum"][0])


def test_masked_vs_unmasked():
    rng = np.random.default_rng(40)
    V0 = rng.standard_normal((B, H, N, Dh))
    betas = np.array([3.0, 0.4, 0.2])  # beta_0 large: every entry inside window 0
    g = np.ones(V0.shape)
    dm, bm = gsb_value_backward(g, gsb_value_forward(V0, betas, 2, v_grad="masked")[1])
    du, bu = gsb_value_backward(g, gsb_value_forward(V0, betas, 2, v_grad="unmasked")[1])
    _, cache = gsb_value_forward(V0, betas, 2)
    n_out = 2 - cache["M"][1:].sum(axis=0)
    assert np.array_equal(du - dm, n_out.astype(float))  # each excluding mask adds g
    assert np.array_equal(bm, bu)  # dbeta does not depend on v_grad
    assert np.all(dm >= 1)


def test_value_dtype():
    rng = np.random.default_rng(50)
    V0 = rng.standard_normal((B, H, N, Dh)).astype(np.float32)
    out, cache = gsb_value_forward(V0, np.array([0.5, 0.2, 0.1], dtype=np.float32), 2)
    dV0, db = gsb_value_backward(np.ones_like(V0), cache)
    assert out.dtype == np.float32 and dV0.dtype == np.float32 and db.dtype == np.float32


def test_value_bad_input():
    V0 = np.ones((B, H, N, Dh))
    be = np.array([0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match=r"betas must have length k \+ 1 = 3"):
        gsb_value_forward(V0, be[:2], 2)
    with pytest.raises(ValueError, match="betas must all be > 0"):
        gsb_value_forward(V0, np.array([0.3, 0.2, 0.0]), 2)
    with pytest.raises(ValueError, match=r"k must be in \[0, 4\]"):
        gsb_value_forward(V0, be, -1)
    with pytest.raises(ValueError, match="threshold_scope must be one of 'sample', 'batch'"):
        gsb_value_forward(V0, be, 2, threshold_scope="row")
    with pytest.raises(ValueError, match="v_grad must be one of 'masked', 'unmasked'"):
        gsb_value_forward(V0, be, 2, v_grad="none")
    with pytest.raises(ValueError, match="scale_grad must be one of"):
        gsb_value_forward(V0, be, 2, scale_grad="avg")
    with pytest.raises(ValueError, match="V0 must have rank 4"):
        gsb_value_forward(V0[0], be, 2)
    with pytest.raises(TypeError, match="betas must be a numpy.ndarray"):
        gsb_value_forward(V0, [0.3, 0.2, 0.1], 2)
    _, cache = gsb_value_forward(V0, be, 2)
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        gsb_value_backward(V0[..., :2], cache)
