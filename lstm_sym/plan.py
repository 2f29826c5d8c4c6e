"""The kernel plan: layout decisions made once, between the derivation and the emitters.

:func:`plan` turns a :class:`~lstm_sym.derive.Derivation` into frozen data every emitter reads
(NumPy, C, LaTeX) and the binding's ABI can export (:meth:`KernelPlan.buffer_table`):

- :attr:`KernelPlan.buffers` -- every array with its symbolic shape in the sizes ``T`` (steps),
  ``B`` (batch), ``X`` (event), ``H`` (hidden), ``P`` (projection) and its role: the arguments
  and results of the entry points, the state sequences, the saved values, the event
  projections, the deltas and the per-step scratch;
- :attr:`KernelPlan.saved` -- one :class:`SavedSlot` per saved value: a part of the ``saved``
  buffer, or the sequence of the state it is the new value of (from index 1 on, not a copy);
- the matrix products: the event projection, the gates reading the recurrent state
  (:attr:`KernelPlan.recurrent_runs`), each run of gates reading the same hidden sources
  (:attr:`KernelPlan.runs`: the grouping, decided here and nowhere else), and over all steps
  the event projection and the weight gradients (:attr:`KernelPlan.products`);
- the per-unit stages of one step (:attr:`KernelPlan.forward_step`,
  :attr:`KernelPlan.backward_step`): :class:`Stage` objects (ordered assignments and the values
  they deliver) with the :class:`Run` products between them, in the spirit of pystencils'
  assignment collections and Devito's lowering stages. Liveness comes from ``free_symbols``.

Buffers are logical: how a backend places them in memory is its own (the NumPy module allocates
``saved`` and ``event_projection`` as one array and writes ``delta_event`` over the event
projections; the C kernels carve them out of the caller's cache).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import sympy as sp

from . import reductions
from .derive import Assignment, Derivation, adjoint, derive
from .spec import CellSpec, Normalization, SpecError, State, gate_event, gate_hidden

#: The sizes every shape is written in: steps, batch, event, hidden, projection.
T, B, X, H, P = sp.symbols("T B X H P", integer=True, positive=True)
SIZES = {"T": T, "B": B, "X": X, "H": H, "P": P}

#: The names the kernels and their API give the sizes.
SIZE_NAMES = {X: "event_size", H: "hidden_size", P: "projection_size", T: "steps", B: "batch"}

#: The hidden size as the kernels name it: the per-unit stages of a cell with reductions read
#: it (1/n of a mean over n = k H entries).
HIDDEN_SIZE = sp.Symbol(SIZE_NAMES[H], integer=True, positive=True)

#: Roles of the arrays the entry points take or return (the ABI); the others are internal.
#: ``lengths`` is the one integer array: each batch row's number of steps (see :class:`Masking`).
ABI_ROLES = (
    "input",
    "lengths",
    "parameter",
    "initial_state",
    "output",
    "final_state",
    "adjoint",
    "gradient",
)


@dataclass(frozen=True)
class Buffer:
    """One array: ``name``, ``role`` (see :data:`ABI_ROLES` and the module docstring), its
    ``shape`` as SymPy expressions in ``T, B, X, H, P`` and one line saying what it holds."""

    name: str
    role: str
    shape: tuple[sp.Expr, ...]
    doc: str = ""

    @property
    def abi(self) -> bool:
        return self.role in ABI_ROLES

    def evaluate(self, **sizes: int) -> tuple[int, ...]:
        """The concrete shape at ``sizes`` (``T=..., B=..., X=..., H=..., P=...``)."""
        values = {SIZES[k]: v for k, v in sizes.items()}
        return tuple(int(sp.sympify(n).xreplace(values)) for n in self.shape)

    def shape_text(self) -> str:
        """The shape as text, e.g. ``(T + 1, B, H)``."""
        inner = ", ".join(sp.sstr(n) for n in self.shape)
        return f"({inner},)" if len(self.shape) == 1 else f"({inner})"


@dataclass(frozen=True)
class SavedSlot:
    """Where the forward pass keeps a value the backward pass reads, (T, B, H) over the steps.

    ``state``: the name of the state whose new value it is (the slot is that state's sequence
    from index 1 on); otherwise ``index`` is its part of the ``saved`` buffer. ``per_step``:
    the per-unit backward reads it at every step (a projection's vector only feeds a weight
    gradient, a same-step source only its run's weight gradient and the backward's stages).
    """

    symbol: sp.Symbol
    state: str | None
    index: int | None
    per_step: bool


@dataclass(frozen=True)
class Run:
    """One matrix product of a step: consecutive gates reading the same hidden sources,
    ``Z = [s_1, s_2, ...] W^T + b`` for the gates ``gates`` (columns ``first`` to
    ``first + len(gates)`` in gate blocks), ``dW = Delta^T [S_1, S_2, ...]`` over all steps and,
    per step, ``[ds_1, ds_2, ...] = Delta W`` split in column blocks.

    ``sources``: what the product reads, in column-block order (the recurrent state for a run
    of :attr:`KernelPlan.recurrent_runs`); ``unit``: a source is a value of the same step, so the
    product runs between the per-unit stages; ``offset``: where the run's hidden weights start
    in the one-gate-after-the-other layout, in (H x H) blocks; ``gathered_by``: the index of the
    first run reading the same sources (they are put side by side once per step).
    """

    index: int
    gates: tuple[str, ...]
    first: int
    sources: tuple[sp.Symbol, ...]
    unit: bool
    offset: int
    gathered_by: int

    @property
    def width(self) -> int:
        """Column blocks of the run's hidden weights: one per source."""
        return len(self.sources)


