"""GSB binarization of the value matrix V (Eqs. 26-32) as a pure forward/backward pair.

Legend: B batch, H heads, N tokens, Dh head dim. ``V0 = V - Omega`` is (B, H, N, Dh).

Forward (Eqs. 26, 27)::

    M_0   = 1
    M_i   = 1{V0 > c_i v_max} or 1{V0 < c_i v_min},   c_i = 0.5 + 0.4 i / k,  i = 1..k   (strict)
    V_gsb = sum_{i=0..k} beta_i * sign(V0) * M_i        sign(0) = +1

so every entry of V_gsb is ``+-(beta_0 + ... + beta_j)`` for the highest mask j it belongs to.
``v_max`` and ``v_min`` are the max and min of V0 per sample (over H, N, Dh; ``threshold_scope=
"sample"``) or over the whole batch (``"batch"``, released code), held constant. A sample with
v_min > 0 never meets the lower condition (every V0 >= v_min > c_i v_min), nor one with v_max < 0 the
upper one.

STE pseudo-gradient (Eqs. 29-32, inclusive windows, masks held constant)::

    dV0     = g * sum_i 1{|V0 / beta_i| <= 1} * M_i                   v_grad="masked" (Eq. 32)
            = g * sum_i 1{|V0 * M_i / beta_i| <= 1}                   v_grad="unmasked" (released
                                                                      code: each i with M_i = 0 adds g)
    dbeta_i = reduce(g * M_i * (sign(V0) - (V0 / beta_i) 1{|V0 / beta_i| <= 1}))      (Eqs. 28, 29)

The k + 1 components are one stacked (k + 1, B, H, N, Dh) array: no Python loop over them.
"""

from __future__ import annotations

import numpy as np

from .._ste import discrete, frozen, surrogate_active
from .._validate import as_float_array, check_choice, check_int
from .activations import _check_dout, _scale_grad_factor, _sign
from .attention import _check_scales, threshold_coefficients
from .options import K_MAX, K_MIN, SCALE_GRAD_CHOICES, V_GRAD_CHOICES, VALUE_THRESHOLD_SCOPES

__all__ = ["gsb_value_forward", "gsb_value_backward", "VALUE_THRESHOLD_SCOPES", "V_GRAD_CHOICES"]



def _value_input(V0) -> np.ndarray:
    return as_float_array(V0, "V0", ndim=4)


def value_extremes(V0: np.ndarray, threshold_scope: str):
    """(v_max, v_min), each (B, 1, 1, 1) per sample or (1, 1, 1, 1) over the batch."""
    if threshold_scope == "sample":
        return V0.max(axis=(1, 2, 3), keepdims=True), V0.min(axis=(1, 2, 3), keepdims=True)
    return V0.max().reshape(1, 1, 1, 1), V0.min().reshape(1, 1, 1, 1)


def value_masks(V0: np.ndarray, k: int, v_max: np.ndarray, v_min: np.ndarray) -> np.ndarray:
    """Stacked masks M_1..M_k of Eq. 27, bool (k, B, H, N, Dh) (strict inequalities)."""
    c = threshold_coefficients(k, V0.dtype).reshape(-1, 1, 1, 1, 1)  # (k, 1, 1, 1, 1)
    return (V0[None] > c * v_max[None]) | (V0[None] < c * v_min[None])  # (k, B, H, N, Dh)


