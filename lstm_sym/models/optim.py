"""Optimizers and gradient clipping over ``{name: array}`` mappings, as ``torch.optim``.

Parameters are the live arrays of a model (``model.named_parameters()``), updated in place;
gradients a mapping with the same names and shapes. The update rules are PyTorch's
single-tensor (``foreach=False``) implementations, operation for operation, so a run equals
``torch.optim.SGD`` / ``torch.optim.Adam`` in float64 to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _check_gradients(parameters: Mapping, gradients: Mapping) -> None:
    if set(gradients) != set(parameters):
        missing = sorted(set(parameters) - set(gradients))
        extra = sorted(set(gradients) - set(parameters))
        raise ValueError(
            f"gradients do not match the parameters: missing {missing}, unexpected {extra}"
        )
    for name, gradient in gradients.items():
        if np.shape(gradient) != parameters[name].shape:
            raise ValueError(
                f"gradient {name} must have shape {parameters[name].shape}, "
                f"got {np.shape(gradient)}"
            )


class Optimizer:
    """Base class: holds ``{name: array}`` (floating, writable) and a learning rate."""

    def __init__(self, parameters: Mapping[str, np.ndarray], lr: float):
        self.parameters = dict(parameters)
        if not self.parameters:
            raise ValueError("parameters is empty")
        for name, array in self.parameters.items():
            if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
                raise TypeError(
                    f"parameter {name} must be a floating ndarray, got {type(array).__name__}"
                )
            if not array.flags.writeable:
                raise ValueError(f"parameter {name} is read-only: it is updated in place")
        if not lr >= 0.0:
            raise ValueError(f"lr must be >= 0, got {lr!r}")
        self.lr = float(lr)
        self.state: dict[str, dict] = {name: {} for name in self.parameters}

    def step(self, gradients: Mapping[str, np.ndarray]) -> None:
        _check_gradients(self.parameters, gradients)
        for name, parameter in self.parameters.items():
            gradient = np.asarray(gradients[name], dtype=parameter.dtype)
            self._update(parameter, gradient, self.state[name])

    def _update(self, parameter, gradient, state) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay
    (``torch.optim.SGD``): the first step's buffer is the gradient itself."""

    def __init__(
        self,
        parameters,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(parameters, lr)
        if momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(
                f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def _update(self, parameter, gradient, state) -> None:
        if self.weight_decay:
            gradient = gradient + self.weight_decay * parameter
        if self.momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = gradient.copy()
            else:
                buffer *= self.momentum
                buffer += (1.0 - self.dampening) * gradient
            gradient = gradient + self.momentum * buffer if self.nesterov else buffer
        parameter -= self.lr * gradient


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, L2 ``weight_decay``, optional AMSGrad)."""

    def __init__(
        self,
        parameters,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(parameters, lr)
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        if eps < 0.0 or weight_decay < 0.0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), bool(amsgrad)

    def _update(self, parameter, gradient, state) -> None:
        if not state:
            state.update(
                step=0, exp_avg=np.zeros_like(parameter), exp_avg_sq=np.zeros_like(parameter)
            )
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(parameter)
        state["step"] += 1
        step = state["step"]
        if self.weight_decay:
            gradient = gradient + self.weight_decay * parameter
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1.0 - self.beta1) * (
            gradient - exp_avg
        )  # torch: exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq *= self.beta2
        exp_avg_sq += (1.0 - self.beta2) * gradient * gradient
        bias_correction1 = 1.0 - self.beta1**step
        bias_correction2_sqrt = (1.0 - self.beta2**step) ** 0.5
        step_size = self.lr / bias_correction1
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            denominator = np.sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt + self.eps
        else:
            denominator = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + self.eps
        parameter -= step_size * (exp_avg / denominator)


def clip_grad_norm(
    gradients: Mapping[str, np.ndarray],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale ``gradients`` in place so their global norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_``: the norm of the per-array norms; every array is
    multiplied by ``min(1, max_norm / (total + 1e-6))``. Returns the total norm before clipping.
    """
    arrays = list(gradients.values())
    for name, array in gradients.items():
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            raise TypeError(f"gradient {name} must be a floating ndarray (it is scaled in place)")
    if not arrays:
        return 0.0
    norm_type = float(norm_type)
    if norm_type == np.inf:
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    else:
        norms = np.array([np.sum(np.abs(a) ** norm_type) ** (1.0 / norm_type) for a in arrays])
        total = float(np.sum(norms**norm_type) ** (1.0 / norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise FloatingPointError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total})"
        )
    coefficient = min(float(max_norm) / (total + 1e-6), 1.0)
    for array in arrays:
        array *= coefficient
    return total
