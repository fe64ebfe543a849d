"""Task 3.1: GSB attention backward (Eqs. 14-20)."""

import numpy as np
from helpers import check_public

from gsbnp.gradcheck import check_surrogate
from gsbnp.quant import gsb_attention_backward, gsb_attention_forward


def test_frozen_reference():
    check_public("3.1")


def test_backward_matches_the_surrogate_of_the_forward(rng):
    A = rng.random((2, 2, 5, 5))
    A_ret = A / A.sum(axis=-1, keepdims=True) - 0.05
    alphas = np.array([0.3, 0.1, 0.05])
    errors = check_surrogate(lambda: gsb_attention_forward(A_ret, alphas, 2, scale_grad="sum"),
                             gsb_attention_backward, [A_ret, alphas], rng=rng)
    assert max(errors) < 1e-8, dict(zip(("dA_ret", "dalphas"), errors))
