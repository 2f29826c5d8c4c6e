"""Generated NumPy LSTM gradients against central finite differences at larger random sizes."""

from __future__ import annotations

import numpy as np
import pytest

from generated import lstm
from lstm_sym.cells import CELLS, get
from lstm_sym.derivation_checks import check_finite_differences


def problem(random_problem, steps, batch, event_size, hidden_size, seed):
    """Parameters, the inputs ``events``, ``h0``, ``c0`` and the cotangents ``outputs``, ``h``,
    ``c`` of a random problem."""
    drawn = random_problem(lstm, steps, batch, event_size, hidden_size, seed=seed)
    return drawn.parameters, {"events": drawn.events, **drawn.initial}, drawn.cotangents


def loss(parameters, inputs, cot, lengths=None):
    outputs, (h, c), _ = lstm.forward(
        parameters, inputs["events"], inputs["h0"], inputs["c0"], lengths=lengths
    )
    return np.sum(cot["outputs"] * outputs) + np.sum(cot["h"] * h) + np.sum(cot["c"] * c)


@pytest.mark.parametrize(
    ("steps", "batch", "event_size", "hidden_size", "lengths"),
    [
        (9, 4, 6, 7, None),
        (20, 2, 3, 5, None),
        (9, 4, 6, 7, (3, 9, 1, 6)),  # a padded batch, unsorted, a row of one step
        (20, 2, 3, 5, (20, 11)),
    ],
)
def test_directional_derivatives_match_central_differences(
    steps, batch, event_size, hidden_size, lengths, random_problem
):
    parameters, inputs, cot = problem(
        random_problem, steps, batch, event_size, hidden_size, seed=steps
    )
    if lengths is not None:
        lengths = np.array(lengths)
    _, _, cache = lstm.forward(
        parameters, inputs["events"], inputs["h0"], inputs["c0"], lengths=lengths
    )
    grads = lstm.backward(cache, cot["outputs"], cot["h"], cot["c"])
    rng = np.random.default_rng(0)
    for name in (*lstm.Parameters.NAMES, "events", "h0", "c0"):
        holder = inputs if name in inputs else None
        base = holder[name] if holder is not None else parameters.checked(name)
        direction = rng.normal(size=base.shape)
        eps = 1e-5

        def at(shift, holder=holder, base=base, direction=direction, name=name):
            value = base + shift * direction
            if holder is not None:
                return loss(parameters, {**inputs, name: value}, cot, lengths)
            original = getattr(parameters, name)
            setattr(parameters, name, value)
            try:
                return loss(parameters, inputs, cot, lengths)
            finally:
                setattr(parameters, name, original)

        numeric = (at(eps) - at(-eps)) / (2 * eps)
        analytic = float(np.sum(getattr(grads, name) * direction))
        assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic)), name
    if lengths is not None:  # padded events: moving them moves nothing, their gradient is zero
        padded = np.arange(steps)[:, None] >= lengths
        assert np.all(grads.events[padded] == 0.0)


def test_a_few_entries_elementwise(random_problem):
    parameters, inputs, cot = problem(random_problem, 5, 3, 4, 3, seed=7)
    _, _, cache = lstm.forward(parameters, inputs["events"], inputs["h0"], inputs["c0"])
    grads = lstm.backward(cache, cot["outputs"], cot["h"], cot["c"])
    weights = parameters.hidden_candidate_weights
    for index in [(0, 0), (2, 1), (1, 2)]:
        eps = 1e-6
        weights[index] += eps
        up = loss(parameters, inputs, cot)
        weights[index] -= 2 * eps
        down = loss(parameters, inputs, cot)
        weights[index] += eps
        assert np.isclose(
            grads.hidden_candidate_weights[index], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8
        )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_on_a_padded_batch_matches_finite_differences(name):
    """lstm-sym verify's finite-difference row with unsorted lengths (a row of 1, one of T)."""
    row = check_finite_differences(get(name), lengths=True)
    assert row.passed, (row.sizes, row.error)
