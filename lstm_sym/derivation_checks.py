r"""The checks behind the derivation document's verification section (``lstm-sym latex``).

Each check runs the generated NumPy kernel (``generated/<cell>.py``) against a reference and
reports the largest relative error over every output and gradient as a *bound*: ``< 1e-14``,
the least power of ten at least :data:`MARGIN` times the error. A measured error is rounding
noise, which differs a little between machines (their BLAS kernels sum in other orders), and
any rounding of it to a printed figure flips somewhere; so when a table is written again the
bound it already prints is kept while it still holds and is at most :data:`KEPT_DECADES` looser
than a fresh one (:func:`kept_bounds`): the table's bytes follow the error only when it moves by
orders of magnitude, not with the machine. References:

* the independent exact model (:mod:`lstm_sym.verify`, SymPy with 40 digits), on full
  sequences and on a padded batch with unsorted ``lengths`` (:data:`LENGTHS_SIZES`);
* central finite differences of the kernel's own forward pass, with and without lengths;
* PyTorch in float64, for the cells with a PyTorch module (:data:`TORCH_REFERENCES`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .codegen.latex_printer import escape_text
from .spec import CellSpec, initial_values

#: Sizes of the exact model: it expands every scalar symbolically, so it stays small.
EXACT_SIZES = {"steps": 3, "batch": 2, "event_size": 2, "hidden_size": 2}
SIZES = {"steps": 5, "batch": 3, "event_size": 4, "hidden_size": 5}
#: Sizes of the exact model's variable-length check: three rows, one of length 1, one of T.
LENGTHS_SIZES = {"steps": 3, "batch": 3, "event_size": 2, "hidden_size": 2}
#: Hidden size of the exact model for cells with reductions (layer norm): normalized over 2
#: units every value is +-1, the gradients through the statistics vanish and the kernel's are
#: rounding noise of cancelling O(1) terms (4e-13 against a tolerance of 1e-12); over 3 they
#: are not (4e-15).
NORMALIZED_HIDDEN_SIZE = 3


@dataclass(frozen=True)
class Row:
    check: str
    reference: str
    sizes: str
    error: float
    tolerance: float

    @property
    def bound(self) -> str:
        return error_bound(self.error, self.tolerance)

    @property
    def passed(self) -> bool:
        return self.error <= self.tolerance


#: A fresh bound is at least this many times the error, so that another machine's rounding
#: (a few times larger or smaller) still satisfies the bound a table prints.
MARGIN = 3.0
#: A table's existing bound is kept while it holds and is at most this many powers of ten above
#: the fresh bound (an error that fell by more than that gets its new, tighter bound).
KEPT_DECADES = 2


def error_bound(error: float, tolerance: float | None = None) -> str:
    """``"0"``, or ``"< 1e-N"``: the least power of ten at least ``MARGIN * error``, and no
    more than the power of ten at or above ``tolerance`` when the error is within it (a check
    that passes never prints a bound above its tolerance)."""
    if error == 0:
        return "0"
    exponent = math.ceil(math.log10(MARGIN * error))
    if tolerance is not None and error < tolerance:
        exponent = min(exponent, math.ceil(math.log10(tolerance)))
    return f"< 1e{exponent:d}"


def _exponent(bound: str) -> int | None:
    """N of ``"< 1eN"`` (None for ``"0"`` or anything else)."""
    if not bound.startswith("< 1e"):
        return None
    try:
        return int(bound[4:])
    except ValueError:
        return None


def printed_bound(row: Row, kept: dict | None = None) -> str:
    """The bound ``row`` prints: the table's existing one for the same check (``kept``, from
    :func:`kept_bounds`) while ``row.error`` is below it and it is at most ``KEPT_DECADES``
    powers of ten above the fresh one (``row.bound``); else the fresh one."""
    fresh = row.bound
    old = (kept or {}).get((_tex(row.check), _tex(row.reference), _tex(row.sizes)))
    if old is None or old == fresh:
        return fresh
    exponent, fresh_exponent = _exponent(old), _exponent(fresh)
    if exponent is None or fresh_exponent is None:  # "0" is kept only for an error of 0
        return fresh
    if row.passed and 10.0**exponent > row.tolerance * (1 + 1e-9):  # above the tolerance
        return fresh
    if row.error < 10.0**exponent and exponent <= fresh_exponent + KEPT_DECADES:
        return old
    return fresh


def kept_bounds(table: str | None) -> dict:
    """``{(check, reference, sizes): bound}`` of the rows of an existing verification table
    (as :func:`verification_tex` writes them; empty for None or a table of another shape)."""
    if not table:
        return {}
    kept = {}
    for line in table.splitlines():
        fields = [f.strip() for f in line.removesuffix("\\\\").split(" & ")]
        if len(fields) != 5 or not line.endswith("\\\\"):
            continue
        check, reference, sizes, bound, _ = fields
        kept[(check, reference, sizes)] = bound.replace("$<$", "<")
    return kept


def kernel(spec: CellSpec):
    return importlib.import_module(f"lstm_sym.kernels.{spec.name}")


def projection_size(spec: CellSpec, hidden_size: int) -> int | None:
    """The projected state's size the checks use, below hidden_size as PyTorch requires
    (None: the cell has no projected state)."""
    return None if spec.projected_state is None else (hidden_size + 1) // 2


def make_parameters(spec: CellSpec, module, event_size: int, hidden_size: int):
    """``module.Parameters`` at the checks' sizes (a projected cell's at projection_size)."""
    projection = projection_size(spec, hidden_size)
    if projection is None:
        return module.Parameters(event_size, hidden_size)
    return module.Parameters(event_size, hidden_size, projection)


def state_sizes(spec: CellSpec, hidden_size: int) -> dict:
    """Entries of each state (by short name) at the checks' sizes."""
    from .verify import state_sizes as sizes

    return sizes(spec, hidden_size, projection_size(spec, hidden_size))


