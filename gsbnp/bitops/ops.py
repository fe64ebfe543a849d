"""Operation counts of a transformer block and a whole DeiT: BOPs, FLOPs, OPs (Section V-F, Table IX).

``OPs = BOPs / 64 + FLOPs`` (the paper, after Bi-Real/ReActNet). Legend: n tokens (patches + [cls] +
[dist]), d embed, r MLP ratio (hidden F = int(r * d)), h heads, k_a / k_v GSB components.

Matrix products (exact, from the paper):
- full precision, Eq. 37: attention ``2nd(2d + n)`` = 146.9 M, MLP ``2ndrd`` = 233.6 M for n = 198,
  d = 384, r = 4. These equal the multiply-accumulate counts of the products: q, k, v and proj
  ``4 n d^2``, ``Q K^T`` and ``A V`` ``2 n^2 d``; fc1 + fc2 ``2 n d F``. Table IX calls them FLOPs.
- baseline: the same products done bitwise, counted as BOPs (147 M + 233 M).
- GSB: attention BOPs ``4nd^2 + n^2 d + (k_a + 1)(k_v + 1) n^2 d`` (Eq. 35 multiplies every pair
  A_i, V_j separately): 267.3 M for k_a = k_v = 2; MLP as the baseline.

The small FLOP residuals of the binarized rows cannot be derived from the paper; gsbnp counts them by
``COUNTING_RULE`` below and itemizes every term (``count_block_ops(...)["flops_detail"]``).
"""

from __future__ import annotations

from .._validate import check_choice, check_float, check_int
from ..quant.options import COUNT_METHODS, K_MAX, K_MIN

METHODS = COUNT_METHODS  # the name this module exported first

COUNTING_RULE = """\
OPs = BOPs/64 + FLOPs, per block and per image (n tokens, d embed, F = r*d MLP hidden, h heads).
BOPs: every matrix product whose operands are both binary, one per multiply-accumulate:
  baseline 4nd^2 + 2n^2 d (attention) and 2ndF (MLP); GSB attention 4nd^2 + n^2 d + (k_a+1)(k_v+1) n^2 d.
FLOPs of full precision: Eq. 37 (multiply-accumulates of the products): 2nd(2d+n) and 2ndF.
FLOPs left in a binarized block (gsbnp's rule; one add/sub/mul/div/exp = 1 FLOP; comparisons, sign,
round, clip, max and bit packing = 0):
  (a) rescaling a binary product's output (the product of its scales): 1 per output element
      (q, k, v, proj, fc1, fc2 outputs; attention logits with 1/sqrt(d_h) folded in; baseline A V);
  (b) learnable quantizer (x + b) / alpha (GSB type-A and type-B, incl. Q and K): 2 per input element;
  (c) baseline quantizers with per-call statistics (Eqs. 1-2): type-B (x - mean) / beta with mean and
      beta = mean|x| accumulated: 4 per element; type-A x / beta with beta = mean|x|: 2 per element;
      Eq. 8 gamma (accumulate values > 0.5) and A_re / gamma: 2 per attention element; baseline Q, K
      use plain sign (0) and V the type-B quantizer;
  (d) softmax: 4 per attention element (subtract row max, exp, sum, divide);
  (e) GSB attention: A_re - Phi and / alpha_0: 2 per attention element; thresholds c_i * max: k_a per
      row; GSB value: V - Omega 1 per element; thresholds c_j * v_max, c_j * v_min: 2 k_v per image;
  (f) Eq. 35: each of the (k_a+1)(k_v+1) integer products is scaled by alpha_i beta_j and accumulated:
      2 per output element per pair (this replaces (a) for A V).
  (g) only with include_common=True, for every method (full precision included): LayerNorm 7 per
      element (x2), residual adds 1 per element (x2), linear biases 1 per output element, GELU 5 per
      element, and for full precision the logits scaling (1) and softmax (4) per attention element.
      Table IX leaves these out of its full-precision row, so the default leaves them out everywhere.
Patch embedding and the two heads stay full precision; count_model_ops states them separately."""


