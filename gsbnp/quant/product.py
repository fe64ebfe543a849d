"""The binarized attention product, from the heads q, k, v to ``Y = A V``, as one forward/backward pair
(baseline Eqs. 7-8 and GSB Eqs. 9-35). ``nn.MHSA`` projects, splits the heads and calls it.

Legend: B batch, H heads, N tokens, Dh head dim, k_a / k_v GSB components (docs/legend.md).

Baseline (Section III, ``mode="baseline"``)::

    A_re = softmax(sign(q) sign(k)^T / sqrt(Dh))                            Eq. 7
    A    = gamma * clip(round(A_re / gamma), 0, 1)                          Eq. 8 (switch to Eq. 2)
    V    = beta * sign(v - mean v)                                          Eqs. 1-2, per sample
    Y    = A V

GSB (Section IV, ``mode="gsb"``)::

    Q_b  = alpha_q sign((q + b_q) / alpha_q),  K_b likewise                 type-B, learnable
    A_re = softmax(Q_b K_b^T / sqrt(Dh));  A_ret = A_re - Phi               Eq. 9
    A    = alpha_0 A_bin + sum_i alpha_i M_i                                Eqs. 10-13
    V0   = v - Omega;  V = sum_j beta_j sign(V0) M_j                        Eqs. 26-27
    Y    = A V = sum_ij alpha_i beta_j (A_i V_j)                            Eq. 35

``gsb_att=False`` / ``gsb_v=False`` give the attention map / V the baseline rule (Table IV). The STEs
are those of the quantizers used (``act_sign``, ``gsb_attention``, ``gsb_value``, ``baseline_*``), so the
backward is their chain through ``Y = A V`` and the softmax; ``tests/test_quant_product.py`` checks it
against the frozen-residual surrogate (docs/conventions.md#checking-an-ste).

The parameters are passed as a dict of arrays with the names of the attention layer: ``q_alpha``,
``k_alpha`` (0-d), ``q_bias``, ``k_bias``, ``Omega`` (H, 1, Dh), ``Phi`` ((H, N, N) for "HNN", (H, 1, N)
for "HN", absent otherwise), ``alphas`` (k_a + 1,), ``betas`` (k_v + 1,). Every scale enters as
``max(s, SCALE_FLOOR)`` (docs/conventions.md#positivity-of-scales).

**Initialisation** (``initialize=True``, docs/conventions.md#initial-scales): the scales are computed
from this call's data where the forward first needs them (alpha_q and alpha_k from q and k, the alphas
from A_ret, the betas from V0), used by this call, and returned in ``new_scales`` in the dtype of the
parameters, for the layer to store.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._ste import frozen
from .._validate import check_choice
from .activations import act_sign_backward, act_sign_forward, baseline_act_sign_backward, baseline_act_sign_forward
from .attention import (baseline_attention_backward, baseline_attention_forward, gsb_attention_backward,
                        gsb_attention_forward)
from .init import act_sign_init, gsb_attention_init, gsb_value_init
from .options import ATTN_MODES, SCALE_FLOOR, value_threshold_scope
from .value import gsb_value_backward, gsb_value_forward

__all__ = ["attention_product_forward", "attention_product_backward"]


def _stored(value, like: np.ndarray) -> np.ndarray:
    """``value`` as the layer will store it: ``like``'s dtype and shape."""
    return np.asarray(value, dtype=like.dtype).reshape(like.shape)


