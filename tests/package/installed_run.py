"""Run by tests/package/test_wheel.py with the Python of a fresh venv where the wheel is
installed, from a directory outside the checkout: ``python installed_run.py OUT`` where ``OUT``
holds ``lstm-sym generate --spec mgu.py --out OUT``. Prints one line per check, then ``ok``."""

from __future__ import annotations

import importlib.util
import site
import sys
from pathlib import Path

import numpy as np


def relative_error(actual, expected) -> float:
    scale = float(np.max(np.abs(expected)))
    return float(np.max(np.abs(actual - expected))) / (scale or 1.0)


def random_parameters(module, event_size, hidden_size, rng):
    parameters = module.Parameters(event_size, hidden_size)
    for name in parameters.NAMES:
        shape = parameters.checked(name).shape
        setattr(parameters, name, rng.normal(0.0, 0.5, size=shape))
    return parameters


def compare(module, cell, rng):
    """forward+backward of a NativeCell against its NumPy module: the largest relative error."""
    parameters = random_parameters(module, 3, 5, rng)
    events = rng.normal(size=(4, 2, 3))
    outputs, _, cache = cell.forward(parameters, events)
    ref_outputs, _, ref_cache = module.forward(parameters, events)
    d_outputs = rng.normal(size=outputs.shape)
    grads, ref = cell.backward(cache, d_outputs), module.backward(ref_cache, d_outputs)
    errors = [relative_error(outputs, ref_outputs)]
    errors += [relative_error(getattr(grads, n), getattr(ref, n)) for n in ref.NAMES]
    return max(errors)


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    from lstm_sym.kernels import lstm

    assert "site-packages" in Path(lstm.__file__).parts, lstm.__file__  # the installed one
    outputs, _, _ = lstm.forward(random_parameters(lstm, 3, 5, rng), rng.normal(size=(4, 3)))
    assert outputs.shape == (4, 5)
    print("numpy forward", outputs.shape)

    from lstm_sym import native

    cell = native.load("lstm")
    kernels = Path(lstm.__file__).parent
    assert (kernels / "lstm.c").is_file() and (kernels / "lstm.abi.json").is_file()
    error = compare(lstm, cell, rng)
    assert error < 1e-12, error
    print(f"native lstm vs numpy: {error:.1e}")

    mgu = native.load("mgu", directory=out)  # with its NumPy module, mgu.module
    error = compare(mgu.module, mgu, rng)
    assert error < 1e-12, error
    print(f"native mgu (generate --spec --out) vs numpy: {error:.1e}")

    for directory in {*site.getsitepackages(), *map(Path, sys.path)}:
        assert not (Path(directory) / "generated").exists(), directory
    assert importlib.util.find_spec("generated") is None
    print("no package named generated installed")
    print("ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
