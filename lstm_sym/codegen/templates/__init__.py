"""Jinja2 templates of the generated files; rendering is deterministic (no dates, no hashes)."""

from __future__ import annotations

from functools import cache

import jinja2


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
    return env


def render(template: str, context: dict) -> str:
    return _environment().get_template(template).render(**context)
