"""Convolutional building blocks of the ConditionalUNet.

Module and attribute names follow the reference network so that its state dicts load
unchanged (`mlp.1`, `block1.proj`, `res_conv`, `fn.norm.g`, ...).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_nobias(dim_in: int, dim_out: int, kernel_size: int = 3) -> nn.Conv2d:
    """`kernel_size` convolution with 'same' padding and no bias (the reference `default_conv`)."""
    return nn.Conv2d(dim_in, dim_out, kernel_size, padding=kernel_size // 2, bias=False)


def downsample(dim_in: int, dim_out: int) -> nn.Conv2d:
    """Halve the resolution: 4x4 convolution, stride 2."""
    return nn.Conv2d(dim_in, dim_out, 4, 2, 1)


def upsample(dim_in: int, dim_out: int) -> nn.Sequential:
    """Double the resolution: nearest-neighbour upsampling then a 3x3 convolution."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim_in, dim_out, 3, 1, 1))


class SinusoidalTimeEmbedding(nn.Module):
    """`[B] -> [B, dim]`: (sin(t w_k), cos(t w_k)) with w_k = 10000^(-k / (dim/2 - 1)), in float32."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4:
            raise ValueError(f"time embedding needs at least 4 channels, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -step)
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of `[B, C, H, W]`, scale only (parameter `g`).

    As in the reference, eps is 1e-5 for float32 inputs and 1e-3 otherwise. The statistics
    are computed in at least float32; the result has the dtype `x * g` would have.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        xc = x.to(torch.promote_types(x.dtype, torch.float32))
        var, mean = torch.var_mean(xc, dim=1, correction=0, keepdim=True)
        y = (xc - mean) * torch.rsqrt(var + eps) * self.g
        return y.to(torch.promote_types(x.dtype, self.g.dtype))


class PreNorm(nn.Module):
    """`fn(ChannelLayerNorm(x), context)`."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(self.norm(x), context=context)


class Residual(nn.Module):
    """`fn(x, context) + x`."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(x, context=context) + x


class ConvBlock(nn.Module):
    """3x3 convolution (no bias), optional FiLM `x (1 + scale) + shift`, then SiLU."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = conv_nobias(dim_in, dim_out)
        self.act = nn.SiLU()

    def forward(
        self, x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.proj(x)
        if scale is not None and shift is not None:
            x = x * (scale + 1) + shift
        return self.act(x)


class ResBlock(nn.Module):
    """Two ConvBlocks; the first is modulated by the (time + prompt) embedding.

    `mlp` maps the embedding `[B, time_dim]` to a per-channel (scale, shift); the skip path
    is a 1x1 convolution when the channel count changes.
    """

    def __init__(self, dim_in: int, dim_out: int, time_emb_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
        self.block1 = ConvBlock(dim_in, dim_out)
        self.block2 = ConvBlock(dim_out, dim_out)
        self.res_conv = conv_nobias(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mlp(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.block1(x, scale, shift)
        h = self.block2(h)
        return h + self.res_conv(x)


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of `[..., H, W]` by reflection up to multiples of `multiple`.

    One reflection (the reference's `F.pad(..., 'reflect')`) when the padding is smaller than
    the size; inputs too small for that are reflected repeatedly (a size of 1 is replicated),
    where the reference would raise.
    """
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    while pad_h or pad_w:
        step_h = min(pad_h, x.shape[-2] - 1)
        step_w = min(pad_w, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h -= step_h
        pad_w -= step_w
    return x
