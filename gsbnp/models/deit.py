"""DeiT (data-efficient image transformer) with [cls] and [dist] tokens, full precision or binarized.

Legend: B batch, C channels, S image side, N tokens (= patches + 2), D embed, H heads, K classes
(docs/legend.md).

    t   = PatchEmbed(x)                               (B, N-2, D)
    h   = [cls; dist; t] + pos_embed                  (B, N, D)
    h   = Block_L(... Block_1(h))                     pre-norm blocks
    h   = LayerNorm(h)
    cls_logits, dist_logits = head(h[:, 0]), head_dist(h[:, 1])     (B, K) each

Train mode returns both logits (the [dist] head learns from the teacher, Eq. 36); eval mode returns
their mean (DeiT inference). Precision stages: ``set_precision("fp" | "weights" | "binary")`` -
stage 0 full precision, stage 1 binary weights of every block linear layer (Section IV-D), stage 2
binary weights and activations with the configured method. Patch embedding and the two heads stay
full precision in every stage.
"""

from __future__ import annotations

import numpy as np

from .._validate import as_float_array, check_choice
from ..nn import Block, Dropout, LayerNorm, Linear, Module, PatchEmbed
from ..nn.init import trunc_normal
from .config import DeiTConfig

STAGES = ("fp", "weights", "binary")


