"""Bad input to the spec checker and the ``generate``/``verify`` command line: one row per input
(a spec file's text, or CLI arguments), each refused with exit code 2 and a message naming what
is wrong -- never a traceback, never a file written."""

from __future__ import annotations

import pytest

from lstm_sym.cli import main

#: A small valid cell (an MGU); every row changes one of its names or pieces.
BASE = dict(
    name="cell",
    title="A test cell",
    source="cell.py",
    gate="forget",
    state="hidden",
    short="h",
    prev="hidden_prev",
    new="hidden",
    forget="forget",
    candidate="candidate",
    param="forget_bias",
    function="sigmoid",
)

TEMPLATE = """
import sympy as sp
from sympy import tanh

from lstm_sym.functions import sigmoid
from lstm_sym.spec import CellSpec, State, gate_symbols, real_symbol

GATES = ({gate!r}, "candidate")
event, hidden = gate_symbols(GATES)
prev, new = real_symbol({prev!r}), real_symbol({new!r})
forget, candidate = real_symbol({forget!r}), real_symbol({candidate!r})
param = real_symbol({param!r})
gate_event, gate_hidden = getattr(event, GATES[0]), getattr(hidden, GATES[0])

SPEC = CellSpec(
    name={name!r},
    title={title!r},
    source={source!r},
    gates=GATES,
    states=(State(name={state!r}, short={short!r}, prev=prev, new=new),),
    output=new,
    recurrent=prev,
    equations=(
        (forget, {function}(gate_event + gate_hidden + param)),
        (candidate, tanh(event.candidate + forget * hidden.candidate)),
        (new, (1 - forget) * prev + forget * candidate),
    ),
    unit_parameters=(param,),
)
"""


def spec_text(**changes) -> str:
    return TEMPLATE.format(**(BASE | changes))


#: (id, changes to the base spec, message fragments). Each is refused by ``generate --spec``
#: and ``verify --spec`` with exit code 2, naming the equation where there is one.
SPEC_ROWS = [
    # A symbol named like a generated intermediate: the forward right, the backward wrong.
    (
        "symbol named like a gate's pre-activation",
        {"forget": "forget_pre"},
        ["'forget_pre'", "equation 1"],
    ),
    (
        "unit parameter named like a gate input",
        {"param": "forget_event"},
        ["'forget_event'", "equation 1"],
    ),
    (
        "unit parameter named like a gate's hidden part",
        {"param": "candidate_hidden"},
        ["'candidate_hidden'"],
    ),
    # Python builtins the kernels call: shadowed, the kernel crashes
    ("symbol named range", {"forget": "range"}, ["'range'", "equation 1"]),
    ("symbol named len", {"candidate": "len"}, ["'len'", "equation 2"]),
    ("symbol named slice", {"forget": "slice"}, ["'slice'", "equation 1"]),
    (
        "symbol named like a state's sequence",
        {"candidate": "hidden_states"},
        ["'hidden_states'", "equation 2"],
    ),
    # Unit parameters shadowing Parameters' methods and attributes
    ("unit parameter checked", {"param": "checked"}, ["'checked'", "equation 1"]),
    ("unit parameter stacked", {"param": "stacked"}, ["'stacked'"]),
    ("unit parameter NAMES", {"param": "NAMES"}, ["'NAMES'"]),
    ("unit parameter save", {"param": "save"}, ["'save'"]),
    ("unit parameter load", {"param": "load"}, ["'load'"]),
    ("unit parameter hidden_size", {"param": "hidden_size"}, ["'hidden_size'"]),
    # Unit parameters the generated Parameters would check as a gate's matrix
    (
        "unit parameter starting with event_",
        {"param": "event_scale"},
        ["'event_scale'", "startswith('event_')"],
    ),
    (
        "unit parameter starting with hidden_",
        {"param": "hidden_scale"},
        ["'hidden_scale'", "startswith('hidden_')"],
    ),
    # Generated C names
    ("symbol named like a C keyword", {"forget": "double"}, ["'double'"]),
    ("symbol named like the kernels' own C local", {"forget": "units"}, ["'units'"]),
    ("symbol named like a derived adjoint", {"candidate": "d_forget"}, ["'d_forget'"]),
    ("symbol named like a CSE temporary", {"candidate": "tmp7"}, ["'tmp7'"]),
    (
        "symbol named like a cell's C function",
        {"forget": "cell_forward_f64"},
        ["'cell_forward_f64'"],
    ),
    ("cell named with the runtime's prefix", {"name": "lstm_sym_cell"}, ["'lstm_sym_'"]),
    ("symbol named with the runtime's prefix", {"forget": "lstm_sym_gate"}, ["'lstm_sym_gate'"]),
    (
        "gate whose input would be the C's own name",
        {"gate": "d"},
        ["gate 'd'", "'d_event'"],
    ),
    # Lengths: C99 guarantees 63 significant characters
    ("cell name too long for C identifiers", {"name": "c" * 60}, ["63"]),
    ("symbol name too long for C identifiers", {"candidate": "v" * 70}, ["63"]),
    # Functions the emitters cannot print
    ("unsupported function sin", {"function": "sp.sin"}, ["sin", "equation 1"]),
    ("unsupported function Abs", {"function": "sp.Abs"}, ["Abs", "equation 1"]),
    ("unsupported function log", {"function": "sp.log"}, ["log", "equation 1"]),
    ("unsupported function Min", {"function": "(lambda a: sp.Min(a, 0))"}, ["Min", "equation 1"]),
    (
        "Max of three arguments",
        {"function": "(lambda a: sp.Max(a, 0, param))"},
        ["Max", "3 arguments", "two", "equation 1"],
    ),
    ("unsupported constant pi", {"function": "sp.pi * "}, ["pi", "equation 1"]),
    ("complex number", {"function": "sp.I * "}, ["I", "equation 1"]),
    ("complex infinity", {"function": "sp.zoo * "}, ["zoo", "equation 1"]),
    # Found by the property test: its gradient printed as "0.sum(axis=0)", a syntax error
    (
        "unit parameter never used",
        {"function": "(lambda a: sigmoid(a.subs(param, 0)))"},
        ["'forget_bias'", "no equation uses it"],
    ),
    # Already refused before this issue (kept as rows)
    ("cell name not an identifier", {"name": "my cell"}, ["'my cell'"]),
    ("gate name a Python keyword", {"gate": "lambda"}, ["'lambda'"]),
    ("title on two lines", {"title": "a\nb"}, ["title"]),
]