def _part(bops: int, flops: int) -> dict:
    return {"BOPs": int(bops), "FLOPs": int(flops), "OPs": bops / 64 + flops}


def _binary_mlp_flops(kind: str, fc1_quantizer: int, nd: int, nF: int) -> dict[str, int]:
    """FLOPs left in a binarized MLP (rules (a)-(c)): fc1's type-B input quantizer (its cost given: 4 per
    element for the baseline, 2 for the learnable one), both output scalings, fc2's type-A quantizer."""
    return {f"fc1 input quantizer ({kind} type-B)": fc1_quantizer, "fc1 output scaling": nF,
            f"fc2 input quantizer ({kind} type-A)": 2 * nF, "fc2 output scaling": nd}


def count_block_ops(n: int = 198, d: int = 384, r: float = 4, method: str = "gsb", k_a: int = 2,
                    k_v: int = 2, *, num_heads: int = 6, include_common: bool = False) -> dict:
    """BOPs, FLOPs and OPs of one transformer block for one image (Table IX).

    Args:
        n: tokens (patches + [cls] + [dist]); 198 for DeiT-Small at 224 px.
        d: embed dimension; r: MLP ratio (hidden F = int(r * d)).
        method: "fp" (full precision), "baseline" (Section III) or "gsb" (Section IV).
        k_a, k_v: GSB components of the attention and value matrices (0..4; used by "gsb").
        num_heads: h, for the per-head terms of the FLOP rule (softmax, thresholds).
        include_common: also count LayerNorm, GELU, residual adds, biases (rule (g)).
    Returns:
        dict with "attention", "mlp", "block" (each {"BOPs": int, "FLOPs": int, "OPs": float}),
        "flops_detail" {"attention": {item: FLOPs}, "mlp": {item: FLOPs}} and the arguments.
    """
    n = check_int(n, "n", lo=1)
    d = check_int(d, "d", lo=1)
    r = check_float(r, "r", lo=0.0, lo_open=True)
    check_choice(method, METHODS, "method")
    k_a = check_int(k_a, "k_a", lo=K_MIN, hi=K_MAX)
    k_v = check_int(k_v, "k_v", lo=K_MIN, hi=K_MAX)
    h = check_int(num_heads, "num_heads", lo=1)
    F = int(r * d)
    if F < 1:
        raise ValueError(f"r * d must be >= 1, got r={r}, d={d}")
    nd, nF, att = n * d, n * F, n * n * h  # activation sizes; att = attention elements (all heads)

    attn: dict[str, int] = {}
    mlp: dict[str, int] = {}
    if method == "fp":
        attn_bops, mlp_bops = 0, 0
        attn["q, k, v, proj and QK^T, AV products (Eq. 37)"] = 2 * n * d * (2 * d + n)
        mlp["fc1, fc2 products (Eq. 37)"] = 2 * n * d * F
        if include_common:
            attn["attention logits scaling"] = att
            attn["softmax"] = 4 * att
    elif method == "baseline":
        attn_bops = 4 * n * d * d + 2 * n * n * d
        mlp_bops = 2 * n * d * F
        attn["qkv input quantizer (baseline type-B)"] = 4 * nd
        attn["q, k, v output scaling"] = 3 * nd
        attn["V quantizer (baseline type-B)"] = 4 * nd
        attn["attention logits scaling"] = att
        attn["softmax"] = 4 * att
        attn["A_bin: gamma (Eq. 8) and A_re / gamma"] = 2 * att
        attn["A V output scaling"] = nd
        attn["proj input quantizer (baseline type-B)"] = 4 * nd
        attn["proj output scaling"] = nd
        mlp.update(_binary_mlp_flops("baseline", 4 * nd, nd, nF))
    else:  # gsb
        pairs = (k_a + 1) * (k_v + 1)
        attn_bops = 4 * n * d * d + n * n * d + pairs * n * n * d
        mlp_bops = 2 * n * d * F
        attn["qkv input quantizer (learnable type-B)"] = 2 * nd
        attn["q, k, v output scaling"] = 3 * nd
        attn["Q, K quantizers (learnable type-B)"] = 4 * nd
        attn["V0 = V - Omega"] = nd
        attn["value thresholds"] = 2 * k_v
        attn["attention logits scaling"] = att
        attn["softmax"] = 4 * att
        attn["A_ret = A_re - Phi, / alpha_0"] = 2 * att
        attn["attention thresholds Theta_i"] = k_a * n * h
        attn["Eq. 35 superposition"] = 2 * pairs * nd
        attn["proj input quantizer (learnable type-B)"] = 2 * nd
        attn["proj output scaling"] = nd
        mlp.update(_binary_mlp_flops("learnable", 2 * nd, nd, nF))
    if include_common:
        attn["LayerNorm 1"] = 7 * nd
        attn["q, k, v, proj biases"] = 4 * nd
        attn["residual add 1"] = nd
        mlp["LayerNorm 2"] = 7 * nd
        mlp["fc1, fc2 biases"] = nF + nd
        mlp["GELU"] = 5 * nF
        mlp["residual add 2"] = nd

    a = _part(attn_bops, sum(attn.values()))
    m = _part(mlp_bops, sum(mlp.values()))
    return {
        "method": method, "n": n, "d": d, "r": r, "k_a": k_a, "k_v": k_v, "num_heads": h,
        "include_common": bool(include_common),
        "attention": a, "mlp": m, "block": _part(a["BOPs"] + m["BOPs"], a["FLOPs"] + m["FLOPs"]),
        "flops_detail": {"attention": attn, "mlp": mlp},
    }


