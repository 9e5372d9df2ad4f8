"""The two evaluation paths the benchmark compares, on the same images and weights.

- reference: what the reference `test.py` does per image: batch 1, float32 network, the CLIP
  transform on the host with PIL (its data loader's), DA-CLIP per image (fp16 autocast on
  CUDA, float32 on the CPU), `tensor2img` and the numpy/OpenCV PSNR / SSIM / PSNR-Y / SSIM-Y
  on the host;
- fast: batches, the network as `prepare_network` makes it (autocast, channels_last,
  compile), DA-CLIP on the batch (`ContextEncoder`), and the batched torch metrics on the
  device (`Scorer`).

Both restore through `Restorer.restore` (image i's noise from its own generator, seed + i), so
in float32 they restore the same images.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torch import Tensor
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

from uir.benchmark.profiling import PeakMemory, PhaseTimer, ProfiledDenoiser
from uir.data import PairedImageDataset, group_by_size
from uir.models.conditioning import ContextEncoder, daclip_autocast_dtype
from uir.evaluation.scoring import Scorer
from uir.evaluation.tasks import TaskData
from uir.metrics import LPIPS, METRICS, LpipsMetric, default_metrics, image_metric_names, image_metrics, quantize_to_uint8, to_uint8
from uir.models.daclip import DaCLIP
from uir.restoration import Restorer
from uir.samplers.base import Sampler
from uir.sde import IRSDE

ContextFn = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor] | None"]
MetricsFn = Callable[[Tensor, Tensor], "list[dict[str, float]]"]


# ---- images ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One test image on the host: LQ float32 ``[3, H, W]`` in [0, 1], GT uint8 ``[3, H, W]``,
    and the seed of its noise (prior sample and, for stochastic samplers, every step)."""

    lq: Tensor
    gt: Tensor
    seed: int


def random_samples(count: int, size: int, seed: int) -> list[Sample]:
    """Seeded smooth random GT images (bilinear upsampling of an 8x coarser grid) and LQ = GT
    plus Gaussian noise (sigma 0.1)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(1, size // 8), max(1, size // 8), generator=g)
    gt01 = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    lq = (gt01 + 0.1 * torch.randn(gt01.shape, generator=g)).clamp(0, 1)
    gt = quantize_to_uint8(gt01)
    return [Sample(lq[i].contiguous(), gt[i].contiguous(), seed + i) for i in range(count)]


def task_samples(task: TaskData, seed: int) -> list[Sample]:
    """A task's images (it has GT), read as `test.py` reads them; image i gets seed + i."""
    dataset = PairedImageDataset(task.pairs)
    items = [dataset[i] for i in range(len(dataset))]
    return [Sample(item["lq"], quantize_to_uint8(item["gt"]), seed + i) for i, item in enumerate(items)]


# ---- DA-CLIP and metrics, each path's way ---------------------------------------------------


def pil_clip_transform(size: int) -> Callable[[Tensor], Tensor]:
    """The reference data loader's CLIP transform, per image on the host: truncation to uint8,
    PIL bicubic resize, centre crop, normalisation (torchvision). `clip_preprocess` computes
    the same values on tensors; this is the reference's way, and its speed."""
    transform = Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size), ToTensor(),
                         Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)])

    def apply(images01: Tensor) -> Tensor:
        pil = [Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for img in images01]
        return torch.stack([transform(img) for img in pil])

    return apply


def reference_contexts(daclip: DaCLIP, device: torch.device) -> ContextFn:
    """The reference's DA-CLIP step: the CLIP transform on the host (its data loader), then
    ``encode_image(control=True)`` on the device, under fp16 autocast on CUDA."""
    dtype = daclip_autocast_dtype("auto", device)
    transform = pil_clip_transform(daclip.image_size)

    def contexts(lq_host: Tensor, lq_device: Tensor) -> tuple[Tensor, Tensor]:
        pixels = transform(lq_host).to(device)
        autocast = nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
        with torch.no_grad(), autocast:
            image_context, degra_context = daclip.encode_image(pixels, control=True)
        return image_context.float(), degra_context.float()

    return contexts


