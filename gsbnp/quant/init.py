"""Initial values of the learnable scales: GSB attention (Eqs. 21-25), GSB value (Eqs. 33-34) and the
activation binarizers (type-B / type-A).

Legend: B batch, H heads, N tokens, Dh head dim. Statistics are pooled over the whole first batch that
reaches the layer in the binarized stage (docs/conventions.md#initial-scales).

Nested regions: with masks M_0 ⊇ M_1 ⊇ ... ⊇ M_k (strict ``>`` thresholds, as in the forward) the
regions are ``R_i = M_i \\ M_{i+1}`` and the top region ``R_k = M_k``. An entry in R_i is represented
by ``alpha_0 + ... + alpha_i``, so the least-squares initialisation (Eqs. 23-25 and 33-34 with the
typos fixed) is ``alpha_0 + ... + alpha_i = mean of R_i``, i.e.
``alpha_i = mean(R_i) - (alpha_0 + ... + alpha_{i-1})``, the subtraction using the stored values.

Guards: an empty region or a non-positive result is replaced by the floor ``SCALE_FLOOR = 1e-5`` and
reported by a single ``RuntimeWarning`` per call; the result is never NaN or inf.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._validate import as_float_array, check_choice, check_int
from .attention import _attention_input, attention_thresholds
from .options import (ABIN_CHOICES, ATTN_THRESHOLD_SCOPES, K_MAX, K_MIN, SCALE_FLOOR, VALUE_INIT_CHOICES,
                      VALUE_THRESHOLD_SCOPES)
from .value import _value_input, value_extremes, value_masks

__all__ = ["gsb_attention_init", "gsb_value_init", "act_sign_init", "act_round_init",
           "SCALE_FLOOR", "VALUE_INIT_CHOICES"]



def _warn_floored(what: str, notes: list[str], stacklevel: int = 3) -> None:
    """One RuntimeWarning listing every floored scale (stacklevel points at the public caller)."""
    if notes:
        warnings.warn(f"{what}: {'; '.join(notes)}; set to the floor {SCALE_FLOOR:g}",
                      RuntimeWarning, stacklevel=stacklevel)


def _region_stats(values: np.ndarray, masks: np.ndarray, count_nonzero: bool):
    """Sum of ``values`` and entry count over each region R_i = M_i and not M_{i+1} (top: M_k).

    ``masks`` is bool (n, *values.shape); returns float64 sums (n,) and int counts (n,).
    """
    # BEGIN SOLUTION Task 3.3: GSB initial scales
    n = masks.shape[0]
    nxt = np.zeros_like(masks)
    nxt[:-1] = masks[1:]
    regions = (masks & ~nxt).reshape(n, -1)  # (n, P)
    flat = values.reshape(-1).astype(np.float64)
    sums = regions @ flat  # (n,)
    counts = (regions & (flat != 0)) if count_nonzero else regions
    return sums, counts.sum(axis=1)
    # END SOLUTION


def _cumulative_scales(sums, counts, *, subtract: bool, factor: float = 1.0, first=None,
                       names: str = "alpha"):
    """alpha_i = factor * mean(R_i) - (alpha_0 + ... + alpha_{i-1}) (without the sum if not subtract).

    ``first`` replaces the region mean of index 0 (the attention's alpha_0 = mean(A_ret)). Floors
    empty or non-positive results and collects the notes for one warning. The loop is over k <= 4
    scalars, not over data.
    """
    out = np.empty(len(sums), dtype=np.float64)
    notes = []
    total = 0.0
    for i in range(len(sums)):
        if i == 0 and first is not None:
            val, empty = first, False
        else:
            empty = counts[i] == 0
            val = np.nan if empty else factor * sums[i] / counts[i]
        # BEGIN SOLUTION Task 3.3: GSB initial scales
        if not empty and subtract:
            val -= total
        # END SOLUTION
        if empty:
            notes.append(f"{names}_{i} has an empty region")
            val = SCALE_FLOOR
        elif not (val > 0):
            notes.append(f"{names}_{i} = {val:.3g} is not positive")
            val = SCALE_FLOOR
        out[i] = val
        total += val  # later subtractions use the stored (floored) values
    return out, notes


def gsb_attention_init(A_ret, k: int = 2, *, threshold_scope: str = "row", abin: str = "round"):
    """Initial ``[alpha_0, ..., alpha_k]`` of GSB attention (Eqs. 21-25, typos fixed).

    - ``abin="round"``: ``alpha_0 = mean(A_ret)`` over all entries (the paper's simplification of
      Eq. 23, since A_bin cannot be decoupled from alpha_0); for i >= 1,
      ``alpha_i = mean of A_ret over R_i - (alpha_0 + ... + alpha_{i-1})``.
    - ``abin="mask"``: A_bin is the mask M_0 (c_0 = 0.5), so alpha_0 uses the region R_0 = M_0 \\ M_1
      like the others.

    Regions use the forward's thresholds (``threshold_scope`` "row" or "batch") and strict masks; they
    count all their entries. Empty regions and non-positive values -> floor 1e-5 and one warning.

    Args:
        A_ret: (B, H, N, N) translated attention of the first batch.
        k: 0..4.
    Returns:
        (k + 1,) float64 array of positive initial scales.
    """
    A_ret = _attention_input(A_ret, "A_ret")
    k = check_int(k, "k", lo=K_MIN, hi=K_MAX)
    check_choice(threshold_scope, ATTN_THRESHOLD_SCOPES, "threshold_scope")
    check_choice(abin, ABIN_CHOICES, "abin")
    if abin == "mask":
        Theta = attention_thresholds(A_ret, k, threshold_scope, with_zero=True)  # (k + 1, ...)
        sums, counts = _region_stats(A_ret, A_ret[None] > Theta, count_nonzero=False)
        alphas, notes = _cumulative_scales(sums, counts, subtract=True)
    else:
        first = float(np.mean(A_ret, dtype=np.float64))
        sums, counts = np.zeros(1), np.zeros(1, dtype=np.int64)  # index 0 unused (first)
        if k:
            Theta = attention_thresholds(A_ret, k, threshold_scope)  # (k, ...)
            s, c = _region_stats(A_ret, A_ret[None] > Theta, count_nonzero=False)
            sums, counts = np.concatenate([sums, s]), np.concatenate([counts, c])
        alphas, notes = _cumulative_scales(sums, counts, subtract=True, first=first)
    _warn_floored("gsb_attention_init", notes)
    return alphas


def gsb_value_init(V0, k: int = 2, *, threshold_scope: str = "sample", init: str = "paper"):
    """Initial ``[beta_0, ..., beta_k]`` of the GSB value matrix (Eqs. 33-34, typos fixed).

    Regions of |V0|: ``R_0 = M_0 \\ M_1`` (M_0 = all ones), ..., ``R_k = M_k``, with the forward's
    masks (``threshold_scope`` "sample" or "batch"); a region's mean is ``sum |V0| / (number of its
    non-zero entries)`` (Eq. 34's ``n_{v m > 0}``).

    - ``init="paper"``: ``beta_i = mean|R_i| - (beta_0 + ... + beta_{i-1})`` (Eq. 34 with beta, not
      alpha; the subtraction persists).
    - ``init="official"``: ``beta_i = 2 * mean|R_i|`` with no subtraction. This is gsbnp's reading of
      the released code, whose value initialiser takes twice the region means (the type-B "2x" of
      its LSQ-style initialisation) and whose subtraction is applied to a temporary only, so that the
      stored scales keep the plain 2x means after the first step.

    Empty regions and non-positive values -> floor 1e-5 and one warning.

    Args:
        V0: (B, H, N, Dh) translated value of the first batch.
        k: 0..4.
    Returns:
        (k + 1,) float64 array of positive initial scales.
    """
    V0 = _value_input(V0)
    k = check_int(k, "k", lo=K_MIN, hi=K_MAX)
    check_choice(threshold_scope, VALUE_THRESHOLD_SCOPES, "threshold_scope")
    check_choice(init, VALUE_INIT_CHOICES, "init")
    M = np.ones((k + 1,) + V0.shape, dtype=bool)  # (k + 1, B, H, N, Dh)
    if k:
        v_max, v_min = value_extremes(V0, threshold_scope)
        M[1:] = value_masks(V0, k, v_max, v_min)
    sums, counts = _region_stats(np.abs(V0), M, count_nonzero=True)
    if init == "paper":
        betas, notes = _cumulative_scales(sums, counts, subtract=True, names="beta")
    else:
        betas, notes = _cumulative_scales(sums, counts, subtract=False, factor=2.0, names="beta")
    _warn_floored("gsb_value_init", notes)
    return betas


def _act_init(x, factor: float, what: str) -> float:
    x = as_float_array(x, "x")
    if x.size == 0:
        raise ValueError(f"x must be non-empty, got shape {x.shape}")
    val = factor * float(np.mean(np.abs(x), dtype=np.float64))
    if not val > 0:
        _warn_floored(what, [f"{factor:g} * mean|x| = {val:.3g} is not positive"], stacklevel=4)
        val = SCALE_FLOOR
    return val


def act_sign_init(x) -> float:
    """Initial alpha of a type-B binarizer: ``2 * mean|x|`` over the whole batch (floored at 1e-5)."""
    return _act_init(x, 2.0, "act_sign_init")


def act_round_init(x) -> float:
    """Initial alpha of a type-A binarizer: ``4 * mean|x|`` over the whole batch (floored at 1e-5)."""
    return _act_init(x, 4.0, "act_round_init")
