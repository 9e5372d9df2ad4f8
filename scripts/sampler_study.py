"""Which MR Sampler settings to use at NFE 5-20: candidates measured on three problems.

    python scripts/sampler_study.py             # writes docs/sampler_study.md and docs/sampler_study.png
    python scripts/sampler_study.py --quick     # a smoke run: tiny problems, two candidates, NFE 5 and 10

Every error is an RMSE in pixel units between a sampler's output and the probability-flow ODE
solved from the same x_T at t = T to t = 0, without `lambda_min` clipping (clipping counts as
part of a sampler's error), both clipped to [0, 1] as the samplers' outputs are:
1. gaussian: the exact Gaussian oracle of scripts/oracle_table.py; the ODE map is closed-form.
2. mixture: `MixtureOracle`, clean images from narrow Gaussians (s = 0.02) around 8 demo GT photos
   at 32x32, conditions mu = darkened, blurred, noisy templates; the ODE is solved to convergence
   by `uir.samplers.reference` (float64, 400 steps; the change from 800 steps is reported).
3. demo: the shipped demo network (velocity) on one test image per task (`--demo-images`), the
   ODE solved likewise (200 network calls; the change from 100 is reported), plus PSNR/SSIM to GT.
Two more oracles (a wider Gaussian, a mixture of 4 wider components from other photos) check
that the choice does not hold on the three problems only. The searched row (issue 22) searches
its grid per problem, NFE and fit target on other draws of the same oracle (a Gaussian draw; 16
mixture draws) and is scored on the draws above; on the demo it takes options/demo_searched.yml,
whose grids scripts/search_schedule.py calibrated on other photos (002 of each task). A second
searched row does the same with the paper's solver settings (mrsampler.yml: no corrector), on the
oracles only. The mixtures' four held-out draws are then joined by 256 more (data network), which
show the draws that a five-step sampler sends to another mode than the converged ODE's.
On the oracles each cell is the worst over networks fit to noise, data and velocity. The bars of
issue 15 for the preset (options/mrsampler_fast.yml) and issue 22's goal for the searched row,
both against the reference default (options/mrsampler.yml), are checked and printed.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch
from torch import Tensor

from uir.common.cli import run_script
from uir.evaluation.tables import to_markdown
from uir.samplers import MRSampler, build_sampler, search_timesteps
from uir.samplers.search_target import converged_ode, reference_solution
from uir.sde import IRSDE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_table import shipped_config  # noqa: E402
from study_problems import REPO, Problem, demo, gaussian, mixture, quality, rmse  # noqa: E402

DEFAULT, PRESET = "default: mrsampler.yml (the paper's ODE-2, data, linspace)", "preset: mrsampler_fast.yml"
SEARCHED = "searched: the demo preset's solver (ODE-2 + UniC), time steps searched (issue 22)"
PAPER_SEARCHED = "searched: the paper's solver (ODE-2, no corrector), time steps searched"
WIDE_DRAWS = 256  # held-out draws of the mixtures for the count of draws ending at another mode
SEARCHED_NFES = (5, 10, 20)  # a search at NFE 50 would cost 1,500 sampler runs per target


class Searched:
    """A row whose grid is searched for each problem, NFE and fit target (`search_timesteps`) on the
    problem's calibration draws and scored on its held-out draws (each search also starting from the
    grids searched for fewer steps, so that more steps can only help on the calibration draws), with the solver settings of
    `preset` (options/demo_searched.yml; `fallback` without it); on the demo, the preset's own grids,
    which scripts/search_schedule.py calibrated on other images than the study's."""

    def __init__(self, sde: IRSDE, fallback: dict, preset: Path | None, max_evaluations: int | None = None):
        self.sde, self.grids, self.references, self.max_evaluations = sde, {}, {}, max_evaluations
        self.preset = shipped_config(preset) if preset is not None and preset.exists() else None
        custom = ("time_schedule", "timesteps", "fit_target")
        self.block = {k: v for k, v in self.preset.items() if k not in custom} if self.preset else fallback

    def __call__(self, problem: Problem, nfe: int, target: str) -> dict | None:
        if nfe not in SEARCHED_NFES:
            return None
        if problem.calibration is None:  # the demo network
            grids = (self.preset or {}).get("timesteps") or {}
            return dict(self.preset, fit_target=target) if nfe in grids else None  # type: ignore[arg-type]
        key, config = (problem.name, nfe, target), dict(self.block, fit_target=target)
        if key not in self.grids:
            x_T, mu = problem.calibration
            if (problem.name, target) not in self.references:  # one converged ODE per batch, for every NFE
                self.references[problem.name, target] = reference_solution(
                    self.sde, problem.models[target], x_T, mu, config=config, substeps=4)
            fewer = {f"searched for NFE {n}": times for (name, n, t), times in self.grids.items()
                     if name == problem.name and t == target and n < nfe}  # as scripts/search_schedule.py does
            self.grids[key] = search_timesteps(self.sde, problem.models[target], x_T, mu, nfe=nfe, config=config,
                                               reference=self.references[problem.name, target],
                                               max_evaluations=self.max_evaluations, starts=fewer)
        return dict(self.block, time_schedule="custom", timesteps=self.grids[key])


