"""MR Sampler for IR-SDE and the DA-CLIP universal image restoration pipeline.

Layout:
    uir.sde         IR-SDE: schedules, marginals, posterior, prediction conversions
    uir.samplers    sde (Euler-Maruyama), posterior, heun, mrsampler, registered in SAMPLERS;
                    each declares its options and settings columns; a per-step callback
    uir.models      ConditionalUNet, DA-CLIP (on open_clip_torch), checkpoint loading
    uir.data        paired LQ/GT folders, synthetic degradations, the demo set
    uir.metrics     PSNR / SSIM (reference and torch), LPIPS, FID, registered in METRICS
    uir.options     YAML options validated into typed blocks; the command line built from them
    uir.evaluation  the test.py pipeline: batching, conditioning, result tables
    uir.training    train.py: the IR-SDE training loop
    uir.api         ImageRestorer: restore images from Python (`uir.ImageRestorer` loads it on first use)

The package's floors, bottom to top (an import only runs downward; tests/test_layering.py):
common; sde, precision; samplers, models, data, metrics; runtime; restoration, tiling; options;
evaluation, training; benchmark, reporting; api.
"""

__version__ = "0.1.0"

__all__ = ["ImageRestorer", "NonFiniteResult", "__version__"]


def __getattr__(name: str):
    """`uir.ImageRestorer` loads the API (and with it evaluation, the metrics' libraries) on first
    use, so that `import uir.sde` costs little more than `import torch`."""
    if name in ("ImageRestorer", "NonFiniteResult"):
        from uir import api

        return getattr(api, name)
    raise AttributeError(f"module 'uir' has no attribute {name!r}")