def _relative(values: dict, reference: dict) -> float:
    worst = 0.0
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        got = np.asarray(values[name], dtype=np.float64).reshape(ref.shape)
        scale = max(float(np.max(np.abs(ref))), 1e-300)
        worst = max(worst, float(np.max(np.abs(got - ref))) / scale)
    return worst


def random_problem(spec: CellSpec, seed: int, steps, batch, event_size, hidden_size, module=None):
    """Random parameters (vector biases), events, initial states and cotangents, float64."""
    rng = np.random.default_rng(seed)
    module = module or kernel(spec)
    parameters = make_parameters(spec, module, event_size, hidden_size)
    sizes = state_sizes(spec, hidden_size)
    for name in parameters.NAMES:
        shape = np.shape(getattr(parameters, name))
        if name.endswith("_bias") or not shape:
            shape = (hidden_size,)
        setattr(parameters, name, rng.normal(0.0, 0.6, size=shape))
    events = rng.normal(size=(steps, batch, event_size))
    initial = {
        s.short: initial_values(s, rng.normal(size=(batch, sizes[s.short]))) for s in spec.states
    }
    cot = {"outputs": rng.normal(size=(steps, batch, sizes[spec.output_state.short]))}
    cot.update({s.short: rng.normal(size=(batch, sizes[s.short])) for s in spec.states})
    return parameters, events, initial, cot


def run_kernel(spec, parameters, events, initial, cot, module=None, lengths=None):
    """forward + backward of ``module`` (default: ``generated/<cell>.py``; or a NativeCell);
    ``lengths``: each batch row's number of steps (None: not passed, all T)."""
    module = module or kernel(spec)
    options = {f"{k}0": v for k, v in initial.items()}
    if lengths is not None:
        options["lengths"] = np.asarray(lengths, dtype=np.int64)
    outputs, lasts, cache = module.forward(parameters, events, **options)
    grads = module.backward(
        cache, cot["outputs"], **{f"d_{s.short}_last": cot[s.short] for s in spec.states}
    )
    if len(spec.states) == 1:  # a one-state cell returns its final state, not a tuple
        lasts = (lasts,)
    finals = {s.short: last for s, last in zip(spec.states, lasts, strict=True)}
    return outputs, finals, grads.as_dict()


