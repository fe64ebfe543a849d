"""Binarized attention matrices: the baseline of Section III-B (Eqs. 7-8) and GSB (Eqs. 9-20).

Legend: B batch, H heads, N tokens. An attention matrix is (B, H, N, N); "a map" is one (N, N) slice
(one sample and head), "a row" one query's N scores.

Baseline (no parameters): ``gamma * clip(round(A_re / gamma), 0, 1)`` with gamma per map, held
constant, chosen by Eq. 2 (mean) or Eq. 8 (mean of the values > 0.5) with the switch back to Eq. 2.

GSB (Eq. 10) superposes a rounded matrix and k nested threshold masks with learnable scales::

    A_gsb = alpha_0 * A_bin + sum_{i=1..k} alpha_i * M_i
    A_bin = clip(round(A_ret / alpha_0), 0, 1)                  (Eq. 11)
    M_i   = 1{A_ret > Theta_i},  Theta_i = c_i * max_row(A_ret)  (Eqs. 12, 13)
    c_i   = 0.5 + 0.4 * i / k

The k masks are one stacked (k, B, H, N, N) array: no Python loop over the components.
"""

from __future__ import annotations

import numpy as np

from .._ste import discrete, frozen
from .._validate import as_float_array, check_choice, check_int
from .activations import _check_dout, _scale_grad_factor
from .options import ABIN_CHOICES, ATTN_THRESHOLD_SCOPES, BASELINE_MODES, K_MAX, K_MIN, SCALE_FLOOR, SCALE_GRAD_CHOICES

__all__ = [
    "baseline_attention_forward", "baseline_attention_backward",
    "gsb_attention_forward", "gsb_attention_backward",
    "BASELINE_MODES", "ATTN_THRESHOLD_SCOPES", "ABIN_CHOICES", "K_MAX",
]



def _attention_input(A, name: str) -> np.ndarray:
    A = as_float_array(A, name, ndim=4)
    if A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name} must have shape (B, H, N, N), got {A.shape}")
    return A


def threshold_coefficients(k: int, dtype=np.float64, *, with_zero: bool = False) -> np.ndarray:
    """``c_i = 0.5 + 0.4 * i / k`` for i = 1..k (i = 0..k with ``with_zero``; c_0 = 0.5).

    Computed elementwise in float64 in exactly that order (docs/conventions.md#exact-edges), then cast.
    """
    i = np.arange(0 if with_zero else 1, k + 1, dtype=np.float64)
    c = 0.5 + 0.4 * i / k if k > 0 else np.full(i.shape, 0.5)
    return c.astype(dtype)


def _check_scales(scales, k: int, name: str) -> np.ndarray:
    scales = as_float_array(scales, name, ndim=1)
    if scales.shape[0] != k + 1:
        raise ValueError(f"{name} must have length k + 1 = {k + 1}, got {scales.shape[0]}")
    if not np.all(scales > 0):
        raise ValueError(f"{name} must all be > 0 (the layer clamps scales to >= {SCALE_FLOOR:g}), got {scales}")
    return scales


def attention_thresholds(A_ret: np.ndarray, k: int, threshold_scope: str, *,
                         with_zero: bool = False) -> np.ndarray:
    """Stacked thresholds ``Theta_i = c_i * max(A_ret)`` of Eq. 13.

    Returns (k, B, H, N, 1) for ``threshold_scope="row"`` (max over the last axis, per sample, head and
    row) or (k, 1, 1, 1, 1) for ``"batch"`` (one max over the whole tensor). With ``with_zero`` the
    leading axis has k + 1 entries and index 0 is Theta_0 = 0.5 * max (``abin="mask"``).
    """
    if threshold_scope == "row":
        top = A_ret.max(axis=-1, keepdims=True)  # (B, H, N, 1)
    else:
        top = A_ret.max().reshape(1, 1, 1, 1)  # (1, 1, 1, 1)
    c = threshold_coefficients(k, A_ret.dtype, with_zero=with_zero)
    return c.reshape(-1, 1, 1, 1, 1) * top[None]  # (k, B, H, N, 1) or (k, 1, 1, 1, 1)


