"""The tests' random problems (tests/problems.py, the ``random_problem`` fixture): every
parameter and input drawn at its documented shape, repeatable by seed, float32 the float64
problem rounded."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_sym.cells import CELLS, get


@pytest.mark.parametrize("name", list(CELLS))
def test_every_parameter_input_and_cotangent_is_drawn_at_its_shape(name, random_problem):
    spec = get(name)
    projection = None if spec.projected_state is None else 2  # P != H: shapes cannot hide
    problem = random_problem(name, 4, 3, 5, 6, seed=1, projection_size=projection)
    parameters = problem.parameters
    sizes = {s.short: 6 if s.projection is None else projection for s in spec.states}
    for attribute in parameters.NAMES:
        value = getattr(parameters, attribute)
        assert value.shape == parameters.checked(attribute).shape, attribute
        assert value.dtype == np.float64 and np.all(value != 0), attribute
    assert problem.events.shape == (4, 3, 5)
    assert {s: v.shape for s, v in problem.states.items()} == {s: (3, n) for s, n in sizes.items()}
    assert problem.d_outputs.shape == (4, 3, sizes[spec.output_state.short])
    assert {s: v.shape for s, v in problem.d_lasts.items()} == {s: (3, n) for s, n in sizes.items()}
    assert problem.initial.keys() == {f"{s}0" for s in sizes}
    assert problem.lasts.keys() == {f"d_{s}_last" for s in sizes}
    assert problem.cotangents.keys() == {"outputs", *sizes}


def _arrays(problem) -> dict:
    """Every array of a problem by a name: parameters, events, states and cotangents."""
    arrays = {name: getattr(problem.parameters, name) for name in problem.parameters.NAMES}
    arrays["events"] = problem.events
    arrays |= {f"{s}0": v for s, v in problem.states.items()}
    return arrays | {f"d_{k}": v for k, v in problem.cotangents.items()}


def test_the_seed_repeats_a_problem_and_another_seed_changes_every_array(random_problem):
    first, again, other = (_arrays(random_problem("lstm", 3, 2, 4, 5, seed=s)) for s in (7, 7, 8))
    assert first.keys() == again.keys() == other.keys()
    for name, value in first.items():
        np.testing.assert_array_equal(value, again[name], err_msg=name)
        assert not np.any(value == other[name]), name


def test_a_float32_problem_is_the_float64_one_rounded(random_problem):
    wide = random_problem("gru", 3, 2, 4, 5, seed=4)
    narrow = random_problem("gru", 3, 2, 4, 5, seed=4, dtype=np.float32)
    for attribute in wide.parameters.NAMES:
        value = getattr(narrow.parameters, attribute)
        assert value.dtype == np.float32, attribute
        np.testing.assert_array_equal(value, getattr(wide.parameters, attribute).astype(np.float32))
    np.testing.assert_array_equal(narrow.events, wide.events.astype(np.float32))
    np.testing.assert_array_equal(narrow.states["h"], wide.states["h"].astype(np.float32))
    np.testing.assert_array_equal(narrow.d_outputs, wide.d_outputs.astype(np.float32))
    np.testing.assert_array_equal(narrow.d_lasts["h"], wide.d_lasts["h"].astype(np.float32))
