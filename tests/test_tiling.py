"""Tiled network evaluation (uir.tiling): settings errors, tile layout, exact
blending, equality with the untiled call when a tile covers the image, seams, batching of the
tiles, per-image contexts, and a whole sampler on the wrapper."""
from __future__ import annotations

import pytest
import torch

from uir.runtime import NetworkCall
from uir.tiling import TiledDenoiser, TilePlan, TileSettings, tile_starts
from uir.models.unet import ConditionalUNet
from uir.samplers import build_sampler
from uir.sde.irsde import IRSDE

CONTEXT_DIM = 16


@pytest.fixture(scope="module")
def unet() -> NetworkCall:
    """A small random ConditionalUNet that reads both contexts (cross-attention in the middle),
    wrapped as the pipeline wraps the network."""
    torch.manual_seed(0)
    network = ConditionalUNet(3, 3, 16, ch_mult=[1, 2], context_dim=CONTEXT_DIM, use_degra_context=True,
                              use_image_context=True, linear_attn_heads=1, linear_attn_dim_head=8)
    return NetworkCall(network.eval().requires_grad_(False), torch.device("cpu"))


def smooth_inputs(batch: int, height: int, width: int, seed: int = 0):
    """A smooth LQ image `mu`, a state x near it, and per-image contexts."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    phase = torch.rand(batch, 3, 1, 1, generator=g) * 6
    mu = 0.5 + 0.4 * torch.sin(3 * xx + phase) * torch.cos(2 * yy + phase)
    x = mu + 0.02 * torch.randn(batch, 3, height, width, generator=g)
    text = torch.randn(batch, CONTEXT_DIM, generator=g)
    image = torch.randn(batch, CONTEXT_DIM, generator=g)
    return x, mu, text, image


def border_edge_ratio(out: torch.Tensor, ref: torch.Tensor, plan: TilePlan) -> float:
    """Mean |pixel step| of `out` across the tile borders (first and last row/column of each
    interior tile edge) over the same for the untiled `ref`: about 1 without seams."""
    height, width = out.shape[-2:]
    cols = {left for _, left, _, _ in plan.boxes if left > 0} | {
        left + w - 1 for _, left, _, w in plan.boxes if left + w < width}
    rows = {top for top, _, _, _ in plan.boxes if top > 0} | {top + h - 1 for top, _, h, _ in plan.boxes if top + h < height}
    def steps(t):
        dx = (t[..., 1:] - t[..., :-1]).abs()[..., sorted(cols)]
        dy = (t[..., 1:, :] - t[..., :-1, :]).abs()[..., sorted(rows), :]
        return torch.cat([dx.flatten(), dy.flatten()]).mean()
    return float(steps(out) / steps(ref))


# --- settings and layout -----------------------------------------------------------------

@pytest.mark.parametrize("block, message", [
    ({"size": 8}, "tile.size: must be >= 16, got 8"),
    ({"size": 64, "overlap": 64}, "tile.overlap: must be smaller than tile.size (64), got 64"),
    ({"size": 64, "overlap": -1}, "tile.overlap: must be >= 0, got -1"),
    ({"siz": 64}, "tile.siz: unknown key (did you mean 'size'?)"),
    ({"overlap": 8}, "tile.size: not set; the tile side in pixels"),
    ({"size": 64, "max_batch": 0}, "tile.max_batch: must be >= 1, got 0"),
    ({"size": "big"}, "tile.size: expected an integer, got 'big'"),
    (256, "tile: expected a mapping of keys"),
])
def test_settings_errors_name_the_key(block, message):
    with pytest.raises(ValueError) as info:
        TileSettings.from_dict(block)
    assert message in str(info.value)


def test_settings_defaults():
    assert TileSettings.from_dict({"size": 256}) == TileSettings(256, 32, None)
    assert TileSettings(256).tiles_per_call == 16 and TileSettings(2048).tiles_per_call == 1
    assert TileSettings(256, max_batch=3).tiles_per_call == 3
    assert TileSettings.from_dict({"size": 64.0, "overlap": 8}).size == 64
    assert isinstance(TileSettings.from_dict({"size": 64.0}).size, int)
    assert TileSettings(128, 16, 4).to_dict() == {"size": 128, "overlap": 16, "max_batch": 4}


@pytest.mark.parametrize("length, size, overlap", [(100, 64, 16), (2048, 256, 32), (1536, 256, 32), (500, 256, 32),
                                                   (65, 64, 0), (192, 64, 0), (17, 16, 15), (64, 64, 8)])
def test_tiles_cover_the_side_fully_sized_with_the_overlap(length, size, overlap):
    starts = tile_starts(length, size, overlap)
    assert starts[0] == 0 and starts[-1] + size == length
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0 < g <= size - overlap for g in gaps)  # neighbours overlap by >= overlap
    assert max(gaps, default=0) - min(gaps, default=0) <= 1  # spread evenly
    fewer = len(starts) - 1
    assert fewer == 0 or (fewer - 1) * (size - overlap) + size < length  # no tile to spare


def test_side_shorter_than_the_tile_is_one_tile():
    assert tile_starts(40, 64, 8) == [0]
    plan = TilePlan.build(40, 150, TileSettings(64, 8))
    assert {box[2:] for box in plan.boxes} == {(40, 64)} and len(plan) == 3


@pytest.mark.parametrize("height, width, size, overlap", [(96, 192, 64, 16), (37, 101, 16, 5), (50, 50, 32, 0),
                                                           (130, 70, 48, 40)])
def test_weights_positive_border_one_and_blend_exact(height, width, size, overlap):
    """For a pixel-wise network the blend is an exact weighted mean of identical values."""
    plan = TilePlan.build(height, width, TileSettings(size, overlap))
    assert all(float(w.min()) > 0 for w in plan.weights)
    assert float(plan.total.min()) > 0
    corner = [w for (top, left, _, _), w in zip(plan.boxes, plan.weights) if top == 0 and left == 0][0]
    assert float(corner[0, 0]) == 1.0  # the image border is never ramped down
    x = torch.randn(2, 3, height, width)
    tiled = TiledDenoiser(lambda x, mu, t, **_: torch.tanh(x) * mu + t, TileSettings(size, overlap, max_batch=5))
    torch.testing.assert_close(tiled(x, 2 * x, 0.5), torch.tanh(x) * 2 * x + 0.5, rtol=1e-6, atol=1e-6)


# --- against the untiled network ---------------------------------------------------------

def test_tile_covering_the_image_is_bit_identical(unet):
    x, mu, text, image = smooth_inputs(2, 48, 80)
    ref = unet(x, mu, 40.0, text_context=text, image_context=image)
    for settings in (TileSettings(80, 8), TileSettings(512, 64), TileSettings(96, 8, max_batch=2)):
        tiled = TiledDenoiser(unet, settings)
        assert torch.equal(tiled(x, mu, 40.0, text_context=text, image_context=image), ref)
        assert tiled.calls == 1


def test_one_tile_per_image_ignores_max_batch(unet):
    """A tile covering the image changes nothing: the batch goes whole, whatever max_batch."""
    x, mu, text, image = smooth_inputs(3, 32, 48)
    ref = unet(x, mu, 40.0, text_context=text, image_context=image)
    tiled = TiledDenoiser(unet, TileSettings(64, 8, max_batch=2))
    assert torch.equal(tiled(x, mu, 40.0, text_context=text, image_context=image), ref)
    assert tiled.calls == 1


def test_tiles_are_close_to_untiled_and_leave_no_seams(unet):
    """Measured: mean |output| 5.1e-2; with 64/16 tiles max |difference| 2.4e-3, RMS 2.5e-4 and
    edge ratio 1.01 at the tile borders; with tiles side by side (no overlap) the ratio is 16."""
    x, mu, text, image = smooth_inputs(2, 96, 192)
    ref = unet(x, mu, 40.0, text_context=text, image_context=image)
    scale = float(ref.abs().mean())
    tiled = TiledDenoiser(unet, TileSettings(64, 16))
    out = tiled(x, mu, 40.0, text_context=text, image_context=image)
    plan = tiled.plan(96, 192, x.device)
    assert len(plan) == 2 * 4
    assert float((out - ref).abs().max()) < 0.1 * scale
    assert float((out - ref).pow(2).mean().sqrt()) < 0.01 * scale
    assert border_edge_ratio(out, ref, plan) < 1.05

    hard = TiledDenoiser(unet, TileSettings(64, 0))  # tiles side by side: the measure sees the cuts
    assert border_edge_ratio(hard(x, mu, 40.0, text_context=text, image_context=image), ref, hard.plan(96, 192, x.device)) > 3


def test_tiles_of_all_images_go_in_one_call_or_in_chunks(unet):
    x, mu, text, image = smooth_inputs(2, 96, 192)
    seen = []

    def spy(x, mu, t, **contexts):
        seen.append(x.shape[0])
        return unet(x, mu, t, **contexts)

    TiledDenoiser(spy, TileSettings(64, 16))(x, mu, 40.0, text_context=text, image_context=image)
    assert seen == [16]  # 2 images x 8 tiles, one call (the default allows 256 tiles of 64 x 64)
    seen.clear()
    chunked = TiledDenoiser(spy, TileSettings(64, 16, max_batch=6))
    out = chunked(x, mu, 40.0, text_context=text, image_context=image)
    assert seen == [6, 6, 4] and chunked.calls == 3
    whole = TiledDenoiser(unet, TileSettings(64, 16))(x, mu, 40.0, text_context=text, image_context=image)
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-5)


def test_each_tile_gets_its_image_context_and_time():
    """A network that paints each tile with its context row and time: every image gets its own."""
    batch, height, width = 3, 40, 70
    text = torch.arange(batch, dtype=torch.float32)[:, None].repeat(1, 4)
    image = 10 * text
    times = torch.tensor([100.0, 200.0, 300.0])

    def painter(x, mu, t, *, text_context, image_context):
        assert x.shape[0] == text_context.shape[0] == image_context.shape[0] == t.shape[0]
        return (text_context[:, 0] + image_context[:, 0] + t).view(-1, 1, 1, 1).expand(-1, 3, *x.shape[-2:])

    tiled = TiledDenoiser(painter, TileSettings(32, 8, max_batch=4))
    out = tiled(torch.zeros(batch, 3, height, width), torch.zeros(batch, 3, height, width), times,
                text_context=text, image_context=image)
    expected = (11 * torch.arange(batch) + times).view(-1, 1, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected)


# --- a whole sampler on the wrapper --------------------------------------------------------

@pytest.mark.parametrize("options", [
    {"num_sample_steps": 5, "solver_type": "ode", "order": 2, "fit_target": "velocity"},
    {"num_sample_steps": 5, "solver_type": "sde", "order": 2, "fit_target": "velocity"},
])
def test_mr_sampler_runs_unchanged_on_tiles(unet, options):
    sde = IRSDE.create(50, 100, "cosine", 0.005)
    sampler = build_sampler("mrsampler", sde, options)
    x, mu, text, image = smooth_inputs(2, 64, 96)
    x_T = sde.prior_sample(mu, torch.randn(mu.shape, generator=torch.Generator().manual_seed(1)))

    def sample(model):
        return sampler.sample(model, x_T, mu, text_context=text, image_context=image,
                              noise=torch.Generator().manual_seed(2))

    ref = sample(unet)
    covering = TiledDenoiser(unet, TileSettings(96, 16))
    assert torch.equal(sample(covering).x, ref.x)
    tiled = TiledDenoiser(unet, TileSettings(48, 16))
    result = sample(tiled)
    assert result.model_calls == ref.model_calls == 5 and tiled.calls == 5
    assert result.timesteps == ref.timesteps
    assert float((result.x - ref.x).abs().mean()) < 0.01 * float(ref.x.abs().mean())
