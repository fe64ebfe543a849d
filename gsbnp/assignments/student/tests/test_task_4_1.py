"""Task 4.1: popcount matmul."""

import numpy as np
from helpers import check_public

from gsbnp.bitops import matmul_mask_sign, matmul_sign_sign, pack_mask, pack_signs


def test_frozen_reference():
    check_public("4.1")


def test_products_equal_the_float_matrix_product(rng):
    for K in (1, 63, 64, 65, 200):
        a, w = rng.choice([-1, 1], size=(3, K)), rng.choice([-1, 1], size=(4, K))
        m = rng.integers(0, 2, size=(3, K))
        assert np.array_equal(matmul_sign_sign(pack_signs(a), pack_signs(w)), a @ w.T), K
        assert np.array_equal(matmul_mask_sign(pack_mask(m), pack_signs(w)), m @ w.T), K
