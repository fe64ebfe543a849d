"""Packed model files and packed inference.

``export_packed(CKPT, OUT)`` stores every binarized weight of a trained model as bits plus its scale
(``W_b = alpha_w * sign(W - mean W)``: the sign-packed words of ``W - mean W`` and ``alpha_w =
mean|W|``), the full-precision remainder (patch embedding, tokens, position embedding, norms, heads,
biases, activation scales and biases, GSB alphas, betas, Phi, Omega) as float32, and metadata (format,
version, model config, precision stage, normalisation statistics, shapes) in one ``.npz`` without
pickles, written atomically.

``load_packed(OUT)`` rebuilds the model for inference: its binarized linear layers run on xnor/popcount
products of packed bits (each one a :class:`PackedLinear`) and, with ``av_bitwise=True``, the GSB
attention product of Eq. 35 runs bitwise too (``MHSA.av_product = gsb_av_bitwise``). The
float-simulated model and the packed one agree up to the rounding of the float simulation's sums.

File layout: ``bits/<name>`` uint64 words (F, ceil(D/64)), ``alpha/<name>`` float32 scalar,
``fp/<name>`` float32 arrays and buffers, ``__meta__`` JSON.
"""

from __future__ import annotations

import os

import numpy as np

from .. import __version__
from .. import functional as F
from ..bitops import (PackedBits, binary_linear_packed, gsb_av_bitwise, matmul_mask_sign, matmul_sign_sign,
                      pack_binary_weight, pack_mask, pack_signs, unpack_bits)
from ..nn.layers import Linear
from ..nn.module import load_npz, save_npz
from .checkpoint import check_format, load_model
from .config import DeiTConfig
from .deit import DeiT

__all__ = ["PackedLinear", "export_packed", "load_packed", "packed_arrays", "PACKED_FORMAT",
           "PACKED_VERSION"]

PACKED_FORMAT = "gsbnp-packed"
PACKED_VERSION = 1


