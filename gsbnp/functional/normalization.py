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
    D = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mu
    # biased variance, as torch; einsum sums xc * xc row by row without a temporary (..., D) array
    var = np.einsum("...d,...d->...", xc, xc)[..., None] / x.dtype.type(D)  # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    x_hat = xc
    x_hat *= rstd  # in place: xc is not needed again
    y = x_hat * weight
    y += bias
    return y, (x_hat, rstd, weight)


def layernorm_backward(dout: np.ndarray, cache):
    """Backward of :func:`layernorm_forward`.

    With ``g = dout * weight`` (the gradient reaching x_hat):
    ``dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))`` over the last axis.

    Returns:
        dx (..., D), dweight (D,), dbias (D,)
    """
    # BEGIN SOLUTION Task 1.1: LayerNorm backward
    x_hat, rstd, weight = cache
    D = dout.shape[-1]
    d2, xh2 = dout.reshape(-1, D), x_hat.reshape(-1, D)  # (M, D) views, M = product of leading axes
    dweight = np.einsum("md,md->d", d2, xh2)  # y = x_hat * weight + bias: sum over M of dout * x_hat
    dbias = d2.sum(axis=0)
    g = dout * weight  # (..., D), the gradient reaching x_hat
    mean_g = g.mean(axis=-1, keepdims=True)  # (..., 1)
    mean_gx = np.einsum("...d,...d->...", g, x_hat)[..., None] / dout.dtype.type(D)  # (..., 1)
    g -= mean_g
    g -= x_hat * mean_gx
    g *= rstd  # dx
    return g, dweight, dbias
    # END SOLUTION