def loss(spec, parameters, events, initial, cot, module=None, lengths=None) -> float:
    outputs, finals, _ = run_kernel(spec, parameters, events, initial, cot, module, lengths)
    total = float(np.sum(cot["outputs"] * outputs))
    return total + sum(float(np.sum(cot[k] * v)) for k, v in finals.items())


def check_exact(
    spec: CellSpec, module=None, label: str = "generated NumPy, float64", lengths: bool = False
) -> Row:
    """The kernel against the exact model; ``lengths=True``: on a padded batch
    (:data:`LENGTHS_SIZES`, unsorted lengths from :func:`lstm_sym.verify.random_lengths`)."""
    from .verify import ExactModel, random_lengths

    module = module or kernel(spec)
    sizes = LENGTHS_SIZES if lengths else EXACT_SIZES
    if spec.reductions:  # a statistic over 2 units is degenerate (see NORMALIZED_HIDDEN_SIZE)
        sizes = {**sizes, "hidden_size": NORMALIZED_HIDDEN_SIZE}
    projection = projection_size(spec, sizes["hidden_size"])
    drawn = random_lengths(sizes["steps"], sizes["batch"]) if lengths else None
    model = ExactModel(spec, **sizes, seed=0, projection_size=projection, lengths=drawn)
    parameters = make_parameters(spec, module, sizes["event_size"], sizes["hidden_size"])
    for name, value in model.parameters.items():
        setattr(parameters, name, value)
    cot = {
        "outputs": model.cotangents["outputs"],
        **{s.short: model.cotangents[s.short] for s in spec.states},
    }
    outputs, finals, grads = run_kernel(
        spec, parameters, model.events, model.initial, cot, module, drawn
    )
    values = {"outputs": outputs, **{f"final_{k}": v for k, v in finals.items()}, **grads}
    reference = {"outputs": model.outputs, **{f"final_{k}": v for k, v in model.finals.items()}}
    reference.update(model.gradients)
    return Row(
        label if drawn is None else f"{label}, lengths",
        "exact model (SymPy, 40 digits)",
        _sizes(sizes, spec, drawn),
        _relative(values, reference),
        1e-12,
    )


def check_finite_differences(
    spec: CellSpec, directions: int = 8, step: float = 1e-4, module=None, lengths: bool = False
) -> Row:
    """Directional derivatives of the kernel's gradients against a fourth-order stencil of its
    forward pass, each error relative to the sum of the magnitudes of the derivative's terms
    (sum_i |g_i v_i|); ``lengths=True``: on a padded batch with unsorted lengths (the directions
    move the padded events too: their gradient must be zero and their values change nothing)."""
    from .verify import random_lengths

    module = module or kernel(spec)
    parameters, events, initial, cot = random_problem(spec, 1, **SIZES, module=module)
    drawn = random_lengths(SIZES["steps"], SIZES["batch"], seed=1) if lengths else None
    _, _, grads = run_kernel(spec, parameters, events, initial, cot, module, drawn)
    rng = np.random.default_rng(2)
    names = list(parameters.NAMES)
    worst = 0.0
    for _ in range(directions):
        v = {n: rng.normal(size=np.shape(getattr(parameters, n))) for n in names}
        v_events = rng.normal(size=events.shape)
        v_initial = {k: rng.normal(size=a.shape) for k, a in initial.items()}

        def shifted(eps, v=v, v_events=v_events, v_initial=v_initial):
            p = make_parameters(spec, module, SIZES["event_size"], SIZES["hidden_size"])
            for n in names:
                setattr(p, n, getattr(parameters, n) + eps * v[n])
            return loss(
                spec,
                p,
                events + eps * v_events,
                {k: a + eps * v_initial[k] for k, a in initial.items()},
                cot,
                module,
                drawn,
            )

        # Fourth-order central stencil: truncation ~ step**4, rounding ~ 1e-16 / step.
        numeric = (
            8 * (shifted(step) - shifted(-step)) - (shifted(2 * step) - shifted(-2 * step))
        ) / (12 * step)
        terms = [grads[n] * v[n] for n in names] + [grads["events"] * v_events]
        terms += [grads[f"{k}0"] * v_initial[k] for k in initial]
        analytic = sum(float(np.sum(t)) for t in terms)
        # Relative to the sum of the terms' magnitudes, the scale the directional derivative's
        # rounding has (a direction whose terms nearly cancel would otherwise measure noise).
        scale = sum(float(np.sum(np.abs(t))) for t in terms)
        worst = max(worst, abs(numeric - analytic) / max(scale, 1e-300))
    return Row(
        "generated NumPy, float64" if drawn is None else "generated NumPy, float64, lengths",
        f"finite differences ({directions} random directions)",
        _sizes(SIZES, spec, drawn),
        worst,
        1e-8,
    )


