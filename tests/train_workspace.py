"""A small training workspace for end-to-end train.py tests: MD-layout data (<root>/<task>/{LQ,GT}),
a tiny DA-CLIP, and options for a tiny context UNet that point at them."""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import torch

from workspace import CONTEXT_NET, TINY_DACLIP, save_tiny_daclip

TASKS = ("noisy", "hazy")


def write_md_set(root: Path, tasks=TASKS, count: int = 2, size: int = 24, seed: int = 0) -> Path:
    """`count` random LQ/GT pairs of `size` x `size` per task in root/<task>/{LQ,GT}."""
    rng = np.random.default_rng(seed)
    for task in tasks:
        for i in range(count):
            gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            lq = np.clip(gt.astype(int) + rng.integers(-40, 41, gt.shape), 0, 255).astype(np.uint8)
            for kind, img in (("GT", gt), ("LQ", lq)):
                (root / task / kind).mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(root / task / kind / f"{i:03d}.png"), img)
    return root


def make_train_workspace(root: Path, tasks=TASKS) -> Path:
    write_md_set(root / "train", tasks, count=2, size=24, seed=0)
    write_md_set(root / "val", tasks, count=1, size=16, seed=1)
    torch.manual_seed(0)
    save_tiny_daclip(root / "daclip.pt")
    return root


def md_options(ws: Path, **changes) -> dict:
    """Options for a tiny context UNet trained on ws/train, validated on ws/val; `changes` are
    dotted keys (e.g. `train.niter`) set on top."""
    raw = {
        "name": "ctx",
        "device": "cpu",
        "experiments_root": str(ws / "experiments"),
        "daclip_config": copy.deepcopy(TINY_DACLIP),
        "network_G": {"which_model_G": "ConditionalUNet", "setting": dict(CONTEXT_NET)},
        "path": {"daclip": str(ws / "daclip.pt")},
        "distortion": list(TASKS),
        "datasets": {
            "train": {"mode": "MD", "dataroot": str(ws / "train"), "patch_size": 16, "batch_size": 4},
            "val": {"dataroot": str(ws / "val"), "sampler": "mrsampler", "sampler_options": {"num_sample_steps": 2}},
        },
        "train": {"niter": 2, "lr": 1e-3, "lr_scheme": "constant", "ema": {"update_every": 1, "update_after_step": 0}},
        "logger": {"print_freq": 1, "val_freq": 100, "save_checkpoint_freq": 1},
    }
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw
