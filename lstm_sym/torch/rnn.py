"""``RNN``: any cell as a stacked, optionally bidirectional PyTorch module with ``nn.LSTM``'s
interface, each layer and direction one call of the cell's operator (:mod:`.ops`).

Parameters are named as PyTorch names them for the cells PyTorch has (``lstm``: ``nn.LSTM``,
``gru``: ``nn.GRU``, ``lstmp``: ``nn.LSTM(proj_size=P)``: ``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``, ``weight_hr_l0``, ``_reverse`` for the reverse direction), so
their state dicts load both ways; every other cell's parameters carry the names of its C
parameter arrays (``event_weights_l0``, ``hidden_weights_l0``, ``peephole_update_l0``, ...).
Gates are stacked in PyTorch's order, so the arrays are the same either way.

Variable lengths: a ``PackedSequence`` in gives a ``PackedSequence`` out (the same
``batch_sizes`` and indices) and final states in the batch's own order, as ``nn.LSTM``; the
operator runs the padded batch with each row's length (rows past their length keep their states
and output zeros), and the reverse direction reads each row's valid part backwards (as
:class:`lstm_sym.models.Recurrent` does: a per-row index that is its own inverse).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import ops

#: The cells PyTorch has: their C arrays' PyTorch names, in the order PyTorch registers them.
TORCH_NAMES = {
    "event_weights": "weight_ih",
    "hidden_weights": "weight_hh",
    "event_bias": "bias_ih",
    "hidden_bias": "bias_hh",
    "projection_weights": "weight_hr",
}
TORCH_CELLS = ("lstm", "gru", "lstmp")


class RNN(nn.Module):
    """A cell (a built-in cell's name, or the :class:`~lstm_sym.torch.ops.CellOps` of a user's
    cell from :func:`lstm_sym.torch.ops.load`) with ``nn.LSTM``'s interface.

    ``proj_size`` > 0 needs a cell with a projection (``lstmp``; ``RNN("lstm", proj_size=P)`` is
    ``lstmp``, as ``nn.LSTM(proj_size=P)`` is). Called as ``rnn(input, hx=None)``: ``input``
    (T, B, input_size), (B, T, input_size) with ``batch_first``, (T, input_size) unbatched, or a
    ``PackedSequence``; returns ``output, h_n`` for a one-state cell, ``output, (h_n, c_n)`` for a
    two-state one (more states: ``output, (s_1, s_2, ...)``), each state
    (num_layers * num_directions, B, size); ``hx`` the same shapes (None: zeros)."""

    def __init__(
        self,
        cell,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if isinstance(cell, str) and cell == "lstm" and proj_size > 0:
            cell = "lstmp"
        self.cell = ops.get(cell)
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1) or isinstance(
            dropout, bool
        ):
            raise ValueError(
                f"dropout should be a number in range [0, 1] representing the probability of an "
                f"element being zeroed, got {dropout!r}"
            )
        if self.cell.projected:
            if not isinstance(proj_size, int) or proj_size < 1:
                raise ValueError(
                    f"proj_size must be a positive integer for cell {self.cell.name!r} "
                    f"(it has a projection), got {proj_size!r}"
                )
        elif proj_size != 0:
            raise ValueError(
                f"proj_size must be 0 for cell {self.cell.name!r} (it has no projection), "
                f"got {proj_size!r}"
            )
        self.mode = self.cell.name
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        directions = 2 if bidirectional else 1
        self._sizes = {"hidden_size": hidden_size, "projection_size": proj_size}
        #: (state short name, entries) of each state in the cell's order
        self.state_sizes = tuple((s, self._sizes[size]) for s, size in self.cell.states)
        self.output_size = self._sizes[dict(self.cell.states)[self.cell.output_state]]
        torch_named = self.cell.directory is None and self.cell.name in TORCH_CELLS
        order = list(self.cell.weights)
        if torch_named:
            order.sort(key=list(TORCH_NAMES).index)
        factory = {"device": device, "dtype": dtype}
        #: per layer and direction: the parameter name of each weight in the operator's order
        #: (None: a bias left out by ``bias=False``, passed as zeros)
        self._weight_names = []
        for layer in range(num_layers):
            event_size = input_size if layer == 0 else self.output_size * directions
            sizes = {**self._sizes, "event_size": event_size}
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                names = {}
                for array in order:
                    if not bias and array.endswith("bias"):
                        names[array] = None
                        continue
                    name = (TORCH_NAMES[array] if torch_named else array) + suffix
                    shape = self.cell.shape(array, sizes)
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                    names[array] = name
                self._weight_names.append(tuple(names[a] for a in self.cell.weights))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialization of its recurrent modules: every parameter drawn from
        uniform(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), except the per-unit parameters the
        cell's spec gives a value (``module_init``: lstm_ln's layer-norm scales 1 and shifts
        0, as ``torch.nn.LayerNorm``)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        values = self.cell.abi.module_init
        for names in self._weight_names:
            for array, name in zip(self.cell.weights, names, strict=True):
                if name is not None and array in values:
                    nn.init.constant_(getattr(self, name), values[array])

    def flatten_parameters(self) -> None:
        """Nothing to do (``nn.LSTM``'s cuDNN layout call, kept so code written for it runs)."""

    def extra_repr(self) -> str:
        text = f"{self.cell.name!r}, {self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        for name, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
        ):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text

    def _weights(self, index, sizes, like):
        """The operator's weights of layer and direction ``index`` (zeros for left-out biases)."""
        weights, parameters = [], self._parameters  # nn.Module.__getattr__ costs a µs a name
        for array, name in zip(self.cell.weights, self._weight_names[index], strict=True):
            if name is None:
                weights.append(like.new_zeros(self.cell.shape(array, sizes)))
            else:
                weights.append(parameters[name])
        return weights

    def _initial(self, hx, batch, batched, like):
        """The initial states, per state: (num_layers * directions, B, size) tensors, or when
        ``hx`` is None one (B, size) zeros tensor per layer and direction, the same one for all
        (the operators only read it)."""
        count = self.num_layers * (2 if self.bidirectional else 1)
        states = len(self.state_sizes)
        if hx is None:
            return [[like.new_zeros((batch, size))] * count for _, size in self.state_sizes]
        if states == 1 and isinstance(hx, torch.Tensor):
            hx = (hx,)
        if not isinstance(hx, (tuple, list)) or len(hx) != states:
            kind = "a Tensor" if states == 1 else f"a tuple of {states} Tensors"
            raise TypeError(f"hx must be {kind} for cell {self.cell.name!r}, got {type(hx)}")
        result = []
        for k, ((short, size), value) in enumerate(zip(self.state_sizes, hx, strict=True)):
            expected = (count, batch, size) if batched else (count, size)
            label = "hx" if states == 1 else f"hx[{k}] ({short}0)"
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{label} must be a Tensor, got {type(value).__name__}")
            if tuple(value.shape) != expected:
                raise RuntimeError(
                    f"Expected {label} size {expected}, got {tuple(value.shape)}"
                    + ("" if batched else " (unbatched input: no batch axis)")
                )
            if value.dtype != like.dtype or value.device != like.device:
                raise RuntimeError(
                    f"{label} must be {like.dtype} on {like.device} like input, "
                    f"got {value.dtype} on {value.device}"
                )
            result.append(value if batched else value.unsqueeze(1))
        return result

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        lengths = None
        if packed:
            x, lengths = pad_packed_sequence(input, batch_first=False)
            batched = True
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(
                    f"input must be a Tensor or PackedSequence, got {type(input).__name__}"
                )
            if input.dim() not in (2, 3):
                raise ValueError(
                    f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D "
                    "instead"
                )
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {x.shape[-1]}"
            )
        steps, batch = x.shape[0], x.shape[1]
        initial = self._initial(hx, batch, batched, x)
        if lengths is not None:
            lengths = lengths.to(device=x.device, dtype=torch.int64)
            order = _reversal(lengths, steps)
        else:
            order = None
        directions = 2 if self.bidirectional else 1
        finals = [[None] * (self.num_layers * directions) for _ in self.state_sizes]
        for layer in range(self.num_layers):
            sizes = {**self._sizes, "event_size": x.shape[-1]}
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                events = x if direction == 0 else _reverse(x, order)
                states = [s[index] for s in initial]
                y, lasts = self.cell.apply(events, states, self._weights(index, sizes, x), lengths)
                for k, last in enumerate(lasts):
                    finals[k][index] = last
                outputs.append(y if direction == 0 else _reverse(y, order))
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        h = [f[0].unsqueeze(0) if len(f) == 1 else torch.stack(f) for f in finals]
        if packed:
            sorted_x = (
                x.index_select(1, input.sorted_indices) if input.sorted_indices is not None else x
            )
            sorted_lengths = (
                lengths.index_select(0, input.sorted_indices.to(lengths.device))
                if input.sorted_indices is not None
                else lengths
            )
            data = pack_padded_sequence(sorted_x, sorted_lengths.cpu(), enforce_sorted=True).data
            output = PackedSequence(
                data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
            )
        elif not batched:
            output, h = x.squeeze(1), [s.squeeze(1) for s in h]
        else:
            output = x.transpose(0, 1) if self.batch_first else x
        if len(h) == 1:
            return output, h[0]
        return output, tuple(h)


def _reversal(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(T, batch) step indices: row b's first ``lengths[b]`` steps in reverse order, then its
    padded steps where they are; its own inverse (as ``lstm_sym.models.layers._reversal``)."""
    t = torch.arange(steps, device=lengths.device)[:, None]
    return torch.where(t < lengths, lengths - 1 - t, t)


def _reverse(sequence: torch.Tensor, order) -> torch.Tensor:
    """``sequence`` (T, batch, features) with each row's valid part reversed (``order`` from
    :func:`_reversal`), or the whole sequence reversed when there are no lengths."""
    if order is None:
        return sequence.flip(0)
    return sequence.gather(0, order[:, :, None].expand(-1, -1, sequence.shape[-1]))
