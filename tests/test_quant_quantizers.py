"""gsbnp.quant.quantizers: the objects a linear layer is given return the binary image, its scale and
its codes explicitly (x_b = scale * codes exactly), wrap the pure pairs unchanged, and clamp scales."""

import numpy as np
import pytest

from gsbnp.gradcheck import check_surrogate
from gsbnp.quant import (SCALE_FLOOR, ActivationQuantizer, WeightQuantizer, act_round_backward, act_round_forward,
                         act_sign_forward, baseline_act_sign_forward, weight_binarize_forward)

from conftest import B, D, N


@pytest.mark.parametrize("mode, rule", [("learnable", "sign"), ("learnable", "round"), ("baseline", "sign"),
                                        ("baseline", "round")])
def test_image_is_scale_times_codes(mode, rule, rng):
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    q = ActivationQuantizer(mode, rule)
    x_b, scale, codes, _ = q.forward(x, np.float32(0.7), np.zeros(D, np.float32))
    assert x_b.dtype == codes.dtype == np.float32
    assert set(np.unique(codes)) <= ({-1.0, 1.0} if rule == "sign" else {0.0, 1.0})
    np.testing.assert_array_equal(x_b, scale * codes)
    if mode == "baseline":
        assert scale.shape == (B, 1, 1)  # per sample
        np.testing.assert_array_equal(scale[:, 0, 0], np.abs(x).mean(axis=(1, 2)))
    else:
        assert scale == np.float32(0.7)


def test_learnable_quantizer_is_the_pure_pair_with_the_clamp(rng):
    x = rng.standard_normal((B, N, D))
    bias = rng.standard_normal(D) * 0.1
    q = ActivationQuantizer("learnable", "round", scale_grad="sqrt")
    x_b, scale, _, cache = q.forward(x, np.array(-3.0), bias)  # a scale below the floor enters as the floor
    ref, rcache = act_round_forward(x, SCALE_FLOOR, bias, scale_grad="sqrt")
    assert scale == SCALE_FLOOR and np.array_equal(x_b, ref)
    g = rng.standard_normal(x.shape)
    for a, b in zip(q.backward(g, cache), act_round_backward(g, rcache)):
        np.testing.assert_array_equal(a, b)
    assert q.init_scale(x) == pytest.approx(4 * np.abs(x).mean(), rel=1e-12)
    with pytest.warns(RuntimeWarning, match="not positive"):
        assert ActivationQuantizer("learnable", "sign").init_scale(np.zeros(3)) == SCALE_FLOOR


def test_codes_under_a_surrogate_are_recomputed_and_the_ste_checks(rng):
    x = rng.standard_normal((B, N, D))
    alpha, bias = np.array(0.8), rng.standard_normal(D) * 0.1
    q = ActivationQuantizer("learnable", "sign", scale_grad="sum")

    def forward():
        x_b, scale, codes, cache = q.forward(x, alpha, bias)
        np.testing.assert_array_equal(x_b, scale * codes)
        return x_b, cache
    errs = check_surrogate(forward, lambda d, c: q.backward(d, c), [x, alpha, bias], rng=rng)
    assert max(errs) < 1e-8, errs
    x_b, _ = act_sign_forward(x, 0.8, bias)
    assert np.array_equal(forward()[0], x_b)


def test_baseline_quantizer_has_no_parameters(rng):
    x = rng.standard_normal((B, N, D))
    q = ActivationQuantizer("baseline", "sign")
    x_b, _, _, cache = q.forward(x)
    assert np.array_equal(x_b, baseline_act_sign_forward(x)[0])
    dx, dalpha, dbias = q.backward(np.ones_like(x), cache)
    assert dalpha is None and dbias is None and dx.shape == x.shape
    with pytest.raises(ValueError, match="no learnable scale"):
        q.init_scale(x)
    with pytest.raises(ValueError, match="mode"):
        ActivationQuantizer("xnor", "sign")
    with pytest.raises(ValueError, match="rule"):
        ActivationQuantizer("learnable", "ternary")


def test_weight_quantizer_returns_its_scale(rng):
    W = rng.standard_normal((7, D))
    W_b, alpha, cache = WeightQuantizer().forward(W)
    assert alpha == np.abs(W).mean() and np.array_equal(W_b, weight_binarize_forward(W)[0])
    np.testing.assert_array_equal(np.abs(W_b), alpha)
    dW = WeightQuantizer().backward(np.ones_like(W), cache)
    assert np.array_equal(dW, np.ones_like(W))