@dataclass(frozen=True)
class Product:
    """A matrix product over all steps at once: the event projection ``Z = X W^T + b`` or a
    weight gradient ``dW = Delta^T X`` (matrix calculus, :func:`~lstm_sym.derive.linear_adjoints`).
    ``name`` is what it computes, ``kind`` ``event_projection`` or ``weight_gradient``, ``gates``
    the gate blocks it covers, ``reads`` the buffers it reads. ``shared``: the event and hidden
    weight gradients come from one packing of the deltas (every gate adds its two parts and
    reads the recurrent state alone)."""

    name: str
    kind: str
    gates: tuple[str, ...]
    reads: tuple[str, ...]
    shared: bool = False


@dataclass(frozen=True)
class DeltaSlot:
    """Where the backward step writes the adjoint of one gate input: its gate's slice of the
    delta buffers ``targets`` (both for a pre-activation of a cell whose other gates use the
    two parts apart). ``direct``: the adjoint is a value of the chain that is this slot's alone,
    so the chain can write it straight into the slot."""

    symbol: sp.Symbol
    gate: str
    kind: str
    adjoint: sp.Expr
    targets: tuple[str, ...]
    direct: bool
    #: Bound after the product of a run reading a same-step source (the second forward stage).
    after_run: bool


@dataclass(frozen=True)
class Stage:
    """One per-unit stage of a step: ordered ``assignments`` and the values it delivers.

    ``outputs``: the values the stage must produce (stored into buffers or read after it);
    ``read_after``: the symbols code after the stage reads (a product, the next stage, a store
    of a value not written in place): an assignment of one of them must be bound to a name.
    """

    name: str
    assignments: tuple[Assignment, ...]
    outputs: tuple[sp.Symbol, ...]
    read_after: frozenset = field(default_factory=frozenset)

    def needed(self, wanted=None) -> tuple[Assignment, ...]:
        """The assignments ``wanted`` (default: the outputs) depend on, in order: the stage
        without the subexpressions no output reads (decided from ``free_symbols``)."""
        wanted = set(self.outputs) | self.read_after if wanted is None else set(wanted)
        keep = []
        for a in reversed(self.assignments):
            if a.target in wanted:
                keep.append(a)
                wanted |= a.expr.free_symbols
        return tuple(keep[::-1])

    def live(self) -> Stage:
        """This stage without the assignments no output depends on."""
        return replace(self, assignments=self.needed())

    def reads(self, assignments=None) -> frozenset:
        """Every symbol ``assignments`` (default: the stage's) read."""
        chosen = self.assignments if assignments is None else assignments
        return frozenset().union(*(a.expr.free_symbols for a in chosen))

    def read_later(self, index: int) -> bool:
        """True when assignment ``index``'s target is read by a later assignment of the stage or
        after the stage: it needs a name even when it is written straight into a buffer."""
        target = self.assignments[index].target
        later = self.assignments[index + 1 :]
        return target in self.read_after or any(target in a.expr.free_symbols for a in later)


@dataclass(frozen=True)
class StateLayout:
    """A state as the kernels lay it out: ``size`` H or P (a projected state), its sequence
    buffer ``sequence`` ((T + 1, B, size), index 0 the initial state)."""

    state: State
    size: sp.Symbol
    sequence: str
    is_output: bool
    is_recurrent: bool

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def projected(self) -> bool:
        return self.state.projection is not None


@dataclass(frozen=True)
class Projection:
    """A projected state's matrix products, one step at a time (SymPy matrix calculus of
    ``Z = X W^T``, the derivation's ``projection``): forward ``new = unit W^T`` reads the
    per-unit vector ``unit`` (B x H) and ``weights`` (P x H); backward ``d_unit = d_new W`` and
    ``dW += d_new^T unit``, ``unit`` read back from its ``saved`` slot. The per-unit stages write
    ``unit`` and read its adjoint where another state's sequence and adjoint would be.
    ``recurrent``: the projected state is the one the hidden projections read, so its adjoint
    from later steps is used up by this product and back-propagation through time starts it
    from zero."""

    state: StateLayout
    unit: sp.Symbol
    weights: Buffer
    saved: SavedSlot
    recurrent: bool