def fast_contexts(encoder: ContextEncoder) -> ContextFn:
    """The pipeline's DA-CLIP step: the whole batch, preprocessed on the device."""
    return lambda lq_host, lq_device: encoder(lq_device)


def reference_metrics(crop: int, lpips: LpipsMetric | None) -> MetricsFn:
    """`tensor2img` and the numpy/OpenCV metrics, one image at a time on the host."""

    def metrics(x: Tensor, gt: Tensor) -> list[dict[str, float]]:
        rows = []
        for i in range(x.shape[0]):
            row = image_metrics(to_uint8(x[i]), gt[i].permute(1, 2, 0).numpy(), crop)
            if lpips is not None:
                row["lpips"] = float(lpips(x[i : i + 1], gt[i : i + 1].to(x.device).float() / 255))
            rows.append(row)
        return rows

    return metrics


def fast_metrics(crop: int, lpips: LpipsMetric | None) -> MetricsFn:
    """`test.py`'s scoring: quantisation and the batched torch metrics on the device; the uint8
    images then go to the host, as a run that writes PNGs does."""
    images = {name: METRICS[name]() for name in image_metric_names(default_metrics()) if METRICS[name].weights is None}
    scorer = Scorer(crop, {**images, **({"lpips": LPIPS(lpips)} if lpips is not None else {})})

    def metrics(x: Tensor, gt: Tensor) -> list[dict[str, float]]:
        out = quantize_to_uint8(x)
        gt_u8 = gt.to(x.device)
        columns = scorer(x, gt_u8.float() / 255, out, gt_u8)
        out.cpu()  # the copy a run makes to write the PNGs
        return [{name: values[i] for name, values in columns.items()} for i in range(x.shape[0])]

    return metrics


# ---- one path -------------------------------------------------------------------------------


@dataclass
class PathSetup:
    """How one path runs: its network (profiled), DA-CLIP step, metrics and batch size."""

    name: str
    network: ProfiledDenoiser
    contexts: ContextFn | None
    metrics: MetricsFn
    batch_size: int


@dataclass
class PathRun:
    outputs: list[Tensor]  # float32 [3, H, W] on the host, one per sample
    metrics: list[dict[str, float]]
    phase_seconds: dict[str, float]
    network_seconds: float
    image_evals: int
    flops: int
    peak_bytes: int | None

    @property
    def seconds(self) -> float:
        return sum(self.phase_seconds.values())


def run_path(setup: PathSetup, samples: Sequence[Sample], sampler: Sampler, sde: IRSDE,
             device: torch.device) -> PathRun:
    """Restore `samples` (batched by size) and score them, timing each phase."""
    setup.network.reset()
    timer = PhaseTimer(device)
    outputs: list[Tensor | None] = [None] * len(samples)
    metrics: list[dict | None] = [None] * len(samples)
    restorer = Restorer(sde, setup.network, None, device)
    batches = group_by_size([tuple(s.lq.shape[-2:]) for s in samples], setup.batch_size)
    with torch.no_grad(), PeakMemory(device) as peak:
        for batch in batches:
            group = [samples[i] for i in batch]
            with timer.phase("daclip"):
                lq_host = torch.stack([s.lq for s in group])
                lq = lq_host.to(device)
                contexts = setup.contexts(lq_host, lq) if setup.contexts is not None else None
            with timer.phase("sampling"):
                result = restorer.restore(lq, [s.seed for s in group], sampler, contexts or (None, None))
            with timer.phase("metrics"):
                values = setup.metrics(result.x, torch.stack([s.gt for s in group]))
            x_host = result.x.float().cpu()
            for k, i in enumerate(batch):
                outputs[i], metrics[i] = x_host[k], values[k]
    return PathRun(outputs, metrics, dict(timer.seconds), setup.network.seconds(), setup.network.image_evals,
                   setup.network.flops, peak.bytes)
