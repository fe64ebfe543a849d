"""Tests of gsbnp.quant.activations: learnable type-B / type-A binarizers and the baseline ones.

Each backward is checked (a) against the numerical derivative of the frozen-residual surrogate and
(b) against the paper's formula written literally, on inputs that hit exact zeros and window edges.
"""

import math

import numpy as np
import pytest

from gsbnp.gradcheck import check_surrogate, rel_error
from gsbnp.quant import (act_round_backward, act_round_forward, act_sign_backward, act_sign_forward,
                         baseline_act_round_backward, baseline_act_round_forward,
                         baseline_act_sign_backward, baseline_act_sign_forward)

B, N, D, H, Dh = 2, 5, 8, 3, 4
TOL = 1e-8


def surrogate_errors(forward, backward, arrays, rng, h=1e-5):
    """rel_error of each analytic gradient vs the numerical derivative of the frozen-residual surrogate."""
    return check_surrogate(forward, backward, arrays, rng=rng, h=h)


def edge_input(rng, shape, alpha, bias, qs):
    """Dyadic x, so that ``(x + bias) / alpha`` is exact; some entries put q exactly on ``qs``."""
    x = rng.integers(-24, 25, size=shape) / 16.0
    flat = x.reshape(-1)
    bflat = np.broadcast_to(bias, shape).reshape(-1)
    idx = rng.choice(flat.size, size=3 * len(qs), replace=False)
    for j, i in enumerate(idx):
        flat[i] = qs[j % len(qs)] * alpha - bflat[i]
    # a few non-dyadic entries as well
    more = rng.choice(flat.size, size=flat.size // 4, replace=False)
    more = np.setdiff1d(more, idx)
    flat[more] = rng.standard_normal(more.size)
    return x


CASES = [((B, N, D), (D,)), ((B, H, N, Dh), (H, 1, Dh))]


@pytest.mark.parametrize("kind", ["sign", "round"])
@pytest.mark.parametrize("xshape,bshape", CASES)
def test_learnable_matches_surrogate(kind, xshape, bshape):
    rng = np.random.default_rng(1)
    fwd, bwd = ((act_sign_forward, act_sign_backward) if kind == "sign"
                else (act_round_forward, act_round_backward))
    alpha = np.array(0.5)
    bias = rng.integers(-4, 5, size=bshape) / 8.0
    x = edge_input(rng, xshape, 0.5, bias, [0.0, 1.0, -1.0, 0.5, 1.5, -0.5])
    q = (x + bias) / 0.5
    for edge in (0.0, 1.0, -1.0, 0.5):
        assert np.any(q == edge)
    errs = surrogate_errors(lambda: fwd(x, alpha, bias, scale_grad="sum"), bwd, [x, alpha, bias], rng)
    assert max(errs) < TOL, errs


def literal_sign(x, alpha, bias, g):
    """Eqs. 4, 5, 29 written out."""
    q = (x + bias) / alpha
    inside = np.abs(q) <= 1
    s = np.where(q >= 0, 1.0, -1.0)
    out = np.where(q >= 0, alpha, -alpha)
    dx = np.where(inside, g, 0.0)
    dalpha_elem = np.where(inside, s - q, s)
    return out, inside, dx, dalpha_elem


def literal_round(x, alpha, bias, g):
    """Eqs. 3, 5, 14 written out (inclusive clip window, docs/conventions.md#exact-edges)."""
    q = (x + bias) / alpha
    A_bin = np.where(q > 0.5, 1.0, 0.0)  # Eq. 3: 0 if q <= 0.5, 1 otherwise
    inside = (q >= 0) & (q <= 1)
    out = alpha * A_bin
    dx = np.where(inside, g, 0.0)
    dalpha_elem = np.where(inside, A_bin - q, A_bin)
    return out, inside, dx, dalpha_elem


@pytest.mark.parametrize("kind", ["sign", "round"])
@pytest.mark.parametrize("xshape,bshape", CASES)
@pytest.mark.parametrize("scale_grad", ["mean", "sqrt", "sum"])
def test_learnable_matches_paper_formula(kind, xshape, bshape, scale_grad):
    rng = np.random.default_rng(2)
    fwd, bwd, lit = ((act_sign_forward, act_sign_backward, literal_sign) if kind == "sign"
                     else (act_round_forward, act_round_backward, literal_round))
    alpha = 0.25
    bias = rng.integers(-4, 5, size=bshape) / 8.0
    x = edge_input(rng, xshape, alpha, bias, [0.0, 1.0, -1.0, 0.5, 1.5])
    g = rng.standard_normal(xshape)
    out, cache = fwd(x, alpha, bias, scale_grad=scale_grad)
    dx, dalpha, dbias = bwd(g, cache)
    out_l, inside, dx_l, dalpha_elem = lit(x, alpha, bias, g)
    assert np.array_equal(out, out_l)
    assert np.array_equal(cache["window"], inside)
    assert np.array_equal(dx, dx_l)
    red = {"mean": x.size, "sqrt": math.sqrt(x.size), "sum": 1.0}[scale_grad]
    assert dalpha == pytest.approx(np.sum(g * dalpha_elem) / red, rel=1e-12, abs=1e-14)
    assert isinstance(dalpha, float)
    # dbias: the true sum over the broadcast axes, whatever scale_grad says
    dbias_l = dx_l.sum(axis=tuple(range(x.ndim - len(bshape))))
    if len(bshape) == 3:
        dbias_l = dbias_l.sum(axis=1, keepdims=True)
    assert dbias.shape == bshape
    assert rel_error(dbias, dbias_l) < 1e-13


def test_round_half_to_even_and_sign_of_zero():
    x = np.array([[0.0, 0.5, 1.0, 1.5, 2.5, -0.5, 0.49]])
    out, _ = act_round_forward(x, 1.0, None)
    assert np.array_equal(out, [[0, 0, 1, 1, 1, 0, 0]])
    out, _ = act_sign_forward(x, 2.0, None)
    assert np.array_equal(out, [[2, 2, 2, 2, 2, -2, 2]])  # sign(0) = +1


def test_scale_grad_relations():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, N, D))
    bias = rng.standard_normal(D) * 0.1
    g = rng.standard_normal(x.shape)
    for fwd, bwd in ((act_sign_forward, act_sign_backward), (act_round_forward, act_round_backward)):
        d = {s: bwd(g, fwd(x, 0.7, bias, scale_grad=s)[1]) for s in ("mean", "sqrt", "sum")}
        assert d["mean"][1] * x.size == pytest.approx(d["sum"][1], rel=1e-12)
        assert d["sqrt"][1] * math.sqrt(x.size) == pytest.approx(d["sum"][1], rel=1e-12)
        assert d["sum"][1] != 0
        for s in ("mean", "sqrt"):  # dx and dbias do not depend on scale_grad
            assert np.array_equal(d[s][0], d["sum"][0])
            assert np.array_equal(d[s][2], d["sum"][2])


