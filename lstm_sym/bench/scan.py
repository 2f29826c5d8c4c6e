"""``lstm-sym bench --scan``: the time-parallel scan of the affine cells (minGRU, minLSTM:
``forward_scan``/``backward_scan`` of their generated NumPy modules) against their step loop
(``forward``/``backward``), one training pass (forward then backward) each, and the same pair in
their generated C (``<cell>_forward_scan``/``_backward_scan``, the blocked scan, against
``<cell>_forward``/``_backward`` through :mod:`lstm_sym.native`), all four interleaved sample by
sample so that a busy machine slows them alike; each ratio is loop time over scan time from the
same run. Without a C compiler the C columns are left out (and the log says so)."""

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
    native=None,
) -> dict:
    """Seconds per training pass of the loop and of the scan (every sample), and their ratio;
    with ``native`` (the cell's :class:`~lstm_sym.native.NativeCell`) also the C loop's and the
    C scan's (``c_loop``, ``c_scan``, ``c_ratio``)."""
    module = importlib.import_module(f"lstm_sym.kernels.{cell}")
    np_dtype = np.float32 if dtype == "f32" else np.float64
    parameters, events, d_outputs = _problem(
        module, steps, batch, event_size, hidden_size, np_dtype
    )
    passes = {
        "loop": (module.forward, module.backward),
        "scan": (module.forward_scan, module.backward_scan),
    }
    if native is not None:
        passes["c_loop"] = (native.forward, native.backward)
        passes["c_scan"] = (native.forward_scan, native.backward_scan)
    samples: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, (forward, backward) in passes.items():
            start = time.perf_counter()
            _, _, cache = forward(parameters, events)
            backward(cache, d_outputs)
            samples[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in samples.items()}
    result = {
        "cell": cell,
        "size": [batch, steps, event_size, hidden_size],
        "dtype": dtype,
        "samples_s": samples,
        "loop_s": best["loop"],
        "scan_s": best["scan"],
        "ratio": best["loop"] / best["scan"],
    }
    if native is not None:
        result["c_loop_s"], result["c_scan_s"] = best["c_loop"], best["c_scan"]
        result["c_ratio"] = best["c_loop"] / best["c_scan"]
    return result


def table(runs: list[dict]) -> str:
    lines = [
        "| cell | (B, T, X, H) | dtype | step loop | scan | loop / scan | C loop | C scan "
        "| C loop / scan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c = (
            f"{r['c_loop_s'] * 1e3:.2f} ms | {r['c_scan_s'] * 1e3:.2f} ms | {r['c_ratio']:.2f}x"
            if "c_ratio" in r
            else "- | - | -"
        )
        lines.append(
            f"| {r['cell']} | {tuple(r['size'])} | {r['dtype']} | {r['loop_s'] * 1e3:.2f} ms | "
            f"{r['scan_s'] * 1e3:.2f} ms | {r['ratio']:.2f}x | {c} |"
        )
    return "\n".join(lines)


def _natives(cells, log) -> dict:
    """The cells' C (:func:`lstm_sym.native.load`), or none without a compiler."""
    from .. import native

    try:
        native.find_compiler()
    except native.NativeBuildError as error:
        log(f"lstm-sym bench --scan: C columns left out (no compiler): {error}")
        return {}
    return {cell: native.load(cell) for cell in cells}


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
    natives = _natives(cells, log)
    runs = []
    for size in sizes:
        for cell in cells:
            for dtype in args.dtype or ["f32"]:
                batch, steps, event_size, hidden_size = size
                runs.append(
                    run(
                        cell,
                        steps,
                        batch,
                        event_size,
                        hidden_size,
                        dtype,
                        args.repeats,
                        natives.get(cell),
                    )
                )
                log(table(runs[-1:]).splitlines()[-1])
    print(table(runs))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / "scan.json"
    path.write_text(json.dumps({"machine": runner.machine(), "runs": runs}, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0
