"""Options that would fail late, or never end, are refused when they are read (issue #26, items
7, 8, 11, 13): unprintable or over-long names and labels, YAML that expands without bound, a
malformed sweep entry hidden by --nfe or --sampler, and --set values that are not YAML; each is
one line, before any network is loaded or any folder made."""
from __future__ import annotations

import re
import time

import pytest
import yaml

from helpers import REPO, load_script
from uir.common.checks import LABEL_RESERVED_BYTES, NAME_MAX_BYTES, NAME_RESERVED_BYTES
from uir.evaluation import run
from uir.samplers.options import MAX_STEPS
from workspace import make_workspace, options, raw_options

DEMO = REPO / "options" / "demo.yml"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("options"))


def run_test_py(argv, capsys) -> tuple[int, str]:
    code = load_script("test.py").main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def one_error_line(code: int, err: str) -> str:
    """The single `test.py: error:` line of a refused run, with nothing loaded before it."""
    lines = [line for line in err.splitlines() if line.startswith("test.py: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "loaded from" not in err  # refused before any network was loaded
    return lines[0]


@pytest.mark.parametrize("setting, message", [
    ('name="a\\0b"', r"name: 'a\\x00b' holds the character U\+0000 at position 1; a name may not hold control"),
    ("name=" + "n" * 300, r"name: 'nnn.*'\.\.\. is 300 bytes long \(UTF-8\); a name must be at most 215 bytes"),
    ('tasks=["ok", "line\\nbreak"]', r"tasks \(--dataset\): 'line\\nbreak' holds the character U\+000A"),
    ('sweep={runs: [{sampler: mrsampler, nfe: 2, label: "a\\u2028b"}]}',
     r"sweep\.runs\[0\]\.label: 'a\\u2028b' holds the character U\+2028"),
    ("sweep={runs: [{sampler: mrsampler, nfe: 2, label: " + "L" * 300 + "}]}",
     r"sweep\.runs\[0\]\.label: 'LLL.*'\.\.\. is 300 bytes long \(UTF-8\); a label must be at most 245 bytes"),
], ids=["nul-name", "long-name", "newline-task", "separator-label", "long-label"])
def test_unprintable_and_over_long_names_and_labels_are_refused_when_read(tmp_path, capsys, setting, message):
    code, err = run_test_py(["-opt", DEMO, "--data-root", REPO / "demo" / "test", "--results-root", tmp_path / "r",
                             "--set", setting], capsys)
    assert re.search(message, one_error_line(code, err)), err
    assert not (tmp_path / "r").exists()


def test_the_longest_name_and_label_allowed_fit_every_file_a_run_makes(ws, tmp_path):
    assert len(f"_nfe{MAX_STEPS}") == LABEL_RESERVED_BYTES  # the longest point folder suffix
    name = "é" * ((NAME_MAX_BYTES - NAME_RESERVED_BYTES) // 2)  # two bytes each in UTF-8
    label = "L" * (NAME_MAX_BYTES - LABEL_RESERVED_BYTES)
    sweep = {"runs": [{"sampler": "mrsampler", "nfe": 2, "label": label}]}
    first = run(options(ws, str(tmp_path), name=name, max_images=1, sweep=sweep), progress=False)
    assert (first.run_dir / "noisy" / f"{label}_nfe2").is_dir() and first.run_dir.name == name
    again = run(options(ws, str(tmp_path), name=name, max_images=1, sweep=sweep, overwrite=True, seed=1),
                progress=False)  # the old run goes aside as .<name>.replaced-<pid>, then .discarded-
    assert again.run_dir == first.run_dir and sorted(p.name for p in tmp_path.iterdir()) == [name]


def _alias_bomb(levels: int = 9) -> str:
    lines = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "daclip_config:\n  embed_dim: 32\n  extra:\n  " + "\n  ".join(lines) + "\n"


@pytest.mark.parametrize("tail, message", [
    (_alias_bomb(), r"refused: line \d+: this value expands to more than 100000 values \(aliases count each time"),
    ("daclip_config: &loop {inner: *loop}\n", r"refused: line \d+: an alias refers to a value that contains it"),
    ("daclip_config: " + "[" * 5000 + "]" * 5000 + "\n", r"refused: line \d+: nested more than 100 levels deep"),
], ids=["alias-bomb", "recursive-alias", "deep-nesting"])
def test_yaml_that_expands_without_bound_is_refused_at_once(tmp_path, capsys, tail, message):
    opt = tmp_path / "bomb.yml"
    opt.write_text(DEMO.read_text() + "\n" + tail)
    assert opt.stat().st_size < 2 * DEMO.stat().st_size + 60_000
    start = time.perf_counter()
    code, err = run_test_py(["-opt", opt, "--results-root", tmp_path / "r"], capsys)
    line = one_error_line(code, err)
    assert time.perf_counter() - start < 10 and f"{opt}: refused" in line
    assert re.search(message, line), line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags", [[], ["--nfe", "3"], ["--sampler", "posterior"], ["--sampler", "sde", "--nfe", "4"]])
@pytest.mark.parametrize("bad, message", [
    ("oops", r"sweep\.runs\[1\]: expected a mapping of keys, got 'oops'"),
    ({"sampler": "mrsampler", "nfe": 5, "lable": "x"}, r"sweep\.runs\[1\]\.lable: unknown key \(did you mean 'label'\?\)"),
])
def test_a_malformed_sweep_entry_is_an_error_with_or_without_flags(ws, tmp_path, capsys, flags, bad, message):
    raw = raw_options(ws, str(tmp_path / "r"), sweep={"runs": [{"sampler": "mrsampler", "nfe": 5}, bad]})
    opt = tmp_path / "o.yml"
    opt.write_text(yaml.safe_dump(raw))
    code, err = run_test_py(["-opt", opt, *flags], capsys)
    assert re.search(message, one_error_line(code, err)), err


def test_a_set_value_that_is_not_yaml_is_one_line(capsys):
    code, err = run_test_py(["-opt", DEMO, "--set", "sampler={order: [1"], capsys)
    line = one_error_line(code, err)
    assert err.count("\n") == 1 and line.startswith("test.py: error: --set 'sampler={order: [1': the value: not "
                                                    "valid YAML: while parsing a flow sequence")
