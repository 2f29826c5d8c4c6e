"""Losses, each returning ``(loss, d_prediction)``: the value and its gradient.

Reductions follow PyTorch: ``"mean"`` (default), ``"sum"``.
"""

from __future__ import annotations

import numpy as np

from ._io import float_array


def _scale(reduction: str, count: int) -> float:
    if reduction == "mean":
        return 1.0 / count
    if reduction == "sum":
        return 1.0
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def mse_loss(prediction, target, reduction: str = "mean"):
    """Mean squared error, as ``torch.nn.functional.mse_loss``: ``(loss, dL/dprediction)``."""
    prediction = float_array(prediction, "prediction")
    target = float_array(target, "target")
    if target.shape != prediction.shape:
        raise ValueError(
            f"target must have the shape of prediction {prediction.shape}, got {target.shape}"
        )
    scale = _scale(reduction, max(prediction.size, 1))
    difference = prediction - target
    return float(np.sum(difference * difference) * scale), 2.0 * scale * difference


def log_softmax(logits, axis: int = -1):
    """``log(softmax(logits))`` without overflow: the max is subtracted first."""
    logits = float_array(logits, "logits")
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(logits, axis: int = -1):
    """Softmax along ``axis``, overflow-free."""
    return np.exp(log_softmax(logits, axis=axis))


def cross_entropy(logits, labels, reduction: str = "mean"):
    """Softmax cross-entropy of ``logits`` (..., classes) and integer ``labels`` (...), as
    ``torch.nn.functional.cross_entropy`` (classes last): ``(loss, dL/dlogits)``.

    Stable for any logits: computed through ``log_softmax`` (log-sum-exp with the max taken
    out); the gradient is ``softmax - one_hot``, scaled by the reduction.
    """
    logits = float_array(logits, "logits")
    labels = np.asarray(labels)
    if logits.ndim == 0:
        raise ValueError("logits must have a class axis (..., classes), got a scalar")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape {logits.shape[:-1]} (logits without the class axis), "
            f"got {labels.shape}"
        )
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"labels must be in [0, {classes}), got values in [{labels.min()}, {labels.max()}]"
        )
    log_p = log_softmax(logits).reshape(-1, classes)
    flat = labels.reshape(-1)
    rows = np.arange(flat.size)
    scale = _scale(reduction, max(flat.size, 1))
    loss = -float(np.sum(log_p[rows, flat])) * scale
    d_logits = np.exp(log_p)
    d_logits[rows, flat] -= 1.0
    return loss, (d_logits * scale).reshape(logits.shape)
