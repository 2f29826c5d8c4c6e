"""``verify`` fails when the generated C does not compile, with the compiler's message; only a
missing compiler skips the C checks, and says so."""

from __future__ import annotations

from lstm_sym.cli import main
from lstm_sym.codegen import c_module
from tests.conftest import require_tool
from tests.safety.test_bad_inputs_spec import spec_text


def _verify(tmp_path, capsys) -> tuple[int, str]:
    spec = tmp_path / "spec.py"
    spec.write_text(spec_text())
    code = main(["verify", "--spec", str(spec)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_verify_fails_when_the_generated_c_does_not_compile(tmp_path, capsys, monkeypatch):
    require_tool("gcc")
    emit_source = c_module.emit_source
    monkeypatch.setattr(
        c_module,
        "emit_source",
        lambda *args, **kwargs: emit_source(*args, **kwargs) + "\nint broken = ;\n",
    )
    code, output = _verify(tmp_path, capsys)
    assert code == 1, output
    assert "FAILED to compile" in output and "error" in output
    assert "all checks passed" not in output


def test_verify_without_a_compiler_says_the_c_was_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    code, output = _verify(tmp_path, capsys)
    assert code == 0, output
    assert "C kernels not checked (skipped): no C compiler found" in output