def candidates(default: dict, preset: dict, quick: bool) -> list[tuple[str, dict]]:
    """(label, sampler block): the reference default, single changes to it, and combinations."""
    d = lambda **changes: dict(default, **changes)  # noqa: E731
    rows = [(DEFAULT, default), (PRESET, preset)]
    if quick:
        return rows
    return rows + [
        ("+ lower_order_final", d(lower_order_final=True)),
        ("+ final_order 1 (the issue's patch)", d(final_order=1)),
        ("+ corrector unic", d(corrector="unic")),
        ("linear-lambda + lower_order_final", d(time_schedule="linear-lambda", lower_order_final=True)),
        ("ODE-2 noise", d(parameterization="noise")),
        ("ODE-2 integer-lambda", d(time_schedule="integer-lambda")),
        ("ODE-2 integer-lambda + lower_order_final + unic",
         d(time_schedule="integer-lambda", lower_order_final=True, corrector="unic")),
        ("ODE-3 integer-lambda + unic", d(order=3, time_schedule="integer-lambda", corrector="unic")),
        ("ODE-3 integer-lambda + final_order 1 + unic-bh2", dict(preset, corrector="unic-bh2")),
        ("ODE-3 linear-lambda + final_order 1 + unic", dict(preset, time_schedule="linear-lambda")),
        ("ODE-3 noise integer-lambda + lower_order_final + final_order 2",
         d(order=3, parameterization="noise", time_schedule="integer-lambda", lower_order_final=True, final_order=2)),
    ]


def sample(problem: Problem, sde: IRSDE, block: dict | Callable, nfe: int, target: str) -> Tensor | None:
    if callable(block):  # a searched grid: found for this problem, NFE and target (None: not measured)
        block = block(problem, nfe, target)
        if block is None:
            return None
    cfg = dict(block, num_sample_steps=nfe, fit_target=target)
    return build_sampler("mrsampler", sde, cfg).sample(problem.models[target], problem.x_T.clone(), problem.mu).x


def measure(problems: list[Problem], sde: IRSDE, rows: list[tuple[str, dict]]) -> dict:
    """results[label][(problem, nfe)] = worst RMSE over fit targets; results[label][('psnr', nfe)] on the demo."""
    results: dict[str, dict] = {}
    for label, block in rows:
        print(f"  {label}", file=sys.stderr, flush=True)
        cells = results[label] = {}
        for p in problems:
            for nfe in p.nfes:
                outs = {t: sample(p, sde, block, nfe, t) for t in p.models}
                if any(x is None for x in outs.values()):
                    continue
                cells[p.name, nfe] = max(rmse(x, p.exact) for x in outs.values())
                if p.gt is not None:
                    cells["psnr", nfe], cells["ssim", nfe] = quality(next(iter(outs.values())), p.gt)
    return results


