"""Restore one large photo with tiled sampling and the demo network: time, peak memory, PSNR.

    python scripts/tile_demo.py                  # coffee at 2048x1536, noisy, tiles 256/32, MR Sampler NFE 5
    python scripts/tile_demo.py --untiled        # also restore it whole (same seed) and compare
    python scripts/tile_demo.py --photo chelsea --task hazy --tile 512 --overlap 64

A scikit-image photo is resized (bicubic) to --size, degraded as the demo set's --task, and
restored with options/demo.yml's network and sampler block at --nfe, through `TiledDenoiser`.
It writes gt.png, lq.png, tiled.png (and untiled.png) to --out and prints seconds, the peak
resident memory of the process (after the tiled run, then after the untiled one), and PSNR
(crop 4) of each against the resized photo.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from uir.data.degradations import DEGRADATIONS
from uir.data.demo import load_photo, to_uint8
from uir.common.cli import run_script
from uir.restoration import Restorer
from uir.runtime import prepare_network
from uir.tiling import TiledDenoiser, TileSettings
from uir.metrics.reference import psnr
from uir.models.networks import load_network
from uir.options import load_options
from uir.evaluation import build_sampler_for
from uir.options import SweepPoint
from uir.sde.irsde import IRSDE

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tile_demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", default="coffee", help="a demo photo name (uir.data.demo.PHOTOS)")
    p.add_argument("--size", default="2048x1536", help="WIDTHxHEIGHT the photo is resized to")
    p.add_argument("--task", default="noisy", choices=sorted(DEGRADATIONS))
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--max-batch", type=int, default=None, help="most tiles per network call")
    p.add_argument("--nfe", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--untiled", action="store_true", help="also restore the whole image in one piece")
    p.add_argument("--opt", default=str(REPO / "options" / "demo.yml"))
    p.add_argument("--out", default=str(REPO / "results" / "tile_demo"))
    return p.parse_args(argv)


def degraded_photo(name: str, size: str, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(GT, LQ) uint8 RGB, the photo resized to `size` and its degraded copy."""
    width, height = (int(v) for v in size.lower().split("x"))
    gt = to_uint8(cv2.resize(load_photo(name), (width, height), interpolation=cv2.INTER_CUBIC))
    lq = DEGRADATIONS[task](gt.astype(np.float32) / 255, np.random.default_rng(seed))
    return gt, to_uint8(lq)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def write_png(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), image[:, :, ::-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    options = load_options(args.opt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gt, lq = degraded_photo(args.photo, args.size, args.task, args.seed)
    write_png(out / "gt.png", gt)
    write_png(out / "lq.png", lq)
    device = torch.device("cpu")
    r = options.restorer
    network = load_network(r.network_G.which_model_G, r.network_G.setting, r.path.pretrain_model_G)
    denoiser = prepare_network(network, device, r.runtime)
    sde = IRSDE.from_settings(r.sde)
    sampler = build_sampler_for(r, SweepPoint("mrsampler", args.nfe), sde)
    mu = torch.from_numpy(lq).permute(2, 0, 1)[None].float().div(255)
    print(f"{args.photo} {args.size} {args.task}, LQ PSNR {psnr(lq, gt):.2f} dB; MR Sampler NFE {args.nfe}, "
          f"{torch.get_num_threads()} thread(s)")
    runs = [("tiled", TiledDenoiser(denoiser, TileSettings(args.tile, args.overlap, args.max_batch)))]
    if args.untiled:
        runs.append(("untiled", denoiser))
    for name, model in runs:
        start = time.perf_counter()
        with torch.no_grad():
            result = Restorer(sde, model, None, device).restore(mu, [args.seed], sampler)
        seconds = time.perf_counter() - start
        image = to_uint8(result.x[0].permute(1, 2, 0).numpy())
        write_png(out / f"{name}.png", image)
        tiles = f", {len(model.plan(*mu.shape[-2:], device))} tiles" if isinstance(model, TiledDenoiser) else ""
        print(f"{name}: {seconds:.1f} s{tiles}, peak RSS {peak_rss_gib():.2f} GiB, PSNR {psnr(image, gt):.2f} dB "
              f"-> {out / (name + '.png')}")


if __name__ == "__main__":
    sys.exit(run_script(main, "tile_demo.py"))
