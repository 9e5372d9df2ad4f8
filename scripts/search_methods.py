"""How to search MR Sampler's time steps: the measurement behind `uir.samplers.search`'s method.

    python scripts/search_methods.py [--nfe 5 10] [--quick] [--set corrector=none ...]

On the study's two exact oracles (docs/sampler_study.md: the Gaussian, fit to noise, and the
mixture, fit to velocity), each method picks a grid on one batch of draws (calibration) and is
scored on another (held-out), as RMSE to the converged probability-flow ODE, with the solver
settings of options/demo_searched.yml (or the paper's without it), changed by --set:
- paper: the options' own grid (mrsampler.yml: linspace);
- DP (OSD-style, Pei et al. 2025): dynamic programming over the integer times, each step's cost
  the error of one first-order step from the teacher's state to the teacher's next state (the
  teacher: the converged ODE), the grid minimising the summed cost (`Teacher.dp_grid`);
- best start: the best of the grids the search starts from (the standard ones and DP's), no search;
- pattern search: `uir.samplers.find_timesteps` (what the project uses).
Prints a markdown table and each method's cost in model calls.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


from uir.common.cli import run_script
from uir.evaluation.tables import to_markdown
from uir.options.loader import parse_assignment
from uir.samplers import MRSampler, build_sampler, find_timesteps
from uir.samplers.search_target import Teacher, converged_ode
from uir.sde import IRSDE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_table import shipped_config  # noqa: E402
from sampler_study import gaussian, mixture, rmse  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def compare(sde: IRSDE, problem, target: str, block: dict, nfes: list[int]) -> list[dict]:
    model = problem.models[target]
    cal_x_T, cal_mu = problem.calibration
    teacher = Teacher()
    converged_ode(sde, model, cal_x_T, cal_mu, MRSampler.options_from(dict(block, fit_target=target)), 4, {}, teacher)
    rows = []
    for nfe in nfes:
        cfg = dict(block, fit_target=target, num_sample_steps=nfe)
        outcome = find_timesteps(sde, model, cal_x_T, cal_mu, nfe=nfe, config=cfg, reference_substeps=4)
        starts = find_timesteps(sde, model, cal_x_T, cal_mu, nfe=nfe, config=cfg, reference_substeps=4,
                                max_evaluations=0)  # the best start grid, DP's included
        grids = {"paper": None, "best start": starts.timesteps, "DP (OSD-style)": teacher.dp_grid(sde, cal_mu, nfe),
                 "pattern search": outcome.timesteps}
        row = {"problem": f"{problem.name} ({target})", "NFE": nfe}
        for name, grid in grids.items():
            c = cfg if grid is None else dict(cfg, time_schedule="custom", timesteps=grid)
            x = build_sampler("mrsampler", sde, c).sample(model, problem.x_T.clone(), problem.mu).x
            row[name] = f"{rmse(x, problem.exact):.2e}"
        row["search's model calls"] = outcome.model_calls
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--quick", action="store_true", help="tiny problems")
    parser.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                        help="a sampler key, e.g. --set corrector=none (repeatable; the value read as YAML)")
    args = parser.parse_args(argv)
    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    preset = REPO / "options" / "demo_searched.yml"
    solver = shipped_config(preset if preset.exists() else REPO / "options" / "mrsampler.yml")
    block = {k: v for k, v in solver.items() if k not in ("time_schedule", "timesteps", "fit_target")}
    block.update(parse_assignment(f"sampler.{text}") for text in args.set)
    block = {key.removeprefix("sampler."): value for key, value in block.items()}
    size = 8 if args.quick else 64
    problems = [(gaussian(sde, size), "noise"), (mixture(sde, 8, size // 2, 4, 4), "velocity")]
    rows = [r for p, target in problems for r in compare(sde, p, target, block, args.nfe)]
    columns = ["problem", "NFE", "paper", "DP (OSD-style)", "best start", "pattern search", "search's model calls"]
    text = to_markdown(rows, columns)
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(run_script(main, "search_methods.py"))
