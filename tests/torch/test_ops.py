"""The operators of lstm_sym/torch/ops.py, checked the way PyTorch checks its own:
``torch.library.opcheck`` on the three operators of every cell (schema, autograd registration,
fake tensors, AOT dispatch), the infer operator against forward bit for bit,
``torch.autograd.gradcheck`` in float64 through the C and through the generated emitter, the
emitter against the C path on CPU, the C cache's saved part, and bad input refused naming the
argument."""

from __future__ import annotations

import pytest

from tests.conftest import require_module
from tests.support import ROOT

torch = require_module("torch")
ops = pytest.importorskip("lstm_sym.torch.ops")
c_calls = pytest.importorskip("lstm_sym.torch.c_calls")

SIZES = {"steps": 4, "batch": 3, "event_size": 3, "hidden_size": 5, "projection_size": 2}
LENGTHS = [4, 1, 3]  # unsorted, one row of 1 step, one of T


@pytest.fixture(scope="module")
def mgu(tmp_path_factory):
    """The example user cell generated with `lstm-sym generate --spec` and loaded as operators."""
    from lstm_sym.cli import main

    out = tmp_path_factory.mktemp("mgu")
    spec = ROOT / "examples" / "cells" / "mgu.py"
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) in (0, None)
    return ops.load("mgu", out)


def _cell(name, request):
    return request.getfixturevalue("mgu") if name == "mgu" else ops.get(name)


def _problem(cell, dtype=torch.float64, seed=0, lengths=None):
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, scale=0.5):
        return (scale * torch.randn(shape, generator=generator, dtype=dtype)).requires_grad_()

    sizes = dict(SIZES)
    events = normal((sizes["steps"], sizes["batch"], sizes["event_size"]), 1.0)
    states = [normal((sizes["batch"], sizes[size])) for _, size in cell.states]
    weights = [normal(cell.shape(w, sizes)) for w in cell.weights]
    lengths = None if lengths is None else torch.tensor(lengths)
    return events, states, weights, lengths


def _loss_and_grads(cell, events, states, weights, lengths, seed=1):
    """outputs, finals and the gradient of a random linear loss on them, by autograd."""
    outputs, finals, _ = cell.forward(events, states, weights, lengths)
    generator = torch.Generator().manual_seed(seed)
    loss = (outputs * torch.randn(outputs.shape, generator=generator, dtype=outputs.dtype)).sum()
    for final in finals:
        loss = (
            loss + (final * torch.randn(final.shape, generator=generator, dtype=final.dtype)).sum()
        )
    inputs = [t for t in (events, *states, *weights) if t.requires_grad]
    grads = torch.autograd.grad(loss, inputs)
    return [outputs.detach(), *(f.detach() for f in finals), *grads]


CELLS = [*ops.cells(), "mgu"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CELLS)
def test_opcheck_passes_on_both_operators_of_every_cell(name, request):
    cell = _cell(name, request)
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    torch.library.opcheck(cell.forward, (events, states, weights, lengths))
    outputs, finals, saved = cell.forward(events, states, weights, lengths)
    d_outputs = torch.randn_like(outputs)
    d_finals = [torch.randn_like(f) for f in finals]
    detached = [t.detach() for t in (events, *states, *weights)]
    arguments = (
        detached[0],
        detached[1 : 1 + len(states)],
        detached[1 + len(states) :],
        lengths,
        [s.detach() for s in saved],
        d_outputs,
        d_finals,
    )
    torch.library.opcheck(cell.backward, arguments)
    torch.library.opcheck(cell.infer, (detached[0], arguments[1], arguments[2], lengths))


def test_opcheck_passes_without_lengths_and_in_float32():
    cell = ops.get("lstm")
    for dtype in (torch.float64, torch.float32):
        events, states, weights, _ = _problem(cell, dtype)
        torch.library.opcheck(cell.forward, (events, states, weights, None))
        torch.library.opcheck(cell.infer, _detached((events, states, weights, None)))


def _detached(problem):
    events, states, weights, lengths = problem
    return events.detach(), [s.detach() for s in states], [w.detach() for w in weights], lengths


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("name", CELLS)
def test_the_infer_operator_gives_forward_s_outputs_bit_for_bit(name, lengths, request):
    # The C inference runs forward's operations in forward's order without the cache.
    cell = _cell(name, request)
    for dtype in (torch.float64, torch.float32):
        problem = _detached(_problem(cell, dtype, seed=4, lengths=lengths))
        outputs, finals, _ = cell.forward(*problem)
        inferred, inferred_finals = cell.infer(*problem)
        assert inferred.dtype == dtype and len(inferred_finals) == len(finals)
        for got, want in zip([inferred, *inferred_finals], [outputs, *finals], strict=True):
            assert torch.equal(got, want)


