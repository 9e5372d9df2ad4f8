"""A small evaluation workspace for end-to-end tests: a data root with mixed image sizes and
modes, tiny UNet checkpoints (with and without DA-CLIP contexts), a tiny DA-CLIP, and the
options that point at them."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from uir.models.daclip import build_daclip
from uir.models.networks import build_network
from uir.options import parse_options

PLAIN_NET = dict(in_nc=3, out_nc=3, nf=8, ch_mult=[1, 2], context_dim=0, use_degra_context=False,
                 use_image_context=False)
CONTEXT_NET = dict(in_nc=3, out_nc=3, nf=16, ch_mult=[1, 2], context_dim=32, use_degra_context=True,
                   use_image_context=True)
TINY_DACLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
SAMPLER_BLOCK = {"num_sample_steps": 2, "solver_type": "ode", "parameterization": "data", "order": 2,
                 "fit_target": "noise", "lambda_min": -5.0, "time_schedule": "linspace"}
ALL_SAMPLERS = ["sde", "posterior", "heun", "mrsampler"]
CROP = 4  # degradation.scale, the reference's fallback


def write_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def make_task(root: Path, task: str, specs, rng, with_gt: bool = True) -> None:
    """specs: (name, H, W, channels) with channels 3 (BGR), 1 (gray) or 4 (BGRA)."""
    for name, h, w, c in specs:
        shape = (h, w) if c == 1 else (h, w, c)
        gt = rng.integers(0, 256, shape).astype(np.uint8)
        lq = np.clip(gt.astype(int) + rng.integers(-30, 31, shape), 0, 255).astype(np.uint8)
        if c == 4:
            gt[..., 3] = lq[..., 3] = 255
        write_image(root / task / "LQ" / f"{name}.png", lq)
        if with_gt:
            write_image(root / task / "GT" / f"{name}.png", gt)


def make_workspace(root: Path) -> Path:
    """A data root (noisy: 4 images of mixed sizes incl. gray and RGBA; hazy: 2; low-light: LQ only)
    and checkpoints of a tiny UNet without contexts, one with contexts, and a tiny DA-CLIP."""
    rng = np.random.default_rng(0)
    data = root / "data"
    make_task(data, "noisy", [("a", 24, 32, 3), ("b", 32, 32, 3), ("c_gray", 24, 32, 1), ("d_rgba", 24, 32, 4)], rng)
    make_task(data, "hazy", [("x", 24, 32, 3), ("y", 24, 32, 3)], rng)
    make_task(data, "low-light", [("z", 32, 32, 3)], rng, with_gt=False)
    torch.manual_seed(0)
    torch.save(build_network("ConditionalUNet", PLAIN_NET).state_dict(), root / "plain.pth")
    torch.save(build_network("ConditionalUNet", CONTEXT_NET).state_dict(), root / "context.pth")
    save_tiny_daclip(root / "daclip.pt")
    return root


def save_tiny_daclip(path: Path) -> Path:
    """A tiny DA-CLIP (TINY_DACLIP) with random weights, its controller made to matter, saved at `path`."""
    daclip = build_daclip(TINY_DACLIP)
    with torch.no_grad():  # the controller's projections start at zero: make them matter
        for p in daclip.visual_control.parameters():
            p.add_(0.02 * torch.randn_like(p))
    torch.save(daclip.state_dict(), path)
    return path


def raw_options(ws: Path, results: str, **extra) -> dict:
    raw = {
        "name": "t",
        "network_G": {"which_model_G": "ConditionalUNet", "setting": dict(PLAIN_NET)},
        "path": {"pretrain_model_G": str(ws / "plain.pth"), "daclip": None},
        "sde": {"max_sigma": 50, "T": 100, "schedule": "cosine", "eps": 0.005, "algorithm": "sde"},
        "sampler": dict(SAMPLER_BLOCK),
        "data_root": str(ws / "data"),
        "distortion": ["noisy"],
        "num_workers": 0,
        "results_root": str(ws / results),
        "device": "cpu",
    }
    for key, value in extra.items():
        raw[key] = value
    return raw


def options(ws: Path, results: str, **extra):
    return parse_options(raw_options(ws, results, **extra))


def read_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
