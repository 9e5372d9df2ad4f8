"""Checkpoint reading and loading: formats, prefixes, and the messages of every failure."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uir.models.checkpoint import (
    DACLIP_WEIGHTS_HINT,
    UNET_WEIGHTS_HINT,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    load_into,
    load_state_dict_file,
)
from uir.models.networks import build_network, describe_network, load_network

FULL_SIZE = dict(
    in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512, use_degra_context=True, use_image_context=True
)
TINY = dict(
    in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2], context_dim=None, use_degra_context=False, use_image_context=False
)
TINY_DESCRIPTION = (
    "ConditionalUNet(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2], context_dim=None, "
    "use_degra_context=False, use_image_context=False, upscale=1, linear_attn_heads=4, linear_attn_dim_head=32)"
)


def tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_network("ConditionalUNet", TINY).state_dict()


def assert_state_equal(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


# --- reading files -----------------------------------------------------------------------

def test_full_size_unet_round_trip_with_module_prefix(tmp_path):
    torch.manual_seed(1)
    saved = build_network("ConditionalUNet", FULL_SIZE).state_dict()
    path = tmp_path / "universal-ir.pth"
    torch.save({f"module.{k}": v for k, v in saved.items()}, path)
    model = load_network("ConditionalUNet", FULL_SIZE, path, strict=True)
    assert_state_equal(model, saved)


@pytest.mark.parametrize("wrapper", ["state_dict", "params_ema", "params"])
def test_wrapped_state_dicts_are_unwrapped(tmp_path, wrapper):
    state = tiny_state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "name": "run", wrapper: {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = load_state_dict_file(path, option="path.x", weights_hint="w")
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_only_the_leading_module_prefix_is_stripped(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"module.a.module.b": torch.ones(1), "c": torch.zeros(2)}, path)
    assert list(load_state_dict_file(path, option="o", weights_hint="w")) == ["a.module.b", "c"]


def test_missing_file_names_the_option_and_the_published_weights(tmp_path):
    path = tmp_path / "nowhere" / "universal-ir.pth"
    with pytest.raises(CheckpointNotFoundError) as info:
        load_network("ConditionalUNet", TINY, path)
    assert isinstance(info.value, FileNotFoundError)
    assert str(info.value) == (
        f"path.pretrain_model_G: {path} does not exist. Download universal-ir.pth from HuggingFace "
        "weblzw/daclip-uir-ViT-B-32-irsde (https://huggingface.co/weblzw/daclip-uir-ViT-B-32-irsde) "
        "and set path.pretrain_model_G to its path."
    )


def test_unset_path_and_directory(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"^path.daclip is not set: point it at daclip_ViT-B-32.pt from"):
        load_state_dict_file(None, option="path.daclip", weights_hint=DACLIP_WEIGHTS_HINT)
    with pytest.raises(CheckpointNotFoundError, match=r"is a directory, not a checkpoint file"):
        load_state_dict_file(tmp_path, option="path.daclip", weights_hint=DACLIP_WEIGHTS_HINT)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "universal-ir.pth"
    path.write_bytes(b"<html>404 Not Found</html>\n")
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path, option="path.pretrain_model_G", weights_hint=UNET_WEIGHTS_HINT)
    assert not isinstance(info.value, FileNotFoundError)
    assert str(info.value).startswith(f"path.pretrain_model_G: cannot read {path} as a PyTorch checkpoint (")


def test_truncated_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save(tiny_state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cannot read .*ckpt.pt as a PyTorch checkpoint"):
        load_state_dict_file(path, option="o", weights_hint="w")


def test_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match=r"list.pt holds a list, not a state dict"):
        load_state_dict_file(path, option="o", weights_hint="w")
    torch.save({"weight": torch.zeros(1), "step": 7}, path)
    with pytest.raises(CheckpointError, match=r"is not a state dict: 1 entries are not name -> tensor \(first: step\)"):
        load_state_dict_file(path, option="o", weights_hint="w")


def test_prefixed_and_plain_duplicate_keys_are_refused(tmp_path):
    path = tmp_path / "dup.pt"
    torch.save({"module.a": torch.zeros(1), "a": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match=r"key 'a' appears both with and without the 'module.' prefix"):
        load_state_dict_file(path, option="o", weights_hint="w")


# --- loading into a network --------------------------------------------------------------

def broken_state_dict() -> dict[str, torch.Tensor]:
    """One key renamed (missing + unexpected), one key dropped, one tensor of the wrong shape."""
    state = tiny_state_dict()
    state["final_conv.wieght"] = state.pop("final_conv.weight")
    del state["mid_block1.mlp.1.bias"]
    state["init_conv.weight"] = torch.zeros(32, 6, 3, 3)
    return state


def test_broken_checkpoint_message(tmp_path):
    path = tmp_path / "broken.pth"
    torch.save(broken_state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_network("ConditionalUNet", TINY, path)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == "\n".join([
        f"checkpoint {path} does not fit {TINY_DESCRIPTION} (strict=True): 2 missing, 1 unexpected, "
        "1 with a different shape",
        "  missing (2): mid_block1.mlp.1.bias [128], final_conv.weight [3, 32, 3, 3]",
        "  unexpected (1): final_conv.wieght [3, 32, 3, 3]",
        "  different shape (1): init_conv.weight checkpoint [32, 6, 3, 3] vs model [32, 6, 7, 7]",
        "The checkpoint was saved from another network or configuration: check the options against it.",
    ])


def test_long_key_lists_are_cut_after_five():
    state = tiny_state_dict()
    model = build_network("ConditionalUNet", TINY)
    dropped = [k for k in state if k.startswith("ups.")]
    for key in dropped:
        del state[key]
    with pytest.raises(CheckpointMismatchError) as info:
        load_into(model, state, expected="tiny")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    first_five = ", ".join(f"{k} {shapes[k]}" for k in dropped[:5])
    assert len(dropped) > 5
    assert str(info.value).splitlines()[1] == f"  missing ({len(dropped)}): {first_five}, ... ({len(dropped) - 5} more)"


def test_non_strict_loads_shared_keys():
    state = broken_state_dict()
    state["init_conv.weight"] = torch.full((32, 6, 7, 7), 0.5)
    torch.manual_seed(5)
    model = build_network("ConditionalUNet", TINY)
    untouched = model.final_conv.weight.detach().clone()
    load_into(model, state, strict=False, expected=TINY_DESCRIPTION)
    assert torch.equal(model.init_conv.weight, state["init_conv.weight"])
    assert torch.equal(model.ups[0][0].block1.proj.weight, state["ups.0.0.block1.proj.weight"])
    assert torch.equal(model.final_conv.weight, untouched)


def test_non_strict_still_refuses_shape_mismatches():
    model = build_network("ConditionalUNet", TINY)
    with pytest.raises(CheckpointMismatchError) as info:
        load_into(model, broken_state_dict(), strict=False, expected=TINY_DESCRIPTION)
    message = str(info.value)
    assert message.startswith(f"state dict does not fit {TINY_DESCRIPTION} (strict=False): 2 missing")
    assert "strict=False loads the keys both share, but cannot load a tensor whose shape differs." in message


def test_non_strict_refuses_a_checkpoint_with_no_shared_key():
    model = build_network("ConditionalUNet", TINY)
    state = {f"clip.{k}": v for k, v in tiny_state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=r"No key of the checkpoint belongs to this network"):
        load_into(model, state, strict=False, expected=TINY_DESCRIPTION)


def test_strict_load_of_a_good_state_dict():
    state = tiny_state_dict(seed=3)
    model = build_network("ConditionalUNet", TINY)
    load_into(model, state, expected=describe_network("ConditionalUNet", TINY))
    assert_state_equal(model, state)