def test_the_infer_operator_takes_no_cache_from_the_pool():
    # forward's C cache holds the whole sequence's states and saved values; infer's work is one
    # step's values, the events' projections of a block of steps and the packed weights.
    from lstm_sym.torch import cache_pool

    cell = ops.get("lstm")
    sizes = {"steps": 512, "batch": 2, "event_size": 3, "hidden_size": 32}
    events = torch.randn(sizes["steps"], sizes["batch"], sizes["event_size"], dtype=torch.float64)
    states = [torch.zeros(sizes["batch"], sizes["hidden_size"], dtype=torch.float64)] * 2
    weights = [torch.randn(cell.shape(w, sizes), dtype=torch.float64) for w in cell.weights]
    cache_pool.release()
    cell.infer(events, states, weights, None)
    work = cell.infer_work_size(sizes) * 8
    assert cache_pool.pooled_bytes() <= work + cache_pool.ALIGNMENT
    assert work < cell.cache_size(sizes) * 8 / 4


@pytest.mark.parametrize("path", ["C", "emitter"])
@pytest.mark.parametrize("name", ["lstm", "gru_cho", "lstmp", "minlstm"])
def test_apply_without_a_gradient_gives_the_training_numbers_through_the_infer_operator(
    name, path, monkeypatch
):
    # CellOps.apply (RNN's call) takes the infer operator under torch.no_grad, in inference
    # mode and when no input requires a gradient: the training forward's outputs bit for bit,
    # no autograd graph.
    cell = ops.get(name)
    problem = _problem(cell, seed=6, lengths=LENGTHS)
    context = ops.emitter_on_cpu if path == "emitter" else _no_context
    with context():
        outputs, finals = cell.apply(*problem)
        assert outputs.grad_fn is not None
        called = []
        real_infer = ops._infer
        monkeypatch.setattr(ops, "_infer", lambda *a: called.append(1) or real_infer(*a))
        for mode in (torch.no_grad, torch.inference_mode):
            with mode():
                got, got_finals = cell.apply(*problem)
            assert got.grad_fn is None
            for g, w in zip([got, *got_finals], [outputs, *finals], strict=True):
                assert torch.equal(g, w.detach())
        got, got_finals = cell.apply(*_detached(problem))
        assert got.grad_fn is None and torch.equal(got, outputs.detach())
    assert len(called) == 3


@pytest.mark.parametrize("name", ["lstm", "lstm_ln", "lstmp", "lstm_fgr"])
def test_the_infer_operator_off_the_c_runs_the_emitter_s_infer_which_saves_nothing(
    name, monkeypatch
):
    cell = ops.get(name)
    problem = _detached(_problem(cell, seed=7, lengths=LENGTHS))
    with ops.emitter_on_cpu():
        outputs, finals, _ = cell.forward(*problem)

        def refuse(*args, **kwargs):
            raise AssertionError("the emitter's saving forward ran")

        monkeypatch.setattr(cell.emitter, "forward", refuse)
        monkeypatch.setattr(cell.emitter, "forward_graph", refuse)
        got, got_finals = cell.infer(*problem)
    for g, w in zip([got, *got_finals], [outputs, *finals], strict=True):
        assert torch.equal(g, w)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["C", "emitter"])
@pytest.mark.parametrize("name", CELLS)
def test_gradcheck_passes_in_float64_with_lengths(name, path, request):
    cell = _cell(name, request)
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    count = len(states)

    def outputs_and_finals(events, *rest):
        outputs, finals, _ = cell.forward(events, list(rest[:count]), list(rest[count:]), lengths)
        return (outputs, *finals)

    if path == "emitter":
        with ops.emitter_on_cpu():
            assert torch.autograd.gradcheck(outputs_and_finals, (events, *states, *weights))
    else:
        assert torch.autograd.gradcheck(outputs_and_finals, (events, *states, *weights))


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("name", CELLS)
def test_the_emitter_on_cpu_computes_what_the_c_computes(name, lengths, request):
    cell = _cell(name, request)
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 2e-5)):
        problem = _problem(cell, dtype, lengths=lengths)
        by_c = _loss_and_grads(cell, *problem)
        with ops.emitter_on_cpu():
            by_emitter = _loss_and_grads(cell, *problem)
            _, _, saved = cell.forward(*problem)
        assert all(s.dim() >= 3 for s in saved)  # the emitter's saved tensors, not the C cache
        assert len(by_c) == len(by_emitter) == 1 + 2 * len(problem[1]) + len(problem[2]) + 1
        for got, want in zip(by_emitter, by_c, strict=True):
            scale = max(float(want.abs().max()), 1.0)
            assert float((got - want).abs().max()) <= tolerance * scale


