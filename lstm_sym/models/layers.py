"""Stacked and bidirectional recurrent layers on any generated cell, as ``torch.nn.LSTM`` does.

:class:`Recurrent` runs ``num_layers`` layers of one cell; with ``bidirectional=True`` each
layer runs the cell forwards and, with its own parameters, backwards over the sequence, and
concatenates both outputs on the feature axis (forward first), exactly as ``nn.LSTM`` and
``nn.GRU``. ``forward(..., lengths=)`` runs a padded batch as PyTorch runs packed sequences
(``pack_padded_sequence(..., enforce_sorted=False)``): row b's first ``lengths[b]`` steps,
the reverse direction over that part backwards, zero outputs at the padded steps of both
directions, and each row's own final states. Between layers (not after the last) dropout can
be applied in training mode, with PyTorch's inverted scaling: ``y * mask / (1 - p)``,
``mask ~ Bernoulli(1 - p)``.

The cell is a generated module (``lstm_sym.kernels.lstm``, ``lstm_sym.kernels.gru``, ...;
``generated.lstm`` in a checkout), its name, or a :class:`lstm_sym.native.NativeCell`
(``lstm_sym.native.load("lstm")``: the C kernels); all share the ``Parameters`` /
``forward`` / ``backward`` contract. A cell whose output is not ``hidden_size`` wide
(``lstmp``: ``nn.LSTM(proj_size=P)``, outputs and h of size P, c of size H) works the same
way: the output and state sizes are read from the cell itself, and layers after the first
take ``output_size * directions`` inputs.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import numpy as np

from ._io import FORMAT_VERSION, float_array, float_dtype, open_model, save_npz


def resolve_cell(cell):
    """A cell module from a module, a NativeCell or a built-in cell's name (default: lstm)."""
    if cell is None:
        cell = "lstm"
    if isinstance(cell, str):
        try:
            return importlib.import_module(f"lstm_sym.kernels.{cell}")
        except ModuleNotFoundError:
            raise ValueError(
                f"no generated cell module lstm_sym.kernels.{cell} (generated/{cell}.py)"
            ) from None
    for attribute in ("Parameters", "forward", "backward", "GATES", "STATES", "CELL"):
        if not hasattr(cell, attribute):
            raise TypeError(
                f"cell must be a generated cell module, a NativeCell or a cell name; "
                f"{type(cell).__name__} has no {attribute!r}"
            )
    return cell


