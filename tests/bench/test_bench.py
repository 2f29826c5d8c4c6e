"""Smoke test of ``lstm-sym bench`` (one tiny size, one repeat; nothing about speed is asserted)
and of the seed-style baseline it times, against the generated module."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generated import lstm
from lstm_sym.bench import seed_style
from lstm_sym.bench.workloads import Problem, _data
from lstm_sym.cli import main


def test_seed_style_baseline_matches_the_generated_module():
    problem = Problem(batch=3, steps=4, event_size=2, hidden_size=5, dtype="f64")
    parameters, events, h0, c0, d_outputs = _data(problem)
    outputs, _, cache = lstm.forward(parameters, events, h0, c0)
    grads = lstm.backward(cache, d_outputs)
    weights = seed_style.Weights(parameters, np.float64)
    seed_outputs, _, steps = seed_style.forward(weights, events, h0, c0)
    d_w, d_u, d_b, d_events, d_h0, d_c0 = seed_style.backward(weights, steps, d_outputs)
    np.testing.assert_allclose(seed_outputs, outputs, rtol=1e-12, atol=1e-12)
    for gate in lstm.GATES:
        np.testing.assert_allclose(d_w[gate], grads.__dict__[f"event_{gate}_weights"], atol=1e-12)
        np.testing.assert_allclose(d_u[gate], grads.__dict__[f"hidden_{gate}_weights"], atol=1e-12)
        np.testing.assert_allclose(d_b[gate], grads.__dict__[f"event_{gate}_bias"], atol=1e-12)
    np.testing.assert_allclose(d_events, grads.events, atol=1e-12)
    np.testing.assert_allclose(d_h0, grads.h0, atol=1e-12)
    np.testing.assert_allclose(d_c0, grads.c0, atol=1e-12)


@pytest.mark.slow
def test_bench_runs_on_a_tiny_size(tmp_path, capsys):
    code = main(
        [
            "bench",
            "--size", "1,3,2,4",
            "--dtype", "f32",
            "--threads", "1",
            "--repeats", "1",
            "--min-time", "0",
            "--impl", "numpy",
            "--impl", "seed",
            "--impl", "c",
            "--out-dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "generated NumPy" in out and "seed-style NumPy" in out
    results = json.loads((tmp_path / "bench.json").read_text())
    (run,) = results["runs"]
    assert run["size"] == [1, 3, 2, 4] and {"numpy", "seed"} <= set(run["results"])
    assert (tmp_path / "bench.png").stat().st_size > 0


def test_ratio_to_pytorch_pairs_the_samples_of_each_repeat():
    """The machine slows down 3x in the third repeat, between PyTorch's sample and ours: every
    other repeat's ratio is 2, and so is the median ratio; the ratio of the medians is 2/3."""
    from lstm_sym.bench.report import paired_ratio

    torch = {"samples_s": [2.0, 2.0, 2.0, 6.0, 6.0]}
    ours = {"samples_s": [1.0, 1.0, 3.0, 3.0, 3.0]}
    assert paired_ratio(torch, ours) == 2.0
    assert np.median(torch["samples_s"]) / np.median(ours["samples_s"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        paired_ratio(torch, {"samples_s": [1.0]})


def test_the_bound_of_a_ratio_to_pytorch_is_its_time_over_the_products_at_the_peak():
    from lstm_sym.bench import report

    def timing(seconds):
        return {"median_s": seconds, "samples_s": [seconds], "gflops": 1.0}

    torch = {"forward": timing(1.0), "train": timing(2.0), "infer": timing(0.5)}
    ours = {"forward": timing(0.5), "train": timing(1.5), "infer": timing(0.4)}
    run = {
        "size": [1, 2, 3, 4],
        "dtype": "f32",
        "threads": 1,
        "peak_gflops": 10.0,
        # at 10 GFLOP/s the products take 1 s (training) and 0.2 s (forward, inference)
        "flops": {"train": 10e9, "forward": 2e9},
        "results": {"torch": torch, "c": ours},
    }
    results = {"runs": [run], "gemm_peak_gflops": {"f32/1": 10.0}}
    rows = {r["impl"]: r for r in report.rows(results)}
    assert rows["c"]["vs_torch_bound"] == pytest.approx(2.0)
    assert rows["c"]["vs_torch_infer_bound"] == pytest.approx(2.5)
    line = next(line for line in report.table(results).splitlines() if "generated C" in line)
    assert "2.00x" in line and "2.50x" in line
    # results written before the flops were recorded: no bound
    del run["flops"]
    assert next(r for r in report.rows(results) if r["impl"] == "c")["vs_torch_bound"] is None


def test_table_shows_the_median_ratio_and_its_range_over_repeats():
    from lstm_sym.bench import report

    def entry(samples):
        timing = {"median_s": float(np.median(samples)), "samples_s": samples, "gflops": 1.0}
        return {"forward": timing, "train": timing}

    run = {
        "size": [1, 2, 3, 4],
        "dtype": "f64",
        "threads": 1,
        "peak_gflops": 10.0,
        "results": {
            "torch": entry([2.0, 2.0, 2.0, 6.0, 6.0]),
            "c": entry([1.0, 1.0, 3.0, 3.0, 3.0]),
            "seed": entry([4.0, 5.0, 3.0, 3.0, 6.0]),
        },
    }
    results = {"runs": [run], "gemm_peak_gflops": {"f64/1": 10.0}}
    (row,) = [r for r in report.rows(results) if r["impl"] == "c"]
    assert row["vs_torch"] == 2.0 and row["vs_torch_range"] == (2 / 3, 2.0)
    assert row["vs_seed"] == 2.0 and row["vs_seed_range"] == (1.0, 5.0)
    line = next(line for line in report.table(results).splitlines() if "generated C" in line)
    assert "2.00x   0.67-2.00" in line and "2.00x   1.00-5.00" in line