def wide_draws(problems: list[Problem], sde: IRSDE, rows: list[tuple[str, dict | Callable]], draws: int) -> str:
    """On each mixture, at its NFEs of `SEARCHED_NFES`, with the data network: RMSE on `draws` more
    held-out draws and how many of them end at another template (the nearest to the output) than
    the converged ODE's, which a few held-out draws do not show."""
    table = []
    for p in (p for p in problems if p.draw is not None):
        x_T, mu = p.draw(torch.Generator().manual_seed(2000), draws)
        model = p.models["data"]
        exact = converged_ode(sde, model, x_T, mu, MRSampler.options_from({"fit_target": "data"}), 4, {})
        mode = lambda x: torch.cdist(x.double().flatten(1), model.templates.flatten(1)).argmin(1)  # noqa: E731
        wide = replace(p, x_T=x_T, mu=mu, exact=exact)  # the searched rows' grids stay keyed by name
        for nfe in (n for n in p.nfes if n in SEARCHED_NFES):
            outs = {label: sample(wide, sde, block, nfe, "data") for label, block in rows}
            err = {label: rmse(x, exact) for label, x in outs.items()}
            for label, x in outs.items():
                table.append({"problem": p.name, "NFE": str(nfe), "candidate": label, "RMSE": f"{err[label]:.2e}",
                              "/ default": f"{err[label] / err[DEFAULT]:.2f}",
                              "/ preset": f"{err[label] / err[PRESET]:.2f}",
                              "at another mode": f"{int((mode(x) != mode(exact)).sum())} of {draws}"})
    intro = (f"A few held-out draws may all end at the converged ODE's mode. On {draws} more (the data network; the "
             "searched rows keep the grids above) a draw ends at another mode when the template nearest to the "
             "sampler's output is not the one nearest to the converged ODE's; those draws dominate the RMSE.\n\n")
    columns = ["problem", "NFE", "candidate", "RMSE", "/ default", "/ preset", "at another mode"]
    return intro + to_markdown(table, columns)


def error_table(problems: list[Problem], results: dict) -> str:
    columns = ["candidate"] + [f"{p.name} {n}" for p in problems for n in p.nfes]
    demo_p = next((p for p in problems if p.gt is not None), None)
    columns += [f"{m} {n}" for m in ("PSNR", "SSIM") for n in demo_p.nfes] if demo_p else []
    table = []
    for label, cells in results.items():
        cell = lambda key, form: format(cells[key], form) if key in cells else "-"  # noqa: E731
        row = {"candidate": label} | {f"{p.name} {n}": cell((p.name, n), ".2e") for p in problems for n in p.nfes}
        if demo_p:
            row |= {f"PSNR {n}": cell(("psnr", n), ".2f") for n in demo_p.nfes}
            row |= {f"SSIM {n}": cell(("ssim", n), ".4f") for n in demo_p.nfes}
        table.append(row)
    return to_markdown(table, columns)


def bars(problems: list[Problem], results: dict) -> tuple[str, list[str]]:
    """Issue 15's bars for the preset, and the best any candidate reaches where the preset fails."""
    pre, ref = results[PRESET], results[DEFAULT]
    table, notes = [], []
    for p in problems:
        ratios = {n: pre[p.name, n] / ref[p.name, n] for n in (5, 10) if n in p.nfes}
        errs = [pre[p.name, n] for n in (5, 10, 20) if n in p.nfes]
        row = {"problem": p.name} | {f"error / default at NFE {n}": f"{r:.2f} ({'met' if r <= 1 / 3 else 'NOT met'})"
                                     for n, r in ratios.items()}
        row["decreases 5 -> 10 -> 20"] = "yes" if all(a > b for a, b in zip(errs, errs[1:])) else "NO"
        table.append(row)
        for n, r in ratios.items():
            if r > 1 / 3:
                best = min(results, key=lambda label: results[label].get((p.name, n), math.inf))
                notes.append(f"{p.name}, NFE {n}: the preset reaches {r:.2f} of the default's error; the best of all "
                             f"{len(results)} candidates, {best!r}, reaches {results[best][p.name, n] / ref[p.name, n]:.2f}.")
    columns = ["problem", "error / default at NFE 5", "error / default at NFE 10", "decreases 5 -> 10 -> 20"]
    text = to_markdown(table, columns)
    demo_p = next((p for p in problems if p.gt is not None), None)
    if demo_p and 10 in demo_p.nfes:
        ode_psnr, _ = quality(demo_p.exact, demo_p.gt)
        gap = pre["psnr", 10] - ode_psnr
        text += (f"\nDemo PSNR at NFE 10: preset {pre['psnr', 10]:.2f} dB, converged ODE {ode_psnr:.2f} dB, "
                 f"gap {gap:+.2f} dB ({'met' if abs(gap) <= 0.1 else 'NOT met'}: within 0.1 dB).\n")
    return text, notes


