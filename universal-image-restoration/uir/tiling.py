"""Tiled network evaluation for images larger than memory (MultiDiffusion-style blending).

`TiledDenoiser` wraps the network as the samplers call it, ``net(x, mu, t, text_context=,
image_context=)``. At every evaluation it cuts `x` and `mu` into overlapping tiles, runs the tiles
of all images of the batch through the network in batches of `max_batch` tiles (by default about
a megapixel per call), and averages the tiles' outputs with smooth weights: each pixel gets the
weighted mean of the predictions of the tiles that cover it (the closed-form step of
MultiDiffusion, Bar-Tal et al. 2023). The sampler still sees whole images, so every sampler runs
unchanged; DA-CLIP contexts are computed by the caller from the whole image and repeated for each
of its tiles.

Tiles are `size` x `size` (smaller only along a side shorter than `size`); along each side the
fewest tiles that overlap their neighbours by at least `overlap` pixels are spread evenly from
one border to the other, so the edge tiles lie inside the image. A tile's weight is 1 inside and
falls along a raised cosine, never to zero, across each side it shares with a neighbour; sides on
the image border keep weight 1, and two neighbours' ramps over the same pixels sum to 1.

Sizes: the UNet reflect-pads its input to a multiple of ``2 ** len(ch_mult)`` (16 for the
published and demo networks), so a tile size that is such a multiple computes no padding; tiles
of one size let ``torch.compile`` reuse one graph. Where one tile covers the whole image the
network is called on the whole batch, as untiled, and the result is exactly the untiled one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from uir.common.checks import check_int, integer, optional
from uir.common.declared import Block, option
from uir.samplers.base import Denoiser

MIN_TILE_SIZE = 16
# The default `max_batch`: tiles per call adding up to about this many pixels (16 tiles of 256 x
# 256). Tiling saves memory only because a call holds fewer pixels than the whole image.
TILE_PIXELS_PER_CALL = 2**20


def _overlap(key: str, value: Any) -> int | None:
    return None if value is None else check_int(key, value, minimum=0)


@dataclass(frozen=True)
class TileSettings(Block):
    """`tile: {size: S, overlap: O, max_batch: N}`: tiles of S x S pixels overlapping by at least
    O (default S // 8); at most N tiles per network call (default: about a megapixel of tiles,
    `TILE_PIXELS_PER_CALL`; all tiles of all images of the batch go through in such chunks)."""

    section = "tile"

    size: int = option(check=integer(minimum=MIN_TILE_SIZE),
                       missing=f"the tile side in pixels, >= {MIN_TILE_SIZE}, best a multiple of 16")
    overlap: int | None = option(None, check=_overlap, help="pixels shared by neighbouring tiles (default size // 8)")
    max_batch: int | None = option(None, check=optional(integer(minimum=1)), help="tiles per network call")

    def __post_init__(self) -> None:
        overlap = self.size // 8 if self.overlap is None else self.overlap
        if overlap >= self.size:
            raise ValueError(f"tile.overlap: must be smaller than tile.size ({self.size}), got {overlap}")
        object.__setattr__(self, "overlap", overlap)

    @property
    def tiles_per_call(self) -> int:
        """`max_batch`, or the default: about `TILE_PIXELS_PER_CALL` pixels of tiles."""
        return self.max_batch or max(1, TILE_PIXELS_PER_CALL // self.size**2)


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets of the fewest tiles of `size` that cover a side of `length` with neighbours
    overlapping by at least `overlap`, spread evenly from 0 to `length - size` (so the edge tiles
    lie inside the image). One tile at 0 when the side is not longer than `size`."""
    if length <= size:
        return [0]
    count = math.ceil((length - overlap) / (size - overlap))
    return [math.floor(i * (length - size) / (count - 1) + 0.5) for i in range(count)]


