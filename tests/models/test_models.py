"""Models (issue 7) against PyTorch in float64: stacked/bidirectional layers, dropout, the dense
head, losses, optimizers and clipping."""

from __future__ import annotations

import numpy as np
import pytest

from generated import lstm
from lstm_sym.models import (
    SGD,
    Adam,
    Dense,
    Recurrent,
    clip_grad_norm,
    cross_entropy,
    init_uniform,
    mse_loss,
)
from tests.conftest import require_module, require_tool

TOL = 1e-10


def stacked_grad(model, gradients, torch_name):
    """Our per-gate gradients of one PyTorch parameter (e.g. weight_ih_l1_reverse), stacked."""
    kind, _, rest = torch_name.rpartition("_l")
    reverse = rest.endswith("_reverse")
    layer = int(rest.removesuffix("_reverse"))
    if kind == "weight_hr":  # nn.LSTM(proj_size=P): the projection, not gate-stacked
        return gradients[f"l{layer}{'_reverse' if reverse else ''}.projection_weights"]
    side = "event" if kind.endswith("ih") else "hidden"
    what = "weights" if kind.startswith("weight") else "bias"
    prefix = f"l{layer}{'_reverse' if reverse else ''}"
    return np.concatenate(
        [gradients[f"{prefix}.{side}_{gate}_{what}"] for gate in model.cell.GATES]
    )


