"""train.py's optimizers and learning-rate schemes against the reference's mechanics: torch's
CosineAnnealingLR / a MultiStepLR_Restart stepped after every optimizer step, with the
reference's warm-up written over the rate (base_model.update_learning_rate)."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from reference_options import REFERENCE_TRAIN_YML

from uir.options.loader import OptionsError
from uir.training import build_optimizer, learning_rate, load_train_options, parse_train_options
from uir.training.options import OptimSettings
from uir.training.schedule import clears_state_after


class ReferenceMultiStep(torch.optim.lr_scheduler.LRScheduler):
    """The reference's MultiStepLR_Restart, as it behaves: a recursion on the current rate that
    halves at each milestone (its factor is fixed at 0.5) and resets at restarts."""

    def __init__(self, optimizer, milestones, restarts, weights):
        self.milestones, self.restarts, self.weights = Counter(milestones), restarts or [0], weights or [1]
        super().__init__(optimizer)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch in self.restarts:
            return [g["initial_lr"] * self.weights[self.restarts.index(self.last_epoch)] for g in groups]
        return [g["lr"] * 0.5 ** self.milestones.get(self.last_epoch, 0) for g in groups]


def reference_rates(opt: OptimSettings, steps: int) -> list[float]:
    """The rate each of `steps` steps runs at in the reference's loop."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=opt.lr)
    if opt.lr_scheme == "TrueCosineAnnealingLR":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.niter, eta_min=opt.eta_min)
    else:
        scheduler = ReferenceMultiStep(optimizer, list(opt.lr_steps), list(opt.restarts), list(opt.restart_weights))
    rates = []
    for step in range(1, steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        if step < opt.warmup_iter:
            optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["initial_lr"] / opt.warmup_iter * step
    return rates


@pytest.mark.parametrize("settings", [
    dict(lr_scheme="TrueCosineAnnealingLR", niter=50, warmup_iter=-1, eta_min=1e-6),
    dict(lr_scheme="TrueCosineAnnealingLR", niter=50, warmup_iter=8, eta_min=1e-5),
    dict(lr_scheme="MultiStepLR", niter=60, warmup_iter=-1, lr_steps=(10, 20, 20, 45), lr_gamma=0.5),
    dict(lr_scheme="MultiStepLR", niter=60, warmup_iter=5, lr_steps=(3, 10, 40), restarts=(25, 50),
         restart_weights=(1.0, 0.5)),
])
def test_reference_schemes_match_the_reference_loop(settings):
    opt = OptimSettings(lr=2e-4, **settings)
    ours = [learning_rate(step, opt) for step in range(opt.niter)]
    assert ours == pytest.approx(reference_rates(opt, opt.niter), rel=1e-9, abs=1e-15)


def test_the_project_schemes_are_the_reference_ones_without_their_quirks():
    cos = OptimSettings(niter=100, lr=1e-3, eta_min=1e-5, warmup_iter=0)
    assert learning_rate(0, cos) == pytest.approx(1e-3)
    assert learning_rate(50, cos) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(100, cos) == pytest.approx(1e-5)
    true_cos = OptimSettings(niter=100, lr=1e-3, eta_min=1e-5, lr_scheme="TrueCosineAnnealingLR")
    assert [learning_rate(s, cos) for s in range(100)] == pytest.approx([learning_rate(s, true_cos) for s in range(100)])
    warm = OptimSettings(niter=100, lr=1e-3, warmup_iter=10)
    assert learning_rate(0, warm) == pytest.approx(1e-4) and learning_rate(9, warm) == pytest.approx(1e-3)
    multi = OptimSettings(niter=100, lr=1e-3, lr_scheme="multistep", lr_steps=(20, 40), lr_gamma=0.1)
    assert [learning_rate(s, multi) for s in (19, 20, 39, 40)] == pytest.approx([1e-3, 1e-4, 1e-4, 1e-5])
    # The reference's MultiStepLR halves whatever lr_gamma says.
    ref = OptimSettings(niter=100, lr=1e-3, lr_scheme="MultiStepLR", lr_steps=(20, 40), lr_gamma=0.1)
    assert [learning_rate(s, ref) for s in (19, 20, 40)] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert learning_rate(7, OptimSettings(niter=10, lr=3e-4, lr_scheme="constant")) == 3e-4


def test_clear_state_comes_at_restarts_only():
    opt = OptimSettings(niter=10, lr_scheme="MultiStepLR", restarts=(4,), restart_weights=(1.0,), clear_state=True)
    assert [clears_state_after(s, opt) for s in (3, 4, 5)] == [False, True, False]
    assert not clears_state_after(4, OptimSettings(niter=10, lr_scheme="MultiStepLR", restarts=(4,),
                                                   restart_weights=(1.0,)))


def _one_step(optimizer_name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    start = w.detach().clone()
    optimizer = build_optimizer([w], OptimSettings(niter=1, optimizer=optimizer_name, lr=0.1, weight_decay=0.2))
    grad = torch.randn(5)
    w.grad = grad.clone()
    optimizer.step()
    return start, grad, w.detach()


def test_lion_is_the_reference_update():
    """The reference's Lion: decay w by lr * wd, then step -lr * sign(beta1 m + (1 - beta1) g) (m = 0 at first)."""
    start, grad, after = _one_step("Lion")
    expected = start * (1 - 0.1 * 0.2) - 0.1 * torch.sign((1 - 0.9) * grad)
    torch.testing.assert_close(after, expected)
    start, grad, adamw = _one_step("AdamW")
    torch.testing.assert_close(adamw, start * (1 - 0.1 * 0.2) - 0.1 * torch.sign(grad), atol=1e-6, rtol=0)


def test_lion_without_its_package_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "lion_pytorch", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "lion_pytorch" else object())
    with pytest.raises(ValueError, match=r"train\.optimizer: Lion needs the lion-pytorch package \(pip install lion-pytorch\)"):
        OptimSettings(niter=1, optimizer="Lion")


@pytest.mark.parametrize("train, message", [
    ({"lr_G": 1e-4, "lr": 2e-4}, r"train\.lr_G and train\.lr: both set \(0\.0001, 0\.0002\)"),
    ({"optimizer": "SGD"}, r"train\.optimizer: 'SGD' is not valid; valid values: Adam, AdamW, Lion"),
    ({"lr_scheme": "CosineAnnealingLR"}, r"train\.lr_scheme: 'CosineAnnealingLR' is not valid \(did you mean "
                                         r"'TrueCosineAnnealingLR'\?\)"),
    ({"restarts": [10]}, r"train\.restart_weights: 0 weight\(s\) for 1 restart"),
    ({"restarts": [10], "restart_weights": [1]}, r"train\.restarts: only lr_scheme MultiStepLR restarts"),
    ({"warmup_iter": -2}, r"train\.warmup_iter: must be >= -1"),
    ({"manual_seed": 3}, r"seed and train\.manual_seed: both set \(1, 3\)"),
])
def test_bad_training_keys_are_named(train, message):
    raw = {"name": "x", "seed": 1, "network_G": {"setting": {"in_nc": 3, "out_nc": 3, "nf": 8}},
           "datasets": {"train": {"dataroot": "d", "tasks": ["a"]}}, "train": {"niter": 1, **train}}
    with pytest.raises((ValueError, OptionsError), match=message):
        parse_train_options(raw)


def test_reference_names_are_read_into_the_project_keys():
    raw = {"name": "x", "network_G": {"setting": {"in_nc": 3, "out_nc": 3, "nf": 8}}, "distortion": ["a", "b"],
           "datasets": {"train": {"dataroot": "d"}},
           "train": {"niter": 5, "lr_G": 1e-4, "weight": 2.0, "weight_decay_G": 0.01, "manual_seed": 7,
                     "val_freq": 3.0}}
    options = parse_train_options(raw)
    assert (options.train.lr, options.train.loss_weight, options.train.weight_decay) == (1e-4, 2.0, 0.01)
    assert options.seed == 7 and options.logger.val_freq == 3
    assert options.datasets.train.tasks == options.datasets.val.tasks == ("a", "b")
    assert parse_train_options(options.to_dict()) == options  # written back under the project's names


def test_settings_that_do_nothing_in_the_reference_either_are_noted():
    raw = {"name": "x", "network_G": {"setting": {"in_nc": 3, "out_nc": 3, "nf": 8}}, "distortion": ["a"],
           "datasets": {"train": {"dataroot": "d", "use_shuffle": False}},
           "train": {"niter": 9, "lr_scheme": "MultiStepLR", "lr_gamma": 0.1, "warmup_iter": 3, "is_weighted": True}}
    notes = parse_train_options(raw).notes()
    assert [n.split(":")[0] for n in notes] == ["train.lr_gamma", "train.warmup_iter", "train.is_weighted",
                                                "datasets.train.use_shuffle"]
    assert "halves the rate at each of lr_steps whatever lr_gamma says" in notes[0]
    raw["train"] = {"niter": 9, "lr_scheme": "multistep", "lr_gamma": 0.1, "warmup_iter": 3}
    raw["datasets"]["train"]["use_shuffle"] = True
    assert parse_train_options(raw).notes() == []


def test_the_shipped_train_yml_is_the_references():
    shipped = Path(__file__).resolve().parents[1] / "options" / "train.yml"
    assert yaml.safe_load(shipped.read_text()) == yaml.safe_load(REFERENCE_TRAIN_YML)
    assert load_train_options(shipped) == parse_train_options(yaml.safe_load(REFERENCE_TRAIN_YML))
