"""Transformer blocks of the LDM UNet: self-attention, cross-attention to text tokens, GEGLU MLP.

Architecture as in Rombach et al. 2022 (LDM, Sec. 3.3 "Conditioning Mechanisms": cross-attention
Q = W_Q phi(z), K = W_K tau(y), V = W_V tau(y)) and the Stable Diffusion v1 UNet: each attention
level holds a "spatial transformer" = GroupNorm -> linear projection in -> [LayerNorm -> self-attn,
LayerNorm -> cross-attn, LayerNorm -> GEGLU feed-forward] x depth -> projection out, residual.
The parameter layout matches diffusers' ``Transformer2DModel`` (with ``use_linear_projection``),
so parameter counts agree exactly; q/k/v are fused into one matrix (same parameters, fewer GEMM
launches), and attention itself is ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention over the h*w positions. x: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # = to_q, to_k, to_v stacked
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # (B, N, 3C) -> 3 x (B, heads, N, C/heads)
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    """Queries from the image positions, keys/values from the text tokens (LDM Eq. 3).

    x: (B, N, C), context: (B, L, D), mask: (B, L) bool (True = a real token) or None.
    """

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=False)  # = to_k, to_v stacked
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        h, d = self.heads, c // self.heads
        q = self.q(x).view(b, n, h, d).transpose(1, 2)  # (B, h, N, d)
        k, v = self.kv(context).view(b, -1, 2, h, d).permute(2, 0, 3, 1, 4)  # 2 x (B, h, L, d)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L) broadcast
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class GEGLU(nn.Module):
    """Feed-forward with a gated GELU (Shazeer 2020, Eq. 6), hidden width 4*dim as in SD."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(self.drop(a * F.gelu(gate)))


class TransformerBlock(nn.Module):
    """Pre-norm block: x += SA(LN x); x += CA(LN x, text); x += FF(LN x)."""

    def __init__(self, dim: int, context_dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), CrossAttention(dim, context_dim, heads)
        self.norm3, self.ff = nn.LayerNorm(dim), GEGLU(dim, dropout=dropout)

    def forward(self, x, context, mask):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context, mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """(B, C, H, W) feature map -> tokens (B, HW, C) -> transformer blocks -> back, residual."""

    def __init__(self, channels: int, context_dim: int, heads: int, depth: int, groups: int, dropout=0.0):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.blocks = nn.ModuleList(
            TransformerBlock(channels, context_dim, heads, dropout) for _ in range(depth)
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x, context, mask):
        b, c, h, w = x.shape
        y = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        y = self.proj_in(y)
        for blk in self.blocks:
            y = blk(y, context, mask)
        y = self.proj_out(y).transpose(1, 2).reshape(b, c, h, w)
        return x + y
