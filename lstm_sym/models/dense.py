"""A fully connected layer (the seed's omitted output layer): ``y = x W^T + b`` (``nn.Linear``)."""

from __future__ import annotations

import numpy as np

from ._io import FORMAT_VERSION, float_array, open_model, save_npz


class Dense:
    """``weights`` (out_features, in_features) and ``bias`` (out_features,), PyTorch's layout
    and default initialization: uniform(-1/sqrt(in_features), 1/sqrt(in_features)).

    ``forward(x)`` takes (..., in_features); ``backward`` returns ``{"weights", "bias"}``
    gradients and dL/dx.
    """

    KIND = "dense"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        dtype=np.float64,
        rng=None,
        init: bool = True,
    ):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.dtype = np.dtype(dtype)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.weights = np.zeros((self.out_features, self.in_features), dtype=self.dtype)
        self.bias = np.zeros(self.out_features, dtype=self.dtype) if bias else None
        if init:
            bound = 1.0 / np.sqrt(self.in_features)
            self.weights[...] = rng.uniform(-bound, bound, self.weights.shape)
            if self.bias is not None:
                self.bias[...] = rng.uniform(-bound, bound, self.bias.shape)

    def __repr__(self):
        return (
            f"Dense(in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None})"
        )

    def named_parameters(self) -> dict[str, np.ndarray]:
        """The live arrays: ``{"weights": ..., "bias": ...}``."""
        named = {"weights": self.weights}
        if self.bias is not None:
            named["bias"] = self.bias
        return named

    def forward(self, inputs):
        """``outputs, cache`` with outputs (..., out_features)."""
        x = float_array(inputs, "inputs")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"inputs must have shape (..., {self.in_features}) (..., in_features), "
                f"got {x.shape}"
            )
        dtype = np.result_type(x.dtype, self.weights.dtype)
        x = x.astype(dtype, copy=False)
        y = x @ self.weights.T.astype(dtype, copy=False)
        if self.bias is not None:
            y = y + self.bias
        return y, (x, dtype)

    def backward(self, cache, d_outputs):
        """``(gradients, d_inputs)``: gradients ``{"weights": dW, "bias": db}``."""
        x, dtype = cache
        d_y = float_array(d_outputs, "d_outputs")
        expected = (*x.shape[:-1], self.out_features)
        if d_y.shape != expected:
            raise ValueError(
                f"d_outputs must have shape {expected} (like outputs), got {d_y.shape}"
            )
        d_y = d_y.astype(dtype, copy=False)
        rows_y = d_y.reshape(-1, self.out_features)
        rows_x = x.reshape(-1, self.in_features)
        gradients = {"weights": rows_y.T @ rows_x}
        if self.bias is not None:
            gradients["bias"] = rows_y.sum(axis=0)
        return gradients, d_y @ self.weights.astype(dtype, copy=False)

    # -- PyTorch and files ------------------------------------------------------------------

    @classmethod
    def from_torch(cls, module_or_state_dict, dtype=None) -> Dense:
        """From an ``nn.Linear`` or its state dict (``weight``, optional ``bias``), duck-typed."""
        state = module_or_state_dict
        if hasattr(state, "state_dict") and callable(state.state_dict):
            state = state.state_dict()
        arrays = {
            key: float_array(v.detach().cpu().numpy() if hasattr(v, "detach") else v, key)
            for key, v in state.items()
        }
        if "weight" not in arrays or set(arrays) - {"weight", "bias"}:
            raise ValueError(
                f"expected the keys weight and bias of nn.Linear, got {sorted(arrays)}"
            )
        weight = arrays["weight"]
        if weight.ndim != 2:
            raise ValueError(
                f"weight must have shape (out_features, in_features), got {weight.shape}"
            )
        dtype = np.dtype(dtype) if dtype is not None else weight.dtype
        layer = cls(
            weight.shape[1], weight.shape[0], bias="bias" in arrays, dtype=dtype, init=False
        )
        layer.weights[...] = weight
        if "bias" in arrays:
            if arrays["bias"].shape != (weight.shape[0],):
                raise ValueError(
                    f"bias must have shape ({weight.shape[0]},), got {arrays['bias'].shape}"
                )
            layer.bias[...] = arrays["bias"]
        return layer

    def to_torch_state_dict(self) -> dict[str, np.ndarray]:
        """``{"weight": ..., "bias": ...}``: NumPy copies under ``nn.Linear``'s key names."""
        state = {"weight": self.weights.copy()}
        if self.bias is not None:
            state["bias"] = self.bias.copy()
        return state

    def save(self, path) -> None:
        arrays = dict(self.named_parameters())
        arrays.update(__model__=np.array(self.KIND), __format__=np.array(FORMAT_VERSION))
        save_npz(path, arrays)

    @classmethod
    def load(cls, path) -> Dense:
        """A layer saved by :meth:`save`; every array's header is checked (float32/float64,
        weights 2-D, bias (out_features,)) before any data is read."""
        with open_model(path, cls.KIND) as archive:
            names = set(archive.entries) - {"__model__", "__format__"}
            if "weights" not in names or names - {"weights", "bias"}:
                raise ValueError(f"{path} does not hold a dense layer: {sorted(names)}")
            headers = {name: archive.header(name) for name in sorted(names)}
            for name, (_, dtype) in headers.items():
                if dtype not in (np.float32, np.float64):
                    raise ValueError(f"{path}: {name} must be float32 or float64, got {dtype}")
            weights_shape = headers["weights"][0]
            if len(weights_shape) != 2:
                raise ValueError(f"{path}: weights must be 2-D, got shape {weights_shape}")
            if "bias" in headers and headers["bias"][0] != weights_shape[:1]:
                raise ValueError(
                    f"{path}: bias must have shape {weights_shape[:1]}, got {headers['bias'][0]}"
                )
            archive.check_total(
                sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in headers.values())
            )
            entries = {name: archive.read(name) for name in headers}
        return cls.from_torch(
            {"weight": entries["weights"]}
            | ({"bias": entries["bias"]} if "bias" in entries else {})
        )
