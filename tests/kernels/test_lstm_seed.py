"""Every cell of the seed notebook runs unchanged on the generated module and prints its numbers."""

from __future__ import annotations

import numpy as np

from generated import lstm as lstm  # the seed does `import lstm`


def test_seed_notebook_cells_print_the_seed_numbers():
    # In [3]
    EVENT_SIZE, HIDDEN_SIZE = 3, 3
    parameters = lstm.Parameters(event_size=EVENT_SIZE, hidden_size=HIDDEN_SIZE)
    assert parameters.event_forget_bias == 0 and parameters.event_forget_weights.shape == (3, 3)
    # In [5]
    event = np.array([10, 0, 0])
    hidden_state = np.array([0, 0, 10])
    prev_cell_state = np.array([1, 1, 1])
    out = lstm.forget_gate(
        event=event,
        hidden_state=hidden_state,
        parameters=parameters,
        prev_cell_state=prev_cell_state,
    )
    assert repr(out) == "array([0.5, 0.5, 0.5])"
    # In [6]
    parameters.event_forget_weights = np.eye(HIDDEN_SIZE, EVENT_SIZE)
    parameters.hidden_forget_weights = np.eye(HIDDEN_SIZE, EVENT_SIZE)
    out = lstm.forget_gate(
        event=event,
        hidden_state=hidden_state,
        parameters=parameters,
        prev_cell_state=prev_cell_state,
    )
    assert repr(out) == "array([0.9999546, 0.5      , 0.9999546])"
    # In [7]
    parameters.event_forget_weights = np.eye(HIDDEN_SIZE, EVENT_SIZE)
    parameters.hidden_forget_weights = np.zeros((HIDDEN_SIZE, EVENT_SIZE))
    out = lstm.forget_gate(
        event=event,
        hidden_state=hidden_state,
        parameters=parameters,
        prev_cell_state=prev_cell_state,
    )
    assert repr(out) == "array([0.9999546, 0.5      , 0.5      ])"
    # In [9]
    assert repr(lstm.input_gate(event=event, hidden_state=hidden_state, parameters=parameters)) == (
        "array([0., 0., 0.])"
    )
    # In [10]
    parameters.hidden_candidate_weights = np.eye(HIDDEN_SIZE, EVENT_SIZE)
    parameters.hidden_update_weights = np.eye(HIDDEN_SIZE, EVENT_SIZE)
    out = lstm.input_gate(event=event, hidden_state=hidden_state, parameters=parameters)
    assert repr(out) == "array([0.       , 0.       , 0.9999546])"
    # In [11]-[13]: cell_state and output_gate, which the seed shows but does not run
    forget = lstm.forget_gate(event, hidden_state, prev_cell_state, parameters)
    new_cell = lstm.cell_state(forget_gate_output=forget, input_gate_output=out)
    np.testing.assert_array_equal(new_cell, forget + out)
    hidden = lstm.output_gate(
        event=event, hidden_state=hidden_state, cell_state=new_cell, parameters=parameters
    )
    np.testing.assert_allclose(hidden, 0.5 * np.tanh(new_cell), rtol=1e-15)


def test_seed_functions_compose_into_one_forward_step(random_problem):
    """The seed's four functions are one step of lstm.forward, batched too."""
    problem = random_problem(lstm, 1, 2, 4, 3, seed=5, scale=1.0)
    parameters, event = problem.parameters, problem.events[0]
    h, c = problem.states["h"], problem.states["c"]
    forget = lstm.forget_gate(event, h, c, parameters)
    new_c = lstm.cell_state(forget, lstm.input_gate(event, h, parameters))
    new_h = lstm.output_gate(event, h, new_c, parameters)
    outputs, (h_last, c_last), _ = lstm.forward(parameters, event[None], h, c)
    np.testing.assert_allclose(new_c, c_last, rtol=1e-14)
    np.testing.assert_allclose(new_h, h_last, rtol=1e-14)
    np.testing.assert_allclose(outputs[0], h_last, rtol=0)
