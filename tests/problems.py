"""Random problems for any cell, size and dtype, and running a kernel on one.

The tests get :func:`random_problem` from the ``random_problem`` fixture (tests/conftest.py);
helpers that run outside pytest (tests/scripts/, the derivation trace) import it from here.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import numpy as np

from lstm_sym.cells import get
from lstm_sym.spec import initial_values


class Problem(NamedTuple):
    """Parameters, events (T, B, X), initial states and the cotangents of a random linear
    functional of the outputs and final states (states and cotangents by short state name)."""

    parameters: Any
    events: np.ndarray
    states: dict[str, np.ndarray]
    d_outputs: np.ndarray
    d_lasts: dict[str, np.ndarray]

    @property
    def initial(self) -> dict[str, np.ndarray]:
        """The initial states as forward's keyword arguments (``h0``, ``c0``)."""
        return {f"{s}0": v for s, v in self.states.items()}

    @property
    def lasts(self) -> dict[str, np.ndarray]:
        """The final states' cotangents as backward's keyword arguments (``d_h_last``, ...)."""
        return {f"d_{s}_last": v for s, v in self.d_lasts.items()}

    @property
    def cotangents(self) -> dict[str, np.ndarray]:
        """``{"outputs": d_outputs, <short state name>: d_last, ...}``, as the references take
        them (lstm_sym.derivation_checks)."""
        return {"outputs": self.d_outputs, **self.d_lasts}


def random_problem(
    cell,
    steps: int,
    batch: int,
    event_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    dtype=np.float64,
    scale: float = 0.5,
    projection_size: int | None = None,
) -> Problem:
    """A random problem for ``cell`` (a cell name or its generated module): every parameter
    drawn from N(0, scale) (biases as (hidden_size,) vectors), then events, initial states, the
    outputs' and the final states' cotangents from N(0, 1), in that order, from
    ``numpy.random.default_rng(seed)``; drawn in float64, then cast to ``dtype`` (so a float32
    problem is the float64 one of the same seed, rounded). A projected state has
    ``projection_size`` entries (None: the generated Parameters' default, hidden_size)."""
    module = importlib.import_module(f"generated.{cell}") if isinstance(cell, str) else cell
    spec = get(module.CELL)
    rng = np.random.default_rng(seed)
    options = {"dtype": dtype}
    if projection_size is not None:
        options["projection_size"] = projection_size
    parameters = module.Parameters(event_size, hidden_size, **options)
    for name in parameters.NAMES:
        shape = (hidden_size,) if name.endswith("_bias") else np.shape(getattr(parameters, name))
        setattr(parameters, name, rng.normal(0.0, scale, size=shape).astype(dtype))
    projected = getattr(parameters, "projection_size", hidden_size)
    sizes = {s.short: hidden_size if s.projection is None else projected for s in spec.states}

    def draw(*shape):
        return rng.normal(size=shape).astype(dtype)

    events = draw(steps, batch, event_size)
    by_short = {s.short: s for s in spec.states}
    states = {
        s: initial_values(by_short[s], rng.normal(size=(batch, size))).astype(dtype)
        for s, size in sizes.items()
    }
    d_outputs = draw(steps, batch, sizes[spec.output_state.short])
    d_lasts = {s: draw(batch, size) for s, size in sizes.items()}
    return Problem(parameters, events, states, d_outputs, d_lasts)


def run_both(module, problem, batched=True):
    """forward + backward of ``module`` (NumPy or native) with every argument given; unbatched:
    on the first sample only."""
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
