"""``lstm-sym bench --torch``: one PyTorch training step of ``lstm_sym.torch.RNN`` against the
same cell as the eager loop users are given (:mod:`lstm_sym.torch.reference`), that loop under
``torch.compile`` and, for the cells PyTorch has, ``nn.LSTM`` / ``nn.GRU``.

A training step is forward, the sum of the outputs as the loss, and backward into every
parameter. Each (size, cell) runs in a worker process of its own (``worker.py``, mode
``torch``) with the thread environment set before torch is imported; the implementations are
timed interleaved, repeat by repeat, so ratios are of samples taken seconds apart. The compiled
loop's first call (tracing and compiling) is reported on its own as ``compile_s``.

Evaluation (``eval``): the forward alone under ``torch.no_grad`` of ours (the cell's infer
operator: no training cache), the eager loop and ``nn.LSTM`` / ``nn.GRU``, timed the same way
(not the compiled loop: under ``no_grad`` it compiles again).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

#: The issue's sizes, (batch, steps, event_size, hidden_size).
SIZES = ((1, 100, 16, 32), (32, 50, 64, 128), (64, 50, 128, 256))
#: Cells PyTorch lacks, then cells it has (timed against nn.LSTM / nn.GRU as well).
CELLS = ("peephole_lstm", "lstm_cifg", "gru_cho", "lstm_fgr", "lstm", "gru")
IMPLS = ("ours", "eager", "compiled", "torch")
LABELS = {
    "ours": "lstm_sym.torch.RNN",
    "eager": "eager loop (reference.py)",
    "compiled": "loop under torch.compile",
    "torch": "nn.LSTM / nn.GRU",
}
_TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU"}


def step_of(model: Callable, events) -> Callable[[], object]:
    """One training step of any module called as ``model(events) -> (outputs, finals)``."""
    parameters = list(model.parameters())

    def step():
        for p in parameters:
            p.grad = None
        outputs, _ = model(events)
        outputs.sum().backward()
        return outputs

    return step


def evaluation_of(model: Callable, events) -> Callable[[], object]:
    """The forward of any module under ``torch.no_grad`` (a model that only runs)."""
    import torch

    def evaluate():
        with torch.no_grad():
            outputs, _ = model(events)
        return outputs

    return evaluate


def _timed(calls: dict, repeats: int, min_time: float) -> dict:
    """Samples (seconds per call) of every call, warmed up, calibrated to ``min_time`` per
    sample and interleaved repeat by repeat (each repeat starting one implementation later)."""
    from .worker import _calibrate

    loops = {name: _calibrate(call, min_time) for name, call in calls.items()}
    samples = {name: [] for name in calls}
    names = list(calls)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            start = time.perf_counter()
            for _ in range(loops[name]):
                calls[name]()
            samples[name].append((time.perf_counter() - start) / loops[name])
    return samples


def _ratios(results: dict) -> None:
    """Each other implementation's ``ratio``: the median of theirs / ours, paired by repeat."""
    for name in results:
        if name != "ours" and "ours" in results:
            results[name]["ratio"] = statistics.median(
                theirs / ours
                for theirs, ours in zip(
                    results[name]["samples_s"], results["ours"]["samples_s"], strict=True
                )
            )


def models(cell: str, event_size: int, hidden_size: int, dtype, impls=IMPLS) -> dict:
    """The modules to time, by implementation name (those that exist for ``cell``)."""
    import torch

    from ..torch.reference import ReferenceRNN

    built = {}
    for name in impls:
        if name == "ours":
            from ..torch import RNN

            built[name] = RNN(cell, event_size, hidden_size)
        elif name == "eager":
            built[name] = ReferenceRNN(cell, event_size, hidden_size)
        elif name == "compiled":
            reference = ReferenceRNN(cell, event_size, hidden_size).to(dtype)
            built[name] = torch.compile(reference, fullgraph=True)
            continue
        elif name == "torch" and cell in _TORCH_MODULES:
            built[name] = getattr(torch.nn, _TORCH_MODULES[cell])(event_size, hidden_size)
        else:
            continue
        built[name] = built[name].to(dtype)
    return built


def run(config: dict) -> dict:
    """Time every implementation on one (size, cell): the worker's ``torch`` mode."""
    import torch

    from .worker import gemm_peak, peak_memory

    torch.set_num_threads(config["threads"])
    torch.manual_seed(0)
    batch, steps, event_size, hidden_size = config["size"]
    dtype = torch.float32 if config["dtype"] == "f32" else torch.float64
    events = torch.randn(steps, batch, event_size, dtype=dtype)
    built = models(config["cell"], event_size, hidden_size, dtype, config["impls"])
    calls, compile_s = {}, None
    for name, model in built.items():
        calls[name] = step_of(model, events)
        start = time.perf_counter()
        calls[name]()  # warm up; for the compiled loop this call compiles
        if name == "compiled":
            compile_s = time.perf_counter() - start
    samples = _timed(calls, config["repeats"], config["min_time"])
    evaluations = {
        name: evaluation_of(model, events) for name, model in built.items() if name != "compiled"
    }
    evaluation = {
        name: {"median_s": statistics.median(times), "samples_s": times}
        for name, times in _timed(evaluations, config["repeats"], config["min_time"]).items()
    }
    _ratios(evaluation)
    results = {}
    for name, times in samples.items():
        results[name] = {"median_s": statistics.median(times), "samples_s": times}
        if config.get("memory", True):
            # the operators' pooled C caches count as the step's memory: dropped before
            from ..torch import cache_pool

            cache_pool.release()
            results[name]["memory"] = peak_memory(calls[name])
    _ratios(results)
    flops = product_flops(config["cell"], config["size"], events_grad=events.requires_grad)
    peak = gemm_peak(config["dtype"], config["threads"], size=1024, repeats=3)["gflops"]
    return {
        "size": list(config["size"]),
        "cell": config["cell"],
        "dtype": config["dtype"],
        "threads": config["threads"],
        "compile_s": compile_s,
        "peak_gflops": peak,
        "flops": flops,
        "results": results,
        "eval": evaluation,
    }


