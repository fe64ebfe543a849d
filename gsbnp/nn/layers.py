"""Layers of the transformer as modules: Linear (full precision or binarized), LayerNorm, GELU, MLP,
PatchEmbed.

Legend: B batch, N tokens, D embed, F MLP hidden / output features, C channels, P patch (docs/legend.md).

A binarized linear layer *is* the float layer with quantizers plugged in (as larq's ``QuantDense``):

    x_b = input_quantizer(x)            type-B (sign, Eq. 4) or type-A (round/clip, Eq. 3)
    W_b = kernel_quantizer(W)           alpha_w * sign(W - mean W): Eqs. 1, 2, 4; identity STE, Eq. 6
    out = x_b @ W_b.T + b

With both quantizers off (the default), ``forward`` is exactly ``linear_forward``.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import quant as Q
from .._threads import tick as _threads_tick
from .._validate import check_choice
from ..quant.options import ACT_MODES, ACT_RULES, SCALE_GRAD_CHOICES
from .init import trunc_normal
from .module import Module


class Linear(Module):
    """``out = x @ W.T + b``, given an input quantizer and a kernel quantizer (both off by default).

    Parameters: ``W (F, D)``, ``b (F,)``; with a learnable input quantizer also ``act_alpha ()`` (scalar
    scale) and ``act_bias (D,)`` (per-feature translation).

    Quantizers (``gsbnp.quant.quantizers``; ``set_quant`` builds them, the model's ``set_precision``
    drives it):
        kernel_quantizer: None or a ``WeightQuantizer``: W -> W_b (Eqs. 1, 2, 4), dW = dW_b (Eq. 6).
        input_quantizer: None (full precision input) or an ``ActivationQuantizer``, "learnable" (GSB:
            docs/conventions.md#activations-of-linear-layers) or "baseline" (Eqs. 1-2, no parameters),
            with the rule of the layer's position: ``act_type`` "B" (sign; inputs of qkv, proj, fc1) or
            "A" (round; input of fc2), and ``act_rule="sign"`` forcing sign on a type-A position (Table V).
    A learnable scale is initialised from the first batch the layer sees (``init_scales``, or the first
    forward: 2 mean|x| for sign, 4 mean|x| for round) and flagged in the buffer ``act_initialized`` so
    it never happens again, also not after a checkpoint load.
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
        self.act_rule = "paper"
        self.scale_grad = "mean"
        self.input_quantizer: Q.ActivationQuantizer | None = None
        self.kernel_quantizer: Q.WeightQuantizer | None = None
        self._cache = None

    def set_quant(self, *, weights: bool, act_mode: str | None, act_rule: str = "paper",
                  scale_grad: str = "mean") -> None:
        """Give the layer its quantizers. Creates the learnable activation parameters on first use."""
        check_choice(act_mode, ACT_MODES, "act_mode")
        self.act_rule = check_choice(act_rule, ACT_RULES, "act_rule")
        self.scale_grad = check_choice(scale_grad, SCALE_GRAD_CHOICES, "scale_grad")
        self.kernel_quantizer = Q.WeightQuantizer() if weights else None
        rule = "sign" if self.act_type == "B" or self.act_rule == "sign" else "round"
        self.input_quantizer = None if act_mode is None else Q.ActivationQuantizer(act_mode, rule,
                                                                                     scale_grad=self.scale_grad)
        if act_mode == "learnable" and "act_alpha" not in self._params:
            self.add_param("act_alpha", np.ones((), dtype=self.dtype))
            self.add_param("act_bias", np.zeros(self.in_features, dtype=self.dtype))
            self._buffers["act_initialized"] = np.zeros((), dtype=np.uint8)

    @property
    def binarize_weights(self) -> bool:
        return self.kernel_quantizer is not None

    @property
    def act_mode(self) -> str | None:
        return None if self.input_quantizer is None else self.input_quantizer.mode

    @property
    def _sign_input(self) -> bool:
        return self.act_type == "B" or self.act_rule == "sign"

    def _scales_pending(self) -> bool:
        q = self.input_quantizer
        return q is not None and q.learnable and not self._buffers["act_initialized"]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., D) -> (..., F)."""
        _threads_tick(x.size * self.out_features)  # the GEMM's multiply-adds: BLAS threads follow the work
        p, q, kq = self._params, self.input_quantizer, self.kernel_quantizer
        acache = wcache = None
        s_x = s_w = None  # x_b = s_x * codes, W_b = s_w * sign
        if q is not None:
            if self._scales_pending():  # the first batch sets the scale (docs/conventions.md#initial-scales)
                p["act_alpha"][...] = q.init_scale(x)
                self._buffers["act_initialized"][...] = 1
            x, s_x, codes, acache = q.forward(x, p.get("act_alpha"), p.get("act_bias"))
        W = p["W"]
        if kq is not None:
            W, s_w, wcache = kq.forward(W)
        if s_x is not None and s_w is not None:
            out, lcache = self._binary_product(x, s_x, codes, W, s_w, p.get("b"))
        else:
            out, lcache = F.linear_forward(x, W, p.get("b"))
        self._cache = (lcache, acache, wcache)
        return out

    @staticmethod
    def _binary_product(x_b, s_x, codes, W_b, s_w, b):
        """``x_b @ W_b.T + b`` computed as Eq. 1 writes it: ``s_x s_w (B(x) . B(W)^T) + b``.

        ``codes = x_b / s_x`` and ``W_b / s_w`` are exactly +-1 (or {0, 1}), so the float product of the
        binary codes is an exact integer and the result is ``fl(fl(s_x s_w) * dot) + b`` - the very number
        the packed xnor/popcount engine computes. (Multiplying the scaled codes directly would let
        BLAS's rounding decide the sign of outputs whose exact value is 0.) Mathematically it is
        ``x_b @ W_b.T + b``, so ``linear_backward`` applies unchanged; the cache is the same.
        """
        dt = x_b.dtype.type
        codes = codes.reshape(-1, x_b.shape[-1])  # exactly +-1 or {0, 1}           (M, D)
        dot = codes @ (W_b / dt(s_w)).T  # exact integers                          (M, F)
        scale = s_x * dt(s_w)  # scalar, or (B, 1, ..., 1) per sample
        out = dot.reshape(*x_b.shape[:-1], W_b.shape[0])
        out *= scale
        if b is not None:
            out += b
        return out, (x_b, W_b, b is not None)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (..., F) -> dx (..., D); fills grads of W, b (and act_alpha, act_bias)."""
        lcache, acache, wcache = self._cache
        q, kq = self.input_quantizer, self.kernel_quantizer
        _threads_tick(dout.size * self.in_features)  # each of the two backward GEMMs: as in forward
        dx, dW, db = F.linear_backward(dout, lcache)
        self._grads["W"] = kq.backward(dW, wcache) if kq is not None else dW
        if db is not None:
            self._grads["b"] = db
        if q is not None:
            dx, dalpha, dbias = q.backward(dx, acache)
            if q.learnable:
                # max(alpha, floor) passes the gradient straight through (docs/conventions.md#positivity-of-scales).
                self._grads["act_alpha"] = np.asarray(dalpha, dtype=self.dtype).reshape(())
                self._grads["act_bias"] = dbias.astype(self.dtype, copy=False)
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
    """Exact GELU, no parameters (float32 by the table path of ``functional.fast``, pinned to the formula)."""

    def forward(self, x):
        # eval mode (evaluation, a teacher) rarely needs a backward: the derivative (half of the float32
        # kernel's table work) is then computed only if backward is called
        y, self._cache = F.gelu_forward_fast(x, with_grad=self.training)
        self._x = None if self.training else x
        return y

    def backward(self, dout):
        if self._cache is None:  # forward ran in eval mode
            self._cache = F.gelu_forward_fast(self._x)[1]
        return F.gelu_backward(dout, self._cache)


class Dropout(Module):
    """Inverted dropout drawing its mask from the shared ``rng`` (identity in eval mode)."""

    _pair = (F.dropout_forward, F.dropout_backward)  # the functional forward/backward it wraps

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__()
        self.p, self.rng = float(p), rng

    def forward(self, x):
        y, self._cache = self._pair[0](x, self.p, self.rng, self.training)
        return y

    def backward(self, dout):
        return self._pair[1](dout, self._cache)


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

    Stays full precision in every stage (docs/conventions.md#weights: patch embedding and heads are not binarized).
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
