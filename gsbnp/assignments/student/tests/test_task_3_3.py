"""Task 3.3: the initial scales of GSB attention (Eq. 25) and of the GSB value (Eq. 34)."""

import warnings

import numpy as np
from helpers import check_public

from gsbnp.quant import gsb_attention_init, gsb_value_init


def test_frozen_reference():
    check_public("3.3")


def test_one_scale_per_component_all_positive(rng):
    A = rng.random((2, 2, 6, 6))
    A_ret = A / A.sum(axis=-1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in (0, 1, 2, 3):
            alphas, betas = gsb_attention_init(A_ret, k), gsb_value_init(rng.standard_normal((2, 2, 5, 4)), k)
            assert alphas.shape == betas.shape == (k + 1,)
            assert np.all(alphas > 0) and np.all(betas > 0)


def test_a_two_level_value_is_represented_exactly():
    """V0 with |entries| in {1, 3}: the outer entries are only in the top region; the scales add up."""
    V0 = np.array([1.0, -1.0, 3.0, -3.0, 1.0, 1.0]).reshape(1, 1, 2, 3)
    betas = gsb_value_init(V0, 1)
    assert np.isclose(betas[0], 1.0) and np.isclose(betas.sum(), 3.0), betas