@dataclass(frozen=True)
class Masking:
    """Variable-length batches, decided once for every backend: row ``b`` runs
    ``lengths[b]`` steps (``1 <= lengths[b] <= T``, any order; no lengths: all ``T``), as
    PyTorch's packed sequences.

    Forward, at a step ``t >= lengths[b]`` (row ``b`` *finished*): the states of ``carried``
    (every state sequence) keep their previous value, the arrays of ``zeroed`` (the outputs) hold
    exactly zero; the final states are then each row's state after its own last step. The
    inputs of ``unread`` (the events) are never read at padded positions: the kernels' copy
    holds zeros there (NumPy), or nothing of them is kept (C), so a NaN there reaches nothing.

    Backward, at a finished step: the adjoints of ``ignored`` (``d_outputs``) have no effect
    (the outputs there are constants), the deltas of ``zero_deltas`` are zero for the row (so
    the weight gradients ``Delta^T X`` and the event gradients get nothing from it), and each
    state's adjoint of ``passed`` goes through unchanged: ``d_state_{t-1} = d_state_t``. A
    backend gets the zero deltas from zero carries into the step (the per-unit backward is
    linear in them) and restores the passed adjoints after it.
    """

    lengths: Buffer
    carried: tuple[str, ...]
    zeroed: tuple[str, ...]
    unread: tuple[str, ...]
    ignored: tuple[str, ...]
    zero_deltas: tuple[str, ...]
    passed: tuple[str, ...]
    #: The labels of the masked update's equations in the derivation document (its section
    #: sec:lengths), which the C blocks cite: forward's kept states, backward's passed adjoints.
    label: str = "eq:masked-state"
    adjoint_label: str = "eq:masked-pass"


@dataclass(frozen=True)
class Statistics:
    """One reduction over units in the forward step (:class:`~lstm_sym.spec.Normalization`):
    per row, ``mean`` of the ``size`` entries of the stacked vector and
    ``rstd = rstd_expr(variance)`` of their biased variance, computed in two passes (the mean,
    then the mean of the squared deviations from it: what ``torch.nn.LayerNorm`` does).

    ``buffer``: the vector is a row of that buffer as it stands (``event_projection`` of the
    step, ``hidden_projection``: every gate's event or hidden part in gate order, the stacked
    G H projection); None: the per-unit values ``over`` side by side. ``mean_slot``,
    ``rstd_slot``: their index in the ``statistics`` buffer when the backward reads them (None:
    not saved)."""

    reduction: Normalization
    size: sp.Expr
    buffer: str | None
    variance: sp.Symbol
    rstd_expr: sp.Expr
    mean_slot: int | None
    rstd_slot: int | None

    @property
    def over(self) -> tuple[sp.Symbol, ...]:
        return self.reduction.over

    @property
    def mean(self) -> sp.Symbol:
        return self.reduction.mean

    @property
    def rstd(self) -> sp.Symbol:
        return self.reduction.rstd


@dataclass(frozen=True)
class Reduce:
    """Forward: the reductions over units at one stage boundary, between per-unit stages;
    each row's statistics, then the next stage reads them (one value for all its units)."""

    name: str
    statistics: tuple[Statistics, ...]


@dataclass(frozen=True)
class Total:
    """Backward through one reduction (:class:`~lstm_sym.reductions.ReductionAdjoint`): the
    stage before delivered each unit's ``d_mean`` and ``d_rstd``; per row
    ``total_mean = sum_u d_mean`` and ``total_variance = variance_factor * sum_u d_rstd``
    (sums over the H units of the row), which the next stage reads."""

    reduction: Normalization
    d_mean: sp.Symbol
    d_rstd: sp.Symbol
    total_mean: sp.Symbol
    total_variance: sp.Symbol
    variance_factor: sp.Expr


@dataclass(frozen=True)
class Totals:
    """Backward: the totals of the reductions at one stage boundary (see :class:`Total`)."""

    name: str
    totals: tuple[Total, ...]


