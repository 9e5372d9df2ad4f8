"""The problems of scripts/sampler_study.py (its docstring defines them): exact oracles and the demo
network, each with its held-out draws, their converged ODE solution and, on the mixtures, more draws."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from uir.data.paired import read_image_uint8
from uir.metrics.reference import image_metrics, to_uint8
from uir.models.networks import load_network
from uir.options import load_options
from uir.runtime import NetworkCall
from uir.samplers import MRSampler, PerSampleNoise
from uir.samplers.reference import solve_probability_flow
from uir.samplers.search_target import converged_ode
from uir.sde import IRSDE
from uir.sde.mixture_oracle import MixtureOracle
from uir.sde.oracle import GaussianOracle
from uir.sde.predictions import FIT_TARGETS

from oracle_table import make_problem

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Problem:
    name: str
    models: dict[str, Callable]  # fit_target -> the network (or oracle) trained on it
    mu: Tensor
    x_T: Tensor
    exact: Tensor  # the ODE solution at t = 0, clipped
    nfes: tuple[int, ...]
    note: str
    gt: Tensor | None = None
    calibration: tuple[Tensor, Tensor] | None = None  # (x_T, mu) of other draws, for the search
    draw: Callable[[torch.Generator, int], tuple[Tensor, Tensor]] | None = None  # more (x_T, mu), on a mixture


def rmse(a: Tensor, b: Tensor) -> float:
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


def converged(solve: Callable[[int], Tensor], sde: IRSDE, substeps: int) -> tuple[Tensor, str]:
    """The reference ODE solution (`solve(substeps per unit of t)`, clipped to [0, 1]) and a note on
    its convergence (the change from half the steps)."""
    x, half = solve(substeps).clamp(0, 1), solve(max(1, substeps // 2)).clamp(0, 1)
    note = f"{sde.T * substeps} steps; {sde.T * max(1, substeps // 2)} steps differ by RMSE {rmse(x, half):.1e}"
    return x, note


def gaussian(sde: IRSDE, size: int, S: float = 0.1, seed: int = 0, name: str = "gaussian") -> Problem:
    m, S, mu, x_T = make_problem(sde, seed=seed, size=size, S=S)
    models = {t: GaussianOracle(sde, m, S, t) for t in FIT_TARGETS}
    exact = models["noise"].ode_solution(x_T, mu, float(sde.T), 0.0).clamp(0, 1)
    g = torch.Generator().manual_seed(seed + 1000)
    cal_mu = torch.rand(mu.shape, generator=g)
    cal = (cal_mu + sde.sigma_inf * torch.randn(mu.shape, generator=g), cal_mu)
    return Problem(name, models, mu, x_T, exact, (5, 10, 20, 50), "closed form", calibration=cal)


def photos(folder: Path, per_task: int) -> list[Path]:
    """The first `per_task` LQ images of every task folder, sorted."""
    return [p for task in sorted(folder.iterdir()) for p in sorted((task / "LQ").glob("*.png"))[:per_task]]


def as_tensor(paths: list[Path]) -> Tensor:
    return torch.stack([torch.from_numpy(read_image_uint8(p)).permute(2, 0, 1).float() / 255 for p in paths])


def mixture(sde: IRSDE, K: int, size: int, batch: int, substeps: int, s: float = 0.02, seed: int = 0,
            name: str = "mixture", calibration_batch: int = 16) -> Problem:
    gts = [p.parent.parent / "GT" / p.name for p in photos(REPO / "demo" / "test", 3)]
    first = seed % len(gts)
    picked = (gts[first:] + gts[:first])[:: max(1, len(gts) // K)][:K]
    templates = F.interpolate(as_tensor(picked), size=(size, size), mode="area")

    def draw(g: torch.Generator, batch: int) -> tuple[Tensor, Tensor]:
        blurred = F.avg_pool2d(templates[torch.randint(0, K, (batch,), generator=g)], 5, 1, 2, count_include_pad=False)
        mu = (0.7 * blurred + 0.05 * torch.randn(blurred.shape, generator=g)).clamp(0, 1)
        return sde.prior_sample(mu, torch.randn(mu.shape, generator=g)), mu

    x_T, mu = draw(torch.Generator().manual_seed(seed), batch)
    models = {t: MixtureOracle(sde, templates, s, t) for t in FIT_TARGETS}
    x0_fn = lambda x, t, a, s: models["data"].predictions(x, mu.double(), a, s)[1]  # noqa: E731
    exact, note = converged(lambda n: solve_probability_flow(x0_fn, x_T, mu, sde, substeps=n), sde, substeps)
    cal = draw(torch.Generator().manual_seed(seed + 1000), calibration_batch)
    return Problem(name, models, mu, x_T, exact, (5, 10, 20, 50), note, calibration=cal, draw=draw)


def demo(sde: IRSDE, per_task: int, substeps: int, max_images: int | None, crop: int | None = None) -> Problem:
    options = load_options(REPO / "options" / "demo.yml").restorer
    net = options.network_G
    network = load_network(net.which_model_G, net.setting, REPO / options.path.pretrain_model_G).eval().requires_grad_(False)
    call = NetworkCall(network, torch.device("cpu"))
    lqs = photos(REPO / "demo" / "test", per_task)[:max_images]
    mu, gt = as_tensor(lqs), as_tensor([p.parent.parent / "GT" / p.name for p in lqs])
    mu, gt = mu[..., :crop, :crop], gt[..., :crop, :crop]
    x_T = sde.prior_sample(mu, PerSampleNoise.from_seeds(range(len(lqs)))(mu))
    velocity = MRSampler.options_from({"fit_target": "velocity"})  # the reference is the search's own target
    exact, note = converged(lambda n: converged_ode(sde, call, x_T, mu, velocity, n, {}), sde, substeps)
    return Problem("demo", {"velocity": call}, mu, x_T, exact, (5, 10, 20), note, gt)


def quality(x: Tensor, gt: Tensor) -> tuple[float, float]:
    """Mean PSNR and SSIM over the images (8-bit, crop 4, as test.py)."""
    scores = [image_metrics(to_uint8(a), to_uint8(b), 4) for a, b in zip(x, gt)]
    return sum(s["psnr"] for s in scores) / len(scores), sum(s["ssim"] for s in scores) / len(scores)
