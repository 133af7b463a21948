"""Analyzers for ``preprocessing_fn`` and the machinery that fits them to data.

A user's ``preprocessing_fn(inputs) -> outputs`` is ordinary JAX code over a dict of
batched columns. The analyzers below need a full pass over the data first (a mean, a
vocabulary, quantiles); tf.Transform's idea, kept small:

1. **Trace.** ``preprocessing_fn`` is traced by JAX with a :class:`_Trace` in a context
   variable. Each analyzer call (identified by its call order: ``scale_to_z_score_0``,
   ``compute_and_apply_vocabulary_1``, ...) records what it needs and returns its
   output computed from its *constants* (a mean and a std, boundaries), which enter the
   traced function as arguments.
2. **Analyze.** The expressions the analyzers were given are evaluated batch by batch
   (one jitted function, batches padded to a power of two so few sizes compile) inside
   a mergeable kernel (:class:`AnalysisKernel`) run by the one engine,
   :func:`jfx.components._engine.run_kernel`, in-process or on Beam. An analyzer whose
   input depends on another analyzer's output (found from the jaxpr) waits for a later
   pass; most functions need one pass.
3. **Fit.** The result (:class:`FittedTransform`) is ``preprocessing_fn`` with every
   analyzer replaced by its constants: a pure function ``transform_fn(constants,
   inputs)``. String columns never enter JAX: a string column handed to
   :func:`compute_and_apply_vocabulary` or :func:`hash_strings` arrives as ``int32`` ids
   made on the host by :func:`jfx.core.encode_strings` with the spec the analyzer
   produced, exactly as a served model encodes its string inputs.

What ``inputs`` holds: every ``int``, ``float`` and ``bool`` column as ``float32``
(``bool`` as 0/1) with a missing value as ``NaN`` — analyzers ignore NaN, and
``jnp.nan_to_num`` or ``jnp.where(jnp.isnan(x), ...)`` impute; every ``string`` column
as a :class:`StringColumn` that only the two string analyzers accept (a missing string
is out of vocabulary). ``timestamp`` columns are not available.

Example:
    >>> import jax.numpy as jnp
    >>> from jfx.components import transform as jt
    >>> def preprocessing_fn(inputs):
    ...     return {"x": jnp.nan_to_num(jt.scale_to_z_score(inputs["x"])),
    ...             "city": jt.compute_and_apply_vocabulary(inputs["city"], top_k=100)}
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.extend  # jax.extend.core.Literal (not loaded by `import jax`)
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
from jfx.components._accumulators import ACCUMULATORS, finish
from jfx.components._engine import run_kernel
from jfx.core import encode_strings
from jfx.errors import ComponentError, InvalidArgumentError, JfxError

__all__ = [
    "INPUT_TYPES",
    "AnalysisKernel",
    "AnalyzerRecord",
    "FittedTransform",
    "FunctionRef",
    "StringColumn",
    "analyze",
    "bucketize",
    "call_preprocessing_fn",
    "compute_and_apply_vocabulary",
    "hash_strings",
    "pad_batch",
    "raw_input_arrays",
    "scale_to_0_1",
    "scale_to_z_score",
]

INPUT_TYPES = ("int", "float", "bool", "string")
_TRACE_BATCH = 8

_NOT_IN_TRANSFORM = (
    "{name}() was called outside a Transform. Analyzers need a pass over the data, so they "
    "only work inside a preprocessing_fn run by the Transform component (or jfx.components."
    "_analyzers.analyze). Wrong: scale_to_z_score(np.array([...])). Right: return "
    "{{'x': scale_to_z_score(inputs['x'])}} from preprocessing_fn."
)
_STRING_USE = (
    "string column {name!r} can only be passed to compute_and_apply_vocabulary(...) or "
    "hash_strings(...), which turn it into int32 ids; JAX never sees strings. "
    "Right: ids = compute_and_apply_vocabulary(inputs[{name!r}])"
)


# ---------------------------------------------------------------------------- tracing


class StringColumn:
    """A raw string column inside ``preprocessing_fn``: pass it to a string analyzer."""

    __slots__ = ("_ids", "name")

    def __init__(self, name: str, ids: Any) -> None:
        self.name = name
        self._ids = ids

    def __jax_array__(self) -> Any:
        raise TypeError(_STRING_USE.format(name=self.name))

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(_STRING_USE.format(name=self.name))

    def _refuse(self, *args: Any) -> Any:
        raise TypeError(_STRING_USE.format(name=self.name))

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = _refuse
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"StringColumn({self.name!r})"


@dataclass(frozen=True)
class AnalyzerRecord:
    """One analyzer call: its id, kind, parameters, and what it produces.

    ``column`` is the raw string column of a string analyzer; ``constants`` maps each
    constant of a numeric analyzer to its (shape, dtype).
    """

    name: str
    kind: str
    params: dict[str, Any]
    column: str | None = None
    constants: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)

    def same_call(self, other: AnalyzerRecord) -> bool:
        return (self.kind, self.params, self.column) == (other.kind, other.params, other.column)

    def encoder(self) -> dict[str, Any] | None:
        if self.kind == "hash_strings":
            return {"hash_buckets": self.params["hash_buckets"]}
        return None


class FunctionRef(Protocol):
    """Where ``preprocessing_fn`` lives (:class:`jfx.components._user_code.FunctionRef`).

    Picklable, so Beam workers import the function themselves.
    """

    def load(self) -> Callable: ...

    def describe(self) -> str: ...


class _Trace:
    """The state of one trace of ``preprocessing_fn`` (held in a context variable)."""

    def __init__(self, constants: Mapping[str, Mapping[str, Any]] | None,
                 expected: Sequence[AnalyzerRecord] | None) -> None:
        self.constants = constants
        self.expected = list(expected) if expected is not None else None
        self.records: list[AnalyzerRecord] = []
        self.analyzer_inputs: dict[str, Any] = {}
        self.accessed: list[str] = []

    def register(self, kind: str, params: dict[str, Any], *, x: Any = None, column: str | None = None,
                 constants: dict[str, tuple[tuple[int, ...], str]] | None = None) -> dict[str, Any]:
        index = len(self.records)
        record = AnalyzerRecord(f"{kind}_{index}", kind, params, column, dict(constants or {}))
        if self.expected is not None and (index >= len(self.expected)
                                          or not self.expected[index].same_call(record)):
            was = self.expected[index] if index < len(self.expected) else None
            raise ComponentError(
                f"preprocessing_fn called analyzers differently on a second trace: call {index} is "
                f"{kind}({params}) now but was {was.kind + str(was.params) if was else 'absent'}; "
                "analyzer calls must not depend on data values or randomness"
            )
        self.records.append(record)
        if x is not None:
            self.analyzer_inputs[record.name] = x
        if not record.constants:
            return {}
        if self.constants is None:  # discovery: placeholders of the right shape
            return {k: jnp.zeros(shape, dtype) for k, (shape, dtype) in record.constants.items()}
        return dict(self.constants[record.name])


_CURRENT: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("jfx_transform_trace", default=None)


def _trace(name: str) -> _Trace:
    trace = _CURRENT.get()
    if trace is None:
        raise InvalidArgumentError(_NOT_IN_TRANSFORM.format(name=name))
    return trace


class _Inputs(Mapping):
    """The ``inputs`` mapping given to ``preprocessing_fn``; records which columns are read."""

    def __init__(self, arrays: Mapping[str, Any], types: Mapping[str, str], trace: _Trace, where: str) -> None:
        self._arrays = arrays
        self._types = types
        self._trace = trace
        self._where = where

    def __getitem__(self, name: str) -> Any:
        if name not in self._types:
            raise KeyError(f"column {name!r} is not in the examples; their columns are {sorted(self._types)}")
        kind = self._types[name]
        if kind not in INPUT_TYPES:
            raise InvalidArgumentError(
                f"column {name!r} has type {kind}; preprocessing_fn {self._where} can transform "
                f"{', '.join(INPUT_TYPES)} columns only"
            )
        if name not in self._trace.accessed:
            self._trace.accessed.append(name)
        if kind == "string":
            return StringColumn(name, self._arrays.get(name))
        if name not in self._arrays:
            raise KeyError(f"column {name!r} is not an input of the fitted transform")
        return self._arrays[name]

    def __iter__(self):
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


def call_preprocessing_fn(fn: Callable, arrays: Mapping[str, Any], types: Mapping[str, str], *,
                          constants: Mapping[str, Mapping[str, Any]] | None = None,
                          expected: Sequence[AnalyzerRecord] | None = None,
                          where: str = "") -> tuple[dict[str, Any], _Trace]:
    """Calls ``fn`` on ``arrays`` under a trace; returns (outputs, the trace).

    Raises:
        ComponentError: ``fn`` raised (the message names ``where`` and the error), or
            returned something other than a dict of arrays.
    """
    trace = _Trace(constants, expected)
    token = _CURRENT.set(trace)
    try:
        try:
            out = fn(_Inputs(arrays, types, trace, where))
        except JfxError:
            raise
        except Exception as err:
            detail = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            detail = str(detail).split("\n-----")[0]  # drop JAX's traceback-filtering note
            raise ComponentError(f"preprocessing_fn {where} raised {type(err).__name__}: {detail}") from err
    finally:
        _CURRENT.reset(token)
    if not isinstance(out, Mapping) or not out:
        raise ComponentError(
            f"preprocessing_fn {where} returned {type(out).__name__}; it must return a non-empty dict "
            "of output name -> array, e.g. {'x': scale_to_z_score(inputs['x'])}"
        )
    outputs = {}
    for key, value in out.items():
        if isinstance(value, StringColumn):
            raise ComponentError(
                f"preprocessing_fn {where}: output {key!r} is the raw string column {value.name!r}; "
                + _STRING_USE.format(name=value.name)
            )
        outputs[str(key)] = jnp.asarray(value)
    if expected is not None and len(trace.records) != len(expected):
        raise ComponentError(f"preprocessing_fn {where} called {len(trace.records)} analyzers on a second "
                             f"trace but {len(expected)} on the first; analyzer calls must be deterministic")
    return outputs, trace


# ---------------------------------------------------------------------------- analyzers


def _numeric(x: Any, name: str) -> jax.Array:
    if isinstance(x, StringColumn):
        raise InvalidArgumentError(
            f"{name}() got the string column {x.name!r}; it takes numbers. Encode strings with "
            "compute_and_apply_vocabulary(...) or hash_strings(...)"
        )
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise InvalidArgumentError(f"{name}() takes a batch-first array; got a scalar")
    return x.astype(jnp.float32)


def scale_to_z_score(x: Any) -> jax.Array:
    """``(x - mean) / std`` with the mean and population std of ``x`` over the analyzed data.

    NaN values are ignored by the analysis and stay NaN. A constant input (std 0) is
    only centred; with no values at all the mean is 0 and the std 1.

    Returns:
        ``float32``, the shape of ``x``.
    """
    x = _numeric(x, "scale_to_z_score")
    c = _trace("scale_to_z_score").register("scale_to_z_score", {}, x=x,
                                            constants={"mean": ((), "float32"), "std": ((), "float32")})
    return (x - c["mean"]) / c["std"]


def scale_to_0_1(x: Any) -> jax.Array:
    """``(x - min) / (max - min)`` with the min and max of ``x`` over the analyzed data.

    NaN is ignored by the analysis and stays NaN. A constant (or empty) input maps to 0.5.
    Values outside the analyzed range fall outside [0, 1].

    Returns:
        ``float32``, the shape of ``x``.
    """
    x = _numeric(x, "scale_to_0_1")
    c = _trace("scale_to_0_1").register("scale_to_0_1", {}, x=x,
                                        constants={"min": ((), "float32"), "max": ((), "float32")})
    lo, hi = c["min"], c["max"]
    span = hi - lo
    return jnp.where(span > 0, (x - lo) / jnp.where(span > 0, span, 1), jnp.float32(0.5) + 0 * x)


def bucketize(x: Any, num_buckets: int) -> jax.Array:
    """The quantile bucket of ``x``: ``num_buckets`` buckets of about equal counts.

    Boundaries are the quantiles at ranks ``1/n, ..., (n-1)/n`` of the analyzed values
    (a KLL sketch: exact up to 2,048 values, then within 1% rank error). Bucket ``i``
    holds ``boundary[i-1] <= x < boundary[i]``. NaN gets the extra id ``num_buckets``
    (size an embedding ``num_buckets + 1``, or impute first).

    Returns:
        ``int32`` ids in ``[0, num_buckets]``, the shape of ``x``.
    """
    if not isinstance(num_buckets, int) or isinstance(num_buckets, bool) or num_buckets < 1:
        raise InvalidArgumentError(f"bucketize(num_buckets={num_buckets!r}): expected an int >= 1")
    x = _numeric(x, "bucketize")
    c = _trace("bucketize").register("bucketize", {"num_buckets": num_buckets}, x=x,
                                     constants={"boundaries": ((num_buckets - 1,), "float32")})
    ids = jnp.sum(x[..., None] >= c["boundaries"], axis=-1).astype(jnp.int32)
    return jnp.where(jnp.isnan(x), jnp.int32(num_buckets), ids)


def _string_column(s: Any, name: str) -> StringColumn:
    if not isinstance(s, StringColumn):
        raise InvalidArgumentError(
            f"{name}() takes a string column read from inputs (inputs['city']); got "
            f"{type(s).__name__}. Numbers are bucketized or scaled instead."
        )
    return s


def compute_and_apply_vocabulary(s: Any, top_k: int | None = None, num_oov_buckets: int = 0,
                                 frequency_threshold: int = 0) -> jax.Array:
    """Integer ids of a string column from a vocabulary of its analyzed values.

    The vocabulary is ordered by frequency, most frequent first, ties by value (code
    point order); ``top_k`` keeps the first ``top_k``, ``frequency_threshold`` drops
    values seen fewer times. Known values get their index; other values and missing
    ones get ``len(vocab) + hash % num_oov_buckets`` (or ``len(vocab)`` with no OOV
    buckets), exactly as :func:`jfx.core.encode_strings` with
    ``{"vocabulary": vocab, "oov_buckets": num_oov_buckets}``.

    Returns:
        ``int32`` ids, shape ``(batch,)``.
    """
    s = _string_column(s, "compute_and_apply_vocabulary")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError(f"compute_and_apply_vocabulary(top_k={top_k!r}): expected None or an int >= 1")
    if not isinstance(num_oov_buckets, int) or num_oov_buckets < 0:
        raise InvalidArgumentError(f"num_oov_buckets={num_oov_buckets!r}: expected an int >= 0")
    if not isinstance(frequency_threshold, int) or frequency_threshold < 0:
        raise InvalidArgumentError(f"frequency_threshold={frequency_threshold!r}: expected an int >= 0")
    params = {"top_k": top_k, "num_oov_buckets": num_oov_buckets, "frequency_threshold": frequency_threshold}
    _trace("compute_and_apply_vocabulary").register("compute_and_apply_vocabulary", params, column=s.name)
    return _ids(s)


def hash_strings(s: Any, hash_buckets: int) -> jax.Array:
    """Integer ids ``stable_hash(value) % hash_buckets`` of a string column (no analysis).

    The hash is :func:`jfx.core.stable_hash`, the same in every process and machine.

    Returns:
        ``int32`` ids in ``[0, hash_buckets)``, shape ``(batch,)``.
    """
    s = _string_column(s, "hash_strings")
    if not isinstance(hash_buckets, int) or isinstance(hash_buckets, bool) or hash_buckets < 1:
        raise InvalidArgumentError(f"hash_strings(hash_buckets={hash_buckets!r}): expected an int >= 1")
    _trace("hash_strings").register("hash_strings", {"hash_buckets": hash_buckets}, column=s.name)
    return _ids(s)


def _ids(s: StringColumn) -> jax.Array:
    if s._ids is None:  # noqa: SLF001 - StringColumn's own module
        raise ComponentError(f"string column {s.name!r} has no ids in this trace")
    return jnp.asarray(s._ids, jnp.int32)  # noqa: SLF001


# ---------------------------------------------------------------------------- batches


def _bucket(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def pad_batch(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Pads every array to the next power of two rows (so few batch sizes compile)."""
    size = _bucket(n)
    if size == n:
        return arrays
    return {k: np.concatenate([a, np.zeros((size - n, *a.shape[1:]), a.dtype)]) for k, a in arrays.items()}


