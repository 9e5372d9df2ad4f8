"""The IR-SDE's settings (the `sde:` block of test.py's and train.py's options), declared once:
`IRSDE.create` validates through it too."""
from __future__ import annotations

from dataclasses import dataclass

from uir.common.checks import choice, integer, number
from uir.common.declared import Block, option

SCHEDULES = ("cosine", "linear", "constant")
# Beyond these the arrays overflow (sigma_inf^2) or stop fitting in memory; the reference uses
# max_sigma 50 (and 10 / 30 for other tasks) with T = 100 or 1000.
MAX_SIGMA = 1e4
MAX_T = 100_000


@dataclass(frozen=True)
class IRSDESettings(Block):
    """`sde:` the IR-SDE itself (defaults: the reference's option files)."""

    section = "sde"

    max_sigma: float = option(50.0, check=number(0, MAX_SIGMA, open_low=True),
                              help="stationary std; >= 1 is on the 8-bit scale and divided by 255")
    T: int = option(100, check=integer(minimum=1, maximum=MAX_T), help="number of steps of the discrete SDE")
    schedule: str = option("cosine", check=choice(SCHEDULES), help="theta_t schedule")
    eps: float = option(0.005, check=number(0, 1, open_low=True, open_high=True), help="alpha_T: where the mean ends")
