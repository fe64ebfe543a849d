"""``DeiTConfig``: one dataclass for the architecture and the binarization method, with presets.

Field names of the architecture follow timm's ``VisionTransformer``; the binarization fields follow
the paper (Sections III-IV) and docs/conventions.md#defaults. Use ``DeiTConfig.preset(name)`` and
``dataclasses.replace(cfg, field=value)``; every instance is validated on construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._validate import check_choice, check_float, check_int
from ..quant.options import (ABIN_CHOICES, ATTN_THRESHOLD_SCOPES, BASELINE_MODES, INIT_CHOICES, K_MAX, K_MIN, METHODS,
                             PHI_MODES, SCALE_GRAD_CHOICES, STAGE1_CHOICES, TYPE_A_CHOICES, V_GRAD_CHOICES)

PRESETS = {
    # 8x8 grey digits (the bundled data set): N = 16 patches + 2 tokens = 18
    "digits": dict(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                   num_heads=2),
    # 32x32 RGB (CIFAR-size): N = 64 + 2 = 66
    "tiny": dict(img_size=32, patch_size=4, in_chans=3, num_classes=100, embed_dim=192, depth=6,
                 num_heads=3),
    "small32": dict(img_size=32, patch_size=4, in_chans=3, num_classes=100, embed_dim=384, depth=12,
                    num_heads=6),
    # DeiT-Small as in the paper: 224x224, patch 16 -> 196 + 2 = 198 tokens, ~22 M parameters
    "deit_small": dict(img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=384,
                       depth=12, num_heads=6),
}


@dataclass(frozen=True)
class DeiTConfig:
    """Architecture (timm names) and binarization options of a DeiT / GSB-DeiT."""

    img_size: int = 32            # input height = width (pixels)
    patch_size: int = 4           # P: patch side; img_size must be divisible by it
    in_chans: int = 3             # C: image channels
    num_classes: int = 100        # classes of both heads
    embed_dim: int = 192          # D: token width
    depth: int = 6                # number of transformer blocks
    num_heads: int = 3            # H: attention heads (D divisible by H)
    mlp_ratio: float = 4.0        # F = mlp_ratio * D hidden units in the MLP
    drop_rate: float = 0.0        # dropout after pos-embed, in the MLP and after attention proj
    drop_path_rate: float = 0.0   # stochastic depth, linearly increasing over blocks up to this
    # -- binarization (used by set_precision("binary"); "weights" only binarizes weights) --------
    method: str = "gsb"           # "gsb" (Section IV) or "baseline" (Section III)
    gsb_att: bool = True          # GSB attention (Eqs. 9-25); off -> baseline attention (Table IV)
    gsb_v: bool = True            # GSB value matrix (Eqs. 26-34); off -> baseline V (Table IV)
    k_a: int = 2                  # extra attention components, 0..4 (Table VI)
    k_v: int = 2                  # extra value components, 0..4 (Table VI)
    phi: str = "HNN"              # offset Phi: "zero" | "mean" | "HN" | "HNN" (Table VII)
    type_a: str = "round"         # type-A activations: "round" (Eq. 3) or "sign" (Table V ablation)
    abin: str = "round"           # A_bin: "round" (Eq. 11) or "mask" (same as M_i, Table VIII)
    scale_grad: str = "mean"      # reduction of scale gradients: "mean" (paper) | "sqrt" | "sum"
    threshold_scope: str = "row"  # GSB thresholds per row/sample ("row") or per batch ("batch", code)
    v_grad: str = "masked"        # Eq. 32 "masked" or the released code's "unmasked"
    baseline_attn: str = "eq8"    # baseline attention scale: "eq8" (with the switch) or "eq2"
    init: str = "paper"           # initial GSB scales: "paper" (Eqs. 21-25, 33-34) or "official"
    stage1: str = "paper"         # stage 1 binarizes all block linears ("paper") or fc1/fc2 ("official")

    def __post_init__(self):
        for name in ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads"):
            check_int(getattr(self, name), name, lo=1)
        check_float(self.mlp_ratio, "mlp_ratio", lo=0.0, lo_open=True)
        check_float(self.drop_rate, "drop_rate", lo=0.0, hi=0.99)
        check_float(self.drop_path_rate, "drop_path_rate", lo=0.0, hi=0.99)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size ({self.img_size}) must be divisible by patch_size ({self.patch_size})")
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ValueError("embed_dim * mlp_ratio must be at least 1")
        check_choice(self.method, METHODS, "method")
        for name in ("gsb_att", "gsb_v"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        check_int(self.k_a, "k_a", lo=K_MIN, hi=K_MAX)
        check_int(self.k_v, "k_v", lo=K_MIN, hi=K_MAX)
        check_choice(self.phi, PHI_MODES, "phi")
        check_choice(self.type_a, TYPE_A_CHOICES, "type_a")
        check_choice(self.abin, ABIN_CHOICES, "abin")
        check_choice(self.scale_grad, SCALE_GRAD_CHOICES, "scale_grad")
        check_choice(self.threshold_scope, ATTN_THRESHOLD_SCOPES, "threshold_scope")
        check_choice(self.v_grad, V_GRAD_CHOICES, "v_grad")
        check_choice(self.baseline_attn, BASELINE_MODES, "baseline_attn")
        check_choice(self.init, INIT_CHOICES, "init")
        check_choice(self.stage1, STAGE1_CHOICES, "stage1")

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """N: patches + [cls] + [dist]."""
        return self.num_patches + 2

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @classmethod
    def preset(cls, name: str, **overrides) -> "DeiTConfig":
        """A named preset (``digits``, ``tiny``, ``small32``, ``deit_small``) with optional overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(overrides) - fields)
        if bad:
            raise ValueError(f"unknown DeiTConfig field(s): {', '.join(bad)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DeiTConfig":
        if not isinstance(d, dict):
            raise TypeError(f"config must be a dict, got {type(d).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - fields)
        if bad:
            raise ValueError(f"unknown DeiTConfig field(s): {', '.join(bad)}")
        return cls(**d)