# ----------------------------------------------------------------------------------------------
# baseline (Eqs. 7-8)
# ----------------------------------------------------------------------------------------------

def baseline_attention_forward(A_re, mode: str = "eq8"):
    """Baseline binarized attention ``gamma * clip(round(A_re / gamma), 0, 1)`` (Eqs. 7, 8).

    gamma is computed per map (sample and head) and held constant:

    - ``mode="eq2"``: ``gamma = mean(A_re)`` over the map (Eq. 2).
    - ``mode="eq8"``: ``gamma = mean of the values strictly > 0.5`` (Eq. 8). **Switch**: a map with no
      value > 0.5, or with fewer than N values of ``A_re / gamma`` above 0.5 (fewer ones in A_bin than
      tokens), falls back to Eq. 2 — otherwise rows would be erased (Fig. 7).

    STE: ``dA_re = g * 1{0 <= A_re / gamma <= 1}`` (Eq. 5, inclusive clip window).

    Args:
        A_re: (B, H, N, N) attention, normally a softmax output in [0, 1]. Not required: a negative
            entry binarizes to 0 outside the window, and a map whose mean is <= 0 gets the tiny
            positive gamma of its dtype instead of a division by zero.
        mode: "eq2" | "eq8".
    Returns:
        out: (B, H, N, N) the **scaled** matrix gamma * A_bin (values in {0, gamma}).
        cache: dict with ``gamma`` (B, H, 1, 1), ``switched`` (bool (B, H): maps that fell back to Eq. 2;
            all False for "eq2"), ``A_bin`` (bool (B, H, N, N)), ``window`` (bool (B, H, N, N)),
            ``mode``, ``shape``.
    """
    A_re = _attention_input(A_re, "A_re")
    check_choice(mode, BASELINE_MODES, "mode")
    N = A_re.shape[-1]
    tiny = np.finfo(A_re.dtype).tiny  # an all-zero map would give gamma = 0: keep it finite
    gamma = np.maximum(A_re.mean(axis=(-2, -1), keepdims=True), tiny)  # (B, H, 1, 1), Eq. 2
    switched = np.zeros(A_re.shape[:2], dtype=bool)  # (B, H)
    if mode == "eq8":
        # BEGIN SOLUTION Task 2.3: baseline Eq. 8 switch
        big = A_re > 0.5  # (B, H, N, N)
        n_big = big.sum(axis=(-2, -1), keepdims=True)  # (B, H, 1, 1)
        s_big = np.sum(A_re, axis=(-2, -1), keepdims=True, where=big)
        gamma8 = s_big / np.maximum(n_big, 1)  # (B, H, 1, 1), Eq. 8
        safe8 = np.where(n_big > 0, gamma8, 1).astype(A_re.dtype)
        ones8 = (A_re / safe8 > 0.5).sum(axis=(-2, -1), keepdims=True)  # ones of A_bin under Eq. 8
        sw = (n_big == 0) | (ones8 < N)  # (B, H, 1, 1)
        gamma = np.where(sw, gamma, safe8)
        switched = sw[..., 0, 0]
        # END SOLUTION
    gamma = frozen(gamma)
    u = A_re / gamma  # (B, H, N, N)
    # BEGIN SOLUTION Task 2.2: type-A quantizer
    window = (u >= 0) & (u <= 1)
    # END SOLUTION
    A_bin = np.clip(np.round(u), 0, 1)  # round half to even: u = 0.5 -> 0 (Eq. 3)
    out = gamma * discrete(u, A_bin, window)
    cache = {"shape": A_re.shape, "gamma": gamma, "switched": switched, "A_bin": A_bin > 0,
             "window": window, "mode": mode}
    return out, cache


def baseline_attention_backward(dout, cache):
    """Backward of :func:`baseline_attention_forward`: ``dA_re = dout * 1{0 <= A_re/gamma <= 1}``."""
    return _check_dout(dout, cache) * cache["window"]


# ----------------------------------------------------------------------------------------------
# GSB attention (Eqs. 9-20)
# ----------------------------------------------------------------------------------------------

