"""The conditional noise/data-prediction UNet of DA-CLIP universal image restoration.

`model(xt, cond, time, text_context, image_context)`:
- the input is `cat(xt - cond, cond)` (the residual to the condition, and the condition);
- it is reflect-padded at the bottom/right to a multiple of `2 ** len(ch_mult)` and the
  prediction is cropped back to `xt`'s size;
- the sinusoidal time embedding (an MLP on it) modulates every ResBlock; with a degradation
  context, `prompt_mlp(softmax(text_mlp(text_context)) * prompt)` is added to it;
- with an image context, the attention at level 3 and deeper and in the middle is a
  SpatialTransformer that cross-attends to it; elsewhere it is channel linear attention.

Parameter names equal the reference's, so `universal-ir.pth` loads with strict=True.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from uir.models.unet.attention import HEAD_CHANNELS, ChannelLinearAttention, CrossAttention, SpatialTransformer
from uir.models.unet.blocks import (
    ChannelLayerNorm,
    PreNorm,
    ResBlock,
    Residual,
    SinusoidalTimeEmbedding,
    conv_nobias,
    downsample,
    reflect_pad_to_multiple,
    upsample,
)
from uir.common.checks import check_bool, check_int

# Levels with index >= this one use a SpatialTransformer when the image context is on.
FIRST_TRANSFORMER_LEVEL = 3

TimeLike = float | int | torch.Tensor


def _attention(dim: int, image_context_dim: int | None, linear_heads: int, linear_dim_head: int) -> nn.Module:
    """Channel linear attention, or a one-block SpatialTransformer with 32-channel heads."""
    if image_context_dim is None:
        return ChannelLinearAttention(dim, linear_heads, linear_dim_head)
    heads = dim // HEAD_CHANNELS
    return SpatialTransformer(dim, heads, HEAD_CHANNELS, depth=1, context_dim=image_context_dim)


class ConditionalUNet(nn.Module):
    """UNet over `len(ch_mult)` levels with `nf * ch_mult[i]` channels at level i.

    Args:
        in_nc, out_nc: image channels in (for each of xt and cond) and out.
        nf: base channel count; the time embedding has `4 * nf` channels.
        ch_mult: channel multipliers, one per level.
        context_dim: DA-CLIP embedding size; None or <= 0 disables both contexts.
        use_degra_context: add the degradation (text) context to the time embedding.
        use_image_context: cross-attend to the image context at levels >= 3 and in the middle.
        upscale: accepted for option-file compatibility; only 1 is supported.
        linear_attn_heads, linear_attn_dim_head: heads and channels per head of the channel
            linear attention (the reference's 4 x 32, whatever nf is). Smaller values make a
            small network much cheaper at full resolution (the demo network); universal-ir.pth
            needs the defaults.
    """

    @staticmethod
    def check_setting(where: str, *, in_nc, out_nc, nf, ch_mult, context_dim, use_degra_context, use_image_context,
                      upscale, linear_attn_heads, linear_attn_dim_head) -> dict:
        """The constructor's arguments checked (errors name `where`.key) and normalised; the options
        reader calls it too, so a bad `network_G.setting` value fails before anything is built."""
        nf = check_int(f"{where}.nf", nf, minimum=4)
        if nf % 2:
            raise ValueError(f"{where}.nf: must be even (the time embedding has nf sin/cos channels), got {nf}")
        if isinstance(ch_mult, (str, bytes)) or not isinstance(ch_mult, Sequence) or not ch_mult:
            raise ValueError(f"{where}.ch_mult: expected a non-empty list of integers, got {ch_mult!r}")
        if context_dim is not None:
            context_dim = check_int(f"{where}.context_dim", context_dim)
        if check_int(f"{where}.upscale", upscale) != 1:
            raise ValueError(f"{where}.upscale: only 1 is supported (the reference ignores it), got {upscale}")
        return dict(
            in_nc=check_int(f"{where}.in_nc", in_nc, minimum=1), out_nc=check_int(f"{where}.out_nc", out_nc, minimum=1),
            nf=nf, ch_mult=[check_int(f"{where}.ch_mult[{i}]", m, minimum=1) for i, m in enumerate(ch_mult)],
            context_dim=context_dim, use_degra_context=check_bool(f"{where}.use_degra_context", use_degra_context),
            use_image_context=check_bool(f"{where}.use_image_context", use_image_context), upscale=1,
            linear_attn_heads=check_int(f"{where}.linear_attn_heads", linear_attn_heads, minimum=1),
            linear_attn_dim_head=check_int(f"{where}.linear_attn_dim_head", linear_attn_dim_head, minimum=1),
        )

    def __init__(
        self,
        in_nc: int,
        out_nc: int,
        nf: int,
        ch_mult: Sequence[int] = (1, 2, 4, 4),
        context_dim: int | None = 512,
        use_degra_context: bool = True,
        use_image_context: bool = False,
        upscale: int = 1,
        linear_attn_heads: int = 4,
        linear_attn_dim_head: int = HEAD_CHANNELS,
    ):
        super().__init__()
        s = self.check_setting(type(self).__name__, in_nc=in_nc, out_nc=out_nc, nf=nf, ch_mult=ch_mult,
                               context_dim=context_dim, use_degra_context=use_degra_context,
                               use_image_context=use_image_context, upscale=upscale,
                               linear_attn_heads=linear_attn_heads, linear_attn_dim_head=linear_attn_dim_head)
        in_nc, out_nc, nf, ch_mult, context_dim = s["in_nc"], s["out_nc"], s["nf"], s["ch_mult"], s["context_dim"]
        use_degra_context, use_image_context = s["use_degra_context"], s["use_image_context"]
        linear_heads, linear_dim_head = s["linear_attn_heads"], s["linear_attn_dim_head"]

        has_context = context_dim is not None and context_dim > 0
        self.depth = len(ch_mult)
        self.pad_multiple = 2**self.depth
        self.use_degra_context = use_degra_context and has_context
        self.use_image_context = use_image_context and has_context
        time_dim = nf * 4
        image_context_dim = context_dim if self.use_image_context else None

        self.init_conv = conv_nobias(in_nc * 2, nf, 7)
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(nf), nn.Linear(nf, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim)
        )
        if self.use_degra_context:
            self.prompt = nn.Parameter(torch.rand(1, time_dim))
            self.text_mlp = nn.Sequential(
                nn.Linear(context_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
            )
            self.prompt_mlp = nn.Linear(time_dim, time_dim)

        dims = [nf * m for m in [1, *ch_mult]]
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in range(self.depth):
            dim_in, dim_out = dims[i], dims[i + 1]
            context_here = image_context_dim if i >= FIRST_TRANSFORMER_LEVEL else None
            last = i == self.depth - 1
            self.downs.append(
                nn.ModuleList([
                    ResBlock(dim_in, dim_in, time_dim),
                    ResBlock(dim_in, dim_in, time_dim),
                    Residual(PreNorm(dim_in, _attention(dim_in, context_here, linear_heads, linear_dim_head))),
                    conv_nobias(dim_in, dim_out) if last else downsample(dim_in, dim_out),
                ])
            )
            self.ups.insert(
                0,
                nn.ModuleList([
                    ResBlock(dim_out + dim_in, dim_out, time_dim),
                    ResBlock(dim_out + dim_in, dim_out, time_dim),
                    Residual(PreNorm(dim_out, _attention(dim_out, context_here, linear_heads, linear_dim_head))),
                    conv_nobias(dim_out, dim_in) if i == 0 else upsample(dim_out, dim_in),
                ]),
            )

        mid_dim = dims[-1]
        self.mid_block1 = ResBlock(mid_dim, mid_dim, time_dim)
        mid_attention = _attention(mid_dim, image_context_dim, linear_heads, linear_dim_head)
        self.mid_attn = Residual(PreNorm(mid_dim, mid_attention))
        self.mid_block2 = ResBlock(mid_dim, mid_dim, time_dim)
        self.final_res_block = ResBlock(nf * 2, nf, time_dim)
        self.final_conv = nn.Conv2d(nf, out_nc, 3, 1, 1)

    def embed(self, time: TimeLike, batch: int, text_context: torch.Tensor | None) -> torch.Tensor:
        """The embedding that modulates every ResBlock: `[1 or B, 4 nf]`.

        `time` is a number, a 0-d tensor, or one value per sample (`[B]`).
        """
        param_dtype = self.init_conv.weight.dtype
        t = torch.as_tensor(time, dtype=torch.float32, device=self.init_conv.weight.device).reshape(-1)
        if t.shape[0] not in (1, batch):
            raise ValueError(f"time: expected a number or {batch} values (one per sample), got shape {tuple(t.shape)}")
        emb = self.time_mlp[0](t).to(param_dtype)
        for layer in self.time_mlp[1:]:
            emb = layer(emb)
        if self.use_degra_context and text_context is not None:
            weights = torch.softmax(self.text_mlp(text_context.to(param_dtype)), dim=1)
            emb = emb + self.prompt_mlp(weights * self.prompt)
        return emb

    def precision_groups(self) -> dict[str, list[nn.Module]]:
        """Its layers by kind, for the precision policies of `uir.precision`: the time (and
        degradation) embedding with every ResBlock's projection of it, the attention layers
        (softmax and scale), the norms, the first and the last convolution."""
        modules = list(self.modules())
        embedding = [*list(self.time_mlp)[1:], *(getattr(self, n) for n in ("text_mlp", "prompt_mlp") if hasattr(self, n))]
        return {
            "time_embedding": embedding + [m.mlp for m in modules if isinstance(m, ResBlock)],
            "attention": [m for m in modules if isinstance(m, (ChannelLinearAttention, CrossAttention))],
            "norm": [m for m in modules if isinstance(m, (ChannelLayerNorm, nn.GroupNorm, nn.LayerNorm))],
            "first_conv": [self.init_conv],
            "last_conv": [self.final_conv],
        }

    def forward(
        self,
        xt: torch.Tensor,
        cond: torch.Tensor,
        time: TimeLike,
        text_context: torch.Tensor | None = None,
        image_context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict from the state `xt` `[B, in_nc, H, W]` at `time`, given the degraded image
        `cond`; contexts are `[B, context_dim]`. Returns `[B, out_nc, H, W]`."""
        height, width = xt.shape[-2:]
        emb = self.embed(time, xt.shape[0], text_context)
        context = None
        if self.use_image_context and image_context is not None:
            context = image_context.to(self.init_conv.weight.dtype)
            if context.ndim == 2:
                context = context.unsqueeze(1)  # one token per sample

        x = torch.cat([xt - cond, cond], dim=1)
        x = self.init_conv(reflect_pad_to_multiple(x, self.pad_multiple))
        x_init = x

        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, emb)
            skips.append(x)
            x = attn(block2(x, emb), context=context)
            skips.append(x)
            x = down(x)

        x = self.mid_block1(x, emb)
        x = self.mid_attn(x, context=context)
        x = self.mid_block2(x, emb)

        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat([x, skips.pop()], dim=1), emb)
            x = block2(torch.cat([x, skips.pop()], dim=1), emb)
            x = up(attn(x, context=context))

        x = self.final_res_block(torch.cat([x, x_init], dim=1), emb)
        x = self.final_conv(x)
        out = x[..., :height, :width]
        layout = torch.channels_last if _is_channels_last(xt) else torch.contiguous_format
        return out.contiguous(memory_format=layout)


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
