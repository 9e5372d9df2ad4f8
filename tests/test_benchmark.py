"""uir.benchmark (scripts/benchmark.py) and uir.benchmark.profiling on the CPU, with the `tiny` network preset:
the command runs end to end and reports every column; the fast path (batched) restores the
same images as the reference-style path (batch 1) in float32; bf16 autocast, channels_last
and torch.compile run; FLOP counts are exact for a convolution and scale with image area;
quality mode compares per-task metrics and fails outside its tolerance."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import uir.benchmark as bench
from uir.benchmark.profiling import CallTimer, PhaseTimer, ProfiledDenoiser, count_flops
from uir.data.demo import make_demo_dataset
from uir.models import build_network
from uir.models.clip_preprocess import clip_preprocess
from uir.models.daclip import build_daclip

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """The CPU is shared: one torch thread avoids oversubscription stalls (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_settings(**changes) -> "bench.Settings":
    base = dict(device=CPU, sizes=[32], nfe=[4], posterior_nfe=[3], images=4, ref_images=4, batch_size=3,
                precision="fp32", channels_last=False, compile=False, network="tiny")
    return bench.Settings(**{**base, **changes})


def fast_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["path"] == "fast"]


# ---- the command ----------------------------------------------------------------------------


def test_main_runs_end_to_end_and_reports_every_column(tmp_path, capsys):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    code = bench.main(["--device", "cpu", "--network", "tiny", "--sizes", "32", "--nfe", "3", "--posterior-nfe", "2",
                       "--images", "3", "--batch-size", "2", "--threads", "1", "--out", str(out_json), str(out_md)])
    assert code == 0
    data = json.loads(out_json.read_text())
    rows = data["rows"]
    assert [(r["path"], r["sampler"], r["nfe"]) for r in rows] == [
        ("reference", "mrsampler-ode2-data", 3), ("fast", "mrsampler-ode2-data", 3),
        ("reference", "posterior", 2), ("fast", "posterior", 2),
    ]
    for row in rows:
        assert {key for key, _, _ in bench.SPEED_COLUMNS} <= set(row)
        assert row["images_per_s"] > 0 and row["s_per_image"] == pytest.approx(1 / row["images_per_s"])
        parts = row["sampling_s_per_image"] + row["daclip_s_per_image"] + row["metrics_s_per_image"]
        assert parts == pytest.approx(row["s_per_image"])
        assert 0 < row["network_share"] <= 1
        assert row["gflop_per_image_eval"] > 0 and row["tflops"] > 0
        assert row["peak_gib"] is None  # CUDA only
        assert row["batch"] == (2 if row["path"] == "fast" else 1)
    for row in fast_rows(rows):
        assert row["speedup"] > 0 and row["max_abs_diff"] is not None
        assert (row["precision"], row["channels_last"], row["compile"]) == ("bf16", False, False)
    assert [(w["path"], w["batch_shapes"]) for w in data["warmup"]] == [("reference", [1]), ("fast", [2, 1])]
    assert any("LPIPS" in note for note in data["notes"]) or data["notes"] == []
    text = out_md.read_text()
    assert text.startswith("<!-- benchmark:cpu:begin -->") and text.rstrip().endswith("<!-- benchmark:cpu:end -->")
    printed = capsys.readouterr().out
    assert "| path | sampler | size | NFE |" in printed and "--network tiny" in printed


def test_cli_rejects_bad_values():
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-size", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--nfe", "0"])
    with pytest.raises(SystemExit, match="--device cuda:7"):
        bench.resolve_settings(bench.parse_args(["--device", "cuda:7"]))


def test_cpu_defaults_and_gpu_flags_are_accepted():
    settings = bench.resolve_settings(bench.parse_args(["--device", "cpu"]))
    assert (settings.sizes, settings.nfe, settings.posterior_nfe, settings.batch_size) == ([64, 128], [10, 20], [], 4)
    args = bench.parse_args(["--device", "cpu", "--sizes", "256", "512", "--nfe", "10", "20", "100", "--posterior-nfe",
                             "100", "--batch-size", "auto", "--precision", "bf16", "--compile", "--channels-last"])
    settings = bench.resolve_settings(args)
    assert (settings.sizes, settings.nfe, settings.posterior_nfe) == ([256, 512], [10, 20, 100], [100])
    assert (settings.batch_size, settings.compile, settings.channels_last) == ("auto", True, True)


