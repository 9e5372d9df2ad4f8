"""The README's "Results on the demo set" table, measured anew.

    python scripts/demo_table.py                   # about 5 minutes on a 2-core CPU
    python scripts/demo_table.py --max-images 1    # a quick look

One `test.py` run of the demo network (options/demo.yml) on the demo test set, as a labelled
sweep: posterior sampling and Euler-Maruyama at 100 steps, MR Sampler ODE-2 (data prediction) at
NFE 5, 10 and 20, MR Sampler SDE-2 (data) and ODE-2 (noise prediction) at NFE 10. It prints one
Markdown table: the LQ input (the run's input rows), then PSNR per task, the mean PSNR, SSIM and
LPIPS over all images and the sampling seconds per image of each label. The run folder (images,
per-image CSV, tables) is kept under --results-root.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from uir.benchmark.report import environment
from uir.common.cli import run_script
from uir.evaluation import read_csv, run
from uir.evaluation.tables import INPUT
from uir.options import load_options

REPO = Path(__file__).resolve().parents[1]
ODE2_DATA = {"solver_type": "ode", "order": 2, "parameterization": "data"}
RUNS = [
    {"label": "posterior, 100 steps", "sampler": "posterior", "nfe": 100},
    {"label": "Euler-Maruyama (sde), 100 steps", "sampler": "sde", "nfe": 100},
    *({"label": f"MR Sampler ODE-2 data, NFE {n}", "sampler": "mrsampler", "nfe": n, "set": ODE2_DATA} for n in (5, 10, 20)),
    {"label": "MR Sampler SDE-2 data, NFE 10", "sampler": "mrsampler", "nfe": 10, "set": {**ODE2_DATA, "solver_type": "sde"}},
    {"label": "MR Sampler ODE-2 noise, NFE 10", "sampler": "mrsampler", "nfe": 10,
     "set": {**ODE2_DATA, "parameterization": "noise"}},
]


def to_markdown(table: list[dict], per_image: list[dict]) -> str:
    """One line per label: PSNR per task (mean over its images), mean PSNR / SSIM / LPIPS over all
    images, sampling seconds per image (empty for the input)."""
    tasks = list(dict.fromkeys(r["task"] for r in table))
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in per_image:
        by_label["LQ input" if row["label"] == INPUT else row["label"]].append(row)
    seconds = {r["label"]: r["sec_per_image"] for r in table}
    lines = ["| | " + " | ".join(tasks) + " | mean PSNR | mean SSIM | LPIPS | s / image |", "|---" * (len(tasks) + 5) + "|"]
    for label, rows in by_label.items():
        psnr = [np.mean([r["psnr"] for r in rows if r["task"] == t]) for t in tasks]
        lpips = [r["lpips"] for r in rows if r.get("lpips") is not None]
        sec = seconds.get(label)
        cells = [f"{p:.2f}" for p in psnr] + [f"{np.mean([r['psnr'] for r in rows]):.2f}",
                                              f"{np.mean([r['ssim'] for r in rows]):.4f}",
                                              f"{np.mean(lpips):.4f}" if lpips else "n/a",
                                              "" if sec is None else f"{sec:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-opt", "--opt", type=Path, default=REPO / "options" / "demo.yml")
    parser.add_argument("--results-root", default="results/demo_table")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    overrides = [("results_root", args.results_root), ("name", "demo_table"), ("sweep", {"runs": RUNS})]
    if args.max_images is not None:
        overrides.append(("max_images", args.max_images))
    if args.device is not None:
        overrides.append(("device", args.device))
    options = load_options(args.opt, overrides)
    result = run(options, progress=False)
    print(f"run folder: {result.run_dir}", file=sys.stderr)
    table = to_markdown(result.table, read_csv(result.paths["per_image"]))
    env = environment(torch.device("cpu") if result.device == "cpu" else torch.device(result.device), argv,
                      "scripts/demo_table.py")
    print(f"Measured {env['date']} on {env['device']}, torch {env['torch']} (`{env['command']}`); PSNR/SSIM on "
          f"8-bit images, crop {options.effective_crop_border}.\n\n{table}")
    return table


if __name__ == "__main__":
    sys.exit(run_script(main, "demo_table.py"))  # a bad option or missing file: its message, exit 2