def gsb_attention_forward(A_ret, alphas, k: int = 2, *, scale_grad: str = "mean",
                          threshold_scope: str = "row", abin: str = "round"):
    """GSB binarized attention ``A_gsb = alpha_0 A_bin + sum_i alpha_i M_i`` (Eqs. 10-13).

    Forward::

        A_bin = clip(round(A_ret / alpha_0), 0, 1)          abin="round" (Eq. 11)
              = M_0 = 1{A_ret > Theta_0}, c_0 = 0.5         abin="mask"  (Table VIII ablation)
        Theta_i = c_i * max(A_ret) per (sample, head, row)  threshold_scope="row" (Eq. 13)
                  c_i * max over the whole tensor           threshold_scope="batch" (released code)
        M_i   = 1{A_ret > Theta_i},  c_i = 0.5 + 0.4 i / k  (Eq. 12, strict; a row with max <= 0 has
                                                             empty masks)

    STE pseudo-gradient (Eqs. 14-20, strict windows; Theta held constant)::

        dA_ret   = g * (1{0 < A_ret/alpha_0 < 1} + sum_i alpha_i 1{0 < A_ret - Theta_i < 1})
        dalpha_0 = reduce(g * (A_bin - (A_ret/alpha_0) 1{0 < A_ret/alpha_0 < 1}))     (Eq. 14)
        dalpha_i = reduce(g * M_i)                                                     (Eq. 15)

    With ``abin="mask"`` alpha_0 is treated "same as M_i" (Table VIII): its dA_ret term is
    ``alpha_0 * 1{0 < A_ret - Theta_0 < 1}`` and ``dalpha_0 = reduce(g * M_0)``.

    ``reduce``: "mean" divides by numel(A_ret) (batch included) for every scale; "sqrt" divides
    dalpha_0 by sqrt(numel) and dalpha_i (i >= 1) by sqrt(|M_i|) (count of ones, 0 guarded), as the
    released code; "sum" is the true surrogate derivative.

    Args:
        A_ret: (B, H, N, N) translated attention A_re - Phi (Eq. 9).
        alphas: (k + 1,) positive scales [alpha_0, ..., alpha_k] (clamped by the layer).
        k: number of masks, 0..4.
        scale_grad: "mean" | "sqrt" | "sum"; threshold_scope: "row" | "batch"; abin: "round" | "mask".
    Returns:
        A_gsb: (B, H, N, N) in A_ret's dtype.
        cache: dict with ``A_bin`` (bool (B, H, N, N)), ``window0`` (bool (B, H, N, N), A_bin's STE
            window), ``u`` (A_ret / alpha_0, (B, H, N, N); None for abin="mask"), ``M`` (bool
            (k, B, H, N, N), M_1..M_k), ``windows`` (bool (k, B, H, N, N), 0 < A_ret - Theta_i < 1),
            ``Theta`` ((k, B, H, N, 1) or (k, 1, 1, 1, 1); k + 1 entries, index 0 = Theta_0, for
            abin="mask"), ``alphas`` (as used, A_ret's dtype), ``k``, ``abin``, ``scale_grad``,
            ``shape``, ``dtype`` (alphas' dtype, for dalphas).
    """
    A_ret = _attention_input(A_ret, "A_ret")
    k = check_int(k, "k", lo=K_MIN, hi=K_MAX)
    scales_dtype = as_float_array(alphas, "alphas", ndim=1).dtype
    alphas = _check_scales(alphas, k, "alphas").astype(A_ret.dtype)
    check_choice(scale_grad, SCALE_GRAD_CHOICES, "scale_grad")
    check_choice(threshold_scope, ATTN_THRESHOLD_SCOPES, "threshold_scope")
    check_choice(abin, ABIN_CHOICES, "abin")
    with_zero = abin == "mask"
    n_masks = k + 1 if with_zero else k
    u = None
    if n_masks:
        Theta = frozen(attention_thresholds(A_ret, k, threshold_scope, with_zero=with_zero))
        d = A_ret[None] - Theta  # (n_masks, B, H, N, N)
        M_all = d > 0  # Eq. 12/19: bool(A_ret - Theta_i); equal to A_ret > Theta_i in IEEE arithmetic
        W_all = d < 1  # strict window 0 < A_ret - Theta_i < 1 (Eqs. 19, 20)
        W_all &= M_all
        m = discrete(d, M_all, W_all)  # (n_masks, B, H, N, N)
        scales = alphas if with_zero else alphas[1:]
        # sum_i alpha_i M_i; einsum reads the bool stack directly (tensordot would copy it to float)
        A_gsb = np.einsum("k,k...->...", scales, m)  # (B, H, N, N)
    else:
        Theta = np.zeros((0, 1, 1, 1, 1), dtype=A_ret.dtype)
        M_all = W_all = np.zeros((0,) + A_ret.shape, dtype=bool)
        A_gsb = np.zeros_like(A_ret)
    if with_zero:
        A_bin, window0 = M_all[0], W_all[0]
        M, windows = M_all[1:], W_all[1:]
    else:
        alpha0 = alphas[0]
        u = A_ret / alpha0  # (B, H, N, N)
        window0 = u > 0  # strict 0 < u < 1 (Eqs. 14, 17)
        window0 &= u < 1
        # Eq. 11: clip(round(u), 0, 1) with half-to-even rounding is exactly 1{u > 0.5}
        A_bin = u > 0.5  # (B, H, N, N)
        A_gsb += alpha0 * discrete(u, A_bin, window0)  # alpha_0 * (u + r) under the surrogate
        M, windows = M_all, W_all
    cache = {"shape": A_ret.shape, "dtype": scales_dtype, "k": k, "abin": abin, "scale_grad": scale_grad,
             "alphas": alphas, "Theta": Theta, "A_bin": A_bin, "window0": window0, "u": u,
             "M": M, "windows": windows}
    return A_gsb, cache


