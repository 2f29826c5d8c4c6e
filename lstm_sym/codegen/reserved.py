"""The names the emitters generate, derived by rendering them, and the check that a spec's own
names take none of them.

Nothing here is a typed list: every built-in cell is rendered once (its NumPy module, its
PyTorch module, its C source and header), and every identifier of the output is collected --
with Python's ``ast`` for the Python modules, a C tokenizer for the C -- together with the C
printer's keywords and library functions and the runtime's prefix. An identifier made from one
of the cell's own names (``forget_pre`` from the gate ``forget``, ``d_h_last`` from the state
short ``h``, ``lstm_forward_f64`` from the cell name) becomes a *template* (``{gate}_pre``); the
others (``range``, ``slice``, ``np``, ``checked``, ``hidden_states``...) are fixed. A name a
spec introduces (cell, gates, states and their shorts, symbols, unit parameters, step functions)
is refused when it is a fixed name, or an instance of a template over the spec's own names, and
a unit parameter (a ``Parameters`` attribute) also when it starts or ends like the generated
``Parameters`` tells attribute shapes apart (``name.startswith("event_")``).

Lengths: every generated C identifier stays within C99's 63 significant characters.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass, replace
from functools import cache

import sympy as sp
from sympy.printing.c import reserved_words as c_keywords

from ..spec import CellSpec, SpecError, State, gate_event, gate_hidden, real_symbol, where_used

#: C99 5.2.4.1: significant initial characters of an internal identifier (a compiler may ignore
#: the rest); every generated C identifier stays within it.
C_IDENTIFIER_LIMIT = 63

_C_TOKENS = re.compile(
    r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    r"|#[ \t]*include[^\n]*|(?P<number>\.?\d(?:[eEpP][+-]|[\w.])*)|(?P<name>[A-Za-z_]\w*)",
    re.DOTALL,
)


def c_identifiers(source: str) -> set[str]:
    """Identifiers of C ``source``: outside comments, strings, includes and numbers."""
    return {m["name"] for m in _C_TOKENS.finditer(source) if m["name"]}


def _bound_and_read(node) -> tuple[set[str], set[str]]:
    """Names ``node`` binds (assignments, arguments, definitions, imports) and reads."""
    bound, read = set(), set()
    for item in ast.walk(node):
        if isinstance(item, ast.Name):
            (read if isinstance(item.ctx, ast.Load) else bound).add(item.id)
        elif isinstance(item, ast.arg):
            bound.add(item.arg)
        elif isinstance(item, (ast.FunctionDef, ast.ClassDef)) and item is not node:
            bound.add(item.name)
        elif isinstance(item, ast.alias):
            bound.add(item.asname or item.name.split(".")[0])
    return bound, read


def python_identifiers(source: str, tokens=()) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    """``(names, attributes, affixes)`` of Python ``source``.

    ``names``: what a spec's name must not be: every module-level name (functions, classes,
    globals, imports), every global or builtin a function reads (``range``, ``len``), and every
    local of a function where the spec's names are locals too (a function whose text holds one
    of ``tokens``). ``attributes``: every attribute and method (but NumPy's own), which the
    spec's attributes must not be. ``affixes``: the prefixes and suffixes the module tests
    names with (``name.startswith("event_")``)."""
    tree = ast.parse(source)
    names, attributes, affixes = set(), set(), set()
    functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    functions += [n for c in functions if isinstance(c, ast.ClassDef) for n in c.body]
    for node in tree.body:
        bound, read = _bound_and_read(node)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        else:
            names |= bound | read
    for node in functions:
        if not isinstance(node, ast.FunctionDef):
            continue
        bound, read = _bound_and_read(node)
        text = ast.get_source_segment(source, node) or ""
        names |= read - bound  # globals and builtins
        if any(token in text for token in tokens):
            names |= bound | read
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id == "np"):
                attributes.add(node.attr)
        if isinstance(node, ast.ClassDef):  # methods and class attributes: attributes too
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef):
                    attributes.add(item.name)
                elif isinstance(item, ast.Name) and isinstance(item.ctx, ast.Store):
                    attributes.add(item.id)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
            and node.args
        ):
            arg = node.args[0]
            values = arg.elts if isinstance(arg, ast.Tuple) else [arg]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    affixes.add((node.func.attr, value.value))
    return names, attributes, affixes


def name_kinds(spec: CellSpec) -> list[tuple[str, str]]:
    """Every name ``spec`` introduces with its kind (a name may have several: the state
    ``hidden`` and its new value's symbol ``hidden``): cell, gate, state, short, symbol, unit
    parameter, reduction, step function."""
    pairs = [(spec.name, "cell")]
    pairs += [(gate, "gate") for gate in spec.gates]
    for state in spec.states:
        pairs += [(state.name, "state"), (state.short, "short")]
    symbols = [s.prev for s in spec.states] + [s.new for s in spec.states]
    symbols += [s.projection for s in spec.states if s.projection is not None]
    symbols += [target for target, _ in spec.equations if isinstance(target, sp.Symbol)]
    pairs += [(symbol.name, "symbol") for symbol in symbols]
    pairs += [(parameter.name, "unit parameter") for parameter in spec.unit_parameters]
    for reduction in spec.reductions:
        pairs.append((reduction.name, "reduction"))
        pairs += [(symbol.name, "symbol") for symbol in reduction.symbols]
    for function in spec.step_functions:
        pairs.append((function.name, "step function"))
        pairs += [(arg, "step argument") for arg in dict.fromkeys(function.bindings.values())]
    return pairs


#: Kinds of names that are identifiers of the generated code themselves (locals, attributes,
#: functions); the others (cell, gate, state, short) only occur inside generated names.
BARE = ("symbol", "unit parameter", "step function", "step argument")


def spec_names(spec: CellSpec) -> dict[str, str]:
    """``{name: kind}`` of every name ``spec`` introduces (a unit parameter's kind wins, then
    the first)."""
    names: dict[str, str] = {}
    for name, kind in name_kinds(spec):
        if kind == "unit parameter":
            names[name] = kind
        else:
            names.setdefault(name, kind)
    return names


@dataclass(frozen=True)
class Template:
    """A generated identifier with the spec's names as placeholders, e.g. ``{gate}_pre``."""

    parts: tuple[str, ...]  # literal, kind, literal, kind, ..., literal
    origin: str  # where it is generated, e.g. "the generated NumPy module"
    attribute: bool  # an attribute or method name: only the spec's attributes may clash
    example: str  # the identifier in a built-in cell's files
    cell: str  # that built-in cell
    numbered: bool  # the last literal ends in digits: any number

    @property
    def pattern(self) -> str:
        """``{gate}_pre``: the literal parts with the kinds in braces."""
        return "".join("{" + p + "}" if k % 2 else p for k, p in enumerate(self.parts))

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.parts[1::2]

    def regex(self, names_of_kind: dict[str, list[str]]) -> re.Pattern | None:
        pieces = []
        for k, part in enumerate(self.parts):
            if k % 2:
                names = names_of_kind.get(part)
                if not names:
                    return None
                pieces.append("(?:" + "|".join(map(re.escape, names)) + ")")
            elif self.numbered and k == len(self.parts) - 1:
                pieces.append(re.escape(part.rstrip("0123456789")) + r"\d+")
            else:
                pieces.append(re.escape(part))
        return re.compile("".join(pieces))

    def longest(self, names_of_kind: dict[str, list[str]]) -> str:
        """The identifier with the longest of the spec's names in every placeholder."""
        return "".join(
            max(names_of_kind.get(p, [""]), key=len) if k % 2 else p
            for k, p in enumerate(self.parts)
        )


def _kinds_of(spec: CellSpec) -> dict[str, list[str]]:
    """``{kind: names}``, with ``KIND`` (upper case) for the upper-case forms (``LSTM_GATES``)."""
    out: dict[str, list[str]] = {}
    for name, kind in name_kinds(spec):
        for key, value in ((kind, name), (kind.upper(), name.upper())):
            if value not in out.setdefault(key, []):
                out[key].append(value)
    return out


def _probe(spec: CellSpec) -> tuple[CellSpec, dict[str, str]]:
    """``spec`` with every name it introduces replaced by a token no emitter writes on its own
    (``qgate0q``, ``qsymbol3q``...), and ``{token: kind}`` (upper-case tokens: ``KIND``)."""
    tokens: dict[str, str] = {}
    renamed: dict[tuple[str, str], str] = {}

    def token(name: str, kind: str) -> str:
        if (name, kind) not in renamed:
            value = f"q{kind.replace(' ', '')}{len(renamed)}q"
            renamed[name, kind] = value
            tokens[value] = kind
            tokens[value.upper()] = kind.upper()
        return renamed[name, kind]

    gates = {g: token(g, "gate") for g in spec.gates}
    symbols = {}
    for state in spec.states:
        symbols[state.prev] = real_symbol(token(state.prev.name, "symbol"))
        symbols[state.new] = real_symbol(token(state.new.name, "symbol"))
        if state.projection is not None:
            symbols[state.projection] = real_symbol(token(state.projection.name, "symbol"))
    for target, _ in spec.equations:
        symbols.setdefault(target, real_symbol(token(target.name, "symbol")))
    for parameter in spec.unit_parameters:
        symbols[parameter] = real_symbol(token(parameter.name, "unit parameter"))
    for gate, new in gates.items():
        symbols[gate_event(gate)], symbols[gate_hidden(gate)] = gate_event(new), gate_hidden(new)
    for reduction in spec.reductions:
        for symbol in reduction.symbols:
            symbols[symbol] = real_symbol(token(symbol.name, "symbol"))
    # The attributes a torch layout names: a gate's weights and biases, the unit parameters
    attribute = {
        f"{side}_{g}_{kind}": f"{side}_{new}_{kind}"
        for g, new in gates.items()
        for side in ("event", "hidden")
        for kind in ("weights", "bias")
    }
    attribute |= {p.name: symbols[p].name for p in spec.unit_parameters}

    def sub(expr):
        return expr.xreplace(symbols)

    def sources(value):
        return sub(value) if isinstance(value, sp.Symbol) else tuple(map(sub, value))

    probe = replace(
        spec,
        name=token(spec.name, "cell"),
        gates=tuple(gates.values()),
        states=tuple(
            State(
                name=token(s.name, "state"),
                short=token(s.short, "short"),
                prev=sub(s.prev),
                new=sub(s.new),
                projection=None if s.projection is None else sub(s.projection),
                positive=s.positive,
            )
            for s in spec.states
        ),
        output=sub(spec.output),
        recurrent=sub(spec.recurrent),
        equations=tuple((sub(t), sub(e)) for t, e in spec.equations),
        unit_parameters=tuple(map(sub, spec.unit_parameters)),
        step_functions=tuple(
            replace(
                f,
                name=token(f.name, "step function"),
                args=tuple(
                    token(a, "step argument") if a in f.bindings.values() else a for a in f.args
                ),
                expr=sub(f.expr),
                bindings={sub(k): token(v, "step argument") for k, v in f.bindings.items()},
            )
            for f in spec.step_functions
        ),
        letters={},
        reductions=tuple(
            replace(
                r,
                name=token(r.name, "reduction"),
                over=tuple(map(sub, r.over)),
                mean=sub(r.mean),
                rstd=sub(r.rstd),
            )
            for r in spec.reductions
        ),
        torch_layout=tuple(
            (key, tuple(attribute.get(n, n) for n in names)) for key, names in spec.torch_layout
        ),
        module_init={attribute.get(n, n): v for n, v in spec.module_init.items()},
        hidden_sources={gates[g]: sources(v) for g, v in spec.hidden_sources.items()},
        stabilizer={
            token(k, "state"): tuple(token(n, "state") for n in v)
            for k, v in spec.stabilizer.items()
        },
    )
    return probe, tokens


def _template(identifier: str, tokens: dict[str, str]) -> tuple[str, ...]:
    """``identifier`` split at the probe's tokens into literal, kind, literal, ..., literal
    (a 1-tuple: a fixed name)."""
    pattern = re.compile("|".join(map(re.escape, sorted(tokens, key=len, reverse=True))))
    parts, last = [], 0
    for match in pattern.finditer(identifier):
        parts += [identifier[last : match.start()], tokens[match.group(0)]]
        last = match.end()
    parts.append(identifier[last:])
    return tuple(parts)


@dataclass(frozen=True)
class Reserved:
    fixed: dict  # (name, is an attribute) -> (origin, built-in cell)
    templates: tuple[Template, ...]
    affixes: dict  # ("startswith" | "endswith", text) -> built-in cell
    c_prefixes: tuple[str, ...]


def _c_printer_names() -> set[str]:
    """C keywords and the library functions the emitter's C printer prints, in each precision
    (``exp``, ``expf``, ``fabs``...)."""
    from .c_printer import GeneratedCPrinter

    names = set(c_keywords)
    x = sp.Symbol("x", real=True)
    for suffix in ("f64", "f32"):
        printer = GeneratedCPrinter("lstm_sym", suffix)
        for function in sorted(printer.known_functions):
            call = getattr(sp, function, None)
            try:
                printed = printer.doprint(call(x)) if callable(call) else ""
            except Exception:  # a function of more arguments: its name is printed the same
                printed = ""
            names |= c_identifiers(printed) - {"x"}
    return names


@cache
def reserved() -> Reserved:
    """Everything the emitters generate for the built-in cells, abstracted over their names."""
    from ..cells import CELLS
    from ..plan import plan_cell
    from . import c_module, numpy_module, torch_module
    from .c_module import RUNTIME

    prefixes = (RUNTIME + "_", RUNTIME.upper() + "_")
    fixed: dict[tuple[str, bool], tuple[str, str]] = {}
    templates: dict[tuple, Template] = {}
    affixes: dict[tuple[str, str], str] = {}
    for name in sorted(_c_printer_names()):
        fixed.setdefault((name, False), ("the C printer (a keyword or libm function)", ""))
    for cell, spec in CELLS.items():
        probe, tokens = _probe(spec)
        kernel = plan_cell(probe)
        py_names, py_attributes, py_affixes = python_identifiers(
            numpy_module.emit(kernel), tuple(tokens)
        )
        for affix in py_affixes:
            affixes.setdefault(affix, cell)
        c_source = c_module.emit_source(kernel) + c_module.emit_header(kernel)
        # The PyTorch module's names (its attributes are torch's and tensors' own: a spec's
        # unit parameter is a local there, never an attribute)
        torch_names = python_identifiers(torch_module.emit(kernel), tuple(tokens))[0]
        for origin, identifiers, attribute in (
            ("the generated NumPy module", py_names, False),
            ("an attribute or method in the generated NumPy module", py_attributes, True),
            ("the generated PyTorch module", torch_names, False),
            ("the generated C", c_identifiers(c_source), False),
        ):
            for identifier in sorted(identifiers):
                if identifier.startswith(prefixes):  # the runtime's: refused by prefix
                    continue
                parts = _template(identifier, tokens)
                if parts == ("", tokens.get(identifier), ""):
                    continue  # the spec's own name
                if len(parts) == 1:
                    fixed.setdefault((identifier, attribute), (origin, cell))
                    continue
                numbered = parts[-1][-1:].isdigit()
                key = parts if not numbered else (*parts[:-1], parts[-1].rstrip("0123456789"))
                key = (*key, origin)
                if key not in templates:
                    templates[key] = Template(parts, origin, attribute, identifier, cell, numbered)
    return Reserved(fixed, tuple(templates.values()), affixes, prefixes)


def _where(spec: CellSpec, name: str, kind: str) -> str:
    """The equation that introduces or first uses ``name``, else where it is declared."""
    if kind == "gate":
        for symbol in (gate_event(name), gate_hidden(name)):
            where = where_used(spec, symbol.name)
            if where != "its declaration":
                return where
        return f"gate {name!r}"
    if kind in ("symbol", "unit parameter"):
        return where_used(spec, name)
    if kind in ("state", "short"):
        return f"state {next(s.name for s in spec.states if name in (s.name, s.short))!r}"
    return "its declaration"


def _fixed(name: str, table: Reserved, attribute: bool) -> tuple[str, str, str] | None:
    """``(generated name, origin, cell)`` of a fixed generated name ``name`` is, or is another
    number of (``tmp7`` for ``tmp0``); attribute names count for the spec's attributes only."""
    stem = name.rstrip("0123456789")
    for (generated, is_attribute), (origin, cell) in table.fixed.items():
        if is_attribute and not attribute:
            continue
        if generated == name or (
            stem != name and generated != stem and generated.rstrip("0123456789") == stem
        ):
            return generated, origin, cell
    return None


def _check_instances(spec: CellSpec, table: Reserved, kinds: dict) -> None:
    """A name the emitters always make of the spec's structural names (``d_event`` of the gate
    ``d``) must not be one they write on their own. (Names made of symbols, such as an
    adjoint ``d_<symbol>``, exist only where the derivation keeps them; a clash there is a
    compile error, which ``verify`` reports.)"""
    for template in table.templates:
        if template.attribute or any(k.lower() in BARE for k in template.kinds):
            continue
        for values in itertools.product(*(kinds.get(k, []) for k in template.kinds)):
            parts = list(template.parts)
            parts[1::2] = values
            instance = "".join(parts)
            found = _fixed(instance, table, False) if not template.numbered else None
            if found is not None and found[0] == instance:
                pattern = "".join(
                    "{" + p + "}" if k % 2 else p for k, p in enumerate(template.parts)
                )
                named = ", ".join(f"{k} {v!r}" for k, v in zip(template.kinds, values, strict=True))
                raise SpecError(
                    f"cell {spec.name!r}: {named} makes the generated name {instance!r} "
                    f"({pattern}), which {found[1]} uses for its own; rename it"
                )


def check(spec: CellSpec) -> None:
    """Raise :class:`SpecError` naming the equation when a name ``spec`` introduces is one the
    emitters generate, or makes a generated C identifier longer than C99 guarantees."""
    table = reserved()
    names = spec_names(spec)
    kinds = _kinds_of(spec)
    compiled = [(t, t.regex(kinds)) for t in table.templates]
    for name, kind in names.items():
        where = f"cell {spec.name!r}, {_where(spec, name, kind)}"
        clash = None
        attribute = kind == "unit parameter"  # a Parameters attribute
        found = _fixed(name, table, attribute) if kind in BARE else None
        if found is not None:
            generated, origin, cell = found
            clash = origin + (f" (in the built-in cell {cell!r})" if cell else "")
            if generated != name:
                clash += f", numbered like {generated!r}"
        elif name.startswith(table.c_prefixes) or name == table.c_prefixes[0][:-1]:
            clash = f"the lstm_sym C runtime (its prefix {table.c_prefixes[0]!r})"
        else:
            for template, regex in compiled:
                if template.attribute and not attribute:
                    continue
                if regex is not None and regex.fullmatch(name):
                    clash = (
                        f"{template.origin} as {template.pattern} (like "
                        f"{template.example!r} in the built-in cell {template.cell!r})"
                    )
                    break
        if clash is None and kind == "unit parameter":
            # A prefix picks the shape Parameters checks (event_/hidden_: a gate's matrix); a
            # suffix only relaxes it (_bias: a scalar also), which examples/cells/mgu.py's
            # forget_bias relies on.
            for method, affix in sorted(table.affixes):
                if method == "startswith" and name.startswith(affix):
                    clash = (
                        f"the generated Parameters, which checks the shape of attributes named "
                        f"name.{method}({affix!r})"
                    )
                    break
        if clash is not None:
            raise SpecError(f"{where}: the {kind} name {name!r} is reserved by {clash}; rename it")
    _check_instances(spec, table, kinds)
    for template, _ in compiled:
        if template.origin != "the generated C":
            continue
        longest = template.longest(kinds)
        if len(longest) > C_IDENTIFIER_LIMIT and all(kinds.get(k) for k in template.kinds):
            raise SpecError(
                f"cell {spec.name!r}: the generated C identifier {longest!r} would have "
                f"{len(longest)} characters, more than the {C_IDENTIFIER_LIMIT} C99 guarantees "
                "significant: shorten the names in it"
            )
