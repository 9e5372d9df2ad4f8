"""How the network's weights start: PyTorch's default initialisation, `noise_skip` or `zero_output`.

`noise_skip` (ConditionalUNet only) sets a linear path so that the untrained network outputs

    eps_hat = (x_t - mu) / sigma_inf,

the exact noise at t = T, for every spatial frequency. The rest of the network starts at
PyTorch's defaults and learns the corrections. Why: with the noise target, the samplers turn
eps_hat into x0_hat = (x_t - mu - sigma_bar eps_hat) / alpha_t + mu, and alpha_T = eps (0.005)
amplifies any noise the network leaves in x_t - mu by up to 1 / eps. A network trained from
the default initialisation learns the noise at high spatial frequencies quickly, but its
response to low-frequency noise (period >= ~32 pixels: a few modes per crop, a tiny share of
the loss) stays near zero for a long time, so short trainings sample large low-frequency
blotches. Starting from the skip, the low frequencies are treated as noise at large t until
the data says otherwise. The architecture and the checkpoint format do not change.

`zero_output` zeroes the last convolution: the untrained network outputs 0, which for the
velocity target is the "no change" prediction at every time (see `init_zero_output`).
"""
from __future__ import annotations

import torch
from torch import nn

from uir.models.unet import ConditionalUNet

NETWORK_INITS = ("default", "noise_skip", "zero_output")


@torch.no_grad()
def init_noise_skip(model: nn.Module, sigma_inf: float) -> None:
    """Make `model` (a ConditionalUNet with out_nc == in_nc <= nf) output (x_t - mu) / sigma_inf.

    The first conv sees cat(x_t - mu, mu); the path goes through its first n channels, the final
    block's 1x1 residual conv and the last conv. The rest of the network keeps PyTorch's
    initialisation and adds nothing to those channels until it learns to.
    """
    if not isinstance(model, ConditionalUNet):
        raise ValueError(f"train.init: noise_skip needs a ConditionalUNet, got {type(model).__name__}")
    w_in = model.init_conv.weight  # [nf, 2 n, k, k]; input channels: x_t - mu, then mu
    w_res = model.final_res_block.res_conv.weight  # [nf, 2 nf, 1, 1]; input: cat(unet output, x_init)
    w_h = model.final_res_block.block2.proj.weight  # [nf, nf, 3, 3]
    w_out = model.final_conv.weight  # [out_nc, nf, 3, 3]
    nf, n = w_in.shape[0], w_in.shape[1] // 2
    if w_out.shape[0] != n or n > nf:
        raise ValueError(
            f"train.init: noise_skip needs out_nc == in_nc <= nf, got in_nc {n}, out_nc {w_out.shape[0]}, nf {nf}"
        )
    eye = torch.eye(n, dtype=w_in.dtype)
    centre = w_in.shape[-1] // 2
    w_in[:n].zero_()
    w_in[:n, :n, centre, centre] = eye  # x_init[:n] = x_t - mu
    w_res[:n].zero_()
    w_res[:n, nf:nf + n, 0, 0] = eye  # the final block passes x_init[:n] through ...
    w_h[:n].zero_()  # ... and adds nothing to those channels yet
    w_out.zero_()
    w_out[:, :n, 1, 1] = eye / sigma_inf
    model.final_conv.bias.zero_()


@torch.no_grad()
def init_zero_output(model: nn.Module) -> None:
    """PyTorch's initialisation with the last layer zeroed: the untrained network outputs 0.

    For a velocity network, v_hat = 0 means x0_hat = mu + alpha_t (x_t - mu): x_t itself at
    small t and the LQ image at t = T, so sampling starts from "no change" at every time.
    """
    if not isinstance(model, ConditionalUNet):
        raise ValueError(f"train.init: zero_output needs a ConditionalUNet, got {type(model).__name__}")
    model.final_conv.weight.zero_()
    model.final_conv.bias.zero_()


def initialise(model: nn.Module, init: str, sigma_inf: float) -> None:
    if init == "noise_skip":
        init_noise_skip(model, sigma_inf)
    elif init == "zero_output":
        init_zero_output(model)
    elif init != "default":
        raise ValueError(f"train.init: {init!r} is not valid; valid values: {', '.join(NETWORK_INITS)}")
