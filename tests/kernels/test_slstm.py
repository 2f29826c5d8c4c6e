"""sLSTM (lstm_sym/cells/slstm.py): the stabilized cell is the unstabilized recurrence.

The references here are written by hand from the paper (Beck et al., 2024), never through the
derivation: the *unstabilized* sLSTM in 40-digit mpmath,

    c~_t = f_t c~_{t-1} + i_t z_t,  n~_t = f_t n~_{t-1} + i_t,  h_t = o_t c~_t / n~_t,

with i_t = exp(i~_t), f_t = sigmoid(f~_t), z_t = tanh(z~_t), o_t = sigmoid(o~_t) and
c~_0 = exp(m_0) c_0, n~_0 = exp(m_0) n_0, and its gradients by mpmath's numerical
differentiation at 40 digits; and, where it installs, the official implementation
(``xlstm``'s vanilla sLSTM, PyTorch) with autograd.
"""

from __future__ import annotations

import functools
import importlib.util

import mpmath
import numpy as np
import pytest

from generated import slstm
from lstm_sym.cells import get
from lstm_sym.verify import ExactModel
from tests.conftest import OPTIONAL, require_module, require_tool
from tests.problems import random_problem
from tests.support import relative_error
from tests.torch.cells import abi_arrays

GATES = ("input", "forget", "candidate", "output")
REFERENCE_NAMES = ("event_weights", "event_bias", "hidden_weights", "hidden_bias")
SIZES = (3, 2, 2, 2)  # steps, batch, event_size, hidden_size: 76 leaves


def _leaves(problem) -> dict:
    """Every input of the loss by name (Parameters attributes, events, h0 c0 n0 m0)."""
    leaves = {name: np.array(getattr(problem.parameters, name)) for name in slstm.Parameters.NAMES}
    leaves["events"] = problem.events
    leaves.update({f"{s}0": v for s, v in problem.states.items()})
    return {k: np.asarray(v, dtype=np.float64) for k, v in leaves.items()}


def _unstabilized(leaves: dict):
    """Outputs (T, B, H) and final c~, n~ of the unstabilized sLSTM, mpmath values (the working
    precision of the caller)."""
    mp = {k: np.vectorize(mpmath.mpf, otypes=[object])(v) for k, v in leaves.items()}
    steps, batch, _ = mp["events"].shape
    hidden_size = mp["h0"].shape[1]
    h = mp["h0"].copy()
    c = np.array([[mpmath.exp(m) * c for c, m in zip(*rows)] for rows in zip(mp["c0"], mp["m0"])])
    n = np.array([[mpmath.exp(m) * n for n, m in zip(*rows)] for rows in zip(mp["n0"], mp["m0"])])
    outputs = np.empty((steps, batch, hidden_size), dtype=object)
    for t in range(steps):
        pre = {
            g: mp["events"][t] @ mp[f"event_{g}_weights"].T
            + mp[f"event_{g}_bias"]
            + h @ mp[f"hidden_{g}_weights"].T
            + mp[f"hidden_{g}_bias"]
            for g in GATES
        }
        i = np.vectorize(mpmath.exp)(pre["input"])
        f = np.vectorize(lambda x: 1 / (1 + mpmath.exp(-x)))(pre["forget"])
        z = np.vectorize(mpmath.tanh)(pre["candidate"])
        o = np.vectorize(lambda x: 1 / (1 + mpmath.exp(-x)))(pre["output"])
        c = f * c + i * z
        n = f * n + i
        h = o * c / n
        outputs[t] = h
    return outputs, c, n


def _floats(values) -> np.ndarray:
    return np.vectorize(float, otypes=[float])(values)


@pytest.fixture(scope="module")
def problem():
    return random_problem("slstm", *SIZES, seed=3)


@pytest.fixture(scope="module")
def unstabilized(problem):
    with mpmath.workdps(40):
        return _unstabilized(_leaves(problem))


@pytest.fixture(scope="module")
def native():
    require_tool("gcc")
    from lstm_sym import native

    return native.load("slstm")