def gsb_attention_backward(dout, cache):
    """Backward of :func:`gsb_attention_forward` (Eqs. 14-20): returns ``(dA_ret, dalphas)``.

    ``dA_ret`` is (B, H, N, N); ``dalphas`` is (k + 1,) in the dtype of the alphas passed to the
    forward, reduced per ``scale_grad``.
    """
    g = _check_dout(dout, cache)
    # BEGIN SOLUTION Task 3.1: GSB attention backward
    k, alphas, scale_grad = cache["k"], cache["alphas"], cache["scale_grad"]
    A_bin, window0, M, windows = cache["A_bin"], cache["window0"], cache["M"], cache["windows"]
    numel = g.size
    gflat = g.reshape(-1)
    dalphas = np.empty(k + 1, dtype=np.float64)
    # STE factor of dA_ret: sum_i alpha_i 1{0 < A_ret - Theta_i < 1}, plus A_bin's window
    coef = np.einsum("k,k...->...", alphas[1:], windows) if k else np.zeros(g.shape, dtype=g.dtype)
    if cache["abin"] == "round":
        # A_gsb = alpha_0 * clip(round(A_ret / alpha_0), 0, 1) + ...
        coef += window0
        if coef.dtype == np.result_type(coef, g):
            coef *= g  # dA = g * coef, in place (coef is not needed again)
            dA = coef  # (B, H, N, N)
        else:  # a wider dout than the forward's dtype
            dA = g * coef
        # dalpha_0 = sum(g * A_bin) - sum(g * u * 1{0 < u < 1}); np.dot reads the bool mask directly
        g_in = (g * window0).reshape(-1)
        dalphas[0] = np.dot(gflat, A_bin.reshape(-1)) - np.dot(g_in, cache["u"].reshape(-1))
    else:
        # A_gsb = alpha_0 * M_0 + ...: alpha_0 acts as a mask scale
        coef += alphas[0] * window0
        dA = g * coef
        dalphas[0] = np.dot(gflat, A_bin.reshape(-1))
    dalphas[0] *= _scale_grad_factor(scale_grad, numel)
    if k:
        gm = M.reshape(k, -1) @ gflat  # (k,) sum of g over each mask M_i
        if scale_grad == "sqrt":
            counts = np.count_nonzero(M.reshape(k, -1), axis=1)
            dalphas[1:] = gm / np.sqrt(np.maximum(counts, 1))
        else:
            dalphas[1:] = gm * _scale_grad_factor(scale_grad, numel)
    return dA, dalphas.astype(cache["dtype"])
    # END SOLUTION
