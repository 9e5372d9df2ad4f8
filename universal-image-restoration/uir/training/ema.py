"""Exponential moving average of a network's weights: what training saves as the model.

The decay warms up as in ema_pytorch (which the reference uses): updates happen every
`update_every` steps; up to `update_after_step` the average is a plain copy of the weights;
after that decay = min(beta, 1 - (1 + k / inv_gamma) ** -power), k the steps past the warm-up.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from uir.training.options import EMASettings


def ema_decay(step: int, settings: EMASettings) -> float:
    """The decay used by the update at `step` (1-based count of update() calls)."""
    k = step - settings.update_after_step - 1
    if k <= 0:
        return 0.0
    return min(settings.beta, 1.0 - (1.0 + k / settings.inv_gamma) ** -settings.power)


class EMA:
    """`EMA(model, settings)`; call `update(model)` after every optimizer step; `model` holds the average."""

    def __init__(self, model: nn.Module, settings: EMASettings):
        self.settings = settings
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.step = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.step += 1
        if (self.step - 1) % self.settings.update_every:
            return
        decay = ema_decay(self.step, self.settings)
        averaged = self.model.state_dict()
        for name, value in model.state_dict().items():
            target = averaged[name]
            if decay == 0.0 or not target.is_floating_point():
                target.copy_(value)
            else:
                target.lerp_(value.to(target.dtype), 1.0 - decay)

    def restart(self, model: nn.Module) -> None:
        """Start again from `model`'s weights (no update counted yet)."""
        self.model.load_state_dict(model.state_dict(), strict=True)
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"], strict=True)