def _kernels(native):
    return {"numpy": slstm} | ({} if native is None else {"c": native})


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_the_stabilized_kernels_compute_the_unstabilized_recurrence(
    backend, problem, unstabilized, request
):
    module = slstm if backend == "numpy" else request.getfixturevalue("native")
    outputs, (h_last, c_last, n_last, m_last), _ = module.forward(
        problem.parameters, problem.events, **problem.initial
    )
    want, c_bar, n_bar = unstabilized
    assert relative_error(outputs, _floats(want)) < 1e-14
    assert relative_error(h_last, _floats(want[-1])) < 1e-14
    # c_t = exp(-m_t) c~_t and n_t = exp(-m_t) n~_t: the stabilizer only rescales
    assert relative_error(c_last * np.exp(m_last), _floats(c_bar)) < 1e-14
    assert relative_error(n_last * np.exp(m_last), _floats(n_bar)) < 1e-14


def test_the_exact_model_of_the_stabilized_spec_is_the_unstabilized_recurrence():
    """verify.ExactModel evaluates the spec's stabilized equations at 40 digits; the
    unstabilized recurrence on the same point gives the same outputs to the last bit."""
    model = ExactModel(get("slstm"), steps=3, batch=2, event_size=2, hidden_size=2, seed=1)
    leaves = dict(model.parameters, events=model.events)
    leaves.update({f"{s}0": v for s, v in model.initial.items()})
    with mpmath.workdps(40):
        want, c_bar, n_bar = _unstabilized(leaves)
        scaled = np.vectorize(lambda c, m: float(c * mpmath.exp(mpmath.mpf(m))), otypes=[float])
        got_c, got_n = (
            scaled(model.finals["c"], model.finals["m"]),
            scaled(model.finals["n"], model.finals["m"]),
        )
    assert relative_error(model.outputs, _floats(want)) <= 2**-52
    assert relative_error(got_c, _floats(c_bar)) <= 2**-51
    assert relative_error(got_n, _floats(n_bar)) <= 2**-51


def test_gradients_equal_the_unstabilized_forms_at_40_digits(problem, request):
    """L = sum(d_outputs * outputs) + sum(d_h_last * h_T): the kernels' gradients (NumPy and C)
    against d L / d leaf of the unstabilized recurrence, by mpmath's numerical differentiation
    with 40 digits (the stabilizer m never appears in it)."""
    leaves = _leaves(problem)
    d_outputs, d_h_last = problem.d_outputs, problem.d_lasts["h"]
    gradients = {}
    with mpmath.workdps(40):

        def loss(name, index, value):
            moved = dict(leaves)
            moved[name] = leaves[name].astype(object)
            moved[name][index] = value
            outputs, _, _ = _unstabilized(moved)
            return sum(
                mpmath.mpf(float(d)) * o for d, o in zip(d_outputs.ravel(), outputs.ravel())
            ) + sum(mpmath.mpf(float(d)) * o for d, o in zip(d_h_last.ravel(), outputs[-1].ravel()))

        for name, values in leaves.items():
            grad = np.empty(values.shape)
            for index in np.ndindex(*values.shape):
                point = mpmath.mpf(float(values[index]))
                along = functools.partial(loss, name, index)
                grad[index] = float(mpmath.diff(along, point))
            gradients[name] = grad
    require_tool("gcc")
    for module in (slstm, request.getfixturevalue("native")):
        _, _, cache = module.forward(problem.parameters, problem.events, **problem.initial)
        grads = module.backward(cache, d_outputs, d_h_last=d_h_last)
        for name, want in gradients.items():
            got = getattr(grads, name)
            assert relative_error(np.reshape(got, want.shape), want) < 1e-12, (module, name)


