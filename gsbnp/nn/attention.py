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
rule (the Table IV ablation rows).
"""

from __future__ import annotations

import numpy as np

from .. import bitops
from .. import functional as F
from .. import quant as Q
from .._validate import check_choice, check_int
from ..quant.ste import frozen, surrogate_active
from .layers import MLP, SCALE_FLOOR, Dropout, LayerNorm, Linear
from .module import Module

PHI_MODES = ("zero", "mean", "HN", "HNN")


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
        self.av_bitwise = False  # packed inference: Eq. 35 by popcounts (GSB-att and GSB-V on)

    # ------------------------------------------------------------------------------------------
    def set_quant(self, mode: str | None, *, gsb_att: bool = True, gsb_v: bool = True, k_a: int = 2,
                  k_v: int = 2, phi: str = "HNN", abin: str = "round", scale_grad: str = "mean",
                  threshold_scope: str = "row", v_grad: str = "masked", baseline_attn: str = "eq8",
                  init: str = "paper") -> None:
        """Choose the attention-product binarization (the linear layers are set separately).

        mode None keeps full precision; "baseline" is Section III; "gsb" is Section IV with the
        ablation switches. Parameters of GSB are created on first use (zeros for biases, Phi, Omega;
        scales are set from the first batch).
        """
        check_choice(mode, (None, "baseline", "gsb"), "mode")
        opts = dict(gsb_att=bool(gsb_att), gsb_v=bool(gsb_v), k_a=check_int(k_a, "k_a", lo=0, hi=4),
                    k_v=check_int(k_v, "k_v", lo=0, hi=4), phi=check_choice(phi, PHI_MODES, "phi"),
                    abin=check_choice(abin, ("round", "mask"), "abin"),
                    scale_grad=check_choice(scale_grad, ("mean", "sqrt", "sum"), "scale_grad"),
                    threshold_scope=check_choice(threshold_scope, ("row", "batch"), "threshold_scope"),
                    v_grad=check_choice(v_grad, ("masked", "unmasked"), "v_grad"),
                    baseline_attn=check_choice(baseline_attn, ("eq2", "eq8"), "baseline_attn"),
                    init=check_choice(init, ("paper", "official"), "init"))
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

    def _scale(self, name: str) -> float:
        return max(float(self._params[name]), SCALE_FLOOR)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (B, N, D) -> (B, N, D)."""
        qkv = self.qkv(x)  # (B, N, 3D)
        if self.mode is not None and self.record:
            self.recorded = None
        if self.mode is None:
            D = self.dim
            out, self._acache = F.attention_forward(qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:], self.H)
            self.last_attention = self._acache["A"]
            if self.record:
                q, k, v = self._split_qkv(qkv)
                A = self._acache["A"]
                self.recorded = dict(x=x, q=q, k=k, v=v, Q_b=q, K_b=k, A_re=A, A=A, V=v, Y=A @ v)
        else:
            out = self._binary_forward(*self._split_qkv(qkv))
            if self.record:
                self.recorded["x"] = x
        return self.proj_drop(self.proj(out))

    def _binary_forward(self, qh, kh, vh):
        """Binarized attention product on (B, H, N, Dh) heads; returns merged (B, N, D)."""
        o, p, c = self.opts, self._params, {}
        gsb = self.mode == "gsb"
        scale = qh.dtype.type(1.0 / np.sqrt(self.Dh))
        if gsb and not self._buffers["gsb_initialized"] and not surrogate_active():
            p["q_alpha"][...] = max(Q.act_sign_init(qh), SCALE_FLOOR)
            p["k_alpha"][...] = max(Q.act_sign_init(kh), SCALE_FLOOR)
        if gsb:
            Qb, c["q"] = Q.act_sign_forward(qh, self._scale("q_alpha"), p["q_bias"], scale_grad=o["scale_grad"])
            Kb, c["k"] = Q.act_sign_forward(kh, self._scale("k_alpha"), p["k_bias"], scale_grad=o["scale_grad"])
        else:  # Eq. 7: plain sign, STE window |x| <= 1
            zero = np.zeros((self.H, 1, self.Dh), dtype=qh.dtype)
            Qb, c["q"] = Q.act_sign_forward(qh, 1.0, zero)
            Kb, c["k"] = Q.act_sign_forward(kh, 1.0, zero)
        A_re, _ = F.softmax_forward((Qb @ Kb.swapaxes(-1, -2)) * scale)  # (B, H, N, N)
        use_gsb_att = gsb and o["gsb_att"]
        use_gsb_v = gsb and o["gsb_v"]
        if use_gsb_att:
            if o["phi"] in ("HN", "HNN"):
                A_ret = A_re - p["Phi"]
            elif o["phi"] == "mean":  # not learnable: a constant of the backward (= 1/N per row)
                A_ret = A_re - frozen(A_re.mean(axis=(-2, -1), keepdims=True))
            else:
                A_ret = A_re
        if use_gsb_v:
            V0 = vh - p["Omega"]  # (B, H, N, Dh)
        if gsb and not self._buffers["gsb_initialized"] and not surrogate_active():
            if use_gsb_att:
                p["alphas"][...] = Q.gsb_attention_init(A_ret, o["k_a"], threshold_scope=o["threshold_scope"],
                                                        abin=o["abin"])
            if use_gsb_v:
                p["betas"][...] = Q.gsb_value_init(V0, o["k_v"], init=o["init"],
                                                   threshold_scope="sample" if o["threshold_scope"] == "row" else "batch")
            self._buffers["gsb_initialized"][...] = 1
        if use_gsb_att:
            alphas = np.maximum(p["alphas"].astype(np.float64), SCALE_FLOOR)
            A, c["att"] = Q.gsb_attention_forward(A_ret, alphas, o["k_a"], scale_grad=o["scale_grad"],
                                                  threshold_scope=o["threshold_scope"], abin=o["abin"])
        else:
            A, c["att"] = Q.baseline_attention_forward(A_re, mode=o["baseline_attn"])
        if use_gsb_v:
            betas = np.maximum(p["betas"].astype(np.float64), SCALE_FLOOR)
            Vb, c["v"] = Q.gsb_value_forward(V0, betas, o["k_v"], scale_grad=o["scale_grad"], v_grad=o["v_grad"],
                                             threshold_scope="sample" if o["threshold_scope"] == "row" else "batch")
        else:
            Vb, c["v"] = Q.baseline_act_sign_forward(vh)
        A = A.astype(qh.dtype, copy=False)
        Vb = Vb.astype(qh.dtype, copy=False)
        if self.av_bitwise and use_gsb_att and use_gsb_v and o["abin"] == "round":
            # Eq. 35 decomposed: sum_ij alpha_i beta_j (A_i ⊠ V_j) with A_0 = A_bin, A_i = M_i and
            # V_j = sign(V0) M_j, every product a {0,1} x {-1,0,1} popcount (Fig. 10)
            A_stack = np.concatenate([c["att"]["A_bin"][None], c["att"]["M"]])  # (k_a+1, B, H, N, N)
            V_stack = c["v"]["M"] * c["v"]["sign"].astype(np.int8)  # (k_v+1, B, H, N, Dh)
            Y = bitops.gsb_av_bitwise(A_stack, V_stack, alphas, betas).astype(qh.dtype)
        else:
            Y = A @ Vb  # Eq. 35 as the superposed float product   (B, H, N, Dh)
        self.last_attention = A
        if self.record:
            self.recorded = dict(q=qh, k=kh, v=vh, Q_b=Qb, K_b=Kb, A_re=A_re, A=A, V=Vb, Y=Y)
            if use_gsb_att:
                self.recorded["A_ret"] = A_ret
            if use_gsb_v:
                self.recorded["V0"] = V0
        self._bcache = (c, Qb, Kb, A_re, A, Vb, scale, use_gsb_att, use_gsb_v)
        return F.merge_heads(Y)

    # ------------------------------------------------------------------------------------------
    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (B, N, D) -> dx (B, N, D); fills grads of every parameter."""
        dout = self.proj.backward(self.proj_drop.backward(dout))  # (B, N, D)
        if self.mode is None:
            dq, dk, dv = F.attention_backward(dout, self._acache)
            dqkv = np.concatenate([dq, dk, dv], axis=-1)
        else:
            dqkv = self._binary_backward(dout)
        return self.qkv.backward(dqkv)

    def _binary_backward(self, dout):
        c, Qb, Kb, A_re, A, Vb, scale, use_gsb_att, use_gsb_v = self._bcache
        g, dt = self._grads, self.dtype
        gsb = self.mode == "gsb"
        dY = F.split_heads(dout, self.H)  # out = merge(Y)           (B, H, N, Dh)
        dA = dY @ Vb.swapaxes(-1, -2)  # Y = A @ Vb                  (B, H, N, N)
        dVb = A.swapaxes(-1, -2) @ dY  # (B, H, N, Dh)
        if use_gsb_v:
            dV0, dbetas = Q.gsb_value_backward(dVb, c["v"])  # Vb = GSB(V0)
            dvh = dV0
            g["betas"] = np.asarray(dbetas, dtype=dt)
            g["Omega"] = (-dV0.sum(axis=(0, 2), keepdims=True)[0]).astype(dt)  # V0 = V - Omega
        else:
            dvh = Q.baseline_act_sign_backward(dVb, c["v"])
        if use_gsb_att:
            dA_re, dalphas = Q.gsb_attention_backward(dA, c["att"])  # A = GSB(A_ret), A_ret = A_re - Phi
            g["alphas"] = np.asarray(dalphas, dtype=dt)
            if self.opts["phi"] == "HNN":
                g["Phi"] = (-dA_re.sum(axis=0)).astype(dt)
            elif self.opts["phi"] == "HN":
                g["Phi"] = (-dA_re.sum(axis=(0, 2))[:, None, :]).astype(dt)
        else:
            dA_re = Q.baseline_attention_backward(dA, c["att"])
        dA_re = dA_re.astype(dt, copy=False)
        dS = F.softmax_backward(dA_re, A_re) * scale  # A_re = softmax(S), S = Qb Kb^T * scale
        dQb = dS @ Kb  # (B, H, N, Dh)
        dKb = dS.swapaxes(-1, -2) @ Qb
        dqh, dqa, dqb = Q.act_sign_backward(dQb, c["q"])
        dkh, dka, dkb = Q.act_sign_backward(dKb, c["k"])
        if gsb:
            g["q_alpha"] = np.asarray(dqa, dtype=dt).reshape(())
            g["k_alpha"] = np.asarray(dka, dtype=dt).reshape(())
            g["q_bias"] = np.asarray(dqb, dtype=dt)
            g["k_bias"] = np.asarray(dkb, dtype=dt)
        return self._merge_qkv(dqh, dkh, dvh)


class DropPath(Module):
    """Stochastic depth on a residual branch (per-sample mask from the shared ``rng``)."""

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__()
        self.p, self.rng = float(p), rng

    def forward(self, x):
        y, self._cache = F.drop_path_forward(x, self.p, self.rng, self.training)
        return y

    def backward(self, dout):
        return F.drop_path_backward(dout, self._cache)


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