@dataclass(frozen=True)
class KernelPlan:
    """Frozen layout of one cell's kernels; see the module docstring."""

    derivation: Derivation
    gates: tuple[str, ...]
    states: tuple[StateLayout, ...]
    buffers: tuple[Buffer, ...]
    saved: tuple[SavedSlot, ...]
    #: Gates whose hidden projection reads the recurrent state, in runs of consecutive gates.
    recurrent_runs: tuple[Run, ...]
    #: Gates with ``hidden_sources``: runs of consecutive gates reading the same sources.
    runs: tuple[Run, ...]
    #: Column blocks of each gate's hidden weights (the number of sources it reads).
    blocks: tuple[int, ...]
    #: Stages of one forward step, in order: :class:`Stage` and :class:`Run` (a product between).
    forward_step: tuple
    #: Stages of one backward step, in order (the second forward stage's adjoints come first).
    backward_step: tuple
    #: The products over all steps: the event projection and the weight gradients.
    products: tuple[Product, ...]
    #: Per gate input, where its adjoint goes (in gate-input order).
    deltas: tuple[DeltaSlot, ...]
    #: The ``Parameters`` attributes users set, one array each: per gate (role
    #: ``gate_attribute``, stacked by gate in the kernels) ``{event,hidden}_<gate>_{weights,bias}``
    #: (a bias may be a scalar), then (role ``attribute``, an array of their own) the per-unit
    #: parameters and a projection's weights.
    attributes: tuple[Buffer, ...]
    #: The projected states' products (none for a cell without a projected state).
    projections: tuple[Projection, ...] = ()
    #: Variable-length batches: what a finished row keeps, zeroes and passes through.
    masking: Masking | None = None
    #: The reductions' statistics the backward reads, per row and step: parts of the
    #: ``statistics`` buffer ((n, T, B)); ``index`` is the part (none without reductions).
    statistics: tuple[SavedSlot, ...] = ()

    @property
    def reductions(self) -> bool:
        """The step has reductions over units (:class:`Reduce`, :class:`Totals` items)."""
        return bool(self.derivation.spec.reductions)

    @property
    def spec(self) -> CellSpec:
        return self.derivation.spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def summed(self) -> bool:
        """Every gate adds its event and hidden parts: one pre-activation, one delta."""
        return self.derivation.summed

    @property
    def hidden(self) -> bool:
        """Some gate has a hidden part (:attr:`~lstm_sym.spec.CellSpec.hidden_parts`); False: no
        hidden weights, biases, projection or product at all, the gates read the event alone."""
        return self.spec.hidden_parts

    @property
    def projected(self) -> StateLayout | None:
        return next((s for s in self.states if s.projected), None)

    @property
    def gate_deltas(self) -> tuple[str, ...]:
        """The delta buffers the per-unit backward writes the gates' adjoints into:
        ``delta_event`` alone when every gate adds its two parts (it is both parts' delta),
        else ``delta_event`` and ``delta_hidden``."""
        targets = {t for d in self.deltas for t in d.targets}
        return tuple(b.name for b in self.buffers if b.role == "delta" and b.name in targets)

    @property
    def sizes(self) -> tuple[sp.Symbol, ...]:
        """The sizes the buffers' shapes are written in, in the order ``T, B, X, H, P`` (``P``
        only with a projected state): the size arguments of the entry points."""
        used = set().union(*(sp.Tuple(*b.shape).free_symbols for b in self.buffers))
        return tuple(size for size in SIZES.values() if size in used)

    @property
    def output(self) -> StateLayout:
        return next(s for s in self.states if s.is_output)

    @property
    def recurrent(self) -> StateLayout:
        return next(s for s in self.states if s.is_recurrent)

    @property
    def recurrent_gates(self) -> tuple[str, ...]:
        return tuple(g for run in self.recurrent_runs for g in run.gates)

    @property
    def wide(self) -> bool:
        """Some gate's hidden weights have more than one column block."""
        return any(b != 1 for b in self.blocks)

    @property
    def stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.forward_step + self.backward_step if isinstance(s, Stage))

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def buffer(self, name: str) -> Buffer:
        return next(b for b in self.buffers if b.name == name)

    def product(self, name: str) -> Product:
        return next(p for p in self.products if p.name == name)

    def attribute(self, name: str) -> Buffer:
        return next(b for b in self.attributes if b.name == name)

    def slot(self, symbol: sp.Symbol) -> SavedSlot:
        return next(s for s in self.saved if s.symbol == symbol)

    @property
    def own_saved(self) -> int:
        """Parts of the ``saved`` buffer: the saved values that are not a state's new value."""
        return sum(s.state is None for s in self.saved)

    def covered(self, delta: str) -> bool:
        """True when every step writes every gate's slice of delta buffer ``delta`` (it needs
        no zeros first)."""
        written = {d.gate for d in self.deltas if delta in d.targets}
        return all(g in written for g in self.gates)

    def run_of(self, gate: str) -> Run:
        """The product computing gate ``gate``'s hidden part."""
        return next(r for r in self.recurrent_runs + self.runs if gate in r.gates)

    def sources_of(self, gate: str) -> tuple[sp.Symbol, ...]:
        """What gate ``gate``'s hidden projection reads, in column-block order (nothing in a
        cell without hidden parts)."""
        return self.run_of(gate).sources if self.hidden else ()

    def is_sourced(self, gate: str) -> bool:
        """True when gate ``gate`` reads hidden sources (a run of :attr:`runs`)."""
        return any(gate in r.gates for r in self.runs)

    def readers(self, source: sp.Symbol) -> tuple[str, ...]:
        """The gates of :attr:`runs` reading ``source``, in gate order."""
        return tuple(g for r in self.runs if source in r.sources for g in r.gates)

    @property
    def unit_sources(self) -> tuple[sp.Symbol, ...]:
        """The values of a step that runs read (not previous states), in run and block order."""
        prevs = {s.state.prev for s in self.states}
        found = (s for r in self.runs for s in r.sources if s not in prevs)
        return tuple(dict.fromkeys(found))

    def layout(self, state: State) -> StateLayout:
        return next(s for s in self.states if s.state == state)

    @property
    def parameter_sizes(self) -> tuple[sp.Symbol, ...]:
        """The sizes the parameters' shapes are written in, in ``X, H, P`` order (P only for a
        cell with a projected state)."""
        used = set().union(*(sp.Tuple(*a.shape).free_symbols for a in self.attributes))
        return tuple(size for size in (X, H, P) if size in used)

    def buffer_table(self) -> list[tuple[str, str, str]]:
        """``(name, role, shape)`` of every buffer, in :attr:`buffers` order: the entry points'
        arrays first (roles in :data:`ABI_ROLES`; the opaque cache, sized by the C library's
        ``<cell>_cache_size``, is not among them), then the kernels' own. ``shape`` is a tuple
        display in ``T, B, X, H, P`` that is also a Python expression (``(4*H, X)``,
        ``(13*H**2,)``): plain data a binding can evaluate without SymPy."""
        return [(b.name, b.role, b.shape_text()) for b in self.buffers]


