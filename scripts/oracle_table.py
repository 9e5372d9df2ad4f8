"""Error of every sampler against the exact solution, on the exact Gaussian oracle.

    python scripts/oracle_table.py                 # the full table (about a minute on 2 CPU cores)
    python scripts/oracle_table.py --nfe 5 10 --no-search

Every run starts from the reference's prior sample x_T = mu + sigma_inf z and is measured at
t = 0 (what the user receives), even when a sampler's grid stops earlier. One number per cell,
in pixel units ([0, 1] images), both an RMSE against the exact answer:
- `path` (deterministic samplers): RMSE between the output and the closed-form probability-flow
  ODE solution from the same x_T.
- `law` (stochastic samplers): the 2-Wasserstein distance between the output's law and the exact
  law at t = 0 (the ODE map's push-forward of the prior), per pixel, from its mean and std over
  the image; the sampling noise of this estimate is about 6e-4.
The last rows search every MR Sampler option combination for the best configuration per NFE.
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import torch
import yaml

from uir.samplers import build_sampler
from uir.sde import IRSDE
from uir.sde.oracle import GaussianOracle
from uir.common.cli import run_script

REPO = Path(__file__).resolve().parents[1]
NFES = (5, 10, 20, 50, 100)


def make_problem(sde: IRSDE, seed: int = 0, size: int = 64, S: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    shape = (1, 3, size, size)
    m = 0.45 + 0.1 * torch.rand(shape, generator=g)  # keeps outputs clear of the [0, 1] clip
    mu = torch.rand(shape, generator=g)
    z = torch.randn(shape, generator=g)
    return m, S, mu, mu + sde.sigma_inf * z


def error_at_zero(sde: IRSDE, name: str, cfg: dict, problem, seed: int = 1) -> tuple[str, float]:
    m, S, mu, x_T = problem
    sampler = build_sampler(name, sde, cfg)
    oracle = GaussianOracle(sde, m, S, sampler.fit_target)
    x = sampler.sample(oracle, x_T.clone(), mu, noise=torch.Generator().manual_seed(seed)).x.double()
    if not sampler.stochastic:
        exact = oracle.ode_solution(x_T, mu, float(sde.T), 0.0)
        return "path", (x - exact).pow(2).mean().sqrt().item()
    # Exact law at t = 0: the ODE map is affine, so N(mu, sigma_inf^2) maps to a Gaussian.
    mean_T, std_T = oracle.mean_std(mu, float(sde.T))
    mean_0, std_0 = oracle.mean_std(mu, 0.0)
    exact_mean = mean_0 + std_0 / std_T * (mu.double() - mean_T)
    exact_std = std_0 / std_T * sde.sigma_inf
    z = (x - exact_mean) / exact_std
    bias, spread = z.mean().item(), z.std().item()
    return "law", exact_std * math.sqrt(bias**2 + (spread - 1) ** 2)


def baseline_rows() -> list[tuple[str, str, dict]]:
    mr = lambda **kw: dict({"fit_target": "noise"}, **kw)  # noqa: E731
    return [
        ("posterior", "posterior", {}),
        ("Euler-Maruyama (sde)", "sde", {}),
        ("Heun ODE", "heun", {"solver_type": "ode"}),
        ("Heun ODE, corrected score+step", "heun", {"solver_type": "ode", "corrected_score": True, "corrected_step_size": True}),
        ("Heun SDE", "heun", {"solver_type": "sde"}),
        ("Heun SDE, corrected score+step", "heun", {"solver_type": "sde", "corrected_score": True, "corrected_step_size": True}),
        ("MRS ODE-1 data", "mrsampler", mr(order=1)),
        ("MRS ODE-2 data", "mrsampler", mr(order=2)),
        ("MRS ODE-3 data", "mrsampler", mr(order=3)),
        ("MRS ODE-2 noise", "mrsampler", mr(order=2, parameterization="noise")),
        ("MRS ODE-2 data linear-lambda", "mrsampler", mr(order=2, time_schedule="linear-lambda")),
        ("MRS SDE-1 data", "mrsampler", mr(solver_type="sde", order=1)),
        ("MRS SDE-2 data", "mrsampler", mr(solver_type="sde", order=2)),
        ("MRS SDE-2 noise", "mrsampler", mr(solver_type="sde", order=2, parameterization="noise")),
    ]


def shipped_config(path: Path) -> dict:
    with open(path) as f:
        block = dict(yaml.safe_load(f)["sampler"])
    block.pop("num_sample_steps", None)
    return block


def search_space():
    for solver, order, param, schedule, target, lambda_min, last in itertools.product(
        ("ode", "sde"), (1, 2, 3), ("data", "noise"), ("linspace", "leading", "trailing", "karras-n", "karras-t", "linear-lambda"),
        ("noise", "data", "velocity"), (float("-inf"), -5.0), (False, True),
    ):
        if solver == "sde" and order == 3:
            continue
        for thresholding in ((False, True) if param == "data" else (False,)):
            yield dict(solver_type=solver, order=order, parameterization=param, time_schedule=schedule,
                       fit_target=target, lambda_min=lambda_min, denoise_last=last, thresholding=thresholding)


def describe(cfg: dict) -> str:
    keys = ("solver_type", "order", "parameterization", "time_schedule", "fit_target", "lambda_min", "denoise_last", "thresholding")
    return " ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=list(NFES))
    parser.add_argument("--no-search", action="store_true", help="skip the search over MR Sampler options")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--options", type=Path, default=REPO / "options" / "mrsampler.yml",
                        help="options file whose sampler block gets its own row (default: options/mrsampler.yml)")
    args = parser.parse_args(argv)

    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    problem = make_problem(sde, args.seed)
    nfes = args.nfe
    head = "| sampler | measure | " + " | ".join(f"NFE {n}" for n in nfes) + " |"
    lines = [head, "|" + "---|" * (len(nfes) + 2)]

    def cell(name, cfg, n):
        try:
            return error_at_zero(sde, name, dict(cfg, num_sample_steps=n), problem)
        except ValueError:
            return None, float("nan")  # e.g. order 3 with fewer than 3 steps

    rows = baseline_rows() + [(args.options.name, "mrsampler", shipped_config(args.options))]
    for label, name, cfg in rows:
        results = [cell(name, cfg, n) for n in nfes]
        measure = next((m for m, _ in results if m), "-")
        lines.append(f"| {label} | {measure} | " + " | ".join(f"{e:.2e}" for _, e in results) + " |")

    if not args.no_search:
        best_lines = []
        for n in nfes:
            scored = [(cell("mrsampler", cfg, n), cfg) for cfg in search_space()]
            (measure, err), cfg = min(scored, key=lambda r: r[0][1] if math.isfinite(r[0][1]) else math.inf)
            lines.append(f"| best MRS at NFE {n} | {measure} | " + " | ".join(
                f"{err:.2e}" if k == n else "" for k in nfes) + " |")
            best_lines.append(f"- NFE {n}: {describe(cfg)}")
        lines.append("")
        lines.append("Best MR Sampler configurations:")
        lines.extend(best_lines)
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    sys.exit(run_script(main, "oracle_table.py"))
