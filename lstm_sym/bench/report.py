"""Tables and plots of benchmark results (the dict :func:`runner.run` returns)."""

from __future__ import annotations

import statistics
from pathlib import Path

from .workloads import ALL, LABELS


def paired_ratios(reference: dict, entry: dict) -> list[float]:
    """Reference time / this time for each repeat, both samples timed in the same repeat.

    The worker interleaves the implementations repeat by repeat, so the two samples of a pair are
    seconds apart; on a shared machine whose speed drifts between repeats, the drift cancels in
    each pair's ratio, where it would not in a ratio of medians.
    """
    return [
        theirs / ours
        for theirs, ours in zip(reference["samples_s"], entry["samples_s"], strict=True)
    ]


def paired_ratio(reference: dict, entry: dict) -> float:
    """The median of :func:`paired_ratios`."""
    return statistics.median(paired_ratios(reference, entry))


def rows(results: dict) -> list[dict]:
    """One flat row per (size, dtype, threads, implementation)."""
    out = []
    for run in results["runs"]:
        torch = run["results"].get("torch")
        seed = run["results"].get("seed")
        bounds = _bounds(run, torch)
        for name in ALL:
            entry = run["results"].get(name)
            if entry is None:
                continue
            row = {
                "size": tuple(run["size"]),
                "dtype": run["dtype"],
                "threads": run["threads"],
                "impl": name,
                "forward_ms": entry["forward"]["median_s"] * 1e3,
                "train_ms": entry["train"]["median_s"] * 1e3,
                "train_gflops": entry["train"]["gflops"],
                "peak_share": entry["train"]["gflops"] / run["peak_gflops"],
                "vs_torch": None,
                "vs_torch_range": None,
                "vs_torch_forward": None,
                "vs_seed": None,
                "vs_seed_range": None,
                "memory_mib": None,
                "memory_kind": "",
                # inference (no cache) and one streaming step (B = 1), when measured
                "infer_ms": _median_ms(entry, "infer"),
                "vs_torch_infer": None,
                "step_us": None
                if entry.get("stream") is None
                else _median_ms(entry, "stream") * 1e3,
                "vs_torch_step": None,
                # the most vs torch / inf vs could be: PyTorch's time over the products' at peak
                "vs_torch_bound": bounds.get("train"),
                "vs_torch_infer_bound": bounds.get("infer"),
            }
            for kind, key in (("infer", "vs_torch_infer"), ("stream", "vs_torch_step")):
                if torch is not None and kind in torch and kind in entry:
                    row[key] = paired_ratio(torch[kind], entry[kind])
            if torch is not None:
                ratios = paired_ratios(torch["train"], entry["train"])
                row["vs_torch"] = statistics.median(ratios)
                row["vs_torch_range"] = (min(ratios), max(ratios))
                row["vs_torch_forward"] = paired_ratio(torch["forward"], entry["forward"])
            if seed is not None:
                # the NumPy target: seed-style time / ours, paired as for PyTorch
                ratios = paired_ratios(seed["train"], entry["train"])
                row["vs_seed"] = statistics.median(ratios)
                row["vs_seed_range"] = (min(ratios), max(ratios))
            memory = entry.get("memory")
            if memory:
                if name == "torch" or not memory["tracemalloc_bytes"]:
                    if memory["rss_bytes"] is not None:
                        row["memory_mib"], row["memory_kind"] = memory["rss_bytes"] / 2**20, "rss"
                else:
                    row["memory_mib"] = memory["tracemalloc_bytes"] / 2**20
            out.append(row)
    return out


def _bounds(run: dict, torch: dict | None) -> dict:
    """Per kind (``train``, ``infer``): PyTorch's median time over the time of the run's matrix
    products at the measured GEMM peak (``train``: forward+backward's flops, ``infer``:
    forward's) — the ratio to PyTorch an implementation would have with every product flop at
    the peak and nothing else, so the bound of ``vs torch`` and ``inf vs``. Empty without
    PyTorch's timings, the flops or the peak (results written before they were recorded)."""
    flops, peak = run.get("flops"), run.get("peak_gflops")
    if torch is None or not flops or not peak:
        return {}
    counted = {"train": flops["train"], "infer": flops["forward"]}
    return {
        kind: torch[kind]["median_s"] / (counted[kind] / (peak * 1e9))
        for kind in counted
        if kind in torch
    }


def _median_ms(entry: dict, kind: str):
    return None if entry.get(kind) is None else entry[kind]["median_s"] * 1e3


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _bound(row, key):
    """A bound of a ratio to PyTorch, on the rows that are not PyTorch's own."""
    return "-" if row["impl"] == "torch" or row[key] is None else f"{row[key]:.2f}x"


def _spread(pair):
    return "-" if pair is None else f"{pair[0]:.2f}-{pair[1]:.2f}"


