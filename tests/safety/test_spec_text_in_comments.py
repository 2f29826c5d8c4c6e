"""A spec's free text (source, title, description) and its path reach comments and docstrings of
every generated file: escaped there, it stays text -- the C compiles, the Python imports, the
LaTeX keeps it in its comment."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from lstm_sym.cli import main
from lstm_sym.codegen import escaping
from tests.conftest import require_tool
from tests.safety.test_bad_inputs_spec import spec_text

HOSTILE_SOURCE = 'x */ int evil = 1; /* y ??/\n"""\nevil = 1\n\\input{/etc/passwd}\n'


def _generate(spec_dir, capsys, **changes):
    spec_dir.mkdir(parents=True)
    spec = spec_dir / "spec.py"
    spec.write_text(spec_text(**changes))
    out = spec_dir / "out"
    code = main(["generate", "--spec", str(spec), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    return out


def _compile(out):
    gcc = require_tool("gcc")
    result = subprocess.run(
        [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "cell.c"],
        cwd=out,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _import(out):
    loader = importlib.util.spec_from_file_location("_hostile_cell", out / "cell.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def test_a_spec_in_a_folder_named_weird_star_generates_c_that_compiles(tmp_path, capsys):
    """The spec's path is in the regenerate command of every file's header (``weird*/`` ended
    the C comment before)."""
    out = _generate(tmp_path / "weird*", capsys)
    _compile(out)
    assert "weird*\\/" in (out / "cell.c").read_text()


def test_a_hostile_source_stays_in_its_comments(tmp_path, capsys):
    """``source="x */ int evil = 1; /* y"`` became C code before; with line breaks and quotes
    it becomes Python code and TeX input unless escaped."""
    out = _generate(tmp_path / "cell", capsys, source=HOSTILE_SOURCE, title='A """ \\N title')
    _compile(out)
    module = _import(out)
    assert not hasattr(module, "evil")
    assert module.__doc__.startswith('A """ \\N title, generated')
    tex = (out / "cell.tex").read_text().splitlines()
    assert not any(line.startswith(("evil", "\\input{/etc")) for line in tex)
    c_source = (out / "cell.c").read_text()
    assert "int evil = 1;" not in c_source.replace("*\\/ int evil = 1;", "")


@pytest.mark.parametrize(
    ("helper", "text", "expected"),
    [
        (escaping.c_comment, "a */ b /* c", "a *\\/ b /\\* c"),
        (escaping.c_comment, "a ??/\nb", "a ?\\?/ b"),
        (escaping.c_comment, "path\\", "path\\ "),
        (escaping.py_comment, "a\nb\rc\x00d\u2028e", "a b c d e"),
        (escaping.py_docstring, 'say """hi""" \\N', 'say \\"\\"\\"hi\\"\\"\\" \\\\N'),
        (escaping.py_docstring, 'ends with "', 'ends with \\"'),
        (escaping.tex_comment, "a\nb", "a b"),
    ],
)
def test_each_escaping_helper_keeps_the_text_inside(helper, text, expected):
    assert helper(text) == expected


@pytest.mark.parametrize("text", ["Long short-term memory (LSTM)", "lstm_sym/cells/lstm.py"])
def test_plain_text_is_unchanged_by_every_helper(text):
    """The built-in cells' files keep their bytes (``generate --check``)."""
    for helper in (
        escaping.c_comment,
        escaping.py_comment,
        escaping.py_docstring,
        escaping.tex_comment,
    ):
        assert helper(text) == text
