"""Dropout and drop-path (stochastic depth), forward and backward, with a passed ``rng``.

Legend: B batch, N tokens, D embed.

Both are inverted: kept values are scaled by ``1/(1-p)`` in training so evaluation is the identity.
The random mask goes through ``gsbnp._ste.frozen`` so a gradient check replays the mask drawn at
its check point (the mask is a constant of the backward, like an STE threshold).
"""

from __future__ import annotations

import numpy as np

from .._ste import frozen


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, train: bool = True):
    """Element-wise dropout.

    Args:
        x: any shape; p: drop probability in [0, 1); rng: numpy Generator; train: False -> identity.
    Returns:
        out: same shape as x; cache: the scaled keep mask (same shape, x's dtype) or None.
    """
    if not train or p == 0.0:
        return x, None
    keep = rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64) >= p
    mask = frozen(keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p)))
    return x * mask, mask


def dropout_backward(dout: np.ndarray, cache):
    """``dx = dout * mask`` (the identity when the forward was)."""
    return dout if cache is None else dout * cache


def drop_path_forward(x: np.ndarray, p: float, rng: np.random.Generator, train: bool = True):
    """Stochastic depth: drop a whole residual branch per sample.

    Args:
        x: (B, ...) branch output; p: drop probability in [0, 1).
    Returns:
        out: same shape; cache: the scaled per-sample mask (B, 1, ..., 1) or None.
    """
    if not train or p == 0.0:
        return x, None
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    keep = rng.random(shape) >= p
    mask = frozen(keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p)))
    return x * mask, mask


def drop_path_backward(dout: np.ndarray, cache):
    """``dx = dout * mask`` per sample."""
    return dout if cache is None else dout * cache