def test_exp_never_overflows_where_the_unstabilized_form_would(request):
    """Input-gate pre-activations near 1000 (exp(1000) overflows float64; float32 from 89):
    every backend stays finite, the stabilized gates are at most 1, and the outputs are the
    unstabilized recurrence's, evaluated in mpmath where exp(1000) is a number."""
    problem = random_problem("slstm", 4, 3, 2, 3, seed=5)
    parameters = problem.parameters
    parameters.event_input_bias = np.array([1000.0, -1000.0, 300.0])
    parameters.event_forget_bias = np.array([-900.0, 50.0, 0.0])
    with mpmath.workdps(40):
        want, _, _ = _unstabilized(_leaves(problem._replace(parameters=parameters)))
    want = _floats(want)
    require_tool("gcc")
    native = request.getfixturevalue("native")
    for module in (slstm, native):
        for dtype, tolerance in ((np.float64, 1e-13), (np.float32, 1e-5)):
            cast = slstm.Parameters(2, 3, dtype=dtype)
            for name in cast.NAMES:
                setattr(cast, name, getattr(parameters, name).astype(dtype))
            initial = {k: v.astype(dtype) for k, v in problem.initial.items()}
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                outputs, _, cache = module.forward(cast, problem.events.astype(dtype), **initial)
                grads = module.backward(cache, problem.d_outputs.astype(dtype))
            assert relative_error(outputs, want) < tolerance, (module, dtype)
            assert all(np.all(np.isfinite(v)) for v in grads.as_dict().values())
            if module is slstm:
                for name in ("input_stabilized", "forget_stabilized"):
                    assert np.all(cache.saved[name] <= 1), name
                assert np.all(
                    np.maximum(cache.saved["input_stabilized"], cache.saved["forget_stabilized"])
                    == 1
                )
    # The generated PyTorch module (generated/slstm_torch.py), float64 and float32
    torch = require_module("torch")
    from generated import slstm_torch

    for dtype, tolerance in ((torch.float64, 1e-13), (torch.float32, 1e-5)):
        weights = tuple(torch.tensor(a, dtype=dtype) for a in parameters.stacked(np.float64))
        events = torch.tensor(problem.events, dtype=dtype)
        initial = tuple(torch.tensor(problem.states[s], dtype=dtype) for s in "hcnm")
        outputs, _, saved = slstm_torch.forward(events, initial, weights)
        d_outputs = torch.tensor(problem.d_outputs, dtype=dtype)
        grads = slstm_torch.backward(events, initial, weights, None, saved, d_outputs, (None,) * 4)
        assert relative_error(outputs.numpy(), want) < tolerance, dtype
        flat = [grads[0], *grads[1], *grads[2]]
        assert all(bool(torch.isfinite(g).all()) for g in flat if g is not None)


def test_a_tie_in_the_stabilizer_splits_its_adjoint_in_halves_as_torch_maximum():
    """At log f_t + m_{t-1} = i~_t exactly, Max's derivative is 1/2 for each argument in every
    backend (SymPy's Heaviside(0)); torch.maximum's backward agrees."""
    torch = require_module("torch")
    problem = random_problem("slstm", 1, 1, 1, 1, seed=0)
    parameters = problem.parameters
    for side in ("event", "hidden"):
        for gate in ("input", "forget"):
            setattr(
                parameters,
                f"{side}_{gate}_weights",
                np.zeros_like(getattr(parameters, f"{side}_{gate}_weights")),
            )
            setattr(parameters, f"{side}_{gate}_bias", np.zeros(1))
    # i~_1 = 0 and log f_1 + m_0 = log sigma(0) + log 2 = 0: a tie
    initial = dict(problem.initial, m0=np.array([[float(-np.log(0.5))]]))
    log_f_plus_m = -np.logaddexp(0, -0.0) + initial["m0"][0, 0]
    assert log_f_plus_m == 0.0  # the tie is exact in float64
    d_m_last = np.ones((1, 1))
    _, _, cache = slstm.forward(parameters, problem.events, **initial)
    grads = slstm.backward(cache, np.zeros((1, 1, 1)), d_m_last=d_m_last)
    # dL/dm_0 = 1/2 (through log f + m_0) and dL/d(input bias) = 1/2 (through i~), m_T = Max
    assert grads.m0[0, 0] == 0.5 and grads.event_input_bias[0] == 0.5
    a = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    torch.maximum(a, b).sum().backward()
    assert float(a.grad) == float(b.grad) == 0.5


