"""The implementations the benchmark times, each as two zero-argument callables.

Every implementation runs the same LSTM (same weights, inputs and output adjoints) and offers
``forward()`` (a training forward pass: the activations needed by backward are kept) and
``train()`` (forward then backward, all gradients: weights, biases, inputs, initial states);
those with an inference path also ``infer()`` (the forward without a cache: ours with
``cache=False``, the C on prepared parameters; PyTorch's ``nn.LSTM`` under ``torch.no_grad``)
and ``stream()`` (one step of one sequence, B = 1, from the previous state: our ``step``,
``nn.LSTMCell`` under ``torch.no_grad``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Implementation names in table order.
ALL = ("numpy", "c", "c-blas", "torch", "seed")
DEFAULT = ("numpy", "c", "c-blas", "torch", "seed")
LABELS = {
    "numpy": "generated NumPy",
    "c": "generated C",
    "c-blas": "generated C + OpenBLAS",
    "torch": "PyTorch nn.LSTM",
    "seed": "seed-style NumPy",
}


class Unavailable(RuntimeError):  # noqa: N818 - reads as `except Unavailable`
    """An implementation cannot run here (no torch, no C compiler, no BLAS wheel)."""


@dataclass
class Workload:
    forward: Callable[[], object]
    train: Callable[[], object]
    infer: Callable[[], object] | None = None
    stream: Callable[[], object] | None = None


#: The timed kinds of call, in the order the worker times them.
KINDS = ("forward", "train", "infer", "stream")


@dataclass(frozen=True)
class Problem:
    batch: int
    steps: int
    event_size: int
    hidden_size: int
    dtype: str  # "f32" or "f64"

    @property
    def np_dtype(self):
        return np.dtype(np.float32 if self.dtype == "f32" else np.float64)

    def flops(self, train: bool) -> float:
        """Matrix-product flops (pointwise work not counted): 2 per multiply-add.

        Forward: Z = X W_x^T + H W_h^T over all steps, 2 T B 4H (X + H). Backward: dH = Delta
        W_h and dX = Delta W_x, dW_x = Delta^T X and dW_h = Delta^T H, 2 T B 4H 2 (X + H).
        """
        forward = (
            2.0
            * self.steps
            * self.batch
            * 4
            * self.hidden_size
            * (self.event_size + self.hidden_size)
        )
        return 3 * forward if train else forward

    def step_flops(self) -> float:
        """Matrix-product flops of one streaming step (B = 1): 2 * 4H (X + H)."""
        return 2.0 * 4 * self.hidden_size * (self.event_size + self.hidden_size)


def _data(problem: Problem, seed: int = 0):
    from lstm_sym.kernels import lstm

    rng = np.random.default_rng(seed)
    dtype = problem.np_dtype
    x, h = problem.event_size, problem.hidden_size
    scale = 1.0 / np.sqrt(h)
    parameters = lstm.Parameters(x, h, dtype=dtype)
    for gate in lstm.GATES:
        for side, width in (("event", x), ("hidden", h)):
            setattr(
                parameters,
                f"{side}_{gate}_weights",
                rng.uniform(-scale, scale, (h, width)).astype(dtype),
            )
            setattr(parameters, f"{side}_{gate}_bias", rng.uniform(-scale, scale, h).astype(dtype))
    shape = (problem.steps, problem.batch)
    events = rng.normal(size=(*shape, x)).astype(dtype)
    h0, c0 = rng.normal(size=(2, problem.batch, h)).astype(dtype)
    d_outputs = rng.normal(size=(*shape, h)).astype(dtype)
    return parameters, events, h0, c0, d_outputs


def _module_workload(module, problem: Problem, prepare=None) -> Workload:
    """``module``: a generated module or a native cell; ``prepare``: the native cell's
    ``prepare`` (inference and steps then read the prepared parameters)."""
    parameters, events, h0, c0, d_outputs = _data(problem)
    ready = parameters if prepare is None else prepare(parameters)
    event, state = events[0, :1], (h0[:1], c0[:1])  # one sequence's first step

    def forward():
        return module.forward(parameters, events, h0, c0)

    def train():
        _, _, cache = module.forward(parameters, events, h0, c0)
        return module.backward(cache, d_outputs)

    def infer():
        return module.forward(ready, events, h0, c0, cache=False)

    def stream():
        return module.step(ready, event, state)

    return Workload(forward, train, infer, stream)


def _numpy(problem: Problem) -> Workload:
    from lstm_sym.kernels import lstm

    return _module_workload(lstm, problem)


def _c(problem: Problem, blas: bool = False, threads: int = 1) -> Workload:
    from .. import native

    try:
        # OpenBLAS runs its own threads; the plain build shares its products' tiles among
        # OpenMP threads when there are several
        cell = native.load("lstm", blas=True) if blas else native.load("lstm", openmp=threads > 1)
    except (native.NativeBuildError, ImportError, TypeError) as error:
        raise Unavailable(str(error).splitlines()[0]) from error
    return _module_workload(cell, problem, prepare=cell.prepare)


def _torch(problem: Problem) -> Workload:
    try:
        import torch
    except ImportError as error:
        raise Unavailable("torch is not installed") from error
    parameters, events, h0, c0, d_outputs = _data(problem)
    tdtype = torch.float32 if problem.dtype == "f32" else torch.float64
    module = torch.nn.LSTM(problem.event_size, problem.hidden_size).to(tdtype)
    with torch.no_grad():
        stacked = parameters.stacked(problem.np_dtype)
        for name, value in zip(
            ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0"), stacked, strict=True
        ):
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    x = torch.from_numpy(events).requires_grad_(True)
    state = (
        torch.from_numpy(h0)[None].requires_grad_(True),
        torch.from_numpy(c0)[None].requires_grad_(True),
    )
    d_out = torch.from_numpy(d_outputs)

    def forward():
        return module(x, state)

    def train():
        for p in (*module.parameters(), x, *state):
            p.grad = None
        outputs, _ = module(x, state)
        outputs.backward(d_out)
        return module.weight_hh_l0.grad

    plain_x = torch.from_numpy(events)
    plain_state = (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None])

    def infer():
        with torch.no_grad():
            return module(plain_x, plain_state)

    cell = torch.nn.LSTMCell(problem.event_size, problem.hidden_size).to(tdtype)
    with torch.no_grad():
        for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"):
            getattr(cell, name).copy_(getattr(module, f"{name}_l0"))
    event = torch.from_numpy(events[0, :1].copy())
    step_state = (torch.from_numpy(h0[:1].copy()), torch.from_numpy(c0[:1].copy()))

    def stream():
        with torch.no_grad():
            return cell(event, step_state)

    return Workload(forward, train, infer, stream)


def _seed(problem: Problem) -> Workload:
    from . import seed_style

    parameters, events, h0, c0, d_outputs = _data(problem)
    weights = seed_style.Weights(parameters, problem.np_dtype)

    def forward():
        return seed_style.forward(weights, events, h0, c0)

    def train():
        _, _, steps = seed_style.forward(weights, events, h0, c0)
        return seed_style.backward(weights, steps, d_outputs)

    return Workload(forward, train)


def build(name: str, problem: Problem, threads: int = 1) -> Workload:
    """The workload of implementation ``name`` on ``problem`` with ``threads`` threads (raises
    :class:`Unavailable`)."""
    if name == "numpy":
        return _numpy(problem)
    if name == "c":
        return _c(problem, threads=threads)
    if name == "c-blas":
        return _c(problem, blas=True)
    if name == "torch":
        return _torch(problem)
    if name == "seed":
        return _seed(problem)
    raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(ALL)}")
