"""An autograd trace of a cell's forward pass, for checking the derivation document numerically.

The trace runs the spec's (lowered) forward equations in float64 PyTorch over a random sequence
and lets autograd, not the project's derivation, find the adjoint of every intermediate value
at every step. Each per-step value, adjoint and carry is then available by the names the
derivation's symbols use, so any equation the document prints can be evaluated on it.
"""

from __future__ import annotations

import importlib
from functools import reduce

import numpy as np
import sympy as sp

from lstm_sym.derive import adjoint, carry, derive


class Trace:
    def __init__(self, spec, problem):
        """Trace ``spec``'s forward pass on ``problem`` (tests/problems.py: its parameters,
        events, initial states and cotangents, float64)."""
        import torch

        parameters = problem.parameters
        steps, batch, event_size = problem.events.shape
        self.spec, self.steps, self.batch = spec, steps, batch
        self.event_size, self.hidden_size = event_size, parameters.hidden_size
        d = derive(spec)
        self.derivation = d
        T, B, H = steps, batch, self.hidden_size
        #: A projected state's size (LSTMP's h = W_p m).
        self.projection_size = None if spec.projected_state is None else parameters.projection_size
        self.parameters = {name: getattr(parameters, name) for name in parameters.NAMES}
        self.events = problem.events
        self.initial = dict(problem.states)
        self.cot = problem.cotangents

        leaf = {k: torch.tensor(v, requires_grad=True) for k, v in self.parameters.items()}
        events = torch.tensor(self.events, requires_grad=True)
        initial = {
            s.short: torch.tensor(self.initial[s.short], requires_grad=True) for s in spec.states
        }
        state = dict(initial)
        functions = [
            {
                "sigmoid": torch.sigmoid,
                "tanh": torch.tanh,
                "exp": torch.exp,
                "logsigmoid": torch.nn.functional.logsigmoid,
                "max": torch.maximum,  # Max(a, b) prints as Python's max(a, b)
                "relu": torch.relu,
                "Heaviside": lambda x, at_zero: torch.heaviside(x, torch.full_like(x, at_zero)),
            }
        ]
        recurrent = spec.recurrent_state
        records = []
        outputs = []
        for t in range(T):
            tensors, aliases = {}, {}
            for s in spec.states:
                alias = state[s.short] * 1.0
                alias.retain_grad()
                aliases[s.prev.name] = alias
                if s.projection is None:  # a projected state is no per-unit value
                    tensors[s.prev.name] = alias
            projected = state[recurrent.short] * 1.0
            projected.retain_grad()
            sourced = {}  # gate -> its hidden part's name, computed once its sources are known
            sources = {}  # same-step source -> its copy read by the projections (grad: carry)
            reads = {}  # previous state -> its copy read by the sourced gates' projections
            for gi in d.gate_inputs:
                event_part = (
                    events[t] @ leaf[f"event_{gi.gate}_weights"].T + leaf[f"event_{gi.gate}_bias"]
                )
                if gi.gate in spec.hidden_sources:
                    assert gi.kind in ("event", "hidden"), "a sourced gate has separate parts"
                    if gi.kind == "event":
                        event_part.retain_grad()
                        tensors[gi.symbol.name] = event_part
                    else:
                        sourced[gi.gate] = gi.symbol.name
                    continue
                if not spec.hidden_parts:  # the gate reads the event alone
                    event_part.retain_grad()
                    tensors[gi.symbol.name] = event_part
                    continue
                hidden_part = (
                    projected @ leaf[f"hidden_{gi.gate}_weights"].T + leaf[f"hidden_{gi.gate}_bias"]
                )
                value = {
                    "pre": event_part + hidden_part,
                    "event": event_part,
                    "hidden": hidden_part,
                }[gi.kind]
                value.retain_grad()
                tensors[gi.symbol.name] = value
            for p in spec.unit_parameters:
                # A per-step (B, H) copy: its gradient is this step's per-sample adjoint.
                alias = leaf[p.name].expand(B, H) * 1.0
                alias.retain_grad()
                tensors[p.name] = alias
            prevs = {s.prev.name: s.short for s in spec.states}

            def read(name, tensors=tensors, reads=reads, sources=sources, prevs=prevs):
                """One copy of a source for all projections reading it (of a previous state:
                apart from the per-unit equations' alias, whose gradient is the direct part)."""
                copies = reads if name in prevs else sources
                if name not in copies:
                    copies[name] = (state[prevs[name]] if name in prevs else tensors[name]) * 1.0
                    copies[name].retain_grad()
                return copies[name]

            def project_ready(sourced=sourced, tensors=tensors, read=read):
                """W_hidden_g [s_1, s_2, ...] + b_hidden_g for each gate whose sources are known."""
                for gate, name in list(sourced.items()):
                    names = [s.name for s in spec.sources(gate)]
                    if not all(n in tensors for n in names):
                        continue
                    stacked = torch.cat([read(n) for n in names], dim=1)
                    if len(names) > 1:  # the stacked value the document names
                        stacked.retain_grad()
                        tensors[f"sources_{gate}"] = stacked
                    part = stacked @ leaf[f"hidden_{gate}_weights"].T + leaf[f"hidden_{gate}_bias"]
                    part.retain_grad()
                    tensors[name] = part
                    del sourced[gate]

            project_ready()
            reduced = {}  # reduction -> (stacked vector, mean, variance): its statistics
            for a in d.forward:
                for r in spec.reductions:
                    if r in reduced or not set(r.symbols) & a.expr.free_symbols:
                        continue
                    # mean and rstd of the row (biased variance), as torch.nn.LayerNorm; each
                    # read per unit through a (B, H) copy, whose gradient is the unit's part
                    stacked = torch.cat([tensors[v.name] for v in r.over], dim=1)
                    mean = stacked.mean(dim=1, keepdim=True)
                    variance = (stacked - mean).square().mean(dim=1, keepdim=True)
                    rstd = (variance + float(r.epsilon)) ** -0.5
                    for value in (mean, variance):
                        value.retain_grad()
                    for symbol, value in ((r.mean, mean), (r.rstd, rstd)):
                        alias = value.expand(B, H) * 1.0
                        alias.retain_grad()
                        tensors[symbol.name] = alias
                    reduced[r] = (stacked, mean, variance)
                args = sorted(a.expr.free_symbols, key=lambda s: s.name)
                value = sp.lambdify(args, a.expr, modules=functions)(
                    *(tensors[s.name] for s in args)
                )
                value.retain_grad()
                tensors[a.target.name] = value
                project_ready()
            outs, projections = {}, {}
            for s in spec.states:
                out = tensors[s.unit.name] * 1.0
                out.retain_grad()
                outs[s.unit.name] = out  # its gradient is the carry of s.unit
                if s.projection is not None:  # new = W_p unit
                    out = out @ leaf["projection_weights"].T
                    out.retain_grad()
                    projections[s.new.name] = out
                state[s.short] = out
            outputs.append(state[spec.output_state.short])
            records.append(
                (tensors, aliases, projected, outs, projections, sources, reads, reduced)
            )
        loss = sum(
            (o * torch.tensor(c)).sum() for o, c in zip(outputs, self.cot["outputs"], strict=True)
        )
        for s in spec.states:
            loss = loss + (state[s.short] * torch.tensor(self.cot[s.short])).sum()
        loss.backward()

        def grad(tensor):
            return (
                np.zeros(tuple(tensor.shape)) if tensor.grad is None else tensor.grad.numpy().copy()
            )

        #: Per step (0-based): symbol name -> (B, H) array of values, adjoints and carries.
        self.env: list[dict] = []
        #: Per step: previous-state name -> adjoint through the whole step (projection included).
        self.through: list[dict] = []
        for tensors, aliases, projected, outs, projections, sources, reads, reduced in records:
            env, through = {}, {}
            for name, tensor in tensors.items():
                env[name] = tensor.detach().numpy().copy()
                env[adjoint(sp.Symbol(name)).name] = grad(tensor)
            for name, alias in aliases.items():
                env.setdefault(name, alias.detach().numpy().copy())  # a projected state's too
                env[adjoint(sp.Symbol(name)).name] = grad(alias)  # the per-unit (direct) part
                through[name] = (
                    grad(alias)
                    + (grad(projected) if name == recurrent.prev.name else 0)
                    + (grad(reads[name]) if name in reads else 0)
                )
            for name, out in (outs | sources).items():
                env[carry(sp.Symbol(name)).name] = grad(out)
            for name, out in projections.items():  # a projected state's value and adjoint
                env[name] = out.detach().numpy().copy()
                env[adjoint(sp.Symbol(name)).name] = grad(out)
            for r, (stacked, mean, variance) in reduced.items():
                # The totals: dL/dmean and dL/dvariance of the row (autograd), and what they
                # give each entry of the vector (the vector-Jacobian product of mean and
                # variance, by autograd on a copy)
                env[f"D_{r.mean.name}"] = grad(mean)
                env[f"D_{r.name}_variance"] = grad(variance)
                copy = stacked.detach().clone().requires_grad_(True)
                m = copy.mean(dim=1, keepdim=True)
                parts = torch.autograd.grad(
                    (m, (copy - m).square().mean(dim=1, keepdim=True)),
                    copy,
                    (torch.tensor(grad(mean)), torch.tensor(grad(variance))),
                )[0]
                for k, v in enumerate(r.over):
                    env[f"d_{v.name}_from_{r.name}"] = parts[:, k * H : (k + 1) * H].numpy()
                env[f"{r.name}_v"] = stacked.detach().numpy().copy()
            if reduced:
                env["H"] = H  # the vectors' sizes in the derivation's chain: k H
            self.env.append(env)
            self.through.append(through)
        self.leaf_grads = {k: v.grad.numpy().copy() for k, v in leaf.items()}
        self.leaf_grads["events"] = events.grad.numpy().copy()
        self.leaf_grads.update({f"{k}0": v.grad.numpy().copy() for k, v in initial.items()})

    def kernel(self):
        """Run the generated kernel on the same problem: outputs, finals, gradients (dict)."""
        module = importlib.import_module(f"generated.{self.spec.name}")
        sizes = (self.event_size, self.hidden_size)
        if self.projection_size is not None:
            sizes += (self.projection_size,)
        parameters = module.Parameters(*sizes)
        for name, value in self.parameters.items():
            setattr(parameters, name, value)
        initial = {f"{k}0": v for k, v in self.initial.items()}
        outputs, lasts, cache = module.forward(parameters, self.events, **initial)
        lasts_cot = {f"d_{s.short}_last": self.cot[s.short] for s in self.spec.states}
        grads = module.backward(cache, self.cot["outputs"], **lasts_cot)
        return outputs, lasts, grads.as_dict()


def evaluate_matrix(expr, env: dict, dims: dict):
    """A matrix expression over ``env`` (MatrixSymbol name -> ndarray) with NumPy."""
    if isinstance(expr, sp.MatrixSymbol):
        return env[expr.name]
    if isinstance(expr, sp.Transpose):
        return evaluate_matrix(expr.arg, env, dims).T
    if isinstance(expr, sp.OneMatrix):
        return np.ones((int(expr.rows.subs(dims)), int(expr.cols.subs(dims))))
    if isinstance(expr, sp.MatMul):
        coefficient, matrices = expr.as_coeff_matrices()
        product = reduce(np.matmul, [evaluate_matrix(m, env, dims) for m in matrices])
        return float(coefficient) * product
    if isinstance(expr, sp.MatAdd):
        return sum(evaluate_matrix(a, env, dims) for a in expr.args)
    if isinstance(expr, sp.Trace):
        return np.trace(evaluate_matrix(expr.arg, env, dims))
    if expr.is_Number:
        return float(expr)
    raise TypeError(f"cannot evaluate {type(expr).__name__}: {expr}")
