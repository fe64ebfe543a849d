"""The GSB binarized DeiT in PyTorch with autograd, used only as the speed reference of bench_step.

What a user of the authors' PyTorch code would run on a CPU: the same model as gsbnp's stage 2
(``DeiT(cfg).set_precision("binary")``, method "gsb", the paper's defaults) with every straight-through
estimator as a ``torch.autograd.Function`` and everything else left to autograd. Optional: imported
only when ``torch`` is installed (``pip install torch==2.13.0``, the CPU wheel).

Same conventions as gsbnp (docs/conventions.md#how-gsbnp-reads-the-paper):

- block linears: ``W_b = mean|W| sign(W - mean W)`` (identity STE, Eq. 6); inputs of qkv, proj, fc1
  type-B ``alpha sign((x + b)/alpha)`` (window ``|q| <= 1``), input of fc2 type-A
  ``alpha 1{(x + b)/alpha > 0.5}`` (window ``0 <= q <= 1``); scale gradients reduced by the mean;
- Q, K: learnable type-B with a per-head bias (H, 1, Dh); ``A_re = softmax(Q_b K_b^T / sqrt(Dh))``,
  ``A_ret = A_re - Phi`` (Phi of shape (H, N, N)), GSB attention with k_a = 2 (Eqs. 10-20: rounded
  matrix, row thresholds ``c_i max_row``, strict windows), ``V0 = V - Omega``, GSB value with k_v = 2
  (Eqs. 26-32: per-sample extremes, inclusive windows, masked STE), ``Y = A_gsb V_gsb``;
- patch embedding, tokens, norms and heads in full precision (``torch_deit.TorchDeiT``'s).

``load_gsbnp(tm, model)`` copies a gsbnp model's parameters in, so the benchmark can check that both
compute the same logits.
"""

import torch
from torch import nn
from torch_deit import TorchDeiT


