"""Multi-head scaled dot-product self-attention on already-projected q, k, v.

Legend: B batch, N tokens, D embed, H heads, Dh = D / H head dim.

    A = softmax(q_h k_h^T / sqrt(Dh))      (B, H, N, N)
    out = merge(A @ v_h)                   (B, N, D)
"""

from __future__ import annotations

import numpy as np

from .activation import softmax_backward, softmax_forward


def split_heads(x: np.ndarray, H: int) -> np.ndarray:
    """(B, N, D) -> (B, H, N, Dh) (a transposed view)."""
    B, N, D = x.shape
    return x.reshape(B, N, H, D // H).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, N, Dh) -> (B, N, H*Dh), heads concatenated along the feature axis."""
    B, H, N, Dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, H * Dh)


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int):
    """Multi-head self-attention of projected queries, keys and values.

    Args:
        q, k, v: (B, N, D) each; num_heads: H, dividing D.
    Returns:
        out: (B, N, D)
        cache: dict with ``qh, kh, vh`` (B, H, N, Dh), ``A`` the attention map (B, H, N, N), ``scale``.
    """
    H = num_heads
    qh, kh, vh = split_heads(q, H), split_heads(k, H), split_heads(v, H)
    scale = q.dtype.type(1.0 / np.sqrt(qh.shape[-1]))
    S = qh @ kh.swapaxes(-1, -2)  # (B, H, N, N)
    S *= scale
    A, _ = softmax_forward(S)
    out = merge_heads(A @ vh)  # (B, N, D)
    return out, {"qh": qh, "kh": kh, "vh": vh, "A": A, "scale": scale}


def attention_backward(dout: np.ndarray, cache):
    """Backward of :func:`attention_forward`. Returns dq, dk, dv, each (B, N, D)."""
    # BEGIN SOLUTION Task 1.2: attention backward
    qh, kh, vh, A, scale = cache["qh"], cache["kh"], cache["vh"], cache["A"], cache["scale"]
    H = qh.shape[1]
    dY = split_heads(dout, H)  # out = merge(Y), Y = A @ vh     (B, H, N, Dh)
    dA = dY @ vh.swapaxes(-1, -2)  # (B, H, N, N)
    dvh = A.swapaxes(-1, -2) @ dY  # (B, H, N, Dh)
    dS = softmax_backward(dA, A)  # A = softmax(S), S = q k^T * scale
    dS *= scale
    dqh = dS @ kh  # (B, H, N, Dh)
    dkh = dS.swapaxes(-1, -2) @ qh
    return merge_heads(dqh), merge_heads(dkh), merge_heads(dvh)
    # END SOLUTION
