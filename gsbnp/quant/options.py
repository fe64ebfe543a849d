"""The vocabulary of gsbnp's binarization options, defined once.

Every choice and bound below is imported by the quantizers that check it, by the layers, by
``DeiTConfig``, by the op counter and by the command line (its ``choices=``), so a new option value is
added in one place. The paper's defaults are listed in docs/conventions.md#defaults.

=========================  =================================================================
``METHODS``                "gsb" (Section IV) | "baseline" (Section III)
``SCALE_GRAD_CHOICES``     reduction of a learnable scale's gradient: "mean" (paper) | "sqrt" | "sum"
``PHI_MODES``              the offset Phi of Eq. 9: "HNN" (paper, learnable (H, N, N)) | "HN" | "mean" | "zero"
``K_MIN``, ``K_MAX``       bounds of k_a and k_v (Table VI studies 0..4)
``ABIN_CHOICES``           A_bin: "round" (Eq. 11) | "mask" (Table VIII)
``ATTN_THRESHOLD_SCOPES``  GSB attention thresholds per "row" (Eq. 13) | per "batch" (released code)
``VALUE_THRESHOLD_SCOPES`` GSB value thresholds per "sample" | per "batch"; ``value_threshold_scope``
                           maps the model's one ``threshold_scope`` option onto it
``V_GRAD_CHOICES``         STE of V: "masked" (Eq. 32) | "unmasked" (released code)
``BASELINE_MODES``         baseline attention scale: "eq8" (with the switch to Eq. 2) | "eq2"
``INIT_CHOICES``           initial GSB scales: "paper" (Eqs. 21-25, 33-34) | "official"
``TYPE_A_CHOICES``         type-A activations: "round" (Eq. 3) | "sign" (Table V)
``STAGE1_CHOICES``         stage 1 binarizes every block linear ("paper") | fc1 and fc2 ("official")
``ATTN_MODES``             an attention layer's product: None (float) | "baseline" | "gsb"
``ACT_MODES``              a linear layer's input quantizer: None | "learnable" | "baseline"
``ACT_RULES``              a type-A position's rule: "paper" (round) | "sign" (Table V)
``QUANTIZER_RULES``        an activation quantizer's rule: "sign" (type-B, Eq. 4) | "round" (type-A, Eq. 3)
``COUNT_METHODS``          what the op counter counts: "fp" | "baseline" | "gsb"
``SCALE_FLOOR``            every learnable scale enters a forward pass as max(s, SCALE_FLOOR)
=========================  =================================================================
"""

from __future__ import annotations

__all__ = ["METHODS", "SCALE_GRAD_CHOICES", "PHI_MODES", "K_MIN", "K_MAX", "ABIN_CHOICES",
           "ATTN_THRESHOLD_SCOPES", "VALUE_THRESHOLD_SCOPES", "V_GRAD_CHOICES", "BASELINE_MODES",
           "INIT_CHOICES", "VALUE_INIT_CHOICES", "TYPE_A_CHOICES", "STAGE1_CHOICES", "ATTN_MODES",
           "ACT_MODES", "ACT_RULES", "QUANTIZER_RULES", "COUNT_METHODS", "SCALE_FLOOR", "value_threshold_scope"]

METHODS = ("gsb", "baseline")
SCALE_GRAD_CHOICES = ("mean", "sqrt", "sum")
PHI_MODES = ("zero", "mean", "HN", "HNN")
K_MIN, K_MAX = 0, 4
ABIN_CHOICES = ("round", "mask")
ATTN_THRESHOLD_SCOPES = ("row", "batch")
VALUE_THRESHOLD_SCOPES = ("sample", "batch")
V_GRAD_CHOICES = ("masked", "unmasked")
BASELINE_MODES = ("eq2", "eq8")
INIT_CHOICES = ("paper", "official")
VALUE_INIT_CHOICES = INIT_CHOICES  # the name gsbnp.quant exported first
TYPE_A_CHOICES = ("round", "sign")
STAGE1_CHOICES = ("paper", "official")
ATTN_MODES = (None, "baseline", "gsb")
ACT_MODES = (None, "learnable", "baseline")
ACT_RULES = ("paper", "sign")
QUANTIZER_RULES = ("sign", "round")
COUNT_METHODS = ("fp", "baseline", "gsb")

SCALE_FLOOR = 1e-5


def value_threshold_scope(threshold_scope: str) -> str:
    """The value matrix's scope for the model's ``threshold_scope``: "row" -> "sample", "batch" -> "batch"."""
    return "sample" if threshold_scope == "row" else "batch"
