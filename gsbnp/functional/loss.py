"""Softmax cross-entropy: the classification loss and its gradient with respect to the logits.

Legend: B batch, K classes.

One function, ``cross_entropy``, computes the batch-mean loss and ``dlogits`` in one pass (there is no
separate backward: the loss is the end of the graph, so its "upstream gradient" is 1). It accepts hard
integer labels or soft target distributions (mixup/cutmix, label smoothing), stabilised by the
log-sum-exp trick. Eq. 36 of the paper combines two of these (``gsbnp.train.losses``).
"""

from __future__ import annotations

import numpy as np

from .._validate import as_float_array, check_float

__all__ = ["cross_entropy", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log softmax`` over the last axis, via ``z - max(z) - log(sum(exp(z - max(z))))``.

    Subtracting the row max keeps every ``exp`` in (0, 1], so no overflow for large logits, and the
    largest entry contributes exactly ``exp(0) = 1`` to the sum, so the log never sees 0.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (..., K), max entry 0
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_target(target, B: int, K: int, dtype) -> tuple[np.ndarray, bool]:
    """Validate ``target``; return it (labels as int64, or soft rows in ``dtype``) and ``is_soft``."""
    if not isinstance(target, np.ndarray):
        raise TypeError(f"target must be a numpy.ndarray (int labels (B,) or soft targets (B, K)), "
                        f"got {type(target).__name__}")
    if target.dtype == np.bool_:
        raise TypeError("target must hold integer labels or float probabilities, got bool")
    if np.issubdtype(target.dtype, np.integer):
        if target.shape != (B,):
            raise ValueError(f"integer target must have shape (B,) = ({B},), got {target.shape}")
        if B and (target.min() < 0 or target.max() >= K):
            raise ValueError(f"target labels must be in [0, {K - 1}] (K = {K} classes), "
                             f"got min {target.min()}, max {target.max()}")
        return target.astype(np.int64, copy=False), False
    if np.issubdtype(target.dtype, np.floating):
        if target.shape != (B, K):
            raise ValueError(f"soft target must have shape (B, K) = ({B}, {K}), got {target.shape}")
        if not np.isfinite(target).all():
            raise ValueError("soft target contains NaN or inf")
        if (target < 0).any():
            raise ValueError("soft target must be non-negative (rows are probability distributions)")
        # sqrt(machine eps) of the target's dtype: mixup in float32 sums to 1 within a few ulps.
        tol = float(np.sqrt(np.finfo(target.dtype).eps))
        row_sum = target.sum(axis=1, dtype=np.float64)  # (B,)
        if B and np.abs(row_sum - 1.0).max() > tol:
            raise ValueError(f"soft target rows must sum to 1 (tolerance {tol:.1e}), "
                             f"got sums in [{row_sum.min():.6g}, {row_sum.max():.6g}]")
        return target.astype(dtype, copy=False), True
    raise TypeError(f"target must hold integer labels or float probabilities, got {target.dtype}")


def cross_entropy(logits: np.ndarray, target: np.ndarray, *, label_smoothing: float = 0.0):
    """Batch-mean softmax cross-entropy and its gradient.

    With ``p = softmax(logits)`` and the target distribution ``q`` of each row,

        loss    = -(1/B) sum_b sum_c q[b, c] log p[b, c]
        dlogits = (p - q) / B

    where ``q`` is the one-hot of an integer label or the given soft row, and label smoothing ``eps``
    replaces it by ``(1 - eps) q + eps / K`` (timm/PyTorch convention: the uniform part includes the
    true class). The loss is Eq. 36's L_cls (and L_dis with the teacher's argmax as label).

    Args:
        logits: (B, K) float32 or float64 scores; B >= 1.
        target: (B,) integer labels in [0, K), or (B, K) float soft targets (rows non-negative,
            summing to 1).
        label_smoothing: eps in [0, 1]; applied to hard and soft targets alike.
    Returns:
        loss: Python float, the batch mean.
        dlogits: (B, K), the dtype of ``logits``.
    """
    logits = as_float_array(logits, "logits", ndim=2)
    eps = check_float(label_smoothing, "label_smoothing", lo=0.0, hi=1.0)
    B, K = logits.shape
    if B < 1 or K < 1:
        raise ValueError(f"logits must have at least one row and one class, got shape {logits.shape}")
    target, is_soft = _check_target(target, B, K, logits.dtype)

    logp = log_softmax(logits)  # (B, K)
    dlogits = np.exp(logp)  # p, (B, K)
    if is_soft:
        q = target if eps == 0.0 else (1.0 - eps) * target + eps / K  # (B, K)
        loss = -float(np.sum(q * logp, dtype=np.float64)) / B
        dlogits -= q
    else:
        rows = np.arange(B)
        # -sum_c q log p with q = (1 - eps) onehot + eps/K, without building q.
        nll = -logp[rows, target]  # (B,)
        if eps == 0.0:
            loss = float(np.sum(nll, dtype=np.float64)) / B
        else:
            smooth = -logp.sum(axis=1, dtype=np.float64) / K  # (B,) cross-entropy with uniform
            loss = float(np.sum((1.0 - eps) * nll + eps * smooth, dtype=np.float64)) / B
            dlogits -= eps / K
        dlogits[rows, target] -= 1.0 - eps
    dlogits /= B
    return loss, dlogits
