"""The ``lstm-sym`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import artifacts
from .cells import CELLS
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
    if args.spec is not None:
        from . import userspec

        if args.cell:
            raise SpecError("give either --spec or --cell, not both")
        spec = userspec.load_spec(args.spec)
        out = Path(args.out) if args.out is not None else userspec.default_out(args.spec)
        out = out.resolve()
        files = userspec.user_artifacts(spec, Path(args.spec), out, out)
        report = generate(out, files, check=args.check)
    else:
        if args.out is not None:
            raise SpecError("--out goes with --spec (built-in cells are written under the root)")
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
    where = f"{out}/" if args.spec is not None else ""
    for path in report.written:
        print(f"wrote {where}{path}")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged ({seconds:.1f} s)")
    return 0


def _amalgamate(args: argparse.Namespace) -> int:
    """One C file with the runtime and a cell (and optionally its self-contained header)."""
    from . import runtime
    from .cells import get
    from .codegen import c_module
    from .derive import derive

    if (args.spec is None) == (args.cell is None):
        raise SpecError("give a built-in cell name or --spec, not both")
    if args.spec is not None:
        from . import userspec

        spec = userspec.load_spec(args.spec)
        origin = f"--spec {Path(args.spec).as_posix()}"
    else:
        spec = get(args.cell)
        origin = spec.name
    command = f"lstm-sym amalgamate {origin} --out {Path(args.out).as_posix()}"
    derivation = derive(spec)
    header = c_module.emit_header(derivation, command)
    source = c_module.emit_source(derivation, command)
    written = [(Path(args.out), runtime.amalgamation(spec.name, header, source, command))]
    if args.header is not None:
        written.append((Path(args.header), runtime.amalgamated_header(spec.name, header)))
    for path, text in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from . import userspec

    if args.spec is not None:
        specs = [userspec.load_spec(args.spec)]
    else:
        from .cells import get

        specs = [get(name) for name in (args.cell or list(CELLS))]
    passed = True
    for spec in specs:
        if spec.name in CELLS and args.spec is None:
            passed &= _verify_builtin(spec)
        else:
            passed &= userspec.verify(spec)
    return 0 if passed else 1


def _verify_builtin(spec) -> bool:
    from . import derivation_checks as checks
    from . import native
    from .userspec import compile_failure

    rows = [
        checks.check_exact(spec),
        checks.check_exact(spec, lengths=True),
        checks.check_finite_differences(spec),
        checks.check_finite_differences(spec, lengths=True),
        *checks.check_scan(spec),
    ]
    try:
        native.find_compiler()
    except native.NativeBuildError as error:  # only a missing compiler skips the C
        print(f"C kernels not checked (skipped): {error}")
        cell = None
    else:
        try:
            cell = native.load(spec.name)
        except native.NativeBuildError as error:  # the generated C did not compile
            print(f"{spec.name}: generated C: FAILED to compile: {error}")
            rows.append(compile_failure("generated C"))
            cell = None
    if cell is not None:
        rows += [
            checks.check_exact(spec, cell, "generated C, float64"),
            checks.check_exact(spec, cell, "generated C, float64", lengths=True),
            checks.check_float32(spec, cell),
            *checks.check_c_scan(spec, cell),
        ]
    try:
        row = checks.check_torch(spec)
    except ImportError:
        row = None
    if row is not None:
        rows.append(row)
    for row in rows:
        print(
            f"{spec.name}: {row.check} vs {row.reference} ({row.sizes}): "
            f"{row.error:.2e} (tolerance {row.tolerance:.0e}) {'ok' if row.passed else 'FAILED'}"
        )
    return all(r.passed for r in rows)


def _stale_exit(stale: list[str], command: str) -> int:
    for path in stale:
        print(f"stale or missing: {path}", file=sys.stderr)
    if stale:
        print(f"run `{command}` to regenerate", file=sys.stderr)
        return 1
    return 0


def _latex(args: argparse.Namespace) -> int:
    from . import derivations

    start = time.perf_counter()
    names = args.cell or list(CELLS)
    stale = derivations.latex(args.root, names, pdf=args.pdf, check=args.check)
    seconds = time.perf_counter() - start
    if args.check:
        code = _stale_exit(stale, "lstm-sym latex --pdf")
        if not code:
            print(f"derivation documents are up to date ({seconds:.1f} s)")
        return code
    print(f"done ({seconds:.1f} s)")
    return 0


def _notebook(args: argparse.Namespace) -> int:
    from .codegen import notebooks

    start = time.perf_counter()
    names = args.cell or list(CELLS)
    stale = notebooks.write(args.root, names, check=args.check)
    seconds = time.perf_counter() - start
    if args.check:
        code = _stale_exit(stale, "lstm-sym notebook")
        if not code:
            print(f"notebooks are up to date ({seconds:.1f} s)")
        return code
    print(f"done ({seconds:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-sym", description="Derive recurrent cells with SymPy and generate their kernels."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    trust = "A spec file (--spec) is Python code: loading it runs it, so run only specs you trust."
    gen = sub.add_parser(
        "generate", help="regenerate everything under generated/", description=trust
    )
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming stale files"
    )
    gen.add_argument("--cell", action="append", help="only this built-in cell (repeatable)")
    gen.add_argument("--root", type=Path, default=None, help="project root (default: the checkout)")
    gen.add_argument(
        "--spec",
        type=Path,
        default=None,
        help=(
            "a user's cell: a Python file defining SPEC = CellSpec(...); a spec is Python "
            "code and runs when loaded: run only specs you trust"
        ),
    )
    gen.add_argument(
        "--out",
        type=Path,
        default=None,
        help=(
            "with --spec: where to write <cell>.py/.c/.h/.abi.json/.tex "
            "(default: generated/ beside it)"
        ),
    )
    gen.set_defaults(run=_generate)

    ver = sub.add_parser(
        "verify",
        help="check a cell's kernels against the exact model and finite differences",
        description=trust,
    )
    ver.add_argument(
        "--spec",
        type=Path,
        default=None,
        help="a user's cell spec file (Python code, run when loaded: run only specs you trust)",
    )
    ver.add_argument("--cell", action="append", help="only this built-in cell (repeatable)")
    ver.set_defaults(run=_verify)

    tex = sub.add_parser(
        "latex",
        help="write derivations/<cell>.tex and its verification table (runs the checks)",
    )
    tex.add_argument(
        "--pdf", action="store_true", help="also compile derivations/<cell>.pdf (pdflatex)"
    )
    tex.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a .tex, table or PDF is stale",
    )
    tex.add_argument("--cell", action="append", help="only this built-in cell (repeatable)")
    tex.add_argument("--root", type=Path, default=None, help="project root (default: the checkout)")
    tex.set_defaults(run=_latex)

    nb = sub.add_parser("notebook", help="write and execute the notebooks under derivations/")
    nb.add_argument(
        "--check",
        action="store_true",
        help="write nothing, run nothing; exit 1 if a notebook is stale",
    )
    nb.add_argument("--cell", action="append", help="only this built-in cell (repeatable)")
    nb.add_argument("--root", type=Path, default=None, help="project root (default: the checkout)")
    nb.set_defaults(run=_notebook)

    amalgamate = sub.add_parser(
        "amalgamate",
        help="write one C file holding a cell and the C runtime (compile it with only libm)",
    )
    amalgamate.add_argument("cell", nargs="?", default=None, help="a built-in cell, e.g. lstm")
    amalgamate.add_argument(
        "--spec", type=Path, default=None, help="a user's cell spec file instead"
    )
    amalgamate.add_argument("--out", type=Path, required=True, help="the C file to write")
    amalgamate.add_argument(
        "--header",
        type=Path,
        default=None,
        help="also write the cell's header with the runtime's constants in it (one .h)",
    )
    amalgamate.set_defaults(run=_amalgamate)

    from .bench import command as bench_command

    bench_command.configure(
        sub.add_parser("bench", help="time the generated kernels against PyTorch (see --help)")
    )

    # issue 7: the trained example (its options live in lstm_sym/examples/train.py)
    from .examples import train as train_example

    example = sub.add_parser(
        "train-example",
        help="train a character-level LSTM with the generated kernels and compare with PyTorch",
        description=train_example.DESCRIPTION,
        formatter_class=train_example.HelpFormatter,
    )
    train_example.add_arguments(example)
    example.set_defaults(run=train_example.run)

    # issue 19: a peephole LSTM trained in a standard PyTorch loop
    from .examples import torch_train

    torch_example = sub.add_parser(
        "torch-example",
        help="train a peephole LSTM (lstm_sym.torch.RNN) with DataLoader, Adam, clipping",
        description=torch_train.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    torch_train.add_arguments(torch_example)
    torch_example.set_defaults(run=torch_train.run)
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
    except RuntimeError as error:  # DerivationError, a missing tool, a failing notebook cell
        print(f"lstm-sym: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path that cannot be written: a file where a folder should be
        print(f"lstm-sym: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
