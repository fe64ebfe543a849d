"""The same DeiT architecture in PyTorch, used only as the speed reference of the benchmarks.

Optional: imported only when ``torch`` is installed (``pip install torch==2.13.0``, the CPU wheel).
Mirrors gsbnp.models.DeiT: stride-P conv patch embedding, [cls] + [dist] tokens, learned position
embedding, pre-norm blocks (fused qkv, exact GELU, LayerNorm eps 1e-6), final norm, two heads.
"""

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) * (D // self.h) ** -0.5
        y = a.softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TorchDeiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.embed_dim
        self.patch = nn.Conv2d(cfg.in_chans, D, cfg.patch_size, cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.dist = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(torch.randn(1, cfg.num_tokens, D) * 0.02)
        self.blocks = nn.Sequential(*[Block(D, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, cfg.num_classes)
        self.head_dist = nn.Linear(D, cfg.num_classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        B = t.shape[0]
        h = torch.cat([self.cls.expand(B, -1, -1), self.dist.expand(B, -1, -1), t], 1) + self.pos
        h = self.norm(self.blocks(h))
        return self.head(h[:, 0]), self.head_dist(h[:, 1])
