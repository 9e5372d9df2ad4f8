"""The reference's `sde` and `posterior` share a loop: one step per point of int(linspace(1, T, N)),
from T down, each from a noise prediction at that point."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from uir.samplers.base import BaseSampler, ModelFn, Step
from uir.samplers.grids import euler_time_grid
from uir.samplers.noise import NoiseSource


class IntegerGridSampler(BaseSampler):
    """A first-order step of the reverse SDE at each integer time of the grid (`step`)."""

    @property
    def stochastic(self) -> bool:
        return True

    @property
    def integer_steps(self) -> bool:
        return True

    def settings(self) -> dict[str, Any]:
        return {"solver": "sde", "order": 1, "parameterization": "noise", "fit_target": self.fit_target,
                "schedule": "uniform"}

    def step(self, x: Tensor, eps: Tensor, mu: Tensor, t: int, noise: NoiseSource) -> Tensor:
        """x_{t-1} from x_t and the noise prediction eps at t."""
        raise NotImplementedError

    def timesteps(self) -> list[float]:
        return [float(t) for t in euler_time_grid(self.sde.T, self.config.num_sample_steps)]

    def steps(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None) -> Iterator[Step]:
        x = x_T
        for i, t in enumerate(euler_time_grid(self.sde.T, self.config.num_sample_steps), start=1):
            x = self.step(x, model_fn(x, float(t)), mu, t, noise)
            yield Step(i, float(t) - 1, x)
