"""Search MR Sampler's time steps for the options' network, and write them as a preset.

    python scripts/search_schedule.py -opt=options/demo.yml --nfe 5 10 20 [--images 6] [--crop 64]
                                      [--set sampler.corrector=unic] [--objective balanced] [--noise-draws 4]
                                      [--max-step-ratio auto] [--decimals 3]

Calibrates on --images images of the options' test set (from the end of each task's sorted
listing, printed), centre-cropped to --crop pixels so that they make one batch; the target is the
probability-flow ODE solved to convergence from the same x_T (`uir.samplers.search_timesteps`).
Then scores the options' own grid and the searched one on held-out images (from the start of each
task's listing, whole, never calibration images) and writes `<input>_searched.yml` beside the input
(or --out): the same options (with --set applied) with `time_schedule: custom`, `timesteps:` per NFE, MR Sampler's
sweep points at those NFEs. It never replaces a file. Cost, on the calibration batch and for each of
its --noise-draws starts (its own x_T and prior draws, `uir.samplers.search_target.prior_draws`): 200
network calls for the target (once, shared by every NFE), then NFE calls per grid tried (at most
30 x NFE grids per NFE).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import torch

from uir.benchmark.calibration import calibrate, held_out_errors, split_images, write_preset
from uir.common.cli import run_script
from uir.common.errors import OptionsError
from uir.evaluation import load_restorer
from uir.evaluation.tasks import resolve_tasks
from uir.options import load_options
from uir.options.loader import parse_assignment
from uir.samplers import MRSampler
from uir.samplers.search import (DECIMALS, DEFAULT_OBJECTIVE, OBJECTIVES, SearchOutcome, point_decimals,
                                 search_options, step_ratio_bound)
from uir.samplers.search_target import NOISE_DRAWS

PROG = "search_schedule.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("-opt", "--opt", type=Path, required=True, help="a test.py options file")
    parser.add_argument("--nfe", type=int, nargs="+", required=True, help="the NFEs to search grids for")
    parser.add_argument("--images", type=int, default=6, help="calibration images (default 6)")
    parser.add_argument("--crop", type=int, default=None,
                        help="centre crop of the calibration images, in pixels (default: none; needed when "
                             "their sizes differ; smaller is faster)")
    parser.add_argument("--held-out", type=int, default=1, help="held-out images per task (default 1; 0: none)")
    parser.add_argument("--max-evaluations", type=int, default=None, help="grids tried per NFE (default 30 x NFE)")
    parser.add_argument("--objective", choices=tuple(OBJECTIVES), default=DEFAULT_OBJECTIVE,
                        help=f"the calibration error a grid is ranked by (default {DEFAULT_OBJECTIVE}; "
                             "uir.samplers.search.OBJECTIVES)")
    parser.add_argument("--noise-draws", type=int, default=NOISE_DRAWS,
                        help=f"starts per calibration image: its own x_T and more prior draws (default {NOISE_DRAWS}; "
                             "the search's cost grows with it; options/demo_searched.yml was searched with 1)")
    parser.add_argument("--max-step-ratio", type=step_ratio, default="auto",
                        help="the largest ratio of two adjacent steps in lambda a search may make: a number >= 1, "
                             "none, or auto (default: 2 from NFE 6 on, with a corrector below NFE 20 only, else none; "
                             "the presets before 2026-12-04 were searched with none)")
    parser.add_argument("--decimals", type=int, nargs="+", default=[DECIMALS],
                        help=f"the decimals of t the points are rounded to (default {DECIMALS}); several, increasing, "
                             "search coarse to fine, e.g. 0 3 for a velocity network: IR-SDE's integer times first, "
                             "where the velocity formula is exact (docs/timestep_search.md)")
    parser.add_argument("--set", dest="set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="set an options key first, e.g. --set sampler.corrector=unic (repeatable; YAML value)")
    parser.add_argument("--out", type=Path, default=None, help="the preset (default: <input>_searched.yml)")
    args = parser.parse_args(argv)
    if any(n < 2 for n in args.nfe) or args.images < 1 or (args.crop is not None and args.crop < 8):
        parser.error("--nfe must be >= 2, --images >= 1 and --crop >= 8")
    if args.noise_draws < 1:
        parser.error(f"--noise-draws must be >= 1 (starts per calibration image), got {args.noise_draws}")
    try:
        args.decimals = point_decimals(tuple(args.decimals), name="--decimals")
    except ValueError as exc:
        parser.error(str(exc))
    if args.held_out < 0 or (args.max_evaluations is not None and args.max_evaluations < 0):
        parser.error("--held-out and --max-evaluations must be >= 0")
    return args


def step_ratio(text: str) -> float | str | None:
    """--max-step-ratio's value: auto, none, or a number, checked by `step_ratio_bound` (>= 1)."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        return step_ratio_bound(float(text), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 1, none or auto, got {text!r}") from None


