"""Tests of gsbnp.train.losses: Eq. 36 distillation (hard and soft) and the teacher-free loss."""

import numpy as np
import pytest

from gsbnp.functional.loss import cross_entropy
from gsbnp.gradcheck import numerical_gradient, rel_error
from gsbnp.train.losses import classification_loss, distillation_loss, soft_distillation

B, K = 3, 5


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    cls = rng.standard_normal((B, K)) * 2
    dist = rng.standard_normal((B, K)) * 2
    teacher = rng.standard_normal((B, K)) * 3
    y = np.array([4, 1, 0])
    soft = rng.random((B, K))
    soft /= soft.sum(axis=1, keepdims=True)
    return cls, dist, teacher, y, soft


def _check_grads(fn, cls, dist):
    """Gradient check of a (loss, dcls, ddist) function w.r.t. both logits, float64."""
    _, dcls, ddist = fn(cls, dist)
    num_cls = numerical_gradient(lambda z: fn(z, dist)[0], cls)
    num_dist = numerical_gradient(lambda z: fn(cls, z)[0], dist)
    e_cls, e_dist = rel_error(dcls, num_cls), rel_error(ddist, num_dist)
    assert e_cls < 1e-6, f"dcls rel error {e_cls:.2e}\nanalytic {dcls}\nnumerical {num_cls}"
    assert e_dist < 1e-6, f"ddist rel error {e_dist:.2e}\nanalytic {ddist}\nnumerical {num_dist}"


@pytest.mark.parametrize("kind, tau", [("hard", 1.0), ("soft", 1.0), ("soft", 3.0)])
@pytest.mark.parametrize("target_kind, eps", [("hard", 0.0), ("hard", 0.1), ("soft", 0.0)])
def test_distillation_gradients(data, kind, tau, target_kind, eps):
    cls, dist, teacher, y, soft = data
    target = y if target_kind == "hard" else soft
    fn = lambda c, d: distillation_loss(c, d, target, teacher, lam=0.3, kind=kind, tau=tau,  # noqa: E731
                                        label_smoothing=eps)
    _check_grads(fn, cls, dist)


@pytest.mark.parametrize("target_kind, eps", [("hard", 0.0), ("hard", 0.2), ("soft", 0.0)])
def test_classification_loss_gradients(data, target_kind, eps):
    cls, dist, _, y, soft = data
    target = y if target_kind == "hard" else soft
    _check_grads(lambda c, d: classification_loss(c, d, target, label_smoothing=eps), cls, dist)


def test_eq36_hard_composition(data):
    cls, dist, teacher, y, _ = data
    t_lab = teacher.argmax(axis=1)
    ce_cls = cross_entropy(cls, y, label_smoothing=0.1)[0]
    ce_dist = cross_entropy(dist, t_lab)[0]  # the teacher's labels are never smoothed
    loss, _, _ = distillation_loss(cls, dist, y, teacher, label_smoothing=0.1)
    assert loss == pytest.approx(0.5 * ce_cls + 0.5 * ce_dist, rel=1e-14)
    # lam = 0: plain CE on the class head, dist head gets no gradient; lam = 1: the reverse.
    l0, dc0, dd0 = distillation_loss(cls, dist, y, teacher, lam=0.0)
    assert l0 == pytest.approx(cross_entropy(cls, y)[0], rel=1e-14)
    assert not dd0.any() and dc0.any()
    l1, dc1, dd1 = distillation_loss(cls, dist, y, teacher, lam=1.0)
    assert l1 == pytest.approx(ce_dist, rel=1e-14)
    assert not dc1.any() and dd1.any()


def test_hard_distillation_uses_teacher_argmax():
    # The student's dist head agreeing with the teacher's top class lowers the loss, whatever y is.
    teacher = np.array([[0.0, 5.0, 1.0]])
    y = np.array([0])
    agree = np.array([[0.0, 4.0, 0.0]])
    disagree = np.array([[4.0, 0.0, 0.0]])
    cls = np.zeros((1, 3))
    la = distillation_loss(cls, agree, y, teacher, lam=1.0)[0]
    ld = distillation_loss(cls, disagree, y, teacher, lam=1.0)[0]
    assert la < ld
    # Ties go to the first maximal class (np.argmax, as torch.argmax on CPU).
    tie = np.array([[2.0, 2.0, 0.0]])
    assert distillation_loss(cls, agree, y, tie, lam=1.0)[0] == pytest.approx(
        cross_entropy(agree, np.array([0]))[0], rel=1e-14)


