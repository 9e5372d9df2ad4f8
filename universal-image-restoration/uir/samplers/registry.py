"""The registry of samplers: a YAML `sde.algorithm` (or sweep `sampler:`) name -> sampler class.

The built-ins register themselves when `uir.samplers` is imported: `sde` (Euler-Maruyama; the
reference's name), `posterior`, `heun` and `mrsampler`. A sampler of one's own is one class:

    from uir.samplers import SAMPLERS, BaseSampler

    @SAMPLERS.register("my-sampler")
    class MySampler(BaseSampler):
        ...

and every options check, table, sweep and help text knows it from then on.
"""
from __future__ import annotations

from uir.common.registry import Registry

# name -> sampler class (a `uir.samplers.base.BaseSampler` subclass); `build_sampler` builds one.
SAMPLERS: Registry[type] = Registry("sampler", key="sde.algorithm")