def _official_pointwise():
    """xlstm's vanilla sLSTM step (xlstm/blocks/slstm/src/vanilla/slstm.py), loaded from the
    installed package's file (its package __init__ imports the CUDA kernels' dependencies)."""
    found = importlib.util.find_spec("xlstm")
    if found is None or not found.submodule_search_locations:
        pytest.skip(f"{OPTIONAL} the xlstm package is not installed (pip install --no-deps xlstm)")
    path = f"{found.submodule_search_locations[0]}/blocks/slstm/src/vanilla/slstm.py"
    loader = importlib.util.spec_from_file_location("xlstm_vanilla_slstm", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module.slstm_forward_pointwise


@pytest.mark.parametrize("initial", ["zeros", "random"])
def test_the_official_xlstm_step_gives_our_outputs_and_gradients(initial):
    """xlstm 2.0.6's vanilla step, in float64 with autograd: the same outputs and gradients
    (its stabilizer starts at i~_1 from zero states and its gates are clamped to 1, which
    change neither h nor the gradients of a loss on the outputs)."""
    torch = require_module("torch")
    pointwise = _official_pointwise()
    problem = random_problem("slstm", 5, 3, 4, 6, seed=7)
    parameters = problem.parameters
    w_x, b_x, w_h, b_h = (
        torch.tensor(a, requires_grad=True) for a in parameters.stacked(np.float64)
    )
    events = torch.tensor(problem.events, requires_grad=True)
    states = {
        "zeros": {k: np.zeros_like(v) for k, v in problem.initial.items()},
        "random": problem.initial,
    }[initial]
    h, c, n, m = (torch.tensor(states[f"{s}0"], requires_grad=True) for s in "hcnm")
    state = torch.stack((h, c, n, m))
    outputs = []
    for t in range(events.shape[0]):
        state, _ = pointwise(events[t] @ w_x.T, state[0] @ w_h.T, (b_x + b_h)[None], state, {})
        outputs.append(state[0])
    outputs = torch.stack(outputs)
    (outputs * torch.tensor(problem.d_outputs)).sum().backward()
    got, (_, c_last, n_last, _), cache = slstm.forward(parameters, problem.events, **states)
    assert relative_error(got, outputs.detach().numpy()) < 1e-13
    assert relative_error(c_last / n_last, (state[1] / state[2]).detach().numpy()) < 1e-13
    grads = slstm.backward(cache, problem.d_outputs)
    stacked = abi_arrays(grads, REFERENCE_NAMES, parameters)
    for name, got, tensor in zip(REFERENCE_NAMES, stacked, (w_x, b_x, w_h, b_h), strict=True):
        assert relative_error(got, tensor.grad.numpy()) < 1e-12, name
    for name, tensor in (("events", events), ("h0", h), ("c0", c), ("n0", n), ("m0", m)):
        if initial == "zeros" and name in ("c0", "n0"):
            # From n_0 = 0 the official step takes m_1 = i~_1 and clamps f'_1 to 1, which
            # changes the derivatives at c_0 = n_0 = 0 (not the values: f'_1 multiplies zeros)
            continue
        assert relative_error(getattr(grads, name), tensor.grad.numpy()) < 1e-12, name


@pytest.mark.parametrize("lengths", [None, [5, 1, 3]])
def test_the_hand_written_torch_loop_equals_the_generated_c(native, lengths):
    """lstm_sym/torch/reference.py's sLSTM step (the paper's stabilized equations by hand in
    PyTorch), float64, autograd: outputs, final states and every gradient of the C kernel."""
    torch = require_module("torch")
    from lstm_sym.torch import reference

    problem = random_problem("slstm", 5, 3, 4, 6, seed=11)
    parameters = problem.parameters
    weights = tuple(torch.tensor(a, requires_grad=True) for a in parameters.stacked(np.float64))
    events = torch.tensor(problem.events, requires_grad=True)
    initial = tuple(torch.tensor(problem.states[s], requires_grad=True) for s in "hcnm")
    lengths_t = None if lengths is None else torch.tensor(lengths)
    outputs, finals = reference.run("slstm", events, initial, weights, lengths_t)
    loss = (outputs * torch.tensor(problem.d_outputs)).sum()
    loss = loss + sum((f * torch.tensor(problem.d_lasts[s])).sum() for f, s in zip(finals, "hcnm"))
    loss.backward()
    options = {} if lengths is None else {"lengths": np.asarray(lengths)}
    got, lasts, cache = native.forward(parameters, problem.events, **problem.initial, **options)
    grads = native.backward(cache, problem.d_outputs, **problem.lasts)
    assert relative_error(got, outputs.detach().numpy()) < 1e-12
    for last, final in zip(lasts, finals, strict=True):
        assert relative_error(last, final.detach().numpy()) < 1e-12
    stacked = abi_arrays(grads, REFERENCE_NAMES, parameters)
    for name, got_grad, tensor in zip(REFERENCE_NAMES, stacked, weights, strict=True):
        assert relative_error(got_grad, tensor.grad.numpy()) < 1e-12, name
    assert relative_error(grads.events, events.grad.numpy()) < 1e-12
    for s, tensor in zip("hcnm", initial, strict=True):
        assert relative_error(getattr(grads, f"{s}0"), tensor.grad.numpy()) < 1e-12, s
