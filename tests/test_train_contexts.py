"""train.py with DA-CLIP: the contexts reach the network in training and in validation, a
context network without path.daclip is refused, the reference's train.yml runs, and the
weights files are the reference's (tiny DA-CLIP with random weights, tiny context UNet)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from reference_options import REFERENCE_TRAIN_YML
from train_workspace import make_train_workspace, md_options, write_md_set
from uir.common.errors import OptionsError
from uir.models import build_network, load_network
from uir.models.conditioning import ContextEncoder
from uir.training import Trainer, load_train_options, parse_train_options
from uir.training import monitor
from workspace import CONTEXT_NET

REFERENCE_TASKS = ["motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy", "raindrop", "rainy",
                   "shadowed", "snowy", "uncompleted"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_train_workspace(tmp_path_factory.mktemp("train_ctx"))


def train(options: dict, **kwargs):
    return Trainer(parse_train_options(options), progress=False, console=False, **kwargs).run()


def raw_weights(folder: Path, step: int) -> dict[str, torch.Tensor]:
    return torch.load(folder / "models" / f"{step}_G.pth", weights_only=True)


def test_contexts_change_what_is_learned_and_reach_validation(ws, monkeypatch):
    """One step with DA-CLIP's contexts against the same step with one of them zeroed: the
    weights differ where that context enters the network, so the trainer feeds both (it dropped
    them before). Every training batch and every validation image goes through the encoder."""
    seen = []
    original = ContextEncoder.__call__

    def spy(self, lq):
        seen.append(tuple(lq.shape))
        return original(self, lq)

    monkeypatch.setattr(ContextEncoder, "__call__", spy)
    train(md_options(ws, name="real", **{"train.niter": 1}))
    assert seen == [(4, 3, 16, 16)] + [(1, 3, 16, 16)] * 2  # one training batch; two validation images
    real = raw_weights(ws / "experiments" / "real", 1)
    for zeroed, where in ((0, "mid_attn."), (1, "prompt_mlp.")):  # (image, degradation) context
        def without(self, lq, zeroed=zeroed):
            contexts = list(original(self, lq))
            contexts[zeroed] = torch.zeros_like(contexts[zeroed])
            return tuple(contexts)

        monkeypatch.setattr(ContextEncoder, "__call__", without)
        train(md_options(ws, name=f"zeroed{zeroed}", **{"train.niter": 1}))
        other = raw_weights(ws / "experiments" / f"zeroed{zeroed}", 1)
        assert any(not torch.equal(real[k], other[k]) for k in real if k.startswith(where)), where
    # At the first step the image context reaches the loss only through the cross-attention's
    # zero-initialised output projection: nothing else may differ.
    image_zeroed = raw_weights(ws / "experiments" / "zeroed0", 1)
    assert all(k.startswith("mid_attn.") for k in real if not torch.equal(real[k], image_zeroed[k]))


def test_a_context_network_without_daclip_is_refused_before_anything_is_written(ws):
    options = md_options(ws, name="nodaclip", path={"daclip": None})
    with pytest.raises(OptionsError, match=r"path\.daclip: not set, but the network reads DA-CLIP contexts "
                                           r"\(network_G\.setting: context_dim=32, use_degra_context=True"):
        train(options)
    assert not (ws / "experiments" / "nodaclip").exists()


def test_the_reference_train_yml_runs_one_step(ws, tmp_path, monkeypatch):
    """The reference's file, with paths and sizes set as a user would (--set): ten MD tasks read by
    a loader worker, DA-CLIP contexts, AdamW, TrueCosineAnnealingLR, the matching loss."""
    for split, size in (("train", 20), ("val", 16)):
        write_md_set(tmp_path / split, REFERENCE_TASKS, count=1, size=size)
    (tmp_path / "train.yml").write_text(REFERENCE_TRAIN_YML)

    def no_tensorboard():
        raise ImportError("no tensorboard")

    monkeypatch.setattr(monitor, "summary_writer_class", no_tensorboard)
    overrides = [("experiments_root", str(tmp_path / "exp")), ("datasets.train.dataroot", str(tmp_path / "train")),
                 ("datasets.val.dataroot", str(tmp_path / "val")), ("path.daclip", str(ws / "daclip.pt")),
                 ("daclip_config", md_options(ws)["daclip_config"]),
                 ("network_G.setting", {**CONTEXT_NET, "ch_mult": [1, 2, 2, 2]}), ("datasets.train.patch_size", 16),
                 ("datasets.train.batch_size", 2), ("datasets.train.n_workers", 1), ("train.niter", 1),
                 ("datasets.val.sampler_options", {"num_sample_steps": 2})]
    options = load_train_options(tmp_path / "train.yml", overrides)
    assert (options.train.optimizer, options.train.lr_scheme, options.fit_target) == ("AdamW", "TrueCosineAnnealingLR",
                                                                                    "noise")
    Trainer(options, progress=False, console=False).run()
    run = tmp_path / "exp" / "universal-ir"
    log = (run / "train.log").read_text()
    assert "DA-CLIP contexts from" in log and "validation at step 1" in log
    assert "use_tb_logger: true, but TensorBoard logging needs the tensorboard package, which is not installed " \
           "(pip install tensorboard)" in log
    # The reference's files, loadable by test.py's loader and by the reference's (torch.load, strict).
    setting = options.network_G.setting
    for name in ("1_G.pth", "latest_G.pth", "lastest_EMA.pth", "latest.pth", "best.pth"):
        load_network("ConditionalUNet", setting, run / "models" / name, strict=True)
        build_network("ConditionalUNet", setting).load_state_dict(torch.load(run / "models" / name), strict=True)
    assert torch.load(run / "models" / "lastest_EMA.pth") .keys() == torch.load(run / "models" / "1_G.pth").keys()


def test_tensorboard_scalars_when_asked(ws, monkeypatch):
    written = []

    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, name, value, step):
            written.append((name, step))

        def flush(self):
            pass

        def close(self):
            written.append(("closed", None))

    monkeypatch.setattr(monitor, "summary_writer_class", lambda: FakeWriter)
    train(md_options(ws, name="tb", use_tb_logger=True))
    assert written == [("loss", 1), ("lr", 1), ("loss", 2), ("lr", 2), ("psnr", 2), ("ssim", 2), ("closed", None)]
    log = (ws / "experiments" / "tb" / "train.log").read_text()
    assert f"TensorBoard events go to {ws / 'experiments' / 'tb' / 'tb_logger'}" in log


def test_resume_from_the_references_training_state(ws):
    """path.resume_state may name the reference's <iter>.state (iter, optimizers, schedulers) with
    its models/<iter>_G.pth beside it: the weights and optimizer go on, the EMA starts again."""
    train(md_options(ws, name="source", **{"train.niter": 1}))
    source = ws / "experiments" / "source"
    ours = torch.load(source / "training_state" / "latest.state", weights_only=True)
    torch.save({"epoch": 0, "iter": 1, "schedulers": [{"last_epoch": 1}], "optimizers": [ours["optimizer"]]},
               source / "training_state" / "1.state")
    train(md_options(ws, name="continued", path={"daclip": str(ws / "daclip.pt"),
                                                 "resume_state": str(source / "training_state" / "1.state")}))
    log = (ws / "experiments" / "continued" / "train.log").read_text()
    assert "resumed from" in log and "the EMA starts again" in log
    train(md_options(ws, name="straight"))  # the same two steps in one run
    a, b = raw_weights(ws / "experiments" / "straight", 2), raw_weights(ws / "experiments" / "continued", 2)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_md_tasks_are_drawn_in_balance_and_read_lazily(tmp_path, monkeypatch):
    from uir.training import stream

    write_md_set(tmp_path, ("big",), count=6, size=16)
    write_md_set(tmp_path, ("small",), count=1, size=16, seed=3)
    reads = []
    monkeypatch.setattr(stream, "read_pair", lambda pair, option: reads.append(pair.lq) or _pair(pair))
    source = stream.TaskFolders(str(tmp_path), ("big", "small"))
    assert reads == [] and source.num_pairs == 7
    items = stream.CropItems(source, 8, True, True, T=100, seed=0)
    tasks = [Path(reads[-1]).parent.parent.name for g in range(40) if items[g] is not None]
    assert tasks.count("big") == tasks.count("small") == 20  # each task equally often, whatever its size
    assert all(tasks[i] != tasks[i + 1] for i in range(0, 40, 2))  # every pair of items holds both tasks
    first, again = items[5], items[5]
    assert all(torch.equal(first[k], again[k]) for k in first)  # an item depends on (seed, g) alone
    assert first["lq"].shape == (3, 8, 8) and first["lq"].dtype == torch.uint8 and 1 <= int(first["t"]) <= 100


def _pair(pair):
    from uir.training.data import read_pair

    return read_pair(pair, "test")


def test_the_batch_of_a_step_is_the_same_for_any_number_of_processes():
    from uir.training.stream import StepItems

    one = list(StepItems(3, 5, 4))
    two = [list(StepItems(3, 5, 4, rank=r, world_size=2)) for r in range(2)]
    assert one == [12, 13, 14, 15, 16, 17, 18, 19]
    assert two == [[12, 13, 16, 17], [14, 15, 18, 19]]
    assert yaml.safe_load(REFERENCE_TRAIN_YML)["datasets"]["train"]["batch_size"] == 16  # split over processes