def max_errors(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    absolute = float(np.max(np.abs(ours - theirs)))
    return absolute, absolute / max(float(np.max(np.abs(theirs))), 1e-300)


CASES = [
    # (torch module, cell, layers, bidirectional, batch_first, batched)
    ("LSTM", "lstm", 1, False, False, True),
    ("LSTM", "lstm", 3, False, False, True),
    ("LSTM", "lstm", 2, True, False, True),
    ("LSTM", "lstm", 3, True, True, True),
    ("LSTM", "lstm", 2, True, False, False),
    ("GRU", "gru", 2, True, False, True),
]


@pytest.mark.parametrize(
    ("kind", "cell", "layers", "bidirectional", "batch_first", "batched"), CASES
)
def test_stacked_bidirectional_outputs_and_all_gradients_match_pytorch(
    kind, cell, layers, bidirectional, batch_first, batched
):
    torch = require_module("torch")
    torch.manual_seed(layers)
    module = getattr(torch.nn, kind)(
        3, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first
    ).double()
    with torch.no_grad():  # beyond the small default init, to exercise saturation
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    model = Recurrent.from_torch(module, cell=cell)
    assert model.batch_first == batch_first and model.num_layers == layers
    directions = 2 if bidirectional else 1
    rng = np.random.default_rng(layers)
    steps, batch = 7, 4
    shape = (batch, steps, 3) if batch_first else (steps, batch, 3)
    if not batched:
        shape = (steps, 3)
    x = rng.normal(size=shape)
    states = len(model.cell.STATES)
    state_shape = (layers * directions, batch, 5) if batched else (layers * directions, 5)
    initial = [rng.normal(size=state_shape) for _ in range(states)]
    out_shape = (*shape[:-1], 5 * directions)
    d_out = rng.normal(size=out_shape)
    d_finals = [rng.normal(size=state_shape) for _ in range(states)]
    pack = (lambda v: tuple(v)) if states > 1 else (lambda v: v[0])

    outputs, finals, cache = model.forward(x, pack(initial))
    grads = model.backward(cache, d_out, pack(d_finals))

    x_t = torch.tensor(x, requires_grad=True)
    initial_t = [torch.tensor(a, requires_grad=True) for a in initial]
    out_t, finals_t = module(x_t, pack(initial_t))
    finals_t = finals_t if states > 1 else (finals_t,)
    finals = finals if states > 1 else (finals,)
    loss = (out_t * torch.tensor(d_out)).sum()
    loss = loss + sum((f * torch.tensor(d)).sum() for f, d in zip(finals_t, d_finals, strict=True))
    loss.backward()

    errors = [max_errors(outputs, out_t), max_errors(grads.inputs, x_t.grad)]
    errors += [max_errors(a, b) for a, b in zip(finals, finals_t, strict=True)]
    d_initial = grads.initial if states > 1 else (grads.initial,)
    errors += [max_errors(a, b.grad) for a, b in zip(d_initial, initial_t, strict=True)]
    for name, parameter in module.named_parameters():
        errors.append(max_errors(stacked_grad(model, grads.parameters, name), parameter.grad))
    assert len(errors) == 2 + 2 * states + 4 * layers * directions
    assert max(a for a, _ in errors) < TOL, errors
    # the exported weights load back into the module unchanged
    exported = model.to_torch_state_dict()
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(exported[key], value.numpy())


@pytest.mark.parametrize("batch_first", [False, True])
def test_projected_stacked_bidirectional_lstm_matches_pytorch(batch_first, tmp_path):
    """nn.LSTM(proj_size=P) imports as the lstmp cell: layer 1 reads P * 2 features, h has
    size P and c size H; outputs, final states and every gradient (weight_hr included) agree."""
    torch = require_module("torch")
    torch.manual_seed(4)
    inputs, hidden, projection, layers = 3, 6, 4, 2
    module = torch.nn.LSTM(
        inputs,
        hidden,
        num_layers=layers,
        bidirectional=True,
        proj_size=projection,
        batch_first=batch_first,
    ).double()
    with torch.no_grad():  # beyond the small default init, to exercise saturation
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    model = Recurrent.from_torch(module)
    assert model.cell.CELL == "lstmp" and model.projection_size == projection
    assert model.output_size == projection and model.state_sizes == (projection, hidden)
    assert model.parameters[1][0].event_size == 2 * projection
    rng = np.random.default_rng(4)
    steps, batch, rows = 7, 4, layers * 2
    x = rng.normal(size=(batch, steps, inputs) if batch_first else (steps, batch, inputs))
    initial = (rng.normal(size=(rows, batch, projection)), rng.normal(size=(rows, batch, hidden)))
    d_out = rng.normal(size=(*x.shape[:-1], 2 * projection))
    d_finals = (rng.normal(size=(rows, batch, projection)), rng.normal(size=(rows, batch, hidden)))

    outputs, finals, cache = model.forward(x, initial)
    grads = model.backward(cache, d_out, d_finals)
    assert outputs.shape == d_out.shape
    assert finals[0].shape == (rows, batch, projection) and finals[1].shape == (rows, batch, hidden)

    x_t = torch.tensor(x, requires_grad=True)
    initial_t = [torch.tensor(a, requires_grad=True) for a in initial]
    out_t, finals_t = module(x_t, tuple(initial_t))
    loss = (out_t * torch.tensor(d_out)).sum()
    loss = loss + sum((f * torch.tensor(d)).sum() for f, d in zip(finals_t, d_finals, strict=True))
    loss.backward()

    errors = [max_errors(outputs, out_t), max_errors(grads.inputs, x_t.grad)]
    errors += [max_errors(a, b) for a, b in zip(finals, finals_t, strict=True)]
    errors += [max_errors(a, b.grad) for a, b in zip(grads.initial, initial_t, strict=True)]
    names = []
    for name, parameter in module.named_parameters():
        names.append(name)
        errors.append(max_errors(stacked_grad(model, grads.parameters, name), parameter.grad))
    assert sum(name.startswith("weight_hr") for name in names) == layers * 2
    assert len(errors) == 2 + 2 * 2 + 5 * layers * 2
    assert max(a for a, _ in errors) < TOL, errors

    # weights round-trip: export into a fresh module, and save / load
    exported = model.to_torch_state_dict()
    assert set(exported) == set(module.state_dict())
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(exported[key], value.numpy())
    fresh = torch.nn.LSTM(
        inputs, hidden, num_layers=layers, bidirectional=True, proj_size=projection
    ).double()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()})
    for key, value in module.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    model.save(tmp_path / "lstmp.npz")
    loaded = Recurrent.load(tmp_path / "lstmp.npz", batch_first=batch_first)
    assert loaded.cell.CELL == "lstmp" and loaded.projection_size == projection
    for name, value in model.named_parameters().items():
        np.testing.assert_array_equal(loaded.named_parameters()[name], value)
    np.testing.assert_array_equal(loaded.forward(x, initial)[0], outputs)
    # from its state dict alone, too
    again = Recurrent.from_torch(module.state_dict(), batch_first=batch_first)
    assert again.cell.CELL == "lstmp"
    np.testing.assert_array_equal(again.forward(x, initial)[0], outputs)


