"""The command line of `scripts/benchmark.py`: flags, device-dependent defaults, and `main`."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from uir.benchmark.quality import Tolerance, run_quality
from uir.benchmark.report import render_markdown, write_outputs
from uir.benchmark.settings import DEVICE_DEFAULTS, NETWORKS, REPO, Settings
from uir.benchmark.speed import run_benchmark
from uir.common.cli import run_script
from uir.common.errors import OptionsError
from uir.options import load_options
from uir.options.loader import parse_assignment
from uir.options.restorer import batch_size
from uir.precision import PRECISIONS
from uir.runtime import resolve_device

PROG = "benchmark.py"
DEFAULT_PRECISION = "bf16"  # the speed benchmark's fast path
DEMO_OPTIONS = REPO / "options" / "demo.yml"
USAGE = """examples:
    python scripts/benchmark.py                       # GPU defaults on CUDA, reduced ones on the CPU
    python scripts/benchmark.py --device cuda --sizes 256 512 --nfe 10 20 100 --posterior-nfe 100 \\
        --images 16 --batch-size auto --precision bf16 --channels-last --compile --out results.json
    python scripts/benchmark.py --quality [--options options/demo.yml]   # fast path vs fp32 quality

Both paths restore the same seeded random images with the same randomly initialised networks
(full-size ConditionalUNet and DA-CLIP ViT-B-32 unless --network says otherwise); see
uir/benchmark/ and docs/benchmarks.md."""


def _batch_size_arg(text: str) -> int | str:
    try:
        return batch_size("--batch-size", int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Speed of the reference-style evaluation path against the "
                                "fast path, on one machine.", epilog=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--sizes", nargs="+", type=int, help="image sides (GPU default: 256 512; CPU: 64 128)")
    p.add_argument("--nfe", nargs="+", type=int, help="MR Sampler NFEs (GPU default: 10 20 100; CPU: 10 20)")
    p.add_argument("--posterior-nfe", nargs="*", type=int,
                   help="posterior sampler NFEs, the reference's baseline (GPU default: 100; CPU: none)")
    p.add_argument("--images", type=int, help="images per size for the fast path (GPU default 16, CPU 4); "
                                                   "with --quality: images per task (default: all)")
    p.add_argument("--ref-images", type=int,
                   help="how many of them the reference path restores (default: 4, at most --images)")
    p.add_argument("--batch-size", type=_batch_size_arg, metavar="N|auto", help="fast path batch (GPU default auto, CPU 4)")
    p.add_argument("--precision", nargs="+", choices=(*PRECISIONS, "all"),
                   help="the fast path's precision (uir.precision; default bf16); with --quality one or more, "
                        "compared in one run (default: all)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="fast path channels_last (default: on for CUDA, off on the CPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile the fast path's UNet (default: off)")
    p.add_argument("--network", choices=tuple(NETWORKS), default="full",
                   help="full: the paper's UNet and DA-CLIP ViT-B-32; small: nf 32; tiny: for tests")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and images")
    p.add_argument("--threads", type=int, help="torch CPU threads for this run (default: torch's choice)")
    p.add_argument("--out", nargs="*", default=[], metavar="FILE",
                   help="write results: .json (everything) or .md (tables; an existing file is updated "
                        "between its <!-- benchmark:SECTION:begin/end --> markers)")
    p.add_argument("--section", help="markdown section name (default: cpu / cuda; quality-cpu / quality-cuda)")
    p.add_argument("--quality", action="store_true",
                   help="compare the fast path's per-task PSNR / SSIM with float32 on --options")
    p.add_argument("--options", default=str(DEMO_OPTIONS), help="options file for --quality (default: options/demo.yml)")
    p.add_argument("--set", dest="set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="with --quality: set a key of --options, as test.py's --set (repeatable)")
    p.add_argument("--tol-psnr", type=float, default=Tolerance.psnr,
                   help=f"--quality tolerance on the mean |dPSNR| of a task's images, dB (default {Tolerance.psnr})")
    p.add_argument("--tol-psnr-max", type=float, default=Tolerance.psnr_max,
                   help=f"--quality tolerance on each image's |dPSNR|, dB (default {Tolerance.psnr_max})")
    p.add_argument("--tol-ssim", type=float, default=Tolerance.ssim,
                   help=f"--quality tolerance on |dSSIM| of the means (default {Tolerance.ssim})")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    for name in ("images", "ref_images", "threads", "batch_size"):
        value = getattr(args, name)
        if isinstance(value, int) and value < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1")
    for name in ("sizes", "nfe", "posterior_nfe"):
        if any(v < 1 for v in getattr(args, name) or []):
            p.error(f"--{name.replace('_', '-')}: values must be >= 1")
    if args.precision and "all" in args.precision:
        args.precision = None if args.quality else p.error("--precision all: only with --quality")
    if args.precision and len(args.precision) > 1 and not args.quality:
        p.error("--precision: the speed benchmark takes one precision (several only with --quality)")
    return args


def resolve_settings(args: argparse.Namespace) -> Settings:
    """The run's `Settings`: the flags given, the device's defaults for the others."""
    try:
        device = resolve_device(args.device)
    except OptionsError as exc:
        raise SystemExit(f"{PROG}: error: --device {args.device}: {exc}") from None
    defaults = DEVICE_DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    pick = lambda name: defaults[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    images = pick("images")
    return Settings(
        device=device, sizes=pick("sizes"), nfe=pick("nfe"), posterior_nfe=pick("posterior_nfe"), images=images,
        ref_images=min(pick("ref_images"), images), batch_size=pick("batch_size"),
        precision=args.precision[0] if args.precision else DEFAULT_PRECISION,
        channels_last=pick("channels_last"), compile=args.compile, network=args.network, seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or `--quality`); 0 when done, 1 when a quality row misses its
    tolerance, 2 for a user error (reported on stderr)."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return run_script(lambda: _run(args, argv), PROG)
    finally:
        torch.set_num_threads(threads)


def _quality_options(args: argparse.Namespace, settings: Settings):
    if not Path(args.options).is_file():
        raise OptionsError(f"--options: options file {args.options} does not exist (train the demo network "
                           f"first, or pass --options)")
    overrides = [*(parse_assignment(text) for text in args.set), ("device", str(settings.device)),
                 ("channels_last", settings.channels_last), ("compile", settings.compile),
                 ("batch_size", settings.batch_size)]
    if args.images is not None:
        overrides.append(("max_images", args.images))
    return load_options(args.options, overrides)


def _run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    settings = resolve_settings(args)
    if args.quality:
        tolerance = Tolerance(args.tol_psnr, args.tol_psnr_max, args.tol_ssim)
        report = run_quality(_quality_options(args, settings), settings, args.nfe, tolerance, argv, args.precision)
        section = args.section or f"quality-{settings.device.type}"
    else:
        report = run_benchmark(settings, argv)
        section = args.section or settings.device.type
    print(render_markdown(report, args.quality), end="")
    write_outputs(report, args.out, section, args.quality)
    return 1 if args.quality and not all(row["within"] for row in report.rows) else 0
