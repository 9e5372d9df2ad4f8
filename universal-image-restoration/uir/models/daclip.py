"""DA-CLIP: a CLIP whose image tower is steered by a degradation-aware controller.

The base CLIP comes from the ``open_clip_torch`` package (``open_clip.CLIP``). Around it sits
the controller of Luo et al., "Controlling Vision-Language Models for Multi-Task Image
Restoration" (ICLR 2024), built exactly like the reference ``daclip_model.py``:

- ``visual_control`` is a deep copy of the image tower whose transformer is wrapped by
  :class:`ControlledTransformer`: after every residual block a zero-initialised
  ``Linear(width, width)`` maps the block output to a *control signal*.
- With ``control=True`` the controller runs first; its pooled output is the degradation
  embedding, and its control signals are added to the main tower's block outputs in
  **reverse order** (block ``i`` of the main tower receives the signal of controller block
  ``L - 1 - i``; the reference pops them from the end of a list).

State-dict layout (same keys as the reference checkpoints): ``logit_scale``, ``clip.*``,
``visual.*`` (the same image tower registered a second time; shared tensors),
``visual_control.*`` with ``visual_control.transformer.transformer.resblocks.N`` and
``visual_control.transformer.zero_modules.N``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uir.models.checkpoint import DACLIP_WEIGHTS_HINT, load_into, load_state_dict_file
from uir.models.clip_preprocess import clip_preprocess

__all__ = [
    "DaCLIP",
    "ControlledTransformer",
    "resolve_daclip_config",
    "build_daclip",
    "load_daclip",
]

DACLIP_OPTION = "path.daclip"
_DACLIP_PREFIX = "daclip_"
# Keys of an open_clip model config that build a plain CLIP (open_clip.CLIP's keyword arguments).
_CLIP_KWARGS = frozenset(
    {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias",
     "nonscalar_logit_scale", "output_dict"}
)
# Marks a "custom text tower" in open_clip configs; the reference builds a plain CLIP regardless.
_IGNORED_KEYS = frozenset({"custom_text"})


def _zero_linear(width: int) -> nn.Linear:
    layer = nn.Linear(width, width)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _run_block(block: nn.Module, x: Tensor, batch_first: bool) -> Tensor:
    """One open_clip residual block on batch-first tokens ``[B, L, D]``."""
    if batch_first:
        return block(x)
    return block(x.transpose(0, 1)).transpose(0, 1)


class ControlledTransformer(nn.Module):
    """An open_clip ``Transformer`` with one zero-initialised ``Linear`` after every block.

    ``forward`` returns the final tokens and the per-block control signals
    ``[zero_modules[i](h_i) for i in blocks]``, where ``h_i`` is block ``i``'s output.
    """

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        self.zero_modules = nn.ModuleList(
            _zero_linear(transformer.width) for _ in range(len(transformer.resblocks))
        )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch_first = getattr(self.transformer, "batch_first", False)
        controls = []
        for block, zero in zip(self.transformer.resblocks, self.zero_modules):
            x = _run_block(block, x, batch_first)
            controls.append(zero(x))
        return x, controls


def _embed_image(tower: nn.Module, image: Tensor) -> Tensor:
    """Patch tokens of an open_clip ``VisionTransformer``: ``[B, 1 + grid**2, width]``."""
    x = tower.conv1(image.to(tower.conv1.weight.dtype))
    x = x.flatten(2).transpose(1, 2)
    cls = tower.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + tower.positional_embedding.to(x.dtype)
    return tower.ln_pre(tower.patch_dropout(x))


def _project_class_token(tower: nn.Module, x: Tensor) -> Tensor:
    """Class-token pooling, ``ln_post`` and projection: ``[B, embed_dim]``."""
    return tower.ln_post(x[:, 0]) @ tower.proj


def _run_main_tower(tower: nn.Module, image: Tensor, controls: list[Tensor] | None) -> Tensor:
    """The plain image tower; with ``controls``, block ``i`` gets ``controls[L - 1 - i]`` added."""
    transformer = tower.transformer
    blocks = transformer.resblocks
    if controls is not None and len(controls) != len(blocks):
        raise ValueError(f"got {len(controls)} control signals for {len(blocks)} transformer blocks")
    batch_first = getattr(transformer, "batch_first", False)
    x = _embed_image(tower, image)
    for i, block in enumerate(blocks):
        x = _run_block(block, x, batch_first)
        if controls is not None:
            x = x + controls[len(blocks) - 1 - i]
    return _project_class_token(tower, x)


class DaCLIP(nn.Module):
    """DA-CLIP around an ``open_clip.CLIP`` with a ViT image tower (class-token pooling).

    ``encode_image(image, control=True)`` returns ``(image_features, degra_features)``; the
    universal-IR UNet takes them as ``image_context`` and ``text_context`` respectively.
    Features are not normalised unless ``normalize=True`` (the reference's default).
    """

    def __init__(self, clip: open_clip.CLIP):
        super().__init__()
        _check_vision_tower(clip.visual)
        self.clip = clip
        self.visual = clip.visual
        self.visual_control = copy.deepcopy(clip.visual)
        self.visual_control.transformer = ControlledTransformer(self.visual_control.transformer)
        self.logit_scale = nn.Parameter(clip.logit_scale.detach().clone())

    @property
    def image_size(self) -> int:
        """Side of the square image the image tower expects (224 for ViT-B-32)."""
        return int(self.visual.image_size[0])

    def encode_degradation(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Controller pass: degradation features ``[B, embed_dim]`` and per-block controls."""
        tower = self.visual_control
        x, controls = tower.transformer(_embed_image(tower, image))
        return _project_class_token(tower, x), controls

    def encode_image_controlled(self, image: Tensor, controls: list[Tensor]) -> Tensor:
        """Main image tower with control signals added: block ``i`` gets ``controls[L - 1 - i]``."""
        return _run_main_tower(self.visual, image, controls)

    def encode_image(
        self, image: Tensor, control: bool = False, normalize: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Image features; with ``control=True`` the pair ``(image_features, degra_features)``.

        ``image``: CLIP-normalised ``[B, 3, S, S]`` (see :func:`clip_preprocess`).
        """
        if not control:
            features = _run_main_tower(self.visual, image, None)
            return F.normalize(features, dim=-1) if normalize else features
        degra_features, controls = self.encode_degradation(image)
        image_features = self.encode_image_controlled(image, controls)
        if normalize:
            return F.normalize(image_features, dim=-1), F.normalize(degra_features, dim=-1)
        return image_features, degra_features

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
        """Text features of open_clip tokens ``[B, context_length]`` (the base CLIP's)."""
        return self.clip.encode_text(tokens, normalize=normalize)

    @torch.no_grad()
    def contexts(
        self, images_01: Tensor, *, autocast_dtype: torch.dtype | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(image_context, degra_context)`` in float32 for RGB images in ``[0, 1]``, ``[B, 3, H, W]``.

        Moves the images to the model's device, preprocesses them with :func:`clip_preprocess`
        and runs ``encode_image(control=True)``.
        ``autocast_dtype`` (e.g. ``torch.float16``) runs the encoder under autocast on the
        images' device, as the reference test script does on CUDA; ``None`` leaves the
        caller's autocast state alone.
        """
        pixels = clip_preprocess(images_01.to(self.logit_scale.device), size=self.image_size)
        if autocast_dtype is None:
            image_context, degra_context = self.encode_image(pixels, control=True)
        else:
            with torch.autocast(device_type=pixels.device.type, dtype=autocast_dtype):
                image_context, degra_context = self.encode_image(pixels, control=True)
        return image_context.float(), degra_context.float()


def _check_vision_tower(visual: nn.Module) -> None:
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj")
    if not all(hasattr(visual, name) for name in needed):
        raise ValueError(
            f"DA-CLIP needs an open_clip VisionTransformer image tower; got {type(visual).__name__}"
        )
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise ValueError(
            "DA-CLIP supports class-token pooling only (vision_cfg pool_type 'tok', no attentional_pool)"
        )
    if visual.proj is None:
        raise ValueError("DA-CLIP needs the image tower's output projection (visual.proj)")


def resolve_daclip_config(config: str | Mapping[str, Any]) -> dict[str, Any]:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...) to build.

    ``config`` is an open_clip model name (``"ViT-B-32"``; the reference's ``"daclip_ViT-B-32"``
    means the same) or a config mapping like the JSON files in ``open_clip/model_configs``.
    """
    if isinstance(config, str):
        name = config[len(_DACLIP_PREFIX):] if config.startswith(_DACLIP_PREFIX) else config
        resolved = open_clip.get_model_config(name)
        if resolved is None:
            raise ValueError(
                f"unknown DA-CLIP model config {config!r}: use an open_clip model name such as "
                f"'ViT-B-32' (see open_clip.list_models()) or a config mapping"
            )
    elif isinstance(config, Mapping):
        resolved = copy.deepcopy(dict(config))
    else:
        raise TypeError(f"DA-CLIP config must be a model name or a mapping, got {type(config).__name__}")
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in resolved]
    if missing:
        raise ValueError(f"DA-CLIP config lacks {missing}: it needs embed_dim, vision_cfg and text_cfg")
    unknown = sorted(set(resolved) - _CLIP_KWARGS - _IGNORED_KEYS)
    if unknown:
        raise ValueError(f"DA-CLIP config has unsupported keys {unknown}; valid keys: {sorted(_CLIP_KWARGS)}")
    return {key: value for key, value in resolved.items() if key in _CLIP_KWARGS}


def build_daclip(config: str | Mapping[str, Any] = "ViT-B-32") -> DaCLIP:
    """A randomly initialised DA-CLIP (controller projections zero) for ``config``."""
    clip = open_clip.CLIP(**resolve_daclip_config(config))
    return DaCLIP(clip)


def _describe(config: str | Mapping[str, Any]) -> str:
    if isinstance(config, str):
        return f"DA-CLIP {config}"
    return f"DA-CLIP with model config {dict(config)}"


def load_daclip(
    path: str | Path,
    *,
    config: str | Mapping[str, Any] = "ViT-B-32",
    strict: bool = True,
    device: torch.device | str | None = None,
) -> DaCLIP:
    """DA-CLIP weights from ``path`` (option ``path.daclip``), in eval mode, on ``device``.

    Raises ``CheckpointNotFoundError`` for a missing file and ``CheckpointMismatchError``
    (naming the expected configuration) when the keys or shapes do not fit.
    """
    state_dict = load_state_dict_file(path, option=DACLIP_OPTION, weights_hint=DACLIP_WEIGHTS_HINT)
    model = build_daclip(config)
    load_into(model, state_dict, strict=strict, expected=_describe(config), source=path)
    if device is not None:
        model = model.to(device)
    return model.eval()
