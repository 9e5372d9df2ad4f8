"""Synthetic degradations for the demo data set.

Every degradation is a pure function ``f(img, rng, **params) -> img`` on float32 RGB
images, HWC, values in [0, 1]. All randomness comes from the explicit
``numpy.random.Generator``; a parameter left out (``None``) is drawn from its range in
``PARAM_RANGES`` with that generator, so a call is deterministic given the generator state.

One line per task (model and default parameters; lengths in pixels, angles in degrees):

- noisy: J + n, n ~ N(0, (sigma/255)^2) per pixel and channel, sigma = 25 (the reference's
  ``degradation.sigma``), clipped to [0, 1].
- low-light: scale * J^gamma + N(0, (noise_sigma/255)^2), gamma ~ U[2, 3],
  scale ~ U[0.35, 0.65], noise_sigma ~ U[1, 4]; in the style of the gamma darkening + Gaussian
  noise of LLNet (Lore et al. 2017) and the gamma + linear scaling of Lv et al. (IJCV 2021).
- motion-blurry: J (*) k, k a normalised anti-aliased line of length ~ U[7, 15] at angle
  ~ U[0, 180), applied with cv2.filter2D and reflect-101 border.
- jpeg-compressed: OpenCV JPEG encode/decode at integer quality ~ U{10..30}.
- hazy: J t + A (1 - t), t = exp(-beta d), d a smooth synthetic depth map in [0.2, 1] (far at
  the top), beta ~ U[0.6, 1.4] (t in [0.25, 0.89]: moderate haze), grey airlight A ~ U[0.7, 1.0]
  (the airlight range of RESIDE).
- rainy: screen blend 1 - (1 - J)(1 - R) of a grey streak layer R: sparse drops (density
  ~ U[0.003, 0.007] per pixel) drawn as soft lines of length ~ U[12, 24], width ~ U[0.5, 0.9],
  angle ~ 90 + U[-20, 20] (near vertical), brightness ~ intensity * U[0.5, 1],
  intensity ~ U[0.5, 0.8].

Angles are counter-clockwise from the image's +x axis (rows point down), so 90 is vertical.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

__all__ = [
    "DEGRADATIONS",
    "PARAM_RANGES",
    "add_gaussian_noise",
    "add_haze",
    "add_jpeg_compression",
    "add_motion_blur",
    "add_rain",
    "darken",
    "line_kernel",
    "rain_streak_kernel",
    "sample_params",
    "synthetic_depth",
]

# (low, high) draws uniformly in [low, high); a bare number is a fixed value;
# ("int", low, high) draws an integer in [low, high] inclusive.
PARAM_RANGES: dict[str, dict[str, object]] = {
    "motion-blurry": {"length": (7.0, 15.0), "angle": (0.0, 180.0)},
    "hazy": {"beta": (0.6, 1.4), "airlight": (0.7, 1.0)},
    "jpeg-compressed": {"quality": ("int", 10, 30)},
    "low-light": {"gamma": (2.0, 3.0), "scale": (0.35, 0.65), "noise_sigma": (1.0, 4.0)},
    "noisy": {"sigma": 25.0},
    "rainy": {
        "density": (0.003, 0.007),
        "length": (12.0, 24.0),
        "width": (0.5, 0.9),
        "angle": (70.0, 110.0),
        "intensity": (0.5, 0.8),
    },
}

NEAR_DEPTH = 0.2  # nearest depth of the synthetic depth map (the farthest is 1)


def sample_params(task: str, rng: np.random.Generator) -> dict[str, float | int]:
    """Draw the scalar parameters of ``task`` from ``PARAM_RANGES[task]`` (in key order)."""
    if task not in PARAM_RANGES:
        raise ValueError(f"unknown degradation task {task!r}; valid: {sorted(PARAM_RANGES)}")
    params: dict[str, float | int] = {}
    for key, spec in PARAM_RANGES[task].items():
        params[key] = _draw(spec, rng)
    return params


def _draw(spec: object, rng: np.random.Generator) -> float | int:
    if isinstance(spec, tuple) and spec[0] == "int":
        return int(rng.integers(spec[1], spec[2] + 1))
    if isinstance(spec, tuple):
        return float(rng.uniform(spec[0], spec[1]))
    return spec  # fixed value


def _resolve(task: str, rng: np.random.Generator, given: dict[str, object]) -> dict:
    """Fill the parameters left as None with draws from their ranges (in key order)."""
    return {
        key: given[key] if given.get(key) is not None else _draw(spec, rng)
        for key, spec in PARAM_RANGES[task].items()
    }


def _as_image(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or not np.issubdtype(img.dtype, np.floating):
        raise ValueError(
            f"expected a float RGB image of shape (H, W, 3) in [0, 1], got dtype {img.dtype} "
            f"and shape {img.shape}"
        )
    return img.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- noise


def add_gaussian_noise(img, rng, *, sigma=None):
    """noisy: clip(J + N(0, (sigma/255)^2)); sigma in 8-bit units, default 25."""
    img = _as_image(img)
    p = _resolve("noisy", rng, {"sigma": sigma})
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(p["sigma"] / 255.0)
    return np.clip(img + noise, 0.0, 1.0)


def darken(img, rng, *, gamma=None, scale=None, noise_sigma=None):
    """low-light: clip(scale * J^gamma + N(0, (noise_sigma/255)^2)); noise_sigma in 8-bit units."""
    img = _as_image(img)
    p = _resolve("low-light", rng, {"gamma": gamma, "scale": scale, "noise_sigma": noise_sigma})
    dark = np.float32(p["scale"]) * np.power(img, np.float32(p["gamma"]))
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(p["noise_sigma"] / 255.0)
    return np.clip(dark + noise, 0.0, 1.0)


# ----------------------------------------------------------------------------- blur


def line_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised anti-aliased line of ``length`` pixels through the centre at ``angle`` degrees.

    The segment [-length/2, length/2] is sampled densely and each sample is spread bilinearly
    over its four neighbouring pixels, so a horizontal line of integer length L puts weight on
    about L pixels. The kernel is odd-sized, point-symmetric (correlation == convolution) and
    sums to 1.
    """
    if not length >= 1.0:
        raise ValueError(f"motion kernel length must be >= 1 pixel, got {length}")
    radius = int(np.ceil(length / 2.0)) + 1
    size = 2 * radius + 1
    n = 16 * int(np.ceil(length))
    t = (np.arange(n) + 0.5) * (length / n) - length / 2.0
    theta = np.deg2rad(angle)
    x = radius + t * np.cos(theta)
    y = radius - t * np.sin(theta)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((size, size), dtype=np.float64)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                      (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    return (kernel / kernel.sum()).astype(np.float32)


def add_motion_blur(img, rng, *, length=None, angle=None):
    """motion-blurry: J (*) line_kernel(length, angle) with cv2.filter2D, reflect-101 border."""
    img = _as_image(img)
    p = _resolve("motion-blurry", rng, {"length": length, "angle": angle})
    kernel = line_kernel(p["length"], p["angle"])
    out = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- jpeg


def add_jpeg_compression(img, rng, *, quality=None):
    """jpeg-compressed: round to 8 bits, OpenCV JPEG encode at ``quality`` (0-100), decode."""
    img = _as_image(img)
    p = _resolve("jpeg-compressed", rng, {"quality": quality})
    quality = int(p["quality"])
    if not 0 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 0..100, got {quality}")
    bgr = np.round(np.clip(img, 0.0, 1.0)[:, :, ::-1] * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError("OpenCV failed to JPEG-encode the image")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(decoded[:, :, ::-1]).astype(np.float32) / np.float32(255.0)


# ----------------------------------------------------------------------------- haze


def synthetic_depth(shape: tuple[int, int], rng: np.random.Generator, near: float = NEAR_DEPTH):
    """Smooth depth map in [near, 1]: 0.6 * vertical ramp (far at the top) + 0.4 * a smooth
    random field (4x4 Gaussian noise upsampled bicubically), rescaled to [near, 1]."""
    h, w = shape
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    coarse = rng.standard_normal((4, 4)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    depth = 0.6 * ramp + 0.4 * field
    depth = (depth - depth.min()) / max(float(depth.max() - depth.min()), 1e-6)
    return (near + (1.0 - near) * depth).astype(np.float32)


def add_haze(img, rng, *, beta=None, airlight=None, depth=None):
    """hazy: J t + A (1 - t), t = exp(-beta d); ``depth`` (H, W) defaults to synthetic_depth."""
    img = _as_image(img)
    p = _resolve("hazy", rng, {"beta": beta, "airlight": airlight})
    if depth is None:
        depth = synthetic_depth(img.shape[:2], rng)
    depth = np.broadcast_to(np.asarray(depth, dtype=np.float32), img.shape[:2])
    t = np.exp(-np.float32(p["beta"]) * depth)[:, :, None]
    return np.clip(img * t + np.float32(p["airlight"]) * (1.0 - t), 0.0, 1.0)


# ----------------------------------------------------------------------------- rain


def rain_streak_kernel(length: float, width: float, angle: float) -> np.ndarray:
    """Soft line with peak 1: exp(-dist^2 / (2 width^2)), dist = distance to a centred segment
    of ``length`` pixels at ``angle`` degrees."""
    if not (length >= 1.0 and width > 0.0):
        raise ValueError(f"rain streak needs length >= 1 and width > 0, got {length}, {width}")
    radius = int(np.ceil(length / 2.0 + 3.0 * width))
    coords = np.arange(-radius, radius + 1, dtype=np.float64)
    y, x = np.meshgrid(-coords, coords, indexing="ij")  # y points up
    theta = np.deg2rad(angle)
    along = x * np.cos(theta) + y * np.sin(theta)
    across = -x * np.sin(theta) + y * np.cos(theta)
    overshoot = np.maximum(np.abs(along) - length / 2.0, 0.0)
    dist2 = across**2 + overshoot**2
    return np.exp(-dist2 / (2.0 * width**2)).astype(np.float32)


def add_rain(img, rng, *, density=None, length=None, width=None, angle=None, intensity=None):
    """rainy: 1 - (1 - J)(1 - R), R = clip(drops (*) rain_streak_kernel) * intensity, grey."""
    img = _as_image(img)
    p = _resolve(
        "rainy", rng,
        {"density": density, "length": length, "width": width, "angle": angle,
         "intensity": intensity},
    )
    h, w = img.shape[:2]
    is_drop = rng.random((h, w)) < p["density"]
    drops = (is_drop * rng.uniform(0.5, 1.0, (h, w))).astype(np.float32)
    kernel = rain_streak_kernel(p["length"], p["width"], p["angle"])
    streaks = cv2.filter2D(drops, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    rain = (np.clip(streaks, 0.0, 1.0) * np.float32(p["intensity"]))[:, :, None]
    return np.clip(1.0 - (1.0 - img) * (1.0 - rain), 0.0, 1.0)


DEGRADATIONS: dict[str, Callable[..., np.ndarray]] = {
    "motion-blurry": add_motion_blur,
    "hazy": add_haze,
    "jpeg-compressed": add_jpeg_compression,
    "low-light": darken,
    "noisy": add_gaussian_noise,
    "rainy": add_rain,
}