# ---- the two paths agree ----------------------------------------------------------------------


def test_fast_path_equals_reference_path_in_fp32():
    """Batches of 3 + 1 against batch 1: the deterministic MR Sampler and the posterior sampler
    (per-image noise generators) give the same images and metrics."""
    report = bench.run_benchmark(tiny_settings(), argv=[])
    for row in fast_rows(report.rows):
        assert row["batch"] == 3
        assert row["max_abs_diff"] < 1e-4, row
        assert row["max_psnr_diff"] < 1e-2, row
    assert [w["batch_shapes"] for w in report.warmup] == [[1], [3, 1]]


def test_reference_and_fast_metrics_agree():
    samples = bench.random_samples(3, 32, seed=5)
    x = torch.stack([s.lq for s in samples])
    gt = torch.stack([s.gt for s in samples])
    ref = bench.reference_metrics(4, None)(x, gt)
    fast = bench.fast_metrics(4, None)(x, gt)
    for a, b in zip(ref, fast):
        assert set(a) == set(b) == {"psnr", "ssim", "psnr_y", "ssim_y"}
        for key in a:
            assert b[key] == pytest.approx(a[key], abs=1e-9)


def test_reference_clip_transform_equals_clip_preprocess():
    images = torch.stack([s.lq for s in bench.random_samples(2, 48, seed=3)])
    assert torch.equal(bench.pil_clip_transform(32)(images), clip_preprocess(images, size=32))


def test_bf16_and_channels_last_run():
    settings = tiny_settings(nfe=[3], posterior_nfe=[], images=2, ref_images=1, batch_size=2, precision="bf16",
                             channels_last=True)
    paths = bench.build_paths(settings, bench.Report({}, {}))
    fast_call, reference_call = paths.fast.network.model, paths.reference.network.model
    assert fast_call.network.init_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast_call.autocast_dtype == torch.bfloat16
    assert reference_call.autocast_dtype is None
    assert not reference_call.network.init_conv.weight.is_contiguous(memory_format=torch.channels_last)
    report = bench.run_benchmark(settings, argv=[])
    (row,) = fast_rows(report.rows)
    assert (row["precision"], row["channels_last"], row["images"]) == ("bf16", True, 2)
    assert math.isfinite(row["max_abs_diff"]) and row["max_abs_diff"] <= 1.0
    assert row["tflops"] > 0


@pytest.mark.slow
def test_compile_runs_and_matches_eager():
    """torch.compile (inductor) of the tiny UNet: about 30 s on 2 CPU cores, so marked slow; it
    stays in the default run. One batch shape, so one compilation."""
    settings = tiny_settings(nfe=[3], posterior_nfe=[], images=2, ref_images=2, batch_size=2, compile=True)
    report = bench.run_benchmark(settings, argv=[])
    (row,) = fast_rows(report.rows)
    assert row["compile"] is True
    assert row["max_abs_diff"] < 1e-3
    fast_warmup = [w for w in report.warmup if w["path"] == "fast"]
    assert fast_warmup[0]["batch_shapes"] == [2] and fast_warmup[0]["warmup_s"] > 0


# ---- profiling helpers --------------------------------------------------------------------------


def test_flop_count_is_exact_for_a_convolution():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x = torch.rand(2, 4, 10, 12)
    assert count_flops(conv, x) == 2 * 2 * 4 * 6 * 3 * 3 * 10 * 12


def test_network_flops_scale_with_image_area():
    setting, _ = bench.NETWORKS["tiny"]
    torch.manual_seed(0)
    net = build_network("ConditionalUNet", setting).eval()
    ctx = torch.randn(1, setting["context_dim"])

    def flops(side: int) -> int:
        x = torch.rand(1, 3, side, side)
        return count_flops(net, x, x, torch.tensor(10.0), text_context=ctx, image_context=ctx)

    small, large = flops(32), flops(64)
    assert small > 0
    assert 3.8 < large / small < 4.2


