"""Task 5.1: distillation loss (Eq. 36)."""

import numpy as np
from helpers import check_public

from gsbnp.gradcheck import numerical_gradient, rel_error
from gsbnp.train.losses import distillation_loss


def test_frozen_reference():
    check_public("5.1")


def test_gradients_match_finite_differences(rng):
    cls, dist, teacher = (rng.standard_normal((3, 5)) for _ in range(3))
    y = np.array([4, 1, 0])
    for kind in ("hard", "soft"):
        def L(c, d, kind=kind):
            return distillation_loss(c, d, y, teacher, lam=0.3, kind=kind, tau=2.0)
        _, dcls, ddist = L(cls, dist)
        errors = {"dcls_logits": rel_error(dcls, numerical_gradient(lambda z: L(z, dist)[0], cls)),
                  "ddist_logits": rel_error(ddist, numerical_gradient(lambda z: L(cls, z)[0], dist))}
        assert all(e < 1e-6 for e in errors.values()), (kind, errors)
