"""Fully connected layer and patch embedding as pure forward/backward pairs.

Legend: B batch, N tokens, D embed (input features), F output features, C channels, P patch,
Hp x Wp patch grid, Hi x Wi image height and width (docs/legend.md). Weights use the PyTorch layout
``W (F, D)``: ``out = x @ W.T + b``.
"""

from __future__ import annotations

import numpy as np


def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None):
    """``out = x @ W.T + b``.

    Args:
        x: (..., D) input; any leading axes (B, N, ...).
        W: (F, D) weight.
        b: (F,) bias, or None.
    Returns:
        out: (..., F)
        cache: (x, W, has_bias)
    """
    # A 2-D GEMM: numpy's batched matmul of (B, N, D) @ (D, F) is several times slower than BLAS on
    # the (B*N, D) view.
    out = (x.reshape(-1, x.shape[-1]) @ W.T).reshape(*x.shape[:-1], W.shape[0])  # (..., F)
    if b is not None:
        out += b
    return out, (x, W, b is not None)


def linear_backward(dout: np.ndarray, cache):
    """Backward of ``out = x @ W.T + b``.

    Args:
        dout: (..., F) upstream gradient (never modified).
    Returns:
        dx (..., D), dW (F, D), db (F,) or None when the forward had no bias.
    """
    x, W, has_bias = cache
    d2 = dout.reshape(-1, dout.shape[-1])  # (M, F), M = product of leading axes
    x2 = x.reshape(-1, x.shape[-1])  # (M, D)
    dx = (d2 @ W).reshape(*dout.shape[:-1], W.shape[1])  # out = x @ W.T  =>  dx = dout @ W  (..., D)
    dW = d2.T @ x2  # out = x @ W.T  =>  dW = dout^T @ x       (F, D)
    db = d2.sum(axis=0) if has_bias else None  # (F,)
    return dx, dW, db


def patchify(x: np.ndarray, P: int) -> np.ndarray:
    """(B, C, Hi, Wi) images -> (B, Hp*Wp, C*P*P) patches, each flattened in (C, P, P) order.

    The (C, P, P) order makes ``patchify(x) @ W.reshape(D, -1).T`` equal a stride-P convolution with
    kernel ``W (D, C, P, P)`` (PyTorch/timm's ``Conv2d`` patch embedding).
    """
    B, C, H, W = x.shape
    Hp, Wp = H // P, W // P
    p = x.reshape(B, C, Hp, P, Wp, P).transpose(0, 2, 4, 1, 3, 5)  # (B, Hp, Wp, C, P, P)
    return p.reshape(B, Hp * Wp, C * P * P)


def unpatchify(p: np.ndarray, P: int, C: int, H: int, W: int) -> np.ndarray:
    """Inverse of :func:`patchify`: (B, Hp*Wp, C*P*P) -> (B, C, Hi, Wi)."""
    B = p.shape[0]
    Hp, Wp = H // P, W // P
    x = p.reshape(B, Hp, Wp, C, P, P).transpose(0, 3, 1, 4, 2, 5)  # (B, C, Hp, P, Wp, P)
    return x.reshape(B, C, H, W)


def patch_embed_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, P: int):
    """Patch embedding: split into non-overlapping P x P patches, then a linear map.

    Equal to ``Conv2d(C, D, kernel_size=P, stride=P)`` applied to x, flattened to tokens.

    Args:
        x: (B, C, Hi, Wi) images, Hi and Wi divisible by P.
        W: (D, C, P, P) kernel (conv layout); b: (D,) bias.
    Returns:
        out: (B, N, D) with N = (H/P)(W/P), tokens in row-major patch order.
        cache: for the backward.
    """
    patches = patchify(x, P)  # (B, N, C*P*P)
    out, lin_cache = linear_forward(patches, W.reshape(W.shape[0], -1), b)
    return out, (lin_cache, x.shape, P, W.shape)


def patch_embed_backward(dout: np.ndarray, cache):
    """Backward of :func:`patch_embed_forward`: returns dx (B, C, Hi, Wi), dW (D, C, P, P), db (D,)."""
    lin_cache, xshape, P, Wshape = cache
    dpatches, dW, db = linear_backward(dout, lin_cache)  # patches @ W2.T + b
    _, C, H, Wd = xshape
    return unpatchify(dpatches, P, C, H, Wd), dW.reshape(Wshape), db
