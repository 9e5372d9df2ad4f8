"""DA-CLIP on open_clip: the reference's features (daclip_golden.pt, config read from the file),
its state-dict layout (full-size ViT-B-32 manifest), the reverse-order controller, the CLIP
preprocessing (bit-exact against the reference's PIL/torchvision path on a real photo),
checkpoint errors and bfloat16 autocast."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

from uir.models.checkpoint import CheckpointMismatchError, CheckpointNotFoundError
from uir.models.clip_preprocess import center_crop_offsets, clip_preprocess, resized_size
from uir.models.daclip import DaCLIP, build_daclip, load_daclip

ATOL = 1e-5
FEATURES = ("image_features", "degra_features", "plain_image_features", "text_features")
# bfloat16 keeps 8 significant bits (float16 11): allow 3 % relative error per feature vector.
LOW_PRECISION_RTOL = 0.03
LOW_PRECISION = [torch.bfloat16, torch.float16]


@pytest.fixture(scope="module")
def data(golden):
    return golden("daclip_golden.pt")


@pytest.fixture(scope="module")
def small(data) -> DaCLIP:
    model = build_daclip(data["config"]).eval()
    model.load_state_dict(data["state_dict"], strict=True)
    return model


def all_features(model: DaCLIP, image: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        image_features, degra_features = model.encode_image(image, control=True)
        return {
            "image_features": image_features,
            "degra_features": degra_features,
            "plain_image_features": model.encode_image(image, control=False),
            "text_features": model.encode_text(tokens),
        }


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.float() - want).norm(dim=-1) / want.norm(dim=-1)).max().item()


# ---------------------------------------------------------------- goldens


def test_golden_state_dict_keys_and_shapes(data):
    model = build_daclip(data["config"])
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in data["state_dict"].items()}
    assert own == given


def test_golden_features(data, small):
    got = all_features(small, data["image"], data["tokens"])
    for name in FEATURES:
        want = data[name]
        assert got[name].shape == want.shape, name
        torch.testing.assert_close(got[name], want, atol=ATOL, rtol=0, msg=name)


def test_golden_normalize_flag_normalises_the_same_features(data, small):
    with torch.no_grad():
        image_n, degra_n = small.encode_image(data["image"], control=True, normalize=True)
        text_n = small.encode_text(data["tokens"], normalize=True)
    for got, name in ((image_n, "image_features"), (degra_n, "degra_features"), (text_n, "text_features")):
        torch.testing.assert_close(got, torch.nn.functional.normalize(data[name], dim=-1), atol=ATOL, rtol=0)


def test_controls_enter_the_main_tower_in_reverse_order(data, small):
    """Block i of the main tower gets controller block L-1-i's signal; the forward order does not
    reproduce the reference."""
    with torch.no_grad():
        _, controls = small.encode_degradation(data["image"])
        reverse = small.encode_image_controlled(data["image"], controls)
        forward = small.encode_image_controlled(data["image"], controls[::-1])
    assert len(controls) == len(small.visual.transformer.resblocks) > 1
    torch.testing.assert_close(reverse, data["image_features"], atol=ATOL, rtol=0)
    assert (forward - data["image_features"]).abs().max() > 100 * ATOL


def test_load_daclip_reads_a_reference_checkpoint(data, tmp_path):
    path = tmp_path / "daclip.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in data["state_dict"].items()}}, path)
    model = load_daclip(path, config=data["config"])
    assert not model.training
    got = all_features(model, data["image"], data["tokens"])
    for name in FEATURES:
        torch.testing.assert_close(got[name], data[name], atol=ATOL, rtol=0, msg=name)


# ---------------------------------------------------------------- structure


def test_full_size_state_dict_matches_manifest(golden):
    manifest = golden("daclip_ViT-B-32_state_dict_manifest.json")
    model = build_daclip("ViT-B-32")
    state = model.state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == manifest
    # the second registration of the image tower shares its tensors with clip.visual
    assert state["visual.proj"].data_ptr() == state["clip.visual.proj"].data_ptr()
    assert state["visual_control.proj"].data_ptr() != state["visual.proj"].data_ptr()


def test_fresh_controller_is_a_zeroed_copy(data):
    model = build_daclip(data["config"]).eval()
    state = model.state_dict()
    zero_keys = [k for k in state if ".zero_modules." in k]
    assert len(zero_keys) == 2 * len(model.visual.transformer.resblocks)
    assert all(torch.count_nonzero(state[k]) == 0 for k in zero_keys)
    copied = {k[len("visual_control."):]: v for k, v in state.items() if k.startswith("visual_control.")}
    for key, value in copied.items():
        original = key.replace("transformer.transformer.", "transformer.")
        if ".zero_modules." not in key:
            assert torch.equal(value, state[f"visual.{original}"]), key
    # zero controls leave the image features unchanged
    image = torch.randn(2, 3, *model.visual.image_size)
    with torch.no_grad():
        controlled, _ = model.encode_image(image, control=True)
        plain = model.encode_image(image)
    torch.testing.assert_close(controlled, plain, atol=0, rtol=0)


def test_unknown_configs_are_rejected(data):
    with pytest.raises(ValueError, match="unknown DA-CLIP model config 'ViT-Nope'"):
        build_daclip("ViT-Nope")
    with pytest.raises(ValueError, match="lacks \\['text_cfg'\\]"):
        build_daclip({k: v for k, v in data["config"].items() if k != "text_cfg"})
    with pytest.raises(ValueError, match="unsupported keys \\['colour'\\]"):
        build_daclip({**data["config"], "colour": 1})
    attn_pool = {**data["config"], "vision_cfg": {**data["config"]["vision_cfg"], "pool_type": "avg"}}
    with pytest.raises(ValueError, match="class-token pooling"):
        build_daclip(attn_pool)


# ---------------------------------------------------------------- checkpoint errors


def test_missing_checkpoint_names_the_option(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="path.daclip"):
        load_daclip(tmp_path / "nowhere.pt")


def test_mismatched_checkpoint_names_the_expected_configuration(data, tmp_path):
    path = tmp_path / "small.pt"
    torch.save(data["state_dict"], path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_daclip(path, config="ViT-B-32")
    message = str(err.value)
    assert "DA-CLIP ViT-B-32" in message
    assert "different shape" in message and "clip.positional_embedding" in message

    deeper = {**data["config"], "vision_cfg": {**data["config"]["vision_cfg"], "layers": data["config"]["vision_cfg"]["layers"] + 1}}
    with pytest.raises(CheckpointMismatchError) as err:
        load_daclip(path, config=deeper)
    message = str(err.value)
    assert "'layers': " + str(deeper["vision_cfg"]["layers"]) in message
    assert f"clip.visual.transformer.resblocks.{deeper['vision_cfg']['layers'] - 1}." in message


# ---------------------------------------------------------------- preprocessing


def reference_clip_input(rgb01: np.ndarray, size: int) -> torch.Tensor:
    """The reference's clip_transform: uint8 by truncation, PIL, torchvision transforms."""
    transform = Compose([
        Resize(size, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(size),
        ToTensor(),
        Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD),
    ])
    return transform(Image.fromarray((rgb01 * 255).astype(np.uint8)))


