"""DA-CLIP conditioning: the contexts the UNet reads, computed once per image from its LQ.

The UNet takes ``image_context`` (DA-CLIP's image features) and ``text_context`` (its
degradation features). A network that reads neither (``use_degra_context`` and
``use_image_context`` false, or ``context_dim`` <= 0) runs without DA-CLIP.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from uir.common.errors import OptionsError
from uir.options.restorer import RestorerOptions

logger = logging.getLogger(__name__)

DACLIP_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def network_uses_contexts(network: nn.Module) -> bool:
    """Whether the built network reads DA-CLIP contexts (its `use_degra_context` / `use_image_context`)."""
    return bool(getattr(network, "use_degra_context", False) or getattr(network, "use_image_context", False))


def daclip_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """`daclip_precision`: `auto` is the reference's choice (fp16 autocast on CUDA, float32 on CPU)."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    return DACLIP_AUTOCAST[precision]


@dataclass
class ContextEncoder:
    """``encoder(lq01 [B,3,H,W]) -> (image_context, degra_context)``, float32 ``[B, D]`` each."""

    daclip: nn.Module
    autocast_dtype: torch.dtype | None

    def __call__(self, lq01: Tensor) -> tuple[Tensor, Tensor]:
        return self.daclip.contexts(lq01, autocast_dtype=self.autocast_dtype)


def load_context_encoder(options: RestorerOptions, network: nn.Module, device: torch.device) -> ContextEncoder | None:
    """DA-CLIP from `path.daclip` when `network` reads contexts, else None.

    Raises OptionsError when the network needs contexts and `path.daclip` is not set, and the
    checkpoint module's errors for a missing or mismatched DA-CLIP file.
    """
    if not network_uses_contexts(network):
        if options.path.daclip is not None:
            logger.info("the network reads no DA-CLIP context: path.daclip is not loaded")
        return None
    if options.path.daclip is None:
        s = options.network_G.setting
        raise OptionsError(
            f"path.daclip: not set, but the network reads DA-CLIP contexts (network_G.setting: "
            f"context_dim={s.get('context_dim')}, use_degra_context={s.get('use_degra_context')}, "
            f"use_image_context={s.get('use_image_context')}). Point path.daclip at daclip_ViT-B-32.pt "
            f"(HuggingFace weblzw/daclip-uir-ViT-B-32-irsde), or turn both contexts off."
        )
    from uir.models.daclip import load_daclip

    daclip = load_daclip(options.path.daclip, config=options.daclip_config, strict=options.path.strict_load, device=device)
    daclip.requires_grad_(False)
    dtype = daclip_autocast_dtype(options.daclip_precision, device)
    logger.info("DA-CLIP loaded from %s (%s)", options.path.daclip, "float32" if dtype is None else f"{dtype} autocast")
    return ContextEncoder(daclip, dtype)
