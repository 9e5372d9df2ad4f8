"""The optimizer and the learning rate of every step (`train.optimizer`, `train.lr_scheme`).

The learning rate is a function of the number of completed steps, so a resumed run (with any
number of processes) continues the schedule exactly without a scheduler state.

The reference's schemes mean what they mean in its code (models/lr_scheduler.py,
base_model.update_learning_rate), quirks included:

- `TrueCosineAnnealingLR`: torch's CosineAnnealingLR with T_max = niter, from lr to eta_min.
- `MultiStepLR`: its MultiStepLR_Restart: halved at each of `lr_steps` (the class multiplies
  by 0.5 whatever `lr_gamma` says), and back to lr x `restart_weights[i]` at `restarts[i]`
  (`clear_state` empties the optimizer's moments there).
- Warm-up (`warmup_iter` >= 2; the reference's file uses -1, none): the first step runs at the
  full lr, steps 2..W at lr x (step - 1) / W, and from then on the schedule continues from
  lr x (W - 1) / W instead of lr (both schedulers update the rate the warm-up left behind).

The project's schemes are the same schedules without those quirks: `cosine` (linear warm-up
over W steps, then the cosine from lr), `multistep` (times `lr_gamma` at each of `lr_steps`),
`constant`. Without warm-up, `cosine` equals `TrueCosineAnnealingLR`, and `multistep` with
lr_gamma 0.5 and no restarts equals `MultiStepLR`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from uir.training.options import OptimSettings

REFERENCE_GAMMA = 0.5  # MultiStepLR_Restart's fixed factor


def _cosine(step: int, anchor: int, anchor_lr: float, opt: OptimSettings) -> float:
    """CosineAnnealingLR's recursion, closed: the curve through (anchor, anchor_lr) that reaches
    eta_min at niter (with anchor 0 and lr: the textbook cosine)."""
    step = min(step, opt.niter)
    at_anchor = 1 + math.cos(math.pi * anchor / opt.niter)
    if at_anchor <= 0:
        return opt.eta_min
    return opt.eta_min + (anchor_lr - opt.eta_min) * (1 + math.cos(math.pi * step / opt.niter)) / at_anchor


def _multistep(step: int, anchor: int, anchor_lr: float, gamma: float, opt: OptimSettings) -> float:
    """From (anchor, anchor_lr): reset at the last restart in (anchor, step], then times gamma
    for each milestone after it (a milestone listed twice counts twice)."""
    passed = sorted((r, w) for r, w in zip(opt.restarts, opt.restart_weights) if anchor < r <= step)
    if passed:
        anchor, anchor_lr = passed[-1][0], opt.lr * passed[-1][1]
    return anchor_lr * gamma ** sum(anchor < m <= step for m in opt.lr_steps)


def learning_rate(step: int, opt: OptimSettings) -> float:
    """The learning rate of the step that follows `step` completed steps."""
    warm = opt.warmup_iter
    if opt.lr_scheme in ("TrueCosineAnnealingLR", "MultiStepLR"):
        anchor, anchor_lr = 0, opt.lr
        if warm >= 2:
            if step < warm:
                return opt.lr * step / warm if step >= 1 else opt.lr
            anchor, anchor_lr = warm - 1, opt.lr * (warm - 1) / warm
        if opt.lr_scheme == "TrueCosineAnnealingLR":
            return _cosine(step, anchor, anchor_lr, opt)
        return _multistep(step, anchor, anchor_lr, REFERENCE_GAMMA, opt)
    if step < warm:
        return opt.lr * (step + 1) / warm
    if opt.lr_scheme == "cosine":
        return _cosine(step, 0, opt.lr, opt)
    if opt.lr_scheme == "multistep":
        return _multistep(step, 0, opt.lr, opt.lr_gamma, opt)
    return opt.lr


def clears_state_after(step: int, opt: OptimSettings) -> bool:
    """Whether the optimizer's state is emptied once `step` steps are done (`clear_state` at a restart)."""
    return opt.clear_state and step in opt.restarts


def build_optimizer(params: Iterable[nn.Parameter], opt: OptimSettings) -> torch.optim.Optimizer:
    """`train.optimizer` over the trainable `params`, at `train.lr`, as the reference builds it."""
    params = [p for p in params if p.requires_grad]
    kwargs = dict(lr=opt.lr, betas=(opt.beta1, opt.beta2), weight_decay=opt.weight_decay)
    if opt.optimizer == "Lion":  # the options checked that the package is installed
        from lion_pytorch import Lion

        return Lion(params, **kwargs)
    cls = torch.optim.AdamW if opt.optimizer == "AdamW" else torch.optim.Adam
    return cls(params, **kwargs)
