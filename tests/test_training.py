"""train.py: the objectives, a few optimisation steps, resume, options, and the shipped demo network."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from uir.models import CheckpointNotFoundError, build_network, load_network
from uir.options.loader import OptionsError
from uir.sde import IRSDE
from uir.sde.predictions import to_data
from uir.training import (
    EMA,
    ExperimentError,
    Trainer,
    ema_decay,
    load_train_options,
    parse_train_options,
    train_step,
    training_loss,
    validate,
)
from uir.training.init import initialise
from uir.training.options import EMASettings

REPO = Path(__file__).resolve().parents[1]
DEMO_OPTIONS = REPO / "options" / "train_demo.yml"
TINY_NET = {"in_nc": 3, "out_nc": 3, "nf": 8, "ch_mult": [1, 2], "context_dim": None,
            "use_degra_context": False, "use_image_context": False}


@pytest.fixture(scope="module")
def sde():
    return IRSDE.create(50, 100, "cosine", 0.005)


def _batch(seed: int = 0, size: int = 16, batch: int = 3):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(batch, 3, size, size, generator=g)
    lq = (gt + 0.3 * torch.rand(batch, 3, size, size, generator=g)).clamp(0, 1)
    t = torch.tensor([1, 37, 100][:batch])
    noise = torch.randn(batch, 3, size, size, generator=g)
    return lq, gt, t, noise


# ---- objectives ------------------------------------------------------------------------------


def test_noise_loss_is_the_reference_matching_loss(sde):
    """L1 between the reverse-SDE step mean (score -eps_hat / sigma_bar_t) and the optimal
    posterior mean, written out with the reference's formulas."""
    lq, gt, t, noise = _batch()
    eps_hat = torch.randn(gt.shape, generator=torch.Generator().manual_seed(5))
    th, cs, g, sb, dt = sde.thetas, sde.thetas_cumsum, sde.sigmas, sde.sigma_bars, sde.dt_tensor
    col = lambda a: a.view(-1, 1, 1, 1)  # noqa: E731
    xt = lq + (gt - lq) * col(torch.exp(-cs[t] * dt)) + col(sb[t]) * noise
    score = -eps_hat / col(sb[t])
    step_mean = xt - (col(th[t]) * (lq - xt) - col(g[t]) ** 2 * score) * dt
    A, B, C = torch.exp(-th[t] * dt), torch.exp(-cs[t] * dt), torch.exp(-cs[t - 1] * dt)
    optimum = col(A * (1 - C**2) / (1 - B**2)) * (xt - lq) + col(C * (1 - A**2) / (1 - B**2)) * (gt - lq) + lq
    expected = (step_mean - optimum).abs().flatten(1).mean(1).mean()

    loss = training_loss(sde, "noise", eps_hat, xt=xt, x0=gt, mu=lq, t=t, noise=noise, loss_type="l1")
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-9)
    loss2 = training_loss(sde, "noise", eps_hat, xt=xt, x0=gt, mu=lq, t=t, noise=noise, loss_type="l2")
    torch.testing.assert_close(loss2, (step_mean - optimum).square().mean(), rtol=1e-5, atol=1e-12)


def test_data_and_velocity_targets(sde):
    lq, gt, t, noise = _batch()
    xt = sde.noise_state(gt, lq, t, noise)
    out = torch.rand(gt.shape)
    loss = training_loss(sde, "data", out, xt=xt, x0=gt, mu=lq, t=t, noise=noise)
    torch.testing.assert_close(loss, (out - gt).abs().mean())
    # The velocity target, read back as a data prediction, is x0 (the definitions agree).
    alpha, sigma = sde.coefficient(sde.alphas, t, gt), sde.coefficient(sde.sigma_bars, t, gt)
    v = sde.sigma_inf * alpha * noise - sigma / sde.sigma_inf * (gt - lq)
    assert training_loss(sde, "velocity", v, xt=xt, x0=gt, mu=lq, t=t, noise=noise).item() < 1e-7
    torch.testing.assert_close(to_data(v, "velocity", xt, lq, alpha, sigma, sde.sigma_inf), gt, atol=2e-5, rtol=0)
    l2 = training_loss(sde, "velocity", v + 0.5, xt=xt, x0=gt, mu=lq, t=t, noise=noise, loss_type="l2")
    torch.testing.assert_close(l2, torch.tensor(0.25), atol=1e-6, rtol=0)