def attention_product_forward(qh, kh, vh, params: dict, *, mode: str, gsb_att: bool = True, gsb_v: bool = True,
                              k_a: int = 2, k_v: int = 2, phi: str = "HNN", abin: str = "round",
                              scale_grad: str = "mean", threshold_scope: str = "row", v_grad: str = "masked",
                              baseline_attn: str = "eq8", init: str = "paper", initialize: bool = False,
                              av_product=None):
    """Binarized attention product ``Y = A V`` of the heads (module docstring).

    Args:
        qh, kh, vh: (B, H, N, Dh) heads of the projected queries, keys and values.
        params: the layer's parameter arrays (module docstring); unused in baseline mode.
        mode: "baseline" | "gsb"; the other options as ``DeiTConfig`` (docs/conventions.md#defaults);
            ``init`` is the rule of the initial value scales ("paper" | "official").
        initialize: compute the initial scales from this batch first (GSB only).
        av_product: optional ``av_product(A_stack, V_stack, alphas, betas) -> Y`` computing Eq. 35 from
            the component stacks ``[A_bin, M_1..M_k_a]`` (k_a+1, B, H, N, N) and ``[sign(V0) M_j]``
            (k_v+1, B, H, N, Dh), e.g. ``gsbnp.bitops.gsb_av_bitwise`` on packed bits; used when both GSB
            parts are on with ``abin="round"``. None: the float product A @ V.
    Returns:
        Y: (B, H, N, Dh).
        maps: the arrays the product used, for inspection: ``Q_b``, ``K_b``, ``A_re`` (B, H, N, N), ``A``
            (the map that multiplies V), ``V`` (B, H, N, Dh), and ``A_ret`` / ``V0`` when GSB uses them.
        new_scales: ``{name: array}`` of the initial scales (empty unless ``initialize``).
        cache: for :func:`attention_product_backward`.
    """
    check_choice(mode, [m for m in ATTN_MODES if m is not None], "mode")
    p, c, new = params, {}, {}
    gsb = mode == "gsb"
    initialize = bool(initialize) and gsb
    use_gsb_att, use_gsb_v = gsb and gsb_att, gsb and gsb_v
    v_scope = value_threshold_scope(threshold_scope)
    scale = qh.dtype.type(1.0 / np.sqrt(qh.shape[-1]))

    def scalar(name):  # a learnable scale as the forward uses it
        return max(float(new.get(name, p[name])), SCALE_FLOOR)

    def vector(name):
        return np.maximum(new.get(name, p[name]).astype(np.float64), SCALE_FLOOR)

    if initialize:
        new["q_alpha"] = _stored(max(act_sign_init(qh), SCALE_FLOOR), p["q_alpha"])
        new["k_alpha"] = _stored(max(act_sign_init(kh), SCALE_FLOOR), p["k_alpha"])
    if gsb:
        Qb, c["q"] = act_sign_forward(qh, scalar("q_alpha"), p["q_bias"], scale_grad=scale_grad)
        Kb, c["k"] = act_sign_forward(kh, scalar("k_alpha"), p["k_bias"], scale_grad=scale_grad)
    else:  # Eq. 7: plain sign, STE window |x| <= 1
        zero = np.zeros((qh.shape[1], 1, qh.shape[-1]), dtype=qh.dtype)
        Qb, c["q"] = act_sign_forward(qh, 1.0, zero)
        Kb, c["k"] = act_sign_forward(kh, 1.0, zero)
    A_re, _ = F.softmax_forward((Qb @ Kb.swapaxes(-1, -2)) * scale)  # (B, H, N, N)
    maps = {"Q_b": Qb, "K_b": Kb, "A_re": A_re}
    if use_gsb_att:
        if phi in ("HN", "HNN"):
            A_ret = A_re - p["Phi"]
        elif phi == "mean":  # not learnable: a constant of the backward (= 1/N per row)
            A_ret = A_re - frozen(A_re.mean(axis=(-2, -1), keepdims=True))
        else:
            A_ret = A_re
        maps["A_ret"] = A_ret
        if initialize:
            new["alphas"] = _stored(gsb_attention_init(A_ret, k_a, threshold_scope=threshold_scope, abin=abin),
                                    p["alphas"])
        alphas = vector("alphas")
        A, c["att"] = gsb_attention_forward(A_ret, alphas, k_a, scale_grad=scale_grad,
                                            threshold_scope=threshold_scope, abin=abin)
    else:
        A, c["att"] = baseline_attention_forward(A_re, mode=baseline_attn)
    if use_gsb_v:
        V0 = vh - p["Omega"]  # (B, H, N, Dh)
        maps["V0"] = V0
        if initialize:
            new["betas"] = _stored(gsb_value_init(V0, k_v, init=init, threshold_scope=v_scope), p["betas"])
        betas = vector("betas")
        Vb, c["v"] = gsb_value_forward(V0, betas, k_v, scale_grad=scale_grad, v_grad=v_grad,
                                       threshold_scope=v_scope)
    else:
        Vb, c["v"] = baseline_act_sign_forward(vh)
    A = A.astype(qh.dtype, copy=False)
    Vb = Vb.astype(qh.dtype, copy=False)
    if av_product is not None and use_gsb_att and use_gsb_v and abin == "round":
        # Eq. 35 decomposed: sum_ij alpha_i beta_j (A_i ⊠ V_j) with A_0 = A_bin, A_i = M_i and
        # V_j = sign(V0) M_j, every product a {0,1} x {-1,0,1} popcount (Fig. 10)
        A_stack = np.concatenate([c["att"]["A_bin"][None], c["att"]["M"]])  # (k_a+1, B, H, N, N)
        V_stack = c["v"]["M"] * c["v"]["sign"].astype(np.int8)  # (k_v+1, B, H, N, Dh)
        Y = av_product(A_stack, V_stack, alphas, betas).astype(qh.dtype)
    else:
        Y = A @ Vb  # Eq. 35 as the superposed float product   (B, H, N, Dh)
    maps["A"], maps["V"] = A, Vb
    cache = {"c": c, "Qb": Qb, "Kb": Kb, "A_re": A_re, "A": A, "Vb": Vb, "scale": scale, "gsb": gsb,
             "gsb_att": use_gsb_att, "gsb_v": use_gsb_v, "phi": phi,
             "dtype": np.dtype(p["q_alpha"].dtype) if gsb else qh.dtype}
    return Y, maps, new, cache