def test_each_size_s_planned_c_call_gives_that_size_s_numbers_when_sizes_take_turns():
    # the C calls are planned once per cell, function, dtype, sizes and lengths given (their
    # sizes written in): sizes in turns each get their own plan, checked against the emitter
    cell = ops.get("lstmp")
    other = {"steps": 6, "batch": 2, "event_size": 4, "hidden_size": 3, "projection_size": 2}
    turns = ((SIZES, LENGTHS), (other, None), (SIZES, None), (SIZES, LENGTHS))
    for seed, (sizes, lengths) in enumerate(turns):
        generator = torch.Generator().manual_seed(seed)
        shapes = [(sizes["steps"], sizes["batch"], sizes["event_size"])]
        shapes += [(sizes["batch"], sizes[size]) for _, size in cell.states]
        shapes += [cell.shape(w, sizes) for w in cell.weights]
        events, *tensors = [
            (0.5 * torch.randn(s, generator=generator, dtype=torch.float64)).requires_grad_()
            for s in shapes
        ]
        count = len(cell.states)
        problem = (events, tensors[:count], tensors[count:], lengths and torch.tensor(lengths))
        by_c = _loss_and_grads(cell, *problem)
        with ops.emitter_on_cpu():
            by_emitter = _loss_and_grads(cell, *problem)
        for got, want in zip(by_c, by_emitter, strict=True):
            assert got.shape == want.shape
            assert float((got - want).abs().max()) <= 1e-12 * max(float(want.abs().max()), 1.0)
    assert {key[2] for key in cell._c_calls if key[0] == "forward"} == {False, True}


def test_a_padded_event_gets_exactly_zero_gradient_on_both_paths():
    cell = ops.get("peephole_lstm")
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    for context in (ops.emitter_on_cpu, _no_context):
        with context():
            outputs, _, _ = cell.forward(events, states, weights, lengths)
            (d_events,) = torch.autograd.grad(outputs.sum(), [events])
        assert torch.all(d_events[1:, 1] == 0) and torch.all(d_events[3:, 2] == 0)
        assert torch.all(outputs[1:, 1] == 0) and torch.all(d_events[:1, 1] != 0)


def _no_context():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("name", ops.cells())
def test_the_saved_cache_part_is_what_forward_wrote_and_backward_never_writes_it(name):
    cell = ops.get(name)
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    sizes = cell.check(events, states, weights, lengths)
    head = cell.saved_size(sizes)
    assert 0 < head < cell.cache_size(sizes)
    # forward into two caches full of different garbage: the saved part comes out the same
    parts = []
    for fill in (float("nan"), 7.0):
        cache = events.new_full((cell.cache_size(sizes),), fill).detach()
        known = {"cache": cache.data_ptr(), "lengths": lengths.data_ptr()}
        keep = [events.new_empty(cell.shape("outputs", sizes)).detach()]
        known["events"], known["outputs"] = events.detach().data_ptr(), keep[0].data_ptr()
        for (short, _), state in zip(cell.states, states, strict=True):
            keep.append(state.new_empty(state.shape).detach())
            known[f"{short}0"], known[f"{short}_last"] = state.data_ptr(), keep[-1].data_ptr()
        for w_name, w in zip(cell.weights, weights, strict=True):
            known[w_name] = w.data_ptr()
        cell.native.call("forward", ops._DTYPES[events.dtype], sizes, {}, known)
        parts.append(cache[:head].clone())
    assert not parts[0].isnan().any()
    assert torch.equal(parts[0], parts[1])
    # the operator's saved is that part; backward on it (in place) and on a copy (a fresh
    # cache) gives the same gradients and leaves saved as it was
    outputs, finals, (saved,) = cell.forward(events, states, weights, lengths)
    assert torch.equal(saved, parts[0])
    before = saved.clone()
    arguments = [t.detach() for t in (events, *states, *weights)]
    count = len(states)
    d_outputs, d_finals = torch.ones_like(outputs), [torch.ones_like(f) for f in finals]

    def backward(saved_part):
        return cell.backward(
            arguments[0],
            arguments[1 : 1 + count],
            arguments[1 + count :],
            lengths,
            [saved_part],
            d_outputs,
            d_finals,
        )

    in_place, copied = backward(saved), backward(saved.clone())
    assert torch.equal(saved, before)
    # and the C backward on the saved part followed by NaN: the rest is scratch it never reads
    nan_tail = events.new_full((cell.cache_size(sizes),), float("nan")).detach()
    nan_tail[:head] = saved
    call = c_calls.plan(cell, "backward", ops._DTYPES[events.dtype], sizes, lengths is not None)
    on_nan = c_calls.run_backward(
        call, arguments[0], arguments[1 + count :], lengths, nan_tail, d_outputs, d_finals, True
    )
    results = [[r[0], *r[1], *r[2]] for r in (in_place, copied, on_nan)]
    assert not any(t.isnan().any() for t in results[0])
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))