@pytest.mark.parametrize("fit_target", ["noise", "data", "velocity"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(sde, fit_target):
    torch.manual_seed(0)
    model = build_network("ConditionalUNet", TINY_NET)
    lq, gt, t, noise = _batch(seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    with torch.no_grad():
        before = train_step(model, sde, fit_target, lq, gt, t, noise).item()
    for _ in range(40):
        optimizer.zero_grad()
        train_step(model, sde, fit_target, lq, gt, t, noise).backward()
        optimizer.step()
    with torch.no_grad():
        after = train_step(model, sde, fit_target, lq, gt, t, noise).item()
    assert after < 0.8 * before, (before, after)


def test_noise_skip_init_outputs_the_noise_at_t_T(sde):
    torch.manual_seed(0)
    model = build_network("ConditionalUNet", {**TINY_NET, "ch_mult": [1, 2, 2]})
    initialise(model, "noise_skip", sde.sigma_inf)
    lq, gt, _, noise = _batch(size=20)
    xt = sde.prior_sample(lq, noise)  # x_T = mu + sigma_inf eps
    with torch.no_grad():
        for t in (1.0, 50.0, torch.tensor([3.0, 60.0, 100.0])):
            torch.testing.assert_close(model(xt, lq, t), noise, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="out_nc == in_nc"):
        initialise(build_network("ConditionalUNet", {**TINY_NET, "out_nc": 1}), "noise_skip", 0.2)


def test_zero_output_init_makes_a_velocity_network_predict_no_change(sde):
    torch.manual_seed(0)
    model = build_network("ConditionalUNet", {**TINY_NET, "linear_attn_heads": 2, "linear_attn_dim_head": 8})
    initialise(model, "zero_output", sde.sigma_inf)
    lq, gt, t, noise = _batch(size=20)
    xt = sde.noise_state(gt, lq, t, noise)
    with torch.no_grad():
        v_hat = model(xt, lq, t.float())
    assert torch.count_nonzero(v_hat) == 0
    alpha, sigma = sde.coefficient(sde.alphas, t, xt), sde.coefficient(sde.sigma_bars, t, xt)
    x0_hat = to_data(v_hat, "velocity", xt, lq, alpha, sigma, sde.sigma_inf)
    torch.testing.assert_close(x0_hat, lq + alpha * (xt - lq))  # x_t at small t, the LQ image at t = T


def test_posterior_validation_reads_any_fit_target():
    for target in ("data", "velocity"):
        options = load_train_options(DEMO_OPTIONS, [("fit_target", target), ("train.init", "default"),
                                                    ("datasets.val.sampler", "posterior")])
        assert options.val_sampler.fit_target == target


# ---- schedule and EMA ------------------------------------------------------------------------


def test_ema_warm_up_and_average():
    s = EMASettings(beta=0.9, update_every=1, update_after_step=2, inv_gamma=1.0, power=1.0)
    assert [ema_decay(k, s) for k in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert ema_decay(4, s) == pytest.approx(0.5) and ema_decay(1000, s) == 0.9
    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(model, s)
    for value in (1.0, 2.0, 3.0, 5.0):  # steps 1-3 copy, step 4 averages with decay 0.5
        model.weight.data.fill_(value)
        ema.update(model)
    assert ema.model.weight.item() == pytest.approx(0.5 * 3.0 + 0.5 * 5.0)


# ---- the training loop and --resume ----------------------------------------------------------


def _write_tiny_set(root: Path, tasks=("noisy", "hazy")) -> None:
    rng = np.random.default_rng(0)
    for split, count, size in (("train", 2, 24), ("test", 1, 16)):
        for task in tasks:
            for i in range(count):
                gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                lq = np.clip(gt.astype(int) + rng.integers(-40, 41, gt.shape), 0, 255).astype(np.uint8)
                for kind, img in (("GT", gt), ("LQ", lq)):
                    (root / split / task / kind).mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(root / split / task / kind / f"{i:03d}.png"), img)


def _tiny_options(root: Path, **changes) -> dict:
    raw = {
        "name": "tiny",
        "experiments_root": str(root / "experiments"),
        "network_G": {"which_model_G": "ConditionalUNet", "setting": dict(TINY_NET)},
        "datasets": {
            "train": {"dataroot": str(root / "data"), "tasks": ["noisy", "hazy"], "patch_size": 16,
                      "batch_size": 2, "make_demo": None},
            "val": {"sampler": "mrsampler", "sampler_options": {"num_sample_steps": 3}},
        },
        "train": {"niter": 6, "lr": 1e-3, "lr_scheme": "constant", "ema": {"update_every": 1, "update_after_step": 1}},
        "logger": {"print_freq": 2, "val_freq": 100, "save_checkpoint_freq": 3},
    }
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return raw


def _state(folder: Path) -> dict:
    return torch.load(folder / "training_state" / "latest.state", weights_only=True)


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    _write_tiny_set(tmp_path / "data")
    Trainer(parse_train_options(_tiny_options(tmp_path, name="straight")), progress=False, console=False).run()
    Trainer(parse_train_options(_tiny_options(tmp_path, name="halves", **{"train.niter": 3})),
            progress=False, console=False).run()
    first_half = _state(tmp_path / "experiments" / "halves")
    assert first_half["step"] == 3
    Trainer(parse_train_options(_tiny_options(tmp_path, name="halves")), resume=True,
            progress=False, console=False).run()

    a, b = _state(tmp_path / "experiments" / "straight"), _state(tmp_path / "experiments" / "halves")
    assert a["step"] == b["step"] == 6 and b["ema"]["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
        torch.testing.assert_close(a["ema"]["model"][key], b["ema"]["model"][key], rtol=0, atol=0)
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"] == 6
    torch.testing.assert_close(a["optimizer"]["state"][0]["exp_avg_sq"], b["optimizer"]["state"][0]["exp_avg_sq"],
                               rtol=0, atol=0)
    # The saved model is the EMA, and loads strictly into the configured network.
    saved = load_network("ConditionalUNet", TINY_NET, tmp_path / "experiments" / "halves" / "models" / "latest.pth")
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(value, b["ema"]["model"][key], rtol=0, atol=0)
    assert (tmp_path / "experiments" / "halves" / "models" / "best.pth").is_file()
    assert "resumed from" in (tmp_path / "experiments" / "halves" / "train.log").read_text()


def test_existing_folder_needs_resume_or_overwrite(tmp_path):
    _write_tiny_set(tmp_path / "data")
    options = parse_train_options(_tiny_options(tmp_path, **{"train.niter": 1}))
    Trainer(options, progress=False, console=False).run()
    with pytest.raises(ExperimentError, match="--resume.*--overwrite"):
        Trainer(options, progress=False, console=False).run()
    Trainer(options, overwrite=True, progress=False, console=False).run()
    other_net = parse_train_options(_tiny_options(tmp_path, **{"network_G.setting": {**TINY_NET, "nf": 12}}))
    with pytest.raises(ExperimentError, match="network_G differs"):
        Trainer(other_net, resume=True, progress=False, console=False).run()
    # A setting spelled out at its default is the same network (a run saved before it existed resumes).
    spelled_net = {**TINY_NET, "linear_attn_heads": 4}
    spelled = parse_train_options(_tiny_options(tmp_path, **{"network_G.setting": spelled_net}))
    Trainer(spelled, resume=True, progress=False, console=False).run()
    with pytest.raises(ExperimentError, match="no run named 'ghost'"):
        Trainer(parse_train_options(_tiny_options(tmp_path, name="ghost")), resume=True, console=False).run()


def test_start_weights_are_read_first_and_not_needed_to_resume(tmp_path):
    missing = tmp_path / "experiments" / "stage1" / "models" / "latest.pth"
    options = parse_train_options(_tiny_options(tmp_path, path={"pretrain_model_G": str(missing)}))
    # No data folder either: the missing weights are named before the data is looked at.
    with pytest.raises(CheckpointNotFoundError, match=r"path\.pretrain_model_G: .*latest\.pth does not exist.*"
                                                      r"first train the run that writes experiments/<name>/models/latest\.pth"):
        Trainer(options, progress=False, console=False).run()
    assert not (tmp_path / "experiments").exists()  # and no run folder is left to --overwrite

    _write_tiny_set(tmp_path / "data")
    stage1 = parse_train_options(_tiny_options(tmp_path, name="stage1", **{"train.niter": 2}))
    Trainer(stage1, progress=False, console=False).run()
    first = load_network("ConditionalUNet", TINY_NET, missing).state_dict()
    stage2 = parse_train_options(_tiny_options(tmp_path, name="stage2", path={"pretrain_model_G": str(missing)},
                                               **{"train.niter": 1, "train.lr": 1e-12}))
    Trainer(stage2, progress=False, console=False).run()
    started = torch.load(tmp_path / "experiments" / "stage2" / "models" / "latest.pth", weights_only=True)
    for key, value in first.items():  # lr 1e-12: the saved EMA is the loaded weights
        torch.testing.assert_close(started[key], value, rtol=0, atol=1e-9)
    assert "initialised from" in (tmp_path / "experiments" / "stage2" / "train.log").read_text()
    missing.unlink()  # --resume reads the saved training state, not the start weights
    Trainer(parse_train_options(_tiny_options(tmp_path, name="stage2", path={"pretrain_model_G": str(missing)},
                                              **{"train.niter": 2, "train.lr": 1e-12})),
            resume=True, progress=False, console=False).run()


def test_missing_data_names_the_command(tmp_path):
    options = parse_train_options(_tiny_options(tmp_path))
    with pytest.raises(ValueError, match="python scripts/make_demo_data.py --out"):
        Trainer(options, progress=False, console=False).run()


# ---- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key, message", [
    ("train.lrr", r"train\.lrr: unknown key \(did you mean 'lr'\?\)"),
    ("datasets.train.patchsize", r"datasets\.train\.patchsize: unknown key \(did you mean 'patch_size'\?\)"),
    ("sde.sigma", r"sde\.sigma: unknown key"),
    ("sde.algorithm", r"sde\.algorithm: unknown key"),  # test.py's sde: block has it; training has no sampler
    ("network_G.setting.nff", r"network_G\.setting\.nff: unknown key"),
    ("epochs", r"options\.epochs: unknown key"),
])
def test_unknown_keys_are_named(key, message):
    with pytest.raises(OptionsError, match=message):
        load_train_options(DEMO_OPTIONS, [(key, 1)])


@pytest.mark.parametrize("key, value, message", [
    ("fit_target", "eps", r"fit_target: 'eps' is not valid"),
    ("train.lr_scheme", "cosin", r"train\.lr_scheme: 'cosin' is not valid \(did you mean 'cosine'\?\)"),
    ("train.niter", 0, r"train\.niter: must be >= 1"),
    ("train.init", "noise_skip", r"train\.init: noise_skip .* needs fit_target: noise \(got 'velocity'\)"),
    ("train.deterministic", "yes", r"train\.deterministic: expected true or false, got 'yes'"),
    ("datasets.train.make_demo.workers", 0, r"datasets\.train\.make_demo\.workers: must be >= 1"),
    ("datasets.train.make_demo.train_dark_fraction", 1.5,
     r"datasets\.train\.make_demo\.train_dark_fraction: must lie in \[0, 1\], got 1\.5"),
])
def test_bad_values_are_named(key, value, message):
    with pytest.raises(OptionsError, match=message):
        load_train_options(DEMO_OPTIONS, [(key, value)])


def test_options_round_trip_through_yaml(tmp_path):
    options = load_train_options(DEMO_OPTIONS)
    path = tmp_path / "again.yml"
    path.write_text(yaml.safe_dump(options.to_dict()))
    assert load_train_options(path) == options


def test_validation_seeds_each_image_so_the_batch_size_changes_nothing(tmp_path):
    """Image i of a task is seeded with seed + i, as in test.py: the validation PSNR does not
    depend on how many images go through at once (it did with one shared generator)."""
    from dataclasses import replace

    from uir.training.data import load_pairs

    _write_tiny_set(tmp_path / "data", tasks=("noisy",))
    for i in range(1, 3):  # three validation images of the task
        for kind in ("GT", "LQ"):
            src = tmp_path / "data" / "test" / "noisy" / kind / "000.png"
            (tmp_path / "data" / "test" / "noisy" / kind / f"{i:03d}.png").write_bytes(src.read_bytes())
    options = parse_train_options(_tiny_options(tmp_path, **{"datasets.train.tasks": ["noisy"],
                                                             "datasets.val.sampler": "posterior"}))
    sde = IRSDE.from_settings(options.sde)
    torch.manual_seed(0)
    model = build_network("ConditionalUNet", TINY_NET).eval()
    val = {"noisy": load_pairs(tmp_path / "data", "test", ("noisy",))}
    results = [validate(model, sde, val, replace(options.datasets.val, batch_size=b), options.val_sampler,
                        torch.device("cpu")) for b in (1, 2, 3)]
    assert results[0].per_task["noisy"]["psnr"] == pytest.approx(results[1].per_task["noisy"]["psnr"], abs=0.02)
    assert results[0].per_task["noisy"]["psnr"] == pytest.approx(results[2].per_task["noisy"]["psnr"], abs=0.02)