def attention_product_backward(dY, cache):
    """Backward of :func:`attention_product_forward`: returns ``(dqh, dkh, dvh, dparams)``.

    ``dqh``, ``dkh``, ``dvh`` are (B, H, N, Dh); ``dparams`` holds the gradient of every learnable
    parameter the forward used (none in baseline mode), in the heads' dtype: ``q_alpha``, ``k_alpha``
    (0-d), ``q_bias``, ``k_bias``, and as the options say ``alphas``, ``Phi``, ``betas``, ``Omega``. Bias,
    Phi and Omega gradients are true sums over the batch (docs/conventions.md#exact-edges).
    """
    c, Qb, Kb, A_re, A, Vb = cache["c"], cache["Qb"], cache["Kb"], cache["A_re"], cache["A"], cache["Vb"]
    dt, g = cache["dtype"], {}  # the parameters' dtype
    dA = dY @ Vb.swapaxes(-1, -2)  # Y = A @ Vb                  (B, H, N, N)
    dVb = A.swapaxes(-1, -2) @ dY  # (B, H, N, Dh)
    if cache["gsb_v"]:
        dV0, dbetas = gsb_value_backward(dVb, c["v"])  # Vb = GSB(V0)
        dvh = dV0
        g["betas"] = np.asarray(dbetas, dtype=dt)
        g["Omega"] = (-dV0.sum(axis=(0, 2), keepdims=True)[0]).astype(dt)  # V0 = V - Omega
    else:
        dvh = baseline_act_sign_backward(dVb, c["v"])
    if cache["gsb_att"]:
        dA_re, dalphas = gsb_attention_backward(dA, c["att"])  # A = GSB(A_ret), A_ret = A_re - Phi
        g["alphas"] = np.asarray(dalphas, dtype=dt)
        if cache["phi"] == "HNN":
            g["Phi"] = (-dA_re.sum(axis=0)).astype(dt)
        elif cache["phi"] == "HN":
            g["Phi"] = (-dA_re.sum(axis=(0, 2))[:, None, :]).astype(dt)
    else:
        dA_re = baseline_attention_backward(dA, c["att"])
    dA_re = dA_re.astype(dt, copy=False)
    dS = F.softmax_backward(dA_re, A_re) * cache["scale"]  # A_re = softmax(S), S = Qb Kb^T * scale
    dQb = dS @ Kb  # (B, H, N, Dh)
    dKb = dS.swapaxes(-1, -2) @ Qb
    dqh, dqa, dqb = act_sign_backward(dQb, c["q"])
    dkh, dka, dkb = act_sign_backward(dKb, c["k"])
    if cache["gsb"]:
        g["q_alpha"] = np.asarray(dqa, dtype=dt).reshape(())
        g["k_alpha"] = np.asarray(dka, dtype=dt).reshape(())
        g["q_bias"] = np.asarray(dqb, dtype=dt)
        g["k_bias"] = np.asarray(dkb, dtype=dt)
    return dqh, dkh, dvh, g
