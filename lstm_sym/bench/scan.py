"""``lstm-sym bench --scan``: the time-parallel scan of the affine cells (minGRU, minLSTM:
``forward_scan``/``backward_scan`` of their generated NumPy modules) against their step loop
(``forward``/``backward``), one training pass (forward then backward) each, interleaved sample by
sample so that a busy machine slows both alike; the ratio is loop time over scan time from the
same run."""

from __future__ import annotations

import importlib
import time

import numpy as np

#: The cells with a scan, and the default steps (the issue's T = 100, 1000, 10000).
CELLS = ("mingru", "minlstm")
STEPS = (100, 1000, 10_000)
#: Batch, event size and hidden size of the default runs.
SHAPE = (4, 16, 32)


def _problem(module, steps: int, batch: int, event_size: int, hidden_size: int, dtype):
    rng = np.random.default_rng(0)
    parameters = module.Parameters(event_size, hidden_size, dtype=dtype)
    for name in parameters.NAMES:
        shape = (hidden_size,) if name.endswith("_bias") else np.shape(getattr(parameters, name))
        setattr(parameters, name, rng.normal(0.0, 0.5, size=shape).astype(dtype))
    events = rng.normal(size=(steps, batch, event_size)).astype(dtype)
    d_outputs = rng.normal(size=(steps, batch, hidden_size)).astype(dtype)
    return parameters, events, d_outputs


def run(
    cell: str,
    steps: int,
    batch: int,
    event_size: int,
    hidden_size: int,
    dtype: str,
    repeats: int = 5,
) -> dict:
    """Seconds per training pass of the loop and of the scan (every sample), and their ratio."""
    module = importlib.import_module(f"lstm_sym.kernels.{cell}")
    np_dtype = np.float32 if dtype == "f32" else np.float64
    parameters, events, d_outputs = _problem(
        module, steps, batch, event_size, hidden_size, np_dtype
    )
    passes = {
        "loop": (module.forward, module.backward),
        "scan": (module.forward_scan, module.backward_scan),
    }
    samples: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, (forward, backward) in passes.items():
            start = time.perf_counter()
            _, _, cache = forward(parameters, events)
            backward(cache, d_outputs)
            samples[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in samples.items()}
    return {
        "cell": cell,
        "size": [batch, steps, event_size, hidden_size],
        "dtype": dtype,
        "samples_s": samples,
        "loop_s": best["loop"],
        "scan_s": best["scan"],
        "ratio": best["loop"] / best["scan"],
    }


def table(runs: list[dict]) -> str:
    lines = [
        "| cell | (B, T, X, H) | dtype | step loop | scan | loop / scan |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['cell']} | {tuple(r['size'])} | {r['dtype']} | {r['loop_s'] * 1e3:.2f} ms | "
            f"{r['scan_s'] * 1e3:.2f} ms | {r['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main(args, log) -> int:
    """The ``--scan`` group of ``lstm-sym bench`` (float32 unless ``--dtype`` says otherwise;
    ``--size B,T,X,H`` replaces the default steps and shape)."""
    import json

    from . import runner

    sizes = args.size or [(SHAPE[0], steps, *SHAPE[1:]) for steps in STEPS]
    cells = [c for c in dict.fromkeys(args.cell or CELLS)]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        log(f"lstm-sym bench --scan: no scan for {', '.join(unknown)} (cells: {', '.join(CELLS)})")
        return 2
    runs = []
    for size in sizes:
        for cell in cells:
            for dtype in args.dtype or ["f32"]:
                batch, steps, event_size, hidden_size = size
                runs.append(run(cell, steps, batch, event_size, hidden_size, dtype, args.repeats))
                log(table(runs[-1:]).splitlines()[-1])
    print(table(runs))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / "scan.json"
    path.write_text(json.dumps({"machine": runner.machine(), "runs": runs}, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0
