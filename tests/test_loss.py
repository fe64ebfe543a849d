"""Tests of gsbnp.functional.loss: softmax cross-entropy (hard, soft and label-smoothed targets)."""

import numpy as np
import pytest

from gsbnp.functional.loss import cross_entropy, log_softmax
from gsbnp.gradcheck import numerical_gradient, rel_error

B, K = 3, 7


def _literal_ce(logits, q):
    """The textbook formula, no log-sum-exp: -mean_b sum_c q log(exp(z) / sum exp(z))."""
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return -np.mean(np.sum(q * np.log(p), axis=1))


def _onehot(y, c=K):
    t = np.zeros((y.size, c))
    t[np.arange(y.size), y] = 1.0
    return t


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((B, K)) * 2.0
    y = np.array([2, 0, 6])
    soft = rng.random((B, K))
    soft /= soft.sum(axis=1, keepdims=True)
    return logits, y, soft


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_gradient_check(data, kind, eps):
    logits, y, soft = data
    target = y if kind == "hard" else soft
    loss, dlogits = cross_entropy(logits, target, label_smoothing=eps)
    num = numerical_gradient(lambda z: cross_entropy(z, target, label_smoothing=eps)[0], logits)
    err = rel_error(dlogits, num)
    assert err < 1e-6, f"{kind} eps={eps}: rel error {err:.2e}\nanalytic {dlogits}\nnumerical {num}"


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_value_matches_literal_formula(data, eps):
    logits, y, soft = data
    q_hard = (1 - eps) * _onehot(y) + eps / K
    q_soft = (1 - eps) * soft + eps / K
    assert cross_entropy(logits, y, label_smoothing=eps)[0] == pytest.approx(
        _literal_ce(logits, q_hard), rel=1e-12)
    assert cross_entropy(logits, soft, label_smoothing=eps)[0] == pytest.approx(
        _literal_ce(logits, q_soft), rel=1e-12)


def test_gradient_is_softmax_minus_target(data):
    logits, y, _ = data
    _, d = cross_entropy(logits, y, label_smoothing=0.2)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    q = 0.8 * _onehot(y) + 0.2 / K
    np.testing.assert_allclose(d, (p - q) / B, rtol=0, atol=1e-15)
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-15)  # rows of p - q sum to 0


def test_hard_equals_onehot_soft(data):
    logits, y, _ = data
    for eps in (0.0, 0.3):
        lh, dh = cross_entropy(logits, y, label_smoothing=eps)
        ls, ds = cross_entropy(logits, _onehot(y), label_smoothing=eps)
        assert lh == pytest.approx(ls, rel=1e-14)
        np.testing.assert_allclose(dh, ds, rtol=0, atol=1e-16)


def test_known_values():
    # Equal logits: p is uniform, so the loss is log K for any label.
    assert cross_entropy(np.zeros((2, K)), np.array([0, 5]))[0] == pytest.approx(np.log(K), rel=1e-14)
    # A confident correct prediction: loss ~ exp(-margin) for K = 2.
    z = np.array([[30.0, 0.0]])
    assert cross_entropy(z, np.array([0]))[0] == pytest.approx(np.log1p(np.exp(-30.0)), rel=1e-10)


def test_stable_for_huge_logits(data):
    logits, y, soft = data
    shifted = logits + 1e4  # naive exp overflows to inf here
    for target in (y, soft):
        l0, d0 = cross_entropy(logits, target)
        l1, d1 = cross_entropy(shifted, target)
        assert np.isfinite(l1) and np.isfinite(d1).all()
        assert l1 == pytest.approx(l0, abs=1e-9)
        np.testing.assert_allclose(d1, d0, atol=1e-12)
    # A wrong prediction with a huge margin: the loss is the margin, not inf.
    z = np.array([[0.0, 1000.0]])
    assert cross_entropy(z, np.array([0]))[0] == pytest.approx(1000.0, rel=1e-12)
    ls = log_softmax(np.array([[0.0, 1000.0]]))
    assert np.isfinite(ls).all() and ls[0, 1] == 0.0


def test_float32_keeps_dtype_and_inputs_untouched(data):
    logits, y, soft = data
    z32 = logits.astype(np.float32)
    before = z32.copy(), soft.copy(), y.copy()
    for target in (y, soft, soft.astype(np.float32)):
        loss, d = cross_entropy(z32, target, label_smoothing=0.1)
        assert d.dtype == np.float32 and isinstance(loss, float)
        ref_target = target if target.dtype.kind == "i" else target.astype(np.float64)
        ref = cross_entropy(logits, ref_target, label_smoothing=0.1)
        assert loss == pytest.approx(ref[0], rel=1e-5)
        np.testing.assert_allclose(d, ref[1], atol=1e-6)
    np.testing.assert_array_equal(z32, before[0])
    np.testing.assert_array_equal(soft, before[1])
    np.testing.assert_array_equal(y, before[2])


def test_int32_labels_accepted(data):
    logits, y, _ = data
    assert cross_entropy(logits, y.astype(np.int32))[0] == cross_entropy(logits, y)[0]


@pytest.mark.parametrize("logits, target, eps, exc, match", [
    (np.zeros((2, 3)), np.array([0, 3]), 0.0, ValueError, r"labels must be in \[0, 2\]"),
    (np.zeros((2, 3)), np.array([-1, 0]), 0.0, ValueError, "labels must be in"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), 0.0, ValueError, r"shape \(B,\)"),
    (np.zeros((2, 3)), np.array([True, False]), 0.0, TypeError, "bool"),
    (np.zeros((2, 3)), [0, 1], 0.0, TypeError, "target must be a numpy.ndarray"),
    (np.zeros((2, 3)), np.full((2, 3), 0.5), 0.0, ValueError, "sum to 1"),
    (np.zeros((2, 3)), np.array([[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]]), 0.0, ValueError, "non-negative"),
    (np.zeros((2, 3)), np.full((2, 4), 0.25), 0.0, ValueError, r"shape \(B, K\)"),
    (np.zeros((2, 3)), np.array([[np.nan, 1.0, 0.0]] * 2), 0.0, ValueError, "NaN"),
    (np.zeros((2, 3), dtype=np.int64), np.array([0, 1]), 0.0, TypeError, "logits must have a floating"),
    (np.zeros(3), np.array([0]), 0.0, ValueError, "logits must have rank 2"),
    (np.array([[0.0, np.inf]]), np.array([0]), 0.0, ValueError, "logits contains NaN"),
    (np.zeros((0, 3)), np.zeros(0, dtype=np.int64), 0.0, ValueError, "at least one row"),
    (np.zeros((2, 3)), np.array([0, 1]), 1.5, ValueError, "label_smoothing"),
    (np.zeros((2, 3)), np.array([0, 1]), -0.1, ValueError, "label_smoothing"),
])
def test_bad_input(logits, target, eps, exc, match):
    with pytest.raises(exc, match=match):
        cross_entropy(logits, target, label_smoothing=eps)
