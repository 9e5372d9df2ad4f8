"""How the network runs (uir.runtime): precision and channels_last wrap only the network,
torch.compile with dynamic shapes, the automatic batch size on the CPU."""
from __future__ import annotations

import pytest
import torch
import yaml

from uir import runtime
from uir.evaluation import run
from uir.models.networks import load_network
from uir.runtime import NetworkCall
from workspace import PLAIN_NET, make_workspace, options


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    torch.set_num_threads(1)
    return make_workspace(tmp_path_factory.mktemp("runtime"))


def test_precision_and_channels_last_wrap_only_the_network(ws):
    network = load_network("ConditionalUNet", PLAIN_NET, ws / "plain.pth").eval()
    x, mu = torch.rand(2, 3, 24, 32), torch.rand(2, 3, 24, 32)
    cpu = torch.device("cpu")
    with torch.no_grad():
        reference = NetworkCall(network, cpu)(x, mu, 50.0)
        # the time reaches the UNet as float32 whether it is passed as a number or a tensor
        assert torch.equal(reference, network(x, mu, 50.0))
        assert torch.equal(NetworkCall(network, cpu)(x, mu, 66.66667175292969), network(x, mu, 66.66667175292969))
        half = NetworkCall(network, cpu, precision="bf16")(x, mu, 50.0)
        last = NetworkCall(network.to(memory_format=torch.channels_last), cpu, channels_last=True)(x, mu, 50.0)
    assert half.dtype == torch.float32 and not torch.equal(half, reference)
    torch.testing.assert_close(half, reference, atol=0.1, rtol=0.1)
    torch.testing.assert_close(last, reference, atol=1e-5, rtol=0)
    result = run(options(ws, "bf16", precision="bf16", channels_last=True, max_images=1,
                         sweep={"samplers": ["mrsampler"], "nfe": [2]}), progress=False)
    assert result.table[0]["images"] == 1 and result.table[0]["psnr"] is not None
    assert yaml.safe_load(result.paths["options"].read_text())["precision"] == "bf16"


def test_compile_option_compiles_the_unet_with_dynamic_shapes(ws, monkeypatch):
    seen = {}

    def fake_compile(module, **kwargs):
        seen.update(kwargs)
        return module

    monkeypatch.setattr(runtime.torch, "compile", fake_compile)
    network = load_network("ConditionalUNet", PLAIN_NET, ws / "plain.pth")
    runtime.prepare_network(network, torch.device("cpu"), options(ws, "compile", compile=True).restorer.runtime)
    assert seen == {"dynamic": True}
    assert runtime.auto_batch_size(lambda batch: None, torch.device("cpu")) == 1