def test_projected_models_built_directly_and_refusals():
    model = Recurrent(3, 6, 2, bidirectional=True, projection_size=4, dropout=0.5, rng=0)
    assert model.cell.CELL == "lstmp" and model.parameters[1][1].event_size == 8
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    outputs, (h, c), cache = model.forward(x)
    assert outputs.shape == (5, 2, 8) and h.shape == (4, 2, 4) and c.shape == (4, 2, 6)
    assert cache.masks[0].shape == (5, 2, 8)
    model.backward(cache, np.ones_like(outputs))
    with pytest.raises(ValueError, match=r"initial \(hidden\) must have shape \(4, 2, 4\)"):
        model.forward(x, (np.zeros((4, 2, 6)), np.zeros((4, 2, 6))))
    with pytest.raises(ValueError, match="the lstm cell has no projection"):
        Recurrent(3, 6, projection_size=4, cell="lstm")
    same = Recurrent.from_parameters(model.parameters)
    assert same.projection_size == 4 and same.parameters[1][0].event_size == 8
    other = Recurrent(3, 6, 2, bidirectional=True, projection_size=5, rng=0)
    with pytest.raises(ValueError, match=r"layer l1 has sizes \(8, 6, 4\), expected \(10, 6, 5\)"):
        Recurrent.from_parameters([other.parameters[0], model.parameters[1]])
    with pytest.raises(
        ValueError, match="projection_size=5: the parameters have projection_size=4"
    ):
        Recurrent.from_parameters(model.parameters, projection_size=5)
    assert Recurrent.from_parameters(model.parameters, projection_size=4).projection_size == 4


def test_dropout_between_layers_matches_pytorch_with_its_own_masks():
    """nn.LSTM(dropout=p) in training mode draws, on CPU, one Bernoulli(1 - p) mask per layer
    but the last (bernoulli_ on a tensor shaped like the layer's output, then / (1 - p)).
    Replaying its generator gives the exact masks; fed to our forward, everything agrees."""
    torch = require_module("torch")
    p, layers, steps, batch, hidden = 0.4, 3, 6, 3, 4
    torch.manual_seed(0)
    module = torch.nn.LSTM(2, hidden, num_layers=layers, bidirectional=True, dropout=p)
    module = module.double().train()
    model = Recurrent.from_torch(module)
    assert model.dropout == p
    x = np.random.default_rng(1).normal(size=(steps, batch, 2))
    d_out = np.random.default_rng(2).normal(size=(steps, batch, 2 * hidden))
    torch.manual_seed(123)
    masks = [
        torch.empty(steps, batch, 2 * hidden, dtype=torch.float64).bernoulli_(1 - p).div_(1 - p)
        for _ in range(layers - 1)
    ]
    masks = [m.numpy() for m in masks]
    assert all(0 < np.mean(m == 0) < 1 for m in masks)
    torch.manual_seed(123)
    x_t = torch.tensor(x, requires_grad=True)
    out_t, _ = module(x_t)
    (out_t * torch.tensor(d_out)).sum().backward()

    outputs, _, cache = model.forward(x, dropout_masks=masks)
    grads = model.backward(cache, d_out)
    assert max_errors(outputs, out_t)[0] < TOL
    assert max_errors(grads.inputs, x_t.grad)[0] < TOL
    for name, parameter in module.named_parameters():
        assert max_errors(stacked_grad(model, grads.parameters, name), parameter.grad)[0] < TOL


def test_dropout_modes_and_masks():
    model = Recurrent(2, 8, 3, dropout=0.5, rng=0)
    x = np.random.default_rng(3).normal(size=(4, 2, 2))
    a, _, cache = model.forward(x)  # training: fresh masks
    assert len(cache.masks) == 2
    assert set(np.unique(cache.masks[0])) <= {0.0, 2.0}
    b, _, _ = model.forward(x)
    assert not np.array_equal(a, b)
    model.eval()
    c, _, cache = model.forward(x)
    d, _, _ = model.forward(x)
    assert cache.masks is None and np.array_equal(c, d)
    ones = [np.ones((4, 2, 8))] * 2
    np.testing.assert_array_equal(model.forward(x, dropout_masks=ones)[0], c)
    assert Recurrent(2, 3, 2, rng=0).forward(x)[2].masks is None  # off by default
    with pytest.raises(ValueError, match=r"dropout_masks\[0\] must have shape \(4, 2, 8\)"):
        model.forward(x, dropout_masks=[np.ones((4, 2, 3))] * 2)
    with pytest.raises(ValueError, match="dropout must be in"):
        Recurrent(2, 3, dropout=1.0)


def test_native_backend_matches_the_numpy_kernels():
    require_tool("gcc", "the C backend compiles generated/lstm.c")
    from lstm_sym import native

    rng = np.random.default_rng(5)
    numpy_model = Recurrent(3, 4, 2, bidirectional=True, rng=7)
    c_model = Recurrent.from_parameters(numpy_model.parameters, cell=native.load("lstm"))
    x = rng.normal(size=(5, 2, 3))
    d_out = rng.normal(size=(5, 2, 8))
    y1, _, cache1 = numpy_model.forward(x)
    y2, _, cache2 = c_model.forward(x)
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-12)
    g1, g2 = numpy_model.backward(cache1, d_out), c_model.backward(cache2, d_out)
    for name, value in g1.parameters.items():
        np.testing.assert_allclose(value, g2.parameters[name], rtol=0, atol=1e-12, err_msg=name)


