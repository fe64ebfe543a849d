"""Quantizer objects that a binarized linear layer is given (as larq's
``QuantDense(input_quantizer=..., kernel_quantizer=...)``).

Legend: B batch, N tokens, D embed (input features), F output features (docs/legend.md).

Each object wraps the pure forward/backward pairs of this package and returns what the layer needs,
explicitly: the binary image, its scale and its codes, so that ``x_b = scale * codes`` with codes in
{-1, +1} or {0, 1}. The layer owns the parameters (``act_alpha``, ``act_bias``) and passes them in;
the quantizer holds only its rule. Scales are clamped here: ``max(alpha, SCALE_FLOOR)``
(docs/conventions.md#positivity-of-scales).

- :class:`WeightQuantizer`: ``W_b = alpha_w * sign(W - mean W)``, identity STE (Eqs. 1, 2, 4, 6).
- :class:`ActivationQuantizer`: learnable type-B / type-A (Eqs. 3-5) or the baseline of Eqs. 1-2.
"""

from __future__ import annotations

import numpy as np

from .._ste import surrogate_active
from .._validate import check_choice
from .activations import (act_round_backward, act_round_forward, act_sign_backward, act_sign_forward,
                          baseline_act_round_backward, baseline_act_round_forward, baseline_act_sign_backward,
                          baseline_act_sign_forward)
from .init import act_round_init, act_sign_init
from .options import ACT_MODES, QUANTIZER_RULES, SCALE_FLOOR, SCALE_GRAD_CHOICES
from .weights import weight_binarize_backward, weight_binarize_forward

__all__ = ["WeightQuantizer", "ActivationQuantizer"]


class WeightQuantizer:
    """Kernel quantizer: ``W -> (W_b, alpha_w, cache)`` with ``W_b = alpha_w * sign(W - mean W)``.

    ``alpha_w = mean|W|`` (a scalar of W's dtype); the backward is the identity STE ``dW = dW_b``.
    """

    def forward(self, W: np.ndarray):
        W_b, cache = weight_binarize_forward(W)
        return W_b, cache["alpha"], cache

    def backward(self, dW_b: np.ndarray, cache) -> np.ndarray:
        return weight_binarize_backward(dW_b, cache)

    def __repr__(self) -> str:
        return "WeightQuantizer()"


class ActivationQuantizer:
    """Input quantizer of a binarized linear layer.

    Args:
        mode: "learnable" (scale alpha and per-feature bias, docs/conventions.md#activations-of-linear-layers)
            or "baseline" (per-sample statistics of Eqs. 1-2, no parameters).
        rule: "sign" (type-B, Eq. 4) or "round" (type-A, Eq. 3).
        scale_grad: reduction of dalpha ("mean" | "sqrt" | "sum"), learnable mode only.

    ``forward(x, alpha, bias) -> (x_b, scale, codes, cache)``: ``x_b = scale * codes`` with ``scale`` the
    clamped alpha (a scalar of x's dtype) or the baseline's per-sample beta (B, 1, ..., 1), and ``codes``
    in {-1, +1} (sign) or {0, 1} (round), exactly ``x_b / scale``. ``backward(dout, cache) -> (dx, dalpha,
    dbias)``; the baseline returns ``dalpha = dbias = None``.
    """

    def __init__(self, mode: str, rule: str, *, scale_grad: str = "mean"):
        self.mode = check_choice(mode, ACT_MODES[1:], "mode")  # not None: no quantizer is no object
        self.rule = check_choice(rule, QUANTIZER_RULES, "rule")
        self.scale_grad = check_choice(scale_grad, SCALE_GRAD_CHOICES, "scale_grad")

    @property
    def learnable(self) -> bool:
        return self.mode == "learnable"

    def init_scale(self, x: np.ndarray) -> float:
        """Initial alpha from a batch: ``2 mean|x|`` (sign) or ``4 mean|x|`` (round), at least the floor
        (docs/conventions.md#initial-scales)."""
        if not self.learnable:
            raise ValueError("a baseline quantizer has no learnable scale to initialise")
        return max(act_sign_init(x) if self.rule == "sign" else act_round_init(x), SCALE_FLOOR)

    def forward(self, x: np.ndarray, alpha=None, bias=None):
        if self.learnable:
            a = max(float(alpha), SCALE_FLOOR)
            fwd = act_sign_forward if self.rule == "sign" else act_round_forward
            x_b, cache = fwd(x, a, bias, scale_grad=self.scale_grad)
            scale = x_b.dtype.type(a)
            # the quantizer's values are the codes, except under a frozen-residual replay, where x_b is
            # u + r inside the windows rather than alpha times a code
            codes = x_b / scale if surrogate_active() else cache["value"]
        else:
            fwd = baseline_act_sign_forward if self.rule == "sign" else baseline_act_round_forward
            x_b, cache = fwd(x)
            scale = cache["beta"].astype(x_b.dtype, copy=False)  # (B, 1, ..., 1) per sample
            codes = x_b / scale
        return x_b, scale, codes, cache

    def backward(self, dout: np.ndarray, cache):
        if self.learnable:
            bwd = act_sign_backward if self.rule == "sign" else act_round_backward
            return bwd(dout, cache)
        bwd = baseline_act_sign_backward if self.rule == "sign" else baseline_act_round_backward
        return bwd(dout, cache), None, None

    def __repr__(self) -> str:
        return f"ActivationQuantizer({self.mode!r}, {self.rule!r}, scale_grad={self.scale_grad!r})"
