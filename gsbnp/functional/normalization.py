"""Layer normalisation over the last axis (eps 1e-6, as DeiT/timm), forward and backward.

Legend: B batch, N tokens, D embed.
"""

from __future__ import annotations

import numpy as np

LN_EPS = 1e-6


def layernorm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = LN_EPS):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` over the last axis.

    Args:
        x: (..., D); weight, bias: (D,).
    Returns:
        y: (..., D)
        cache: (x_hat (..., D), rstd (..., 1), weight)
    """
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)  # biased variance, as torch
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    x_hat = xc * rstd
    return x_hat * weight + bias, (x_hat, rstd, weight)


def layernorm_backward(dout: np.ndarray, cache):
    """Backward of :func:`layernorm_forward`.

    With ``g = dout * weight`` (the gradient reaching x_hat):
    ``dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))`` over the last axis.

    Returns:
        dx (..., D), dweight (D,), dbias (D,)
    """
    # BEGIN SOLUTION Task 1.1: LayerNorm backward
    x_hat, rstd, weight = cache
    lead = tuple(range(dout.ndim - 1))
    dweight = np.sum(dout * x_hat, axis=lead)  # y = x_hat * weight + bias
    dbias = np.sum(dout, axis=lead)
    g = dout * weight  # (..., D)
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - x_hat * np.mean(g * x_hat, axis=-1, keepdims=True))
    return dx, dweight, dbias
    # END SOLUTION