def _numbers(values: Any) -> np.ndarray:
    """Raw numeric values as float32, a missing value as NaN (bool as 0/1)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        values = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind in "USb":
        arr = arr.astype(np.float64)
    return arr.astype(np.float32)


def _strings(values: Any) -> Any:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = values.cast(pa.string())
    return values


def raw_input_arrays(columns: Mapping[str, Any], types: Mapping[str, str],
                     encoders: Mapping[str, dict | None]) -> dict[str, np.ndarray]:
    """Raw columns → the arrays the traced function takes (strings encoded on the host).

    A string column whose encoder is not known yet gets zeros.
    """
    out = {}
    for name, kind in types.items():
        values = columns[name]
        if kind == "string":
            enc = encoders.get(name)
            values = _strings(values)
            if enc is None:
                out[name] = np.zeros(len(values), np.int32)
            else:
                out[name] = encode_strings(values, enc)
        else:
            out[name] = _numbers(values)
    return out


# ---------------------------------------------------------------------------- the kernel


# One analysis pass's accumulator: analyzer name → its accumulator (an ACCUMULATORS value).
AnalysisAcc = dict[str, Any]


class AnalysisKernel:
    """One analysis pass as a mergeable kernel (create / add_batch / merge / finish).

    Evaluates the inputs of the numeric analyzers named in ``numeric`` with a jitted
    trace of ``preprocessing_fn`` (constants known from earlier passes; placeholders for
    the rest, which these inputs do not depend on) and counts the string columns of the
    vocabulary analyzers named in ``strings``. ``finish`` returns analyzer name →
    accumulator; :func:`analyze` turns those into constants.
    """

    def __init__(self, ref: FunctionRef, available: dict[str, str], types: dict[str, str],
                 records: list[AnalyzerRecord], constants: dict[str, dict[str, np.ndarray]],
                 encoders: Mapping[str, dict | None], numeric: list[str], strings: list[str]) -> None:
        self.ref = ref
        self.available = dict(available)
        self.types = dict(types)
        self.records = list(records)
        self.constants = constants
        self.encoders = dict(encoders)
        self.numeric = list(numeric)
        self.strings = list(strings)
        self._by_name = {r.name: r for r in self.records}
        self._fn: Callable[..., Any] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fn"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _compiled(self) -> Callable:
        with self._lock:
            if self._fn is None:
                user_fn = self.ref.load()
                names, types, records, where = self.numeric, self.available, self.records, self.ref.describe()

                def evaluate(consts, arrays):
                    _, trace = call_preprocessing_fn(user_fn, arrays, types, constants=consts,
                                                     expected=records, where=where)
                    return {n: trace.analyzer_inputs[n] for n in names}

                self._fn = jax.jit(evaluate)
            return self._fn

    def create(self) -> AnalysisAcc:
        return {n: ACCUMULATORS[self._by_name[n].kind]() for n in [*self.numeric, *self.strings]}

    def add_batch(self, acc: AnalysisAcc, batch: pa.RecordBatch) -> AnalysisAcc:
        n = batch.num_rows
        if n == 0:
            return acc
        if self.numeric:
            columns = {name: batch.column(name) for name in self.types}
            arrays = pad_batch(raw_input_arrays(columns, self.types, self.encoders), n)
            values = self._compiled()(self.constants, arrays)
            for name in self.numeric:
                x = np.asarray(values[name])[:n].reshape(-1)
                acc[name].add(x[~np.isnan(x)])
        for name in self.strings:
            acc[name].add_strings(_strings(batch.column(self._by_name[name].column)))
        return acc

    def merge(self, accs: list[AnalysisAcc]) -> AnalysisAcc:
        out = self.create()
        for acc in accs:
            for name, a in acc.items():
                out[name].merge(a)
        return out

    def finish(self, acc: AnalysisAcc) -> AnalysisAcc:
        return acc


# ---------------------------------------------------------------------------- analysis


@dataclass
class FittedTransform:
    """``preprocessing_fn`` fitted to data: everything needed to build ``transform_fn``.

    Attributes:
        ref: where the function lives.
        available: every column of the data → jfx type (what ``inputs`` offers).
        types: raw input column → jfx type (``int``, ``float``, ``bool``, ``string``),
            only the columns the fitted transform takes, in the order read.
        records: the analyzer calls, in call order.
        constants: numeric analyzer name → constant name → array.
        encoders: string input column → host encoder spec.
        passes: how many passes over the data analysis took.
    """

    ref: FunctionRef
    available: dict[str, str]
    types: dict[str, str]
    records: list[AnalyzerRecord]
    constants: dict[str, dict[str, np.ndarray]]
    encoders: dict[str, dict]
    passes: int = 0

    def transform_fn(self) -> Callable[[dict, dict], dict]:
        """``transform_fn(constants, inputs) -> outputs``: pure JAX, string inputs as ids."""
        fn = self.ref.load()
        types, records, where = self.available, self.records, self.ref.describe()

        def transform_fn(constants, inputs):
            outputs, _ = call_preprocessing_fn(fn, inputs, types, constants=constants,
                                               expected=records, where=where)
            return outputs

        return transform_fn


def _input_struct(types: Mapping[str, str], batch: Any) -> dict[str, jax.ShapeDtypeStruct]:
    return {n: jax.ShapeDtypeStruct((batch,), jnp.int32 if t == "string" else jnp.float32) for n, t in types.items()}


def _constant_structs(records: Sequence[AnalyzerRecord]) -> dict[str, dict[str, np.ndarray]]:
    return {r.name: {k: np.zeros(shape, dtype) for k, (shape, dtype) in r.constants.items()}
            for r in records if r.constants}


def _dependencies(closed: Any, labels: list[frozenset]) -> list[frozenset]:
    """For each output of a jaxpr, the union of the labels of the inputs it depends on."""
    jaxpr = closed.jaxpr
    env: dict[Any, frozenset] = dict(zip(jaxpr.invars, labels, strict=True))
    empty: frozenset = frozenset()

    def read(v: Any) -> frozenset:
        return empty if isinstance(v, jax.extend.core.Literal) else env.get(v, empty)

    for eqn in jaxpr.eqns:
        d = frozenset().union(*(read(v) for v in eqn.invars)) if eqn.invars else empty
        for o in eqn.outvars:
            env[o] = d
    return [read(v) for v in jaxpr.outvars]


def discover(ref: FunctionRef, available: Mapping[str, str]) -> tuple[dict[str, str], list[AnalyzerRecord]]:
    """Traces ``preprocessing_fn`` once (no data): which columns it reads, which analyzers it calls.

    Returns:
        (raw input types in read order — string columns only when a string analyzer takes
        them, the analyzer records).

    Raises:
        ComponentError: the function fails (e.g. a KeyError on a missing column), or two
            different string analyzers take one column.
    """
    fn = ref.load()
    available = dict(available)
    types = {n: t for n, t in available.items() if t in INPUT_TYPES}
    where = ref.describe()
    found: dict[str, Any] = {}

    def probe(arrays):
        outputs, trace = call_preprocessing_fn(fn, arrays, available, where=where)
        found["trace"] = trace
        return outputs

    (b,) = jax.export.symbolic_shape("b")
    try:
        jax.eval_shape(probe, _input_struct(types, b))
    except JfxError:
        raise
    except Exception as err:  # a JAX tracing error in user code
        raise ComponentError(f"preprocessing_fn {where} cannot be traced: {type(err).__name__}: {err}") from err
    trace = found["trace"]
    per_column: dict[str, AnalyzerRecord] = {}
    for r in trace.records:
        if r.column is None:
            continue
        first = per_column.setdefault(r.column, r)
        if (first.kind, first.params) != (r.kind, r.params):
            raise ComponentError(
                f"preprocessing_fn {where}: string column {r.column!r} is passed to {first.kind}{first.params} "
                f"and to {r.kind}{r.params}; a string column gets one encoding. Call one analyzer and reuse its ids."
            )
    used = {n: types[n] for n in trace.accessed if types[n] != "string" or n in per_column}
    return used, list(trace.records)


def analyze(ref: FunctionRef, available: Mapping[str, str], sources: Sequence[Any], *,
            beam_pipeline_args: list[str] | None = None, batch_size: int | None = None) -> FittedTransform:
    """Fits ``preprocessing_fn`` to the data in ``sources`` (Parquet or CSV files).

    Args:
        ref: the function.
        available: every column of the data → jfx type.
        sources: the files to analyze (e.g. the train split's shards).
        beam_pipeline_args: ``None`` for the in-process engine, else Beam's options.
        batch_size: rows per batch (default: the engine's).

    Raises:
        ComponentError: the function fails or uses analyzers wrongly.
        DataValidationError: a file cannot be read.
    """
    types, records = discover(ref, available)
    by_name = {r.name: r for r in records}
    encoders: dict[str, dict] = {}
    for r in records:
        encoder = r.encoder()  # hash_strings only
        if encoder is not None:
            assert r.column is not None  # a string analyzer names its column
            encoders[r.column] = encoder
    constants = _constant_structs(records)
    numeric = [r.name for r in records if r.constants]
    # Which analyzers each numeric analyzer's input depends on (through constants or ids).
    fn = ref.load()
    where = ref.describe()

    def inputs_of(consts, arrays):
        _, trace = call_preprocessing_fn(fn, arrays, available, constants=consts, expected=records, where=where)
        return [trace.analyzer_inputs[n] for n in numeric]

    deps: dict[str, frozenset] = {}
    if numeric:
        closed = jax.make_jaxpr(inputs_of)(constants, _input_struct(types, _TRACE_BATCH))
        string_owner = {r.column: r.name for r in records if r.kind == "compute_and_apply_vocabulary"}
        flat_labels: list[frozenset] = []
        for name in sorted(constants):  # pytree order of a dict: sorted keys
            flat_labels += [frozenset([name])] * len(constants[name])
        for col in sorted(types):
            owner = string_owner.get(col)
            flat_labels.append(frozenset([owner]) if owner else frozenset())
        deps = dict(zip(numeric, _dependencies(closed, flat_labels), strict=True))
    done: set[str] = {r.name for r in records if r.kind == "hash_strings"}
    pending_strings = [r.name for r in records if r.kind == "compute_and_apply_vocabulary"]
    pending_numeric = list(numeric)
    passes = 0
    columns = list(types)
    while pending_strings or pending_numeric:
        ready = [n for n in pending_numeric if deps[n] <= done]
        if not ready and not pending_strings:
            raise ComponentError(f"preprocessing_fn {where}: analyzers {pending_numeric} depend on each other")
        kernel = AnalysisKernel(ref, dict(available), types, records, constants, encoders, ready, pending_strings)
        kwargs = {"batch_size": batch_size} if batch_size else {}
        accs = run_kernel(kernel, list(sources), beam_pipeline_args=beam_pipeline_args, columns=columns, **kwargs)
        passes += 1
        for name in [*ready, *pending_strings]:
            record = by_name[name]
            values, encoder = finish(record, accs[name])
            if values:
                constants[name] = values
            if encoder is not None:
                assert record.column is not None  # a string analyzer names its column
                encoders[record.column] = encoder
            done.add(name)
        pending_numeric = [n for n in pending_numeric if n not in done]
        pending_strings = []
    return FittedTransform(ref, dict(available), types, records, constants,
                           {c: encoders[c] for c in types if c in encoders}, passes)