@pytest.mark.parametrize(
    "rows, cols, size",
    [
        (slice(None), slice(None), 224),  # 512 x 512, square
        (slice(0, 301), slice(None), 224),  # landscape, odd crop offset (banker's rounding)
        (slice(7, 512), slice(0, 333), 224),  # portrait
        (slice(100, 200), slice(200, 350), 224),  # upsampling
        (slice(0, 227), slice(0, 224), 224),  # no resize, crop only
        (slice(None), slice(200, 300), 64),  # tall: Pillow 13 resizes vertically first
    ],
)
def test_preprocess_equals_reference_pil_path(rows, cols, size):
    rgb01 = np.ascontiguousarray(skimage.data.astronaut()[rows, cols]).astype(np.float32) / 255.0
    want = reference_clip_input(rgb01, size)
    got = clip_preprocess(torch.from_numpy(rgb01).permute(2, 0, 1)[None], size=size)
    assert got.shape == (1, 3, size, size) and got.dtype == torch.float32
    # Pillow's fixed-point resize is reproduced exactly: tolerance 0.
    torch.testing.assert_close(got[0], want, atol=0, rtol=0)


def test_preprocess_batches_and_truncates_to_8_bits():
    images = torch.rand(3, 3, 50, 61)
    batched = clip_preprocess(images, size=32)
    assert batched.shape == (3, 3, 32, 32)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], clip_preprocess(images[i : i + 1], size=32), atol=0, rtol=0)
    # 0.5 * 255 = 127.5 truncates to 127 (the reference's astype(uint8)), not 128
    flat = clip_preprocess(torch.full((1, 3, 40, 40), 0.5), size=16)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(flat, ((127 / 255.0 - mean) / std).expand(1, 3, 16, 16), atol=1e-6, rtol=0)


def test_preprocess_geometry_follows_torchvision():
    assert resized_size(301, 512, 224) == (224, 381)  # int(224 * 512 / 301) = 381
    assert resized_size(505, 333, 224) == (339, 224)
    assert center_crop_offsets(224, 381, 224) == (0, 78)  # round(78.5) = 78
    assert center_crop_offsets(227, 224, 224) == (2, 0)  # round(1.5) = 2


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        clip_preprocess(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="float tensor"):
        clip_preprocess(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_contexts_preprocess_and_encode(small):
    images = torch.rand(2, 3, 70, 90)
    image_context, degra_context = small.contexts(images)
    with torch.no_grad():
        want_image, want_degra = small.encode_image(clip_preprocess(images, size=small.image_size), control=True)
    assert image_context.dtype == degra_context.dtype == torch.float32
    torch.testing.assert_close(image_context, want_image, atol=0, rtol=0)
    torch.testing.assert_close(degra_context, want_degra, atol=0, rtol=0)


# ---------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_autocast_on_cpu(data, small, dtype):
    with torch.autocast("cpu", dtype=dtype):
        got = all_features(small, data["image"], data["tokens"])
    for name in FEATURES:
        assert torch.isfinite(got[name]).all(), name
        assert relative_error(got[name], data[name]) < LOW_PRECISION_RTOL, name
    images = torch.rand(2, 3, 70, 90)
    low = small.contexts(images, autocast_dtype=dtype)
    full = small.contexts(images)
    for got_context, want_context in zip(low, full):
        assert got_context.dtype == torch.float32
        assert relative_error(got_context, want_context) < LOW_PRECISION_RTOL


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_weights_on_cpu(data, dtype):
    model = build_daclip(data["config"]).eval()
    model.load_state_dict(data["state_dict"])
    got = all_features(model.to(dtype), data["image"], data["tokens"])
    for name in FEATURES:
        assert got[name].dtype == dtype, name
        assert relative_error(got[name], data[name]) < LOW_PRECISION_RTOL, name
