"""The ConditionalUNet of DA-CLIP universal image restoration (state-dict compatible with
the reference `universal-ir.pth`)."""
from uir.models.unet.conditional_unet import ConditionalUNet

__all__ = ["ConditionalUNet"]