class PackedLinear(Linear):
    """An inference-only binarized linear layer on bit-packed weights.

    ``W_bits`` is the sign-packed (F, D) image of ``W - mean(W)`` and ``alpha_w = mean|W|``
    (``gsbnp.bitops.pack_binary_weight``). The forward quantizes its input exactly as the float
    layer does and multiplies with xnor/popcount; there is no backward. Built from a float layer by
    :meth:`from_linear`, which keeps its parameters, buffers and quantizer settings.
    """

    @classmethod
    def from_linear(cls, lin: Linear, W_bits: PackedBits, alpha_w: float) -> "PackedLinear":
        if W_bits.shape != (lin.out_features, lin.in_features) or W_bits.kind != "sign":
            raise ValueError(f"W_bits must be sign bits of shape {(lin.out_features, lin.in_features)}, "
                             f"got {W_bits.kind} {W_bits.shape}")
        layer = cls.__new__(cls)
        layer.__dict__.update(lin.__dict__)
        layer.W_bits, layer.alpha_w, layer._W_b = W_bits, float(alpha_w), None
        return layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Packed inference: the float model's activation quantizer, then a popcount product.

        ``x_b = s * sign-or-mask`` (s the activation scale: learnable alpha, or the baseline's
        per-sample beta) and ``W_b = alpha_w * sign(W - mean W)``, so ``x_b @ W_b.T = s * alpha_w * dot``
        with the integer ``dot`` from ``K - 2 popcount(x xor w)`` (sign inputs) or mask/sign popcounts
        (type-A inputs, Fig. 10).
        """
        W_bits, alpha_w, q = self.W_bits, self.alpha_w, self.input_quantizer
        p = self._params
        b = p.get("b")
        if q is None:  # stage 1: full-precision input times the binary weight
            if self._W_b is None:
                self._W_b = (alpha_w * unpack_bits(W_bits, dtype=x.dtype)).astype(x.dtype)
            return F.linear_forward(x, self._W_b, b)[0]
        x_b, scale, _, _ = q.forward(x, p.get("act_alpha"), p.get("act_bias"))  # x_b = scale * codes
        if q.rule == "sign":
            if q.learnable:
                return binary_linear_packed(pack_signs(x_b), W_bits, alpha_w, float(scale), b, dtype=x.dtype)
            dot = matmul_sign_sign(pack_signs(x_b), W_bits)  # (..., F) integers
        else:
            dot = matmul_mask_sign(pack_mask(x_b > 0), W_bits)
        out = dot.astype(x.dtype) * (scale * x.dtype.type(alpha_w))
        return out if b is None else out + b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise RuntimeError("a packed (inference-only) layer has no backward")


def packed_arrays(model: DeiT) -> tuple[dict, dict]:
    """The arrays of a packed file for ``model`` and the per-weight shapes: ``(arrays, shapes)``."""
    binw = model.binarized_weight_names()
    arrays, shapes = {}, {}
    for name, v in model.state_dict().items():
        if name in binw:
            bits, alpha = pack_binary_weight(v)
            arrays[f"bits/{name}"] = bits.words
            arrays[f"alpha/{name}"] = np.float32(alpha)
            shapes[name] = list(v.shape)
        else:
            arrays[f"fp/{name}"] = np.asarray(v, dtype=np.float32) if v.dtype.kind == "f" else v
    return arrays, shapes


def export_packed(checkpoint, out) -> dict:
    """Write the packed model of ``checkpoint`` to ``out``; returns sizes in bytes.

    Returns ``{"packed_file", "checkpoint_float32", "binary_weights_packed", "binary_weights_float32",
    "binarized_layers", "precision"}``: the file sizes and the storage of the binarized weights as bits
    vs as float32 (32x smaller when the input width is a multiple of 64).
    """
    model, meta = load_model(checkpoint, dtype=np.float32)
    if model.precision == "fp":
        raise ValueError(f"{checkpoint} is a full-precision model: nothing to pack (export stage 1 or 2)")
    arrays, shapes = packed_arrays(model)
    pmeta = {"format": PACKED_FORMAT, "version": PACKED_VERSION, "gsbnp_version": __version__,
             "model_config": model.cfg.to_dict(), "precision": model.precision,
             "mean": meta.get("mean"), "std": meta.get("std"), "weights": shapes, "bitorder": "little"}
    save_npz(out, arrays, pmeta)
    bits_bytes = sum(int(arrays[f"bits/{n}"].nbytes) for n in shapes)
    float_bytes = sum(int(np.prod(s)) * 4 for s in shapes.values())
    fp32 = sum(int(v.size) * 4 for v in model.state_dict().values())
    return {"packed_file": os.path.getsize(out), "checkpoint_float32": fp32,
            "binary_weights_packed": bits_bytes, "binary_weights_float32": float_bytes,
            "binarized_layers": len(shapes), "precision": model.precision}


def load_packed(path, *, av_bitwise: bool = False) -> tuple[DeiT, dict]:
    """Load a packed model for inference (eval mode). Returns ``(model, meta)``.

    Raises ``ValueError`` with the file name for a corrupt, truncated or foreign file, or one written
    by an incompatible version.
    """
    arrays, meta = load_npz(path)
    check_format(path, meta, PACKED_FORMAT, PACKED_VERSION, "packed model", "packed format")
    try:
        cfg = DeiTConfig.from_dict(meta["model_config"])
        model = DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float32)
        model.set_precision(meta["precision"])
        shapes = {k: tuple(v) for k, v in meta["weights"].items()}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: invalid packed metadata ({e})") from None
    if set(shapes) != model.binarized_weight_names():
        raise ValueError(f"{path}: the packed weights do not match the model's binarized layers")
    state = {}
    for name, v in model.state_dict().items():
        if name in shapes:
            state[name] = np.zeros_like(v)  # the latent weight is not stored; the bits are used
            continue
        key = f"fp/{name}"
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key}")
        state[name] = arrays[key]
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    parents = {prefix + name + ".W": (m, name) for prefix, m in model.named_modules()
               for name, child in m.children() if isinstance(child, Linear)}
    for name, shape in shapes.items():
        words, alpha = arrays.get(f"bits/{name}"), arrays.get(f"alpha/{name}")
        if words is None or alpha is None:
            raise ValueError(f"{path}: missing bits or scale of {name}")
        try:
            bits = PackedBits(np.ascontiguousarray(words), shape[1], "sign")
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: corrupt bits of {name} ({e})") from None
        if bits.lead != (shape[0],):
            raise ValueError(f"{path}: bits of {name} have {bits.lead[0] if bits.lead else 0} rows, "
                             f"expected {shape[0]}")
        parent, child = parents[name]
        try:
            packed = PackedLinear.from_linear(parent._modules[child], bits, float(alpha))
        except ValueError as e:
            raise ValueError(f"{path}: bits of {name}: {e}") from None
        parent.replace_module(child, packed)
    for _, m in model.named_modules():
        if hasattr(m, "av_product"):
            m.av_product = gsb_av_bitwise if av_bitwise else None
    model.eval()
    return model, meta
