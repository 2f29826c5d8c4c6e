"""``lstm-sym latex`` and ``lstm-sym notebook``: the readable derivations under ``derivations/``.

What each file is and how its freshness is checked (``--check`` writes nothing):

``derivations/<cell>.tex``, ``derivations/<cell>.equations.json``
    printed from the derivation in milliseconds: registered in :mod:`lstm_sym.artifacts`, so
    ``lstm-sym generate`` writes them and ``lstm-sym generate --check`` compares their bytes.
``derivations/<cell>_verification.tex``
    section 7's table, written by running the checks (:mod:`lstm_sym.derivation_checks`; the
    exact model takes most of a minute): ``lstm-sym latex --check`` re-runs them and compares.
    Its errors are printed as bounds, and a bound the table already prints is kept while the
    new run still satisfies it (:func:`lstm_sym.derivation_checks.printed_bound`), so another
    machine's rounding does not make the table stale.
``derivations/<cell>.pdf``
    pdflatex output, reproducible for one TeX version (no dates, no trailer id). Its info
    dictionary carries ``lstm-sym-source-sha256 <hash>`` of the two .tex files it was built
    from; ``lstm-sym latex --check`` compares that hash, so it needs no TeX.
``derivations/<cell>_derivation.ipynb``, ``derivations/walkthrough.ipynb``
    executed with nbclient when written; their metadata ``lstm_sym.inputs_sha256`` hashes the
    cells' sources, the generated kernel and the equations sidecar. ``lstm-sym notebook
    --check`` rebuilds the (unexecuted) notebooks and compares sources and hash: no kernel runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import derivation_checks
from .cells import get
from .codegen import latex_document
from .generate import write_atomically

PDFLATEX_MISSING = (
    "pdflatex is not installed; on Debian/Ubuntu: "
    "apt-get install --no-install-recommends texlive-latex-base texlive-latex-recommended"
)
HASH_PATTERN = re.compile(rb"lstm-sym-source-sha256 ([0-9a-f]{64})")


class DerivationError(RuntimeError):
    """A derivation file could not be built (missing tool, LaTeX error, failing notebook)."""


def tex_paths(root: Path, name: str) -> tuple[Path, Path, Path]:
    base = root / "derivations"
    return base / f"{name}.tex", base / f"{name}_verification.tex", base / f"{name}.pdf"


def pdf_source_hash(tex: bytes, verification: bytes) -> str:
    return latex_document.source_hash(tex, verification)


def embedded_hash(pdf: Path) -> str | None:
    if not pdf.exists():
        return None
    match = HASH_PATTERN.search(pdf.read_bytes())
    return match.group(1).decode() if match else None


def build_pdf(root: Path, name: str) -> Path:
    """Compile ``derivations/<name>.tex`` twice (for references) into ``<name>.pdf``."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        raise DerivationError(PDFLATEX_MISSING)
    tex, verification, pdf = tex_paths(root, name)
    digest = pdf_source_hash(
        tex.read_bytes(), verification.read_bytes() if verification.exists() else b""
    )
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
    with tempfile.TemporaryDirectory(prefix="lstm-sym-latex-") as tmp:
        for source in (tex, verification):
            if source.exists():
                shutil.copy(source, Path(tmp) / source.name)
        command = [
            pdflatex,
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            f"-jobname={name}",
            rf"\def\lstmsymsourcehash{{{digest}}}\input{{{tex.name}}}",
        ]
        for _ in range(2):
            run = subprocess.run(
                command, cwd=tmp, env=env, capture_output=True, text=True, errors="replace"
            )
            if run.returncode != 0:
                log = (Path(tmp) / f"{name}.log").read_text(errors="replace")
                errors = [line for line in log.splitlines() if line.startswith("!")]
                raise DerivationError(
                    f"pdflatex failed on {tex}: {'; '.join(errors) or run.stdout[-2000:]}"
                )
        log = (Path(tmp) / f"{name}.log").read_text(errors="replace")
        problems = [
            line for line in log.splitlines() if "undefined" in line.lower() or "Rerun" in line
        ]
        if problems:
            raise DerivationError(f"pdflatex reported problems in {tex}: {'; '.join(problems)}")
        write_atomically(pdf, (Path(tmp) / f"{name}.pdf").read_bytes())
    return pdf


def latex(root: Path, names, pdf: bool = False, check: bool = False, log=print) -> list[str]:
    """Write (or check) the .tex, sidecar, verification table and, with ``pdf``, the PDF.

    Returns the stale paths when ``check`` (an empty list when everything is fresh).
    """
    from . import artifacts
    from .generate import generate

    stale: list[str] = []
    for name in names:
        spec = get(name)
        report = generate(root, artifacts.derivation_artifacts(spec), check=check)
        stale += [*report.stale, *report.missing]
        for path in report.written:
            log(f"wrote {path}")
        tex, verification, pdf_path = tex_paths(root, name)
        rows = derivation_checks.run_all(spec)
        for row in rows:
            log(
                f"{name}: {row.check} vs {row.reference}: {row.bound} "
                f"({'ok' if row.passed else 'FAILED'})"
            )
        current = verification.read_bytes() if verification.exists() else None
        previous = None if current is None else current.decode("utf-8", "replace")
        data = derivation_checks.verification_tex(spec, rows, previous=previous).encode()
        relative = verification.relative_to(root).as_posix()
        if check:
            if current != data:
                stale.append(relative)
        elif current != data:
            write_atomically(verification, data)
            log(f"wrote {relative}")
        if check:
            expected = pdf_source_hash(tex.read_bytes() if tex.exists() else b"", data)
            if embedded_hash(pdf_path) != expected:
                stale.append(pdf_path.relative_to(root).as_posix())
        elif pdf:
            log(f"wrote {build_pdf(root, name).relative_to(root).as_posix()}")
        failed = [r for r in rows if not r.passed]
        if failed:
            raise DerivationError(
                f"{name}: verification failed: {', '.join(r.reference for r in failed)}"
            )
    return stale
