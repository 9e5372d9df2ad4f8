"""Options: the reference's YAML files, our option files, validation, overrides, the CLI."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from reference_options import REFERENCE_OPTION_FILES
import torch

from uir.options import FAST_SETTINGS
from uir.samplers import MRSampler
from uir.options import (
    REFERENCE_TASKS,
    EvalOptions,
    OptionsError,
    build_arg_parser,
    load_options,
    overrides_from_args,
    parse_assignment,
    parse_options,
    with_override,
)

REPO = Path(__file__).resolve().parents[1]


def parse_cli(argv):
    """test.py's options for a command line (as test.py builds them)."""
    args = build_arg_parser().parse_args(argv)
    return load_options(args.opt, overrides_from_args(args))


def pairs(options):
    return tuple((p.sampler, p.nfe) for p in options.points)


def samplers(options):
    return tuple(dict.fromkeys(p.sampler for p in options.points))


def nfes(options):
    return tuple(dict.fromkeys(p.nfe for p in options.points))


def mr(options):
    """MR Sampler's options as the `sampler:` block gives them."""
    return options.restorer.sampler.options_for(MRSampler)
OUR_OPTION_FILES = ("test.yml", "mrsampler.yml", "posterior.yml", "euler.yml", "heun.yml")
# What each reference file sets: (name, algorithm, num_sample_steps, solver_type, time_schedule, task).
REFERENCE_VALUES = {
    "test.yml": ("universal-ir", "mrsampler", 20, "sde", "linear-lambda", "deg_type"),
    "mrsampler.yml": ("mrsampler", "mrsampler", 20, "ode", "linspace", "uncompleted"),
    "posterior.yml": ("universal-ir", "posterior", 100, "sde", "linear-lambda", "motion-blurry"),
    "euler.yml": ("universal-ir", "sde", 100, "sde", "linear-lambda", "motion-blurry"),
    "heun.yml": ("universal-ir-heun", "heun", 100, "sde", "linspace", "uncompleted"),
}



