"""Tests of gsbnp.quant.attention: baseline attention (Eqs. 7-8, switch) and GSB attention (Eqs. 9-20)."""

import math

import numpy as np
import pytest

from gsbnp.gradcheck import check_surrogate, rel_error
from gsbnp.quant import (baseline_attention_backward, baseline_attention_forward, gsb_attention_backward,
                         gsb_attention_forward)

B, H, N = 2, 3, 5
TOL = 1e-8


def surrogate_errors(forward, backward, arrays, rng, h=1e-5):
    """rel_error of each analytic gradient vs the numerical derivative of the frozen-residual surrogate."""
    return check_surrogate(forward, backward, arrays, rng=rng, h=h)


def softmax_rows(rng, shape, temp=1.0):
    z = rng.standard_normal(shape) * temp
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def literal_c(i, k):
    return 0.5 + 0.4 * i / k


# ----------------------------------------------------------------------------------------------
# baseline
# ----------------------------------------------------------------------------------------------

def edge_map():
    """An (N, N) map whose Eq. 8 gamma is exactly 0.75: one 0.75 per row, entries 0.375 (u = 0.5)."""
    m = np.array([[0.75, 0.375, 0.125, 0.0, 0.0625],
                  [0.0, 0.75, 0.375, 0.25, 0.125],
                  [0.125, 0.0, 0.75, 0.5, 0.375],
                  [0.375, 0.25, 0.0, 0.75, 0.0625],
                  [0.5, 0.125, 0.25, 0.0, 0.75]])
    return m


@pytest.mark.parametrize("mode", ["eq2", "eq8"])
def test_baseline_matches_surrogate(mode):
    rng = np.random.default_rng(0)
    A = softmax_rows(rng, (B, H, N, N), temp=2.0)
    A[0, 0] = edge_map()
    A[1, 2, 3] = 0.0
    errs = surrogate_errors(lambda: baseline_attention_forward(A, mode=mode),
                            lambda g, c: (baseline_attention_backward(g, c),), [A], rng)
    assert errs[0] < TOL, errs


@pytest.mark.parametrize("mode", ["eq2", "eq8"])
def test_baseline_matches_paper_formula(mode):
    rng = np.random.default_rng(1)
    A = softmax_rows(rng, (B, H, N, N), temp=3.0)
    A[0, 0] = edge_map()
    A[1, 1] = softmax_rows(rng, (N, N), temp=0.1)  # flat: nothing above 0.5, Eq. 8 must switch
    g = rng.standard_normal(A.shape)
    out, cache = baseline_attention_forward(A, mode=mode)
    dA = baseline_attention_backward(g, cache)
    switched = np.zeros((B, H), dtype=bool)
    for b in range(B):
        for h in range(H):
            a = A[b, h]
            gamma = a.mean()  # Eq. 2
            if mode == "eq8":
                big = a[a > 0.5]
                if big.size and np.count_nonzero(a / (big.sum() / big.size) > 0.5) >= N:
                    gamma = big.sum() / big.size  # Eq. 8
                else:
                    switched[b, h] = True
            u = a / gamma
            if (b, h) == (0, 0) and mode == "eq8":
                assert gamma == 0.75 and np.any(u == 1.0) and np.any(u == 0.5) and np.any(u == 0.0)
            assert np.array_equal(out[b, h], gamma * np.where(u > 0.5, 1.0, 0.0))  # Eq. 7, Eq. 3
            assert np.array_equal(cache["window"][b, h], (u >= 0) & (u <= 1))
            assert np.array_equal(dA[b, h], np.where((u >= 0) & (u <= 1), g[b, h], 0.0))
            assert cache["gamma"][b, h, 0, 0] == pytest.approx(gamma, rel=1e-15)
    assert np.array_equal(cache["switched"], switched)
    if mode == "eq8":
        assert switched[1, 1] and not switched[0, 0]