def table(results: dict) -> str:
    """A plain-text table: one line per configuration and implementation."""
    header = (
        f"{'(B, T, X, H)':<19} {'dtype':<5} {'thr':>3} {'implementation':<23} "
        f"{'fwd ms':>9} {'fwd+bwd ms':>11} {'vs torch':>9} {'(repeats)':>11} {'@peak':>6} "
        f"{'fwd vs':>7} {'vs seed':>8} {'(repeats)':>11} {'GFLOP/s':>8} {'peak%':>6} "
        f"{'mem MiB':>9} {'infer ms':>9} {'inf vs':>7} {'@peak':>6} {'step us':>8} {'step vs':>8}"
    )
    lines = [header, "-" * len(header)]
    previous = None
    for row in rows(results):
        key = (row["size"], row["dtype"], row["threads"])
        if previous is not None and key != previous:
            lines.append("")
        previous = key
        memory = "-" if row["memory_mib"] is None else f"{row['memory_mib']:.1f}"
        if row["memory_kind"] == "rss":
            memory += "*"
        lines.append(
            f"{row['size']!s:<19} {row['dtype']:<5} {row['threads']:>3} "
            f"{LABELS[row['impl']]:<23} {row['forward_ms']:>9.3f} {row['train_ms']:>11.3f} "
            f"{_ratio(row['vs_torch']):>9} {_spread(row['vs_torch_range']):>11} "
            f"{_bound(row, 'vs_torch_bound'):>6} {_ratio(row['vs_torch_forward']):>7} "
            f"{_ratio(row['vs_seed']):>8} {_spread(row['vs_seed_range']):>11} "
            f"{row['train_gflops']:>8.1f} {100 * row['peak_share']:>5.0f}% {memory:>9} "
            f"{_number(row['infer_ms'], 3):>9} {_ratio(row['vs_torch_infer']):>7} "
            f"{_bound(row, 'vs_torch_infer_bound'):>6} "
            f"{_number(row['step_us'], 1):>8} {_ratio(row['vs_torch_step']):>8}"
        )
    peaks = ", ".join(f"{k}: {v:.1f}" for k, v in results["gemm_peak_gflops"].items())
    lines += [
        "",
        "vs torch = PyTorch time / this time, the median over repeats of the ratio within "
        "each repeat (> 1: faster than PyTorch), (repeats): the lowest and highest of those "
        "ratios; fwd vs: forward only; vs seed: seed-style NumPy time / this time, the same way. "
        "ms: medians. "
        "generated C on 2+ threads: the OpenMP build "
        "(native.load(..., openmp=True)).",
        "GFLOP/s counts matrix-product flops of forward+backward, 6 T B 4H (X + H); "
        "peak% = share of "
        "the NumPy GEMM peak measured (1024^3) at the start of the same configuration's run; "
        f"2048^3 peaks at start (dtype/threads): {peaks} GFLOP/s.",
        "@peak: PyTorch's time / the time of this row's products at that GEMM peak: the ratio "
        "an implementation would have with every product flop at the peak and nothing else, the "
        "bound of the ratio before it (vs torch; inf vs, counting forward's flops).",
        "mem: peak allocation of one forward+backward (tracemalloc); * = rise of the resident "
        "set's high-water mark instead.",
        "infer: the forward without a cache (ours cache=False, the C on prepared parameters; "
        "PyTorch nn.LSTM under torch.no_grad); step: one streaming step of one sequence (B = 1, "
        "this X and H; ours step, PyTorch nn.LSTMCell under torch.no_grad); inf vs, step vs: "
        "PyTorch time / this time, paired by repeat as vs torch.",
    ]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path | None:
    """Time per step of forward+backward vs hidden size, one line per implementation, one panel
    per (dtype, threads). None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    data = rows(results)
    panels = sorted({(r["dtype"], r["threads"]) for r in data})
    columns = min(2, len(panels))
    lines_ = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(lines_, columns, figsize=(6 * columns, 4.2 * lines_), squeeze=False)
    for panel, ax in zip(panels, axes.flat, strict=False):
        for name in ALL:
            points = sorted(
                (r["size"][3], r["train_ms"] / r["size"][1], r["size"])
                for r in data
                if (r["dtype"], r["threads"]) == panel and r["impl"] == name
            )
            if points:
                ax.plot(
                    [p[0] for p in points], [p[1] for p in points], marker="o", label=LABELS[name]
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden size H  (B, T, X vary with H: see the table)")
        ax.set_ylabel("forward+backward ms per step")
        ax.set_title(f"{panel[0]}, {panel[1]} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    machine = results["machine"]
    figure.suptitle(
        f"lstm-sym bench, {machine['date']}, {machine.get('cpu', '?')}, {machine['cpus']} CPUs",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
