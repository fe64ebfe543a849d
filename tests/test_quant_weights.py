"""Tests of gsbnp.quant.weights: W_b = mean|W| * sign(W - mean(W)), identity STE (Eqs. 1, 2, 4, 6)."""

import numpy as np
import pytest

from gsbnp.gradcheck import FrozenResidual, numerical_gradient, rel_error
from gsbnp.quant import weight_binarize_backward, weight_binarize_forward

F, D = 12, 8


def centred_weight(rng, mu=0.25):
    """Dyadic (F, D) weight whose mean is exactly ``mu``, four of its entries equal to ``mu``.

    Symmetric pairs ``mu +- o`` (o dyadic) sum exactly to ``2 mu``, so the mean is exact.
    """
    n = F * D
    offs = rng.integers(1, 40, size=n // 2) / 16.0
    offs[:2] = 0.0  # two pairs with W - mu == 0 exactly (sign(0) = +1)
    return rng.permutation(np.concatenate([mu + offs, mu - offs])).reshape(F, D)


def test_forward_matches_paper_formula():
    rng = np.random.default_rng(0)
    W = centred_weight(rng)
    W_b, cache = weight_binarize_forward(W)
    mu = W.mean()
    alpha = np.abs(W).mean()  # of the uncentred W
    assert mu == 0.25 and cache["mu"] == mu and cache["alpha"] == alpha
    assert np.count_nonzero(W == mu) == 4
    assert np.array_equal(W_b, np.where(W - mu >= 0, alpha, -alpha))  # sign(0) = +1
    assert np.all(W_b[W == mu] == alpha)


def test_backward_identity_and_surrogate():
    rng = np.random.default_rng(1)
    W = centred_weight(rng)
    W[0, 1] = 0.0
    sur = FrozenResidual()
    with sur.record():
        W_b0, cache = weight_binarize_forward(W)
    dout = rng.standard_normal(W.shape)
    dW = weight_binarize_backward(dout, cache)
    assert np.array_equal(dW, dout)  # Eq. 6: G = 1 everywhere, outliers included
    assert dW is not dout and not np.shares_memory(dW, dout)

    def replay(_):
        with sur.replay():
            return weight_binarize_forward(W)[0]

    assert np.array_equal(replay(None), W_b0)
    num = numerical_gradient(replay, W, dout, 1e-5)
    assert rel_error(dW, num) < 1e-8


def test_float32_and_other_ranks():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((F, D)).astype(np.float32)
    W_b, _ = weight_binarize_forward(W)
    assert W_b.dtype == np.float32
    assert len(np.unique(W_b)) == 2
    v, _ = weight_binarize_forward(rng.standard_normal(7))
    assert v.shape == (7,)


def test_bad_input():
    with pytest.raises(TypeError, match="W must have a floating dtype"):
        weight_binarize_forward(np.ones((F, D), dtype=np.int64))
    with pytest.raises(ValueError, match="W must be non-empty"):
        weight_binarize_forward(np.zeros((0, D)))
    with pytest.raises(ValueError, match="W contains NaN or inf"):
        weight_binarize_forward(np.full((F, D), np.inf))
    _, cache = weight_binarize_forward(np.ones((F, D)))
    with pytest.raises(ValueError, match="dW_b must have W's shape"):
        weight_binarize_backward(np.ones((D, F)), cache)
