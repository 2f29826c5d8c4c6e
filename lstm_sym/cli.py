"""The ``lstm-sym`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import artifacts
from .generate import generate
from .pins import PinError
from .spec import SpecError


def project_root() -> Path:
    """The checkout that holds ``lstm_sym/`` (an editable install), else the working directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists() and (here / "lstm_sym").is_dir():
        return here
    return Path.cwd()


def _generate(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    report = generate(args.root, artifacts.all_artifacts(args.cell), check=args.check)
    seconds = time.perf_counter() - start
    if args.check:
        for path in report.stale:
            print(f"stale or hand-edited: {path}", file=sys.stderr)
        for path in report.missing:
            print(f"missing: {path}", file=sys.stderr)
        if report.stale or report.missing:
            print("run `lstm-sym generate` to regenerate", file=sys.stderr)
            return 1
        print(f"{len(report.unchanged)} generated files are up to date ({seconds:.1f} s)")
        return 0
    for path in report.written:
        print(f"wrote {path}")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged ({seconds:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-sym", description="Derive recurrent cells with SymPy and generate their kernels."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="regenerate everything under generated/")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 naming stale files")
    gen.add_argument("--cell", action="append", help="only this built-in cell (repeatable)")
    gen.add_argument("--root", type=Path, default=None, help="project root (default: the checkout)")
    gen.set_defaults(run=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "root", "unset") is None:
        args.root = project_root()
    try:
        return args.run(args)
    except (SpecError, PinError, KeyError) as error:
        print(f"lstm-sym: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
