"""Input checking of the kernels' Python API: every error names the argument, what was expected
and what was given.

The binding (:class:`lstm_sym.native.NativeCell`) checks with these functions whatever does not
take its fast path; their errors are the same as the generated NumPy modules' (which keep their
own copies, so that a generated module imports nothing but NumPy).
"""

from __future__ import annotations

import numpy as np


def real_array(value, name: str) -> np.ndarray:
    """``value`` as an ndarray of real numbers (bool, int or float), else TypeError."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a real numeric array, got {type(value).__name__}"
        ) from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    return array


def expect_shape(array: np.ndarray, name: str, expected, meaning: str) -> None:
    """ValueError naming ``name``, ``expected`` (``meaning`` says it in words) and the shape."""
    if array.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} {meaning}, got {array.shape}")


def float_dtype(*arrays) -> np.dtype:
    """float64 or float32: the NumPy promotion of the floating inputs (integers are weak,
    float16 computes in float32, None is skipped); TypeError for anything wider."""
    floats = [a.dtype for a in arrays if a is not None and a.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"inputs must be float32 or float64 (or integers), got {dtype}")
    return dtype


def initial_state(
    value, name: str, batched: bool, batch: int, size: int, size_name: str = "hidden_size"
):
    """An initial state as a (batch, size) array (None stays None): ``(batch, size)`` for a
    batched call, ``(size,)`` for an unbatched one."""
    if value is None:
        return None
    value = real_array(value, name)
    if batched:
        expect_shape(value, name, (batch, size), f"(batch, {size_name})")
        return value
    expect_shape(value, name, (size,), f"({size_name},)")
    return value[None, :]


def lengths(value, batched: bool, batch: int, steps: int):
    """``lengths`` as a C-contiguous int64 array of shape (batch,) (None stays None): for batched
    events an integer array of shape (batch,), for unbatched events an integer scalar; each
    length 1 to T (the events' steps). The generated NumPy modules' ``_lengths``, message for
    message."""
    if value is None:
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"lengths must hold integers, got {type(value).__name__}") from error
    if array.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {array.dtype}")
    if batched and array.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (batch,), got {array.shape}")
    if not batched and array.shape != ():
        raise ValueError(
            f"lengths must be an integer scalar (shape ()) for unbatched events, got {array.shape}"
        )
    array = array.reshape(-1)
    bad = np.flatnonzero((array < 1) | (array > steps))
    if bad.size:
        where = f"lengths[{bad[0]}]" if batched else "lengths"
        raise ValueError(
            f"{where} must be between 1 and T = {steps} (the events' steps), got {array[bad[0]]}"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def adjoint(value, name: str, shape, meaning: str, dtype) -> np.ndarray:
    """An adjoint given to backward, checked against ``shape`` and converted to ``dtype``."""
    value = real_array(value, name)
    expect_shape(value, name, shape, meaning)
    return value.astype(dtype, copy=False)


def cache_flag(value) -> bool:
    """``forward``'s ``cache`` argument: True (training, a cache for backward) or False
    (inference, no cache), as the generated NumPy modules take it; else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"cache must be True or False, got {value!r}")
    return bool(value)


def dtype_argument(value) -> np.dtype:
    """A ``dtype`` argument as float32 or float64, else TypeError naming it."""
    try:
        dtype = np.dtype(value)
    except TypeError as error:
        raise TypeError(f"dtype must be float32 or float64, got {value!r}") from error
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype
