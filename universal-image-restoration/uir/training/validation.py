"""Validation during training: every validation image restored as test.py restores it (the
same `Restorer`, DA-CLIP contexts included) and scored against GT."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from uir.metrics import batch_image_metrics, quantize_to_uint8
from uir.restoration import Contexts, Restorer
from uir.runtime import NetworkCall
from uir.samplers import SamplerOptions, build_sampler
from uir.sde.irsde import IRSDE
from uir.training.data import PairSet
from uir.training.options import ValSettings


@dataclass
class ValidationResult:
    step: int
    psnr: float
    ssim: float
    per_task: dict[str, dict[str, float]]
    seconds: float

    def line(self) -> str:
        tasks = ", ".join(f"{t} {m['psnr']:.2f}" for t, m in self.per_task.items())
        return f"validation at step {self.step}: PSNR {self.psnr:.3f} dB, SSIM {self.ssim:.4f} ({tasks}) [{self.seconds:.0f} s]"

    def record(self) -> dict:
        return {"step": self.step, "psnr": self.psnr, "ssim": self.ssim, "per_task": self.per_task,
                "seconds": self.seconds}


@torch.no_grad()
def validate(model: nn.Module, sde: IRSDE, val_data: dict[str, list[PairSet]], settings: ValSettings,
             sampler_options: SamplerOptions, device: torch.device, step: int = 0,
             encoder: Callable[[torch.Tensor], Contexts] | None = None) -> ValidationResult:
    """Restore every validation image with the configured sampler, as test.py does (image i of a
    task seeded with `settings.seed + i`, whatever the batch size; DA-CLIP's contexts of each LQ
    image from `encoder` when the network reads them), and score it against GT."""
    start = time.perf_counter()
    sampler = build_sampler(settings.sampler, sde, sampler_options)
    restorer = Restorer(sde, NetworkCall(model, device), encoder, device)
    per_task: dict[str, dict[str, float]] = {}
    for task, pair_sets in val_data.items():
        psnrs, ssims, index = [], [], 0
        for pairs in pair_sets:
            for begin in range(0, pairs.lq.shape[0], settings.batch_size):
                lq_u8 = pairs.lq[begin:begin + settings.batch_size]
                seeds = [settings.seed + index + k for k in range(lq_u8.shape[0])]
                index += lq_u8.shape[0]
                result = restorer.restore((lq_u8.float() / 255.0).to(device), seeds, sampler)
                gt_u8 = pairs.gt[begin:begin + settings.batch_size].to(device)
                metrics = batch_image_metrics(quantize_to_uint8(result.x), gt_u8, settings.crop_border)
                psnrs += metrics["psnr"].tolist()
                ssims += metrics["ssim"].tolist()
        per_task[task] = {"psnr": sum(psnrs) / len(psnrs), "ssim": sum(ssims) / len(ssims)}
    mean = lambda key: sum(m[key] for m in per_task.values()) / len(per_task)  # noqa: E731
    return ValidationResult(step, mean("psnr"), mean("ssim"), per_task, time.perf_counter() - start)
