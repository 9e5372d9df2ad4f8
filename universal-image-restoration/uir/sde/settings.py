"""The IR-SDE's settings (the `sde:` block of test.py's and train.py's options), declared once:
`IRSDE.create` validates through it too."""
from __future__ import annotations

from dataclasses import dataclass

from uir.common.checks import choice, integer, number
from uir.common.declared import Block, option

SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class IRSDESettings(Block):
    """`sde:` the IR-SDE itself (defaults: the reference's option files)."""

    section = "sde"

    max_sigma: float = option(50.0, check=number(0, open_low=True),
                              help="stationary std; >= 1 is on the 8-bit scale and divided by 255")
    T: int = option(100, check=integer(minimum=1), help="number of steps of the discrete SDE")
    schedule: str = option("cosine", check=choice(SCHEDULES), help="theta_t schedule")
    eps: float = option(0.005, check=number(0, 1, open_low=True, open_high=True), help="alpha_T: where the mean ends")