def check_float32(spec: CellSpec, module) -> Row:
    """``module`` (a kernel, e.g. the C) in float32 against itself in float64, same inputs."""
    parameters, events, initial, cot = random_problem(spec, 4, **SIZES, module=module)
    as32 = make_parameters(spec, module, SIZES["event_size"], SIZES["hidden_size"])
    for name in parameters.NAMES:
        setattr(as32, name, np.asarray(getattr(parameters, name), dtype=np.float32))
    events32 = events.astype(np.float32)
    initial32 = {k: v.astype(np.float32) for k, v in initial.items()}
    cot32 = {k: v.astype(np.float32) for k, v in cot.items()}
    got = run_kernel(spec, as32, events32, initial32, cot32, module)
    as64 = make_parameters(spec, module, SIZES["event_size"], SIZES["hidden_size"])
    for name in parameters.NAMES:
        setattr(as64, name, getattr(as32, name).astype(np.float64))
    ref = run_kernel(
        spec,
        as64,
        events32.astype(np.float64),
        {k: v.astype(np.float64) for k, v in initial32.items()},
        {k: v.astype(np.float64) for k, v in cot32.items()},
        module,
    )
    values, reference = {}, {}
    for part, (outputs, finals, grads) in (("got", got), ("ref", ref)):
        target = values if part == "got" else reference
        target.update({"outputs": outputs, **{f"final_{k}": v for k, v in finals.items()}, **grads})
    return Row(
        "generated kernel, float32",
        "the same kernel in float64",
        _sizes(SIZES, spec),
        _relative(values, reference),
        1e-4,
    )