def test_eq8_erases_rows_and_switch_falls_back_to_eq2():
    peaked = [0.55, 0.3, 0.05, 0.05, 0.05]
    flat = [0.2] * N
    A = np.zeros((1, 3, N, N))
    A[0, 0] = [peaked, peaked, peaked, flat, flat]  # 6 values of A/0.55 above 0.5 >= N: no switch
    A[0, 1] = [peaked, flat, flat, flat, flat]  # only 2 >= N fails: switch
    A[0, 2] = [flat] * N  # nothing above 0.5: switch
    out8, c8 = baseline_attention_forward(A, mode="eq8")
    out2, c2 = baseline_attention_forward(A, mode="eq2")
    assert np.array_equal(c8["switched"], [[False, True, True]])
    assert not c2["switched"].any()
    # Eq. 8 without the switch erases tokens: rows 3 and 4 of map 0 are all zero (Fig. 7)
    assert np.all(out8[0, 0, 3:] == 0) and np.all(out8[0, 0, :3].max(axis=-1) > 0)
    assert c8["gamma"][0, 0, 0, 0] == 0.55
    # the switched maps are exactly the Eq. 2 maps, and no row is erased there
    assert np.array_equal(out8[0, 1:], out2[0, 1:])
    assert np.all(out8[0, 1:].max(axis=-1) > 0)
    # Eq. 2 on a flat map turns every value into 1 (Fig. 4b)
    assert np.all(c2["A_bin"][0, 2])


def test_baseline_bad_input():
    A = np.full((B, H, N, N), 0.2)
    with pytest.raises(ValueError, match="mode must be one of 'eq2', 'eq8'"):
        baseline_attention_forward(A, mode="eq9")
    with pytest.raises(ValueError, match=r"A_re must have rank 4"):
        baseline_attention_forward(A[0])
    with pytest.raises(ValueError, match=r"A_re must have shape \(B, H, N, N\)"):
        baseline_attention_forward(A[..., :3])
    with pytest.raises(ValueError, match="A_re contains NaN or inf"):
        baseline_attention_forward(A + np.inf)
    with np.errstate(all="ignore"):  # an all-zero map: gamma floored, output zero, never NaN
        out, cache = baseline_attention_forward(np.zeros((B, H, N, N)))
    assert np.all(out == 0) and np.all(np.isfinite(cache["gamma"]))


# ----------------------------------------------------------------------------------------------
# GSB attention
# ----------------------------------------------------------------------------------------------

def gsb_edge_input(rng, k, alpha0):
    """A_ret with exact zeros, rows with max <= 0, entries on u = A_ret/alpha_0 = 0, 0.5, 1, entries
    exactly on Theta_i and exactly on the window edge A_ret - Theta_i = 1 (for "row" and "batch").

    Two rows have max 16 (also the batch max), so Theta_i = c_i * 16 and Theta_i + 1 are exact.
    """
    A = rng.integers(-8, 41, size=(B, H, N, N)) / 8.0  # dyadic
    A[0, 1, 2] = -rng.integers(0, 8, size=N) / 8.0  # a row with max 0 (empty masks)
    A[1, 0, 4] = -1.0 - rng.random(N)  # a row with max < 0
    A[0, 0, 0, :3] = [0.0, alpha0, alpha0 / 2]  # u = 0, 1, 0.5
    A[1, 2, 1, 1] = 0.0
    A[0, 0, 1, 0] = A[1, 1, 3, 0] = A[0, 2, 4, 0] = 16.0
    ks = max(k, 1)
    theta = [literal_c(i, ks) * 16.0 for i in range(0, ks + 1)]  # theta[0] = 8 is Theta_0 ("mask")
    A[0, 0, 1, 1:ks + 1] = theta[1:]  # on the thresholds: not in M_i
    A[1, 1, 3, 1:] = [theta[1] + 1.0, theta[0] + 1.0, theta[0], theta[ks] + 1.0]  # window edges
    A[0, 2, 4, 1:] = [theta[min(2, ks)] + 1.0, theta[min(3, ks)] + 1.0, 0.0, -0.5]
    return A


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("abin", ["round", "mask"])
@pytest.mark.parametrize("scope", ["row", "batch"])
def test_gsb_matches_surrogate(k, abin, scope):
    rng = np.random.default_rng(10 + k)
    alphas = np.array([0.5, 0.3, 0.2, 0.15, 0.1][: k + 1])
    A = gsb_edge_input(rng, k, alphas[0])
    errs = surrogate_errors(
        lambda: gsb_attention_forward(A, alphas, k, scale_grad="sum", threshold_scope=scope, abin=abin),
        gsb_attention_backward, [A, alphas], rng)
    assert max(errs) < TOL, errs