def test_alpha_forms_and_no_bias():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    ref, _ = act_sign_forward(x, 0.5, None)
    assert ref.dtype == np.float32  # a float alpha keeps x's dtype
    for a in (np.float64(0.5), np.array(0.5), np.array([0.5])):
        out, cache = act_sign_forward(x, a, None)
        assert np.array_equal(out, ref) and out.dtype == np.float32
    dx, dalpha, dbias = act_sign_backward(np.ones_like(x), cache)
    assert dbias is None and dx.shape == x.shape


def test_learnable_bad_input():
    x = np.zeros((B, N, D))
    b = np.zeros(D)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        act_sign_forward(x, 0.0, b)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        act_round_forward(x, -1.0, b)
    with pytest.raises(TypeError, match="alpha must be a positive number"):
        act_sign_forward(x, "1", b)
    with pytest.raises(ValueError, match="alpha must be a scalar"):
        act_sign_forward(x, np.ones(2), b)
    with pytest.raises(ValueError, match="bias of shape"):
        act_sign_forward(x, 1.0, np.zeros(N))
    with pytest.raises(ValueError, match="bias of shape"):
        act_sign_forward(x, 1.0, np.zeros((3, 1, D)))
    with pytest.raises(ValueError, match="scale_grad must be one of 'mean', 'sqrt', 'sum'"):
        act_round_forward(x, 1.0, b, scale_grad="avg")
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        act_sign_forward(np.zeros((B, D), dtype=int), 1.0, b)
    xn = x.copy()
    xn[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        act_sign_forward(xn, 1.0, b)
    _, cache = act_sign_forward(x, 1.0, b)
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        act_sign_backward(np.zeros((B, D)), cache)


# ----------------------------------------------------------------------------------------------
# baseline (Eqs. 1-2)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sign", "round"])
def test_baseline_matches_surrogate(kind):
    rng = np.random.default_rng(5)
    fwd, bwd = ((baseline_act_sign_forward, baseline_act_sign_backward) if kind == "sign"
                else (baseline_act_round_forward, baseline_act_round_backward))
    x = rng.standard_normal((B, N, D))
    x[0] = edge_sample(rng)  # zeros and exact window edges
    if kind == "round":
        x = np.abs(x)
    errs = surrogate_errors(lambda: fwd(x), lambda g, c: (bwd(g, c),), [x], rng)
    assert errs[0] < TOL, errs


def edge_sample(rng):
    """(N, D) dyadic sample with mean 0 and mean|x| = 0.5 exactly, holding zeros and +-0.5 entries.

    Ten copies of (0.25, -0.25, 0.75, -0.75) have mean 0 and mean-abs 0.5; two groups are swapped
    for (0.5, 0.5, -0.5, -0.5) and one for (0, 0, 1, -1), which keeps both sums.
    """
    vals = np.tile([0.25, -0.25, 0.75, -0.75], 10)
    vals[:8] = [0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 1.0, -1.0]
    return rng.permutation(vals).reshape(N, D)


def test_baseline_matches_paper_formula():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((B, N, D))
    x[0] = edge_sample(rng)
    g = rng.standard_normal(x.shape)
    out, cache = baseline_act_sign_forward(x)
    dx = baseline_act_sign_backward(g, cache)
    for b in range(B):
        a_mu = x[b].mean()
        beta = np.abs(x[b]).mean()
        q = (x[b] - a_mu) / beta
        if b == 0:  # the constructed sample hits sign(0) and both window edges
            assert a_mu == 0 and beta == 0.5
            assert np.any(q == 0) and np.any(q == 1) and np.any(q == -1)
        assert np.array_equal(out[b], np.where(x[b] - a_mu >= 0, beta, -beta))
        assert np.array_equal(cache["window"][b], np.abs(q) <= 1)
        assert np.array_equal(dx[b], np.where(np.abs(q) <= 1, g[b], 0.0))

    xa = np.abs(x)  # sample 0: values {0, .25, .5, .75, 1}, beta = 0.5: q = 0, 0.5, 1, 1.5, 2
    out, cache = baseline_act_round_forward(xa)
    dx = baseline_act_round_backward(g, cache)
    for b in range(B):
        beta = np.abs(xa[b]).mean()
        q = xa[b] / beta
        if b == 0:
            assert all(np.any(q == e) for e in (0.0, 0.5, 1.0, 1.5))
        assert np.array_equal(out[b], np.where(q > 0.5, beta, 0.0))
        assert np.array_equal(cache["window"][b], (q >= 0) & (q <= 1))
        assert np.array_equal(dx[b], np.where((q >= 0) & (q <= 1), g[b], 0.0))


def test_baseline_per_sample_and_all_zero_guard():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, N, D))
    out1, _ = baseline_act_sign_forward(x)
    x2 = x.copy()
    x2[0] *= 10.0  # statistics are per sample: sample 1 must not change
    out2, _ = baseline_act_sign_forward(x2)
    assert np.array_equal(out1[1], out2[1])
    x2[1] = 0.0  # an all-zero sample: output 0, no NaN
    for fwd in (baseline_act_sign_forward, baseline_act_round_forward):
        out, cache = fwd(x2)
        assert np.all(np.isfinite(out)) and np.all(np.abs(out[1]) < 1e-300)


def test_baseline_bad_input():
    with pytest.raises(ValueError, match="rank >= 2"):
        baseline_act_sign_forward(np.zeros(4))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        baseline_act_round_forward([[1.0, 2.0]])
