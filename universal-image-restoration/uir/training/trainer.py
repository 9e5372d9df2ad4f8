"""The IR-SDE training loop of `train.py`.

One step: draw a batch of (LQ, GT) crops, integer times t ~ U{1..T} and noise eps; form
x_t = sde.noise_state(GT, LQ, t, eps); call the network as `model(x_t, LQ, t)` (the reference
feeds the integer times as floats); take the loss of `uir.training.losses`; AdamW step; EMA
update. The EMA weights are the model: they are validated and saved.

Experiment folder `experiments_root/name/`:

    options.yml                 the validated options of the first start
    train.log                   everything logged
    val.jsonl                   one line per validation: step, mean and per-task PSNR / SSIM
    models/latest.pth           EMA state dict (loads strictly with uir.models.load_network)
    models/best.pth             EMA state dict of the best validation PSNR so far
    training_state/latest.state raw weights, EMA, optimizer, step, RNG, best: for --resume
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from uir.metrics import batch_image_metrics, quantize_to_uint8
from uir.models.checkpoint import UNET_WEIGHTS_HINT, load_into, load_state_dict_file
from uir.models.networks import build_network, describe_network, network_arguments
from uir.common.errors import ExperimentError
from uir.restoration import Restorer
from uir.runtime import NetworkCall, resolve_device
from uir.samplers import SamplerConfig, build_sampler
from uir.sde.irsde import IRSDE
from uir.training.data import PairSet, PatchSampler, demo_manifest_mismatch, ensure_demo_data, load_pairs
from uir.training.ema import EMA
from uir.training.init import initialise
from uir.training.losses import sample_timesteps, training_loss
from uir.training.options import TrainOptions, ValSettings
from uir.training.schedule import build_optimizer, clears_state_after, learning_rate

STATE_FILE = Path("training_state") / "latest.state"
LATEST_MODEL = Path("models") / "latest.pth"
BEST_MODEL = Path("models") / "best.pth"
# Options that must not change when a run is resumed (they define what the weights mean).
FIXED_ON_RESUME = ("sde", "network_G", "fit_target")
START_WEIGHTS_HINT = (f"{UNET_WEIGHTS_HINT} (or, for a fine-tune, first train the run that writes "
                      f"experiments/<name>/{LATEST_MODEL.as_posix()})")


def cpu_state_dict(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_step(model: nn.Module, sde: IRSDE, fit_target: str, lq: Tensor, gt: Tensor, t: Tensor, noise: Tensor,
               loss_type: str = "l1") -> Tensor:
    """The loss of one batch (differentiable): the network at x_t = noise_state(gt, lq, t, noise)."""
    xt = sde.noise_state(gt, lq, t, noise)
    output = model(xt, lq, t.to(torch.float32))
    return training_loss(sde, fit_target, output, xt=xt, x0=gt, mu=lq, t=t, noise=noise, loss_type=loss_type)


def _same_network(a: dict | None, b: dict | None) -> bool:
    """Whether two network_G blocks build the same network, settings left out counting as their
    defaults (a run saved before a setting existed resumes)."""
    if not a or not b or a.get("which_model_G") != b.get("which_model_G"):
        return False
    try:
        return network_arguments(a["which_model_G"], a.get("setting")) == network_arguments(
            b["which_model_G"], b.get("setting"))
    except ValueError:
        return False


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


@torch.no_grad()
def validate(model: nn.Module, sde: IRSDE, val_data: dict[str, list[PairSet]], settings: ValSettings,
             sampler_options: SamplerConfig, device: torch.device, step: int = 0) -> ValidationResult:
    """Restore every validation image with the configured sampler, as test.py does (image i of a
    task seeded with `settings.seed + i`, whatever the batch size), and score it against GT."""
    start = time.perf_counter()
    sampler = build_sampler(settings.sampler, sde, sampler_options)
    restorer = Restorer(sde, NetworkCall(model, device), None, device)
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


class _TqdmHandler(logging.Handler):
    """Log records printed with tqdm.write, so that they do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record))


