"""The kernel plan as a stage: its buffers, products and per-unit stages, read for what they
say about a cell, and its shapes checked against what the generated NumPy kernels allocate."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import sympy as sp

from lstm_sym.cells import CELLS, get
from lstm_sym.codegen import c_api, c_module, numpy_module
from lstm_sym.derive import Assignment, derive
from lstm_sym.functions import sigmoid
from lstm_sym.plan import Run, Stage, plan, plan_cell
from lstm_sym.spec import CellSpec, SpecError, State, gate_hidden, gate_symbols, real_symbol

S = real_symbol


def names(symbols):
    return [s.name for s in symbols]


def test_the_lstm_plan_reads_like_the_paper():
    """Four gates stacked into one event projection and one hidden projection over h_{t-1};
    the forward keeps f, i, g, o and tanh(c) per step; one delta serves both projections."""
    kernel = plan_cell(get("lstm"))
    gates = ("update", "forget", "candidate", "output")
    assert kernel.gates == gates
    (run,) = kernel.recurrent_runs
    assert run.gates == gates and run.sources == (S("hidden_prev"),)
    assert kernel.runs == ()
    assert sorted(names(s.symbol for s in kernel.saved)) == sorted(
        ["forget", "update", "candidate", "output", "tanh_cell"]
    )
    assert all(slot.state is None and slot.per_step for slot in kernel.saved)
    T, B, H = sp.symbols("T B H", integer=True, positive=True)
    shapes = {b.name: b.shape for b in kernel.buffers}
    assert shapes["hidden_states"] == shapes["cell_states"] == (T + 1, B, H)
    assert shapes["event_projection"] == (T, B, 4 * H)
    assert shapes["saved"] == (5, T, B, H)
    assert "delta_hidden" not in shapes and shapes["delta_event"] == (T, B, 4 * H)
    products = {p.name: p for p in kernel.products}
    assert products["d_event_weights"].shared and products["d_hidden_weights"].shared
    assert [type(s) for s in kernel.forward_step] == [Stage]
    assert [type(s) for s in kernel.backward_step] == [Stage]


def test_gru_cho_has_two_forward_stages_with_its_run_between():
    kernel = plan_cell(get("gru_cho"))
    first, product, second = kernel.forward_step
    assert isinstance(first, Stage) and isinstance(second, Stage) and isinstance(product, Run)
    assert product.gates == ("new",) and product.sources == (S("reset_state"),) and product.unit
    assert S("reset_state") in {a.target for a in first.assignments}
    # The second stage reads what the product computes; the first never does.
    assert gate_hidden("new") in second.reads() and gate_hidden("new") not in first.reads()
    assert S("reset_state") in first.read_after
    # Each stage delivers the saved values and new states it assigns; together, all of them.
    assert S("reset_state") in first.outputs and S("hidden") in second.outputs
    assert set(first.outputs) | set(second.outputs) >= {slot.symbol for slot in kernel.saved}
    sources, back_product, full = kernel.backward_step
    assert back_product is product
    assert set(sources.outputs) == {S("d_new_hidden")}
    assert full.name == "backward" and S("d_reset_state_carry") in full.reads()


def test_lstm_fgrs_update_and_forget_share_one_product():
    kernel = plan_cell(get("lstm_fgr"))
    sources = tuple(S(n) for n in ("hidden_prev", "update_prev", "forget_prev", "output_prev"))
    shared, alone = kernel.runs
    assert shared.gates == ("update", "forget") and shared.sources == sources
    assert alone.gates == ("output",) and alone.sources == sources
    # candidate reads h_{t-1} alone and sits between them: the output gate gets its own product,
    # reading the sources gathered once for the first run.
    assert kernel.recurrent_gates == ("candidate",)
    assert alone.gathered_by == shared.index != alone.index
    assert kernel.blocks == (4, 4, 1, 4)
    assert (shared.offset, alone.offset) == (0, 9)
    assert not any(r.unit for r in kernel.runs)


def test_a_stage_keeps_only_what_its_outputs_read():
    x, a, b, c = S("x"), S("a"), S("b"), S("c")
    stage = Stage("s", (Assignment(a, x + 1), Assignment(b, 2 * a), Assignment(c, 3 * x)), (b,))
    assert [s.target for s in stage.needed()] == [a, b]
    assert stage.read_later(0) and not stage.read_later(1)
    assert stage.needed({c}) == (stage.assignments[2],)


def _cell_with_a_dead_value():
    event, hidden = gate_symbols(("forget",))
    h_prev, h_new, forget, unused = S("hidden_prev"), S("hidden"), S("forget"), S("unused")
    return CellSpec(
        name="dead_value",
        title="A cell computing a value nothing reads",
        gates=("forget",),
        states=(State("hidden", "h", h_prev, h_new),),
        output=h_new,
        recurrent=h_prev,
        equations=(
            (forget, sigmoid(event.forget + hidden.forget)),
            (unused, 2 * forget),
            (h_new, forget * h_prev),
        ),
    )


def test_a_value_no_output_reads_is_dropped_from_the_stage_and_the_kernel(monkeypatch):
    """Liveness in the plan, beneath validation: ``validate`` refuses a spec equation nothing
    reads (issue 15), so the dead value's spec is derived with validation switched off here."""
    with pytest.raises(SpecError, match="no later equation uses it"):
        derive(_cell_with_a_dead_value())
    monkeypatch.setattr("lstm_sym.derive.validate", lambda spec: None)
    kernel = plan(derive(_cell_with_a_dead_value()))
    (stage,) = kernel.forward_step
    assert S("unused") in {a.target for a in stage.assignments}
    assert S("unused") not in {a.target for a in stage.needed()}
    assert "unused" not in numpy_module.emit(kernel)
    assert "unused" not in c_module.emit_source(kernel)


