"""lstm-sym torch-example: a peephole LSTM (lstm_sym.torch.RNN) trained with DataLoader, Adam
and clipping, run briefly; it writes its loss curve and the loss falls."""

from __future__ import annotations

import csv
import math

from tests.conftest import require_module

require_module("torch")


def test_the_torch_example_trains_a_peephole_lstm_and_writes_its_loss_curve(tmp_path, capsys):
    from lstm_sym.cli import main

    assert main(["torch-example", "--max-steps", "8", "--out-dir", str(tmp_path)]) in (0, None)
    with open(tmp_path / "loss.csv") as rows:
        curve = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(rows)]
    assert [s for s, _ in curve] == list(range(1, 9))
    assert all(math.isfinite(v) for _, v in curve)
    assert curve[-1][1] < curve[0][1]  # Adam on a 70-character alphabet: 3.8 -> ~3.0
    assert "8/8" in capsys.readouterr().err
