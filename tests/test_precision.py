"""uir.precision: the precision policies, the float32 / low-precision regions they set on a
network's layer groups, and the TF32 emulation of the sensitivity study."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from uir.benchmark.sensitivity import TF32Emulation, Variant, round_to_tf32
from uir.common.errors import OptionsError
from uir.models.unet import ConditionalUNet
from uir.models.unet.blocks import ChannelLayerNorm
from uir.precision import POLICIES, PRECISIONS, PrecisionPolicy, apply_policy, layer_groups, set_region, tf32
from uir.runtime import NetworkCall, RuntimeSettings

CPU = torch.device("cpu")
# Both contexts: SpatialTransformers (GroupNorm, LayerNorm, CrossAttention) at level 3 and the middle.
SETTING = dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2, 2, 2], context_dim=16, use_degra_context=True,
               use_image_context=True)


@pytest.fixture(scope="module")
def unet() -> ConditionalUNet:
    torch.manual_seed(0)
    return ConditionalUNet(**SETTING).eval().requires_grad_(False)


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x, mu = torch.randn(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    ctx = torch.randn(2, SETTING["context_dim"], generator=g)
    return x, mu, ctx


def call(network, precision, t=50.0):
    x, mu, ctx = inputs()
    with torch.no_grad():
        return NetworkCall(network, CPU, precision=precision)(x, mu, t, text_context=ctx, image_context=ctx)


def test_the_unet_names_its_layer_groups(unet):
    groups = layer_groups(unet)
    assert set(groups) == {"time_embedding", "attention", "norm", "first_conv", "last_conv"}
    assert groups["first_conv"] == [unet.init_conv] and groups["last_conv"] == [unet.final_conv]
    kinds = {type(m).__name__ for m in groups["norm"]}
    assert kinds == {"ChannelLayerNorm", "GroupNorm", "LayerNorm"}
    assert {type(m).__name__ for m in groups["attention"]} == {"ChannelLinearAttention", "CrossAttention"}
    # every ResBlock's projection of the embedding, plus the time and prompt MLPs' linear layers
    assert {type(m).__name__ for m in groups["time_embedding"]} == {"Linear", "GELU", "Sequential"}
    assert layer_groups(nn.Conv2d(3, 3, 1)) == {}


def test_mixed_keeps_norms_in_float32_and_the_rest_under_autocast(unet):
    """The norms run in float32 (their outputs are float32); convolutions still run in bf16."""
    network = apply_policy(copy.deepcopy(unet), POLICIES["bf16-mixed"])
    seen: dict[str, set] = {"norm": set(), "conv": set()}

    def record(kind):
        return lambda module, args, out: seen[kind].add((args[0].dtype, out.dtype))

    for module in network.modules():
        if isinstance(module, (ChannelLayerNorm, nn.GroupNorm, nn.LayerNorm)):
            module.register_forward_hook(record("norm"))
        elif isinstance(module, nn.Conv2d):
            module.register_forward_hook(record("conv"))
    out = call(network, "bf16-mixed")
    assert {o for _, o in seen["norm"]} == {torch.float32}
    assert {o for _, o in seen["conv"]} == {torch.bfloat16}
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # the same parameters under the same names; the original network is untouched
    assert network.state_dict().keys() == unet.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), unet.state_dict().values()))
    assert type(unet.init_conv) is nn.Conv2d and all(type(m) is ChannelLayerNorm for m in unet.modules()
                                                     if isinstance(m, ChannelLayerNorm))


def test_a_float32_norm_reads_its_half_input_as_float32():
    """ChannelLayerNorm takes eps 1e-3 for half inputs (as the reference) and 1e-5 for float32:
    in a float32 region under autocast it gets a float32 input, so the float32 eps."""
    norm = ChannelLayerNorm(8)
    x = (torch.randn(2, 8, 4, 4) * 0.05).bfloat16()  # small variance: eps matters
    expected = norm(x.float())
    set_region(norm, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = norm(x)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert (ChannelLayerNorm(8)(x).float() - expected).abs().max() > 0.1


def test_a_norm_region_in_bf16_changes_nothing_in_float32(unet):
    """Norms have no matmul for autocast to lower: run alone under bf16 autocast, they give the
    float32 output bit for bit; a convolution under it does not."""
    exact = call(unet, "fp32")
    x, mu, ctx = inputs()
    with torch.no_grad():
        norm = Variant("norm", low_groups=("norm",)).call(unet, CPU)(x, mu, 50.0, text_context=ctx, image_context=ctx)
        last = Variant("last", low_groups=("last_conv",)).call(unet, CPU)(x, mu, 50.0, text_context=ctx,
                                                                         image_context=ctx)
    assert torch.equal(norm, exact)
    assert not torch.equal(last, exact)


def test_set_region_nests_and_unwraps():
    conv = nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    set_region(conv, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x.bfloat16()).dtype == torch.float32  # outside autocast, input cast to float32
    set_region(conv, torch.bfloat16)
    assert type(conv).__mro__[1] is nn.Conv2d  # one region class over the original, not stacked
    out = conv(x)
    assert out.dtype == torch.float32 and torch.equal(out, out.bfloat16().float())  # bf16 rounding kept
    assert isinstance(copy.deepcopy(conv), nn.Conv2d)


def test_policies_and_their_names():
    assert PRECISIONS[:3] == ("fp32", "bf16", "fp16") and {"tf32", "bf16-mixed", "fp16-mixed"} <= set(PRECISIONS)
    assert RuntimeSettings.from_dict({"precision": "bf16-mixed"}).precision == "bf16-mixed"
    with pytest.raises(ValueError, match=r"precision \(--precision\): 'bf16-safe' is not valid.*valid values: fp32, bf16"):
        RuntimeSettings.from_dict({"precision": "bf16-safe"})
    late = PrecisionPolicy(torch.bfloat16, fp32_below_t=10.0)
    assert (late.dtype_at(50.0), late.dtype_at(10.0), late.dtype_at(None)) == (torch.bfloat16, None, torch.bfloat16)
    with pytest.raises(OptionsError, match="Conv2d names no layer group 'norm'"):
        apply_policy(nn.Conv2d(3, 3, 1), POLICIES["bf16-mixed"])
    assert apply_policy(nn.Conv2d(3, 3, 1), POLICIES["bf16"]) is not None  # plain autocast needs no groups


def test_float32_below_a_time_runs_the_network_in_float32(unet):
    late = PrecisionPolicy(torch.bfloat16, fp32_below_t=10.0)
    assert torch.equal(call(unet, late, t=5.0), call(unet, "fp32", t=5.0))
    assert torch.equal(call(unet, late, t=50.0), call(unet, "bf16", t=50.0))


def test_tf32_is_a_no_op_on_the_cpu(unet):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with tf32(CPU, True):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert torch.equal(call(unet, "tf32"), call(unet, "fp32"))


def test_tf32_rounding_keeps_ten_mantissa_bits():
    ulp = 2.0**-10
    x = torch.tensor([1.0, 1 + ulp / 4, 1 + 3 * ulp / 4, 1 + ulp / 2, -(1 + 3 * ulp / 4), 3.0e-3])
    got = round_to_tf32(x)
    assert got[:5].tolist() == [1.0, 1.0, 1 + ulp, 1 + ulp, -(1 + ulp)]  # nearest, ties away from zero
    assert (got.view(torch.int32) & 0x1FFF).eq(0).all()
    a, b = torch.rand(8, 8), torch.rand(8, 8)
    with TF32Emulation():
        emulated = a @ b
    assert torch.allclose(emulated, round_to_tf32(a) @ round_to_tf32(b), rtol=0, atol=1e-6)
    assert not torch.equal(emulated, a @ b)
