"""What every reader of weight files checks: a tensor holding NaN or infinity makes every output
NaN, so a file with one is refused, naming it."""
from __future__ import annotations

from collections.abc import Mapping

import torch


def first_nonfinite(state: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of `state` holding NaN or infinity, or None."""
    return next((name for name, value in state.items()
                 if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())),
                None)