def _torch_recurrent(kind: str, spec, parameters, events, initial, cot):
    """``torch.nn.LSTM`` or ``torch.nn.GRU`` in float64, loaded from ``parameters``: their
    weight_ih_l0 / weight_hh_l0 / bias_ih_l0 / bias_hh_l0 are the stacked event weights,
    hidden weights, event biases and hidden biases in the cell's gate order."""
    import torch

    event_size = events.shape[-1]
    hidden = parameters.hidden_size
    projection = getattr(parameters, "projection_size", None)
    recurrent = hidden if projection is None else projection
    options = {} if projection is None else {"proj_size": projection}
    module = getattr(torch.nn, kind)(event_size, hidden, dtype=torch.float64, **options)
    stacked = {
        f"{torch_name}_l0": np.concatenate(
            [np.broadcast_to(getattr(parameters, f"{side}_{g}_{part}"), shape) for g in spec.gates]
        )
        for torch_name, side, part, shape in (
            ("weight_ih", "event", "weights", (hidden, event_size)),
            ("weight_hh", "hidden", "weights", (hidden, recurrent)),
            ("bias_ih", "event", "bias", (hidden,)),
            ("bias_hh", "hidden", "bias", (hidden,)),
        )
    }
    if projection is not None:  # nn.LSTM(proj_size=P): h_t = W_hr (o_t * tanh(c_t))
        stacked["weight_hr_l0"] = np.asarray(parameters.projection_weights)
    with torch.no_grad():
        for name, value in stacked.items():
            getattr(module, name).copy_(torch.from_numpy(value))
    x = torch.tensor(events, requires_grad=True)
    states = {
        s.short: torch.tensor(initial[s.short][None], requires_grad=True) for s in spec.states
    }
    out, finals = module(x, tuple(states.values()) if len(states) > 1 else states["h"])
    finals = dict(zip(states, finals if len(states) > 1 else (finals,), strict=True))
    total = (out * torch.from_numpy(cot["outputs"])).sum()
    for short, final in finals.items():
        total = total + (final[0] * torch.from_numpy(cot[short])).sum()
    total.backward()
    grads = {"events": x.grad.numpy()}
    grads.update({f"{short}0": state.grad[0].numpy() for short, state in states.items()})
    for k, gate in enumerate(spec.gates):
        rows = slice(k * hidden, (k + 1) * hidden)
        for side, torch_name in (("event", "ih"), ("hidden", "hh")):
            grads[f"{side}_{gate}_weights"] = (
                getattr(module, f"weight_{torch_name}_l0").grad[rows].numpy()
            )
            bias = getattr(module, f"bias_{torch_name}_l0")
            grads[f"{side}_{gate}_bias"] = bias.grad[rows].numpy()
    if projection is not None:
        grads["projection_weights"] = module.weight_hr_l0.grad.numpy()
    values = {"outputs": out.detach().numpy()}
    values.update({f"final_{short}": final[0].detach().numpy() for short, final in finals.items()})
    return values, grads


def _torch_lstm(spec, parameters, events, initial, cot):
    return _torch_recurrent("LSTM", spec, parameters, events, initial, cot)


def _torch_gru(spec, parameters, events, initial, cot):
    return _torch_recurrent("GRU", spec, parameters, events, initial, cot)


def _torch_paper(spec, parameters, events, initial, cot):
    """The paper's equations written by hand in PyTorch (``lstm_sym/torch/reference.py``, never
    through the derivation), float64, gradients by torch autograd; for the cells whose gates
    read the event alone (no torch.nn module): stacked event weights and biases, then the
    per-unit parameters, as the C ABI orders them."""
    import torch

    from .torch import reference

    cell = reference.get(spec.name)
    hidden = parameters.hidden_size
    stacked = parameters.stacked(np.float64)  # two arrays, or four with hidden parts
    rest = cell.weights[len(stacked) :]
    arrays = [*stacked, *(getattr(parameters, n) for n in rest)]
    weights = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    x = torch.tensor(events, requires_grad=True)
    states = {s.short: torch.tensor(initial[s.short], requires_grad=True) for s in spec.states}
    out, finals = reference.run(cell, x, tuple(states.values()), tuple(weights))
    finals = dict(zip(states, finals, strict=True))
    total = (out * torch.from_numpy(cot["outputs"])).sum()
    for short, final in finals.items():
        total = total + (final * torch.from_numpy(cot[short])).sum()
    total.backward()
    grads = {"events": x.grad.numpy()}
    grads.update({f"{short}0": state.grad.numpy() for short, state in states.items()})
    for k, gate in enumerate(spec.gates):
        rows = slice(k * hidden, (k + 1) * hidden)
        grads[f"event_{gate}_weights"] = weights[0].grad[rows].numpy()
        grads[f"event_{gate}_bias"] = weights[1].grad[rows].numpy()
        if len(stacked) == 4:
            grads[f"hidden_{gate}_weights"] = weights[2].grad[rows].numpy()
            grads[f"hidden_{gate}_bias"] = weights[3].grad[rows].numpy()
    for name, weight in zip(rest, weights[len(stacked) :], strict=True):
        grads[name] = weight.grad.numpy()
    values = {"outputs": out.detach().numpy()}
    values.update({f"final_{short}": final.detach().numpy() for short, final in finals.items()})
    return values, grads


