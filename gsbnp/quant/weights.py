"""Weight binarizer of every linear layer inside the transformer blocks (Eqs. 1, 2, 4, 6).

Legend: D embed (input features), F output features. A weight is (F, D) in the PyTorch layout; any
non-empty float array is accepted.

Forward (XNOR-Net, one scalar per layer)::

    mu    = mean(W)                 (Eq. 2, held constant)
    alpha = mean(|W|)               (Eq. 2, of the uncentred W, held constant)
    W_b   = alpha * sign(W - mu)    sign(0) = +1 (Eq. 4)

STE pseudo-gradient (Eq. 6, the identity: outliers keep updating)::

    dW = dW_b
"""

from __future__ import annotations

import numpy as np

from .._ste import discrete, frozen
from .._validate import as_float_array
from .activations import _sign

__all__ = ["weight_binarize_forward", "weight_binarize_backward", "weight_binarization_stats"]


def weight_binarization_stats(W: np.ndarray):
    """The one weight rule's statistics ``(mu, alpha) = (mean(W), mean|W|)`` (Eq. 2), in W's dtype.

    ``W_b = alpha * sign(W - mu)`` with ``sign(0) = +1``. The float path (:func:`weight_binarize_forward`)
    and the packed path (``gsbnp.bitops.pack_binary_weight``) both take their statistics from here, so
    a float model and its packed export binarize every weight the same way.
    """
    return W.mean(), np.abs(W).mean()


def weight_binarize_forward(W):
    """Binarize a latent weight: ``W_b = mean|W| * sign(W - mean(W))`` (Eqs. 1, 2, 4).

    Args:
        W: float array, normally (F, D); must be non-empty and finite.
    Returns:
        W_b: W's shape and dtype, values +-alpha.
        cache: dict with ``shape`` (W's shape), ``alpha`` and ``mu`` (W's dtype scalars).
    """
    W = as_float_array(W, "W")
    if W.size == 0:
        raise ValueError(f"W must be non-empty, got shape {W.shape}")
    mu, alpha = weight_binarization_stats(W)
    mu, alpha = frozen(mu), frozen(alpha)
    W_b = alpha * _sign(W - mu)  # sign(0) = +1
    # the whole map is one discrete op with the identity STE of Eq. 6
    W_b = discrete(W, W_b, True)
    return W_b, {"shape": W.shape, "alpha": alpha, "mu": mu}


def weight_binarize_backward(dW_b, cache):
    """Backward of :func:`weight_binarize_forward`: the identity STE of Eq. 6, ``dW = dW_b``.

    Returns a fresh array (never the caller's ``dW_b`` itself, so in-place updates cannot alias).
    """
    dW_b = as_float_array(dW_b, "dW_b", finite=False)
    if dW_b.shape != cache["shape"]:
        raise ValueError(f"dW_b must have W's shape {cache['shape']}, got {dW_b.shape}")
    return dW_b.copy()
