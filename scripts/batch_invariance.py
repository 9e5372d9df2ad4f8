"""Does the batch size change a result? Restores the first images of an options file's test sets
with the evaluation's `Restorer` (`uir.evaluation.load_restorer`), for every point of its sweep,
in batches of `--batch-size` and one at a time, and prints the largest difference of the float
outputs and of the 8-bit images. Each image draws its noise from its own generator (seed + i),
so only the arithmetic of batched kernels may differ.

    python scripts/batch_invariance.py -opt options/demo.yml --images 4 --batch-size 4 --device cpu
"""
from __future__ import annotations

import argparse
import sys

import torch

from uir.benchmark.paths import task_samples
from uir.common.cli import run_script
from uir.evaluation import build_sampler_for, load_restorer
from uir.evaluation.tasks import resolve_tasks
from uir.metrics import quantize_to_uint8
from uir.options import load_options
from uir.sde import IRSDE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="batch_invariance.py", description=__doc__.split("\n")[0])
    p.add_argument("-opt", "--opt", required=True, help="options file (YAML)")
    p.add_argument("--images", type=int, default=4, help="how many images, taken across the tasks (default 4)")
    p.add_argument("--batch-size", type=int, default=4, help="the batch compared with batch 1 (default 4)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--precision", default="fp32", help="the networks' precision (default fp32)")
    args = p.parse_args(argv)
    options = load_options(args.opt, [("device", args.device), ("precision", args.precision)])
    samples = [s for task in resolve_tasks(options.data) for s in task_samples(task, options.restorer.seed)][: args.images]
    if len({tuple(s.lq.shape) for s in samples}) != 1:
        raise SystemExit("batch_invariance.py: the images differ in size; choose --images so that they do not")
    sde = IRSDE.from_settings(options.restorer.sde)
    restorer = load_restorer(options.restorer, sde=sde)
    lq = torch.stack([s.lq for s in samples]).to(restorer.device)
    seeds = [s.seed for s in samples]
    print(f"{len(samples)} images {tuple(lq.shape[-2:])}, batch {args.batch_size} against 1, {options.restorer.runtime.precision}, "
          f"{restorer.device}")
    with torch.no_grad():
        for point in options.points:
            sampler = build_sampler_for(options.restorer, point, sde)
            batched = torch.cat([restorer.restore(lq[k : k + args.batch_size], seeds[k : k + args.batch_size],
                                                  sampler).x for k in range(0, len(seeds), args.batch_size)])
            single = torch.cat([restorer.restore(lq[k : k + 1], seeds[k : k + 1], sampler).x
                                for k in range(len(seeds))])
            levels = (quantize_to_uint8(batched).int() - quantize_to_uint8(single).int()).abs().max()
            print(f"{point.name} nfe {point.nfe}: max |float difference| "
                  f"{float((batched - single).abs().max()):.2e}, max 8-bit difference {int(levels)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main, "batch_invariance.py"))
