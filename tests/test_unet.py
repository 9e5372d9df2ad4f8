"""ConditionalUNet: reference goldens, the published state-dict layout, shapes, batching,
mixed precision, and the `network_G` builder."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from uir.models.networks import build_network, describe_network, network_arguments
from uir.models.unet import ConditionalUNet
from uir.models.unet.blocks import reflect_pad_to_multiple

FULL_SIZE = dict(
    in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512, use_degra_context=True, use_image_context=True
)
FULL_SIZE_PARAMETERS = 48_975_747
SMALL = dict(
    in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2, 2, 2], context_dim=64, use_degra_context=True, use_image_context=True
)


@pytest.fixture(scope="module")
def small_model() -> ConditionalUNet:
    """Both contexts, SpatialTransformers at level 3 and the middle, every parameter random
    (the zero-initialised projections too) at a scale that keeps activations near 1."""
    torch.manual_seed(0)
    model = ConditionalUNet(**SMALL).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".g", "norm.weight", "norm1.weight", "norm2.weight", "norm3.weight")):
                p.normal_(1.0, 0.1)
            elif name == "prompt":  # softmax weights are ~1/(4 nf): a large prompt makes it count
                p.normal_(0.0, 10.0)
            elif p.ndim >= 2:
                p.normal_(0.0, 0.5 / math.sqrt(p[0].numel()))
            else:
                p.normal_(0.0, 0.05)
    return model


def small_inputs(batch: int, height: int, width: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    xt = torch.randn(batch, 3, height, width, generator=g)
    cond = torch.rand(batch, 3, height, width, generator=g)
    time = torch.rand(batch, generator=g) * 100
    text = torch.randn(batch, SMALL["context_dim"], generator=g)
    image = torch.randn(batch, SMALL["context_dim"], generator=g)
    return xt, cond, time, text, image


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx.float() - exact).norm() / exact.norm())


# --- the reference goldens --------------------------------------------------------------

def test_golden_outputs_every_case(golden):
    cases = golden("unet_golden.pt")["cases"]
    assert cases, "unet_golden.pt holds no cases"
    for i, case in enumerate(cases):
        model = build_network("ConditionalUNet", case["config"]).eval()
        model.load_state_dict(case["state_dict"], strict=True)
        with torch.no_grad():
            out = model(
                case["xt"], case["cond"], case["time"],
                text_context=case["text_context"], image_context=case["image_context"],
            )
        assert out.shape == case["output"].shape, f"case {i} ({case['config']})"
        torch.testing.assert_close(out, case["output"], atol=1e-4, rtol=0, msg=lambda m: f"case {i}: {m}")


def test_full_size_matches_published_manifest(golden):
    manifest = golden("universal_ir_state_dict_manifest.json")
    model = build_network("ConditionalUNet", FULL_SIZE)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == manifest
    assert sum(math.prod(s) for s in manifest.values()) == FULL_SIZE_PARAMETERS
    assert sum(p.numel() for p in model.parameters()) == FULL_SIZE_PARAMETERS


# --- shapes, padding ---------------------------------------------------------------------

@pytest.mark.parametrize("height,width", [(16, 16), (20, 28), (17, 33), (5, 3), (1, 1), (40, 9)])
def test_output_has_input_size(small_model, height, width):
    xt, cond, time, text, image = small_inputs(1, height, width)
    with torch.no_grad():
        out = small_model(xt, cond, time, text, image)
    assert out.shape == xt.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("height,width,multiple", [(20, 28, 16), (17, 9, 8), (16, 31, 16), (3, 5, 4)])
def test_padding_is_the_reference_reflection(height, width, multiple):
    x = torch.randn(2, 6, height, width)
    expected = F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="reflect")
    assert torch.equal(reflect_pad_to_multiple(x, multiple), expected)


def test_padding_of_tiny_inputs_keeps_the_image_and_reaches_the_multiple():
    x = torch.randn(1, 2, 5, 1)
    padded = reflect_pad_to_multiple(x, 16)
    assert padded.shape == (1, 2, 16, 16)
    assert torch.equal(padded[..., :5, :1], x)
    # one reflection of rows 0..4 gives rows 3, 2, 1, 0 next; width 1 is replicated
    assert torch.equal(padded[..., 5:9, 0], x[..., [3, 2, 1, 0], 0])
    assert torch.equal(padded[..., :5, 7], x[..., :5, 0])


# --- time, batching ----------------------------------------------------------------------

def test_time_as_number_0d_tensor_or_per_sample_tensor(small_model):
    xt, cond, _, text, image = small_inputs(2, 20, 28)
    with torch.no_grad():
        from_float = small_model(xt, cond, 37.5, text, image)
        from_0d = small_model(xt, cond, torch.tensor(37.5), text, image)
        from_vector = small_model(xt, cond, torch.tensor([37.5, 37.5]), text, image)
        from_int = small_model(xt, cond, 37, text, image)
        from_int_vector = small_model(xt, cond, torch.tensor([37.0, 37.0]), text, image)
    torch.testing.assert_close(from_0d, from_float, atol=0, rtol=0)
    torch.testing.assert_close(from_vector, from_float, atol=1e-6, rtol=0)
    torch.testing.assert_close(from_int, from_int_vector, atol=1e-6, rtol=0)
    assert (from_int - from_float).abs().max() > 1e-4  # the time actually matters


def test_batch_equals_per_sample_runs(small_model):
    xt, cond, time, text, image = small_inputs(3, 20, 28)
    with torch.no_grad():
        batched = small_model(xt, cond, time, text, image)
        singles = [
            small_model(xt[i : i + 1], cond[i : i + 1], time[i : i + 1], text[i : i + 1], image[i : i + 1])
            for i in range(3)
        ]
        scalar_time = small_model(xt[1:2], cond[1:2], float(time[1]), text[1:2], image[1:2])
    torch.testing.assert_close(batched, torch.cat(singles), atol=1e-5, rtol=0)
    torch.testing.assert_close(scalar_time, singles[1], atol=1e-6, rtol=0)
    assert (batched[0] - batched[1]).abs().max() > 1e-3


def test_contexts_change_the_prediction(small_model):
    xt, cond, time, text, image = small_inputs(1, 16, 16)
    with torch.no_grad():
        both = small_model(xt, cond, time, text, image)
        no_text = small_model(xt, cond, time, None, image)
        other_image = small_model(xt, cond, time, text, image.flip(-1))
    # ignoring a context would give bitwise-equal outputs
    assert (both - no_text).abs().max() > 1e-4
    assert (both - other_image).abs().max() > 1e-6


def test_time_of_the_wrong_length_is_refused(small_model):
    xt, cond, _, text, image = small_inputs(3, 16, 16)
    with pytest.raises(ValueError, match=r"time: expected a number or 3 values .* got shape \(2,\)"):
        small_model(xt, cond, torch.tensor([1.0, 2.0]), text, image)


# --- precision and layout ----------------------------------------------------------------

def test_bf16_autocast_on_cpu_is_finite_and_close_to_fp32(small_model):
    xt, cond, time, text, image = small_inputs(2, 20, 28)
    with torch.no_grad():
        reference = small_model(xt, cond, time, text, image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = small_model(xt, cond, time, text, image)
    assert torch.isfinite(mixed).all()
    assert relative_error(mixed, reference) < 0.1  # about 0.06 here: bfloat16 keeps 8 bits


def test_bf16_weights_run_with_bf16_inputs(small_model):
    model = ConditionalUNet(**SMALL).eval()
    model.load_state_dict(small_model.state_dict())
    model.to(torch.bfloat16)
    xt, cond, time, text, image = small_inputs(1, 16, 20)
    with torch.no_grad():
        reference = small_model(xt, cond, time, text, image)
        out = model(xt.bfloat16(), cond.bfloat16(), time, text, image)
    assert out.dtype == torch.bfloat16
    assert relative_error(out, reference) < 0.1


def test_channels_last_gives_the_same_result_and_layout(small_model):
    xt, cond, time, text, image = small_inputs(2, 20, 28)
    with torch.no_grad():
        reference = small_model(xt, cond, time, text, image)
        out = small_model(
            xt.contiguous(memory_format=torch.channels_last),
            cond.contiguous(memory_format=torch.channels_last),
            time, text, image,
        )
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert reference.is_contiguous()


# --- the network_G builder ---------------------------------------------------------------

def test_build_network_fills_reference_defaults():
    model = build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32))
    assert model.depth == 4 and model.use_degra_context and not model.use_image_context
    assert network_arguments("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32)) == dict(
        in_nc=3, out_nc=3, nf=32, ch_mult=(1, 2, 4, 4), context_dim=512,
        use_degra_context=True, use_image_context=False, upscale=1, linear_attn_heads=4, linear_attn_dim_head=32,
    )


def test_describe_network():
    assert describe_network("ConditionalUNet", FULL_SIZE) == (
        "ConditionalUNet(in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512, "
        "use_degra_context=True, use_image_context=True, upscale=1, linear_attn_heads=4, linear_attn_dim_head=32)"
    )


def test_unknown_network_name_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        build_network("ConditionalUnet", FULL_SIZE)
    assert str(info.value) == (
        "network_G.which_model_G: unknown network 'ConditionalUnet' (did you mean 'ConditionalUNet'?); "
        "valid: ConditionalUNet"
    )


def test_unknown_setting_key_names_closest_and_valid_keys():
    with pytest.raises(ValueError) as info:
        build_network("ConditionalUNet", {**FULL_SIZE, "ch_multi": [1, 2]})
    assert str(info.value) == (
        "network_G.setting.ch_multi: unknown key (did you mean 'ch_mult'?); valid keys: in_nc, out_nc, nf, "
        "ch_mult, context_dim, use_degra_context, use_image_context, upscale, linear_attn_heads, linear_attn_dim_head"
    )


def test_missing_and_bad_setting_values():
    missing = r"network_G.setting: missing nf for ConditionalUNet; required keys: in_nc, out_nc, nf"
    with pytest.raises(ValueError, match=missing):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3))
    with pytest.raises(ValueError, match=r"network_G.setting.nf: expected an integer, got '64'"):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf="64"))
    with pytest.raises(ValueError, match=r"network_G.setting.nf: must be even"):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=33))
    with pytest.raises(ValueError, match=r"network_G.setting.ch_mult: expected a non-empty list"):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32, ch_mult=[]))
    with pytest.raises(ValueError, match=r"network_G.setting.use_image_context: expected true or false"):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32, use_image_context="yes"))
    with pytest.raises(ValueError, match=r"network_G.setting.upscale: only 1 is supported"):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32, upscale=4))
    with pytest.raises(ValueError, match=r"network_G.setting.linear_attn_heads: must be >= 1"):
        build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32, linear_attn_heads=0))
    with pytest.raises(ValueError, match=r"ConditionalUNet.nf: must be even"):  # the constructor checks too
        ConditionalUNet(3, 3, 33)


def test_linear_attention_size_is_a_setting():
    setting = dict(in_nc=3, out_nc=3, nf=16, ch_mult=[1, 2], context_dim=None)
    default = build_network("ConditionalUNet", setting).state_dict()
    small = build_network("ConditionalUNet", {**setting, "linear_attn_heads": 2, "linear_attn_dim_head": 8})
    key = "downs.0.2.fn.fn.to_qkv.weight"
    assert default[key].shape == (3 * 4 * 32, 16, 1, 1)  # the reference's 4 heads x 32 channels
    assert small.state_dict()[key].shape == (3 * 2 * 8, 16, 1, 1)
    assert small.state_dict().keys() == default.keys()
    x = torch.rand(2, 3, 20, 24)
    assert small(x, x, 5.0).shape == x.shape


def test_no_context_dim_disables_both_contexts():
    model = build_network("ConditionalUNet", dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2], context_dim=None))
    assert not model.use_degra_context and not model.use_image_context
    assert not any(k.startswith(("prompt", "text_mlp")) for k in model.state_dict())