def literal_gsb(A, alphas, k, g, scope, abin, scale_grad):
    """Eqs. 10-20 written out component by component."""
    top = A.max(axis=-1, keepdims=True) if scope == "row" else A.max()
    Theta = [literal_c(i, k) * top for i in range(1, k + 1)]
    M = [np.where(A > t, 1.0, 0.0) for t in Theta]  # Eq. 12
    if abin == "round":
        u = A / alphas[0]
        A_bin = np.clip(np.round(u), 0, 1)  # Eq. 11
        A0 = np.where((0 < u) & (u < 1), 1.0, 0.0)  # Eq. 18
        dalpha0_elem = np.where((0 < u) & (u < 1), A_bin - u, A_bin)  # Eq. 14
        win0 = (0 < u) & (u < 1)
    else:
        theta0 = 0.5 * top
        A_bin = np.where(A > theta0, 1.0, 0.0)
        win0 = (0 < A - theta0) & (A - theta0 < 1)
        A0 = alphas[0] * np.where(win0, 1.0, 0.0)
        dalpha0_elem = A_bin
    out = alphas[0] * A_bin + sum(alphas[i] * M[i - 1] for i in range(1, k + 1))  # Eq. 10
    Ai = [alphas[i] * np.where((0 < A - Theta[i - 1]) & (A - Theta[i - 1] < 1), 1.0, 0.0)
          for i in range(1, k + 1)]  # Eq. 20
    dA = g * (A0 + sum(Ai))  # Eq. 16
    numel = A.size
    if scale_grad == "mean":  # 1 / (H N N), batch included (Eqs. 14, 15)
        dal = [np.sum(g * dalpha0_elem) / numel] + [np.sum(g * m) / numel for m in M]
    elif scale_grad == "sqrt":
        dal = [np.sum(g * dalpha0_elem) / math.sqrt(numel)]
        dal += [np.sum(g * m) / math.sqrt(max(m.sum(), 1)) for m in M]
    else:
        dal = [np.sum(g * dalpha0_elem)] + [np.sum(g * m) for m in M]
    wins = [(0 < A - t) & (A - t < 1) for t in Theta]
    return out, dA, np.array(dal), A_bin, win0, M, wins


@pytest.mark.parametrize("k", [0, 1, 2, 4])
@pytest.mark.parametrize("abin", ["round", "mask"])
@pytest.mark.parametrize("scope", ["row", "batch"])
@pytest.mark.parametrize("scale_grad", ["mean", "sqrt"])
def test_gsb_matches_paper_formula(k, abin, scope, scale_grad):
    rng = np.random.default_rng(20 + k)
    alphas = np.array([0.5, 0.3, 0.2, 0.15, 0.1][: k + 1])
    A = gsb_edge_input(rng, k, alphas[0])
    g = rng.standard_normal(A.shape)
    out, cache = gsb_attention_forward(A, alphas, k, scale_grad=scale_grad, threshold_scope=scope, abin=abin)
    dA, dal = gsb_attention_backward(g, cache)
    out_l, dA_l, dal_l, A_bin, win0, M, wins = literal_gsb(A, alphas, k, g, scope, abin, scale_grad)
    assert rel_error(out, out_l) < 1e-15
    assert np.array_equal(cache["A_bin"], A_bin > 0)
    assert np.array_equal(cache["window0"], win0)
    assert cache["M"].shape == (k, B, H, N, N) and cache["M"].dtype == bool
    for i in range(k):
        assert np.array_equal(cache["M"][i], M[i] > 0)
        assert np.array_equal(cache["windows"][i], wins[i])
    assert rel_error(dA, dA_l) < 1e-14
    assert rel_error(dal, dal_l) < 1e-12
    # the constructed edges are present
    assert all(np.any(cache["u"] == e) for e in (0.0, 0.5, 1.0)) if abin == "round" else True
    if k or abin == "mask":
        d = A[None] - cache["Theta"]  # every threshold, Theta_0 included for "mask"
        assert np.all(np.any(d == 0, axis=(1, 2, 3, 4))) and np.all(np.any(d == 1, axis=(1, 2, 3, 4)))