#: External references by cell name: (description, function returning (values, gradients)).
TORCH_REFERENCES: dict[str, tuple[str, Callable]] = {
    "lstm": ("PyTorch torch.nn.LSTM, float64", _torch_lstm),
    "gru": ("PyTorch torch.nn.GRU, float64", _torch_gru),
    "lstmp": ("PyTorch torch.nn.LSTM(proj_size=P), float64", _torch_lstm),
    "indrnn": ("the paper's equations by hand in PyTorch, float64", _torch_paper),
    "mingru": ("the paper's equations by hand in PyTorch, float64", _torch_paper),
    "minlstm": ("the paper's equations by hand in PyTorch, float64", _torch_paper),
    "lstm_ln": (
        "fastrnns' LayerNormLSTMCell by hand in PyTorch (F.layer_norm), float64",
        _torch_paper,
    ),
}


def check_torch(spec: CellSpec) -> Row | None:
    if spec.name not in TORCH_REFERENCES:
        return None
    description, reference = TORCH_REFERENCES[spec.name]
    parameters, events, initial, cot = random_problem(spec, 3, **SIZES)
    ref_values, ref_grads = reference(spec, parameters, events, initial, cot)
    outputs, finals, grads = run_kernel(spec, parameters, events, initial, cot)
    values = {"outputs": outputs, **{f"final_{k}": v for k, v in finals.items()}, **grads}
    return Row(
        "generated NumPy, float64",
        description,
        _sizes(SIZES, spec),
        _relative(values, {**ref_values, **ref_grads}),
        1e-12,
    )


def _sizes(sizes: dict, spec: CellSpec | None = None, lengths=None) -> str:
    text = "T={steps}, B={batch}, X={event_size}, H={hidden_size}".format(**sizes)
    projection = None if spec is None else projection_size(spec, sizes["hidden_size"])
    text = text if projection is None else f"{text}, P={projection}"
    return text if lengths is None else f"{text}, lengths {','.join(map(str, lengths))}"


class _Scan:
    """A generated module's time-parallel form (``forward_scan``, ``backward_scan``) with the
    kernel interface the checks call (``Parameters``, ``forward``, ``backward``)."""

    def __init__(self, module):
        self.Parameters = module.Parameters
        self.forward, self.backward = module.forward_scan, module.backward_scan


def check_scan(spec: CellSpec) -> list[Row]:
    """The time-parallel form of an affine cell (``forward_scan``/``backward_scan``) against the
    exact model, full and on a padded batch; no rows for a cell without one."""
    if not hasattr(kernel(spec), "forward_scan"):
        return []
    scan = _Scan(kernel(spec))
    return [
        check_exact(spec, scan, "generated NumPy scan, float64"),
        check_exact(spec, scan, "generated NumPy scan, float64", lengths=True),
    ]


def check_c_scan(spec: CellSpec, cell) -> list[Row]:
    """The C's blocked scan of an affine cell (``<cell>_forward_scan``/``<cell>_backward_scan``,
    the loaded cell's ``forward_scan``/``backward_scan``) against the exact model, full and on a
    padded batch; no rows for a cell without one."""
    if "forward_scan" not in cell.functions:
        return []
    scan = _Scan(cell)
    return [
        check_exact(spec, scan, "generated C scan, float64"),
        check_exact(spec, scan, "generated C scan, float64", lengths=True),
    ]


