"""test.py's DA-CLIP conditioning: `uir.models.conditioning` (the one code path for the
contexts, shared with training) read with the evaluation options."""
from __future__ import annotations

import torch
from torch import nn

from uir.models.conditioning import ContextEncoder, load_context_encoder as _load
from uir.options.restorer import RestorerOptions


def load_context_encoder(options: RestorerOptions, network: nn.Module, device: torch.device) -> ContextEncoder | None:
    """DA-CLIP from `path.daclip` when `network` reads contexts, else None (see
    `uir.models.conditioning.load_context_encoder`)."""
    return _load(network, device, daclip=options.path.daclip, config=options.daclip_config,
                 precision=options.daclip_precision, strict=options.path.strict_load,
                 setting=options.network_G.setting)
