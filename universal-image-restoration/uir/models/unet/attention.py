"""Attention layers of the ConditionalUNet.

- `ChannelLinearAttention`: linear attention whose "tokens" are channels (cost linear in H*W),
  used at every level that has no image context.
- `SpatialTransformer`: one transformer block over the H*W positions (self-attention, then
  cross-attention to the image context, then a GEGLU feed-forward), used at the deep levels
  and in the middle when the network takes an image context.

Attribute names follow the reference so that its state dicts load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uir.models.unet.blocks import ChannelLayerNorm

HEAD_CHANNELS = 32


class ChannelLinearAttention(nn.Module):
    """Per head: softmax over channels for q, over positions for k; out = (k v^T)^T q.

    q is scaled by dim_head^-1/2 and v by 1/(H W); the result goes through a 1x1 convolution
    and a ChannelLayerNorm (`to_out.0`, `to_out.1`). `context` is accepted and ignored.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = HEAD_CHANNELS):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        qkv = self.to_qkv(x).reshape(b, 3, self.heads, self.dim_head, n)
        q, k, v = qkv.unbind(dim=1)  # each [b, heads, dim_head, n]
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / n
        kv = torch.matmul(k, v.transpose(-1, -2))  # [b, heads, d, e]
        out = torch.matmul(kv.transpose(-1, -2), q)  # [b, heads, e, n]
        return self.to_out(out.reshape(b, self.heads * self.dim_head, h, w))


class CrossAttention(nn.Module):
    """Multi-head attention of the tokens `x` `[B, N, dim]` to `context` `[B, M, context_dim]`
    (to `x` itself when `context` is None), scaled by dim_head^-1/2."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [B, heads, N, dim_head]

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q = self._split_heads(self.to_q(x))
        k = self._split_heads(self.to_k(context))
        v = self._split_heads(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class GEGLU(nn.Module):
    """`a * gelu(b)` where `(a, b)` are the two halves of one linear projection."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU to `mult * dim` channels, then a linear layer back to `dim`."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm residual self-attention, cross-attention and feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, dim_head, context_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """GroupNorm(32), 1x1 projection, transformer blocks over the H*W tokens, 1x1 projection
    (zero-initialised) plus the input. Without a context, cross-attention attends to the tokens."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int = 1, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)]
        )
        self.proj_out = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # [B, H*W, inner]
        for block in self.transformer_blocks:
            tokens = block(tokens, context=context)
        out = tokens.transpose(1, 2).reshape(b, -1, h, w)
        return self.proj_out(out) + x
