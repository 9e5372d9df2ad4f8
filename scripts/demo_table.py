"""The README's "Results on the demo set" table, measured anew.

    python scripts/demo_table.py                   # about 5 minutes on a 2-core CPU
    python scripts/demo_table.py --max-images 1    # a quick look

It evaluates the demo network (options/demo.yml) on the demo test set with posterior sampling
and Euler-Maruyama at 100 steps, MR Sampler ODE-2 (data prediction) at NFE 5, 10 and 20,
MR Sampler SDE-2 (data) and ODE-2 (noise prediction) at NFE 10, adds the LQ input itself, and
prints one Markdown table: PSNR per task, then the mean PSNR, SSIM and LPIPS over all images
and the sampling seconds per image. Each configuration is a normal `test.py` run, whose folder
(images, per-image CSV, tables) is kept under --results-root.
"""
from __future__ import annotations

import argparse
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch

from uir.data.paired import read_image_uint8
from uir.evaluation import run
from uir.common.cli import run_script
from uir.evaluation.tasks import resolve_tasks
from uir.metrics import image_metrics
from uir.options import load_options

REPO = Path(__file__).resolve().parents[1]

# (label, overrides of options/demo.yml)
CONFIGURATIONS = [
    ("posterior, 100 steps", {"sweep": {"runs": [{"sampler": "posterior", "nfe": 100}]}}),
    ("Euler-Maruyama (sde), 100 steps", {"sweep": {"runs": [{"sampler": "sde", "nfe": 100}]}}),
    ("MR Sampler ODE-2 data, NFE 5", {"sweep": {"runs": [{"sampler": "mrsampler", "nfe": 5}]}}),
    ("MR Sampler ODE-2 data, NFE 10", {"sweep": {"runs": [{"sampler": "mrsampler", "nfe": 10}]}}),
    ("MR Sampler ODE-2 data, NFE 20", {"sweep": {"runs": [{"sampler": "mrsampler", "nfe": 20}]}}),
    ("MR Sampler SDE-2 data, NFE 10", {"sweep": {"runs": [{"sampler": "mrsampler", "nfe": 10}]},
                                        "sampler.solver_type": "sde"}),
    ("MR Sampler ODE-2 noise, NFE 10", {"sweep": {"runs": [{"sampler": "mrsampler", "nfe": 10}]},
                                         "sampler.parameterization": "noise"}),
]
BASE_SAMPLER = {"sampler.solver_type": "ode", "sampler.order": 2, "sampler.parameterization": "data"}


def flatten(overrides: dict) -> list[tuple[str, object]]:
    return [(key, value) for key, value in {**BASE_SAMPLER, **overrides}.items()]


def lq_row(options) -> dict:
    """PSNR/SSIM of the LQ input against GT, by the same metrics."""
    crop = options.effective_crop_border
    per_task, ssims = {}, []
    for task in resolve_tasks(options):
        scores = [image_metrics(read_image_uint8(p.lq), read_image_uint8(p.gt), crop) for p in task.pairs]
        per_task[task.name] = [s["psnr"] for s in scores]
        ssims += [s["ssim"] for s in scores]
    return {"label": "LQ input", "psnr": per_task, "ssim": ssims, "lpips": [], "seconds": None}


def run_row(label: str, options) -> dict:
    result = run(options, progress=False)
    per_task: dict[str, list[float]] = {}
    ssims, lpips, seconds, images = [], [], [], 0
    for row in result.table:
        n = row["images"]
        per_task.setdefault(row["task"], []).extend([row["psnr"]] * n)
        ssims += [row["ssim"]] * n
        if row.get("lpips") is not None:
            lpips += [row["lpips"]] * n
        seconds += [row["sec_per_image"]] * n
        images += n
    return {"label": label, "psnr": per_task, "ssim": ssims, "lpips": lpips,
            "seconds": float(np.mean(seconds)), "run_dir": result.run_dir}


def to_markdown(rows: list[dict], tasks: list[str]) -> str:
    head = "| | " + " | ".join(tasks) + " | mean PSNR | mean SSIM | LPIPS | s / image |"
    lines = [head, "|---" * (len(tasks) + 5) + "|"]
    for r in rows:
        psnrs = [float(np.mean(r["psnr"][t])) for t in tasks]
        all_psnr = [v for t in tasks for v in r["psnr"][t]]
        lp = f"{np.mean(r['lpips']):.4f}" if r["lpips"] else "n/a"
        sec = f"{r['seconds']:.2f}" if r["seconds"] is not None else ""
        lines.append(f"| {r['label']} | " + " | ".join(f"{p:.2f}" for p in psnrs)
                     + f" | {np.mean(all_psnr):.2f} | {np.mean(r['ssim']):.4f} | {lp} | {sec} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-opt", "--opt", type=Path, default=REPO / "options" / "demo.yml")
    parser.add_argument("--results-root", default="results/demo_table")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    common = [("results_root", args.results_root), ("lpips", True)]
    if args.max_images is not None:
        common.append(("max_images", args.max_images))
    if args.device is not None:
        common.append(("device", args.device))
    base = load_options(args.opt, common)
    rows = [lq_row(base)]
    for label, overrides in CONFIGURATIONS:
        slug = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
        options = load_options(args.opt, common + flatten(overrides) + [("name", f"demo_{slug}")])
        rows.append(run_row(label, options))
        print(f"{label}: {rows[-1]['run_dir']}", file=sys.stderr)
    tasks = list(rows[0]["psnr"])
    table = to_markdown(rows, tasks)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"Measured {date.today().isoformat()} on {machine}, torch {torch.__version__}; "
          f"PSNR/SSIM on 8-bit images, crop {base.effective_crop_border}.\n")
    print(table)
    return table


if __name__ == "__main__":
    sys.exit(run_script(main, "demo_table.py"))  # a bad option or missing file: its message, exit 2
