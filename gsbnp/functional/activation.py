"""GELU (exact, erf-based) and softmax, forward and backward.

Legend: B batch, N tokens, F MLP hidden features.

GELU is the exact ``x * Phi(x)`` of DeiT/timm (not the tanh approximation). float64 inputs use
``scipy.special.ndtr`` (= Phi, used by every gradient check). float32 inputs take a fast path: Phi is
read from a table on [-8, 8] at spacing h = 2^-10 with linear interpolation, evaluated in cache-sized
chunks. The interpolation error is at most ``h^2/8 * max|Phi''| = 2.9e-8`` (below float32 resolution
of Phi's values) and beyond +-8 Phi is 0 or 1 to float32 precision, so ``x * Phi(x)`` stays within a
few float32 ulps of ``|x|`` (tests/test_functional.py bounds it) while costing half of the float32
``scipy.special.erf`` route. The bound is absolute: deep in the negative tail (x < -4, where
|GELU(x)| < 1e-4) the tiny outputs are not relatively accurate, which no float32 network can notice.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_INV_SQRT_2PI = 0.3989422804014327
_LUT_STEPS = 1024  # table points per unit of x
_LUT_RANGE = 8.0  # table covers [-8, 8]
_CHUNK = 1 << 15  # elements per chunk: temporaries stay in L2
_lut: tuple[np.ndarray, np.ndarray] | None = None


def _phi_table() -> tuple[np.ndarray, np.ndarray]:
    """Phi at the grid points and the difference to the next point, float32 (built once)."""
    global _lut
    if _lut is None:
        grid = np.arange(-_LUT_RANGE * _LUT_STEPS, _LUT_RANGE * _LUT_STEPS + 1) / _LUT_STEPS
        t = ndtr(grid)
        _lut = (t.astype(np.float32), np.diff(t, append=t[-1]).astype(np.float32))
    return _lut


def _phi_fast32(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF Phi(x) for float32 x by table lookup and linear interpolation."""
    table, slope = _phi_table()
    out = np.empty_like(x)
    xf, of = x.reshape(-1), out.reshape(-1)
    top = np.float32(2 * _LUT_RANGE * _LUT_STEPS - 1)
    for s in range(0, xf.size, _CHUNK):
        u = xf[s:s + _CHUNK] * np.float32(_LUT_STEPS)  # position on the grid
        u += np.float32(_LUT_RANGE * _LUT_STEPS)
        np.clip(u, 0, top, out=u)  # |x| > 8 reads the end points (0, 1)
        i = u.astype(np.int32)
        u -= i  # fraction of the way to the next grid point
        o = np.take(slope, i)
        o *= u
        o += np.take(table, i)
        of[s:s + _CHUNK] = o
    return out


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2: ``scipy.special.ndtr`` for float64, table for float32."""
    if x.dtype == np.float32:
        return _phi_fast32(np.ascontiguousarray(x))
    return ndtr(x)


def gelu_forward(x: np.ndarray):
    """``y = x * Phi(x)`` (exact GELU).

    Args:
        x: any shape, e.g. (B, N, F).
    Returns:
        y: same shape; cache: (x, Phi(x)).
    """
    cdf = normal_cdf(x)
    return x * cdf, (x, cdf)


def gelu_backward(dout: np.ndarray, cache):
    """``dy/dx = Phi(x) + x * phi(x)``, ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``. Returns dx."""
    x, cdf = cache
    pdf = np.exp(-0.5 * x * x)
    pdf *= x.dtype.type(_INV_SQRT_2PI)
    return dout * (cdf + x * pdf)


def softmax_forward(x: np.ndarray):
    """Softmax over the last axis, stabilised by subtracting the row max.

    Args:
        x: (..., N) scores, e.g. (B, H, N, N).
    Returns:
        y: (..., N), rows sum to 1; cache: y.
    """
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e, e


def softmax_backward(dout: np.ndarray, cache):
    """``dx = y * (dout - sum(dout * y))`` over the last axis (Jacobian-vector product). Returns dx."""
    y = cache
    return y * (dout - np.sum(dout * y, axis=-1, keepdims=True))