def test_the_buffer_table_lists_every_buffer_once_with_its_shape_as_text():
    kernel = plan_cell(get("lstmp"))
    table = kernel.buffer_table()
    assert len({name for name, _, _ in table}) == len(table) == len(kernel.buffers)
    rows = {name: (role, shape) for name, role, shape in table}
    assert rows["h0"] == ("initial_state", "(B, P)")
    assert rows["c0"] == ("initial_state", "(B, H)")
    assert rows["hidden_weights"] == ("parameter", "(4*H, P)")
    assert rows["hidden_states"] == ("state_sequence", "(T + 1, B, P)")
    assert rows["delta_projection"] == ("delta", "(T, B, P)")
    sizes = dict(zip("TBXHP", sp.symbols("T B X H P", integer=True, positive=True), strict=True))
    for buffer, (_, _, shape) in zip(kernel.buffers, table, strict=True):
        assert sp.sympify(shape, locals=sizes) == sp.Tuple(*buffer.shape)
    # Plain Python too: a binding evaluates the shapes without SymPy.
    for buffer, (_, _, shape) in zip(kernel.buffers, table, strict=True):
        assert eval(shape, {"__builtins__": {}}, SIZES) == buffer.evaluate(**SIZES)
    abi = [name for name, role, _ in table if kernel.buffer(name).abi]
    assert abi[0] == "events" and table[len(abi)][1] == "state_sequence"


SIZES = {"T": 3, "B": 2, "X": 5, "H": 7, "P": 4}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_buffer_has_the_shape_the_numpy_kernel_allocates(name):
    """Shapes evaluated at (T, B, X, H, P) = (3, 2, 5, 7, 4) against the arrays the generated
    module actually makes (states, saved values, event projections, results, gradients)."""
    kernel = plan_cell(get(name))
    module = importlib.import_module(f"generated.{name}")
    T, B, X, H, P = (SIZES[k] for k in "TBXHP")
    projected = kernel.projected is not None
    parameters = module.Parameters(X, H, P) if projected else module.Parameters(X, H)
    events = np.random.default_rng(0).normal(size=(T, B, X))  # zero weights: shapes only
    outputs, lasts, cache = module.forward(parameters, events, lengths=np.full(B, T))
    lasts = lasts if isinstance(lasts, tuple) else (lasts,)
    grads = module.backward(cache, np.ones_like(outputs))
    shorts = [s.state.short for s in kernel.states]
    stacked = dict(
        zip(
            c_api.stacked_arrays(kernel.spec),
            parameters.stacked(np.float64),
            strict=True,
        )
    )

    def gradient_of(stacked_name):
        side, kind = stacked_name.split("_")
        parts = [getattr(grads, f"{side}_{g}_{kind}") for g in kernel.gates]
        if kernel.wide and stacked_name == "hidden_weights":  # each gate's array flattened
            parts = [p.ravel() for p in parts]
        return np.concatenate(parts)

    actual = {"events": events.shape, "outputs": outputs.shape, "d_outputs": outputs.shape}
    actual["d_events"] = grads.events.shape
    actual["lengths"] = cache.lengths.shape
    actual |= {k: v.shape for k, v in stacked.items()}
    actual |= {f"d_{k}": gradient_of(k).shape for k in stacked}
    for p in kernel.spec.unit_parameters:
        actual[p.name] = parameters.checked(p.name).shape
        actual[f"d_{p.name}"] = getattr(grads, p.name).shape
    if projected:
        actual["projection_weights"] = parameters.projection_weights.shape
        actual["d_projection_weights"] = grads.projection_weights.shape
    for short, last, layout in zip(shorts, lasts, kernel.states, strict=True):
        actual[f"{short}_last"] = actual[f"d_{short}_last"] = last.shape
        actual[f"{short}0"] = actual[f"d_{short}0"] = getattr(grads, f"{short}0").shape
        actual[layout.sequence] = cache.states[layout.name].shape
    own = [s for s in kernel.saved if s.state is None]
    for slot in kernel.saved:
        array = cache.saved[slot.symbol.name]
        if slot.state is not None:  # a view of its state's sequence from index 1 on
            assert np.shares_memory(array, cache.states[slot.state])
            assert array.shape == cache.states[slot.state][1:].shape
    actual["saved"] = (len(own), *(cache.saved[own[0].symbol.name].shape if own else (T, B, H)))
    actual["event_projection"] = cache.scratch[0].shape
    for buffer in kernel.buffers:
        expected = buffer.evaluate(**SIZES)
        assert eval(buffer.shape_text(), {"__builtins__": {}}, SIZES) == expected
        if buffer.name in actual:
            assert actual[buffer.name] == expected, buffer.name
    checked = set(actual) & {b.name for b in kernel.buffers}
    assert {b.name for b in kernel.buffers if b.abi} <= checked
    assert {s.sequence for s in kernel.states} | {"saved", "event_projection"} <= checked