def _sum_to(g, shape):
    """Sum ``g`` over the axes that a tensor of ``shape`` was broadcast along."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


class ActQuant(torch.autograd.Function):
    """``x_b = alpha * op((x + bias) / alpha)``: op = sign (type-B) or 1{q > 0.5} (type-A)."""

    @staticmethod
    def forward(ctx, x, alpha, bias, sign: bool):
        q = (x + bias) / alpha
        if sign:
            value = torch.where(q >= 0, 1.0, -1.0).to(x.dtype)
            window = q.abs() <= 1
        else:
            value = (q > 0.5).to(x.dtype)
            window = (q >= 0) & (q <= 1)
        ctx.save_for_backward(q, value, window)
        ctx.bias_shape = bias.shape
        return alpha * value

    @staticmethod
    def backward(ctx, g):
        q, value, window = ctx.saved_tensors
        dx = g * window
        dalpha = ((g * value).sum() - (dx * q).sum()) / g.numel()  # scale_grad "mean"
        return dx, dalpha.reshape(()), _sum_to(dx, ctx.bias_shape), None


class WeightSign(torch.autograd.Function):
    """``W_b = mean|W| sign(W - mean W)``, identity STE (Eq. 6)."""

    @staticmethod
    def forward(ctx, W):
        return W.abs().mean() * torch.where(W - W.mean() >= 0, 1.0, -1.0).to(W.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


class GSBAttention(torch.autograd.Function):
    """``A_gsb = alpha_0 1{A_ret/alpha_0 > 0.5} + sum_i alpha_i 1{A_ret > c_i max_row}`` (Eqs. 10-20)."""

    @staticmethod
    def forward(ctx, A_ret, alphas):
        k = alphas.shape[0] - 1
        c = 0.5 + 0.4 * torch.arange(1, k + 1, dtype=torch.float64) / k
        Theta = c.to(A_ret.dtype).reshape(-1, 1, 1, 1, 1) * A_ret.amax(-1, keepdim=True)[None]
        d = A_ret[None] - Theta  # (k, B, H, N, N)
        M = d > 0
        W = M & (d < 1)
        u = A_ret / alphas[0]
        A_bin = u > 0.5
        window0 = (u > 0) & (u < 1)
        out = alphas[0] * A_bin + torch.einsum("k,k...->...", alphas[1:], M.to(A_ret.dtype))
        ctx.save_for_backward(alphas, u, A_bin, window0, M, W)
        return out

    @staticmethod
    def backward(ctx, g):
        alphas, u, A_bin, window0, M, W = ctx.saved_tensors
        n = g.numel()
        coef = window0.to(g.dtype) + torch.einsum("k,k...->...", alphas[1:], W.to(g.dtype))
        d0 = (g * A_bin).sum() - (g * window0 * u).sum()
        di = (M * g[None]).flatten(1).sum(1)
        return g * coef, torch.cat([d0.reshape(1), di]) / n


class GSBValue(torch.autograd.Function):
    """``V_gsb = sum_i beta_i sign(V0) M_i``, masks from the per-sample extremes (Eqs. 26-32)."""

    @staticmethod
    def forward(ctx, V0, betas):
        k = betas.shape[0] - 1
        c = (0.5 + 0.4 * torch.arange(1, k + 1, dtype=torch.float64) / k).to(V0.dtype).reshape(-1, 1, 1, 1, 1)
        vmax = V0.amax((1, 2, 3), keepdim=True)[None]
        vmin = V0.amin((1, 2, 3), keepdim=True)[None]
        M = torch.cat([torch.ones_like(V0, dtype=torch.bool)[None], (V0[None] > c * vmax) | (V0[None] < c * vmin)])
        sgn = torch.where(V0 >= 0, 1.0, -1.0).to(V0.dtype)
        q = V0[None] / betas.reshape(-1, 1, 1, 1, 1)  # (k + 1, B, H, N, Dh)
        window = (q.abs() <= 1) & M
        ctx.save_for_backward(M, window, q, sgn)
        return torch.einsum("k,k...->...", betas, M.to(V0.dtype)) * sgn

    @staticmethod
    def backward(ctx, g):
        M, window, q, sgn = ctx.saved_tensors
        dV0 = g * window.sum(0).to(g.dtype)
        dbetas = ((M * (g * sgn)[None]).flatten(1).sum(1) - (q * window * g[None]).flatten(1).sum(1)) / g.numel()
        return dV0, dbetas


class BinLinear(nn.Linear):
    def __init__(self, fin, fout, sign_input: bool):
        super().__init__(fin, fout)
        self.sign_input = sign_input
        self.act_alpha = nn.Parameter(torch.tensor(1.0))
        self.act_bias = nn.Parameter(torch.zeros(fin))

    def forward(self, x):
        x = ActQuant.apply(x, self.act_alpha.clamp(min=1e-5), self.act_bias, self.sign_input)
        return nn.functional.linear(x, WeightSign.apply(self.weight), self.bias)


class GSBAttn(nn.Module):
    def __init__(self, dim, heads, tokens, k_a=2, k_v=2):
        super().__init__()
        self.h, self.dh = heads, dim // heads
        self.qkv = BinLinear(dim, 3 * dim, True)
        self.proj = BinLinear(dim, dim, True)
        self.q_alpha = nn.Parameter(torch.tensor(1.0))
        self.k_alpha = nn.Parameter(torch.tensor(1.0))
        self.q_bias = nn.Parameter(torch.zeros(heads, 1, self.dh))
        self.k_bias = nn.Parameter(torch.zeros(heads, 1, self.dh))
        self.Omega = nn.Parameter(torch.zeros(heads, 1, self.dh))
        self.Phi = nn.Parameter(torch.zeros(heads, tokens, tokens))
        self.alphas = nn.Parameter(torch.full((k_a + 1,), 0.05))
        self.betas = nn.Parameter(torch.full((k_v + 1,), 0.1))

    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        Qb = ActQuant.apply(q, self.q_alpha.clamp(min=1e-5), self.q_bias, True)
        Kb = ActQuant.apply(k, self.k_alpha.clamp(min=1e-5), self.k_bias, True)
        A_re = ((Qb @ Kb.transpose(-2, -1)) * self.dh ** -0.5).softmax(-1)
        A = GSBAttention.apply(A_re - self.Phi, self.alphas.clamp(min=1e-5))
        Vb = GSBValue.apply(v - self.Omega, self.betas.clamp(min=1e-5))
        y = A @ Vb
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class GSBBlock(nn.Module):
    def __init__(self, dim, heads, tokens, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = GSBAttn(dim, heads, tokens)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1 = BinLinear(dim, hidden, True)
        self.fc2 = BinLinear(hidden, dim, False)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class TorchGSBDeiT(TorchDeiT):
    """TorchDeiT with GSB blocks (stage 2 of the recipe)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.blocks = nn.Sequential(*[GSBBlock(cfg.embed_dim, cfg.num_heads, cfg.num_tokens, cfg.mlp_ratio)
                                      for _ in range(cfg.depth)])


_TOP = {"cls_token": "cls", "dist_token": "dist", "pos_embed": "pos", "patch_embed.W": "patch.weight",
        "patch_embed.b": "patch.bias", "norm.weight": "norm.weight", "norm.bias": "norm.bias",
        "head.W": "head.weight", "head.b": "head.bias", "head_dist.W": "head_dist.weight",
        "head_dist.b": "head_dist.bias"}


def torch_name(name: str) -> str:
    """The parameter of TorchGSBDeiT that holds gsbnp's parameter ``name`` (e.g. ``blocks.0.mlp.fc1.W``)."""
    if name in _TOP:
        return _TOP[name]
    head, last = name.replace(".mlp.", ".").rsplit(".", 1)
    return f"{head}.{ {'W': 'weight', 'b': 'bias'}.get(last, last)}"


def load_gsbnp(tm: TorchGSBDeiT, model) -> None:
    """Copy a gsbnp GSB DeiT's parameters (``model.params``) into ``tm`` (names mapped, shapes equal)."""
    own = dict(tm.named_parameters())
    for name, value in model.params.items():
        t = torch_name(name)
        if t not in own:
            raise KeyError(f"no torch parameter for gsbnp's {name} (tried {t})")
        with torch.no_grad():
            own[t].copy_(torch.from_numpy(value).to(own[t].dtype).reshape(own[t].shape))
