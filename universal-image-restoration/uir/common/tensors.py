"""What every reader of weight files checks: a tensor holding NaN or infinity makes every output
NaN, so a file with one is refused, naming it; a file torch.load cannot read is described in
one line (`torch_load_problem`)."""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch

# How files written by torch.save begin: a zip archive (since PyTorch 1.6), or a pickle (older).
TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80")


def torch_load_problem(path: str | os.PathLike, exc: BaseException) -> str:
    """Why `torch.load(path, weights_only=True)` failed with `exc`, in one line that a user can act on
    (torch's own messages span paragraphs, or say `KeyError: 101` for a text file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as read_error:
        return f"cannot be read: {read_error.strerror or read_error}"
    if not head.startswith(TORCH_SAVE_MAGIC):
        return f"is not a file written by torch.save; it begins with {head!r}"
    text = str(exc).strip()
    if "Weights only load failed" in text:
        return ("holds Python objects besides tensors (a pickle payload), which are never loaded "
                "(torch.load weights_only=True); save the state dict alone")
    first = text.splitlines()[0].split(". ")[0] if text else ""  # torch's first sentence
    return f"cannot be read by torch.load: {type(exc).__name__}{': ' + first if first else ''}"


def first_nonfinite(state: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of `state` holding NaN or infinity, or None."""
    return next((name for name, value in state.items()
                 if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())),
                None)