class Trainer:
    """`Trainer(options, resume=False, overwrite=False).run()` trains and returns the last validation."""

    def __init__(self, options: TrainOptions, *, resume: bool = False, overwrite: bool = False,
                 progress: bool | None = None, console: bool = True):
        self.options = options
        self.resume = resume
        self.overwrite = overwrite
        self.progress = progress
        self.console = console
        self.dir = Path(options.experiment_dir)
        self.device = resolve_device(options.device)
        self.sde = IRSDE.from_settings(options.sde)
        self.logger = logging.getLogger(f"uir.training.{options.name}")
        self.step = 0
        self.best: dict[str, float] = {"psnr": -math.inf, "step": 0}

    # ---- set-up ----------------------------------------------------------------------------
    def _prepare_folder(self) -> None:
        if self.resume:
            if not (self.dir / STATE_FILE).is_file():
                raise ExperimentError(
                    f"--resume: {self.dir / STATE_FILE} does not exist; there is no run named "
                    f"{self.options.name!r} under {self.options.experiments_root} to resume"
                )
            return
        if self.dir.exists() and any(self.dir.iterdir()):
            if not self.overwrite:
                raise ExperimentError(
                    f"experiment folder {self.dir} exists; pass --resume to continue it, --overwrite to "
                    f"start it again, or choose another name (--set name=...)"
                )
            if not (self.dir / "options.yml").is_file():
                raise ExperimentError(f"--overwrite: {self.dir} has no options.yml, so it is not a training "
                                      f"run folder; refusing to delete it")
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "options.yml").write_text(yaml.safe_dump(self.options.to_dict(), sort_keys=False))

    def _attach_logging(self) -> list[logging.Handler]:
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        handlers: list[logging.Handler] = [logging.FileHandler(self.dir / "train.log", encoding="utf-8")]
        if self.console:
            handlers.append(_TqdmHandler())
        for h in handlers:
            h.setFormatter(fmt)
            self.logger.addHandler(h)
        return handlers

    def _load_data(self) -> tuple[PatchSampler, dict[str, list[PairSet]]]:
        o = self.options
        t, v = o.datasets.train, o.datasets.val
        demo = None if t.make_demo is None else vars(t.make_demo)
        built = ensure_demo_data(t.dataroot, "train", t.tasks, demo)
        if built:
            self.logger.info(built)
        else:
            warning = demo_manifest_mismatch(t.dataroot, demo)
            if warning:
                self.logger.warning(warning)
        if Path(v.dataroot) != Path(t.dataroot) or set(v.tasks) - set(t.tasks):
            ensure_demo_data(v.dataroot, "test", v.tasks, None)
        train_sets = load_pairs(t.dataroot, "train", t.tasks, option="datasets.train")
        patches = PatchSampler(train_sets, t.patch_size, t.batch_size, t.use_flip, t.use_rot)
        val_data = {task: load_pairs(v.dataroot, "test", (task,), v.max_images_per_task, option="datasets.val")
                    for task in v.tasks}
        n_val = sum(s.lq.shape[0] for sets in val_data.values() for s in sets)
        self.logger.info(f"training pairs: {patches.num_pairs} ({', '.join(t.tasks)}) from {t.dataroot}/train; "
                         f"validation images: {n_val} from {v.dataroot}/test")
        return patches, val_data

    def _start_weights(self) -> dict[str, Tensor] | None:
        """path.pretrain_model_G's state dict, read first so that a missing file fails at once and
        leaves no run folder; None when it is not set or the run is resumed (the saved state wins)."""
        path = self.options.path.pretrain_model_G
        if path is None or self.resume:
            return None
        return load_state_dict_file(path, option="path.pretrain_model_G", weights_hint=START_WEIGHTS_HINT)

    def _build_model(self, start: dict[str, Tensor] | None) -> nn.Module:
        o = self.options
        torch.manual_seed(o.seed)
        model = build_network(o.network_G.which_model_G, o.network_G.setting)
        initialise(model, o.train.init, self.sde.sigma_inf)
        if start is not None:
            load_into(model, start, strict=o.path.strict_load, source=o.path.pretrain_model_G,
                      expected=describe_network(o.network_G.which_model_G, o.network_G.setting))
            self.logger.info(f"initialised from {o.path.pretrain_model_G}")
        return model.to(self.device)

    def _check_resumable(self, saved: dict) -> None:
        now = self.options.to_dict()
        for key in FIXED_ON_RESUME:
            if key == "network_G" and _same_network(saved.get(key), now.get(key)):
                continue
            if saved.get(key) != now.get(key):
                raise ExperimentError(
                    f"--resume: {key} differs from the run being resumed ({saved.get(key)!r} there, "
                    f"{now.get(key)!r} now); the weights were trained for the saved one"
                )
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if changed:
            self.logger.info(f"resuming with changed options: {', '.join(changed)}")

    # ---- state ----------------------------------------------------------------------------
    def _save(self, model, ema, optimizer, generator) -> None:
        save_atomic(cpu_state_dict(ema.model), self.dir / LATEST_MODEL)
        state = {
            "step": self.step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"data": generator.get_state(), "torch": torch.get_rng_state()},
            "best": dict(self.best),
            "options": yaml.safe_dump(self.options.to_dict(), sort_keys=False),
        }
        save_atomic(state, self.dir / STATE_FILE)

    def _restore(self, model, ema, optimizer, generator) -> None:
        state = torch.load(self.dir / STATE_FILE, map_location="cpu", weights_only=True)
        self._check_resumable(yaml.safe_load(state["options"]))
        model.load_state_dict(state["model"], strict=True)
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])
        self.step = int(state["step"])
        self.best = {"psnr": float(state["best"]["psnr"]), "step": int(state["best"]["step"])}
        self.logger.info(f"resumed from {self.dir / STATE_FILE} at step {self.step}")

    # ---- the loop -------------------------------------------------------------------------
    def run(self) -> ValidationResult | None:
        start = self._start_weights()
        self._prepare_folder()
        handlers = self._attach_logging()
        try:
            return self._run(start)
        finally:
            for h in handlers:
                self.logger.removeHandler(h)
                h.close()

    def _run(self, start: dict[str, Tensor] | None) -> ValidationResult | None:
        o = self.options
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not o.train.deterministic
            torch.backends.cudnn.deterministic = o.train.deterministic
        patches, val_data = self._load_data()
        model = self._build_model(start)
        ema = EMA(model, o.train.ema)
        optimizer = build_optimizer(model.parameters(), o.train)
        generator = torch.Generator().manual_seed(o.seed)
        if self.resume:
            self._restore(model, ema, optimizer, generator)
        else:
            n_params = sum(p.numel() for p in model.parameters())
            self.logger.info(f"network: {describe_network(o.network_G.which_model_G, o.network_G.setting)}, "
                             f"{n_params:,} parameters; fit_target {o.fit_target}; device {self.device}")
        model.train()
        last: ValidationResult | None = None
        from tqdm import tqdm

        disable = None if self.progress is None else not self.progress  # None: only on a terminal
        bar = tqdm(total=o.train.niter, initial=self.step, disable=disable, dynamic_ncols=True, desc=o.name)
        running, count, tick = 0.0, 0, time.perf_counter()
        try:
            while self.step < o.train.niter:
                lr = learning_rate(self.step, o.train)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                lq, gt = patches.sample(generator)
                t = sample_timesteps(lq.shape[0], self.sde.T, generator)
                noise = torch.randn(gt.shape, generator=generator)
                lq, gt, t, noise = (x.to(self.device) for x in (lq, gt, t, noise))
                loss = o.train.loss_weight * train_step(model, self.sde, o.fit_target, lq, gt, t, noise,
                                                        o.train.loss_type)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the loss is {loss.item()} at step {self.step + 1}; lower train.lr "
                                             f"or set train.grad_clip_norm")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if o.train.grad_clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), o.train.grad_clip_norm)
                optimizer.step()
                if clears_state_after(self.step + 1, o.train):
                    optimizer.state.clear()  # the reference's clear_state at a MultiStepLR restart
                ema.update(model)
                self.step += 1
                running, count = running + loss.item(), count + 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3e}", lr=f"{lr:.2e}", refresh=False)
                if self.step % o.logger.print_freq == 0:
                    seconds = (time.perf_counter() - tick) / count
                    self.logger.info(f"step {self.step}/{o.train.niter} loss {running / count:.4e} lr {lr:.3e} "
                                     f"({seconds:.2f} s/step)")
                    running, count, tick = 0.0, 0, time.perf_counter()
                final = self.step == o.train.niter
                if self.step % o.logger.val_freq == 0 or final:
                    last = self._validate(ema, val_data)
                if self.step % o.logger.save_checkpoint_freq == 0 or final:
                    self._save(model, ema, optimizer, generator)
        finally:
            bar.close()
        self.logger.info(f"done: {self.step} steps; best validation PSNR {self.best['psnr']:.3f} dB at step "
                         f"{self.best['step']}; model: {self.dir / LATEST_MODEL}")
        return last

    def _validate(self, ema: EMA, val_data: dict[str, list[PairSet]]) -> ValidationResult:
        o = self.options
        result = validate(ema.model, self.sde, val_data, o.datasets.val, o.val_sampler, self.device, self.step)
        self.logger.info(result.line())
        with open(self.dir / "val.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": result.step, "psnr": result.psnr, "ssim": result.ssim,
                                "per_task": result.per_task, "seconds": result.seconds}) + "\n")
        if result.psnr > self.best["psnr"]:
            self.best = {"psnr": result.psnr, "step": result.step}
            save_atomic(cpu_state_dict(ema.model), self.dir / BEST_MODEL)
            self.logger.info(f"new best: saved {self.dir / BEST_MODEL}")
        return result