def test_init_matches_pytorch_default_bounds_and_forget_bias():
    model = Recurrent(3, 16, 2, rng=0, forget_bias=1.0)
    bound = 1 / np.sqrt(16)
    values = np.concatenate(
        [v.ravel() for k, v in model.named_parameters().items() if "forget_bias" not in k]
    )
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound  # the whole interval
    assert abs(values.mean()) < 0.02 and abs(values.var() - bound**2 / 3) < 0.1 * bound**2 / 3
    np.testing.assert_array_equal(model.parameters[1][0].event_forget_bias, 1.0)
    np.testing.assert_array_equal(model.parameters[1][0].hidden_forget_bias, 0.0)
    with pytest.raises(ValueError, match="no forget gate"):
        init_uniform(
            __import__("generated.gru").gru.Parameters(2, 2), np.random.default_rng(0), 1.0
        )
    a = Recurrent(3, 4, rng=11).named_parameters()
    b = Recurrent(3, 4, rng=11).named_parameters()
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded: reproducible


def test_recurrent_save_load_round_trip_and_refusals(tmp_path):
    model = Recurrent(3, 4, 2, bidirectional=True, cell="gru", rng=1)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = Recurrent.load(path)
    assert loaded.cell.CELL == "gru" and loaded.bidirectional and loaded.num_layers == 2
    for name, value in model.named_parameters().items():
        np.testing.assert_array_equal(loaded.named_parameters()[name], value)
    with pytest.raises(ValueError, match="holds a 'gru' model, not a 'lstm' one"):
        Recurrent.load(path, cell="lstm")
    Dense(2, 3, rng=0).save(tmp_path / "dense.npz")
    with pytest.raises(ValueError, match="holds a 'dense' model, not a 'recurrent' model"):
        Recurrent.load(tmp_path / "dense.npz")


def test_recurrent_input_errors():
    model = Recurrent(3, 4, 2)
    with pytest.raises(ValueError, match=r"inputs must have shape \(T, batch, 3\)"):
        model.forward(np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match=r"initial \(cell\) must have shape \(2, 2, 4\)"):
        model.forward(np.zeros((5, 2, 3)), (np.zeros((2, 2, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match="initial must hold 2 array"):
        model.forward(np.zeros((5, 2, 3)), (np.zeros((2, 2, 4)),))
    _, _, cache = model.forward(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"d_outputs must have the shape of outputs \(5, 2, 4\)"):
        model.backward(cache, np.zeros((5, 2, 3)))


# -- dense head and losses ----------------------------------------------------------------------


def test_dense_matches_nn_linear():
    torch = require_module("torch")
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 3).double()
    layer = Dense.from_torch(linear)
    x = np.random.default_rng(0).normal(size=(4, 2, 5))
    d_y = np.random.default_rng(1).normal(size=(4, 2, 3))
    y, cache = layer.forward(x)
    grads, d_x = layer.backward(cache, d_y)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = linear(x_t)
    (y_t * torch.tensor(d_y)).sum().backward()
    assert max_errors(y, y_t)[0] < 1e-13
    assert max_errors(d_x, x_t.grad)[0] < 1e-13
    assert max_errors(grads["weights"], linear.weight.grad)[0] < 1e-13
    assert max_errors(grads["bias"], linear.bias.grad)[0] < 1e-13
    exported = layer.to_torch_state_dict()
    np.testing.assert_array_equal(exported["weight"], linear.weight.detach().numpy())
    np.testing.assert_array_equal(exported["bias"], linear.bias.detach().numpy())
    bound = 1 / np.sqrt(400)
    w = Dense(400, 50, rng=0).weights
    assert w.min() >= -bound and w.max() <= bound and w.max() > 0.9 * bound


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_match_pytorch(reduction):
    torch = require_module("torch")
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 4, 7)) * 5
    logits[0, 0] = [1000.0, -1000.0, 0, 0, 0, 0, 999.0]  # stable: no overflow, no nan
    labels = rng.integers(0, 7, size=(6, 4))
    loss, d_logits = cross_entropy(logits, labels, reduction=reduction)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(
        logits_t.reshape(-1, 7), torch.tensor(labels.reshape(-1)), reduction=reduction
    )
    loss_t.backward()
    assert np.isfinite(loss) and abs(loss - loss_t.item()) <= 1e-12 * abs(loss_t.item())
    assert max_errors(d_logits, logits_t.grad)[0] < 1e-14

    prediction, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    loss, d_prediction = mse_loss(prediction, target, reduction=reduction)
    p_t = torch.tensor(prediction, requires_grad=True)
    loss_t = torch.nn.functional.mse_loss(p_t, torch.tensor(target), reduction=reduction)
    loss_t.backward()
    assert abs(loss - loss_t.item()) <= 1e-13 * abs(loss_t.item())
    assert max_errors(d_prediction, p_t.grad)[0] < 1e-14