def test_backward_twice_through_a_retained_graph_gives_the_same_gradients():
    cell = ops.get("lstm_fgr")
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    outputs, _, _ = cell.forward(events, states, weights, lengths)
    first = torch.autograd.grad(outputs.sum(), weights, retain_graph=True)
    second = torch.autograd.grad(outputs.sum(), weights)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_non_contiguous_inputs_give_the_contiguous_results():
    cell = ops.get("lstm")
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    strided = events.detach().transpose(0, 1).contiguous().transpose(0, 1)
    assert not strided.is_contiguous()
    want, _, _ = cell.forward(events.detach(), states, weights, lengths)
    got, _, _ = cell.forward(strided, states, weights, lengths)
    assert torch.equal(got, want)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda p: p.update(events=p["events"].float()), TypeError, "same dtype"),
        (lambda p: p.update(events=p["events"].long()), TypeError, "float32 or float64"),
        (lambda p: p.update(events=p["events"][0]), ValueError, "events must have shape"),
        (lambda p: p["weights"].pop(), ValueError, "weights must hold"),
        (lambda p: p["states"].pop(), ValueError, "initial_states must hold"),
        (
            lambda p: p["weights"].__setitem__(2, p["weights"][2][:-1]),
            ValueError,
            r"weights\[2\] \(hidden_weights\) must have shape",
        ),
        (
            lambda p: p["states"].__setitem__(1, p["states"][1][:, :-1]),
            ValueError,
            r"initial_states\[1\] \(c0\) must have shape",
        ),
        (
            lambda p: p["states"].__setitem__(0, p["states"][0].to("meta")),
            RuntimeError,
            "same device",
        ),
        (lambda p: p.update(lengths=torch.tensor([4, 0, 3])), ValueError, r"lengths\[1\] = 0"),
        (lambda p: p.update(lengths=torch.tensor([4, 5, 3])), ValueError, r"lengths\[1\] = 5"),
        (lambda p: p.update(lengths=torch.tensor([4.0, 1, 3])), TypeError, "lengths must be int64"),
        (lambda p: p.update(lengths=torch.tensor([4, 1])), ValueError, r"lengths must have shape"),
        # the dispatcher's own schema check
        (lambda p: p.update(lengths=[4, 1, 3]), RuntimeError, "for argument 'lengths'"),
    ],
)
@pytest.mark.parametrize("operator", ["forward", "infer"])
def test_bad_input_is_refused_pytorch_style_naming_the_argument(operator, change, error, message):
    cell = ops.get("lstm")
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    problem = {
        "events": events.detach(),
        "states": [s.detach() for s in states],
        "weights": [w.detach() for w in weights],
        "lengths": lengths,
    }
    change(problem)
    with pytest.raises(error, match=message) as raised:
        getattr(cell, operator)(
            problem["events"], problem["states"], problem["weights"], problem["lengths"]
        )
    assert "for argument" in message or f"lstm_sym.lstm_{operator}" in str(raised.value)


def test_an_unknown_cell_or_directory_is_refused_naming_what_there_is(tmp_path):
    with pytest.raises(ValueError, match=r"the cells are .*lstm"):
        ops.get("no_such_cell")
    with pytest.raises(ValueError, match="no generated cell 'mgu'"):
        ops.load("mgu", tmp_path)


