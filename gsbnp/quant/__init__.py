"""The paper's binarizers as pure forward/backward pairs.

Legend: B batch, N tokens, D embed, H heads, Dh head dim, F MLP hidden.

- ``weights``: ``weight_binarize_forward/backward`` (Eqs. 1, 2, 4, 6).
- ``activations``: learnable type-B ``act_sign_*`` and type-A ``act_round_*`` (Eqs. 3-5, 14, 29, 31),
  parameter-free baseline ``baseline_act_sign_*`` / ``baseline_act_round_*`` (Eqs. 1-2).
- ``attention``: ``baseline_attention_*`` (Eqs. 7-8, switch to Eq. 2) and ``gsb_attention_*`` (Eqs. 9-20).
- ``value``: ``gsb_value_*`` (Eqs. 26-32).
- ``init``: initial scales ``gsb_attention_init`` (Eqs. 21-25), ``gsb_value_init`` (Eqs. 33-34),
  ``act_sign_init`` / ``act_round_init``.
- ``quantizers``: ``WeightQuantizer`` and ``ActivationQuantizer``, the objects a linear layer is given;
  they return the binary image, its scale and its codes explicitly.
- ``product``: ``attention_product_forward/backward``, the whole binarized attention product from the
  heads q, k, v to Y = A V (baseline Eqs. 7-8, GSB Eqs. 9-35), which the attention layer calls.
- ``options``: every option's choices and bounds (``SCALE_GRAD_CHOICES``, ``PHI_MODES``, ``K_MAX``, ...)
  and ``SCALE_FLOOR``, defined once.
- ``ste``: alias of ``gsbnp._ste``, the ``discrete`` / ``frozen`` hooks and the frozen-residual
  surrogate used to check them.

Every ``*_forward`` returns ``(out, cache)``; every ``*_backward(dout, cache)`` returns the gradients and
never writes into ``dout``.
"""

from .._ste import FrozenResidual, discrete, frozen, surrogate_active
from . import options
from .activations import (act_round_backward, act_round_forward, act_sign_backward, act_sign_forward,
                          baseline_act_round_backward, baseline_act_round_forward, baseline_act_sign_backward,
                          baseline_act_sign_forward)
from .attention import (baseline_attention_backward, baseline_attention_forward, gsb_attention_backward,
                        gsb_attention_forward, threshold_coefficients)
from .init import act_round_init, act_sign_init, gsb_attention_init, gsb_value_init
from .options import (ABIN_CHOICES, ATTN_THRESHOLD_SCOPES, BASELINE_MODES, K_MAX, K_MIN, PHI_MODES, SCALE_FLOOR,
                      SCALE_GRAD_CHOICES, V_GRAD_CHOICES, VALUE_INIT_CHOICES, VALUE_THRESHOLD_SCOPES)
from .product import attention_product_backward, attention_product_forward
from .quantizers import ActivationQuantizer, WeightQuantizer
from .value import gsb_value_backward, gsb_value_forward
from .weights import weight_binarization_stats, weight_binarize_backward, weight_binarize_forward

__all__ = [
    "weight_binarize_forward", "weight_binarize_backward", "weight_binarization_stats",
    "act_sign_forward", "act_sign_backward", "act_round_forward", "act_round_backward",
    "act_sign_init", "act_round_init",
    "baseline_act_sign_forward", "baseline_act_sign_backward",
    "baseline_act_round_forward", "baseline_act_round_backward",
    "baseline_attention_forward", "baseline_attention_backward",
    "gsb_attention_forward", "gsb_attention_backward", "gsb_attention_init",
    "gsb_value_forward", "gsb_value_backward", "gsb_value_init",
    "threshold_coefficients", "FrozenResidual", "discrete", "frozen", "surrogate_active",
    "SCALE_GRAD_CHOICES", "BASELINE_MODES", "ATTN_THRESHOLD_SCOPES", "ABIN_CHOICES",
    "VALUE_THRESHOLD_SCOPES", "V_GRAD_CHOICES", "VALUE_INIT_CHOICES", "SCALE_FLOOR", "K_MAX", "K_MIN",
    "PHI_MODES", "options", "attention_product_forward", "attention_product_backward",
    "WeightQuantizer", "ActivationQuantizer",
]
