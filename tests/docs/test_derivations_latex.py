"""The derivation document: fresh, deterministic, readable, and it compiles with pdflatex."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

import pytest

from lstm_sym import derivation_checks, derivations
from lstm_sym.cells import CELLS, get
from lstm_sym.codegen import latex_document
from lstm_sym.derive import derive
from tests.conftest import require_tool
from tests.support import ROOT, run_script


@pytest.mark.parametrize("name", list(CELLS))
def test_tex_and_sidecar_are_fresh(name):
    d = derive(get(name))
    assert (ROOT / "derivations" / f"{name}.tex").read_text() == latex_document.emit(d)
    assert (
        ROOT / "derivations" / f"{name}.equations.json"
    ).read_text() == latex_document.equations_json(d)


def test_emitted_bytes_do_not_depend_on_the_hash_seed():
    digests = {
        run_script(
            "render_digests.py",
            "lstm",
            "--suffix",
            ".tex",
            ".equations.json",
            env={**os.environ, "PYTHONHASHSEED": seed},
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(digests) == 1
    (rendered,) = digests
    assert sorted(json.loads(rendered)) == [
        "derivations/lstm.equations.json",
        "derivations/lstm.tex",
    ]


def test_source_is_readable():
    tex = (ROOT / "derivations" / "lstm.tex").read_text()
    assert r"\left(" not in tex and r"\right)" not in tex
    # Eight sections, each once and in the order the document builds its argument.
    assert re.findall(r"\\section\{([^}]*)\}", tex) == [
        "Notation and shapes",
        "Forward equations",
        "Per-unit derivatives",
        "Adjoints of the linear projections",
        "Backpropagation through time",
        "Variable-length batches",
        "Common subexpressions of the generated code",
        "Verification",
    ]
    # One equation per line, each labelled, CSE names printed next to their equations.
    assert r"\texttt{d\_forget\_pre} \label{eq:cse-d-forget-pre}" in tex
    assert r"c_{t-1}" in tex and r"\delta^{+} c_{t}" in tex and r"\hat{f}_{t}" in tex


@pytest.mark.parametrize("name", list(CELLS))
def test_every_document_shows_the_masked_recurrence_and_its_backward(name):
    """The variable-length section of every cell: the masked update and output, their
    derivatives by sympy.diff and the BPTT consequence, under the labels the C cites."""
    tex = (ROOT / "derivations" / f"{name}.tex").read_text()
    section = tex.split(r"\section{Variable-length batches}", 1)[1].split(r"\section{", 1)[0]
    assert r"\label{sec:lengths}" in section
    assert (
        r"s_{t} &= m_{t}\,\tilde{s}_{t} + s_{t-1}\,(1 - m_{t}) \label{eq:masked-state}" in section
    )
    assert r"\delta \tilde{s}_{t} &= \delta s_{t}\,m_{t} \label{eq:masked-backward}" in section
    for label in (
        "eq:masked-output",
        "eq:masked-partial-new",
        "eq:masked-partial-prev",
        "eq:masked-backward-output",
        "eq:masked-pass",
    ):
        assert rf"\label{{{label}}}" in section
    assert r"\delta s_{t-1} = \delta s_{t}" in section  # a finished row passes its adjoints
    verification = (ROOT / "derivations" / f"{name}_verification.tex").read_text()
    assert "float64, lengths & exact model" in verification


def test_an_error_bound_is_the_least_power_of_ten_at_least_three_times_the_error():
    assert derivation_checks.error_bound(3.2e-16) == "< 1e-15"
    assert derivation_checks.error_bound(3.4e-16) == "< 1e-14"
    assert derivation_checks.error_bound(1e-15) == "< 1e-14"
    assert derivation_checks.error_bound(0.0) == "0"
    # a passing check never prints a bound above its tolerance
    assert derivation_checks.error_bound(5e-13, tolerance=1e-12) == "< 1e-12"
    assert derivation_checks.error_bound(2e-12, tolerance=1e-12) == "< 1e-11"


def _row(error, sizes="T=5"):
    return derivation_checks.Row("generated NumPy, float64", "exact model", sizes, error, 1e-8)


def test_a_table_written_again_keeps_its_bounds_while_they_hold():
    spec = get("lstm")
    first = derivation_checks.verification_tex(spec, [_row(2.9e-15), _row(2e-11, "T=3")])
    assert "$<$ 1e-14 & 1e-08" in first and "$<$ 1e-10 & 1e-08" in first
    # Another machine's rounding: errors a few times larger or smaller, the same bytes.
    for scale in (0.05, 0.3, 1.0, 3.3):
        rows = [_row(2.9e-15 * scale), _row(2e-11 * scale, "T=3")]
        again = derivation_checks.verification_tex(spec, rows, previous=first)
        assert again == first, scale
    # A bound that no longer holds is replaced by a fresh one.
    worse = derivation_checks.verification_tex(
        spec, [_row(2e-14), _row(2e-11, "T=3")], previous=first
    )
    assert "$<$ 1e-13 & 1e-08" in worse and "$<$ 1e-10 & 1e-08" in worse
    # An error fallen by more than KEPT_DECADES powers of ten gets its tighter bound.
    better = derivation_checks.verification_tex(
        spec, [_row(1e-18), _row(2e-11, "T=3")], previous=first
    )
    assert "$<$ 1e-17 & 1e-08" in better
    # A passing row never keeps an old bound above its tolerance.
    failing = derivation_checks.verification_tex(spec, [_row(2e-8), _row(2e-11, "T=3")])
    assert "$<$ 1e-7 & 1e-08" in failing
    passing = derivation_checks.verification_tex(
        spec, [_row(5e-9), _row(2e-11, "T=3")], previous=failing
    )
    assert "$<$ 1e-8 & 1e-08" in passing
    # A row the old table did not have, or an old "0", gets a fresh bound.
    assert derivation_checks.printed_bound(_row(1e-16, "T=9"), {}) == "< 1e-15"
    kept = derivation_checks.kept_bounds(derivation_checks.verification_tex(spec, [_row(0.0)]))
    assert derivation_checks.printed_bound(_row(1e-16), kept) == "< 1e-15"


def test_finite_differences_are_measured_against_the_scale_of_the_directional_derivative():
    # lstm's padded batch has a direction whose terms nearly cancel (its derivative ~ 2.6e-3 of
    # terms of order 1): relative to |derivative| that direction reads 2e-9, near the 1e-8
    # tolerance; relative to sum |g_i v_i| every direction is rounding noise.
    row = derivation_checks.check_finite_differences(get("lstm"), lengths=True)
    assert row.passed and row.error < 1e-11


def test_missing_pdflatex_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(derivations.DerivationError, match="texlive-latex-base"):
        derivations.build_pdf(tmp_path, "lstm")


def test_compiles_with_pdflatex(tmp_path):
    require_tool("pdflatex", derivations.PDFLATEX_MISSING)
    (tmp_path / "derivations").mkdir()
    for name in ("lstm.tex", "lstm_verification.tex"):
        shutil.copy(ROOT / "derivations" / name, tmp_path / "derivations" / name)
    # build_pdf fails on any LaTeX error, undefined reference or "Rerun" warning in the log.
    pdf = derivations.build_pdf(tmp_path, "lstm")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    expected = derivations.pdf_source_hash(
        (ROOT / "derivations" / "lstm.tex").read_bytes(),
        (ROOT / "derivations" / "lstm_verification.tex").read_bytes(),
    )
    assert derivations.embedded_hash(pdf) == expected
    # Reproducible: a second build gives the same bytes.
    assert derivations.build_pdf(tmp_path, "lstm").read_bytes() == data


def test_checked_in_pdf_matches_its_sources():
    tex = (ROOT / "derivations" / "lstm.tex").read_bytes()
    verification = (ROOT / "derivations" / "lstm_verification.tex").read_bytes()
    expected = derivations.pdf_source_hash(tex, verification)
    assert derivations.embedded_hash(ROOT / "derivations" / "lstm.pdf") == expected, (
        "derivations/lstm.pdf is stale: run `lstm-sym latex --pdf`"
    )


@pytest.mark.slow
def test_latex_check_reruns_the_verification():
    """``lstm-sym latex --check``: the table is what the checks give today (about a minute)."""
    pytest.importorskip("torch")
    assert derivations.latex(ROOT, ["lstm"], check=True, log=lambda *_: None) == []


def test_a_false_stabilizer_claim_stops_the_derivation_document():
    """h is not exp(-m) times a recurrence without m: SymPy finds m left and the document
    refuses to print the equivalence."""
    spec = dataclasses.replace(get("slstm"), stabilizer={"stabilizer": ("cell",)})
    with pytest.raises(ValueError, match="still reads stabilizer"):
        latex_document.build(derive(spec))