def product_flops(cell: str, size, events_grad: bool) -> float:
    """The matrix-product flops of one training step of ``cell`` at ``size`` (B, T, X, H): every
    weight matrix (a C parameter array named ``*_weights``) takes part in three products over
    all steps and rows (forward, its gradient, its input's adjoint), 2 flops per entry and
    (step, row) each, except that the event weights' input adjoint (dL/d events) is skipped when
    the events need no gradient, as in :func:`step_of` (``lstm``: 2 T B 4H (2X + 3H))."""
    from ..torch import ops

    batch, steps, event_size, hidden_size = size
    operators = ops.get(cell)
    sizes = {"steps": steps, "batch": batch, "event_size": event_size, "hidden_size": hidden_size}
    entries = 0
    for name in operators.weights:
        if name.endswith("_weights"):
            passes = 2 + events_grad if name == "event_weights" else 3
            entries += passes * math.prod(operators.shape(name, sizes))
    return 2.0 * steps * batch * entries


def table(runs: list[dict]) -> str:
    """Markdown: per size and cell, ours' time, each other's ratio (theirs / ours, > 1: ours
    faster), the compile time, peak memory of a step (RSS rise, MiB), ours' share of the GEMM
    peak (:func:`product_flops` over ours' time), the ratio to the eager loop a step would have
    with every product flop at the peak and nothing else (the bound of ``x eager``), and the
    evaluation's time and ratios (forward under ``no_grad``)."""
    lines = [
        "| (B,T,X,H) | cell | ours ms | x eager | x compiled | x nn | compile s "
        "| MiB ours / eager | GEMM peak share | x eager at peak | eval ms | eval x eager "
        "| eval x nn |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run_ in runs:
        r = run_["results"]

        def ratio(name, r=r):
            return f"{r[name]['ratio']:.2f}" if name in r else "-"

        def mib(name, r=r):
            memory = r.get(name, {}).get("memory") or {}
            value = memory.get("rss_bytes")
            return "-" if value is None else f"{value / 2**20:.1f}"

        ours = r["ours"]["median_s"] if "ours" in r else float("nan")
        share = run_["flops"] / ours / 1e9 / run_["peak_gflops"]
        # the eager loop's time over the products' time at the GEMM peak: the most x eager
        # could be with every flop at the peak and nothing else
        floor = run_["flops"] / 1e9 / run_["peak_gflops"]
        ceiling = f"{r['eager']['median_s'] / floor:.2f}" if "eager" in r else "-"
        compile_s = "-" if run_["compile_s"] is None else f"{run_['compile_s']:.1f}"
        e = run_.get("eval", {})
        evaluated = e["ours"]["median_s"] * 1e3 if "ours" in e else float("nan")
        lines.append(
            f"| {tuple(run_['size'])} | {run_['cell']} | {ours * 1e3:.3f} | {ratio('eager')} "
            f"| {ratio('compiled')} | {ratio('torch')} | {compile_s} "
            f"| {mib('ours')} / {mib('eager')} | {share:.0%} | {ceiling} | {evaluated:.3f} "
            f"| {ratio('eager', e)} | {ratio('torch', e)} |"
        )
    return "\n".join(lines)


def main(args, log) -> int:
    """The ``--torch`` group of ``lstm-sym bench`` (float32 and 1 thread unless given)."""
    import json

    from . import runner

    sizes = args.size or list(SIZES)
    cells = list(dict.fromkeys(args.cell or CELLS))
    dtypes = args.dtype or ["f32"]
    threads = args.threads or [1]
    impls = [i for i in IMPLS if not (i == "compiled" and args.no_compile)]
    runs = []
    configs = [(s, c, d, t) for s in sizes for c in cells for d in dtypes for t in threads]
    for index, (size, cell, dtype, thread) in enumerate(configs, 1):
        log(f"[{index}/{len(configs)}] torch step {cell} (B,T,X,H)={tuple(size)} {dtype} {thread}t")
        config = {
            "mode": "torch",
            "size": list(size),
            "cell": cell,
            "dtype": dtype,
            "threads": thread,
            "impls": impls,
            "repeats": args.repeats,
            "min_time": args.min_time,
            "memory": not args.no_memory,
        }
        runs.append(runner._worker(config, thread))
        log(table(runs[-1:]).splitlines()[-1])  # each row as it is measured
    print(table(runs))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / "torch.json"
    path.write_text(json.dumps({"machine": runner.machine(), "runs": runs}, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0
