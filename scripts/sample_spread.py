"""How much PSNR one stochastic restoration gives up against the mean of many, on the demo set.

    python scripts/sample_spread.py --per-image            # 4 posterior-100 samples per demo image
    python scripts/sample_spread.py --samples 2 --max-images 1   # a quick look
    python scripts/sample_spread.py --per-image --resume   # the tables again, from the kept runs

(14 minutes for the first on the project's 2-core CPU with one thread, the other core busy.)

It restores every demo image K times with posterior sampling at NFE 100 (one normal `test.py`
run per base seed 0, 100, 200, ...; the runs' folders are kept under --results-root), and
splits the error of one sample x_s against the ground truth x, per task, into

    E||x_s - x||^2 = S + D,   S = E||x_s - m||^2 (the samples' spread),   D = ||m - x||^2,

m the mean the network's samples scatter around. Given y, x_s and x are independent, so the
cross term vanishes; and the mean of K samples has E||mean_K - x||^2 = S / K + D, so S and D
follow from the one-sample and mean-of-K errors. D is the error of the estimator "average
many samples", the network's own MMSE estimate. For exact posterior samples S = D = the MMSE:
one sample then sits 10 log10(2) = 3.01 dB below the best possible (MMSE) PSNR, and beats the
input only where the MMSE estimator beats it by more than 3 dB.

PSNR here is 10 log10(255^2 / MSE) of each task's mean MSE over its images (crop as the run),
not the mean of per-image PSNRs that test.py tables report.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from uir.data.paired import read_image_uint8
from uir.evaluation import run
from uir.common.cli import run_script
from uir.evaluation.tables import INPUT, read_csv
from uir.evaluation.tasks import resolve_tasks
from uir.metrics.reference import crop_border
from uir.options import load_options

REPO = Path(__file__).resolve().parents[1]
SEED_STRIDE = 100  # base seeds 0, 100, 200, ...: image i of run k is seeded with 100 k + i


def cropped_mse(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    """Mean squared error on the 0-255 scale, `crop` pixels off every side (as the PSNR of test.py)."""
    a, b = crop_border(a.astype(np.float64), crop), crop_border(b.astype(np.float64), crop)
    return float(np.mean((a - b) ** 2))


def spread_split(one_sample_mse: float, mean_of_k_mse: float, k: int) -> tuple[float, float]:
    """(S, D) from E||x_s - x||^2 = S + D and E||mean_K - x||^2 = S / K + D."""
    if k < 2:
        raise ValueError(f"the split needs at least 2 samples, got {k}")
    spread = (one_sample_mse - mean_of_k_mse) * k / (k - 1)
    return spread, one_sample_mse - spread


def psnr_of_mse(mse: float) -> float:
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf


def task_rows(samples: dict, gts: dict, lqs: dict, tasks: dict, crop: int) -> list[dict]:
    """Per task: PSNR of the LQ input, of one sample, of the mean of the K samples, of D, and S / D.

    `samples[image]` is the list of K restorations (uint8 HxWx3) of `image`, `gts[image]` and
    `lqs[image]` its ground truth and input, `tasks[task]` the images of each task."""
    rows = []
    for task, images in tasks.items():
        k = len(samples[images[0]])
        lq = np.mean([cropped_mse(lqs[i], gts[i], crop) for i in images])
        one = np.mean([cropped_mse(s, gts[i], crop) for i in images for s in samples[i]])
        mean_k = np.mean([cropped_mse(np.mean(samples[i], axis=0), gts[i], crop) for i in images])
        spread, d = spread_split(one, mean_k, k)
        rows.append({"task": task, "lq": psnr_of_mse(lq), "one": psnr_of_mse(one), "mean_k": psnr_of_mse(mean_k),
                     "d": psnr_of_mse(d) if d > 0 else math.nan, "s_over_d": spread / d if d > 0 else math.nan})
    return rows


def to_markdown(rows: list[dict], k: int) -> str:
    lines = [f"| task | LQ input | one sample | mean of {k} | D: samples' mean, K -> inf | D - LQ | S / D |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['lq']:.2f} | {r['one']:.2f} | {r['mean_k']:.2f} | {r['d']:.2f} "
                     f"| {r['d'] - r['lq']:+.2f} | {r['s_over_d']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-opt", "--opt", type=Path, default=REPO / "options" / "demo.yml")
    parser.add_argument("--samples", type=int, default=4, help="K, the restorations per image (at least 2)")
    parser.add_argument("--sampler", default="posterior", help="sampler of every run (default posterior)")
    parser.add_argument("--nfe", type=int, default=100, help="its number of steps (default 100)")
    parser.add_argument("--results-root", default="results/sample_spread")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true",
                        help="reuse (and complete) the runs of an earlier call with the same options instead of sampling anew")
    parser.add_argument("--per-image", action="store_true", help="also a table with one row per image")
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error(f"--samples must be at least 2, got {args.samples}")

    common = [("results_root", args.results_root), ("sweep", {"runs": [{"sampler": args.sampler, "nfe": args.nfe}]})]
    if args.max_images is not None:
        common.append(("max_images", args.max_images))
    if args.device is not None:
        common.append(("device", args.device))
    if args.resume:
        common.append(("resume", True))
    samples: dict[tuple[str, str], list[np.ndarray]] = {}
    for k in range(args.samples):
        seed = SEED_STRIDE * k
        options = load_options(args.opt, common + [("seed", seed), ("name", f"spread_{args.sampler}{args.nfe}_seed{seed}")])
        result = run(options, progress=False)
        print(f"seed {seed}: {result.run_dir}", file=sys.stderr)
        for row in read_csv(result.run_dir / "per_image.csv"):
            if row["sampler"] == INPUT:
                continue
            samples.setdefault((row["task"], row["image"]), []).append(read_image_uint8(result.run_dir / row["output"]))

    gts, lqs, tasks = {}, {}, {}
    for task in resolve_tasks(options.data):  # at most options.max_images pairs per task, as the runs
        for pair in task.pairs:
            key = (task.name, pair.name)
            gts[key], lqs[key] = read_image_uint8(pair.gt), read_image_uint8(pair.lq)
            tasks.setdefault(task.name, []).append(key)
    crop = options.effective_crop_border
    table = to_markdown(task_rows(samples, gts, lqs, tasks, crop), args.samples)
    if args.per_image:
        per_image = {f"{task}/{name}": [(task, name)] for task, names in tasks.items() for _, name in names}
        table += "\n\n" + to_markdown(task_rows(samples, gts, lqs, per_image, crop), args.samples).replace(
            "| task |", "| image |", 1)
    print(f"{args.sampler} NFE {args.nfe}, {args.samples} samples per image (base seeds 0..{SEED_STRIDE * (args.samples - 1)}); "
          f"PSNR of each task's mean MSE, crop {crop}.\n")
    print(table)
    return table


if __name__ == "__main__":
    sys.exit(run_script(main, "sample_spread.py"))  # a bad option or missing file: its message, exit 2