def test_a_user_cell_registers_operators_of_its_own(mgu):
    assert mgu.qualifier.startswith("mgu_")
    name = f"{mgu.qualifier}_forward"
    assert callable(getattr(torch.ops.lstm_sym, name))
    events, states, weights, _ = _problem(mgu)
    outputs, finals, _ = getattr(torch.ops.lstm_sym, name)(events, states, weights, None)
    want, want_finals, _ = mgu.forward(events, states, weights, None)
    assert torch.equal(outputs, want) and torch.equal(finals[0], want_finals[0])


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "lstmp"])
def test_opcheck_passes_on_the_emitter_path(name):
    cell = ops.get(name)
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    with ops.emitter_on_cpu():
        torch.library.opcheck(cell.forward, (events, states, weights, lengths))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_the_emitter_path_of_an_affine_cell_runs_its_scan_not_its_step_loop(name, monkeypatch):
    # minGRU and minLSTM are affine in their previous state (lstm_sym/scan.py): off the CPU
    # their operators run the generated time-parallel scan. With the emitter's loop disabled,
    # the operators still run, give what the C gives, and pass opcheck (fake tensors included).
    cell = ops.get(name)
    problem = _problem(cell, lengths=LENGTHS)
    by_c = _loss_and_grads(cell, *problem)

    def refused(*args, **kwargs):
        raise AssertionError("the step loop ran")

    monkeypatch.setattr(cell.emitter, "forward", refused)
    monkeypatch.setattr(cell.emitter, "backward", refused)
    with ops.emitter_on_cpu():
        by_scan = _loss_and_grads(cell, *problem)
        torch.library.opcheck(cell.forward, problem)
    for got, want in zip(by_scan, by_c, strict=True):
        assert float((got - want).abs().max()) <= 1e-12 * max(float(want.abs().max()), 1.0)


@pytest.mark.parametrize("path", ["C", "emitter"])
def test_events_without_a_gradient_skip_it_and_change_no_other_gradient(path):
    # autograd asks the backward op for dL/d(events) only when the events require it; without
    # it the C skips that matrix product (d_events NULL) and every other gradient is the same.
    cell = ops.get("peephole_lstm")
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    context = ops.emitter_on_cpu if path == "emitter" else _no_context
    with context():
        full = _loss_and_grads(cell, events, states, weights, lengths)
        without = _loss_and_grads(cell, events.detach(), states, weights, lengths)
        outputs, finals, saved = cell.forward(events, states, weights, lengths)
        arguments = [t.detach() for t in (events, *states, *weights)]
        d_outputs = torch.randn_like(outputs)
        backward = (
            arguments[0],
            arguments[1 : 1 + len(states)],
            arguments[1 + len(states) :],
            lengths,
            [s.detach() for s in saved],
            d_outputs,
            [torch.zeros_like(f) for f in finals],
        )
        skipped = cell.backward(*backward, events_grad=False)
        computed = cell.backward(*backward)
        torch.library.opcheck(cell.backward, backward, {"events_grad": False})
    count = 1 + len(finals)
    assert len(without) == len(full) - 1  # no d_events
    for got, want in zip(without, full[:count] + full[count + 1 :], strict=True):
        assert torch.equal(got, want)
    assert skipped[0].numel() == 0 and computed[0].shape == events.shape
    for got, want in zip([*skipped[1], *skipped[2]], [*computed[1], *computed[2]], strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("path", ["C", "emitter"])
@pytest.mark.parametrize("name", ["peephole_lstm", "gru", "lstmp"])
def test_the_eager_apply_gives_the_operator_path_bit_for_bit(name, path):
    # CellOps.apply (RNN's call) runs the operators' computations through an autograd.Function
    # in eager mode: the same outputs, final states and gradients as the custom operator with
    # its registered autograd, bit for bit.
    cell = ops.get(name)
    events, states, weights, lengths = _problem(cell, lengths=LENGTHS)
    context = ops.emitter_on_cpu if path == "emitter" else _no_context
    with context():
        by_operator = _loss_and_grads(cell, events, states, weights, lengths)

        class Applied:
            @staticmethod
            def forward(*args):
                outputs, finals = cell.apply(*args)
                return outputs, finals, None

        by_apply = _loss_and_grads(Applied, events, states, weights, lengths)
    assert len(by_apply) == len(by_operator)
    for got, want in zip(by_apply, by_operator, strict=True):
        assert torch.equal(got, want)
