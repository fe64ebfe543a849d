"""Tests of gsbnp.quant.init: initial scales of GSB attention (Eqs. 21-25), GSB value (Eqs. 33-34)
and of the activation binarizers."""

import warnings

import numpy as np
import pytest

from gsbnp.quant import (SCALE_FLOOR, act_round_init, act_sign_init, gsb_attention_forward,
                         gsb_attention_init, gsb_value_forward, gsb_value_init)

B, H, N, Dh = 2, 3, 5, 4


def literal_c(i, k):
    return 0.5 + 0.4 * i / k


def softmax_rows(rng, shape, temp=1.0):
    z = rng.standard_normal(shape) * temp
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def no_warning(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


def one_warning(fn, *args, **kw):
    with pytest.warns(RuntimeWarning) as rec:
        out = fn(*args, **kw)
    assert len(rec) == 1, [str(r.message) for r in rec]
    return out, str(rec[0].message)


# ----------------------------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------------------------

def test_attention_init_eq25_k2():
    """k = 2: Eq. 25 with strict masks, regions R_1 = M_1 \\ M_2 and R_2 = M_2."""
    rng = np.random.default_rng(0)
    A = softmax_rows(rng, (B, H, N, N), temp=2.0)
    alphas = no_warning(gsb_attention_init, A, 2)
    top = A.max(axis=-1, keepdims=True)
    m1, m2 = A > 0.7 * top, A > 0.9 * top
    a0 = A.sum() / A.size
    a1 = (A[m1].sum() - A[m2].sum()) / (m1.sum() - m2.sum()) - a0
    a2 = A[m2].sum() / m2.sum() - (a0 + a1)
    assert alphas.dtype == np.float64 and alphas.shape == (3,)
    np.testing.assert_allclose(alphas, [a0, a1, a2], rtol=1e-12)
    # the superposition reproduces the region means: alpha_0 + alpha_1 = mean of R_1 etc.
    assert alphas[:2].sum() == pytest.approx(A[m1 & ~m2].mean(), rel=1e-12)
    assert alphas.sum() == pytest.approx(A[m2].mean(), rel=1e-12)


@pytest.mark.parametrize("k", [0, 1, 3, 4])
@pytest.mark.parametrize("scope", ["row", "batch"])
def test_attention_init_general_k_uses_forward_masks(k, scope):
    rng = np.random.default_rng(k)
    A = softmax_rows(rng, (B, H, N, N), temp=4.0)
    with warnings.catch_warnings():  # small maps: some bands are empty (floored, checked below)
        warnings.simplefilter("ignore", RuntimeWarning)
        alphas = gsb_attention_init(A, k, threshold_scope=scope)
    _, cache = gsb_attention_forward(A, np.ones(k + 1), k, threshold_scope=scope)
    M = list(cache["M"]) + [np.zeros_like(A, dtype=bool)]
    expected = [A.mean()]
    for i in range(1, k + 1):
        region = M[i - 1] & ~M[i]
        mean = A[region].mean() if region.any() else np.nan
        val = mean - sum(expected) if region.any() else SCALE_FLOOR
        expected.append(val if val > 0 else SCALE_FLOOR)
    np.testing.assert_allclose(alphas, expected, rtol=1e-12)
    assert np.all(alphas > 0) and np.all(np.isfinite(alphas))


def test_attention_init_mask_abin():
    rng = np.random.default_rng(5)
    A = softmax_rows(rng, (B, H, N, N), temp=3.0)
    alphas = gsb_attention_init(A, 2, abin="mask")
    top = A.max(axis=-1, keepdims=True)
    m0, m1, m2 = A > 0.5 * top, A > 0.7 * top, A > 0.9 * top
    a0 = A[m0 & ~m1].mean()
    a1 = A[m1 & ~m2].mean() - a0
    a2 = A[m2].mean() - a0 - a1
    np.testing.assert_allclose(alphas, [a0, a1, a2], rtol=1e-12)


def test_attention_init_empty_region_floors_and_subtraction_uses_floor():
    # every row holds only 0 and its max: the band (0.7 max, 0.9 max] is empty
    A = np.zeros((B, H, N, N))
    A[..., 0] = 1.0
    A[0, 0, 0, 1] = 0.95  # one entry in M_2 but below the max
    alphas, msg = one_warning(gsb_attention_init, A, 2)
    a0 = A.mean()
    assert alphas[0] == a0
    assert alphas[1] == SCALE_FLOOR and "alpha_1 has an empty region" in msg
    m2 = A > 0.9 * A.max(axis=-1, keepdims=True)
    assert alphas[2] == pytest.approx(A[m2].mean() - (a0 + SCALE_FLOOR), rel=1e-14)  # uses the floor


def test_attention_init_non_positive_and_all_zero_guards():
    # rows mostly at the max: alpha_0 = mean exceeds the mean of R_1, so alpha_1 < 0 -> floor
    row = [1.0, 1.0, 1.0, 1.0, 0.75]
    A = np.tile(np.array(row), (B, H, N, 1))
    alphas, msg = one_warning(gsb_attention_init, A, 2)
    assert alphas[0] == pytest.approx(0.95) and alphas[1] == SCALE_FLOOR and "alpha_1 = -0.2" in msg
    assert alphas[2] == pytest.approx(1.0 - 0.95 - SCALE_FLOOR)
    # all zero: every scale floored, a single warning, never NaN
    alphas, msg = one_warning(gsb_attention_init, np.zeros((B, H, N, N)), 4)
    assert np.all(alphas == SCALE_FLOOR)
    assert "alpha_0" in msg and "alpha_4" in msg


def test_attention_init_bad_input():
    A = np.full((B, H, N, N), 0.2)
    with pytest.raises(ValueError, match=r"k must be in \[0, 4\]"):
        gsb_attention_init(A, 5)
    with pytest.raises(ValueError, match="threshold_scope must be one of 'row', 'batch'"):
        gsb_attention_init(A, 2, threshold_scope="sample")
    with pytest.raises(ValueError, match="abin must be one of 'round', 'mask'"):
        gsb_attention_init(A, 2, abin="x")
    with pytest.raises(ValueError, match=r"A_ret must have rank 4"):
        gsb_attention_init(A[0], 2)


# ----------------------------------------------------------------------------------------------
# value
# ----------------------------------------------------------------------------------------------

def value_regions(V0, k, scope):
    _, cache = gsb_value_forward(V0, np.ones(k + 1), k, threshold_scope=scope)
    M = list(cache["M"]) + [np.zeros_like(V0, dtype=bool)]
    return [M[i] & ~M[i + 1] for i in range(k + 1)]


def region_mean(V0, r):
    a = np.abs(V0[r])
    return a.sum() / np.count_nonzero(a)


def test_value_init_eq34_k2():
    rng = np.random.default_rng(10)
    V0 = rng.standard_normal((B, H, N, Dh))
    V0[0, 0, 0, :3] = 0.0  # zeros are not counted (n_{v m > 0})
    betas = no_warning(gsb_value_init, V0, 2)
    a = np.abs(V0)
    vmax = V0.max(axis=(1, 2, 3), keepdims=True)
    vmin = V0.min(axis=(1, 2, 3), keepdims=True)
    m1 = (V0 > 0.7 * vmax) | (V0 < 0.7 * vmin)
    m2 = (V0 > 0.9 * vmax) | (V0 < 0.9 * vmin)
    b0 = (a.sum() - a[m1].sum()) / (np.count_nonzero(a) - np.count_nonzero(a[m1]))
    b1 = (a[m1].sum() - a[m2].sum()) / (np.count_nonzero(a[m1]) - np.count_nonzero(a[m2])) - b0
    b2 = a[m2].sum() / np.count_nonzero(a[m2]) - (b0 + b1)
    np.testing.assert_allclose(betas, [b0, b1, b2], rtol=1e-12)
    assert b0 != pytest.approx(a[~m1].mean())  # counting the zeros would give another value


@pytest.mark.parametrize("k", [0, 1, 3, 4])
@pytest.mark.parametrize("scope", ["sample", "batch"])
def test_value_init_paper_and_official(k, scope):
    rng = np.random.default_rng(20 + k)
    V0 = rng.standard_normal((B, H, N, Dh)) * [[[[1.0]]], [[[3.0]]]]
    regions = value_regions(V0, k, scope)
    means = [region_mean(V0, r) if r.any() else None for r in regions]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        paper = gsb_value_init(V0, k, threshold_scope=scope)
        official = gsb_value_init(V0, k, threshold_scope=scope, init="official")
    expected, total = [], 0.0
    for m in means:
        val = SCALE_FLOOR if m is None or m - total <= 0 else m - total
        expected.append(val)
        total += val
    np.testing.assert_allclose(paper, expected, rtol=1e-12)
    # official: twice each region mean, no subtraction
    np.testing.assert_allclose(official, [2 * m if m is not None else SCALE_FLOOR for m in means], rtol=1e-12)
    if k:
        assert np.all(official[1:] >= paper[1:]) and np.any(official[1:] > paper[1:])


def test_value_init_scope_differs():
    rng = np.random.default_rng(30)
    V0 = rng.standard_normal((B, H, N, Dh))
    V0[1] *= 4.0  # sample 1 dominates the batch max/min
    assert not np.allclose(gsb_value_init(V0, 2, threshold_scope="sample"),
                           gsb_value_init(V0, 2, threshold_scope="batch"))


def test_value_init_guards():
    # k = 4 with few distinct values: some regions empty -> floor, one warning, no NaN
    V0 = np.zeros((B, H, N, Dh))
    V0[:, 0, 0, 0] = 1.0
    V0[:, 0, 0, 1] = -1.0
    betas, msg = one_warning(gsb_value_init, V0, 4)
    assert np.all(np.isfinite(betas)) and np.all(betas > 0)
    assert "beta_0 has an empty region" in msg  # all non-zeros sit in the top region
    assert betas[4] == pytest.approx(1.0 - 4 * SCALE_FLOOR)
    betas, _ = one_warning(gsb_value_init, np.zeros((B, H, N, Dh)), 2, init="official")
    assert np.all(betas == SCALE_FLOOR)


def test_value_init_bad_input():
    V0 = np.ones((B, H, N, Dh))
    with pytest.raises(ValueError, match="init must be one of 'paper', 'official'"):
        gsb_value_init(V0, 2, init="released")
    with pytest.raises(ValueError, match="threshold_scope must be one of 'sample', 'batch'"):
        gsb_value_init(V0, 2, threshold_scope="row")
    with pytest.raises(TypeError, match="k must be an int"):
        gsb_value_init(V0, "2")
    with pytest.raises(ValueError, match="V0 contains NaN or inf"):
        gsb_value_init(V0 * np.nan, 2)


# ----------------------------------------------------------------------------------------------
# activation scales
# ----------------------------------------------------------------------------------------------

def test_activation_init():
    rng = np.random.default_rng(40)
    x = rng.standard_normal((B, N, 8))
    assert no_warning(act_sign_init, x) == pytest.approx(2 * np.abs(x).mean(), rel=1e-14)
    assert no_warning(act_round_init, x) == pytest.approx(4 * np.abs(x).mean(), rel=1e-14)
    assert isinstance(act_sign_init(x), float)
    for fn in (act_sign_init, act_round_init):
        val, msg = one_warning(fn, np.zeros((B, N, 8)))
        assert val == SCALE_FLOOR and "not positive" in msg
    with pytest.raises(ValueError, match="x must be non-empty"):
        act_sign_init(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        act_round_init(np.ones(3, dtype=int))