def run_all(spec: CellSpec) -> list[Row]:
    """Every check for ``spec`` (the exact model takes a few seconds; torch is optional)."""
    rows = [
        check_exact(spec),
        check_exact(spec, lengths=True),
        check_finite_differences(spec),
        check_finite_differences(spec, lengths=True),
    ]
    rows += check_scan(spec)
    try:
        import torch  # noqa: F401
    except ImportError as error:
        if spec.name in TORCH_REFERENCES:
            raise RuntimeError(
                f"the verification of {spec.name} compares with PyTorch, which is not installed: "
                "pip install -e '.[test]'"
            ) from error
    row = check_torch(spec)
    if row is not None:
        rows.append(row)
    return rows


def _tex(text: str) -> str:
    return escape_text(text).replace("<", r"$<$")


def verification_tex(
    spec: CellSpec, rows: list[Row], command: str = "lstm-sym latex", previous: str | None = None
) -> str:
    """``derivations/<cell>_verification.tex``: the table. ``previous``: the table as it stands
    (its bounds are kept while they hold, :func:`printed_bound`), so the bytes do not follow a
    machine's rounding."""
    failed = [r for r in rows if not r.passed]
    kept = kept_bounds(previous)
    lines = [
        f"% Generated by lstm_sym ({command}) by running the checks -- DO NOT EDIT.",
        "% Errors are printed as bounds (a power of ten at least 3x the error), kept while they",
        "% hold when the table is written again: the same bytes on every machine.",
        "Each row runs the generated kernel \\texttt{generated/"
        + _tex(spec.name)
        + ".py} and a reference",
        "on the same random problem (random weights, vector biases, events, initial states and",
        "gradients of the loss with respect to the outputs and the final states), and reports the",
        "largest error over the outputs, the final states and every gradient, relative to the",
        "largest magnitude of each quantity. Rows marked \\emph{lengths} run a padded batch:",
        "row $b$ runs its first $\\ell_b$ steps only (the lengths listed, in no sorted order;",
        "Section~\\ref{sec:lengths}), and the reference computes that masked recurrence itself.",
        "\\begin{center}",
        "\\begin{tabular}{lllll}",
        "\\toprule",
        "checked & reference & sizes & max.\\ relative error & tolerance \\\\",
        "\\midrule",
    ]
    for r in rows:
        lines.append(
            f"{_tex(r.check)} & {_tex(r.reference)} & {_tex(r.sizes)} & "
            f"{_tex(printed_bound(r, kept))} & "
            f"{r.tolerance:.0e} \\\\"
        )
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{center}"]
    if spec.name in TORCH_REFERENCES and TORCH_REFERENCES[spec.name][1] is _torch_paper:
        lines.append(
            "The PyTorch row runs the paper's equations, written by hand in PyTorch "
            "(\\texttt{lstm\\_sym/torch/reference.py}, not through the derivation), with the "
            "stacked $W_x$, $b_x$"
            + (", $W_h$, $b_h$" if spec.hidden_parts else "")
            + " and the per-unit parameters; its gradients are torch autograd's."
        )
    elif spec.name in TORCH_REFERENCES:
        lines.append(
            "The PyTorch row loads the stacked matrices of Section~\\ref{sec:notation} into "
            + _tex(TORCH_REFERENCES[spec.name][0].split(",")[0])
            + " (\\texttt{weight\\_ih\\_l0} $= W_x$, \\texttt{weight\\_hh\\_l0} $= W_h$, "
            "\\texttt{bias\\_ih\\_l0} $= b_x$, \\texttt{bias\\_hh\\_l0} $= b_h$"
            + (
                ", \\texttt{weight\\_hr\\_l0} $= W_{\\mathrm{p}}$"
                if spec.projected_state is not None
                else ""
            )
            + ")."
        )
    else:
        lines.append("This cell has no PyTorch counterpart; the exact model is the reference.")
    if failed:
        lines.append("\\textbf{Failed:} " + ", ".join(_tex(r.reference) for r in failed) + ".")
    return "\n".join(lines) + "\n"