def search_note(outcome: SearchOutcome) -> str:
    """What bounded the search, for the preset's header: the step ratio, and the points' rounding
    when it is not the default."""
    notes = [] if outcome.max_step_ratio is None else [f"adjacent steps in lambda within {outcome.max_step_ratio:g}x"]
    if outcome.decimals != (DECIMALS,):
        notes.append("points rounded to " + ", then ".join(map(str, outcome.decimals)) + " decimals of t")
    return f" ({'; '.join(notes)})" if notes else ""


def image_name(pair) -> str:
    """<task folder>/<image name>."""
    return f"{pair.lq.parent.parent.name}/{pair.name}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or args.opt.with_name(f"{args.opt.stem}_searched.yml")
    if out.exists():
        raise OptionsError(f"{out} exists; give another --out, or remove it first (it is never replaced)")
    start = time.time()
    overrides = [parse_assignment(text) for text in args.set]
    options = load_options(args.opt, overrides)
    sampler = options.restorer.sampler.options_for(MRSampler)
    for nfe in args.nfe:  # what cannot be searched is refused before any network loads
        try:
            search_options(sampler, nfe)
        except ValueError as exc:
            raise OptionsError(f"{args.opt}: {exc}") from exc
    split = split_images(resolve_tasks(options.data), args.images, args.held_out)
    print("calibration images: " + ", ".join(image_name(p) for p in split.calibration))
    print("held-out images:    " + ", ".join(image_name(p) for p in split.held_out))
    restorer = load_restorer(options.restorer)
    settings = {"objective": args.objective, "noise_draws": args.noise_draws, "max_step_ratio": args.max_step_ratio,
                "decimals": args.decimals}
    if args.max_evaluations is not None:
        settings["max_evaluations"] = args.max_evaluations
    with torch.no_grad():
        found = calibrate(restorer, sampler, split.calibration, args.nfe, args.crop, **settings)
        held = held_out_errors(restorer, sampler, split.held_out, found) if split.held_out else []
    lines = [f"NFE {h.nfe}: held-out RMSE {h.own:.3e} on the options' own grid -> {h.searched:.3e} searched "
             f"({h.searched / h.own:.2f}x)" for h in held]
    print("\n".join(lines))
    crop = f", centre-cropped to {args.crop}x{args.crop}" if args.crop else ""
    header = [
        f"MR Sampler's time steps searched for this network by scripts/search_schedule.py on {date.today()}",
        f"(search_schedule.py {' '.join(sys.argv[1:] if argv is None else argv)};",
        f" {time.time() - start:.0f} s on the {restorer.device.type.upper()}).",
        f"Calibration: {len(split.calibration)} images{crop}, {args.noise_draws} starts each: "
        + ", ".join(image_name(p) for p in split.calibration),
        "(score the preset on other images). Error to the converged ODE, the options' own grid -> searched",
        f"(calibration: the {args.objective} objective of the images' RMSEs; held-out: RMSE over all their pixels):",
    ] + [f"  NFE {n}: calibration {o.own_error:.3e} -> {o.error:.3e}{search_note(o)}"
         for n, o in sorted(found.items())] + [
        f"  {line}" for line in lines]
    write_preset(args.opt, out, found, header, overrides)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main, PROG))
