"""DA-CLIP conditioning: the contexts the UNet reads, computed from its LQ input.

One code path for test.py, the benchmark and train.py. The UNet takes ``image_context``
(DA-CLIP's image features) and ``text_context`` (its degradation features), both from
``encode_image(clip_preprocess(lq), control=True)``. A network that reads neither
(``use_degra_context`` and ``use_image_context`` false, or ``context_dim`` <= 0) runs without
DA-CLIP. The DA-CLIP tower is frozen: no gradients, eval mode, evaluated under no_grad.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from uir.common.errors import OptionsError

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


def missing_daclip_message(network: nn.Module, setting: dict | None = None) -> str:
    """Why a network that reads contexts cannot run without `path.daclip`, and what to do."""
    s = setting if setting is not None else {}
    shown = ", ".join(f"{k}={s.get(k, getattr(network, k, None))}"
                      for k in ("context_dim", "use_degra_context", "use_image_context"))
    return (f"path.daclip: not set, but the network reads DA-CLIP contexts (network_G.setting: {shown}). "
            f"Point path.daclip at daclip_ViT-B-32.pt (HuggingFace weblzw/daclip-uir-ViT-B-32-irsde), "
            f"or turn both contexts off.")


def load_context_encoder(network: nn.Module, device: torch.device, *, daclip: str | None, config,
                         precision: str = "auto", strict: bool = True,
                         setting: dict | None = None) -> ContextEncoder | None:
    """DA-CLIP from the file `daclip` (option `path.daclip`) when `network` reads contexts, else None.

    `config`: the open_clip model name or config mapping (`daclip_config`); `precision`:
    `daclip_precision` (auto, fp32, bf16, fp16); `setting`: the network_G.setting the error
    message shows. Raises OptionsError when the network needs contexts and `daclip` is None, and
    the checkpoint module's errors for a missing or mismatched DA-CLIP file.
    """
    if not network_uses_contexts(network):
        if daclip is not None:
            logger.info("the network reads no DA-CLIP context: path.daclip is not loaded")
        return None
    if daclip is None:
        raise OptionsError(missing_daclip_message(network, setting))
    from uir.models.daclip import load_daclip

    model = load_daclip(daclip, config=config, strict=strict, device=device)
    model.requires_grad_(False)
    dtype = daclip_autocast_dtype(precision, device)
    logger.info("DA-CLIP loaded from %s (%s)", daclip, "float32" if dtype is None else f"{dtype} autocast")
    return ContextEncoder(model, dtype)