# ---------------------------------------------------------------------------------------------


def _runs(gates, indices, sources, unit, offsets, first_index=0) -> list[Run]:
    """Consecutive gates (by gate index) reading the same sources, one :class:`Run` each."""
    runs: list[Run] = []
    for gate in gates:
        k = indices[gate]
        last = runs[-1] if runs else None
        if last and last.first + len(last.gates) == k and last.sources == sources(gate):
            runs[-1] = Run(
                last.index,
                (*last.gates, gate),
                last.first,
                last.sources,
                last.unit,
                last.offset,
                last.gathered_by,
            )
            continue
        index = first_index + len(runs)
        gathered = next((r.index for r in runs if r.sources == sources(gate)), index)
        runs.append(Run(index, (gate,), k, sources(gate), unit(gate), offsets[k], gathered))
    return runs


def _states(spec: CellSpec) -> tuple[StateLayout, ...]:
    return tuple(
        StateLayout(
            state=s,
            size=H if s.projection is None else P,
            sequence=f"{s.name}_states",
            is_output=s.new == spec.output,
            is_recurrent=s.prev == spec.recurrent,
        )
        for s in spec.states
    )


def _saved(derivation: Derivation, states) -> tuple[SavedSlot, ...]:
    """A saved value that is a state's new value is a view of that state's sequence (a
    projected state's new value is not per unit: never saved); the others are numbered parts
    of the ``saved`` buffer, in the derivation's order."""
    views = {}
    for s in states:
        if not s.projected:
            views.setdefault(s.state.new, s.name)
    per_step = set().union(*(a.expr.free_symbols for a in derivation.backward.chain))
    slots, k = [], 0
    for symbol in derivation.saved:
        if symbol in views:
            slots.append(SavedSlot(symbol, views[symbol], None, symbol in per_step))
        else:
            slots.append(SavedSlot(symbol, None, k, symbol in per_step))
            k += 1
    return tuple(slots)


def _buffers(spec: CellSpec, states, saved, blocks, summed: bool) -> tuple[Buffer, ...]:
    """Every array, the entry points' arguments and results first (in the order the binding
    marshals them), then the kernels' own."""
    G = len(spec.gates)
    sizes = {s.state.short: s.size for s in states}
    recurrent = next(s for s in states if s.is_recurrent).size
    output = next(s for s in states if s.is_output).size
    projected = next((s for s in states if s.projected), None)
    wide = any(b != 1 for b in blocks)
    hidden_weights = (sum(blocks) * H * H,) if wide else (G * H, recurrent)
    parameters = [
        Buffer("event_weights", "parameter", (G * H, X), "event weights, gates stacked"),
        Buffer("event_bias", "parameter", (G * H,), "event biases, gates stacked"),
    ]
    if spec.hidden_parts:  # else no gate has a hidden part: no hidden weights, biases, product
        parameters += [
            Buffer(
                "hidden_weights",
                "parameter",
                hidden_weights,
                "hidden weights, each gate's (H, blocks * H) one after the other"
                if wide
                else "hidden weights, gates stacked",
            ),
            Buffer("hidden_bias", "parameter", (G * H,), "hidden biases, gates stacked"),
        ]
    parameters += [
        Buffer(p.name, "parameter", (H,), "per-unit parameter") for p in spec.unit_parameters
    ]
    if projected is not None:
        parameters.append(Buffer("projection_weights", "parameter", (P, H), "the projection"))
    buffers = [Buffer("events", "input", (T, B, X), "the events of every step")]
    buffers.append(
        Buffer("lengths", "lengths", (B,), "each row's number of steps, 1 to T (none: all T)")
    )
    buffers += parameters
    buffers += [Buffer(f"{s}0", "initial_state", (B, n), "initial state") for s, n in sizes.items()]
    buffers.append(Buffer("outputs", "output", (T, B, output), "the output state of every step"))
    buffers += [Buffer(f"{s}_last", "final_state", (B, n), "final state") for s, n in sizes.items()]
    buffers.append(Buffer("d_outputs", "adjoint", (T, B, output), "dL/d(outputs)"))
    buffers += [
        Buffer(f"d_{s}_last", "adjoint", (B, n), "dL/d(final state)") for s, n in sizes.items()
    ]
    buffers.append(Buffer("d_events", "gradient", (T, B, X), "dL/d(events)"))
    buffers += [Buffer(f"d_{b.name}", "gradient", b.shape, f"dL/d({b.name})") for b in parameters]
    buffers += [
        Buffer(f"d_{s}0", "gradient", (B, n), "dL/d(initial state)") for s, n in sizes.items()
    ]
    # The kernels' own arrays
    buffers += [
        Buffer(s.sequence, "state_sequence", (T + 1, B, s.size), f"the {s.name} state, index t")
        for s in states
    ]
    own = sum(s.state is None for s in saved)
    buffers.append(
        Buffer(
            "saved", "saved", (own, T, B, H), "the saved values that are not a state's new value"
        )
    )
    buffers.append(
        Buffer("event_projection", "event_projection", (T, B, G * H), "X W_event^T + b_event")
    )
    if spec.hidden_parts:
        buffers.append(
            Buffer("hidden_projection", "scratch", (B, G * H), "one step's hidden projections")
        )
    buffers.append(Buffer("delta_event", "delta", (T, B, G * H), "dL/d(event projections)"))
    if not summed:
        buffers.append(Buffer("delta_hidden", "delta", (T, B, G * H), "dL/d(hidden projections)"))
    if projected is not None:
        buffers.append(Buffer("delta_projection", "delta", (T, B, P), "dL/d(the projected state)"))
    return tuple(buffers)


