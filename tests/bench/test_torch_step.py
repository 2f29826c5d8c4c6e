"""The --torch group of lstm-sym bench: the harness runs every implementation on a tiny size and
reports what the table needs (no timed assertions)."""

from __future__ import annotations

import pytest

from tests.conftest import require_module

torch = require_module("torch")
torch_step = pytest.importorskip("lstm_sym.bench.torch_step")


def test_a_training_step_of_any_module_fills_every_parameter_s_gradient():
    model = torch.nn.GRU(3, 4)
    step = torch_step.step_of(model, torch.randn(5, 2, 3))
    step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("cell", ["peephole_lstm", "lstm"])
def test_the_torch_group_times_ours_the_eager_loop_and_torch_s_module_with_ratios(cell):
    config = {
        "size": [2, 3, 3, 4],
        "cell": cell,
        "dtype": "f32",
        "threads": 1,
        "impls": ["ours", "eager", "torch"],
        "repeats": 2,
        "min_time": 0.0,
        "memory": True,
    }
    run = torch_step.run(config)
    expected = {"ours", "eager"} | ({"torch"} if cell == "lstm" else set())
    assert set(run["results"]) == expected
    for name in expected - {"ours"}:
        assert run["results"][name]["ratio"] > 0
    assert all(len(r["samples_s"]) == 2 and "memory" in r for r in run["results"].values())
    # the evaluation (forward under no_grad) of the same implementations, with ratios
    assert set(run["eval"]) == expected
    assert all(len(r["samples_s"]) == 2 for r in run["eval"].values())
    for name in expected - {"ours"}:
        assert run["eval"][name]["ratio"] > 0
    row = torch_step.table([run]).splitlines()[-1]
    assert row.startswith(f"| (2, 3, 3, 4) | {cell} |") and row.count("|") == 14


@pytest.mark.parametrize(
    "cell, gates, hidden_entries",
    [
        ("lstm", 4, lambda h: 4 * h * h),
        ("gru", 3, lambda h: 3 * h * h),
        ("lstm_cifg", 3, lambda h: 3 * h * h),
        # Greff's FGR: R_g (h x h) for the four gates, plus the nine h x h gate-to-gate blocks
        ("lstm_fgr", 4, lambda h: (4 + 9) * h * h),
    ],
)
def test_a_step_s_product_flops_count_each_weight_matrix_three_times_but_d_events(
    cell, gates, hidden_entries
):
    batch, steps, x, h = 3, 5, 7, 11
    rows = 2.0 * steps * batch  # 2 flops per entry, per step and row
    without = rows * (2 * gates * h * x + 3 * hidden_entries(h))
    assert torch_step.product_flops(cell, (batch, steps, x, h), events_grad=False) == without
    with_events = without + rows * gates * h * x
    assert torch_step.product_flops(cell, (batch, steps, x, h), events_grad=True) == with_events


def test_evaluation_runs_the_forward_without_recording_a_graph():
    model = torch.nn.LSTM(3, 4)
    outputs = torch_step.evaluation_of(model, torch.randn(5, 2, 3))()
    assert outputs.shape == (5, 2, 4) and outputs.grad_fn is None


def test_the_bench_help_documents_the_torch_group(capsys):
    from lstm_sym.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "--torch" in text and "torch.compile" in text and "--no-compile" in text