def count_model_ops(method: str = "gsb", *, img_size: int = 224, patch_size: int = 16,
                    in_chans: int = 3, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                    mlp_ratio: float = 4.0, num_classes: int = 1000, num_extra_tokens: int = 2,
                    k_a: int = 2, k_v: int = 2, include_common: bool = False) -> dict:
    """Whole-model counts: ``depth`` blocks plus the full-precision patch embedding and heads.

    Field names follow DeiTConfig / timm; the defaults are DeiT-Small (n = 196 + 2 = 198 tokens).
    Patch embedding: ``n_patches * (in_chans * patch_size^2) * embed_dim`` multiply-accumulates;
    heads: ``2 * embed_dim * num_classes`` ([cls] and [dist], one token each); both counted as FLOPs in
    the convention of Eq. 37 (plus their biases, the position embedding and the final LayerNorm when
    ``include_common``).

    Returns:
        dict with "block" (count_block_ops result), "blocks" (x depth), "patch_embed", "heads",
        "total" (each {"BOPs", "FLOPs", "OPs"}) and "config".
    """
    img_size = check_int(img_size, "img_size", lo=1)
    patch_size = check_int(patch_size, "patch_size", lo=1, hi=img_size)
    in_chans = check_int(in_chans, "in_chans", lo=1)
    depth = check_int(depth, "depth", lo=1)
    num_classes = check_int(num_classes, "num_classes", lo=1)
    num_extra_tokens = check_int(num_extra_tokens, "num_extra_tokens", lo=0)
    d = check_int(embed_dim, "embed_dim", lo=1)
    n_patches = (img_size // patch_size) ** 2
    n = n_patches + num_extra_tokens
    block = count_block_ops(n, d, mlp_ratio, method, k_a, k_v, num_heads=num_heads,
                            include_common=include_common)
    blocks = {key: block["block"][key] * depth for key in ("BOPs", "FLOPs")}
    pe_flops = n_patches * in_chans * patch_size ** 2 * d
    head_flops = 2 * d * num_classes
    if include_common:
        pe_flops += n_patches * d + n * d  # conv bias, position embedding
        head_flops += 7 * 2 * d + 2 * num_classes + num_classes  # final LN (2 tokens), biases, mean
    parts = {"blocks": _part(blocks["BOPs"], blocks["FLOPs"]), "patch_embed": _part(0, pe_flops),
             "heads": _part(0, head_flops)}
    total = _part(sum(p["BOPs"] for p in parts.values()), sum(p["FLOPs"] for p in parts.values()))
    config = {"method": method, "img_size": img_size, "patch_size": patch_size, "in_chans": in_chans,
              "embed_dim": d, "depth": depth, "num_heads": num_heads, "mlp_ratio": mlp_ratio,
              "num_classes": num_classes, "num_extra_tokens": num_extra_tokens, "n_tokens": n,
              "k_a": k_a, "k_v": k_v, "include_common": bool(include_common)}
    return {"block": block, **parts, "total": total, "config": config}


_NAMES = {"fp": "Full precision", "baseline": "Baseline", "gsb": "GSB"}


def _fmt(v: float, unit: float, digits: int, dash_zero: bool) -> str:
    return "-" if (dash_zero and v == 0) else f"{v / unit:.{digits}f}"


def format_ops_table(results, *, unit: float = 1e6, digits: int = 2) -> str:
    """Plain-text table of ``count_block_ops`` / ``count_model_ops`` results.

    Args:
        results: one result dict or a list of them. Block results give Table IX's layout
            (method | attention BOPs, FLOPs | MLP BOPs, FLOPs | OPs); model results give one row per
            method with blocks, patch embedding, heads and total OPs.
        unit: divisor of every number (1e6 = millions, as Table IX); digits: decimals.
    Returns:
        the table as a string (no trailing newline).
    """
    if isinstance(results, dict):
        results = [results]
    if not results or not all(isinstance(r, dict) for r in results):
        raise TypeError("results must be a count_block_ops/count_model_ops dict or a list of them")
    model = "total" in results[0]
    if any(("total" in r) != model for r in results):
        raise ValueError("results must be all block counts or all model counts, not a mix")
    check_float(unit, "unit", lo=0.0, lo_open=True)
    u = {1.0: "x1", 1e3: "K", 1e6: "M", 1e9: "G"}.get(float(unit), f"x{unit:g}")
    if model:
        header = ["Method", f"Blocks BOPs ({u})", f"Blocks FLOPs ({u})", f"Patch embed FLOPs ({u})",
                  f"Heads FLOPs ({u})", f"Total OPs ({u})"]
        rows = [[_NAMES[r["config"]["method"]] + f" (depth {r['config']['depth']})",
                 _fmt(r["blocks"]["BOPs"], unit, digits, True),
                 _fmt(r["blocks"]["FLOPs"], unit, digits, False),
                 _fmt(r["patch_embed"]["FLOPs"], unit, digits, False),
                 _fmt(r["heads"]["FLOPs"], unit, digits, False),
                 _fmt(r["total"]["OPs"], unit, digits, False)] for r in results]
    else:
        header = ["Method", f"Attn BOPs ({u})", f"Attn FLOPs ({u})", f"MLP BOPs ({u})",
                  f"MLP FLOPs ({u})", f"OPs ({u})"]
        rows = []
        for r in results:
            name = _NAMES[r["method"]]
            if r["method"] == "gsb":
                name += f" (k_a={r['k_a']}, k_v={r['k_v']})"
            rows.append([name, _fmt(r["attention"]["BOPs"], unit, digits, True),
                         _fmt(r["attention"]["FLOPs"], unit, digits, False),
                         _fmt(r["mlp"]["BOPs"], unit, digits, True),
                         _fmt(r["mlp"]["FLOPs"], unit, digits, False),
                         _fmt(r["block"]["OPs"], unit, digits, False)])
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
