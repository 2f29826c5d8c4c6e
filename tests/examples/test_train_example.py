"""The trained example (issue 7): it learns, and PyTorch from the same weights agrees per step."""

from __future__ import annotations

import numpy as np

from lstm_sym import cli
from lstm_sym.examples import train
from tests.conftest import require_module


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