def gsb_value_forward(V0, betas, k: int = 2, *, scale_grad: str = "mean",
                      threshold_scope: str = "sample", v_grad: str = "masked"):
    """GSB value matrix ``V_gsb = sum_i beta_i sign(V0) M_i`` (Eqs. 26, 27); STE in the module docstring.

    ``reduce``: "mean" divides by numel(V0) (batch included) for every scale; "sqrt" divides dbeta_0
    by sqrt(numel) and dbeta_i (i >= 1) by sqrt(|M_i|) (count of ones, 0 guarded), as the released
    code; "sum" is the true surrogate derivative.

    Surrogate form (so that the frozen-residual surrogate's derivative is exactly the STE): component i
    is ``beta_i * discrete(V0 / beta_i, sign(V0) M_i, 1{|V0/beta_i| <= 1} M_i)``; inside its window
    that is ``V0 + beta_i r_i`` (dV0 = 1, dbeta_i = sign - V0/beta_i), outside ``beta_i sign M_i``
    (dbeta_i = sign M_i). The "unmasked" variant adds, only while a surrogate is active, a
    straight-through zero ``discrete(n_out V0, 0, n_out > 0)`` with ``n_out`` the number of masks
    that exclude the entry: value 0, derivative n_out, no beta dependence.

    Args:
        V0: (B, H, N, Dh) translated value V - Omega.
        betas: (k + 1,) positive scales [beta_0, ..., beta_k] (clamped by the layer).
        k: number of masks, 0..4.
        scale_grad: "mean" | "sqrt" | "sum"; threshold_scope: "sample" | "batch";
        v_grad: "masked" (Eq. 32) | "unmasked" (released code).
    Returns:
        V_gsb: (B, H, N, Dh) in V0's dtype.
        cache: dict with ``M`` (bool (k + 1, B, H, N, Dh), index 0 is the all-ones M_0), ``window``
            (bool (k + 1, ...), 1{|V0/beta_i| <= 1} and M_i), ``q`` ((k + 1, ...), V0 / beta_i),
            ``sign`` ((B, H, N, Dh), +-1), ``v_max``, ``v_min`` ((B, 1, 1, 1) or (1, 1, 1, 1)),
            ``betas`` (as used, V0's dtype), ``k``, ``v_grad``, ``scale_grad``, ``shape``, ``dtype``.
    """
    V0 = _value_input(V0)
    k = check_int(k, "k", lo=K_MIN, hi=K_MAX)
    scales_dtype = as_float_array(betas, "betas", ndim=1).dtype
    betas = _check_scales(betas, k, "betas").astype(V0.dtype)
    check_choice(scale_grad, SCALE_GRAD_CHOICES, "scale_grad")
    check_choice(threshold_scope, VALUE_THRESHOLD_SCOPES, "threshold_scope")
    check_choice(v_grad, V_GRAD_CHOICES, "v_grad")
    v_max, v_min = value_extremes(V0, threshold_scope)
    v_max, v_min = frozen(v_max), frozen(v_min)
    M = np.empty((k + 1,) + V0.shape, dtype=bool)  # (k + 1, B, H, N, Dh)
    M[0] = True
    if k:  # value_masks(V0, k, v_max, v_min), written in place
        c = threshold_coefficients(k, V0.dtype).reshape(-1, 1, 1, 1, 1)  # (k, 1, 1, 1, 1)
        np.greater(V0[None], c * v_max[None], out=M[1:])
        M[1:] |= V0[None] < c * v_min[None]
    # masks held constant: the unmasked variant reads them outside a discrete op
    M = frozen(M)
    sgn = _sign(V0)  # (B, H, N, Dh)
    q = V0[None] / betas.reshape(-1, 1, 1, 1, 1)  # (k + 1, B, H, N, Dh)
    # BEGIN SOLUTION Task 2.1: sign STE
    window = np.abs(q) <= 1  # Eq. 32, inclusive, and M_i
    window &= M
    # END SOLUTION
    s = discrete(q, M * sgn, window)  # sign(V0) * M_i                             (k + 1, ...)
    V_gsb = np.einsum("k,k...->...", betas, s)  # sum_i beta_i sign(V0) M_i          (B, H, N, Dh)
    if v_grad == "unmasked" and surrogate_active():
        n_out = k + 1 - M.sum(axis=0, dtype=V0.dtype)  # masks that exclude the entry (B, H, N, Dh)
        V_gsb = V_gsb + discrete(n_out * V0, np.zeros_like(V0), n_out > 0)
    cache = {"shape": V0.shape, "dtype": scales_dtype, "k": k, "v_grad": v_grad, "scale_grad": scale_grad,
             "betas": betas, "v_max": v_max, "v_min": v_min, "M": M, "window": window, "q": q,
             "sign": sgn}
    return V_gsb, cache


def gsb_value_backward(dout, cache):
    """Backward of :func:`gsb_value_forward` (Eqs. 28-32): returns ``(dV0, dbetas)``.

    ``dV0`` is (B, H, N, Dh); ``dbetas`` is (k + 1,) in the dtype of the betas passed to the forward.
    """
    g = _check_dout(dout, cache)
    # BEGIN SOLUTION Task 3.2: GSB value backward
    k, M, window, q = cache["k"], cache["M"], cache["window"], cache["q"]
    n = k + 1
    # V_gsb = sum_i beta_i * sign(V0) * M_i: STE 1 inside each component's window
    count = window.sum(axis=0, dtype=g.dtype)  # (B, H, N, Dh)
    if cache["v_grad"] == "unmasked":
        count += n - M.sum(axis=0, dtype=g.dtype)  # each mask that excludes the entry passes g too
    count *= g  # dV0 = g * count
    dV0 = count
    # dbeta_i = sum(g * sign * M_i) - sum(g * q_i * window_i)
    gflat = g.reshape(-1)
    gs = (g * cache["sign"]).reshape(-1)
    dbetas = M.reshape(n, -1) @ gs - (q * window).reshape(n, -1) @ gflat  # (k + 1,)
    dbetas = dbetas.astype(np.float64)
    numel = g.size
    if cache["scale_grad"] == "sqrt":
        counts = np.count_nonzero(M.reshape(n, -1), axis=1).astype(np.float64)
        counts[0] = numel  # beta_0 divides by sqrt(numel) (M_0 is all ones anyway)
        dbetas /= np.sqrt(np.maximum(counts, 1))
    else:
        dbetas *= _scale_grad_factor(cache["scale_grad"], numel)
    return dV0, dbetas.astype(cache["dtype"])
    # END SOLUTION