def _size_options(cell) -> tuple[str, ...]:
    """The cell's size arguments besides event_size and hidden_size (lstmp: projection_size)."""
    skip = {"self", "event_size", "hidden_size", "dtype"}
    return tuple(
        name
        for name, p in inspect.signature(cell.Parameters).parameters.items()
        if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def init_uniform(parameters, rng: np.random.Generator, forget_bias: float | None = None):
    """PyTorch's default recurrent initialization, in place: every weight and bias drawn from
    uniform(-1/sqrt(H), 1/sqrt(H)) (biases as (hidden,) vectors, arrays in ``NAMES`` order).

    ``forget_bias``: if given, the forget gate's event bias is set to it and its hidden bias
    to zero (their sum, what the gate sees, is ``forget_bias``; 1.0 is the usual choice).
    """
    bound = 1.0 / np.sqrt(parameters.hidden_size)
    dtype = _parameter_dtype(parameters)
    for name in parameters.NAMES:
        shape = parameters.checked(name).shape
        setattr(parameters, name, rng.uniform(-bound, bound, size=shape).astype(dtype))
    if forget_bias is not None:
        names = ("event_forget_bias", "hidden_forget_bias")
        if not all(name in parameters.NAMES for name in names):
            raise ValueError(
                f"forget_bias: the {type(parameters).__module__} cell has no forget gate"
            )
        parameters.event_forget_bias[...] = forget_bias
        parameters.hidden_forget_bias[...] = 0.0
    return parameters


def _parameter_dtype(parameters) -> np.dtype:
    floats = [a.dtype for a in parameters.arrays().values() if a.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


def _as_arrays(parameters, dtype) -> None:
    """Every attribute as an owned float ndarray of its full shape (scalar biases expanded), so
    optimizers can update them in place."""
    for name in parameters.NAMES:
        setattr(parameters, name, np.array(parameters.checked(name), dtype=dtype, copy=True))


@dataclass
class RecurrentGradients:
    """What :meth:`Recurrent.backward` returns.

    ``parameters``: ``{name: gradient}`` with the names of :meth:`Recurrent.named_parameters`;
    ``inputs``: dL/d(inputs), shaped like the inputs; ``initial``: dL/d(initial states), one
    (num_layers * directions, [batch,] hidden) array per state (a tuple, or the array itself
    for a one-state cell such as the GRU, like the finals of ``forward``).
    """

    parameters: dict[str, np.ndarray]
    inputs: np.ndarray
    initial: object


class RecurrentCache:
    """What :meth:`Recurrent.forward` saves for :meth:`Recurrent.backward`."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return f"RecurrentCache(steps={self.steps}, batch={self.batch}, layers={len(self.caches)})"


class Recurrent:
    """``num_layers`` layers of a recurrent cell, optionally bidirectional (``nn.LSTM``'s model).

    ``parameters[layer][direction]`` is the cell's ``Parameters`` (direction 1: the reverse
    one). Layer 0 reads ``input_size`` features, the others ``output_size * directions``, where
    ``output_size`` is the cell's output width: ``hidden_size``, or ``projection_size`` for a
    projected cell (``cell="lstmp"``, ``projection_size=P``; giving ``projection_size`` alone
    picks ``lstmp``). ``state_sizes`` holds the width of each state (lstmp: (P, H)).
    ``rng`` (a ``numpy.random.Generator`` or a seed) draws the initial weights
    (:func:`init_uniform`) and the dropout masks; ``init=False`` leaves the cell's zeros.
    """

    KIND = "recurrent"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
        cell=None,
        dtype=np.float64,
        rng=None,
        forget_bias: float | None = None,
        init: bool = True,
        projection_size: int | None = None,
    ):
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if cell is None and projection_size is not None:
            cell = "lstmp"
        self.cell = resolve_cell(cell)
        sizes = {}
        if projection_size is not None:
            if "projection_size" not in _size_options(self.cell):
                raise ValueError(
                    f"projection_size: the {self.cell.CELL} cell has no projection "
                    "(use cell='lstmp')"
                )
            sizes["projection_size"] = projection_size
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.training = True
        self.dtype = np.dtype(np.float64) if dtype is None else float_dtype(dtype)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.parameters = []
        for layer in range(self.num_layers):
            size = self.input_size if layer == 0 else self.output_size * self.directions
            row = []
            for _ in range(self.directions):
                parameters = self.cell.Parameters(size, self.hidden_size, **sizes, dtype=self.dtype)
                if layer == 0 and not row:
                    self._probe_sizes(parameters)
                if init:
                    init_uniform(parameters, self.rng, forget_bias)
                _as_arrays(parameters, self.dtype)
                row.append(parameters)
            self.parameters.append(row)

    def _probe_sizes(self, parameters) -> None:
        """``output_size``, ``state_sizes`` and ``cell_sizes`` (the extra size arguments of the
        cell's Parameters) of the cell, read from it: one step on zero parameters."""
        self.cell_sizes = {name: getattr(parameters, name) for name in _size_options(self.cell)}
        events = np.zeros((1, 1, parameters.event_size), dtype=self.dtype)
        outputs, lasts, _ = self.cell.forward(parameters, events)
        lasts = lasts if isinstance(lasts, tuple) else (lasts,)
        self.output_size = int(outputs.shape[-1])
        self.state_sizes = tuple(int(last.shape[-1]) for last in lasts)
        self.projection_size = self.cell_sizes.get("projection_size")

    def __repr__(self):
        sizes = "".join(f", {k}={v}" for k, v in self.cell_sizes.items())
        return (
            f"Recurrent({self.cell.CELL}, input_size={self.input_size}, "
            f"hidden_size={self.hidden_size}{sizes}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout})"
        )

    # -- mode, names ------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Recurrent:
        """Training mode (dropout on, if ``dropout > 0``), as ``nn.Module.train``."""
        self.training = bool(mode)
        return self

    def eval(self) -> Recurrent:
        return self.train(False)

    @staticmethod
    def _prefix(layer: int, direction: int) -> str:
        return f"l{layer}{'_reverse' if direction else ''}"

    def named_parameters(self) -> dict[str, np.ndarray]:
        """``{"l0.event_update_weights": array, ..., "l1_reverse....": ...}``: the live arrays
        (an optimizer updating them in place updates the model)."""
        return {
            f"{self._prefix(layer, direction)}.{name}": getattr(parameters, name)
            for layer, row in enumerate(self.parameters)
            for direction, parameters in enumerate(row)
            for name in parameters.NAMES
        }

    # -- forward / backward -----------------------------------------------------------------

    def _states(self, value, name, batch, batched, dtype):
        """Per state, (layers * directions, batch, state size) or None."""
        count = len(self.cell.STATES)
        if value is None:
            return [None] * count
        values = (value,) if count == 1 and not isinstance(value, (tuple, list)) else tuple(value)
        if len(values) != count:
            raise ValueError(
                f"{name} must hold {count} array(s), one per state {self.cell.STATES}, "
                f"got {len(values)}"
            )
        rows = self.num_layers * self.directions
        checked = []
        for state, size, array in zip(self.cell.STATES, self.state_sizes, values, strict=True):
            if array is None:
                checked.append(None)
                continue
            expected = (rows, batch, size) if batched else (rows, size)
            array = float_array(array, f"{name} ({state})")
            if array.shape != expected:
                raise ValueError(
                    f"{name} ({state}) must have shape {expected} "
                    f"(num_layers * directions, {'batch, ' if batched else ''}{state} size), "
                    f"got {array.shape}"
                )
            checked.append((array if batched else array[:, None, :]).astype(dtype, copy=False))
        return checked

    def _pack(self, per_state):
        return per_state[0] if len(per_state) == 1 else tuple(per_state)

    def dropout_masks(self, steps: int, batch: int, dtype=None) -> list[np.ndarray]:
        """Fresh masks for one forward pass: one (steps, batch, output_size * directions) array
        per layer but the last, ``Bernoulli(1 - p) / (1 - p)`` (PyTorch's inverted dropout)."""
        dtype = np.dtype(dtype or self.dtype)
        keep = 1.0 - self.dropout
        shape = (steps, batch, self.output_size * self.directions)
        return [
            (self.rng.random(shape) < keep).astype(dtype) / dtype.type(keep)
            for _ in range(self.num_layers - 1)
        ]

    def forward(self, inputs, initial=None, *, lengths=None, dropout_masks=None):
        """Run every layer and direction.

        inputs: (T, batch, input_size), or (batch, T, input_size) with ``batch_first``, or
        (T, input_size) unbatched. initial: None (zeros) or, per state of the cell, an array
        (num_layers * directions, [batch,] state size) -- ``(h0, c0)`` for the LSTM, ``h0``
        for the GRU -- rows ordered layer by layer, forward direction first, as PyTorch's.
        lengths: None (every row runs all T steps) or each row's number of steps, an integer
        array (batch,) in any order (an integer for unbatched inputs), each 1 to T: PyTorch's
        packed sequences. Row b runs its first ``lengths[b]`` steps; the reverse direction runs
        them backwards (from step ``lengths[b] - 1`` to 0); the outputs at the padded steps are
        zero in both directions, the inputs there are never read (their gradient is zero), and
        the finals are each row's states after its own last step (the reverse direction's after
        step 0). backward uses the lengths the cache holds.
        dropout_masks: override the masks drawn in training mode (one per layer but the last,
        see :meth:`dropout_masks`); they are applied whenever given.

        Returns ``outputs, finals, cache``: outputs (T, [batch,] output_size * directions)
        (batch first if so built), finals shaped like ``initial``.
        """
        x = float_array(inputs, "inputs")
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"inputs must have shape (T, batch, {self.input_size}) (or (batch, T, ...) with "
                f"batch_first, or (T, {self.input_size}) unbatched), got {x.shape}"
            )
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        steps, batch = x.shape[:2]
        if steps == 0 or batch == 0:
            raise ValueError(f"inputs must hold at least one step and one batch row, got {x.shape}")
        dtype = np.result_type(x.dtype, *(a.dtype for a in self.named_parameters().values()))
        x = x.astype(dtype, copy=False)
        lengths = _checked_lengths(lengths, steps, batch, batched)
        order = None if lengths is None else _reversal(lengths, steps)
        options = {} if lengths is None else {"lengths": lengths}
        initial = self._states(initial, "initial", batch, batched, dtype)
        masks = None
        if dropout_masks is not None:
            masks = self._check_masks(dropout_masks, steps, batch, dtype)
        elif self.training and self.dropout > 0 and self.num_layers > 1:
            masks = self.dropout_masks(steps, batch, dtype)

        caches, finals = [], [[None] * (self.num_layers * self.directions) for _ in initial]
        for layer, row in enumerate(self.parameters):
            outputs = []
            for direction, parameters in enumerate(row):
                index = layer * self.directions + direction
                states = [None if s is None else s[index] for s in initial]
                events = x if direction == 0 else _reverse(x, order)
                y, lasts, cache = self.cell.forward(parameters, events, *states, **options)
                lasts = lasts if isinstance(lasts, tuple) else (lasts,)
                for k, last in enumerate(lasts):
                    finals[k][index] = last
                outputs.append(y if direction == 0 else _reverse(y, order))
                caches.append(cache)
            y = outputs[0] if self.directions == 1 else np.concatenate(outputs, axis=-1)
            if masks is not None and layer < self.num_layers - 1:
                y = y * masks[layer]
            x = y
        finals = [np.stack(f) for f in finals]
        if not batched:
            x, finals = x[:, 0], [f[:, 0] for f in finals]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        cache = RecurrentCache(
            steps=steps,
            batch=batch,
            batched=batched,
            dtype=dtype,
            caches=caches,
            masks=masks,
            lengths=lengths,
            order=order,
        )
        return x, self._pack(finals), cache

    def _check_masks(self, masks, steps, batch, dtype):
        masks = list(masks)
        if len(masks) != self.num_layers - 1:
            raise ValueError(
                f"dropout_masks must hold num_layers - 1 = {self.num_layers - 1} arrays, "
                f"got {len(masks)}"
            )
        shape = (steps, batch, self.output_size * self.directions)
        checked = []
        for k, mask in enumerate(masks):
            mask = float_array(mask, f"dropout_masks[{k}]")
            if mask.shape != shape:
                raise ValueError(
                    f"dropout_masks[{k}] must have shape {shape} (T, batch, output_size * "
                    f"directions), got {mask.shape}"
                )
            checked.append(mask.astype(dtype, copy=False))
        return checked

    def backward(self, cache: RecurrentCache, d_outputs, d_finals=None) -> RecurrentGradients:
        """Backpropagation through every layer and direction (and the dropout masks).

        d_outputs: dL/d(outputs), shaped like ``outputs``; d_finals: None or shaped like
        ``finals`` (per state). Returns :class:`RecurrentGradients`.
        """
        if not isinstance(cache, RecurrentCache):
            raise TypeError(
                f"cache must be the cache of Recurrent.forward, got {type(cache).__name__}"
            )
        steps, batch, batched, dtype = cache.steps, cache.batch, cache.batched, cache.dtype
        width = self.output_size * self.directions
        d_y = float_array(d_outputs, "d_outputs")
        if batched:
            expected = (batch, steps, width) if self.batch_first else (steps, batch, width)
        else:
            expected = (steps, width)
        if d_y.shape != expected:
            raise ValueError(
                f"d_outputs must have the shape of outputs {expected}, got {d_y.shape}"
            )
        if not batched:
            d_y = d_y[:, None, :]
        elif self.batch_first:
            d_y = d_y.transpose(1, 0, 2)
        d_y = d_y.astype(dtype, copy=False)
        d_finals = self._states(d_finals, "d_finals", batch, batched, dtype)

        gradients: dict[str, np.ndarray] = {}
        d_initial = [[None] * (self.num_layers * self.directions) for _ in d_finals]
        hidden = self.output_size
        for layer in reversed(range(self.num_layers)):
            if cache.masks is not None and layer < self.num_layers - 1:
                d_y = d_y * cache.masks[layer]
            d_x = None
            for direction, parameters in enumerate(self.parameters[layer]):
                index = layer * self.directions + direction
                d_out = d_y[:, :, direction * hidden : (direction + 1) * hidden]
                if direction:
                    d_out = _reverse(d_out, cache.order)
                d_lasts = [None if d is None else d[index] for d in d_finals]
                grads = self.cell.backward(cache.caches[index], d_out, *d_lasts)
                prefix = self._prefix(layer, direction)
                for name in parameters.NAMES:
                    gradients[f"{prefix}.{name}"] = getattr(grads, name)
                for k in range(len(self.cell.STATES)):
                    d_initial[k][index] = getattr(grads, _initial_name(self.cell, k))
                d_events = grads.events if direction == 0 else _reverse(grads.events, cache.order)
                d_x = d_events if d_x is None else d_x + d_events
            d_y = d_x
        d_inputs = d_y
        d_initial = [np.stack(d) for d in d_initial]
        if not batched:
            d_inputs, d_initial = d_inputs[:, 0], [d[:, 0] for d in d_initial]
        elif self.batch_first:
            d_inputs = d_inputs.transpose(1, 0, 2)
        names = list(self.named_parameters())
        ordered = {name: gradients[name] for name in names}
        return RecurrentGradients(ordered, np.ascontiguousarray(d_inputs), self._pack(d_initial))

    # -- PyTorch and files ------------------------------------------------------------------

    @classmethod
    def from_torch(cls, module_or_state_dict, *, cell=None, dtype=None, **options) -> Recurrent:
        """A model holding the weights of an ``nn.LSTM`` (``nn.GRU`` with ``cell="gru"``...),
        any number of layers, either direction, or of its ``state_dict()``. An
        ``nn.LSTM(proj_size=P)`` (``weight_hr_l<k>`` keys) gets the ``lstmp`` cell by default.

        From a module, ``dropout`` and ``batch_first`` are read from it too (``options``
        override them). dtype: None keeps the tensors' dtype.
        """
        dtype = float_dtype(dtype)
        state = resolve_cell(cell).Parameters._torch_arrays(module_or_state_dict)
        if cell is None and any(key.startswith("weight_hr_l") for key in state):
            cell = "lstmp"  # nn.LSTM(proj_size > 0): the recurrent projection
        cell = resolve_cell(cell)
        found = {cell.Parameters._torch_layer(key) for key in state} - {None}
        layers = sorted({layer for _, layer, _ in found})
        if not layers or layers != list(range(len(layers))):
            raise ValueError(
                f"the state dict must hold layers l0, l1, ...; got keys {sorted(state)}"
            )
        bidirectional = any(reverse for _, _, reverse in found)
        for key in ("dropout", "batch_first"):
            if key not in options and hasattr(module_or_state_dict, key):
                options[key] = getattr(module_or_state_dict, key)
        rows = [
            [
                cell.Parameters.from_torch(state, layer=layer, reverse=bool(d), dtype=dtype)
                for d in range(2 if bidirectional else 1)
            ]
            for layer in layers
        ]
        return cls.from_parameters(rows, cell=cell, **options)

    @classmethod
    def from_parameters(cls, rows, *, cell=None, **options) -> Recurrent:
        """A model of given cell ``Parameters``: ``rows[layer][direction]`` (one or two per
        layer, all layers alike), e.g. from :func:`lstm_sym.interop.from_onnx`. The arrays are
        copied. ``options`` as for the constructor (dropout, batch_first, rng)."""
        rows = [list(row) for row in rows]
        if not rows or len({len(row) for row in rows}) != 1 or len(rows[0]) not in (1, 2):
            raise ValueError("rows must be a non-empty list of layers of 1 or 2 Parameters each")
        first = rows[0][0]
        cell = resolve_cell(cell if cell is not None else type(first).__module__.rsplit(".")[-1])
        sizes = {name: getattr(first, name) for name in _size_options(cell)}
        for name, size in sizes.items():
            if options.get(name, size) != size:
                raise ValueError(f"{name}={options[name]!r}: the parameters have {name}={size}")
            options.pop(name, None)
        model = cls(
            first.event_size,
            first.hidden_size,
            len(rows),
            bidirectional=len(rows[0]) == 2,
            cell=cell,
            dtype=options.pop("dtype", None) or _parameter_dtype(first),
            init=False,
            **sizes,
            **options,
        )
        for layer, row in enumerate(rows):
            for direction, parameters in enumerate(row):
                expected = model.parameters[layer][direction]
                if not isinstance(parameters, cell.Parameters):
                    raise TypeError(
                        f"rows[{layer}][{direction}] must be a {cell.CELL}.Parameters, "
                        f"got {type(parameters).__name__}"
                    )
                names = ("event_size", "hidden_size", *_size_options(cell))
                got = tuple(getattr(parameters, name) for name in names)
                wanted = tuple(getattr(expected, name) for name in names)
                if got != wanted:
                    raise ValueError(
                        f"layer {cls._prefix(layer, direction)} has sizes {got}, expected "
                        f"{wanted} ({', '.join(names)})"
                    )
                for name in parameters.NAMES:
                    getattr(expected, name)[...] = parameters.checked(name)
        return model

    def to_torch_state_dict(self, dtype=None) -> dict[str, np.ndarray]:
        """Every layer's arrays under ``nn.LSTM``'s key names (NumPy copies), for
        ``module.load_state_dict({k: torch.from_numpy(v) for k, v in ...items()})``."""
        state = {}
        for layer, row in enumerate(self.parameters):
            for direction, parameters in enumerate(row):
                state.update(
                    parameters.to_torch_state_dict(
                        layer=layer, reverse=bool(direction), dtype=dtype
                    )
                )
        return state

    def save(self, path) -> None:
        """The whole model as ``.npz``: cell, sizes (and the cell's own, e.g.
        ``__projection_size__``), layers, directions, format version and every array (written
        atomically)."""
        arrays = dict(self.named_parameters())
        arrays.update(
            __model__=np.array(self.KIND),
            __format__=np.array(FORMAT_VERSION),
            __cell__=np.array(self.cell.CELL),
            __sizes__=np.array([self.input_size, self.hidden_size, self.num_layers]),
            __bidirectional__=np.array(self.bidirectional),
        )
        arrays.update({f"__{name}__": np.array(v) for name, v in self.cell_sizes.items()})
        save_npz(path, arrays)

    @classmethod
    def load(cls, path, *, cell=None, **options) -> Recurrent:
        """A model saved by :meth:`save`. ``cell`` (default: the saved cell's generated module)
        must be that cell; ``options`` (dropout, batch_first, rng, ...) as for the constructor.

        Nothing large is allocated or read before the file's header, entry names, declared
        sizes, shapes and dtypes agree (every array float32 or float64, of the shape the
        header's sizes give it); a ValueError names the file and what disagrees."""
        with open_model(path, cls.KIND) as archive:
            for key in ("__cell__", "__sizes__", "__bidirectional__"):
                if key not in archive.entries:
                    raise ValueError(f"{path} is not an lstm_sym recurrent model (no {key})")
            saved_cell = str(archive.small("__cell__", "U", (), "a string (the cell)")[()])
            cell = resolve_cell(saved_cell if cell is None else cell)
            if cell.CELL != saved_cell:
                raise ValueError(f"{path} holds a {saved_cell!r} model, not a {cell.CELL!r} one")
            sizes_meaning = "3 integers (input_size, hidden_size, num_layers)"
            read_sizes = archive.small("__sizes__", "iu", (3,), sizes_meaning)
            input_size, hidden_size, num_layers = (int(v) for v in read_sizes)
            bidirectional = bool(
                archive.small("__bidirectional__", "b", (), "a bool (bidirectional)")[()]
            )
            sizes = {
                name: int(archive.small(f"__{name}__", "iu", (), f"an integer ({name})")[()])
                for name in _size_options(cell)
                if f"__{name}__" in archive.entries
            }
            for name, value in (
                ("input_size", input_size),
                ("hidden_size", hidden_size),
                ("num_layers", num_layers),
                *sizes.items(),
            ):
                if value < 1:
                    raise ValueError(f"{path}: {name} must be a positive integer, got {value}")
            expected = _expected_shapes(
                cell, input_size, hidden_size, num_layers, 2 if bidirectional else 1, sizes
            )
            header = {"__model__", "__format__", "__cell__", "__sizes__", "__bidirectional__"}
            header |= {f"__{name}__" for name in sizes}
            names = set(archive.entries) - header
            if names != set(expected):
                missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
                raise ValueError(
                    f"{path} does not match the model: missing {missing}, unexpected {extra}"
                )
            archive.check_total(sum(int(np.prod(s, dtype=object)) * 8 for s in expected.values()))
            dtypes = set()
            for name, shape in expected.items():
                found, dtype = archive.header(name)
                if dtype not in (np.float32, np.float64):
                    raise ValueError(f"{path}: {name} must be float32 or float64, got {dtype}")
                if found != shape:
                    raise ValueError(f"{path}: {name} has shape {found}, expected {shape}")
                dtypes.add(dtype)
            model = cls(
                input_size,
                hidden_size,
                num_layers,
                bidirectional=bidirectional,
                cell=cell,
                dtype=np.result_type(*dtypes),
                init=False,
                **sizes,
                **options,
            )
            for name, array in model.named_parameters().items():
                array[...] = archive.read(name)
        return model


def _checked_lengths(value, steps: int, batch: int, batched: bool):
    """``lengths`` as an int64 array (batch,) (one row for unbatched inputs), or None.

    Batched inputs take an integer array of shape (batch,), unbatched ones an integer (shape
    ()); bool and float dtypes are refused (TypeError), other shapes and values outside 1..T
    (ValueError), each message naming ``lengths``, what was expected and what was given."""
    if value is None:
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"lengths must hold integers, got {type(value).__name__}") from error
    if array.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {array.dtype}")
    expected = (batch,) if batched else ()
    if array.shape != expected:
        meaning = "(batch,)" if batched else "(an integer scalar for unbatched inputs)"
        raise ValueError(f"lengths must have shape {expected} {meaning}, got {array.shape}")
    array = array.reshape(-1)
    bad = np.flatnonzero((array < 1) | (array > steps))
    if bad.size:
        where = f"lengths[{bad[0]}]" if batched else "lengths"
        raise ValueError(
            f"{where} must be between 1 and T = {steps} (the number of steps), got {array[bad[0]]}"
        )
    return array.astype(np.int64)


def _reversal(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(T, batch) step indices: row b's first ``lengths[b]`` steps in reverse order, then its
    padded steps where they are. It is its own inverse: reading a sequence through it twice
    gives the sequence back."""
    t = np.arange(steps)[:, None]
    return np.where(t < lengths, lengths - 1 - t, t)


def _reverse(sequence: np.ndarray, order) -> np.ndarray:
    """``sequence`` (T, batch, features) with each row's valid part reversed (``order`` from
    :func:`_reversal`), or the whole sequence reversed when there are no lengths."""
    if order is None:
        return sequence[::-1]
    return np.take_along_axis(sequence, order[:, :, None], axis=0)


def _expected_shapes(cell, input_size, hidden_size, num_layers, directions, sizes) -> dict:
    """``{name: shape}`` of every array of a model of these sizes (``named_parameters``
    names), computed without allocating: the cell's ``Parameters.shapes``, and the output
    width from one step of a tiny probe (sizes 1, 2, 3, ...: which size the output has)."""
    probe_sizes = {name: 3 + k for k, name in enumerate(sizes)}
    probe = cell.Parameters(1, 2, **probe_sizes)
    outputs, _, _ = cell.forward(probe, np.zeros((1, 1, 1)))
    widths = {2: hidden_size} | {probe_sizes[name]: sizes[name] for name in sizes}
    output_size = widths[int(outputs.shape[-1])]
    shapes = {}
    for layer in range(num_layers):
        event_size = input_size if layer == 0 else output_size * directions
        layer_shapes = cell.Parameters.shapes(event_size, hidden_size, **sizes)
        for direction in range(directions):
            prefix = Recurrent._prefix(layer, direction)
            shapes.update({f"{prefix}.{name}": shape for name, shape in layer_shapes.items()})
    return shapes


def _initial_name(cell, k: int) -> str:
    """The Gradients attribute of state ``k``'s initial value: h0, c0 (``<short>0``)."""
    names = [n for n in cell.Gradients.NAMES if n not in cell.Parameters.NAMES and n != "events"]
    return names[k]
