"""Where reduced precision hurts a trained network (issue 17): per layer group and along the
sampling path, against float32 (`uir.benchmark.sensitivity` says what each variant and column is).

    python scripts/precision_sensitivity.py -opt options/demo.yml --images 1
    python scripts/precision_sensitivity.py -opt options/precision_fullsize.yml --images 1 --crop 64 \\
        --out docs/benchmarks.md --section sensitivity-fullsize
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from uir.benchmark.paths import task_samples
from uir.benchmark.report import environment, write_markdown
from uir.benchmark.sensitivity import forward_errors, sampling_errors, standard_variants
from uir.common.cli import run_script
from uir.evaluation.tables import to_markdown
from uir.evaluation.tasks import resolve_tasks
from uir.models import describe_network, load_network
from uir.options import load_options
from uir.evaluation import build_sampler_for
from uir.options import SweepPoint
from uir.sde import IRSDE


def table(rows: list[dict]) -> str:
    return to_markdown(rows, list(rows[0]), formats={k: "{:.3f}" for k in rows[0] if k != "variant"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="precision_sensitivity.py", description=__doc__.split("\n")[0])
    p.add_argument("-opt", "--opt", required=True, help="options file of the network and its test sets")
    p.add_argument("--images", type=int, default=1, help="images per task (default 1)")
    p.add_argument("--crop", type=int, help="use the top-left CROP x CROP pixels of each image (default: all)")
    p.add_argument("--times", nargs="+", type=int, default=[100, 50, 10, 3, 1], help="times of the one-call errors")
    p.add_argument("--nfe", nargs="*", type=int, default=[10], help="MR Sampler NFEs (the options' sampler block)")
    p.add_argument("--posterior-nfe", nargs="*", type=int, default=[], help="posterior sampler NFEs")
    p.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16", help="the reduced precision studied")
    p.add_argument("--out", help="a .md file: the tables go between its <!-- benchmark:SECTION --> markers")
    p.add_argument("--section", default="sensitivity", help="the markdown section (default: sensitivity)")
    args = p.parse_args(argv)
    options = load_options(args.opt, [("device", "cpu")])
    device = torch.device("cpu")
    r = options.restorer
    g = r.network_G
    network = load_network(g.which_model_G, g.setting, r.path.pretrain_model_G).eval().requires_grad_(False)
    sde = IRSDE.from_settings(r.sde)
    samples = [s for task in resolve_tasks(options.data) for s in task_samples(task, r.seed)[: args.images]]
    samplers = {f"MRS NFE {n}": build_sampler_for(r, SweepPoint("mrsampler", n), sde) for n in args.nfe}
    samplers |= {f"posterior {n}": build_sampler_for(r, SweepPoint("posterior", n), sde) for n in args.posterior_nfe}
    fit_target = samplers[next(iter(samplers))].fit_target if samplers else "noise"
    lq, gt = torch.stack([s.lq for s in samples]), torch.stack([s.gt for s in samples])
    if args.crop:
        lq, gt = lq[..., : args.crop, : args.crop], gt[..., : args.crop, : args.crop]
    variants = standard_variants(args.dtype)
    start = time.perf_counter()
    forward = forward_errors(network, variants, gt.float() / 255, lq, sde, fit_target, args.times, device)
    sampling = sampling_errors(network, variants, lq, gt, [s.seed for s in samples], samplers, sde, device)
    env = environment(device, argv, "scripts/precision_sensitivity.py")
    text = "\n".join([
        f"Device: {env['device']}; torch {env['torch']}; {env['date']}; {time.perf_counter() - start:.0f} s", "",
        f"Command: `{env['command']}`", "",
        f"- network: {describe_network(g.which_model_G, g.setting)}, `{r.path.pretrain_model_G}`, fit_target "
        f"{fit_target}",
        f"- {len(samples)} images ({args.images} per task), {lq.shape[-2]}x{lq.shape[-1]}", "",
        "RMS error of the x_0 prediction of one call at time t, in 8-bit levels:", "", table(forward),
        "|dPSNR| against float32 over the images, dB (mean, max):", "", table(sampling)])
    print(text)
    if args.out:
        write_markdown(Path(args.out), text, args.section)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main, "precision_sensitivity.py"))
