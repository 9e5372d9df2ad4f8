"""Networks: the ConditionalUNet of universal-ir.pth, DA-CLIP on open_clip_torch, and the one
module that reads checkpoints for both."""
from uir.models.checkpoint import (
    DACLIP_WEIGHTS_HINT,
    UNET_WEIGHTS_HINT,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    load_into,
    load_state_dict_file,
)
from uir.models.networks import build_network, describe_network, load_network
from uir.models.unet import ConditionalUNet

__all__ = [
    "DACLIP_WEIGHTS_HINT", "UNET_WEIGHTS_HINT", "CheckpointError", "CheckpointMismatchError",
    "CheckpointNotFoundError", "load_into", "load_state_dict_file", "build_network", "describe_network",
    "load_network", "ConditionalUNet",
]
