"""Escaping of a spec's free text (``source``, ``title``, ``description``, the spec's path in the
regenerate command) where it reaches a comment or a docstring of a generated file: one helper
per emitted language, registered as Jinja filters (``templates/__init__.py``).

Each leaves ordinary text (every built-in cell's) unchanged, so the generated files keep their
bytes; only what could end the comment, continue it onto code or break the file changes.
"""

from __future__ import annotations

import unicodedata


def _breaks_line(char: str) -> bool:
    """A control character, or a line break for ``str.splitlines`` (\\x85, \\u2028...)."""
    return unicodedata.category(char) == "Cc" or len(f"a{char}b".splitlines()) > 1


def one_line(text: str) -> str:
    """``text`` on one line: every line break and control character becomes a space."""
    return "".join(" " if _breaks_line(c) else c for c in str(text))


def c_comment(text: str) -> str:
    """Text inside a C ``/* ... */`` comment: on one line, no ``*/`` (would end it), no ``/*``
    (-Wcomment), no ``??`` (trigraphs under -std=c99: ``??/`` is a backslash), no trailing
    backslash (a line splice)."""
    text = one_line(text).replace("*/", "*\\/").replace("/*", "/\\*")
    while "??" in text:
        text = text.replace("??", "?\\?")
    return text + " " if text.endswith("\\") else text


def py_comment(text: str) -> str:
    """Text after ``#`` in Python: on one line (a line break would start code)."""
    return one_line(text)


def py_docstring(text: str) -> str:
    """Text inside a Python ``\"\"\"...\"\"\"`` docstring (line breaks kept): backslashes
    doubled (``\\N`` would be a syntax error), quotes that would close it escaped, other
    control characters as spaces."""
    text = "".join(" " if _breaks_line(c) and c != "\n" else c for c in str(text))
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return text[:-1] + '\\"' if text.endswith('"') else text


def tex_comment(text: str) -> str:
    """Text after ``%`` in LaTeX: on one line (a line break would start TeX input)."""
    return one_line(text)