def _ids(rows):
    return [row[0] for row in rows]


def _run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("changes", "fragments"), [r[1:] for r in SPEC_ROWS], ids=_ids(SPEC_ROWS))
def test_generate_refuses_the_spec_naming_it_and_writes_nothing(
    tmp_path, capsys, changes, fragments
):
    spec = tmp_path / "spec.py"
    spec.write_text(spec_text(**changes))
    out = tmp_path / "out"
    code, message = _run(capsys, "generate", "--spec", spec, "--out", out)
    assert code == 2, message
    assert message.startswith("lstm-sym: error:"), message
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("changes", "fragments"), [r[1:] for r in SPEC_ROWS[:4]], ids=_ids(SPEC_ROWS[:4])
)
def test_verify_refuses_the_spec_naming_it(tmp_path, capsys, changes, fragments):
    spec = tmp_path / "spec.py"
    spec.write_text(spec_text(**changes))
    code, message = _run(capsys, "verify", "--spec", spec)
    assert code == 2, message
    for fragment in fragments:
        assert fragment in message, message


def test_the_base_spec_of_the_table_is_valid(tmp_path, capsys):
    """The rows fail because of their one change: the base spec itself generates."""
    spec = tmp_path / "spec.py"
    spec.write_text(spec_text())
    code, message = _run(capsys, "generate", "--spec", spec, "--out", tmp_path / "out")
    assert code == 0, message
    assert (tmp_path / "out" / "cell.py").is_file()


#: (id, how to make the arguments from a valid spec file and tmp_path, fragments)
CLI_ROWS = [
    (
        "--out is a file",
        lambda spec, tmp: ["generate", "--spec", spec, "--out", _file(tmp / "out.txt")],
        ["is a file"],
    ),
    (
        "--out inside a file",
        lambda spec, tmp: ["generate", "--spec", spec, "--out", _file(tmp / "f") / "sub"],
        ["is a file"],
    ),
    (
        "--spec does not exist",
        lambda spec, tmp: ["generate", "--spec", tmp / "missing.py", "--out", tmp / "o"],
        ["does not exist"],
    ),
    (
        "--spec without SPEC",
        lambda spec, tmp: ["generate", "--spec", _file(tmp / "empty.py"), "--out", tmp / "o"],
        ["must define SPEC"],
    ),
    (
        "--spec raising",
        lambda spec, tmp: ["verify", "--spec", _file(tmp / "bad.py", "1 / 0\n")],
        ["failed to run", "ZeroDivisionError"],
    ),
    (
        "--spec and --cell",
        lambda spec, tmp: ["generate", "--spec", spec, "--cell", "lstm"],
        ["not both"],
    ),
    (
        "--out without --spec",
        lambda spec, tmp: ["generate", "--out", tmp / "o"],
        ["--out goes with --spec"],
    ),
]


def _file(path, text=""):
    path.write_text(text)
    return path


@pytest.mark.parametrize(("make_args", "fragments"), [r[1:] for r in CLI_ROWS], ids=_ids(CLI_ROWS))
def test_the_cli_refuses_bad_arguments_with_a_clear_error(tmp_path, capsys, make_args, fragments):
    spec = tmp_path / "spec.py"
    spec.write_text(spec_text())
    code, message = _run(capsys, *make_args(spec, tmp_path))
    assert code == 2, message
    assert message.startswith("lstm-sym: error:"), message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / "o").exists()


def test_a_file_name_too_long_for_the_file_system_writes_nothing(tmp_path, capsys, monkeypatch):
    """The cell's files share its name; if the longest (with its temporary twin) does not fit
    NAME_MAX, none is written (before the fix four of five were)."""
    from lstm_sym import generate

    spec = tmp_path / "spec.py"
    spec.write_text(spec_text(name="c" * 20))
    out = tmp_path / "out"
    monkeypatch.setattr(generate, "_name_max", lambda directory: 40)
    code, message = _run(capsys, "generate", "--spec", spec, "--out", out)
    assert code == 2, message
    assert "file system's limit of 40 bytes" in message
    assert not out.exists() or not any(out.iterdir())