def search_goal(problems: list[Problem], results: dict, label: str = SEARCHED) -> str:
    """Issue 22's goal for the row `label`'s searched grids: at NFE 5 and 10 at most a third of the
    default's error and no more than the preset's, the error falling from NFE 5 to 10 to 20, and on
    the demo PSNR at NFE 5 within 0.1 dB of the converged ODE's."""
    found, ref, pre = results[label], results[DEFAULT], results[PRESET]
    table = []
    for p in problems:
        if (p.name, 5) not in found:
            continue
        row = {"problem": p.name}
        for n in (5, 10):
            r, q = found[p.name, n] / ref[p.name, n], found[p.name, n] / pre[p.name, n]
            row[f"/ default at {n}"] = f"{r:.2f} ({'met' if r <= 1 / 3 else 'NOT met'})"
            row[f"/ preset at {n}"] = f"{q:.2f} ({'met' if q <= 1 else 'NOT met'})"
        errs = [found[p.name, n] for n in (5, 10, 20) if (p.name, n) in found]
        row["falls 5 -> 10 -> 20"] = "yes" if all(a > b for a, b in zip(errs, errs[1:])) else "NO"
        table.append(row)
    columns = ["problem", "/ default at 5", "/ default at 10", "/ preset at 5", "/ preset at 10", "falls 5 -> 10 -> 20"]
    text = to_markdown(table, columns)
    demo_p = next((p for p in problems if p.gt is not None), None)
    if demo_p and ("psnr", 5) in found:
        ode_psnr, _ = quality(demo_p.exact, demo_p.gt)
        gap = found["psnr", 5] - ode_psnr
        text += (f"\nDemo PSNR at NFE 5: searched {found['psnr', 5]:.2f} dB, converged ODE {ode_psnr:.2f} dB, "
                 f"gap {gap:+.2f} dB ({'met' if abs(gap) <= 0.1 else 'NOT met'}: within 0.1 dB).\n")
    return text