def test_profiled_denoiser_counts_calls_and_flops():
    seen = []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1, bias=False)

        def forward(self, x, mu, t, text_context=None, image_context=None):
            seen.append(t)
            return self.conv(x)

    x = torch.rand(2, 3, 8, 8)
    profiled = ProfiledDenoiser(Net(), CPU)
    for t in (50.0, 40.0, 30.0):
        profiled(x, x, t)
    per_call = 2 * 2 * 3 * 3 * 8 * 8
    # The FLOP count calls the network once more, for the first shape only.
    assert seen == [50.0, 50.0, 40.0, 30.0]
    assert (profiled.calls, profiled.image_evals, profiled.flops) == (3, 6, 3 * per_call)
    assert profiled.seconds() > 0
    profiled.reset()
    assert (profiled.calls, profiled.flops, profiled.seconds()) == (0, 0, 0.0)


def test_timers_add_up():
    phases = PhaseTimer(CPU)
    for _ in range(2):
        with phases.phase("a"):
            torch.rand(64, 64) @ torch.rand(64, 64)
    with phases.phase("b"):
        pass
    assert set(phases.seconds) == {"a", "b"} and phases.total == pytest.approx(sum(phases.seconds.values()))
    calls = CallTimer(CPU)
    with calls.measure():
        torch.rand(64, 64) @ torch.rand(64, 64)
    assert calls.calls == 1 and calls.seconds() > 0


# ---- output -------------------------------------------------------------------------------------


def test_markdown_output_replaces_only_its_section(tmp_path):
    doc = tmp_path / "doc.md"
    begin, end = bench.section_markers("cpu")
    doc.write_text(f"# Title\n\n{begin}\nold table\n{end}\n\nkept text\n")
    bench.write_markdown(doc, "new table\n", "cpu")
    assert doc.read_text() == f"# Title\n\n{begin}\nnew table\n{end}\n\nkept text\n"
    with pytest.raises(SystemExit, match="no '<!-- benchmark:cuda:begin -->'"):
        bench.write_markdown(doc, "x\n", "cuda")


# ---- quality mode ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    """A tiny random network, a tiny DA-CLIP and two demo tasks of two 32x32 images each."""
    root = tmp_path_factory.mktemp("quality")
    data = make_demo_dataset(root / "data", tasks=("noisy", "hazy"), test_size=32, n_test_per_task=2,
                             n_train_per_task=0)
    setting, daclip_config = bench.NETWORKS["tiny"]
    torch.manual_seed(1)
    torch.save(build_network("ConditionalUNet", setting).state_dict(), root / "net.pth")
    torch.save(build_daclip(daclip_config).state_dict(), root / "daclip.pt")
    options = {
        "name": "tiny-quality",
        "network_G": {"which_model_G": "ConditionalUNet", "setting": setting},
        "path": {"pretrain_model_G": str(root / "net.pth"), "daclip": str(root / "daclip.pt")},
        "daclip_config": daclip_config,
        "data_root": str(data / "test"),
        "tasks": ["noisy", "hazy"],
        "sde": {"algorithm": "mrsampler"},
        "sampler": {**bench.REFERENCE_MRSAMPLER_BLOCK, "num_sample_steps": 3},
    }
    path = root / "tiny.yml"
    path.write_text(yaml.safe_dump(options))
    return path


def test_quality_fp32_fast_path_matches_reference(tiny_demo, tmp_path, capsys):
    out = tmp_path / "q.json"
    code = bench.main(["--quality", "--options", str(tiny_demo), "--device", "cpu", "--precision", "fp32",
                       "--batch-size", "2", "--threads", "1", "--out", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["task"], r["sampler"], r["nfe"], r["images"]) for r in rows] == [
        ("noisy", "mrsampler", 3, 2), ("hazy", "mrsampler", 3, 2)]
    for row in rows:
        assert row["within"] is True
        assert abs(row["d_psnr"]) < 1e-3 and abs(row["d_ssim"]) < 1e-5
        assert row["psnr_fast"] == pytest.approx(row["psnr_fp32"] + row["d_psnr"])
    assert "| task | sampler | NFE |" in capsys.readouterr().out


def test_quality_bf16_runs_and_fails_outside_tolerance(tiny_demo):
    code = bench.main(["--quality", "--options", str(tiny_demo), "--device", "cpu", "--precision", "bf16",
                       "--batch-size", "2", "--threads", "1", "--nfe", "2", "--images", "1", "--tol-psnr", "-1"])
    assert code == 1


def test_quality_without_options_file_says_so(tmp_path, capsys):
    missing = tmp_path / "demo.yml"
    assert bench.main(["--quality", "--options", str(missing), "--device", "cpu"]) == 2
    assert f"options file {missing} does not exist" in capsys.readouterr().err
