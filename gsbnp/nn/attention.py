"""Multi-head self-attention (full precision, baseline-binarized or GSB) and the transformer Block.

Legend: B batch, N tokens, D embed, H heads, Dh = D/H head dim, k_a / k_v the GSB group sizes.

Full precision (DeiT):
    q, k, v = split(qkv(x));  A = softmax(q k^T / sqrt(Dh));  out = proj(merge(A v))

Baseline binarization (Section III, Eqs. 1-8):
    A_re = softmax(sign(Q) sign(K)^T / sqrt(Dh))                          Eq. 7
    A    = gamma * clip(round(A_re / gamma), 0, 1), gamma by Eq. 8 with the switch to Eq. 2
    V_b  = beta * sign(V - mean V)  (Eqs. 1-2, per sample)
    out  = proj(merge(A V_b))

GSB (Section IV, Eqs. 9-35):
    Q_b = alpha_q sign((Q + b_q)/alpha_q), K_b likewise                   learnable scale and bias
    A_re = softmax(Q_b K_b^T / sqrt(Dh));  A_ret = A_re - Phi             Eq. 9
    A_gsb = alpha_0 A_bin + sum_i alpha_i M_i                             Eqs. 10-13
    V0 = V - Omega;  V_gsb = sum_i beta_i sign(V0) M_i                    Eqs. 26-27
    out = proj(merge(A_gsb V_gsb))                                        Eq. 35
With ``gsb_att`` off the attention map uses the baseline rule; with ``gsb_v`` off V uses the baseline
rule (the Table IV ablation rows). The binarized product of the heads is one forward/backward pair,
``gsbnp.quant.product.attention_product_forward/backward``; this layer projects, splits and merges the
heads, holds the parameters and stores the initial scales the product computes.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import quant as Q
from .._validate import check_choice, check_int
from ..quant.options import (ABIN_CHOICES, ATTN_MODES, ATTN_THRESHOLD_SCOPES, BASELINE_MODES, INIT_CHOICES, K_MAX,
                             K_MIN, PHI_MODES, SCALE_GRAD_CHOICES, V_GRAD_CHOICES)
from .layers import MLP, Dropout, LayerNorm, Linear
from .module import Module


class MHSA(Module):
    """Multi-head self-attention ``(B, N, D) -> (B, N, D)``; binarization set by ``set_quant``.

    Parameters: ``qkv.W (3D, D)``, ``qkv.b``, ``proj.W (D, D)``, ``proj.b``; in GSB mode also
    ``q_alpha ()``, ``k_alpha ()``, ``q_bias (H, 1, Dh)``, ``k_bias (H, 1, Dh)``, ``alphas (k_a+1,)``,
    ``Phi`` (``(H, N, N)`` for "HNN", ``(H, 1, N)`` for "HN": one learnable offset per head and key
    token, shared by all query rows), ``Omega (H, 1, Dh)``, ``betas (k_v+1,)``.
    """

    no_decay_params = ("q_alpha", "k_alpha", "q_bias", "k_bias", "alphas", "betas", "Phi", "Omega")

    def __init__(self, dim: int, num_heads: int, num_tokens: int, *, rng: np.random.Generator,
                 dtype=np.float32, proj_drop: float = 0.0):
        super().__init__()
        self.dim, self.H, self.N = dim, num_heads, num_tokens
        self.Dh = dim // num_heads
        self.dtype = np.dtype(dtype)
        self.qkv = self.add_module("qkv", Linear(dim, 3 * dim, rng=rng, dtype=dtype, act_type="B"))
        self.proj = self.add_module("proj", Linear(dim, dim, rng=rng, dtype=dtype, act_type="B"))
        self.proj_drop = self.add_module("proj_drop", Dropout(proj_drop, rng))
        self.mode = None  # None | "baseline" | "gsb"
        self.opts: dict = {}
        self.last_attention = None  # (B, H, N, N): the map of the last forward, for inspection
        self.record = False  # when True, forward keeps its intermediate arrays in ``recorded``
        self.recorded: dict | None = None
        # Eq. 35 from the component stacks, ``av_product(A_stack, V_stack, alphas, betas) -> Y``, or None
        # for the float product A_gsb @ V_gsb; packed inference (gsbnp.models.packed) plugs in popcounts
        self.av_product = None

    # ------------------------------------------------------------------------------------------
    def set_quant(self, mode: str | None, *, gsb_att: bool = True, gsb_v: bool = True, k_a: int = 2,
                  k_v: int = 2, phi: str = "HNN", abin: str = "round", scale_grad: str = "mean",
                  threshold_scope: str = "row", v_grad: str = "masked", baseline_attn: str = "eq8",
                  init: str = "paper") -> None:
        """Choose the attention-product binarization (the linear layers are set separately).

        mode None keeps full precision; "baseline" is Section III; "gsb" is Section IV with the
        ablation switches. Parameters of GSB are created on first use (zeros for biases, Phi, Omega;
        scales are set by ``init_scales`` or else from the first batch the layer sees).
        """
        check_choice(mode, ATTN_MODES, "mode")
        opts = dict(gsb_att=bool(gsb_att), gsb_v=bool(gsb_v), k_a=check_int(k_a, "k_a", lo=K_MIN, hi=K_MAX),
                    k_v=check_int(k_v, "k_v", lo=K_MIN, hi=K_MAX), phi=check_choice(phi, PHI_MODES, "phi"),
                    abin=check_choice(abin, ABIN_CHOICES, "abin"),
                    scale_grad=check_choice(scale_grad, SCALE_GRAD_CHOICES, "scale_grad"),
                    threshold_scope=check_choice(threshold_scope, ATTN_THRESHOLD_SCOPES, "threshold_scope"),
                    v_grad=check_choice(v_grad, V_GRAD_CHOICES, "v_grad"),
                    baseline_attn=check_choice(baseline_attn, BASELINE_MODES, "baseline_attn"),
                    init=check_choice(init, INIT_CHOICES, "init"))
        self.mode, self.opts = mode, opts
        if mode != "gsb":
            return
        H, Dh, N, dt = self.H, self.Dh, self.N, self.dtype
        want = {"q_alpha": (), "k_alpha": (), "q_bias": (H, 1, Dh), "k_bias": (H, 1, Dh),
                "Omega": (H, 1, Dh), "alphas": (opts["k_a"] + 1,), "betas": (opts["k_v"] + 1,)}
        if opts["phi"] == "HNN":
            want["Phi"] = (H, N, N)
        elif opts["phi"] == "HN":
            want["Phi"] = (H, 1, N)
        for name in ("q_alpha", "k_alpha", "q_bias", "k_bias", "Omega", "alphas", "betas", "Phi"):
            if name not in want:
                self.remove_param(name)
            elif name not in self._params or self._params[name].shape != want[name]:
                fill = 1.0 if "alpha" in name or name == "betas" else 0.0
                self.add_param(name, np.full(want[name], fill, dtype=dt))
        self._buffers.setdefault("gsb_initialized", np.zeros((), dtype=np.uint8))

    # ------------------------------------------------------------------------------------------
    def _split_qkv(self, qkv: np.ndarray):
        B, N, _ = qkv.shape
        t = qkv.reshape(B, N, 3, self.H, self.Dh).transpose(2, 0, 3, 1, 4)  # (3, B, H, N, Dh)
        return t[0], t[1], t[2]

    @staticmethod
    def _merge_qkv(dq, dk, dv):
        B, H, N, Dh = dq.shape
        out = np.empty((B, N, 3, H, Dh), dtype=np.result_type(dq, dk, dv))  # one copy, no stacked temporary
        for i, d in enumerate((dq, dk, dv)):
            out[:, :, i] = d.transpose(0, 2, 1, 3)  # (B, N, H, Dh)
        return out.reshape(B, N, 3 * H * Dh)

    def _scales_pending(self) -> bool:
        return self.mode == "gsb" and not self._buffers["gsb_initialized"]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (B, N, D) -> (B, N, D). A GSB layer whose scales are not set yet takes them from this
        batch (docs/conventions.md#initial-scales)."""
        qkv = self.qkv(x)  # (B, N, 3D)
        if self.mode is None:
            D = self.dim
            out, self._acache = F.attention_forward(qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:], self.H)
            self.last_attention = self._acache["A"]
            if self.record:
                q, k, v = self._split_qkv(qkv)
                A = self._acache["A"]
                self.recorded = dict(x=x, q=q, k=k, v=v, Q_b=q, K_b=k, A_re=A, A=A, V=v, Y=A @ v)
        else:
            qh, kh, vh = self._split_qkv(qkv)
            initialize = self._scales_pending()
            Y, maps, new, self._pcache = Q.attention_product_forward(
                qh, kh, vh, self._params, mode=self.mode, initialize=initialize, av_product=self.av_product,
                **self.opts)
            for name, value in new.items():  # the initial scales this batch gave
                self._params[name][...] = value
            if initialize:
                self._buffers["gsb_initialized"][...] = 1
            self.last_attention = maps["A"]
            if self.record:
                self.recorded = dict(x=x, q=qh, k=kh, v=vh, **maps, Y=Y)
            out = F.merge_heads(Y)
        return self.proj_drop(self.proj(out))

    # ------------------------------------------------------------------------------------------
    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (B, N, D) -> dx (B, N, D); fills grads of every parameter."""
        dout = self.proj.backward(self.proj_drop.backward(dout))  # (B, N, D)
        if self.mode is None:
            dq, dk, dv = F.attention_backward(dout, self._acache)
            dqkv = np.concatenate([dq, dk, dv], axis=-1)
        else:  # out = merge(Y), Y = the binarized product of the heads
            dqh, dkh, dvh, dparams = Q.attention_product_backward(F.split_heads(dout, self.H), self._pcache)
            self._grads.update(dparams)
            dqkv = self._merge_qkv(dqh, dkh, dvh)
        return self.qkv.backward(dqkv)


class DropPath(Dropout):
    """Stochastic depth on a residual branch: a per-sample mask from the shared ``rng`` (identity in eval
    mode). The same module as ``Dropout`` with the drop-path pair of ``gsbnp.functional``."""

    _pair = (F.drop_path_forward, F.drop_path_backward)


class Block(Module):
    """Pre-norm transformer block: ``x + dp(attn(norm1(x)))`` then ``x + dp(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, num_tokens: int, *, mlp_ratio: float = 4.0,
                 drop: float = 0.0, drop_path: float = 0.0, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        self.norm1 = self.add_module("norm1", LayerNorm(dim, dtype=dtype))
        self.attn = self.add_module("attn", MHSA(dim, num_heads, num_tokens, rng=rng, dtype=dtype,
                                                 proj_drop=drop))
        self.drop_path1 = self.add_module("drop_path1", DropPath(drop_path, rng))
        self.norm2 = self.add_module("norm2", LayerNorm(dim, dtype=dtype))
        self.mlp = self.add_module("mlp", MLP(dim, int(dim * mlp_ratio), rng=rng, dtype=dtype, drop=drop))
        self.drop_path2 = self.add_module("drop_path2", DropPath(drop_path, rng))

    def forward(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))

    def backward(self, dout):
        # x2 = x1 + dp2(mlp(norm2(x1)))
        dx1 = dout + self.norm2.backward(self.mlp.backward(self.drop_path2.backward(dout)))
        # x1 = x + dp1(attn(norm1(x)))
        return dx1 + self.norm1.backward(self.attn.backward(self.drop_path1.backward(dx1)))
