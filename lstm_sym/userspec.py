"""User-defined cells: load a spec file, generate its files, verify its kernels.

A spec file is a Python module that defines ``SPEC``, a :class:`~lstm_sym.spec.CellSpec`
(see ``examples/cells/mgu.py``). ``lstm-sym generate --spec cell.py [--out DIR]`` writes
``DIR/<name>.py``, ``DIR/<name>.{c,h}``, ``DIR/<name>.abi.json`` (``native.load(name,
directory=DIR)`` runs its C) and ``DIR/<name>.tex`` with its equation sidecar;
``lstm-sym verify --spec cell.py`` runs the generated kernels against the independent exact
model and finite differences (and the C in both precisions when a C compiler is available).
Nothing is written unless the spec is valid and every file rendered.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from .artifacts import Artifact, cell_artifacts, derivation_artifacts, runtime_artifacts
from .cells import CELLS
from .spec import CellSpec, SpecError, validate


def load_spec(path: Path) -> CellSpec:
    """The ``SPEC`` of the Python file ``path``, validated; SpecError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    module_name = f"_lstm_sym_user_spec_{path.stem}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None or loader.loader is None:
        raise SpecError(f"spec file {path} is not a Python module")
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except SpecError:
        raise
    except Exception as error:  # the user's file: report it as a spec error, with its cause
        raise SpecError(
            f"spec file {path} failed to run: {type(error).__name__}: {error}"
        ) from error
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, CellSpec):
        raise SpecError(
            f"spec file {path} must define SPEC = lstm_sym.spec.CellSpec(...), "
            f"got {type(spec).__name__}"
        )
    check(spec)
    return spec


def check(spec: CellSpec) -> None:
    """Raise :class:`SpecError` naming the equation unless ``spec`` is well-formed and none of
    its names is one the emitters generate (:mod:`lstm_sym.codegen.reserved`)."""
    from .codegen import reserved

    validate(spec)
    reserved.check(spec)


def user_artifacts(spec: CellSpec, spec_path: Path, out: Path, root: Path) -> list[Artifact]:
    """The files of a user's cell, with paths relative to ``root`` (all in ``out``)."""
    check(spec)
    if Path(out).exists() and not Path(out).is_dir():
        raise SpecError(f"--out {out} is a file, not a directory: give a directory to write into")
    command = f"lstm-sym generate --spec {spec_path.as_posix()}"
    relative = Path(out).resolve().relative_to(root.resolve()).as_posix()
    artifacts = []
    for artifact in cell_artifacts(spec, command) + derivation_artifacts(spec, command):
        name = artifact.path.rsplit("/", 1)[-1]
        path = name if relative == "." else f"{relative}/{name}"
        artifacts.append(Artifact(path, artifact.render))
    artifacts += runtime_artifacts(relative)  # the C runtime the cell's C includes
    targets = {(root / a.path).resolve() for a in artifacts}
    if Path(spec_path).resolve() in targets:
        raise SpecError(
            f"--out {out} would overwrite the spec file {spec_path}: choose another directory"
        )
    return artifacts


def default_out(spec_path: Path) -> Path:
    """``generated/`` beside the spec file."""
    return Path(spec_path).resolve().parent / "generated"


def _import_kernel(spec: CellSpec, directory: Path):
    """Import ``directory/<name>.py`` under a private module name."""
    path = directory / f"{spec.name}.py"
    loader = importlib.util.spec_from_file_location(f"_lstm_sym_kernel_{spec.name}", path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[loader.name] = module
    loader.loader.exec_module(module)
    return module


def compile_failure(check: str):
    """A failed row for C that did not compile (its error is logged above it)."""
    from .derivation_checks import Row

    return Row(check, "the C compiler (compile error above)", "-", float("inf"), 0.0)


def verify(spec: CellSpec, log=print) -> bool:
    """Generate ``spec``'s kernels in a temporary directory and check them; True when all pass.

    A compile error of the generated C is a failure; only a missing C compiler skips the C.

    NumPy float64 against the exact model (1e-12) and finite differences (1e-8), each on full
    sequences and on a padded batch with unsorted lengths; with a C compiler, the C in float64
    against the exact model (both ways) and float32 against float64 (1e-4).
    """
    from . import derivation_checks as checks

    if spec.name in CELLS and CELLS[spec.name] is not spec:
        log(f"note: {spec.name!r} is also a built-in cell name; checking the file's spec")
    check(spec)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstm-sym-verify-") as tmp:
        directory = Path(tmp)
        for artifact in cell_artifacts(spec) + runtime_artifacts("."):  # the C includes it
            (directory / artifact.path.rsplit("/", 1)[-1]).write_bytes(artifact.render())
        module = _import_kernel(spec, directory)
        start = time.perf_counter()
        rows.append(checks.check_exact(spec, module))
        rows.append(checks.check_exact(spec, module, lengths=True))
        rows.append(checks.check_finite_differences(spec, module=module))
        rows.append(checks.check_finite_differences(spec, module=module, lengths=True))
        from . import native

        try:
            native.find_compiler()
        except native.NativeBuildError as error:  # only a missing compiler skips the C
            log(f"C kernels not checked (skipped): {error}")
            cell = None
        else:
            try:
                library = native.build(spec.name, directory)
            except native.NativeBuildError as error:  # the generated C did not compile
                log(f"generated C: FAILED to compile: {error}")
                rows.append(compile_failure("generated C"))
                cell = None
            else:
                cell = native.NativeCell(native.abi.read(directory, spec.name), library, module)
        if cell is not None:
            rows.append(checks.check_exact(spec, cell, label="generated C, float64"))
            rows.append(checks.check_exact(spec, cell, label="generated C, float64", lengths=True))
            rows.append(checks.check_float32(spec, cell))
            rows += checks.check_c_scan(spec, cell)  # an affine update: the blocked scan too
        seconds = time.perf_counter() - start
    width = max(len(r.check) for r in rows)
    for row in rows:
        status = "ok" if row.passed else "FAILED"
        log(
            f"{row.check:<{width}}  vs {row.reference} ({row.sizes}): "
            f"max relative error {row.error:.2e} (tolerance {row.tolerance:.0e}) {status}"
        )
    passed = all(r.passed for r in rows)
    log(f"{spec.name}: {'all checks passed' if passed else 'FAILED'} ({seconds:.1f} s)")
    return passed
