"""GELU (exact, erf-based) and softmax, forward and backward.

Legend: B batch, N tokens, F MLP hidden features (docs/legend.md).

GELU is the exact ``x * Phi(x)`` of DeiT/timm (not the tanh approximation); its derivative is
``g(x) = Phi(x) + x * phi(x)``. The forward computes both and caches ``g``, so the backward is one
multiply (``dx = dout * g``), with no second pass over ``x``. This file holds the readable formula for
every dtype (the float64 gradient checks run on it); the table-lookup float32 path that training uses
is :func:`gsbnp.functional.fast.gelu_forward_fast`, pinned to this one by tests/test_functional.py.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` of GELU, by ``scipy.special.ndtr``
    (accurate in the negative tail, where ``1 + erf`` cancels). Keeps x's float dtype."""
    return ndtr(x)


def gelu_forward(x: np.ndarray, *, with_grad: bool = True):
    """``y = x * Phi(x)`` (exact GELU).

    Args:
        x: any shape, e.g. (B, N, F).
        with_grad: False skips the derivative (inference: the cache is then None).
    Returns:
        y: same shape; cache: ``g = dy/dx = Phi(x) + x * phi(x)``, same shape.
    """
    cdf = normal_cdf(x)
    if not with_grad:
        return x * cdf, None
    pdf = np.exp(-0.5 * x * x)
    pdf *= x.dtype.type(_INV_SQRT_2PI)
    pdf *= x
    pdf += cdf  # g = Phi(x) + x * phi(x)
    return x * cdf, pdf


def gelu_backward(dout: np.ndarray, cache):
    """``dx = dout * g``, with ``g = Phi(x) + x * phi(x)``, ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``
    computed by the forward. Returns dx."""
    return dout * cache


def softmax_forward(x: np.ndarray):
    """Softmax over the last axis, stabilised by subtracting the row max.

    Args:
        x: (..., N) scores, e.g. (B, H, N, N).
    Returns:
        y: (..., N), rows sum to 1; cache: y.
    """
    e = x - x.max(axis=-1, keepdims=True)
    np.exp(e, out=e)  # in place: one (..., N) array in all
    e /= e.sum(axis=-1, keepdims=True)
    return e, e


def softmax_backward(dout: np.ndarray, cache):
    """``dx = y * (dout - sum(dout * y))`` over the last axis (Jacobian-vector product). Returns dx."""
    y = cache
    dx = dout - np.einsum("...n,...n->...", dout, y)[..., None]  # row sums of dout * y, no temporary
    dx *= y
    return dx
