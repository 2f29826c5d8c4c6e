"""A hand-written NumPy LSTM in the seed tutorial's style: the benchmark's baseline.

One matrix product per gate and side (event, hidden) and step, as the tutorial's
``forget_gate``/``input_gate``/``output_gate`` compute them, and a backward pass written the
same way (per-gate deltas, per-step weight-gradient products). Batched, feature axis last, the
gate order and conventions of ``generated/lstm.py``. It is what a reader of the tutorial would
write; the generated module must beat it.
"""

from __future__ import annotations

import numpy as np

GATES = ("update", "forget", "candidate", "output")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class Weights:
    """Per-gate weights and (hidden,) biases, taken from a generated ``Parameters``."""

    def __init__(self, parameters, dtype):
        arrays = parameters.arrays()
        self.w = {g: arrays[f"event_{g}_weights"].astype(dtype) for g in GATES}
        self.u = {g: arrays[f"hidden_{g}_weights"].astype(dtype) for g in GATES}
        self.b = {
            g: (arrays[f"event_{g}_bias"] + arrays[f"hidden_{g}_bias"]).astype(dtype) for g in GATES
        }


def forward(weights, events, h0, c0):
    """events (T, B, X); returns outputs (T, B, H) and the per-step cache (a list)."""
    h, c = h0, c0
    outputs, steps = [], []
    for x in events:
        pre = {g: x @ weights.w[g].T + weights.b[g] + h @ weights.u[g].T for g in GATES}
        f = _sigmoid(pre["forget"])
        i = _sigmoid(pre["update"])
        g = np.tanh(pre["candidate"])
        o = _sigmoid(pre["output"])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        h_new = o * tc
        steps.append((x, h, c, f, i, g, o, tc))
        outputs.append(h_new)
        h, c = h_new, c_new
    return np.stack(outputs), (h, c), steps


def backward(weights, steps, d_outputs):
    """BPTT of ``forward``; returns ``(dW, dU, db, d_events, d_h0, d_c0)`` (dicts per gate)."""
    d_w = {g: np.zeros_like(weights.w[g]) for g in GATES}
    d_u = {g: np.zeros_like(weights.u[g]) for g in GATES}
    d_b = {g: np.zeros_like(weights.b[g]) for g in GATES}
    d_h = np.zeros_like(d_outputs[0])
    d_c = np.zeros_like(d_outputs[0])
    d_events = []
    for t in reversed(range(len(steps))):
        x, h_prev, c_prev, f, i, g, o, tc = steps[t]
        dh = d_h + d_outputs[t]
        do = dh * tc
        dc = d_c + dh * o * (1.0 - tc * tc)
        delta = {
            "forget": dc * c_prev * f * (1.0 - f),
            "update": dc * g * i * (1.0 - i),
            "candidate": dc * i * (1.0 - g * g),
            "output": do * o * (1.0 - o),
        }
        d_x = np.zeros_like(x)
        d_h = np.zeros_like(h_prev)
        for gate in GATES:
            d_w[gate] += delta[gate].T @ x
            d_u[gate] += delta[gate].T @ h_prev
            d_b[gate] += delta[gate].sum(axis=0)
            d_x += delta[gate] @ weights.w[gate]
            d_h += delta[gate] @ weights.u[gate]
        d_c = dc * f
        d_events.append(d_x)
    return d_w, d_u, d_b, np.stack(d_events[::-1]), d_h, d_c