def _attributes(spec: CellSpec, blocks, recurrent) -> tuple[Buffer, ...]:
    attributes = []
    for gate, width in zip(spec.gates, blocks, strict=True):
        columns = {"event": X, "hidden": recurrent if width == 1 else width * H}
        for side in ("event", "hidden") if spec.hidden_parts else ("event",):
            attributes.append(
                Buffer(
                    f"{side}_{gate}_weights", "gate_attribute", (H, columns[side]), f"gate {gate}"
                )
            )
            attributes.append(Buffer(f"{side}_{gate}_bias", "gate_attribute", (H,), f"gate {gate}"))
    attributes += [Buffer(p.name, "attribute", (H,), "per-unit") for p in spec.unit_parameters]
    if spec.projected_state is not None:
        attributes.append(Buffer("projection_weights", "attribute", (P, H), "the projection"))
    return tuple(attributes)


def _forward_step(derivation: Derivation, plan_runs, saved, states) -> tuple:
    """The forward step's per-unit stages: one, or two with the products of the runs reading
    a same-step source between them. A stage's outputs are the saved values and new states
    (per-unit vectors) it assigns."""
    spec, forward = derivation.spec, derivation.forward
    delivered = tuple(s.symbol for s in saved) + tuple(
        s.state.unit for s in states if s.state.unit not in {v.symbol for v in saved}
    )

    def outputs(assignments):
        targets = {a.target for a in assignments}
        return tuple(v for v in delivered if v in targets)

    # Read after the stage: the projection's vector (its product) and every run's sources.
    projection = frozenset(s.state.projection for s in states if s.projected)
    sources = frozenset(s for r in plan_runs for s in r.sources) - set(spec.prev_symbols)
    stage = derivation.lowered.stage
    if not stage:
        return (Stage("forward", forward, outputs(forward), projection),)
    second = Stage("forward_2", forward[stage:], outputs(forward[stage:]), projection)
    first_reads = sources | second.reads() | second.read_after
    first = Stage("forward_1", forward[:stage], outputs(forward[:stage]), first_reads)
    return (first, *[r for r in plan_runs if r.unit], second)


def _reduced_forward_step(derivation: Derivation, saved, states, statistics) -> tuple:
    """The forward step of a cell with reductions over units: per-unit stages split where an
    assignment first reads a reduction's statistics, a :class:`Reduce` before it. A stage's
    ``read_after`` is what the items after it read (the next reductions' vectors, the later
    stages' inputs)."""
    spec, lowered = derivation.spec, derivation.lowered
    forward = lowered.forward
    delivered = tuple(s.symbol for s in saved) + tuple(
        s.state.unit for s in states if s.state.unit not in {v.symbol for v in saved}
    )
    available = set(lowered.inputs) | {a.target for a in forward}
    parts = {g.symbol: g for g in lowered.gate_inputs}
    slots = {slot.symbol: slot.index for slot in statistics}
    at: dict[int, list] = {}
    for reduction in spec.reductions:
        missing = [v.name for v in reduction.over if v not in available]
        if missing:
            raise SpecError(
                f"cell {spec.name!r}, reduction {reduction.name!r}: {', '.join(missing)} is not a "
                "per-unit value of the step (a gate part only enters through its sum)"
            )
        index = next(
            i for i, a in enumerate(forward) if set(reduction.symbols) & a.expr.free_symbols
        )
        buffer = None
        for kind, part in (("event", gate_event), ("hidden", gate_hidden)):
            if reduction.over == tuple(part(g) for g in spec.gates) and all(
                parts.get(v) is not None and parts[v].kind == kind for v in reduction.over
            ):
                buffer = f"{kind}_projection"
        variance = reductions.variance_symbol(reduction)
        at.setdefault(index, []).append(
            Statistics(
                reduction=reduction,
                size=len(reduction.over) * H,
                buffer=buffer,
                variance=variance,
                rstd_expr=reductions.rstd_definition(variance, reduction.epsilon),
                mean_slot=slots.get(reduction.mean),
                rstd_slot=slots.get(reduction.rstd),
            )
        )
    items: list = []
    bounds = [*sorted(at), len(forward)]
    if bounds[0] > 0:
        bounds.insert(0, 0)
    for start, end in itertools.pairwise(bounds):
        if start in at:
            number = sum(isinstance(i, Reduce) for i in items) + 1
            items.append(Reduce(f"reduce_{number}", tuple(at[start])))
        chunk = forward[start:end]
        if chunk:
            targets = {a.target for a in chunk}
            outputs = tuple(v for v in delivered if v in targets)
            number = sum(isinstance(i, Stage) for i in items) + 1
            items.append(Stage(f"forward_{number}", chunk, outputs))
    # What each stage's values are read by, from the last item back.
    projection = frozenset(s.state.projection for s in states if s.projected)
    later, done = set(projection), []
    for item in reversed(items):
        if isinstance(item, Stage):
            item = replace(item, read_after=frozenset(later))
            later |= item.reads()
        else:
            later |= {v for st in item.statistics for v in st.over}
        done.append(item)
    return tuple(done[::-1])


