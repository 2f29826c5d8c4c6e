"""``lstm-sym bench``'s inference and streaming columns on a tiny size: the harness times ours
(cache=False; step) and PyTorch's (nn.LSTM and nn.LSTMCell under torch.no_grad) and reports
paired ratios. Nothing about speed is asserted."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_sym.bench import report, worker
from lstm_sym.bench.workloads import Problem, build
from tests.conftest import require_module, require_tool


def test_every_inference_workload_computes_the_training_forwards_outputs():
    require_tool("gcc")
    require_module("torch")
    problem = Problem(batch=2, steps=3, event_size=4, hidden_size=5, dtype="f64")
    workloads = {name: build(name, problem) for name in ("numpy", "c", "torch")}
    expected, _, _ = workloads["numpy"].forward()
    for workload in workloads.values():
        outputs, _ = workload.infer()[:2]
        np.testing.assert_allclose(np.asarray(outputs), expected, rtol=1e-12, atol=1e-13)
        # the first step of the first sequence from its initial state: its output (the hidden
        # state; nn.LSTMCell returns (h, c))
        output = workload.stream()[0]
        np.testing.assert_allclose(np.asarray(output).reshape(-1), expected[0, 0], atol=1e-13)


@pytest.mark.slow
def test_the_bench_reports_inference_and_streaming_ratios_on_a_tiny_size():
    require_tool("gcc")
    require_module("torch")
    config = {
        "size": [1, 3, 2, 4],
        "dtype": "f32",
        "threads": 1,
        "impls": ["numpy", "c", "torch", "seed"],
        "repeats": 2,
        "min_time": 0.0,
        "pause": 0.0,
        "memory": True,
    }
    run = worker.run(config)
    for name in ("numpy", "c", "torch"):
        entry = run["results"][name]
        assert len(entry["infer"]["samples_s"]) == len(entry["stream"]["samples_s"]) == 2
        assert entry["infer_memory"]["tracemalloc_bytes"] >= 0
    assert "infer" not in run["results"]["seed"]  # the seed style has no inference path
    results = {"runs": [run], "gemm_peak_gflops": {"f32/1": 1.0}}
    rows = {row["impl"]: row for row in report.rows(results)}
    for name in ("numpy", "c"):
        assert rows[name]["vs_torch_infer"] > 0 and rows[name]["vs_torch_step"] > 0
        assert rows[name]["infer_ms"] > 0 and rows[name]["step_us"] > 0
    assert rows["seed"]["vs_torch_infer"] is None and rows["seed"]["step_us"] is None
    table = report.table(results)
    assert "infer ms" in table and "step vs" in table and "nn.LSTMCell" in table