class DeiT(Module):
    """DeiT / GSB-DeiT. ``DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float32)``.

    Parameters (dotted names): ``patch_embed.W (D, C, P, P)``, ``patch_embed.b``, ``cls_token (1, 1, D)``,
    ``dist_token (1, 1, D)``, ``pos_embed (1, N, D)``, ``blocks.i.*``, ``norm.weight``, ``norm.bias``,
    ``head.W (K, D)``, ``head.b``, ``head_dist.W``, ``head_dist.b``.
    The generator ``rng`` initialises the weights and then drives dropout and drop-path, so one seed
    fixes the whole run.
    """

    no_decay_params = ("cls_token", "dist_token", "pos_embed")

    def __init__(self, cfg: DeiTConfig, *, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if not isinstance(cfg, DeiTConfig):
            raise TypeError(f"cfg must be a DeiTConfig, got {type(cfg).__name__}")
        if rng is None:
            rng = np.random.default_rng(0)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.cfg, self.rng, self.dtype = cfg, rng, dtype
        D, N = cfg.embed_dim, cfg.num_tokens
        self.patch_embed = self.add_module("patch_embed", PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans,
                                                                     D, rng=rng, dtype=dtype))
        self.add_param("cls_token", trunc_normal(rng, (1, 1, D), dtype=dtype))
        self.add_param("dist_token", trunc_normal(rng, (1, 1, D), dtype=dtype))
        self.add_param("pos_embed", trunc_normal(rng, (1, N, D), dtype=dtype))
        self.pos_drop = self.add_module("pos_drop", Dropout(cfg.drop_rate, rng))
        dpr = np.linspace(0.0, cfg.drop_path_rate, cfg.depth) if cfg.depth > 1 else [cfg.drop_path_rate]
        self.blocks = []
        for i in range(cfg.depth):
            blk = Block(D, cfg.num_heads, N, mlp_ratio=cfg.mlp_ratio, drop=cfg.drop_rate,
                        drop_path=float(dpr[i]), rng=rng, dtype=dtype)
            self.blocks.append(self.add_module(f"blocks.{i}", blk))
        self.norm = self.add_module("norm", LayerNorm(D, dtype=dtype))
        self.head = self.add_module("head", Linear(D, cfg.num_classes, rng=rng, dtype=dtype))
        self.head_dist = self.add_module("head_dist", Linear(D, cfg.num_classes, rng=rng, dtype=dtype))
        self.precision = "fp"

    # ------------------------------------------------------------------------------------------
    def set_precision(self, stage: str) -> "DeiT":
        """Switch to stage ``"fp"``, ``"weights"`` (stage 1) or ``"binary"`` (stage 2).

        New quantizer parameters (activation scales/biases, GSB alphas, betas, Phi, Omega) are created
        when first needed; their scales are set by ``init_scales(x)`` (the trainer calls it on the first
        batch of a stage) or else from the first batch each layer sees.
        """
        check_choice(stage, STAGES, "stage")
        cfg = self.cfg
        for blk in self.blocks:
            for name, lin in (("qkv", blk.attn.qkv), ("proj", blk.attn.proj), ("fc1", blk.mlp.fc1),
                              ("fc2", blk.mlp.fc2)):
                if stage == "fp":
                    lin.set_quant(weights=False, act_mode=None)
                elif stage == "weights":
                    w = cfg.stage1 == "paper" or name in ("fc1", "fc2")
                    lin.set_quant(weights=w, act_mode=None)
                else:
                    lin.set_quant(weights=True, act_mode="learnable" if cfg.method == "gsb" else "baseline",
                                  act_rule="sign" if (name == "fc2" and cfg.type_a == "sign") else "paper",
                                  scale_grad=cfg.scale_grad)
            if stage == "binary":
                blk.attn.set_quant(cfg.method, gsb_att=cfg.gsb_att, gsb_v=cfg.gsb_v, k_a=cfg.k_a, k_v=cfg.k_v,
                                   phi=cfg.phi, abin=cfg.abin, scale_grad=cfg.scale_grad,
                                   threshold_scope=cfg.threshold_scope, v_grad=cfg.v_grad,
                                   baseline_attn=cfg.baseline_attn, init=cfg.init)
            else:
                blk.attn.set_quant(None)
        self.precision = stage
        return self

    def binarized_weight_names(self) -> set[str]:
        """Dotted names of the weights stored as 1 bit in the current precision stage."""
        return {f"{prefix}W" for prefix, m in self.named_modules()
                if isinstance(m, Linear) and m.binarize_weights}

    # ------------------------------------------------------------------------------------------
    def _check_input(self, x) -> np.ndarray:
        cfg = self.cfg
        x = as_float_array(x, "x", ndim=4)
        B, C, Hi, Wi = x.shape
        if B < 1:
            raise ValueError("x must hold at least one image (batch size 0)")
        if C != cfg.in_chans:
            raise ValueError(f"x must have {cfg.in_chans} channel(s) (NCHW layout), got shape {x.shape}")
        if Hi % cfg.patch_size or Wi % cfg.patch_size:
            raise ValueError(f"x image size {Hi}x{Wi} is not divisible by patch_size {cfg.patch_size}")
        if Hi != cfg.img_size or Wi != cfg.img_size:
            raise ValueError(f"x must be {cfg.img_size}x{cfg.img_size} images, got {Hi}x{Wi}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return x

    def forward_features(self, x: np.ndarray) -> np.ndarray:
        """(B, C, S, S) images -> final normalised tokens (B, N, D)."""
        x = self._check_input(x)
        B = x.shape[0]
        p = self._params
        t = self.patch_embed(x)  # (B, N-2, D)
        D = t.shape[-1]
        h = np.concatenate([np.broadcast_to(p["cls_token"], (B, 1, D)),
                            np.broadcast_to(p["dist_token"], (B, 1, D)), t], axis=1)  # (B, N, D)
        h = self.pos_drop(h + p["pos_embed"])
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def inspect(self, x: np.ndarray, block: int = -1) -> dict:
        """Run ``x`` through the model and return the attention internals of one block.

        The forward pass is the model's own (its current train/eval mode and precision stage); the
        block's attention layer records its arrays during that pass. Returns a dict of arrays:
        ``x`` the block's attention input after ``norm1`` (B, N, D); ``q``, ``k``, ``v`` the heads
        (B, H, N, Dh) entering the attention product; ``Q_b``, ``K_b`` their binarized images (= q, k in
        full precision); ``A_re`` (B, H, N, N) the softmax map (Eq. 7; the float map in full precision);
        ``A_ret`` = A_re - Phi (Eq. 9, GSB attention only); ``A`` the map that multiplies V (A_gsb,
        A_bin or the float map); ``V0`` = V - Omega (Eq. 26, GSB-V only); ``V`` the value used (V_gsb,
        the baseline's binary V or v); ``Y`` = A V (B, H, N, Dh, Eq. 35); and ``logits`` the model output.
        """
        n = len(self.blocks)
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not -n <= block < n:
            raise ValueError(f"block must be an int in [{-n}, {n - 1}], got {block!r}")
        attn = self.blocks[block].attn
        attn.record = True
        try:
            logits = self.forward(x)
            rec = dict(attn.recorded)
        finally:
            attn.record, attn.recorded = False, None
        rec["logits"] = logits
        return rec

    def forward(self, x: np.ndarray):
        """Train mode: ``(cls_logits, dist_logits)``, each (B, K). Eval mode: their mean (B, K)."""
        h = self.forward_features(x)
        cls_logits = self.head(h[:, 0])
        dist_logits = self.head_dist(h[:, 1])
        self._B = h.shape
        if self.training:
            return cls_logits, dist_logits
        return (cls_logits + dist_logits) * self.dtype.type(0.5)

    def backward(self, dcls_logits: np.ndarray, ddist_logits: np.ndarray | None = None) -> np.ndarray:
        """Backward of ``forward``; returns dx (B, C, S, S) and fills ``grads``.

        In train mode pass both upstream gradients; in eval mode pass the gradient of the mean logits.
        """
        if ddist_logits is None:
            if self.training:
                raise ValueError("train mode: backward needs ddist_logits as well as dcls_logits")
            dcls_logits = ddist_logits = dcls_logits * 0.5
        B, N, D = self._B
        dh = np.zeros((B, N, D), dtype=self.dtype)
        dh[:, 0] = self.head.backward(dcls_logits)
        dh[:, 1] = self.head_dist.backward(ddist_logits)
        dh = self.norm.backward(dh)
        for blk in reversed(self.blocks):
            dh = blk.backward(dh)
        dh = self.pos_drop.backward(dh)  # h = drop(tokens + pos_embed)
        g = self._grads
        g["pos_embed"] = dh.sum(axis=0, keepdims=True)
        g["cls_token"] = dh[:, :1].sum(axis=0, keepdims=True)
        g["dist_token"] = dh[:, 1:2].sum(axis=0, keepdims=True)
        return self.patch_embed.backward(dh[:, 2:])

    # ------------------------------------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """A per-parameter table (shape, bits, count, memory) with 1-bit vs 32-bit totals.

        Binarized weights count 1 bit each plus one 32-bit scale per layer (alpha = mean|W|).
        Returns the table and prints it with ``print_fn`` (pass ``None`` to only return it).
        """
        binw = self.binarized_weight_names()
        rows, n1, n32 = [], 0, 0
        for name, p in self.named_parameters():
            bits = 1 if name in binw else 32
            if bits == 1:
                n1 += p.size
                n32 += 1  # the layer's scale alpha_w
            else:
                n32 += p.size
            rows.append((name, "x".join(map(str, p.shape)) or "scalar", bits, p.size, p.size * bits / 8))
        total = n1 + n32 - len(binw)
        mem = n1 / 8 + n32 * 4
        fp_mem = total * 4
        w = max(len(r[0]) for r in rows)
        lines = [f"DeiT summary  precision={self.precision}  method={self.cfg.method}  "
                 f"tokens N={self.cfg.num_tokens}  dtype={self.dtype}",
                 f"{'parameter':<{w}}  {'shape':>14}  {'bits':>4}  {'params':>10}  {'memory':>10}"]
        for name, shape, bits, n, nbytes in rows:
            lines.append(f"{name:<{w}}  {shape:>14}  {bits:>4}  {n:>10,}  {_fmt_bytes(nbytes):>10}")
        lines += [
            f"total parameters: {total:,} ({total / 1e6:.2f} M)",
            f"1-bit parameters: {n1:,}   32-bit parameters: {n32 - len(binw):,} (+{len(binw)} weight scales)",
            f"memory: {_fmt_bytes(mem)} (full precision {_fmt_bytes(fp_mem)}, compression {fp_mem / mem:.2f}x)",
        ]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover
