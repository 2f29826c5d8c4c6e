"""The --scan group of lstm-sym bench: the harness times the step loop and the scan of every
affine cell and reports their ratio (no timed assertions)."""

from __future__ import annotations

import json

from lstm_sym.bench import scan
from lstm_sym.cli import main
from tests.conftest import require_tool


def test_a_run_times_the_loop_and_the_scan_with_the_ratio():
    result = scan.run("minlstm", 40, 2, 3, 4, "f32", repeats=2)
    assert result["size"] == [2, 40, 3, 4] and result["ratio"] > 0
    assert all(len(result["samples_s"][name]) == 2 for name in ("loop", "scan"))
    row = scan.table([result]).splitlines()[-1]
    assert row.startswith("| minlstm | (2, 40, 3, 4) | f32 |")


def test_a_run_with_the_c_times_the_c_loop_and_the_c_scan_interleaved():
    require_tool("gcc")
    from lstm_sym import native

    result = scan.run("mingru", 40, 2, 3, 4, "f64", repeats=2, native=native.load("mingru"))
    assert all(len(result["samples_s"][n]) == 2 for n in ("loop", "scan", "c_loop", "c_scan"))
    assert result["c_ratio"] == result["c_loop_s"] / result["c_scan_s"] > 0
    row = scan.table([result]).splitlines()[-1].split(" | ")
    assert row[-1] == f"{result['c_ratio']:.2f}x |" and row[-3].endswith(" ms")


def test_the_command_writes_scan_json_and_refuses_a_cell_without_a_scan(tmp_path, capsys):
    options = [
        "bench",
        "--scan",
        "--size",
        "2,30,3,4",
        "--repeats",
        "1",
        "--out-dir",
        str(tmp_path),
    ]
    assert main(options) == 0
    runs = json.loads((tmp_path / "scan.json").read_text())["runs"]
    assert [(r["cell"], r["size"]) for r in runs] == [
        ("mingru", [2, 30, 3, 4]),
        ("minlstm", [2, 30, 3, 4]),
    ]
    assert main([*options, "--cell", "lstm"]) == 2
    assert "no scan for lstm" in capsys.readouterr().err