@pytest.mark.parametrize("name", ["lstm", "lstmp", "lstm_fgr", "peephole_lstm"])
def test_the_abi_buffers_are_the_arrays_the_c_entry_points_take(name):
    """The buffer table's argument rows name exactly the arrays of the C forward and backward
    (the cache aside: its size comes from ``<cell>_cache_size``)."""
    kernel = plan_cell(get(name))
    arrays = {
        arg.name
        for function in c_api.functions(kernel.spec)
        if function.name in ("forward", "backward")
        for arg in function.args
        if arg.pointer
    }
    assert {b.name for b in kernel.buffers if b.abi} == arrays - {"cache"}


def test_lstmp_projects_its_hidden_state_through_p_by_h_weights_read_from_the_saved_vector():
    """lstmp's one projection maps the per-unit vector (B x H, saved for the weight gradient)
    through the (P, H) projection weights into the recurrent output state, which is P wide."""
    kernel = plan_cell(get("lstmp"))
    (projection,) = kernel.projections
    P, H = sp.symbols("P H", integer=True, positive=True)
    assert projection.weights.name == "projection_weights"
    assert projection.weights.shape == (P, H)
    assert projection.state.size == P and projection.state.is_output
    assert projection.recurrent
    assert projection.saved.symbol == projection.unit == projection.state.state.projection
    assert projection.saved.state is None  # a part of the saved buffer, not a state's view
    assert P in kernel.sizes


def test_the_plain_lstm_has_no_projection_and_no_projection_size():
    kernel = plan_cell(get("lstm"))
    assert kernel.projections == ()
    assert names(kernel.sizes) == ["T", "B", "X", "H"]
    assert not any(b.name == "projection_weights" for b in kernel.buffers)


def test_a_cell_whose_gates_add_their_parts_writes_one_delta_and_gru_writes_two():
    """The LSTM's gates add event and hidden parts, so one delta serves both projections;
    the GRU's candidate multiplies its hidden part by the reset gate, so the parts need
    deltas of their own."""
    assert plan_cell(get("lstm")).gate_deltas == ("delta_event",)
    assert plan_cell(get("gru")).gate_deltas == ("delta_event", "delta_hidden")


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_masking_carries_every_state_zeroes_the_outputs_and_passes_every_state_adjoint(name):
    """Variable lengths are decided once, in the plan: a finished row keeps every state's
    sequence, its outputs are zero, its events unread, its deltas zero and every state's adjoint
    passes through; ``lengths`` is a (B,) argument of the entry points."""
    kernel = plan_cell(get(name))
    masking = kernel.masking
    B = sp.Symbol("B", integer=True, positive=True)
    assert masking.lengths.name == "lengths" and masking.lengths.shape == (B,)
    assert masking.lengths in kernel.buffers and masking.lengths.abi
    assert masking.carried == tuple(s.sequence for s in kernel.states)
    assert masking.passed == tuple(f"d_{s.state.short}" for s in kernel.states)
    assert masking.zeroed == ("outputs",)
    assert masking.unread == ("events",)
    assert masking.ignored == ("d_outputs",)
    deltas = {b.name for b in kernel.buffers if b.role == "delta"}
    assert set(masking.zero_deltas) == deltas and set(kernel.gate_deltas) <= deltas
    assert all(kernel.buffer(name) for name in masking.carried + masking.zeroed + masking.unread)