def test_gsb_scale_grad_relations_and_empty_mask():
    rng = np.random.default_rng(30)
    A = softmax_rows(rng, (B, H, N, N))
    k = 2
    alphas = np.array([0.1, 0.05, 0.02])
    g = rng.standard_normal(A.shape)
    d = {s: gsb_attention_backward(g, gsb_attention_forward(A, alphas, k, scale_grad=s)[1])
         for s in ("mean", "sqrt", "sum")}
    _, cache = gsb_attention_forward(A, alphas, k)
    counts = cache["M"].reshape(k, -1).sum(axis=1)
    assert np.all(counts > 0)
    assert rel_error(d["mean"][1] * A.size, d["sum"][1]) < 1e-13
    assert rel_error(d["sqrt"][1] * np.sqrt([A.size, *counts]), d["sum"][1]) < 1e-13
    for s in ("mean", "sqrt"):
        assert np.array_equal(d[s][0], d["sum"][0])  # dA_ret does not depend on scale_grad
    # all rows <= 0: every mask is empty; "sqrt" guards the zero count, never NaN
    _, cache = gsb_attention_forward(-A, alphas, k, scale_grad="sqrt")
    assert not cache["M"].any()
    dA, dal = gsb_attention_backward(g, cache)
    assert np.all(np.isfinite(dal)) and np.all(dal[1:] == 0)


def test_gsb_never_erases_a_row_with_positive_max():
    """Property (Fig. 7): with positive alphas, row-wise thresholds and k >= 1 (or abin="mask", any k),
    every row whose max is > 0 has A_gsb >= alpha_1 (alpha_0 for "mask") at its argmax, because
    max > c_i max for c_i < 1. A row whose max is <= 0 has empty masks and A_bin = 0: it is all zero.
    (With k = 0 and abin="round" a row with max <= alpha_0 / 2 is erased; it is not claimed.)"""
    rng = np.random.default_rng(40)
    for trial in range(150):
        k = int(rng.integers(0, 5))
        abin = "mask" if (k == 0 or trial % 3 == 0) else "round"
        alphas = rng.uniform(1e-5, 2.0, size=k + 1)
        A = softmax_rows(rng, (B, H, N, N), temp=rng.uniform(0.1, 5)) - rng.uniform(0, 0.3, size=(1, H, N, N))
        A[rng.random(A.shape) < 0.1] = 0.0
        out, cache = gsb_attention_forward(A, alphas, k, abin=abin)
        top = A.max(axis=-1)
        at_max = np.take_along_axis(out, A.argmax(axis=-1)[..., None], axis=-1)[..., 0]
        floor = alphas[0] if abin == "mask" else alphas[1]
        assert np.all(at_max[top > 0] >= floor * (1 - 1e-12))
        assert np.all(out[top <= 0] == 0)
        assert np.all(out >= 0)


