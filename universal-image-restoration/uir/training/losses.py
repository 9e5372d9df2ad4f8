"""Training objectives of IR-SDE for the three prediction targets.

With x_t = alpha_t x_0 + (1 - alpha_t) mu + sigma_bar_t eps (t an integer in 1..T):

- noise (the reference's objective, IR-SDE "maximum likelihood" matching): the network's
  eps_hat gives the score -eps_hat / sigma_bar_t and the reverse-SDE step mean
  x_t - (theta_t (mu - x_t) - g_t^2 score) dt, which is matched to the optimal posterior
  mean E[x_{t-1} | x_t, x_0]:  loss = |step_mean - posterior_mean|.
- data: the network predicts x_0:  loss = |x0_hat - x_0|.
- velocity: the network predicts v = sigma_inf alpha_t eps - (sigma_bar_t / sigma_inf)(x_0 - mu)
  (`uir.sde.predictions.velocity_from`):  loss = |v_hat - v|.

`|.|` is the mean absolute (l1) or mean squared (l2) error, averaged per sample and then over
the batch, as the reference's MatchingLoss does.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from uir.common.checks import check_choice
from uir.sde.irsde import IRSDE
from uir.sde.predictions import FIT_TARGETS, velocity_from

LOSS_TYPES = ("l1", "l2")


def regression_loss(prediction: Tensor, target: Tensor, loss_type: str = "l1") -> Tensor:
    """Per-sample mean of |p - y| (l1) or (p - y)^2 (l2), then the mean over the batch."""
    check_choice("train.loss_type", loss_type, LOSS_TYPES)
    diff = prediction - target
    per_pixel = diff.abs() if loss_type == "l1" else diff.square()
    return per_pixel.reshape(per_pixel.shape[0], -1).mean(dim=1).mean()


def matching_targets(sde: IRSDE, noise_hat: Tensor, xt: Tensor, x0: Tensor, mu: Tensor, t: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """(reverse-SDE step mean from the predicted noise, optimal posterior mean) at x_t."""
    score = sde.score_from_noise(noise_hat, t)
    step_mean = xt - sde.reverse_sde_drift(xt, score, mu, t)
    return step_mean, sde.posterior_mean(xt, x0, mu, t)


def regression_target(sde: IRSDE, fit_target: str, x0: Tensor, mu: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """What a `data` or `velocity` network should output for the state noised with `noise` at `t`."""
    if fit_target == "data":
        return x0
    if fit_target == "velocity":
        alpha = sde.coefficient(sde.alphas, t, x0)
        sigma = sde.coefficient(sde.sigma_bars, t, x0)
        return velocity_from(noise, x0, mu, alpha, sigma, sde.sigma_inf)
    raise ValueError(f"fit_target: no regression target for {fit_target!r}; valid: data, velocity")


def training_loss(
    sde: IRSDE,
    fit_target: str,
    output: Tensor,
    *,
    xt: Tensor,
    x0: Tensor,
    mu: Tensor,
    t: Tensor,
    noise: Tensor,
    loss_type: str = "l1",
) -> Tensor:
    """The loss of the network `output` at the state `xt` = sde.noise_state(x0, mu, t, noise)."""
    check_choice("fit_target", fit_target, FIT_TARGETS)
    if fit_target == "noise":
        step_mean, optimum = matching_targets(sde, output, xt, x0, mu, t)
        return regression_loss(step_mean, optimum, loss_type)
    return regression_loss(output, regression_target(sde, fit_target, x0, mu, t, noise), loss_type)


def sample_timesteps(batch: int, T: int, generator: torch.Generator) -> Tensor:
    """Integer times uniform in 1..T, one per sample (as the reference's generate_random_states)."""
    return torch.randint(1, T + 1, (batch,), generator=generator, device=generator.device)


def train_step(model: nn.Module, sde: IRSDE, fit_target: str, lq: Tensor, gt: Tensor, t: Tensor, noise: Tensor,
               loss_type: str = "l1", contexts: tuple[Tensor | None, Tensor | None] = (None, None)) -> Tensor:
    """The loss of one batch (differentiable): the network at x_t = noise_state(gt, lq, t, noise),
    called as the reference does, `model(x_t, lq, t, text_context=degra_context,
    image_context=image_context)` with `contexts` = (image_context, degra_context) from DA-CLIP
    (None for a network that reads none) and the integer times as floats."""
    image_context, degra_context = contexts
    xt = sde.noise_state(gt, lq, t, noise)
    output = model(xt, lq, t.to(torch.float32), text_context=degra_context, image_context=image_context)
    return training_loss(sde, fit_target, output, xt=xt, x0=gt, mu=lq, t=t, noise=noise, loss_type=loss_type)