def _ramp(n: int) -> Tensor:
    """n weights rising along a raised cosine from near 0 to near 1, never 0 or 1; ramp(n) and its
    reverse sum to 1 pixel by pixel."""
    i = torch.arange(n, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(math.pi * (i + 0.5) / n)


def axis_weights(starts: list[int], size: int) -> list[Tensor]:
    """One weight vector per tile along an axis: 1, times a rising ramp over the overlap with the
    previous tile and a falling ramp over the overlap with the next."""
    weights = []
    for k, start in enumerate(starts):
        w = torch.ones(size, dtype=torch.float64)
        if k > 0:
            rise = starts[k - 1] + size - start
            w[:rise] *= _ramp(rise)
        if k + 1 < len(starts):
            fall = start + size - starts[k + 1]
            w[size - fall:] *= _ramp(fall).flip(0)
        weights.append(w)
    return weights


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of an H x W image lie, their blending weights, and the weights' sum."""

    boxes: list[tuple[int, int, int, int]]  # (top, left, height, width)
    weights: list[Tensor]  # [h, w] per tile, float32
    total: Tensor  # [H, W] sum of the tiles' weights, > 0 everywhere

    @classmethod
    def build(cls, height: int, width: int, settings: TileSettings, device: torch.device | None = None) -> TilePlan:
        th, tw = min(settings.size, height), min(settings.size, width)
        rows, cols = tile_starts(height, th, settings.overlap), tile_starts(width, tw, settings.overlap)
        wy, wx = axis_weights(rows, th), axis_weights(cols, tw)
        boxes, weights = [], []
        total = torch.zeros(height, width, dtype=torch.float64)
        for r, top in enumerate(rows):
            for c, left in enumerate(cols):
                w = torch.outer(wy[r], wx[c])
                total[top:top + th, left:left + tw] += w
                boxes.append((top, left, th, tw))
                weights.append(w.to(device=device, dtype=torch.float32))
        return cls(boxes, weights, total.to(device=device, dtype=torch.float32))

    def __len__(self) -> int:
        return len(self.boxes)


def _repeat_per_tile(value: Any, batch: int, tiles: int) -> Any:
    """A per-image tensor (contexts, or one time per image) repeated for each image's tiles."""
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value.repeat_interleave(tiles, dim=0)
    return value


def _take(value: Any, rows: slice, batch_tiles: int) -> Any:
    """Rows `rows` of a per-tile tensor; anything else (a scalar time, None) unchanged."""
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch_tiles:
        return value[rows]
    return value


class TiledDenoiser:
    """``net(x, mu, t, text_context=, image_context=)`` evaluated tile by tile and blended
    (see the module docstring). `calls` counts the network calls made."""

    def __init__(self, network: Denoiser, settings: TileSettings):
        self.network = network
        self.settings = settings
        self.calls = 0
        self._plans: dict[tuple[int, int, torch.device], TilePlan] = {}

    def plan(self, height: int, width: int, device: torch.device) -> TilePlan:
        key = (height, width, device)
        if key not in self._plans:
            self._plans[key] = TilePlan.build(height, width, self.settings, device)
        return self._plans[key]

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor:
        batch, _, height, width = x.shape
        plan = self.plan(height, width, x.device)
        if len(plan) == 1:  # one tile covers the image: the untiled call itself, whatever max_batch
            self.calls += 1
            return self.network(x, mu, t, text_context=text_context, image_context=image_context)
        jobs = [(b, k) for b in range(batch) for k in range(len(plan))]  # (image, tile), image-major
        per_tile = [_repeat_per_tile(v, batch, len(plan)) for v in (t, text_context, image_context)]
        chunk = self.settings.tiles_per_call
        out = None
        for first in range(0, len(jobs), chunk):
            rows = slice(first, min(first + chunk, len(jobs)))
            pred = self._evaluate(x, mu, plan, jobs[rows], [_take(v, rows, len(jobs)) for v in per_tile])
            if out is None:
                dtype = torch.promote_types(pred.dtype, torch.float32)
                out = torch.zeros(batch, pred.shape[1], height, width, dtype=dtype, device=pred.device)
            for row, (b, k) in enumerate(jobs[rows]):
                y, z, h, w = plan.boxes[k]
                out[b, :, y:y + h, z:z + w] += pred[row] * plan.weights[k]
        return out / plan.total

    def _evaluate(self, x: Tensor, mu: Tensor, plan: TilePlan, jobs: list[tuple[int, int]], per_tile: list) -> Tensor:
        """One network call on the tiles `jobs` (image, tile) of x and mu, stacked as a batch."""
        x_tiles = torch.stack([_crop(x[b], plan.boxes[k]) for b, k in jobs])
        mu_tiles = torch.stack([_crop(mu[b], plan.boxes[k]) for b, k in jobs])
        t, text_context, image_context = per_tile
        self.calls += 1
        return self.network(x_tiles, mu_tiles, t, text_context=text_context, image_context=image_context)


def _crop(image: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    y, z, h, w = box
    return image[:, y:y + h, z:z + w]
