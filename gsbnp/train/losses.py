"""Training losses of the two-head (class token + distillation token) DeiT student, Eq. 36.

Legend: B batch, K classes.

The student has two heads: ``head`` on the [cls] token and ``head_dist`` on the [dist] token (DeiT).
With a teacher (the paper's recipe, Section IV-D):

    L = (1 - lam) * CE(cls_logits, y) + lam * L_dis(dist_logits, teacher_logits)        (Eq. 36)

with lam = 0.5. ``L_dis`` is "hard" (DeiT hard distillation, the authors' released recipe):
``CE(dist_logits, argmax(teacher_logits))``, or "soft": ``tau^2 * KL(p_t || p_s)`` with
``p_t = softmax(teacher_logits / tau)`` and ``p_s = softmax(dist_logits / tau)``, averaged over the
batch. (DeiT's soft loss divides the summed KL by B*K, i.e. by ``numel``; gsbnp uses the batch mean,
the true per-sample KL, so lam keeps its meaning across class counts.)

Without a teacher both heads learn the labels: ``L = (CE(cls, y) + CE(dist, y)) / 2`` (DeiT trains
its dist head on the labels when no teacher is given), and inference averages both heads either way.

Each function returns ``(loss, dcls_logits, ddist_logits)``. The teacher gets no gradient.
"""

from __future__ import annotations

import numpy as np

from .._validate import as_float_array, check_choice, check_float
from ..functional.loss import cross_entropy, log_softmax

__all__ = ["distillation_loss", "classification_loss", "soft_distillation"]


def _check_pair(cls_logits, dist_logits):
    cls_logits = as_float_array(cls_logits, "cls_logits", ndim=2)
    dist_logits = as_float_array(dist_logits, "dist_logits", ndim=2)
    if dist_logits.shape != cls_logits.shape:
        raise ValueError(f"dist_logits must have the shape of cls_logits {cls_logits.shape}, "
                         f"got {dist_logits.shape}")
    return cls_logits, dist_logits


def soft_distillation(dist_logits: np.ndarray, teacher_logits: np.ndarray, tau: float = 1.0):
    """``tau^2 * mean_b KL(softmax(teacher/tau) || softmax(dist/tau))`` and its gradient.

    ``KL = sum_c p_t (log p_t - log p_s)``; ``d/d dist_logits = tau * (p_s - p_t) / B`` (the tau^2
    factor keeps the gradient's size independent of tau, Hinton et al.).

    Args:
        dist_logits: (B, K) student logits. teacher_logits: (B, K), no gradient. tau: > 0.
    Returns:
        loss (float), ddist_logits (B, K) in ``dist_logits``' dtype.
    """
    dist_logits = as_float_array(dist_logits, "dist_logits", ndim=2)
    teacher_logits = as_float_array(teacher_logits, "teacher_logits", ndim=2)
    if teacher_logits.shape != dist_logits.shape:
        raise ValueError(f"teacher_logits must have the shape of dist_logits {dist_logits.shape}, "
                         f"got {teacher_logits.shape}")
    tau = check_float(tau, "tau", lo=0.0, lo_open=True)
    B = dist_logits.shape[0]
    log_ps = log_softmax(dist_logits / tau)  # (B, K)
    log_pt = log_softmax(teacher_logits.astype(dist_logits.dtype, copy=False) / tau)  # (B, K)
    p_t = np.exp(log_pt)  # (B, K)
    kl = np.sum(p_t * (log_pt - log_ps), dtype=np.float64) / B
    ddist = (np.exp(log_ps) - p_t) * (tau / B)  # (B, K)
    return float(tau * tau * kl), ddist


def distillation_loss(cls_logits: np.ndarray, dist_logits: np.ndarray, target: np.ndarray,
                      teacher_logits: np.ndarray, *, lam: float = 0.5, kind: str = "hard",
                      tau: float = 1.0, label_smoothing: float = 0.0):
    """Eq. 36: ``(1 - lam) * CE(cls_logits, target) + lam * L_dis(dist_logits, teacher_logits)``.

    Args:
        cls_logits: (B, K) logits of the [cls]-token head.
        dist_logits: (B, K) logits of the [dist]-token head.
        target: (B,) integer labels or (B, K) soft targets (mixup/cutmix) for the class head.
        teacher_logits: (B, K) logits of the (frozen) teacher on the same (augmented) images.
        lam: weight of the distillation term in [0, 1] (paper: 0.5).
        kind: "hard" = CE(dist_logits, argmax teacher) (DeiT hard distillation, the authors' recipe;
            ties go to the first class); "soft" = tau^2 KL(p_t || p_s) (see ``soft_distillation``).
        tau: temperature of "soft", > 0 (ignored by "hard").
        label_smoothing: eps of the class-head CE only (the teacher's labels are never smoothed).
    Returns:
        loss (float), dcls_logits (B, K), ddist_logits (B, K), in the logits' dtype.
    """
    cls_logits, dist_logits = _check_pair(cls_logits, dist_logits)
    teacher_logits = as_float_array(teacher_logits, "teacher_logits", ndim=2)
    if teacher_logits.shape != cls_logits.shape:
        raise ValueError(f"teacher_logits must have the shape of cls_logits {cls_logits.shape}, "
                         f"got {teacher_logits.shape}")
    lam = check_float(lam, "lam", lo=0.0, hi=1.0)
    check_choice(kind, ("hard", "soft"), "kind")
    tau = check_float(tau, "tau", lo=0.0, lo_open=True)
    # BEGIN SOLUTION Task 5.1: distillation loss
    loss_cls, dcls = cross_entropy(cls_logits, target, label_smoothing=label_smoothing)
    if kind == "hard":
        teacher_labels = teacher_logits.argmax(axis=1)  # (B,)
        loss_dis, ddist = cross_entropy(dist_logits, teacher_labels)
    else:
        loss_dis, ddist = soft_distillation(dist_logits, teacher_logits, tau)
    dcls *= 1.0 - lam
    ddist *= lam
    return (1.0 - lam) * loss_cls + lam * loss_dis, dcls, ddist
    # END SOLUTION


def classification_loss(cls_logits: np.ndarray, dist_logits: np.ndarray, target: np.ndarray, *,
                        label_smoothing: float = 0.0):
    """Training without a teacher: ``(CE(cls_logits, target) + CE(dist_logits, target)) / 2``.

    Both heads learn the labels (DeiT without a teacher), so the [dist] head is trained and the
    inference average of the two heads stays meaningful.

    Args:
        cls_logits, dist_logits: (B, K). target: (B,) integer labels or (B, K) soft targets.
        label_smoothing: eps applied to both CE terms.
    Returns:
        loss (float), dcls_logits (B, K), ddist_logits (B, K).
    """
    cls_logits, dist_logits = _check_pair(cls_logits, dist_logits)
    loss_cls, dcls = cross_entropy(cls_logits, target, label_smoothing=label_smoothing)
    loss_dist, ddist = cross_entropy(dist_logits, target, label_smoothing=label_smoothing)
    dcls *= 0.5
    ddist *= 0.5
    return 0.5 * (loss_cls + loss_dist), dcls, ddist
