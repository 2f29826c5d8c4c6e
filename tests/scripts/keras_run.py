"""Run Keras 3 layers on given weights and events, in a process of its own: the backend is chosen
by ``KERAS_BACKEND`` before Keras is imported, and the choice stays in this process.

    KERAS_BACKEND=torch python tests/scripts/keras_run.py CASES.json INPUTS.npz OUTPUTS.npz

Each case names a layer (``LSTM``/``GRU``, ``reset_after``, ``use_bias``, ``bidirectional``,
``dtype``, ``activation``); INPUTS holds ``<case>.x`` and the layer's weights ``<case>.w<k>``
in ``get_weights()`` order. Built with Keras' own API, the layer runs on ``x``; OUTPUTS gets,
per case: the outputs and final states as Keras computes them (``<case>.out<k>``), their dtype
and the layer's ``compute_dtype`` (``<case>.dtypes``), what ``lstm_sym.interop.from_keras_layer``
reads from the layer (``<case>.ours.<direction>.<name>``) or the error it raises
(``<case>.error``), and the outputs and weights of the layer ``to_keras_layer`` builds back
from those parameters (``<case>.again.out<k>``, ``<case>.again.w<k>``).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def build(keras, case):
    kind = getattr(keras.layers, case["layer"])
    options = {"return_sequences": True, "return_state": True, "dtype": case["dtype"]}
    options["use_bias"] = case.get("use_bias", True)
    if "activation" in case:
        options["activation"] = case["activation"]
    if case["layer"] == "GRU":
        options["reset_after"] = case["reset_after"]
    layer = kind(case["units"], **options)
    if case.get("bidirectional"):
        layer = keras.layers.Bidirectional(layer, dtype=case["dtype"])
    return layer


def main(cases_path, inputs_path, outputs_path) -> None:
    import keras

    from lstm_sym import interop

    cases = json.loads(open(cases_path, encoding="utf-8").read())
    inputs = dict(np.load(inputs_path))
    out = {"backend": np.array(keras.backend.backend())}
    for case in cases:
        name = case["name"]
        x = inputs[f"{name}.x"]
        layer = build(keras, case)
        layer.build(x.shape)
        count = sum(1 for key in inputs if key.startswith(f"{name}.w"))
        layer.set_weights([inputs[f"{name}.w{k}"] for k in range(count)])
        results = [keras.ops.convert_to_numpy(r) for r in layer(x)]
        for k, result in enumerate(results):
            out[f"{name}.out{k}"] = result
        out[f"{name}.dtypes"] = np.array(
            [str(results[0].dtype), str(layer.compute_dtype), str(layer.get_weights()[0].dtype)]
        )
        try:
            ours = interop.from_keras_layer(layer)
        except (TypeError, ValueError) as error:
            out[f"{name}.error"] = np.array(f"{type(error).__name__}: {error}")
            continue
        directions = ours if isinstance(ours, list) else [ours]
        for d, parameters in enumerate(directions):
            out[f"{name}.cell"] = np.array(type(parameters).__module__.rsplit(".", 1)[-1])
            for attribute, value in parameters.arrays().items():
                out[f"{name}.ours.{d}.{attribute}"] = value
        if not case.get("bidirectional"):
            again = interop.to_keras_layer(ours, return_sequences=True, return_state=True)
            for k, result in enumerate(again(x)):
                out[f"{name}.again.out{k}"] = keras.ops.convert_to_numpy(result)
            for k, weight in enumerate(again.get_weights()):
                out[f"{name}.again.w{k}"] = weight
    np.savez(outputs_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
