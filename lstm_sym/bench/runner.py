"""Run the benchmark grid: one subprocess per (size, dtype, threads), then report."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date

#: (batch, steps, event_size, hidden_size)
DEFAULT_SIZES = ((1, 100, 16, 32), (32, 50, 64, 128), (64, 50, 128, 256), (64, 32, 256, 512))
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass
class Options:
    sizes: list[tuple[int, int, int, int]] = field(default_factory=lambda: list(DEFAULT_SIZES))
    dtypes: list[str] = field(default_factory=lambda: ["f32", "f64"])
    threads: list[int] = field(default_factory=lambda: [1, 2])
    impls: list[str] = field(default_factory=list)
    repeats: int = 5
    min_time: float = 0.05
    pause: float = 0.2
    memory: bool = True


def _worker(config: dict, threads: int, timeout: float | None = None) -> dict:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    command = [sys.executable, "-m", "lstm_sym.bench.worker", json.dumps(config)]
    result = subprocess.run(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker failed (exit {result.returncode}): {config}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> dict:
    info = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def run(options: Options, log=print) -> dict:
    """Measure the GEMM peaks, then every configuration; returns the JSON-able results."""
    started = time.perf_counter()
    peaks = {}
    for dtype in options.dtypes:
        for threads in options.threads:
            log(f"measuring the {dtype} GEMM peak (2048^3 matmul) on {threads} thread(s) ...")
            peak = _worker({"mode": "peak", "dtype": dtype, "threads": threads}, threads)
            peaks[f"{dtype}/{threads}"] = peak["gflops"]
            log(f"  {peak['gflops']:.1f} GFLOP/s")
    configs = [
        (size, dtype, threads)
        for size in options.sizes
        for dtype in options.dtypes
        for threads in options.threads
    ]
    runs = []
    for index, (size, dtype, threads) in enumerate(configs, 1):
        label = f"[{index}/{len(configs)}] (B,T,X,H)={tuple(size)} {dtype} {threads}t"
        log(f"{label} ... ({time.perf_counter() - started:.0f} s elapsed)")
        config = {
            "size": list(size),
            "dtype": dtype,
            "threads": threads,
            "impls": options.impls,
            "repeats": options.repeats,
            "min_time": options.min_time,
            "pause": options.pause if threads > 1 else 0.0,
            "memory": options.memory,
            "label": label,
        }
        runs.append(_worker(config, threads))
    return {
        "machine": machine(),
        "options": {
            "repeats": options.repeats,
            "min_time": options.min_time,
            "pause": options.pause,
            "impls": options.impls,
        },
        "gemm_peak_gflops": peaks,
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }
