"""The IR-SDE training loop of `train.py`, on one process or many (torchrun).

One step: this process's share of the step's items (`uir.training.stream`: crops, times t,
noise); DA-CLIP's contexts of the LQ crops when the network reads them (the frozen DA-CLIP of
`path.daclip`, `uir.models.conditioning`: the code path test.py uses); x_t =
sde.noise_state(GT, LQ, t, eps); the network as `model(x_t, LQ, t, text_context=degra_context,
image_context=image_context)`; the loss of `uir.training.losses`; the optimizer step (under
torchrun, DistributedDataParallel averages the gradients: one step of W processes with b items
each is one step of one process with W b); the EMA update. The EMA weights are the model: they
are validated and saved, beside the raw weights.

Under torchrun (gloo on the CPU, nccl on CUDA, one GPU per process), `batch_size` is split over
the processes as in the reference; rank 0 alone writes the folder, the log, TensorBoard, the
validation and the checkpoints, while the others wait for it. `--resume` works with another
number of processes: the stream depends on the step only.

Experiment folder `experiments_root/name/`: options.yml (the validated options of the first
start), train.log, val.jsonl (one line per validation), tb_logger/ (use_tb_logger) and the
weights and state of `uir.training.checkpoints`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from uir.common.distributed import ENV_VARS, DistContext
from uir.common.errors import ExperimentError, OptionsError
from uir.models.checkpoint import UNET_WEIGHTS_HINT, load_into, load_state_dict_file
from uir.models.conditioning import ContextEncoder, load_context_encoder
from uir.models.networks import build_network, describe_network, network_arguments
from uir.runtime import resolve_device
from uir.sde.irsde import IRSDE
from uir.training.checkpoints import (
    BEST_MODEL, LATEST_MODEL, STATE_FILE, TrainingState, cpu_state_dict, read_training_state, save_atomic,
    save_weights,
)
from uir.training.data import PairSet, demo_manifest_mismatch, ensure_demo_data, load_pairs
from uir.training.ema import EMA
from uir.training.init import initialise
from uir.training.losses import train_step
from uir.training.monitor import Scalars, attach_log, detach_log
from uir.training.options import TrainOptions
from uir.training.schedule import build_optimizer, clears_state_after, learning_rate
from uir.training.stream import CropItems, MemoryPairs, StepItems, TaskFolders, batches
from uir.training.validation import ValidationResult, validate

# Options that must not change when a run is resumed (they define what the weights mean).
FIXED_ON_RESUME = ("sde", "network_G", "fit_target", "daclip_config")
START_WEIGHTS_HINT = (f"{UNET_WEIGHTS_HINT} (or, for a fine-tune, first train the run that writes "
                      f"experiments/<name>/{LATEST_MODEL.as_posix()})")


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


def process_context(options: TrainOptions) -> DistContext:
    """torchrun's process group (rank device cuda:LOCAL_RANK, or the CPU), or one process on
    `device` / `gpu_ids`."""
    if any(name in os.environ for name in ENV_VARS):
        try:
            return DistContext.from_env(options.device)
        except ValueError as exc:
            raise OptionsError(str(exc)) from exc
    return DistContext(device=resolve_device(options.device, options.gpu_ids))


class Trainer:
    """`Trainer(options, resume=False, overwrite=False).run()` trains and returns the last
    validation (None on the ranks other than 0)."""

    def __init__(self, options: TrainOptions, *, resume: bool = False, overwrite: bool = False,
                 progress: bool | None = None, console: bool = True):
        if overwrite and options.path.resume_state is not None:
            raise ExperimentError("--overwrite starts the run again, path.resume_state continues one: choose one")
        self.options = options
        self.resume = resume
        self.overwrite = overwrite
        self.progress = progress
        self.console = console
        self.dir = Path(options.experiment_dir)
        self.sde = IRSDE.from_settings(options.sde)
        self.logger = logging.getLogger(f"uir.training.{options.name}")
        self.step = 0
        self.best: dict[str, float] = {"psnr": -math.inf, "step": 0}

    @property
    def resume_file(self) -> Path | None:
        """path.resume_state, or with --resume the folder's training_state/latest.state."""
        if self.options.path.resume_state is not None:
            return Path(self.options.path.resume_state)
        return self.dir / STATE_FILE if self.resume else None

    # ---- set-up ----------------------------------------------------------------------------
    def _prepare_folder(self) -> None:
        if self.resume_file is not None:
            self.dir.mkdir(parents=True, exist_ok=True)  # path.resume_state may start a new folder
        elif self.dir.exists() and any(self.dir.iterdir()):
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
        if not (self.dir / "options.yml").is_file():
            (self.dir / "options.yml").write_text(yaml.safe_dump(self.options.to_dict(), sort_keys=False))

    def _ensure_data(self) -> None:
        """Build the demo set when asked and missing (rank 0, before the others read it)."""
        t, v = self.options.datasets.train, self.options.datasets.val
        if t.mode != "memory":
            return
        demo = None if t.make_demo is None else vars(t.make_demo)
        built = ensure_demo_data(t.dataroot, "train", t.tasks, demo)
        if built:
            self.logger.info(built)
        elif demo_manifest_mismatch(t.dataroot, demo):
            self.logger.warning(demo_manifest_mismatch(t.dataroot, demo))
        if v.mode == "memory" and (Path(v.dataroot) != Path(t.dataroot) or set(v.tasks) - set(t.tasks)):
            ensure_demo_data(v.dataroot, "test", v.tasks, None)

    def _training_items(self) -> CropItems:
        o = self.options
        t = o.datasets.train
        if t.mode == "MD":
            source = TaskFolders(t.dataroot, t.tasks)
            where = f"{t.dataroot}/<task>, read by {t.n_workers or 'no'} worker process(es), tasks in balance"
        else:
            source = MemoryPairs(load_pairs(t.dataroot, "train", t.tasks, option="datasets.train"), t.patch_size)
            where = f"{t.dataroot}/train, in memory"
        self.logger.info(f"training pairs: {source.num_pairs} ({', '.join(t.tasks)}) from {where}")
        return CropItems(source, t.patch_size, t.use_flip, t.use_rot, self.sde.T, o.seed)

    def _validation_data(self) -> dict[str, list[PairSet]]:
        v = self.options.datasets.val
        split = "test" if v.mode == "memory" else ""
        data = {task: load_pairs(v.dataroot, split, (task,), v.max_images_per_task, option="datasets.val")
                for task in v.tasks}
        n_val = sum(s.lq.shape[0] for sets in data.values() for s in sets)
        self.logger.info(f"validation images: {n_val} from {Path(v.dataroot, split)}")
        return data

    def _start_weights(self) -> dict[str, Tensor] | None:
        """path.pretrain_model_G's state dict, read first so that a missing file fails at once and
        leaves no run folder; None when it is not set or the run is resumed (the saved state wins)."""
        path = self.options.path.pretrain_model_G
        if path is None or self.resume_file is not None:
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
        return model

    def _encoder(self, model: nn.Module, device: torch.device) -> ContextEncoder | None:
        """The frozen DA-CLIP when the network reads contexts (refused without path.daclip)."""
        o = self.options
        return load_context_encoder(model, device, daclip=o.path.daclip, config=o.daclip_config,
                                    precision=o.daclip_precision, strict=o.path.strict_load,
                                    setting=o.network_G.setting)

    def _check_resumable(self, saved: dict) -> None:
        now = self.options.to_dict()
        for key in FIXED_ON_RESUME:
            if key == "network_G" and _same_network(saved.get(key), now.get(key)):
                continue
            if key in saved and saved.get(key) != now.get(key):
                raise ExperimentError(
                    f"--resume: {key} differs from the run being resumed ({saved.get(key)!r} there, "
                    f"{now.get(key)!r} now); the weights were trained for the saved one"
                )
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if changed:
            self.logger.info(f"resuming with changed options: {', '.join(changed)}")

    def _training_state(self) -> TrainingState | None:
        """The state to resume from (read before anything is written), or None."""
        path = self.resume_file
        if path is None:
            return None
        if self.options.path.resume_state is None and not path.is_file():
            raise ExperimentError(f"--resume: {path} does not exist; there is no run named {self.options.name!r} "
                                  f"under {self.options.experiments_root} to resume")
        return read_training_state(path)

    def _restore(self, state: TrainingState, model: nn.Module, ema: EMA, optimizer) -> None:
        if state.options is not None:
            self._check_resumable(state.options)
        o = self.options
        load_into(model, state.model, strict=True, source=self.resume_file,
                  expected=describe_network(o.network_G.which_model_G, o.network_G.setting))
        if state.ema is not None:
            ema.load_state_dict(state.ema)
        else:
            ema.restart(model)
            self.logger.info("the reference's training state: the EMA starts again from its weights, as the "
                             "reference's resume does")
        optimizer.load_state_dict(state.optimizer)
        self.step, self.best = state.step, state.best_so_far
        self.logger.info(f"resumed from {self.resume_file} at step {self.step}")

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> ValidationResult | None:
        ctx = process_context(self.options)
        with ctx.guard():
            return self._run(ctx)

    def _run(self, ctx: DistContext) -> ValidationResult | None:
        o = self.options
        if o.datasets.train.batch_size % ctx.world_size:
            raise OptionsError(f"datasets.train.batch_size: {o.datasets.train.batch_size} is the batch of one step "
                               f"over all processes (as in the reference) and must divide by the {ctx.world_size} "
                               f"processes")
        device = ctx.device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not o.train.deterministic
            torch.backends.cudnn.deterministic = o.train.deterministic
        state = self._training_state()
        start = self._start_weights()
        model = self._build_model(start).to(device)
        encoder = self._encoder(model, device)  # read before the folder is made: a bad path leaves none
        handlers = []
        if ctx.is_main:
            self._prepare_folder()
            handlers = attach_log(self.logger, self.dir / "train.log", self.console)
        try:
            if ctx.is_main:
                self._ensure_data()
            ctx.barrier("prepared")
            return self._train(ctx, model, encoder, state, start is not None)
        finally:
            detach_log(self.logger, handlers)

    def _train(self, ctx: DistContext, model: nn.Module, encoder, state: TrainingState | None,
               started: bool) -> ValidationResult | None:
        o = self.options
        device = ctx.device
        items = self._training_items()
        val_data = self._validation_data() if ctx.is_main else {}
        ema = EMA(model, o.train.ema)
        optimizer = build_optimizer(model.parameters(), o.train)
        if state is not None:
            self._restore(state, model, ema, optimizer)
        else:
            if started:
                self.logger.info(f"initialised from {o.path.pretrain_model_G}")
            n_params = sum(p.numel() for p in model.parameters())
            self.logger.info(f"network: {describe_network(o.network_G.which_model_G, o.network_G.setting)}, "
                             f"{n_params:,} parameters; fit_target {o.fit_target}; device {device}")
        for note in o.notes():
            self.logger.warning(note)
        self.logger.info(("DA-CLIP contexts from " + str(o.path.daclip)) if encoder is not None
                         else "the network reads no DA-CLIP context")
        if ctx.world_size > 1:
            self.logger.info(f"{ctx.world_size} processes ({ctx.device.type}), "
                             f"{o.datasets.train.batch_size // ctx.world_size} items each per step")
        net = model
        if ctx.is_distributed:
            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        scalars = Scalars(self.dir, o.use_tb_logger and ctx.is_main, self.logger)
        stream = batches(items, StepItems(self.step, o.train.niter, o.datasets.train.batch_size, ctx.rank,
                                          ctx.world_size), o.datasets.train.n_workers)
        model.train()
        try:
            return self._loop(ctx, net, model, encoder, ema, optimizer, stream, val_data, scalars)
        finally:
            scalars.close()

    def _loop(self, ctx, net, model, encoder, ema, optimizer, stream, val_data, scalars) -> ValidationResult | None:
        o = self.options
        device = ctx.device
        last: ValidationResult | None = None
        from tqdm import tqdm

        disable = (None if self.progress is None else not self.progress) if ctx.is_main else True
        bar = tqdm(total=o.train.niter, initial=self.step, disable=disable, dynamic_ncols=True, desc=o.name)
        running, count, tick = 0.0, 0, time.perf_counter()
        try:
            for batch in stream:
                lr = learning_rate(self.step, o.train)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                lq = batch["lq"].to(device).float() / 255.0
                gt = batch["gt"].to(device).float() / 255.0
                t, noise = batch["t"].to(device), batch["noise"].to(device)
                contexts = encoder(lq) if encoder is not None else (None, None)
                loss = o.train.loss_weight * train_step(net, self.sde, o.fit_target, lq, gt, t, noise,
                                                        o.train.loss_type, contexts)
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
                    mean = ctx.mean(running / count)
                    seconds = (time.perf_counter() - tick) / count
                    self.logger.info(f"step {self.step}/{o.train.niter} loss {mean:.4e} lr {lr:.3e} "
                                     f"({seconds:.2f} s/step)")
                    scalars.add(self.step, loss=mean, lr=lr)
                    running, count, tick = 0.0, 0, time.perf_counter()
                final = self.step == o.train.niter
                validating = self.step % o.logger.val_freq == 0 or final
                saving = self.step % o.logger.save_checkpoint_freq == 0 or final
                if ctx.is_main and validating:
                    last = self._validate(ema, val_data, encoder, device, scalars)
                if ctx.is_main and saving:
                    self._save(model, ema, optimizer)
                if validating or saving:
                    ctx.barrier(f"step {self.step}")
        finally:
            bar.close()
        self.logger.info(f"done: {self.step} steps; best validation PSNR {self.best['psnr']:.3f} dB at step "
                         f"{self.best['step']}; model: {self.dir / LATEST_MODEL}")
        return last

    def _save(self, model: nn.Module, ema: EMA, optimizer) -> None:
        save_weights(self.dir, self.step, model, ema.model)
        state = TrainingState(self.step, cpu_state_dict(model), optimizer.state_dict(), ema.state_dict(),
                              dict(self.best), self.options.to_dict())
        save_atomic(state.to_file(), self.dir / STATE_FILE)

    def _validate(self, ema: EMA, val_data: dict[str, list[PairSet]], encoder, device, scalars) -> ValidationResult:
        o = self.options
        result = validate(ema.model, self.sde, val_data, o.datasets.val, o.val_sampler, device, self.step, encoder)
        self.logger.info(result.line())
        scalars.add(result.step, psnr=result.psnr, ssim=result.ssim)
        with open(self.dir / "val.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(result.record()) + "\n")
        if result.psnr > self.best["psnr"]:
            self.best = {"psnr": result.psnr, "step": result.step}
            save_atomic(cpu_state_dict(ema.model), self.dir / BEST_MODEL)
            self.logger.info(f"new best: saved {self.dir / BEST_MODEL}")
        return result
