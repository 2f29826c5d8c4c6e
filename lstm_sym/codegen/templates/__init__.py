"""Jinja2 templates of the generated files; rendering is deterministic (no dates, no hashes)."""

from __future__ import annotations

import textwrap
from functools import cache

import jinja2

from ..escaping import c_comment, py_comment, py_docstring, tex_comment


def _fit(line: str, width: int = 100) -> str:
    """``line`` as it is when it fits in ``width`` characters, else wrapped at spaces with its
    indentation (four spaces for an unindented line's continuation): generated docstrings of
    cells with many states stay within the line length."""
    if len(line) <= width:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return textwrap.fill(
        line.strip(),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent or "    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _note(text: str, indent: int, width: int = 100) -> str:
    """The text of a ``# text`` comment at ``indent`` spaces, wrapped at spaces into more comment
    lines when it does not fit in ``width`` characters (a long equation's note)."""
    room = width - indent - 2
    if len(text) <= room:
        return text
    lines = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False)
    return ("\n" + " " * indent + "# ").join(lines)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lstm_sym.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["quote"] = lambda s: f'"{s}"'
    env.filters["add_default"] = lambda s: f"{s}=None"
    env.filters["pytuple"] = lambda items: repr(tuple(items))
    env.filters["fit"] = _fit
    env.filters["note"] = _note
    # A spec's free text where it reaches a comment or docstring (see codegen/escaping.py)
    env.filters["c_comment"] = c_comment
    env.filters["py_comment"] = py_comment
    env.filters["py_docstring"] = py_docstring
    env.filters["tex_comment"] = tex_comment
    return env


def render(template: str, context: dict) -> str:
    return _environment().get_template(template).render(**context)