def test_soft_distillation_literal_formula(data):
    _, dist, teacher, _, _ = data
    tau = 2.5
    p_t = np.exp(teacher / tau) / np.exp(teacher / tau).sum(axis=1, keepdims=True)
    p_s = np.exp(dist / tau) / np.exp(dist / tau).sum(axis=1, keepdims=True)
    kl = np.mean(np.sum(p_t * np.log(p_t / p_s), axis=1))
    loss, d = soft_distillation(dist, teacher, tau)
    assert loss == pytest.approx(tau ** 2 * kl, rel=1e-12)
    np.testing.assert_allclose(d, tau * (p_s - p_t) / B, rtol=1e-12, atol=1e-16)


def test_soft_distillation_zero_at_teacher(data):
    _, _, teacher, _, _ = data
    loss, d = soft_distillation(teacher.copy(), teacher, 2.0)
    assert loss == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(d, 0.0, atol=1e-16)
    # KL is invariant to a per-row shift of the logits, and non-negative.
    loss2, _ = soft_distillation(teacher + np.array([[1.0], [-3.0], [7.0]]), teacher, 2.0)
    assert loss2 == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(5):
        assert soft_distillation(rng.standard_normal((B, K)), teacher)[0] > 0


def test_classification_loss_is_mean_of_both_heads(data):
    cls, dist, _, y, _ = data
    loss, dc, dd = classification_loss(cls, dist, y)
    lc, gc = cross_entropy(cls, y)
    ld, gd = cross_entropy(dist, y)
    assert loss == pytest.approx((lc + ld) / 2, rel=1e-14)
    np.testing.assert_allclose(dc, gc / 2, rtol=1e-15)
    np.testing.assert_allclose(dd, gd / 2, rtol=1e-15)


def test_dtypes_and_inputs_untouched(data):
    cls, dist, teacher, y, _ = data
    c32, d32, t32 = (a.astype(np.float32) for a in (cls, dist, teacher))
    copies = [a.copy() for a in (c32, d32, t32)]
    for kind in ("hard", "soft"):
        loss, dc, dd = distillation_loss(c32, d32, y, t32, kind=kind, tau=2.0)
        assert dc.dtype == np.float32 and dd.dtype == np.float32 and isinstance(loss, float)
        ref = distillation_loss(cls, dist, y, teacher, kind=kind, tau=2.0)[0]
        assert loss == pytest.approx(ref, rel=1e-5)
    for a, b in zip((c32, d32, t32), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(kind="kl"), ValueError, "kind must be one of"),
    (dict(lam=1.5), ValueError, "lam"),
    (dict(tau=0.0), ValueError, "tau"),
    (dict(label_smoothing=2.0), ValueError, "label_smoothing"),
])
def test_distillation_bad_options(data, kwargs, exc, match):
    cls, dist, teacher, y, _ = data
    with pytest.raises(exc, match=match):
        distillation_loss(cls, dist, y, teacher, **kwargs)


def test_bad_shapes(data):
    cls, dist, teacher, y, _ = data
    with pytest.raises(ValueError, match="dist_logits must have the shape"):
        distillation_loss(cls, dist[:, :3], y, teacher)
    with pytest.raises(ValueError, match="teacher_logits must have the shape"):
        distillation_loss(cls, dist, y, teacher[:2])
    with pytest.raises(TypeError, match="teacher_logits"):
        distillation_loss(cls, dist, y, teacher.astype(np.int64))
    with pytest.raises(ValueError, match="labels must be in"):
        classification_loss(cls, dist, np.array([0, 1, K]))
    with pytest.raises(ValueError, match="teacher_logits must have the shape"):
        soft_distillation(dist, teacher[:, :2])