def plot(problems: list[Problem], results: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    fig, axes = plt.subplots((len(problems) + cols) // cols, cols, figsize=(4.6 * cols, 3.9 * ((len(problems) + cols) // cols)),
                             squeeze=False)
    for ax, p in zip(axes.flat, problems):
        for label, cells in results.items():
            style = {DEFAULT: dict(color="black", lw=2.5, ls="--"),
                     PRESET: dict(color="red", lw=2.5)}.get(label, dict(lw=1, alpha=0.7))
            style = {SEARCHED: dict(color="blue", lw=2.5), PAPER_SEARCHED: dict(color="green", lw=2)}.get(label, style)
            nfes = [n for n in p.nfes if (p.name, n) in cells]
            ax.loglog(nfes, [cells[p.name, n] for n in nfes], marker="o", ms=3, label=label, **style)
        ax.set(title=p.name, xlabel="NFE", ylabel="RMSE to the converged ODE solution")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(p.nfes, [str(n) for n in p.nfes])
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(problems):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[-1].legend(handles, labels, fontsize=7, loc="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine() -> str:
    """The CPU model and core count (Linux), else what platform knows."""
    info = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
              if line.startswith("model name")] if info.exists() else []
    return f"{models[0]} x {len(models)} cores" if models else platform.processor() or platform.machine()


def report(problems, results, seconds: float, command: str, image: str, wide: str) -> str:
    bar_text, notes = bars(problems, results)
    main = [p for p in problems if not p.name.startswith("check")]
    checks = [p for p in problems if p.name.startswith("check")]
    lines = [
        "# MR Sampler: which settings at NFE 5-20 (issues 15 and 22)", "",
        f"Made by `{command}` on {date.today().isoformat()}: {machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {seconds / 60:.1f} minutes. The script's docstring defines the problems.", "",
        "Reference solutions: " + "; ".join(f"{p.name}: {p.note}" for p in problems) + ".", "",
        "## RMSE to the converged ODE solution at t = 0 (oracles: worst of noise, data and velocity networks)", "",
        error_table(main, results),
        f"Demo PSNR (dB) and SSIM: mean over the {len(next((p.gt for p in problems if p.gt is not None), []))} images "
        "against GT, 8-bit, crop 4, as test.py.", "",
        f"![error against NFE]({image})", "",
    ]
    if checks:
        lines += ["Two more oracles, to check that a choice does not fit the three problems only:", "",
                  error_table(checks, results)]
    lines += [
        "## The preset against issue 15's bars", "", bar_text,
        "## The searched time steps against issue 22's goal", "",
        "Error ratios of the searched row (held-out draws and images; worst over fit targets on the oracles):", "",
        search_goal(problems, results),
        "Where the demo network resists (at NFE 5 a grid fitted to these six photos themselves reaches 0.47 of the "
        "default's error with this solver, and no other solver setting tried does better), docs/timestep_search.md "
        "gives the per-photo numbers and why.", "",
        "The same for the paper's own solver settings with the grid searched (on the oracles):", "",
        search_goal(problems, results, PAPER_SEARCHED),
        "Where it resists: on the mixture a few draws lie so near the boundary between two modes that a few steps of "
        "ODE-2 without a corrector send them to the other mode, and those draws make the RMSE (the last table counts "
        "them on 256 draws); on the Gaussians the rise from NFE 5 to 10, at 1e-4, is the velocity network's (the "
        "samplers' velocity formula, the reference's, is exact at IR-SDE's integer times only). docs/timestep_search.md "
        "(\"The paper's own solver, searched\", \"What no grid reaches\") gives the numbers, the grids fitted to the "
        "held-out draws themselves, and why.", "",
        "## More held-out draws: the mixtures at another mode", "", wide,
    ]
    if notes:
        lines += ["", "Where a bar is not met, the best any candidate reaches:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for sampler_study.md and .png")
    parser.add_argument("--demo-images", type=int, default=1, help="demo test images per task (1-3)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny problems; the default, the preset and a short search only")
    args = parser.parse_args(argv)
    start = time.time()
    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    print("building the problems and their converged solutions", file=sys.stderr, flush=True)
    if args.quick:
        problems = [gaussian(sde, 8), mixture(sde, 3, 8, 2, 2), demo(sde, 1, 1, 1, crop=32)]
        for p in problems:
            p.nfes = (5, 10)
    else:
        problems = [gaussian(sde, 64), mixture(sde, 8, 32, 4, 4), demo(sde, args.demo_images, 2, None),
                    gaussian(sde, 64, S=0.2, seed=4, name="check: gaussian S=0.2"),
                    mixture(sde, 4, 24, 4, 4, s=0.05, seed=5, name="check: mixture K=4 s=0.05")]
    paper = shipped_config(REPO / "options" / "mrsampler.yml")
    rows = candidates(paper, shipped_config(REPO / "options" / "mrsampler_fast.yml"), args.quick)
    budget = 20 if args.quick else None
    rows.insert(2, (SEARCHED, Searched(sde, paper, REPO / "options" / "demo_searched.yml", budget)))
    rows.insert(3, (PAPER_SEARCHED, Searched(sde, paper, None, budget)))
    print("measuring the candidates", file=sys.stderr, flush=True)
    results = measure(problems, sde, rows)
    print("more held-out draws of the mixtures", file=sys.stderr, flush=True)
    wide_rows = [(label, block) for label, block in rows if label in (DEFAULT, PRESET, SEARCHED, PAPER_SEARCHED)]
    wide = wide_draws(problems, sde, wide_rows, 8 if args.quick else WIDE_DRAWS)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(problems, results, args.out / "sampler_study.png")
    command = "python scripts/sampler_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(problems, results, time.time() - start, command.strip(), "sampler_study.png", wide)
    (args.out / "sampler_study.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(run_script(main, "sampler_study.py"))
