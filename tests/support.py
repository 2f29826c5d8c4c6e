"""Helpers shared by the tests: the repository root, C compiler flags, random problems and how
they are run and compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The repository's root (tests/ is one level below it).
ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all")
STRICT = ("-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion")


def random_problem(
    module, steps, batch, event_size, hidden_size, seed=0, dtype=np.float64, scale=0.5
):
    """Parameters with random weights and (hidden,) biases, events (T, B, X), initial states and
    cotangents (the d_outputs and d_<state>_last of a random linear functional)."""
    rng = np.random.default_rng(seed)
    parameters = module.Parameters(event_size, hidden_size)
    for name in parameters.NAMES:
        shape = (hidden_size,) if name.endswith("_bias") else getattr(parameters, name).shape
        setattr(parameters, name, rng.normal(0.0, scale, size=shape).astype(dtype))
    events = rng.normal(size=(steps, batch, event_size)).astype(dtype)
    states = {s: rng.normal(size=(batch, hidden_size)).astype(dtype) for s in module_shorts(module)}
    d_outputs = rng.normal(size=(steps, batch, hidden_size)).astype(dtype)
    d_lasts = {
        s: rng.normal(size=(batch, hidden_size)).astype(dtype) for s in module_shorts(module)
    }
    return parameters, events, states, d_outputs, d_lasts


def module_shorts(module) -> list[str]:
    """Short state names (``h``, ``c``) in order, from the generated module's Gradients."""
    return [name[:-1] for name in module.Gradients.NAMES if name.endswith("0")]


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected| (the max norm), 0 for two zero arrays."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    error = np.max(np.abs(actual - expected)) if expected.size else 0.0
    return float(error / scale) if scale > 0 else float(error)


def run_both(module, problem, batched=True):
    """forward + backward of ``module`` (NumPy or native) with every argument given."""
    parameters, events, states, d_outputs, d_lasts = problem
    if not batched:
        events, d_outputs = events[:, 0], d_outputs[:, 0]
        states = {s: v[0] for s, v in states.items()}
        d_lasts = {s: v[0] for s, v in d_lasts.items()}
    outputs, lasts, cache = module.forward(
        parameters, events, **{f"{s}0": v for s, v in states.items()}
    )
    grads = module.backward(cache, d_outputs, **{f"d_{s}_last": v for s, v in d_lasts.items()})
    if not isinstance(lasts, tuple):  # a one-state cell (GRU) returns its final state alone
        lasts = (lasts,)
    return outputs, lasts, grads
