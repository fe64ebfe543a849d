"""Layers of the transformer as modules: Linear (full precision or binarized), LayerNorm, GELU, MLP,
PatchEmbed.

Legend: B batch, N tokens, D embed, F MLP hidden, C channels, P patch.

A binarized linear layer *is* the float layer with quantizers plugged in (as larq's ``QuantDense``):

    x_b = Q_act(x)                      type-B (sign, Eq. 4) or type-A (round/clip, Eq. 3)
    W_b = alpha_w * sign(W - mean W)    Eqs. 1, 2, 4; identity STE, Eq. 6
    out = x_b @ W_b.T + b

With both quantizers off (the default), ``forward`` is exactly ``linear_forward``.
"""

from __future__ import annotations

import numpy as np

from .. import bitops
from .. import functional as F
from .. import quant as Q
from .._threads import tick as _threads_tick
from .._validate import check_choice
from ..quant.ste import surrogate_active
from .init import trunc_normal
from .module import Module

SCALE_FLOOR = 1e-5  # every learnable scale enters the forward pass as max(s, SCALE_FLOOR)

ACT_MODES = (None, "learnable", "baseline")


class Linear(Module):
    """``out = x @ W.T + b`` with optional weight and input-activation binarization.

    Parameters: ``W (F, D)``, ``b (F,)``; in the learnable activation mode also ``act_alpha ()``
    (scalar scale) and ``act_bias (D,)`` (per-feature translation).

    Quantization state (set by ``set_quant``; the model's ``set_precision`` drives it):
        binarize_weights: W -> W_b (Eqs. 1, 2, 4), dW = dW_b (Eq. 6).
        act_mode: None (full precision input), "learnable" (GSB: learnable scale and bias, Eqs. 4-5 /
            CONVENTIONS type-A/B) or "baseline" (Eqs. 1-2 statistics, no parameters).
        act_type: "B" (sign; inputs of qkv, proj, fc1) or "A" (round/clip; input of fc2), fixed by the
            layer's position; ``act_rule="sign"`` forces sign on a type-A position (Table V).
    The learnable scale is initialised on the first batch it sees (2 mean|x| for type-B, 4 mean|x| for
    type-A) and flagged in the buffer ``act_initialized`` so it never happens again, also not after a
    checkpoint load.
    """

    no_decay_params = ("b", "act_alpha", "act_bias")

    def __init__(self, in_features: int, out_features: int, *, rng: np.random.Generator,
                 dtype=np.float32, bias: bool = True, act_type: str = "B"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.dtype = np.dtype(dtype)
        self.add_param("W", trunc_normal(rng, (out_features, in_features), dtype=dtype))
        if bias:
            self.add_param("b", np.zeros(out_features, dtype=dtype))
        self.act_type = check_choice(act_type, ("A", "B"), "act_type")
        self.binarize_weights = False
        self.act_mode = None
        self.act_rule = "paper"
        self.scale_grad = "mean"
        self._cache = None
        self._packed = None  # (W bits, alpha_w, unpacked W_b or None) in packed inference

    def set_packed(self, W_bits, alpha_w: float) -> None:
        """Inference on bit-packed weights (``gsbnp.bitops``): ``W_bits`` is the sign-packed (F, D)
        image of ``W - mean(W)`` and ``alpha_w = mean|W|``. The forward then quantizes its input exactly
        as the float simulation does and multiplies with xnor/popcount; backward is unavailable."""
        if W_bits.shape != (self.out_features, self.in_features) or W_bits.kind != "sign":
            raise ValueError(f"W_bits must be sign bits of shape {(self.out_features, self.in_features)}, "
                             f"got {W_bits.kind} {W_bits.shape}")
        self._packed = (W_bits, float(alpha_w), None)

    def set_quant(self, *, weights: bool, act_mode: str | None, act_rule: str = "paper",
                  scale_grad: str = "mean") -> None:
        """Switch the quantizers. Creates the learnable activation parameters on first use."""
        check_choice(act_mode, ACT_MODES, "act_mode")
        self.act_rule = check_choice(act_rule, ("paper", "sign"), "act_rule")
        self.scale_grad = check_choice(scale_grad, ("mean", "sqrt", "sum"), "scale_grad")
        self.binarize_weights = bool(weights)
        self.act_mode = act_mode
        if act_mode == "learnable" and "act_alpha" not in self._params:
            self.add_param("act_alpha", np.ones((), dtype=self.dtype))
            self.add_param("act_bias", np.zeros(self.in_features, dtype=self.dtype))
            self._buffers["act_initialized"] = np.zeros((), dtype=np.uint8)

    @property
    def _sign_input(self) -> bool:
        return self.act_type == "B" or self.act_rule == "sign"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., D) -> (..., F)."""
        _threads_tick(x.size * self.out_features)  # the GEMM's multiply-adds: BLAS threads follow the work
        if self._packed is not None:
            return self._packed_forward(x)
        p = self._params
        acache = wcache = None
        s_x = None  # the activation scale: x_b = s_x * (+-1 or {0, 1})
        if self.act_mode == "learnable":
            if not self._buffers["act_initialized"] and not surrogate_active():
                init = Q.act_sign_init(x) if self._sign_input else Q.act_round_init(x)
                p["act_alpha"][...] = max(init, SCALE_FLOOR)
                self._buffers["act_initialized"][...] = 1
            alpha = max(float(p["act_alpha"]), SCALE_FLOOR)
            fwd = Q.act_sign_forward if self._sign_input else Q.act_round_forward
            x, acache = fwd(x, alpha, p["act_bias"], scale_grad=self.scale_grad)
            s_x = x.dtype.type(alpha)
        elif self.act_mode == "baseline":
            fwd = Q.baseline_act_sign_forward if self._sign_input else Q.baseline_act_round_forward
            x, acache = fwd(x)
            s_x = acache["beta"].astype(x.dtype, copy=False)  # (B, 1, ..., 1) per sample
        W = p["W"]
        if self.binarize_weights:
            W, wcache = Q.weight_binarize_forward(W)
        if s_x is not None and wcache is not None:
            # the quantizer's codes (+-1 or {0, 1}) are x / s_x exactly, except under a surrogate
            codes = acache["value"] if "value" in acache and not surrogate_active() else None
            out, lcache = self._binary_product(x, s_x, W, wcache["alpha"], p.get("b"), codes)
        else:
            out, lcache = F.linear_forward(x, W, p.get("b"))
        self._cache = (lcache, acache, wcache)
        return out

    @staticmethod
    def _binary_product(x_b, s_x, W_b, s_w, b, codes=None):
        """``x_b @ W_b.T + b`` computed as Eq. 1 writes it: ``s_x s_w (B(x) . B(W)^T) + b``.

        ``x_b / s_x`` and ``W_b / s_w`` are exactly +-1 (or {0, 1}), so the float product of the binary
        codes is an exact integer and the result is ``fl(fl(s_x s_w) * dot) + b`` - the very number
        the packed xnor/popcount engine computes. (Multiplying the scaled codes directly would let
        BLAS's rounding decide the sign of outputs whose exact value is 0.) Mathematically it is
        ``x_b @ W_b.T + b``, so ``linear_backward`` applies unchanged; the cache is the same.
        ``codes``: ``x_b / s_x`` when the caller has it (the quantizer's values), else computed.
        """
        dt = x_b.dtype.type
        if codes is None:
            codes = x_b / s_x
        codes = codes.reshape(-1, x_b.shape[-1])  # exactly +-1 or {0, 1}           (M, D)
        dot = codes @ (W_b / dt(s_w)).T  # exact integers                          (M, F)
        scale = s_x * dt(s_w)  # scalar, or (B, 1, ..., 1) per sample
        out = dot.reshape(*x_b.shape[:-1], W_b.shape[0])
        out *= scale
        if b is not None:
            out += b
        return out, (x_b, W_b, b is not None)

    def _packed_forward(self, x: np.ndarray) -> np.ndarray:
        """Packed inference: the float model's activation quantizer, then a popcount product.

        ``x_b = s * sign-or-mask`` (s the activation scale: learnable alpha, or the baseline's
        per-sample beta) and ``W_b = alpha_w * sign(W - mean W)``, so ``x_b @ W_b.T = s * alpha_w * dot``
        with the integer ``dot`` from ``K - 2 popcount(x xor w)`` (sign inputs) or mask/sign popcounts
        (type-A inputs, Fig. 10).
        """
        W_bits, alpha_w, W_b = self._packed
        p = self._params
        b = p.get("b")
        if self.act_mode is None:  # stage 1: full-precision input times the binary weight
            if W_b is None:
                W_b = (alpha_w * bitops.unpack_bits(W_bits, dtype=x.dtype)).astype(x.dtype)
                self._packed = (W_bits, alpha_w, W_b)
            return F.linear_forward(x, W_b, b)[0]
        if self.act_mode == "learnable":
            alpha = max(float(p["act_alpha"]), SCALE_FLOOR)
            fwd = Q.act_sign_forward if self._sign_input else Q.act_round_forward
            x_b, _ = fwd(x, alpha, p["act_bias"])
            if self._sign_input:
                return bitops.binary_linear_packed(bitops.pack_signs(x_b), W_bits, alpha_w, alpha, b,
                                                   dtype=x.dtype)
            scale = np.asarray(alpha, dtype=x.dtype)
        else:
            fwd = Q.baseline_act_sign_forward if self._sign_input else Q.baseline_act_round_forward
            x_b, cache = fwd(x)
            scale = cache["beta"].astype(x.dtype)  # (B, 1, ..., 1) per-sample scale
        if self._sign_input:
            dot = bitops.matmul_sign_sign(bitops.pack_signs(x_b), W_bits)  # (..., F) integers
        else:
            dot = bitops.matmul_mask_sign(bitops.pack_mask(x_b > 0), W_bits)
        out = dot.astype(x.dtype) * (scale * x.dtype.type(alpha_w))
        return out if b is None else out + b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (..., F) -> dx (..., D); fills grads of W, b (and act_alpha, act_bias)."""
        if self._packed is not None:
            raise RuntimeError("a packed (inference-only) layer has no backward")
        lcache, acache, wcache = self._cache
        dx, dW, db = F.linear_backward(dout, lcache)
        self._grads["W"] = Q.weight_binarize_backward(dW, wcache) if wcache is not None else dW
        if db is not None:
            self._grads["b"] = db
        if self.act_mode == "learnable":
            bwd = Q.act_sign_backward if self._sign_input else Q.act_round_backward
            dx, dalpha, dbias = bwd(dx, acache)
            # max(alpha, floor) passes the gradient straight through (CONVENTIONS, positivity).
            self._grads["act_alpha"] = np.asarray(dalpha, dtype=self.dtype).reshape(())
            self._grads["act_bias"] = dbias.astype(self.dtype, copy=False)
        elif self.act_mode == "baseline":
            bwd = Q.baseline_act_sign_backward if self._sign_input else Q.baseline_act_round_backward
            dx = bwd(dx, acache)
        return dx


class LayerNorm(Module):
    """LayerNorm over the last axis, eps 1e-6. Parameters ``weight (D,)`` (ones), ``bias (D,)``."""

    no_decay_params = ("weight", "bias")

    def __init__(self, dim: int, *, dtype=np.float32, eps: float = F.LN_EPS):
        super().__init__()
        self.eps = eps
        self.add_param("weight", np.ones(dim, dtype=dtype))
        self.add_param("bias", np.zeros(dim, dtype=dtype))

    def forward(self, x):
        y, self._cache = F.layernorm_forward(x, self._params["weight"], self._params["bias"], self.eps)
        return y

    def backward(self, dout):
        dx, self._grads["weight"], self._grads["bias"] = F.layernorm_backward(dout, self._cache)
        return dx


class GELU(Module):
    """Exact GELU, no parameters."""

    def forward(self, x):
        # eval mode (evaluation, a teacher) rarely needs a backward: the derivative (half of the float32
        # kernel's table work) is then computed only if backward is called
        y, self._cache = F.gelu_forward(x, with_grad=self.training)
        self._x = None if self.training else x
        return y

    def backward(self, dout):
        if self._cache is None:  # forward ran in eval mode
            self._cache = F.gelu_forward(self._x)[1]
        return F.gelu_backward(dout, self._cache)


class Dropout(Module):
    """Inverted dropout drawing its mask from the shared ``rng`` (identity in eval mode)."""

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__()
        self.p, self.rng = float(p), rng

    def forward(self, x):
        y, self._cache = F.dropout_forward(x, self.p, self.rng, self.training)
        return y

    def backward(self, dout):
        return F.dropout_backward(dout, self._cache)


class MLP(Module):
    """``fc2(drop(GELU(fc1(x))))`` then dropout: (B, N, D) -> (B, N, D) through F hidden units.

    fc1's input is type-B (after LayerNorm), fc2's input is type-A (after GELU, mostly >= 0).
    """

    def __init__(self, dim: int, hidden: int, *, rng: np.random.Generator, dtype=np.float32,
                 drop: float = 0.0):
        super().__init__()
        self.fc1 = self.add_module("fc1", Linear(dim, hidden, rng=rng, dtype=dtype, act_type="B"))
        self.act = self.add_module("act", GELU())
        self.drop1 = self.add_module("drop1", Dropout(drop, rng))
        self.fc2 = self.add_module("fc2", Linear(hidden, dim, rng=rng, dtype=dtype, act_type="A"))
        self.drop2 = self.add_module("drop2", Dropout(drop, rng))

    def forward(self, x):
        h = self.drop1(self.act(self.fc1(x)))  # (B, N, F)
        return self.drop2(self.fc2(h))

    def backward(self, dout):
        dh = self.fc2.backward(self.drop2.backward(dout))
        return self.fc1.backward(self.act.backward(self.drop1.backward(dh)))


class PatchEmbed(Module):
    """(B, C, H, W) -> (B, N, D) by a stride-P "convolution": kernel ``W (D, C, P, P)``, bias ``b (D,)``.

    Stays full precision in every stage (CONVENTIONS: patch embedding and heads are not binarized).
    """

    no_decay_params = ("b",)

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, *,
                 rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        self.patch_size = patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.add_param("W", trunc_normal(rng, (embed_dim, in_chans, patch_size, patch_size), dtype=dtype))
        self.add_param("b", np.zeros(embed_dim, dtype=dtype))

    def forward(self, x):
        y, self._cache = F.patch_embed_forward(x, self._params["W"], self._params["b"], self.patch_size)
        return y

    def backward(self, dout):
        dx, self._grads["W"], self._grads["b"] = F.patch_embed_backward(dout, self._cache)
        return dx
