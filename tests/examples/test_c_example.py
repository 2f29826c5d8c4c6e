"""The C example users copy: built with the README's one-line command, checked against NumPy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from generated import lstm
from tests.conftest import require_tool
from tests.support import ROOT, SANITIZE, STRICT, relative_error

#: The README's build command (from the repository root), with the compiler and output filled in.
BUILD = (
    "{cc} -std=c99 -O2 -I generated examples/c/lstm_example.c generated/lstm.c"
    " generated/lstm_sym_runtime.c -lm -o {out}"
)
STEPS, BATCH, EVENT_SIZE, HIDDEN_SIZE = 3, 2, 3, 4


def fill(shape, seed):
    """The example's fill(): element i is (((7 i + 5 seed) mod 17) - 8) / 16."""
    i = np.arange(int(np.prod(shape)))
    return ((((i * 7 + seed * 5) % 17) - 8) / 16.0).reshape(shape)


def expected_printout() -> dict:
    gates = lstm.GATES
    rows = (4 * HIDDEN_SIZE,)
    parameters = lstm.Parameters(EVENT_SIZE, HIDDEN_SIZE)
    stacked = {
        "event_weights": fill((4 * HIDDEN_SIZE, EVENT_SIZE), 4),
        "event_bias": fill(rows, 5),
        "hidden_weights": fill((4 * HIDDEN_SIZE, HIDDEN_SIZE), 6),
        "hidden_bias": fill(rows, 7),
    }
    for name, value in stacked.items():
        side, kind = name.split("_")
        for k, gate in enumerate(gates):
            setattr(
                parameters, f"{side}_{gate}_{kind}", value[k * HIDDEN_SIZE : (k + 1) * HIDDEN_SIZE]
            )
    events = fill((STEPS, BATCH, EVENT_SIZE), 1)
    h0, c0 = fill((BATCH, HIDDEN_SIZE), 2), fill((BATCH, HIDDEN_SIZE), 3)
    outputs, (h_last, c_last), cache = lstm.forward(parameters, events, h0, c0)
    grads = lstm.backward(cache, np.ones_like(outputs))

    def stack(side, kind):
        return np.concatenate([getattr(grads, f"{side}_{gate}_{kind}") for gate in gates])

    return {
        "outputs": outputs,
        "h_last": h_last,
        "c_last": c_last,
        "d_event_weights": stack("event", "weights"),
        "d_event_bias": stack("event", "bias"),
        "d_hidden_weights": stack("hidden", "weights"),
        "d_hidden_bias": stack("hidden", "bias"),
        "d_events": grads.events,
        "d_h0": grads.h0,
        "d_c0": grads.c0,
    }


def parse(printout: str) -> dict:
    values = {}
    for line in printout.strip().splitlines():
        name, numbers = line.split(":")
        values[name] = np.array([float(x) for x in numbers.split()])
    return values


def build_and_run(tmp_path, extra=(), env=None):
    cc = require_tool("gcc")
    out = tmp_path / "lstm_example"
    command = BUILD.format(cc=cc, out=out).split() + list(extra)
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return subprocess.run([str(out)], capture_output=True, text=True, env=env)


def test_the_two_file_build_command_is_in_the_example_and_readme():
    for name in (os.path.join("examples", "c", "lstm_example.c"), "README.md"):
        with open(os.path.join(ROOT, name)) as handle:
            assert BUILD.format(cc="cc", out="build/lstm_example") in handle.read(), name


#: The one-file build of the example and README: an amalgamation and its header in a folder.
AMALGAMATE = "lstm-sym amalgamate lstm --out {dir}/lstm_all.c --header {dir}/lstm.h"
ONE_FILE = "{cc} -std=c99 -O2 -I {dir} examples/c/lstm_example.c {dir}/lstm_all.c -lm -o {out}"


def test_one_file_commands_are_in_the_example_and_readme():
    for name in (os.path.join("examples", "c", "lstm_example.c"), "README.md"):
        with open(os.path.join(ROOT, name)) as handle:
            text = handle.read()
        assert AMALGAMATE.format(dir="build") in text, name
        assert ONE_FILE.format(cc="cc", dir="build", out="build/lstm_example") in text, name


def test_example_from_the_amalgamation_prints_what_numpy_computes(tmp_path):
    """`lstm-sym amalgamate` writes one C file (cell + runtime) and one header; the example
    builds from them alone under -std=c99 -pedantic -Wall -Wextra -Werror and prints the same."""
    cc = require_tool("gcc")
    folder = tmp_path / "one"
    command = AMALGAMATE.format(dir=folder).split()[1:]
    written = subprocess.run(
        [sys.executable, "-m", "lstm_sym", *command], cwd=ROOT, capture_output=True, text=True
    )
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["lstm.h", "lstm_all.c"]
    out = tmp_path / "lstm_example"
    build = ONE_FILE.format(cc=cc, dir=folder, out=out).split()
    built = subprocess.run([*build, *STRICT], cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    result = subprocess.run([str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    _check(result.stdout)


def _check(printout):
    got, expected = parse(printout), expected_printout()
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].size == value.size, name
        assert relative_error(got[name], value.ravel()) <= 1e-12, name


def test_example_prints_what_numpy_computes(tmp_path):
    result = build_and_run(tmp_path)
    assert result.returncode == 0, result.stderr
    _check(result.stdout)


def test_example_under_address_and_undefined_sanitizers(tmp_path):
    result = build_and_run(
        tmp_path, extra=(*SANITIZE, "-g"), env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    )
    assert result.returncode == 0, result.stderr
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr
    _check(result.stdout)


def test_example_compiles_with_strict_warnings(tmp_path):
    cc = require_tool("gcc")
    command = [
        cc,
        *STRICT,
        "-I",
        "generated",
        "examples/c/lstm_example.c",
        "generated/lstm.c",
        "generated/lstm_sym_runtime.c",
        "-lm",
    ]
    result = subprocess.run(
        [*command, "-o", str(tmp_path / "strict")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_parse_detects_a_wrong_printout():
    wrong = "\n".join(
        f"{k}: " + " ".join("0.5" for _ in v.ravel()) for k, v in expected_printout().items()
    )
    with pytest.raises(AssertionError):
        _check(wrong)
