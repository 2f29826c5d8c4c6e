"""``lstm-sym bench``: options and the command itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import report, runner
from .workloads import ALL, DEFAULT


def _size(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"a size is B,T,X,H (four positive integers), got {text!r}"
        )
    return values  # type: ignore[return-value]


def _torch_sizes():
    from .torch_step import SIZES

    return SIZES


def _torch_cells():
    from .torch_step import CELLS

    return CELLS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        type=_size,
        action="append",
        metavar="B,T,X,H",
        help="batch, steps, event size, hidden size (repeatable; default: "
        + " ".join(",".join(map(str, s)) for s in runner.DEFAULT_SIZES)
        + ")",
    )
    parser.add_argument(
        "--dtype", choices=("f32", "f64"), action="append", help="repeatable (default: both)"
    )
    parser.add_argument(
        "--threads", type=int, action="append", help="thread count, repeatable (default: 1 and 2)"
    )
    parser.add_argument(
        "--impl",
        choices=ALL,
        action="append",
        help=f"implementation, repeatable (default: {', '.join(DEFAULT)}; unavailable ones are "
        "skipped)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed samples per measurement")
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per sample (fast calls loop)"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.2,
        help="seconds between implementations on 2+ threads (idle BLAS threads spin)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("build") / "bench",
        help="where bench.json/png go, relative to the working directory (default: %(default)s, "
        "ignored by git; docs/bench holds the README's figures)",
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    torch_group = parser.add_argument_group(
        "PyTorch training step (--torch)",
        "one training step (forward, sum of outputs, backward) of lstm_sym.torch.RNN against "
        "the eager loop of lstm_sym.torch.reference, that loop under torch.compile (its compile "
        "time reported apart) and nn.LSTM/nn.GRU, and the forward alone under torch.no_grad "
        "(eval: ours through the cell's infer operator); ratios from the same run, peak memory; "
        "default sizes " + " ".join(",".join(map(str, s)) for s in _torch_sizes()) + ", f32, "
        "1 thread; writes torch.json",
    )
    torch_group.add_argument("--torch", action="store_true", help="run this group instead")
    torch_group.add_argument(
        "--cell",
        action="append",
        help="cell, repeatable (default: " + ", ".join(_torch_cells()) + ")",
    )
    torch_group.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile loop (minutes per size)"
    )
    scan_group = parser.add_argument_group(
        "time-parallel scan (--scan)",
        "forward_scan/backward_scan of the cells whose update the derivation proves affine "
        "(mingru, minlstm) against their step loop, one training pass each, in NumPy and in C "
        "(the blocked scan against the C loop), interleaved; "
        "default T = 100, 1000, 10000 at B, X, H = 4, 16, 32, f32 (--cell, --size, --dtype, "
        "--repeats apply); writes scan.json",
    )
    scan_group.add_argument("--scan", action="store_true", help="run this group instead")
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    if args.repeats < 1 or (args.threads and min(args.threads) < 1):
        print("lstm-sym bench: --repeats and --threads must be at least 1", file=sys.stderr)
        return 2
    if args.torch:
        from . import torch_step

        return torch_step.main(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.scan:
        from . import scan

        return scan.main(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    options = runner.Options(
        sizes=args.size or list(runner.DEFAULT_SIZES),
        dtypes=args.dtype or ["f32", "f64"],
        threads=args.threads or [1, 2],
        impls=list(dict.fromkeys(args.impl or DEFAULT)),
        repeats=args.repeats,
        min_time=args.min_time,
        pause=args.pause,
        memory=not args.no_memory,
    )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = runner.run(options, log=log)
    print(report.table(results))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / "bench.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {json_path}")
    if not args.no_plot:
        png = report.plot(results, args.out_dir / "bench.png")
        print(f"wrote {png}" if png else "matplotlib is not installed: no plot")
    return 0