def test_gsb_k0_round_can_erase_rows():
    A = np.full((1, 1, N, N), 0.2)
    out, _ = gsb_attention_forward(A, np.array([0.5]), 0)  # 0.2 / 0.5 = 0.4 rounds to 0
    assert np.all(out == 0)
    out, _ = gsb_attention_forward(A, np.array([0.5]), 0, abin="mask")  # strict: 0.2 > 0.1 everywhere
    assert np.all(out == 0.5)


def test_gsb_threshold_scope_row_vs_batch():
    rng = np.random.default_rng(50)
    A = softmax_rows(rng, (B, H, N, N), temp=2.0)
    alphas = np.array([0.3, 0.2, 0.1])
    out_r, c_r = gsb_attention_forward(A, alphas, 2, threshold_scope="row")
    out_b, c_b = gsb_attention_forward(A, alphas, 2, threshold_scope="batch")
    assert c_r["Theta"].shape == (2, B, H, N, 1) and c_b["Theta"].shape == (2, 1, 1, 1, 1)
    assert np.array_equal(c_b["Theta"].ravel(), [0.7 * A.max(), 0.9 * A.max()])
    assert not np.array_equal(out_r, out_b)
    # batch thresholds make one sample's output depend on the others; row thresholds do not
    A2 = A.copy()
    A2[1] *= 3.0
    assert np.array_equal(gsb_attention_forward(A2, alphas, 2)[0][0], out_r[0])
    assert not np.array_equal(gsb_attention_forward(A2, alphas, 2, threshold_scope="batch")[0][0], out_b[0])


def test_gsb_dtype_and_threshold_coefficients():
    from gsbnp.quant import threshold_coefficients
    for k in range(1, 5):
        c = threshold_coefficients(k)
        assert [float(v) for v in c] == [0.5 + 0.4 * i / k for i in range(1, k + 1)]
    rng = np.random.default_rng(60)
    A = softmax_rows(rng, (B, H, N, N)).astype(np.float32)
    out, cache = gsb_attention_forward(A, np.array([0.2, 0.1, 0.1]), 2)
    dA, dal = gsb_attention_backward(np.ones_like(A), cache)
    assert out.dtype == np.float32 and dA.dtype == np.float32 and dal.dtype == np.float64


def test_gsb_bad_input():
    A = np.full((B, H, N, N), 0.2)
    al = np.array([0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match=r"alphas must have length k \+ 1 = 3"):
        gsb_attention_forward(A, al[:2], 2)
    with pytest.raises(ValueError, match="alphas must all be > 0"):
        gsb_attention_forward(A, np.array([0.3, 0.0, 0.1]), 2)
    with pytest.raises(ValueError, match="alphas must all be > 0"):
        gsb_attention_forward(A, np.array([-0.3, 0.1, 0.1]), 2)
    with pytest.raises(ValueError, match="alphas must have rank 1"):
        gsb_attention_forward(A, al[None], 2)
    with pytest.raises(ValueError, match=r"k must be in \[0, 4\]"):
        gsb_attention_forward(A, np.ones(6), 5)
    with pytest.raises(TypeError, match="k must be an int"):
        gsb_attention_forward(A, al, 2.0)
    with pytest.raises(ValueError, match="threshold_scope must be one of 'row', 'batch'"):
        gsb_attention_forward(A, al, 2, threshold_scope="sample")
    with pytest.raises(ValueError, match="abin must be one of 'round', 'mask'"):
        gsb_attention_forward(A, al, 2, abin="sign")
    with pytest.raises(ValueError, match="scale_grad must be one of 'mean', 'sqrt', 'sum'"):
        gsb_attention_forward(A, al, 2, scale_grad="none")
    with pytest.raises(ValueError, match=r"A_ret must have shape \(B, H, N, N\)"):
        gsb_attention_forward(A[..., :4], al, 2)
    with pytest.raises(ValueError, match="A_ret contains NaN or inf"):
        gsb_attention_forward(A * np.inf, al, 2)
    _, cache = gsb_attention_forward(A, al, 2)
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        gsb_attention_backward(A[0], cache)