def test_loss_errors():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="labels must be integer"):
        cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="target must have the shape"):
        mse_loss(np.zeros(3), np.zeros(4))


# -- optimizers and clipping --------------------------------------------------------------------


def _problem(seed):
    rng = np.random.default_rng(seed)
    shapes = {"a": (4, 3), "b": (3,), "c": (2, 2, 2)}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    grads = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(6)]
    return params, grads


def _run_both(torch, make_ours, make_theirs, seed=0):
    params, grads = _problem(seed)
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours = make_ours(params)
    theirs = make_theirs(list(tensors.values()))
    for step in grads:
        ours.step(step)
        for k, t in tensors.items():
            t.grad = torch.tensor(step[k])
        theirs.step()
    return max(max_errors(params[k], tensors[k])[0] for k in params)


@pytest.mark.parametrize(
    "options",
    [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    ],
)
def test_sgd_matches_torch(options):
    torch = require_module("torch")
    error = _run_both(
        torch, lambda p: SGD(p, **options), lambda p: torch.optim.SGD(p, foreach=False, **options)
    )
    assert error < 1e-12


@pytest.mark.parametrize(
    "options",
    [
        {"lr": 0.01},
        {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
        {"lr": 0.01, "amsgrad": True},
    ],
)
def test_adam_matches_torch(options):
    torch = require_module("torch")
    error = _run_both(
        torch, lambda p: Adam(p, **options), lambda p: torch.optim.Adam(p, foreach=False, **options)
    )
    assert error < 1e-12
    # torch's default implementation choice on CPU agrees as well
    error = _run_both(torch, lambda p: Adam(p, **options), lambda p: torch.optim.Adam(p, **options))
    assert error < 1e-12


@pytest.mark.parametrize(
    ("max_norm", "norm_type"), [(1.0, 2.0), (100.0, 2.0), (0.5, np.inf), (2.0, 1.0)]
)
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch = require_module("torch")
    _, grads = _problem(1)
    ours = {k: v.copy() for k, v in grads[0].items()}
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in grads[0].values()]
    for t, v in zip(tensors, grads[0].values(), strict=True):
        t.grad = torch.tensor(v.copy())
    total = clip_grad_norm(ours, max_norm, norm_type)
    total_t = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type, foreach=False)
    assert abs(total - total_t.item()) <= 1e-13 * total_t.item()
    for v, t in zip(ours.values(), tensors, strict=True):
        assert max_errors(v, t.grad)[0] < 1e-14


def test_optimizer_errors():
    params = {"w": np.zeros(3)}
    with pytest.raises(ValueError, match=r"missing \['w'\], unexpected \['x'\]"):
        SGD(params, lr=0.1).step({"x": np.zeros(3)})
    with pytest.raises(ValueError, match=r"gradient w must have shape \(3,\)"):
        Adam(params).step({"w": np.zeros(4)})
    with pytest.raises(TypeError, match="parameter w must be a floating ndarray"):
        SGD({"w": np.zeros(3, dtype=int)}, lr=0.1)
    with pytest.raises(FloatingPointError, match="non-finite"):
        clip_grad_norm({"w": np.array([np.inf])}, 1.0, error_if_nonfinite=True)


def test_a_model_trains_in_place_through_named_parameters():
    """The optimizer updates the model's live arrays: generated Parameters see the change."""
    model = Recurrent(2, 3, rng=0)
    optimizer = SGD(model.named_parameters(), lr=0.5)
    x = np.random.default_rng(0).normal(size=(4, 2))
    before = model.parameters[0][0].event_update_weights.copy()
    outputs, _, cache = model.forward(x)
    optimizer.step(model.backward(cache, np.ones_like(outputs)).parameters)
    assert not np.array_equal(model.parameters[0][0].event_update_weights, before)
    assert isinstance(model.parameters[0][0], lstm.Parameters)