def _reduced_backward_step(derivation: Derivation, deltas) -> tuple:
    """The backward step of a cell with reductions: the derivation's staged backward (per-unit
    stages, each with its joint CSE, and the totals between them), the hidden size written as
    the kernels' ``hidden_size``."""
    size = {reductions.HIDDEN_SIZE: HIDDEN_SIZE}
    staged = derivation.staged
    items: list = []
    for k, item in enumerate(staged):
        if isinstance(item, reductions.Stage):
            assignments = tuple(
                Assignment(a.target, a.expr.xreplace(size), a.note) for a in item.chain
            )
            if k == len(staged) - 1:
                outputs = tuple(d for d in item.outputs.values() if d != 0)
                items.append(
                    Stage("backward", assignments, outputs, _read_after(derivation, deltas))
                )
            else:
                outputs = tuple(item.outputs.values()) + item.later
                name = f"backward_{len(items) // 2 + 1}"
                items.append(Stage(name, assignments, outputs, frozenset(outputs)))
        else:
            totals = tuple(
                Total(
                    reduction=r.reduction,
                    d_mean=adjoint(r.reduction.mean),
                    d_rstd=adjoint(r.reduction.rstd),
                    total_mean=r.total_mean,
                    total_variance=r.total_variance,
                    variance_factor=r.variance_factor.xreplace(size),
                )
                for r in item
            )
            items.append(Totals(f"totals_{len(items) // 2 + 1}", totals))
    return tuple(items)


def _deltas(derivation: Derivation) -> tuple[DeltaSlot, ...]:
    spec, outputs = derivation.spec, derivation.backward.outputs
    slots = []
    for gi in derivation.gate_inputs:
        if gi.kind == "pre" and not derivation.summed:
            targets = ("delta_event", "delta_hidden")  # the same adjoint for both parts
        else:
            targets = ("delta_hidden",) if gi.kind == "hidden" else ("delta_event",)
        slots.append((gi, outputs[gi.symbol], targets))
    counts = {}
    for _, d, _ in slots:
        counts[d] = counts.get(d, 0) + 1
    return tuple(
        DeltaSlot(
            symbol=gi.symbol,
            gate=gi.gate,
            kind=gi.kind,
            adjoint=d,
            targets=targets,
            direct=len(targets) == 1 and isinstance(d, sp.Symbol) and counts[d] == 1,
            after_run=gi.kind == "hidden" and spec.reads_unit_source(gi.gate),
        )
        for gi, d, targets in slots
    )


def _read_after(derivation: Derivation, deltas) -> frozenset:
    """Read after the backward's last stage: adjoints not written straight into a delta slot,
    and the previous states' and per-unit parameters' adjoints."""
    spec, outputs = derivation.spec, derivation.backward.outputs
    after = [d.adjoint for d in deltas if not d.direct]
    after += [outputs[s] for s in spec.prev_symbols + tuple(spec.unit_parameters)]
    return frozenset().union(*(sp.sympify(e).free_symbols for e in after))


def _backward_step(derivation: Derivation, plan_runs, deltas) -> tuple:
    """The backward step: with same-step sources, the sourced gates' hidden-part adjoints
    first (they need the state carries only), their runs' products (the sources' carries),
    then every per-unit adjoint."""
    bwd = derivation.backward
    outputs = tuple(d for d in bwd.outputs.values() if d != 0)
    full = Stage("backward", bwd.chain, outputs, _read_after(derivation, deltas))
    if derivation.source_backward is None:
        return (full,)
    sb = derivation.source_backward
    first = Stage("backward_sources", sb.chain, tuple(d for d in sb.outputs.values() if d != 0))
    return (first, *[r for r in plan_runs if r.unit], full)


#: Plans by derivation identity (a Derivation holds dicts: not hashable); the entry keeps the
#: derivation alive, so its id is not reused.
_PLANS: dict[int, tuple[Derivation, KernelPlan]] = {}