def write(tmp_path: Path, text: str, name: str = "opt.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("file", sorted(REFERENCE_OPTION_FILES))
def test_reference_option_files_load_unchanged(tmp_path, file):
    options = load_options(write(tmp_path, REFERENCE_OPTION_FILES[file], file))
    name, algorithm, steps, solver, schedule, task = REFERENCE_VALUES[file]
    r = options.restorer
    assert options.outputs.name == name
    assert r.sde.algorithm == algorithm and samplers(options) == (algorithm,)
    assert nfes(options) == (steps,) and r.sampler.num_sample_steps == steps
    assert (mr(options).solver_type, mr(options).time_schedule) == (solver, schedule)
    assert (mr(options).fit_target, mr(options).lambda_min, mr(options).order) == ("noise", -5.0, 2)
    assert (r.sde.max_sigma, r.sde.T, r.sde.schedule, r.sde.eps) == (50.0, 100, "cosine", 0.005)
    assert [d.name for d in options.data.datasets] == [task]
    assert options.data.datasets[0].dataroot_LQ.endswith(f"{task}/LQ")
    assert options.data.distortion == REFERENCE_TASKS
    assert r.network_G.setting["ch_mult"] == [1, 2, 4, 8] and r.network_G.setting["context_dim"] == 512
    # the reference falls back to degradation.scale (4) for the metrics' crop border
    assert options.scoring.crop_border is None and options.effective_crop_border == 4
    # faithful defaults of the run settings: batch_size auto is 1 on the CPU and sized from free
    # memory on CUDA; batching moves fp32 results by < 1e-5 (scripts/batch_invariance.py)
    assert (r.runtime.precision, r.runtime.compile, r.batch_size, r.runtime.channels_last,
            r.fast) == ("fp32", False, "auto", False, False)


@pytest.mark.parametrize("file", OUR_OPTION_FILES)
def test_our_option_files_keep_the_reference_values(tmp_path, file):
    ours = load_options(REPO / "options" / file).to_dict()
    ref = load_options(write(tmp_path, REFERENCE_OPTION_FILES[file], file)).to_dict()
    for key in ("name", "suffix", "model", "distortion", "gpu_ids", "sde", "degradation", "network_G", "sampler",
                "crop_border", "seed", "precision", "batch_size", "compile"):
        assert ours[key] == ref[key], key
    assert [d["name"] for d in ours["datasets"].values()] == [d["name"] for d in ref["datasets"].values()]
    assert ours["path"]["pretrain_model_G"].startswith("your/path")  # placeholders, no private paths


def test_resolved_options_round_trip_through_yaml():
    options = load_options(REPO / "options" / "mrsampler.yml", [("sweep.nfe", [5, 10]), ("suffix", "_x")])
    again = parse_options(yaml.safe_load(yaml.safe_dump(options.to_dict())))
    assert again == options
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.restorer.seed = 3  # type: ignore[misc]


def test_misspelt_keys_suggest_the_closest(tmp_path):
    base = yaml.safe_load(REFERENCE_OPTION_FILES["test.yml"])
    cases = [
        ({**base, "batchsize": 4}, r"options\.batchsize: unknown key \(did you mean 'batch_size'\?\)"),
        (with_override(base, "sde.shedule", "cosine"), r"sde\.shedule: unknown key \(did you mean 'schedule'\?\)"),
        (with_override(base, "sampler.num_sampel_steps", 3), r"did you mean 'num_sample_steps'"),
        (with_override(base, "datasets.test1.datroot_GT", "x"), r"datasets\.test1\.datroot_GT: .*'dataroot_GT'"),
        (with_override(base, "network_G.setting.nff", 3), r"network_G\.setting\.nff: .*'nf'"),
        (with_override(base, "path.pretrain_model", "x"), r"path\.pretrain_model: .*'pretrain_model_G'"),
    ]
    for raw, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            parse_options(raw)


def test_bad_values_list_the_valid_ones():
    base = yaml.safe_load(REFERENCE_OPTION_FILES["test.yml"])
    cases = [
        (("sde.algorithm", "mrsamplr"), r"sde\.algorithm: 'mrsamplr' .*did you mean 'mrsampler'.*sde, posterior, heun, mrsampler"),
        (("precision", "fp64"), r"precision \(--precision\): .*valid values: fp32, bf16, fp16"),
        (("device", "gpu"), r"device \(--device\): 'gpu' is not valid; valid values: auto, cpu, cuda, cuda:N"),
        (("batch_size", "many"), r"batch_size \(--batch-size\): expected a positive integer or 'auto'"),
        (("batch_size", 0), r"batch_size \(--batch-size\): must be >= 1"),
        (("sde.schedule", "cosin"), r"sde\.schedule: .*cosine"),
        (("sampler.solver_type", "odee"), r"sampler\.solver_type: .*valid values: ode, sde"),
        (("datasets.test1.mode", "LQGTx"), r"datasets\.test1\.mode: .*LQGT, LQ"),
        (("compile", "yes"), r"compile \(--compile\): expected true or false"),
        (("sweep.samplers", ["heun", "eulr"]), r"sweep\.samplers.*'eulr'.*valid values: sde, posterior, heun, mrsampler"),
        (("sweep.nfe", [5, 0]), r"sweep\.nfe \(--nfe\): must be >= 1"),
        (("overwrite", True), None),
    ]
    for (key, value), pattern in cases:
        raw = with_override(base, key, value)
        if pattern is None:
            assert parse_options(raw).outputs.overwrite is True
        else:
            with pytest.raises(ValueError, match=pattern):
                parse_options(raw)
    with pytest.raises(ValueError, match="overwrite and resume"):
        parse_options({**base, "overwrite": True, "resume": True})


def test_our_run_keys_and_their_defaults():
    raw = yaml.safe_load(REFERENCE_OPTION_FILES["test.yml"])
    options = parse_options(raw)
    r, data = options.restorer, options.data
    assert (r.seed, r.runtime.device, data.num_workers, options.scoring.metrics, options.scoring.lpips) == (
        0, "auto", 2, True, True)
    assert options.scoring.selected == ("psnr", "ssim", "psnr_y", "ssim_y", "lpips", "fid")
    assert (data.data_root, data.tasks, data.max_images, options.outputs.results_root) == (None, None, None, "results")
    custom = parse_options({**raw, "batch_size": "auto", "device": "cuda:1", "crop_border": 0, "precision": "bf16",
                            "data_root": "~/data", "max_images": 3})
    r = custom.restorer
    assert r.batch_size == "auto" and r.runtime.device == "cuda:1" and r.runtime.precision == "bf16"
    assert custom.effective_crop_border == 0  # explicit 0: no crop
    assert custom.data.data_root == str(Path("~/data").expanduser())
    assert parse_options({**raw, "crop_border": 2}).effective_crop_border == 2


def test_fast_fills_the_unset_keys_and_explicit_keys_win(tmp_path):
    """`fast: true` / --fast: FAST_SETTINGS of the device's type for the keys not set; a key set
    in the file or by a flag keeps its value; the resolved options show the effective values."""
    raw = {k: v for k, v in yaml.safe_load(REFERENCE_OPTION_FILES["test.yml"]).items()}
    cuda_device = torch.device("cuda")  # a name only: resolving `fast` never touches the device
    unresolved = parse_options({**raw, "fast": True, "device": "auto"})
    assert unresolved.restorer.runtime.precision == "fp32"  # validation does not probe the device
    cuda = unresolved.for_device(cuda_device).restorer
    assert cuda.fast and FAST_SETTINGS["cuda"]["precision"] == "fp16-mixed"
    assert (cuda.batch_size, cuda.runtime.precision, cuda.runtime.channels_last, cuda.runtime.compile) == (
        "auto", "fp16-mixed", True, True)
    mine = parse_options({**raw, "fast": True, "device": "cuda", "precision": "fp32", "compile": False}).for_device(
        cuda_device)
    r = mine.restorer
    assert (r.runtime.precision, r.runtime.compile, r.runtime.channels_last) == ("fp32", False, True)
    assert parse_options(mine.to_dict()) == mine  # options.yml reads back the same run
    cpu = parse_options({**raw, "fast": True, "device": "cpu"}).for_device(torch.device("cpu"))
    assert FAST_SETTINGS["cpu"] == {} and cpu.restorer.runtime == parse_options({**raw, "device": "cpu"}).restorer.runtime
    opt = write(tmp_path, REFERENCE_OPTION_FILES["mrsampler.yml"])
    flags = parse_cli([f"-opt={opt}", "--fast", "--device", "cuda:0", "--precision", "bf16-mixed"]).for_device(
        cuda_device).restorer
    assert (flags.fast, flags.runtime.precision, flags.runtime.compile) == (True, "bf16-mixed", True)
    with pytest.raises(ValueError, match=r"fast \(--fast\): expected true or false"):
        parse_options({**raw, "fast": "yes"})


def test_missing_sections_and_sources_are_errors():
    raw = yaml.safe_load(REFERENCE_OPTION_FILES["test.yml"])
    with pytest.raises(ValueError, match="network_G: not set"):
        parse_options({k: v for k, v in raw.items() if k != "network_G"})
    with pytest.raises(ValueError, match="datasets: no test set"):
        parse_options({k: v for k, v in raw.items() if k != "datasets"})
    assert parse_options({**{k: v for k, v in raw.items() if k != "datasets"}, "data_root": "/data"}).data.datasets == ()
    with pytest.raises(ValueError, match=r"datasets\.test1\.dataroot_LQ: not set"):
        parse_options(with_override(raw, "datasets.test1.dataroot_LQ", None))
    with pytest.raises(ValueError, match=r"tasks \(--dataset\): task names need a data root"):
        parse_options({**raw, "tasks": ["noisy"]})
    # GT is optional
    assert parse_options(with_override(raw, "datasets.test1.dataroot_GT", None)).data.datasets[0].dataroot_GT is None


def test_set_assignments_read_yaml_values():
    assert parse_assignment("sampler.order=3") == ("sampler.order", 3)
    assert parse_assignment("sweep.nfe=[5, 10]") == ("sweep.nfe", [5, 10])
    assert parse_assignment("path.daclip=~") == ("path.daclip", None)
    assert parse_assignment("path.daclip=") == ("path.daclip", None)
    assert parse_assignment("sampler.thresholding=true") == ("sampler.thresholding", True)
    assert parse_assignment("name=a=b") == ("name", "a=b")
    for bad in ("sampler.order", "=3", "a..b=1"):
        with pytest.raises(OptionsError, match="KEY.PATH=VALUE"):
            parse_assignment(bad)
    raw = {"name": "x", "sde": {"T": 100}}
    assert with_override(raw, "sde.eps", 0.01) == {"name": "x", "sde": {"T": 100, "eps": 0.01}}
    assert with_override(raw, "sweep.nfe", [1]) == {"name": "x", "sde": {"T": 100}, "sweep": {"nfe": [1]}}
    assert raw == {"name": "x", "sde": {"T": 100}}  # not modified
    with pytest.raises(OptionsError, match="name holds 'x', not a section"):
        with_override(raw, "name.first", 1)


def test_command_line_flags_map_to_options(tmp_path):
    opt = write(tmp_path, REFERENCE_OPTION_FILES["mrsampler.yml"])
    options = parse_cli([
        f"-opt={opt}", "--sampler", "mrsampler", "posterior", "--nfe", "5", "10", "20",
        "--dataset", "low-light", "motion-blurry", "--data-root", str(tmp_path), "--seed", "7", "--device", "cpu",
        "--batch-size", "auto", "--num-workers", "0", "--max-images", "3", "--precision", "bf16", "--compile",
        "--channels-last", "--no-lpips", "--results-root", str(tmp_path / "res"),
        "--set", "sampler.order=3", "--set", "seed=1",
    ])
    assert samplers(options) == ("mrsampler", "posterior") and nfes(options) == (5, 10, 20)
    r, data = options.restorer, options.data
    assert data.tasks == ("low-light", "motion-blurry") and data.data_root == str(tmp_path)
    assert r.seed == 7  # flags come after --set
    assert (r.runtime.device, r.batch_size, data.num_workers, data.max_images) == ("cpu", "auto", 0, 3)
    assert (r.runtime.precision, r.runtime.compile, r.runtime.channels_last) == ("bf16", True, True)
    assert (options.scoring.metrics, options.scoring.lpips) == (True, False)
    assert "lpips" not in options.scoring.selected and "fid" in options.scoring.selected
    assert mr(options).order == 3 and options.outputs.results_root == str(tmp_path / "res")
    plain = parse_cli(["-opt", str(opt)])
    assert samplers(plain) == ("mrsampler",) and nfes(plain) == (20,) and plain.data.tasks is None
    assert parse_cli(["-opt", str(opt), "--no-metrics", "--overwrite"]).scoring.selected == ()
    assert parse_cli(["-opt", str(opt), "--resume"]).outputs.resume is True
    assert parse_cli(["-opt", str(opt), "--resume", str(tmp_path)]).outputs.resume == str(tmp_path)
    args = build_arg_parser().parse_args(["-opt", str(opt), "--batch-size", "4"])
    assert overrides_from_args(args) == [("batch_size", 4)]


def test_cli_errors_name_the_file_and_key(tmp_path):
    opt = write(tmp_path, REFERENCE_OPTION_FILES["test.yml"])
    with pytest.raises(OptionsError, match=rf"{opt}: sweep\.samplers.*did you mean 'heun'"):
        parse_cli(["-opt", str(opt), "--sampler", "huen"])
    with pytest.raises(OptionsError, match=r"-opt: options file .*missing\.yml does not exist"):
        parse_cli(["-opt", str(tmp_path / "missing.yml")])
    bad = write(tmp_path, "name: [unclosed", "bad.yml")
    with pytest.raises(OptionsError, match="not valid YAML"):
        parse_cli(["-opt", str(bad)])
    with pytest.raises(OptionsError, match=r"sweep\.nfe \(--nfe\): expected an integer, got 'five'"):
        parse_cli(["-opt", str(opt), "--nfe", "five"])
    with pytest.raises(OptionsError, match=r"batch_size \(--batch-size\): expected a positive integer or 'auto'"):
        parse_cli(["-opt", str(opt), "--batch-size", "lots"])


def test_options_object_is_typed():
    options = load_options(REPO / "options" / "heun.yml")
    assert isinstance(options, EvalOptions)
    assert all(dataclasses.is_dataclass(getattr(options, k)) for k in ("restorer", "data", "scoring", "outputs",
                                                                        "degradation", "sweep"))
    assert all(dataclasses.is_dataclass(getattr(options.restorer, k)) for k in ("sde", "path", "sampler", "runtime"))
    assert isinstance(options.data.distortion, tuple) and isinstance(options.data.datasets, tuple)
