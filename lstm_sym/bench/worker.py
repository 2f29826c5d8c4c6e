"""One benchmark configuration, run in its own process: ``python -m lstm_sym.bench.worker JSON``.

The parent sets the thread environment (OpenBLAS/OpenMP/MKL) before this process imports
NumPy, so every library starts with the requested thread count; threadpoolctl (when installed)
and ``torch.set_num_threads`` enforce it. Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import ctypes
import gc
import json
import statistics
import sys
import time
import tracemalloc


def _limit_threads(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(threads)


def gemm_peak(dtype: str, threads: int, size: int = 2048, repeats: int = 3) -> dict:
    """Best GFLOP/s of a square NumPy matmul: the machine's measured GEMM peak."""
    import numpy as np

    _limit_threads(threads)
    rng = np.random.default_rng(0)
    kind = np.float32 if dtype == "f32" else np.float64
    a = rng.standard_normal((size, size)).astype(kind)
    b = rng.standard_normal((size, size)).astype(kind)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return {"dtype": dtype, "threads": threads, "size": size, "gflops": 2 * size**3 / best / 1e9}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _fresh_pages_for_blocks() -> None:
    """Make glibc's malloc map every block of 4 KiB or more afresh and unmap it when freed (a
    fixed ``M_MMAP_THRESHOLD``; the default threshold grows as large blocks are freed, after
    which they are kept and reused and the resident set no longer rises with what a call
    allocates), and return the heap's free memory first (``malloc_trim``). Called before the
    memory pass only: mapping every block costs time, which the timing passes must not pay.
    Nothing happens where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return
    malloc_trim(0)
    mallopt(-3, 4096)  # M_MMAP_THRESHOLD


def peak_memory(call) -> dict:
    """Peak memory of one call: tracemalloc (NumPy allocations, Python objects) and the rise of
    the resident set's high-water mark (any allocator, e.g. PyTorch's; Linux only: with glibc
    every block of 4 KiB or more mapped afresh, :func:`_fresh_pages_for_blocks`)."""
    gc.collect()
    _fresh_pages_for_blocks()
    rss = None
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current RSS
        before = _rss_kib("VmRSS:")
    except OSError:
        before = None
    tracemalloc.start()
    result = call()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    if before is not None:
        rss = max(0, _rss_kib("VmHWM:") - before) * 1024
    return {"tracemalloc_bytes": traced, "rss_bytes": rss}


def _calibrate(call, min_time: float) -> int:
    """Calls per sample so that one sample lasts at least ``min_time`` seconds."""
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    return max(1, int(min_time / max(once, 1e-9)) + 1) if once < min_time else 1


def _kinds(workload, kinds) -> list[str]:
    """The kinds of call ``workload`` offers (inference and streaming are optional)."""
    return [kind for kind in kinds if getattr(workload, kind) is not None]


def run(config: dict) -> dict:
    import numpy as np  # noqa: F401  (imported after the thread environment is set)

    from .workloads import KINDS, Problem, Unavailable, build

    threads = config["threads"]
    _limit_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    problem = Problem(*config["size"], config["dtype"])
    label = config.get("label", "")
    # The GEMM peak under this run's conditions (the machine may be shared): share of peak.
    peak = gemm_peak(config["dtype"], threads, size=1024, repeats=5)["gflops"]
    workloads, skipped = {}, {}
    for name in config["impls"]:
        try:
            workloads[name] = build(name, problem, threads)
        except Unavailable as error:
            skipped[name] = str(error)
            print(f"{label}  {name}: skipped ({error})", file=sys.stderr, flush=True)
    pause = config["pause"]
    loops = {}
    for name, workload in workloads.items():  # warm up (and build caches), then calibrate
        for kind in _kinds(workload, KINDS):
            call = getattr(workload, kind)
            call()
            loops[name, kind] = _calibrate(call, config["min_time"])
        time.sleep(pause)
    samples = {key: [] for key in loops}
    names = list(workloads)
    for repeat in range(config["repeats"]):
        # Interleaved: every repeat times every implementation, rotating who goes first.
        order = names[repeat % len(names) :] + names[: repeat % len(names)] if names else []
        for name in order:
            for kind in _kinds(workloads[name], KINDS):
                call, n = getattr(workloads[name], kind), loops[name, kind]
                start = time.perf_counter()
                for _ in range(n):
                    call()
                samples[name, kind].append((time.perf_counter() - start) / n)
            if pause:
                time.sleep(pause)
        print(
            f"{label}  repeat {repeat + 1}/{config['repeats']} done",
            file=sys.stderr,
            flush=True,
        )
    results = {}
    for name, workload in workloads.items():
        entry = {}
        for kind in _kinds(workload, KINDS):
            times = samples[name, kind]
            flops = problem.step_flops() if kind == "stream" else problem.flops(kind == "train")
            entry[kind] = {
                "median_s": statistics.median(times),
                "min_s": min(times),
                "samples_s": times,
                "calls_per_sample": loops[name, kind],
                "gflops": flops / statistics.median(times) / 1e9,
            }
        if config.get("memory", True):
            entry["memory"] = peak_memory(workload.train)
            if workload.infer is not None:
                entry["infer_memory"] = peak_memory(workload.infer)
        results[name] = entry
    return {
        "size": list(config["size"]),
        "dtype": config["dtype"],
        "threads": threads,
        "flops": {"forward": problem.flops(False), "train": problem.flops(True)},
        "peak_gflops": peak,
        "results": results,
        "skipped": skipped,
    }


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    if config.get("mode") == "peak":
        output = gemm_peak(config["dtype"], config["threads"])
    elif config.get("mode") == "torch":
        from . import torch_step

        output = torch_step.run(config)
    else:
        output = run(config)
    sys.stdout.write(json.dumps(output) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
