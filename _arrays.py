"""Arrow arrays to NumPy and back through their buffers, without pyarrow's pandas shim.

pyarrow imports pandas (when installed) the first time a process converts between Arrow
and NumPy or Python values (``Array.to_numpy``, ``pa.array``, a Python scalar given to a
compute function): 0.15 to 0.25 CPU-seconds, which ExampleGen and StatisticsGen would pay
in every run, and the Trainer's first step would wait for, for conversions that need no
pandas. These functions cover the ones on their per-batch paths (the data components' and
the tensor core's feeding).

Example:
    >>> import numpy as np
    >>> to_numpy(from_numpy(np.array([1, 2, 3]))).tolist(), to_numpy(from_numpy(np.array([True, False]))).tolist()
    ([1, 2, 3], [True, False])
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["from_numpy", "to_numpy"]

_ARROW_TYPES = {np.dtype(np.int8): pa.int8(), np.dtype(np.int16): pa.int16(), np.dtype(np.int32): pa.int32(),
                np.dtype(np.int64): pa.int64(), np.dtype(np.uint8): pa.uint8(), np.dtype(np.uint16): pa.uint16(),
                np.dtype(np.uint32): pa.uint32(), np.dtype(np.uint64): pa.uint64(),
                np.dtype(np.float32): pa.float32(), np.dtype(np.float64): pa.float64()}


def _dtype(t: pa.DataType) -> np.dtype | None:
    """The NumPy dtype of a fixed-width integer or float Arrow type (``None`` for others)."""
    if pa.types.is_integer(t):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return np.dtype(f"f{t.bit_width // 8}")
    return None


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``array.to_numpy(zero_copy_only=False)``; without pandas for null-free numbers and bools.

    Numbers are a read-only view of the values buffer; bools are unpacked from their
    bits. Other arrays (with nulls, text, timestamps) are converted by pyarrow.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        return array.to_numpy(zero_copy_only=False)
    t, n, offset = array.type, len(array), array.offset
    if pa.types.is_boolean(t):
        buf = array.buffers()[1]
        if n == 0 or buf is None:
            return np.zeros(n, dtype=bool)
        bits = np.frombuffer(buf, dtype=np.uint8, count=(offset + n + 7) // 8)
        return np.unpackbits(bits, count=offset + n, bitorder="little")[offset:].view(np.bool_)
    dtype = _dtype(t)
    if dtype is None:
        return array.to_numpy(zero_copy_only=False)
    buf = array.buffers()[1]
    if n == 0 or buf is None:
        return np.empty(n, dtype=dtype)
    return np.frombuffer(buf, dtype=dtype, count=n, offset=offset * dtype.itemsize)


def from_numpy(values: np.ndarray) -> pa.Array:
    """``pa.array(values)`` for a 1-D bool or number array (no nulls); numbers without a copy
    when ``values`` is contiguous."""
    values = np.asarray(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    t = _ARROW_TYPES.get(values.dtype)
    if t is None or values.ndim != 1:
        return pa.array(values)
    return pa.Array.from_buffers(t, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])