def plan(derivation: Derivation) -> KernelPlan:
    """The kernel plan of ``derivation`` (see the module docstring); the same object for the
    same derivation."""
    entry = _PLANS.get(id(derivation))
    if entry is None or entry[0] is not derivation:
        entry = _PLANS[id(derivation)] = (derivation, _plan(derivation))
    return entry[1]


def _plan(derivation: Derivation) -> KernelPlan:
    spec = derivation.spec
    indices = {g: k for k, g in enumerate(spec.gates)}
    blocks = tuple(len(spec.sources(g)) for g in spec.gates)
    offsets = [sum(blocks[:k]) for k in range(len(blocks))]
    recurrent_runs = _runs(
        [g for g in spec.gates if g not in spec.hidden_sources and spec.hidden_parts],
        indices,
        spec.sources,
        lambda g: False,
        offsets,
    )
    runs = _runs(spec.sourced_gates, indices, spec.sources, spec.reads_unit_source, offsets)
    states = _states(spec)
    saved = _saved(derivation, states)
    deltas = _deltas(derivation)
    shared = derivation.summed and not spec.hidden_sources and spec.hidden_parts
    hidden_reads = ("delta_hidden" if not derivation.summed else "delta_event",)
    products = [
        Product("event_projection", "event_projection", spec.gates, ("events", "event_weights")),
        Product(
            "d_event_weights", "weight_gradient", spec.gates, ("delta_event", "events"), shared
        ),
    ]
    if recurrent_runs:
        recurrent_sequence = next(s for s in states if s.is_recurrent).sequence
        products.append(
            Product(
                "d_hidden_weights" if not runs else "d_recurrent_weights",
                "weight_gradient",
                tuple(g for r in recurrent_runs for g in r.gates),
                (*hidden_reads, recurrent_sequence),
                shared,
            )
        )
    for r in runs:
        reads = tuple(
            next(s.sequence for s in states if s.state.prev == source)
            if source in spec.prev_symbols
            else "saved"
            for source in r.sources
        )
        products.append(
            Product(f"d_run_{r.index}_weights", "weight_gradient", r.gates, hidden_reads + reads)
        )
    projected = next((s for s in states if s.projected), None)
    if projected is not None:
        products.append(
            Product("d_projection_weights", "weight_gradient", (), ("delta_projection", "saved"))
        )
    buffers = _buffers(spec, states, saved, blocks, derivation.summed)
    statistics = tuple(
        SavedSlot(symbol, None, k, True) for k, symbol in enumerate(derivation.statistics)
    )
    if spec.reductions:
        buffers += (
            Buffer(
                "statistics",
                "statistics",
                (len(statistics), T, B),
                "the reductions' statistics the backward reads, one per row and step",
            ),
        )
        forward_step = _reduced_forward_step(derivation, saved, states, statistics)
        backward_step = _reduced_backward_step(derivation, deltas)
    else:
        forward_step = _forward_step(derivation, runs, saved, states)
        backward_step = _backward_step(derivation, runs, deltas)
    return KernelPlan(
        derivation=derivation,
        gates=spec.gates,
        states=states,
        buffers=buffers,
        saved=saved,
        recurrent_runs=tuple(recurrent_runs),
        runs=tuple(runs),
        blocks=blocks,
        forward_step=forward_step,
        backward_step=backward_step,
        products=tuple(products),
        deltas=deltas,
        attributes=_attributes(spec, blocks, next(s for s in states if s.is_recurrent).size),
        projections=_projections(states, buffers, saved),
        masking=_masking(states, buffers),
        statistics=statistics,
    )


def _masking(states, buffers) -> Masking:
    """The masking of variable-length batches (see :class:`Masking`): every state carried and
    passed through, the outputs zeroed, the events unread, every delta zero for a finished
    row."""
    return Masking(
        lengths=next(b for b in buffers if b.name == "lengths"),
        carried=tuple(s.sequence for s in states),
        zeroed=tuple(b.name for b in buffers if b.role == "output"),
        unread=tuple(b.name for b in buffers if b.role == "input"),
        ignored=tuple(b.name for b in buffers if b.name == "d_outputs"),
        zero_deltas=tuple(b.name for b in buffers if b.role == "delta"),
        passed=tuple(f"d_{s.state.short}" for s in states),
    )


def _projections(states, buffers, saved) -> tuple[Projection, ...]:
    """One :class:`Projection` per projected state: its weights buffer and the saved slot of
    the per-unit vector it projects."""
    weights = next((b for b in buffers if b.name == "projection_weights"), None)
    return tuple(
        Projection(
            state=s,
            unit=s.state.unit,
            weights=weights,
            saved=next(slot for slot in saved if slot.symbol == s.state.unit),
            recurrent=s.is_recurrent,
        )
        for s in states
        if s.projected
    )


def as_plan(value: KernelPlan | Derivation) -> KernelPlan:
    """``value`` if it is a plan, else the plan of the derivation ``value``."""
    return value if isinstance(value, KernelPlan) else plan(value)


def plan_cell(spec: CellSpec) -> KernelPlan:
    """Derive ``spec`` and plan its kernels."""
    return plan(derive(spec))
