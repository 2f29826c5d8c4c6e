"""The trained example (issue 7): it learns, and PyTorch from the same weights agrees per step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_sym import cli
from lstm_sym.examples import train
from tests.conftest import require_module, require_tool
from tests.support import ROOT


def test_the_data_ships_with_the_package():
    corpus = train.Corpus.load()
    assert corpus.text.startswith("Four score and seven years ago")
    assert 2000 < len(corpus.text) < 10000 and len(corpus.alphabet) < 60
    assert corpus.alphabet[corpus.codes[0]] == "F"


def test_short_schedule_trains_and_the_loss_drops():
    config = train.Config(epochs=6, hidden=24, layers=1, seq_len=32, lr=2e-2)
    _, _, result = train.train(config)
    steps = len(result.losses)
    assert steps > 30
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert first > np.log(45) * 0.9  # starts near chance: log(alphabet size)
    assert last < 0.85 * first, (first, last)


def test_loss_curve_equals_pytorch_step_for_step_in_float64():
    require_module("torch")
    config = train.Config(epochs=1, hidden=12, layers=2, seq_len=20, batch_size=8, max_steps=8)
    _, initial, ours = train.train(config)
    theirs = train.train_torch(config, initial)
    assert len(ours.losses) == len(theirs.losses) == 8
    difference = np.abs(np.array(ours.losses) - np.array(theirs.losses))
    assert difference.max() < 1e-12, difference
    assert ours.losses[-1] < ours.losses[0]


def test_cli_writes_the_curve_samples_and_model(tmp_path, capsys):
    require_module("matplotlib")
    require_module("torch")
    out = tmp_path / "out"
    code = cli.main(
        [
            "train-example",
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--max-steps",
            "6",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "loss curves, lstm_sym vs PyTorch: max |difference|" in printed
    assert (out / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    lines = (out / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,lstm_sym,pytorch" and len(lines) == 7
    assert "Four score and " in (out / "samples.txt").read_text()
    from lstm_sym.models import Recurrent

    assert Recurrent.load(out / "model.npz").hidden_size == 8


def _help(capsys) -> tuple[list[str], dict[str, str]]:
    """``lstm-sym train-example --help``: the options its usage line lists, and each option's
    help by option name."""
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["train-example", "--help"])
    assert exit_code.value.code == 0
    usage, options = capsys.readouterr().out.split("\noptions:\n")
    entries = re.split(r"\n  (?=-)", "\n" + options)[1:]
    helps = {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}
    return re.findall(r"\[(--[a-z-]+)", usage), helps


def test_help_says_for_every_option_what_it_does_and_its_default(capsys):
    listed, helps = _help(capsys)
    del helps["-h"]
    assert {"--epochs", "--seq-len", "--torch-steps", "--no-torch", "--out-dir"} <= set(listed)
    assert sorted(helps) == sorted(listed)
    for name, text in helps.items():
        described = text.split(maxsplit=1)[1]
        assert len(described.split()) >= 6, f"{name} has no real help: {text!r}"
        assert "(default: " in text or "the same as --" in text, (
            f"{name} names no default: {text!r}"
        )
    assert "(default: build/train-example)" in helps["--out-dir"]  # never split at a hyphen


def test_the_default_run_compares_five_epochs_with_pytorch_not_the_whole_run():
    args = cli.build_parser().parse_args(["train-example"])
    steps = train.Config().steps(train.Corpus.load())
    assert steps == 280 and args.torch_steps == train.DEFAULT_TORCH_STEPS == 35
    assert (
        cli.build_parser().parse_args(["train-example", "--torch-steps", "all"]).torch_steps is None
    )
    assert cli.build_parser().parse_args(["train-example", "--no-torch"]).torch_steps == 0


def test_a_bad_torch_steps_value_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train-example", "--torch-steps", "-2"])
    error = capsys.readouterr().err
    assert "--torch-steps" in error and "'all'" in error and "'-2'" in error


def test_the_default_output_folder_is_ignored_by_git():
    root = ROOT
    if not (root / ".git").exists():
        pytest.skip("optional: not a git checkout")
    git = require_tool("git")
    assert not train.DEFAULT_OUT_DIR.is_absolute()
    for name in ("loss_curve.png", "model.npz"):
        path = train.DEFAULT_OUT_DIR / name
        ignored = subprocess.run([git, "check-ignore", "-q", str(path)], cwd=root)
        assert ignored.returncode == 0, f"{path} is not covered by .gitignore"


def _small_run(out: Path, *more: str) -> list[str]:
    code = cli.main(
        [
            *("train-example", "--epochs", "2", "--hidden", "8", "--layers", "1"),
            *("--max-steps", "6", "--out-dir", str(out), "--quiet", *more),
        ]
    )
    assert code == 0
    return (out / "losses.csv").read_text().splitlines()


def test_fewer_torch_steps_than_the_run_compare_those_and_leave_the_rest_blank(tmp_path, capsys):
    require_module("matplotlib")
    require_module("torch")
    lines = _small_run(tmp_path, "--torch-steps", "3")
    assert lines[0] == "step,lstm_sym,pytorch" and len(lines) == 7
    compared = [line.split(",") for line in lines[1:4]]
    assert all(abs(float(ours) - float(theirs)) < 1e-12 for _, ours, theirs in compared)
    assert all(line.endswith(",") and line.count(",") == 2 for line in lines[4:])
    printed = capsys.readouterr().out
    assert (
        "max |difference| over 3 steps" in printed and "6 steps with --torch-steps all" in printed
    )


def test_no_comparison_writes_no_pytorch_column(tmp_path, capsys):
    require_module("matplotlib")
    for flag in (["--torch-steps", "0"], ["--no-torch"]):
        lines = _small_run(tmp_path / flag[0], *flag)
        assert lines[0] == "step,lstm_sym" and len(lines) == 7
        assert "lstm_sym vs PyTorch" not in capsys.readouterr().out


def test_without_pytorch_or_matplotlib_it_trains_and_says_what_it_skipped(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    lines = _small_run(tmp_path)
    assert lines[0] == "step,lstm_sym" and len(lines) == 7
    printed = capsys.readouterr().out
    assert "PyTorch is not installed: no comparison" in printed
    assert "matplotlib is not installed: no loss_curve.png" in printed
    assert not (tmp_path / "loss_curve.png").exists() and (tmp_path / "model.npz").is_file()
