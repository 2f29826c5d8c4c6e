"""Model and parameter files that lie (issue 15, items 4 and 9): sizes that claim far more than
the file holds, zip bombs, format versions that are not the integer written, non-float
dtypes for interop, the saved files' mode, interrupted saves. Each hostile load runs in a
process of its own (tests/scripts/load_hostile_file.py), its memory measured."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from generated import gru, lstm
from lstm_sym import interop
from lstm_sym.models import Dense, Recurrent
from tests.hostile_files import archive_of, entries_of
from tests.support import run_script

#: A refused load may grow the process by at most this much (the loaders read headers only).
#: Memory, not time, is what the test bounds (no timed assertion in the suite; the subprocess
#: timeout only stops a hang).
MAX_GROWTH_KB = 64 * 1024


def load_in_process(kind, path, address_space_mb=None):
    args = [kind, path] + ([address_space_mb] if address_space_mb else [])
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = run_script("load_hostile_file.py", *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def assert_refused_cheaply(report, fragment):
    assert report["error"] == "ValueError", report
    assert fragment in report["message"], report
    assert report["rss_peak_kb"] - report["rss_before_kb"] < MAX_GROWTH_KB, report


@pytest.fixture
def lstm_file(tmp_path, random_problem):
    path = tmp_path / "lstm.npz"
    random_problem(lstm, 1, 1, 3, 4, seed=3, scale=1.0).parameters.save(path)
    return path


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.npz"
    Recurrent(3, 4, rng=0).save(path)
    return path


# -- item 4: sizes that lie, zip bombs ----------------------------------------------------------


def test_a_parameters_file_claiming_ten_million_units_is_refused_before_allocating(
    tmp_path, lstm_file
):
    entries = entries_of(lstm_file) | {"__hidden_size__": np.array(10**7)}
    path = archive_of(tmp_path / "huge.npz", entries)
    assert path.stat().st_size < 64 * 1024
    assert_refused_cheaply(load_in_process("parameters", path), "bytes of arrays")


def test_a_model_file_claiming_ten_million_units_is_refused_before_allocating(tmp_path, model_file):
    entries = entries_of(model_file) | {"__sizes__": np.array([3, 10**7, 1])}
    path = archive_of(tmp_path / "huge-model.npz", entries)
    assert_refused_cheaply(load_in_process("recurrent", path), "bytes of arrays")


def test_a_model_file_whose_arrays_disagree_with_its_sizes_is_refused_before_allocating(
    tmp_path, model_file
):
    # Sizes an honest file of this size could hold, arrays of other shapes.
    entries = entries_of(model_file) | {"__sizes__": np.array([3, 1000, 1])}
    path = archive_of(tmp_path / "liar.npz", entries)
    assert_refused_cheaply(
        load_in_process("recurrent", path), "has shape (4, 3), expected (1000, 3)"
    )


@pytest.mark.parametrize("kind", ["parameters", "recurrent"])
def test_a_zip_bomb_entry_is_refused_from_its_declared_sizes_without_decompressing(
    tmp_path, lstm_file, model_file, kind
):
    source = lstm_file if kind == "parameters" else model_file
    entries = entries_of(source)
    victim = "hidden_forget_weights" if kind == "parameters" else "l0.hidden_forget_weights"
    del entries[victim]
    # 2 GiB of zeros in a 2 MiB file, declared truly in the zip's headers.
    path = archive_of(tmp_path / "bomb.npz", entries, {victim: ((2**28,), None)})
    assert path.stat().st_size < 4 * 2**20
    assert_refused_cheaply(load_in_process(kind, path), "(268435456,)")


@pytest.mark.parametrize("kind", ["parameters", "recurrent"])
def test_a_zip_bomb_whose_zip_header_lies_is_read_no_further_than_declared(
    tmp_path, lstm_file, model_file, kind
):
    source = lstm_file if kind == "parameters" else model_file
    entries = entries_of(source)
    victim = "hidden_forget_weights" if kind == "parameters" else "l0.hidden_forget_weights"
    shape = entries.pop(victim).shape
    # The .npy header says (4, 4) and the zip claims the 128 + 128 bytes that needs; the
    # stream holds 2 GiB: reading stops at the declared size and the CRC refuses it.
    declared = 128 + int(np.prod(shape)) * 8
    bomb = {victim: ((2**28,), declared)}
    path = archive_of(tmp_path / "liar-bomb.npz", entries, bomb)
    report = load_in_process(kind, path)
    assert report["error"] == "ValueError", report
    assert report["rss_peak_kb"] - report["rss_before_kb"] < MAX_GROWTH_KB, report


def test_a_consistent_zip_bomb_is_refused_as_more_than_its_file_can_hold(tmp_path, lstm_file):
    # Every entry of the right shape for hidden_size=8192, the four hidden weights 512 MiB of
    # deflated zeros each: 2 GiB from a file of about 2 MiB.
    hidden = 8192
    entries = entries_of(lstm_file)
    entries |= {"__hidden_size__": np.array(hidden), "__event_size__": np.array(1)}
    bombs = {}
    for gate in lstm.GATES:
        entries[f"event_{gate}_weights"] = np.zeros((hidden, 1))
        entries[f"event_{gate}_bias"] = np.array(0.0)
        entries[f"hidden_{gate}_bias"] = np.array(0.0)
        del entries[f"hidden_{gate}_weights"]
        bombs[f"hidden_{gate}_weights"] = ((hidden, hidden), None)
    path = archive_of(tmp_path / "consistent-bomb.npz", entries, bombs)
    assert path.stat().st_size < 4 * 2**20
    assert_refused_cheaply(load_in_process("parameters", path), "a corrupt or hostile file")


# -- item 9: the format version is the integer written ------------------------------------------


@pytest.mark.parametrize("version", [np.array(1.7), np.array(1.0), np.array(True), np.array("1")])
def test_a_parameters_file_whose_format_is_not_the_integer_1_is_refused(
    tmp_path, lstm_file, version
):
    np.savez(tmp_path / "v.npz", **(entries_of(lstm_file) | {"__format__": version}))
    with pytest.raises(ValueError, match="__format__ must be an integer"):
        lstm.Parameters.load(tmp_path / "v.npz")


@pytest.mark.parametrize("version", [np.array(1.7), np.array(True)])
def test_a_model_file_whose_format_is_not_the_integer_1_is_refused(tmp_path, model_file, version):
    np.savez(tmp_path / "v.npz", **(entries_of(model_file) | {"__format__": version}))
    with pytest.raises(ValueError, match="__format__ must be an integer"):
        Recurrent.load(tmp_path / "v.npz")


# -- item 9: interop refuses dtypes that would truncate the weights -----------------------------


@pytest.mark.parametrize("dtype", [int, np.int32, bool, np.complex128, np.float16, "U3", object])
def test_interop_refuses_non_float_dtypes(dtype):
    kernel, recurrent = np.full((2, 8), 0.4), np.full((2, 8), 0.3)
    calls = [
        lambda: interop.from_keras(kernel, recurrent, dtype=dtype),
        lambda: interop.from_onnx(np.zeros((1, 8, 2)), np.zeros((1, 8, 2)), dtype=dtype),
        lambda: lstm.Parameters.from_torch(
            {"weight_ih_l0": np.zeros((8, 2)), "weight_hh_l0": np.zeros((8, 2))}, dtype=dtype
        ),
        lambda: lstm.Parameters(2, 2).to_torch_state_dict(dtype=dtype),
        lambda: Recurrent.from_torch(
            {"weight_ih_l0": np.zeros((8, 2)), "weight_hh_l0": np.zeros((8, 2))}, dtype=dtype
        ),
        lambda: Recurrent(2, 2, dtype=dtype),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            call()


def test_from_keras_with_a_float_dtype_keeps_the_weights():
    parameters = interop.from_keras(np.full((2, 8), 0.4), np.full((2, 8), 0.3), dtype=np.float32)
    assert parameters.event_update_weights.dtype == np.float32
    assert np.all(parameters.event_update_weights == np.float32(0.4))


# -- item 9: one file mode, atomic saves --------------------------------------------------------


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield 0o644
    os.umask(previous)


@pytest.mark.parametrize("kind", ["parameters", "recurrent", "dense"])
def test_every_save_creates_its_file_as_open_does_mode_0666_less_the_umask(
    tmp_path, umask_022, kind
):
    path = tmp_path / f"{kind}.npz"
    {
        "parameters": lambda: lstm.Parameters(2, 3).save(path),
        "recurrent": lambda: Recurrent(2, 3, rng=0).save(path),
        "dense": lambda: Dense(2, 3, rng=0).save(path),
    }[kind]()
    assert stat.S_IMODE(path.stat().st_mode) == umask_022


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
@pytest.mark.parametrize("kind", ["parameters", "recurrent"])
def test_a_save_failing_midway_leaves_the_old_file_and_no_temporary(
    tmp_path, monkeypatch, kind, error
):
    import lstm_sym.models._io as io_module

    path = tmp_path / "weights.npz"
    save = {
        "parameters": lambda seed: lstm.Parameters(2, 3).save(path),
        "recurrent": lambda seed: Recurrent(2, 3, rng=seed).save(path),
    }[kind]
    save(1)
    before = path.read_bytes()

    def fail_midway(file, **arrays):
        file.write(b"PK half an archive")
        raise error("interrupted")

    monkeypatch.setattr((lstm if kind == "parameters" else io_module).np, "savez", fail_midway)
    with pytest.raises(error):
        save(2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.npz"]


def test_saved_files_load_back_exactly(tmp_path, random_problem):
    for cell in (lstm, gru):
        parameters = random_problem(cell, 1, 1, 3, 4, seed=2, scale=1.0).parameters
        parameters.save(tmp_path / "p.npz")
        loaded = cell.Parameters.load(tmp_path / "p.npz")
        for name in parameters.NAMES:
            np.testing.assert_array_equal(getattr(loaded, name), getattr(parameters, name))
    model = Recurrent(3, 4, 2, bidirectional=True, cell="lstmp", projection_size=2, rng=1)
    model.save(tmp_path / "m.npz")
    loaded = Recurrent.load(tmp_path / "m.npz")
    for name, value in model.named_parameters().items():
        np.testing.assert_array_equal(loaded.named_parameters()[name], value)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids: POSIX")
@pytest.mark.parametrize("kind", ["parameters", "recurrent"])
def test_the_temporary_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path, kind):
    path = tmp_path / "weights.npz"
    done = run_script("killed_save.py", kind, path, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    orphans = [p.name for p in tmp_path.iterdir()]
    assert len(orphans) == 1 and orphans[0].endswith(".tmp"), orphans
    # A temporary file of a live process (this one) is left alone.
    live = tmp_path / f"weights.npz.{'0' * 32}.{os.getpid()}.tmp"
    live.write_bytes(b"being written")
    if kind == "parameters":
        lstm.Parameters(2, 3).save(path)
    else:
        Recurrent(2, 3, rng=0).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["weights.npz", live.name])
