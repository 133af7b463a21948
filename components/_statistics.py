"""The statistics kernel: per-column statistics of Arrow RecordBatches, mergeable.

A kernel is four pure-ish functions over a small accumulator (STYLE.md item 5):
``create() -> acc``, ``add_batch(acc, batch) -> acc``, ``merge(accs) -> acc`` and
``finish(acc) -> result``. :class:`StatisticsKernel` computes, per column, exactly the
fields of the ``ExampleStatistics`` format (docs/artifacts.md): ``count``, ``missing``,
a ``numeric`` block (int, float, bool, timestamp) and a ``string`` block (string, bool).
Either engine in :mod:`jfx.components._engine` runs it.

Exactness across engines and partitionings:

* ``count``, ``missing``, ``min``, ``max``, ``zeros``, ``avg_length`` are exact.
* ``mean`` and ``std`` (population) merge with Chan et al.'s pairwise update of
  (count, mean, M2), each batch's part computed in float64 around its own mean, so
  any partitioning agrees to about 1e-15 relative.
* ``histogram`` (10 equal-width buckets from min to max) is exact when the kernel runs
  on an engine (:func:`~jfx.components._engine.run_kernel`): counted against edges
  from Parquet footers in the same pass, or in a second pass (see
  :mod:`jfx.components._histograms`). Folded by hand (``add_batch``/``merge``/
  ``finish`` alone) it is exact where footers gave the edges, else it comes from the
  quantile sketch.
* ``quantiles`` and ``quantile_histogram`` come from a KLL sketch (rank error well
  under 1%); they are exact, and so identical everywhere, while a column has at most
  ``kll_k`` (2,048) values. Histogram counts always sum to ``count``.
* ``unique`` is exact while a column has at most 1,000 distinct values, else a
  HyperLogLog estimate (register-wise max merge: identical for any partitioning).
* ``top_values`` counts are exact while a column has at most 1,000 distinct values.

A float NaN counts as missing (it is neither a value nor orderable); -0.0 counts as 0.0.

Example:
    >>> import pyarrow as pa
    >>> k = StatisticsKernel()
    >>> acc = k.add_batch(k.create(), pa.record_batch({"x": [1.0, None, 3.0]}))
    >>> stats = k.finish(k.merge([acc, k.create()]))
    >>> stats["num_rows"], stats["columns"]["x"]["count"], stats["columns"]["x"]["numeric"]["mean"]
    (3, 2, 2.0)
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jfx._arrays import from_numpy, to_numpy
from jfx.components._histograms import (
    NUM_BUCKETS,
    equal_width_edges,
    parquet_bounds,
    sorted_counts,
    value_counts,
    weighted_counts,
)
from jfx.components._sketches import (
    DEFAULT_CAPACITY,
    DEFAULT_HLL_P,
    DEFAULT_KLL_K,
    FrequentValues,
    HyperLogLog,
    KllSketch,
    hash_strings,
    string_counts,
)
from jfx.errors import DataValidationError
from jfx.pipelines._layouts import STATISTICS_FILE, load_statistics, split_folder

__all__ = [
    "StatisticsKernel",
    "HistogramKernel",
    "StatsAccumulator",
    "ColumnAccumulator",
    "COLUMN_TYPES",
    "STATISTICS_FILE",
    "arrow_column_type",
    "load_statistics",
    "write_statistics",
]

COLUMN_TYPES = ("int", "float", "string", "bool", "timestamp")
NUM_QUANTILES = 101
TOP_VALUES = 100


def arrow_column_type(t: pa.DataType) -> str | None:
    """The jfx column type of an Arrow type, or ``None`` when it has no statistics."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return None


@dataclass
class NumericAccumulator:
    """Moments (Chan's count/mean/M2), exact extremes, zeros, a quantile sketch, and
    exact histogram counts against edges known in advance (``edges`` ``None``: none)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float | int | None = None
    max: float | int | None = None
    zeros: int = 0
    sketch: KllSketch = field(default_factory=KllSketch)
    edges: np.ndarray | None = None
    hist: np.ndarray | None = None
    # Whether batches are worth sorting through their distinct values (see _sorted): a
    # hint only, which changes how a batch is sorted, never the result.
    repeats: bool = True

    def count_sorted(self, ordered: np.ndarray) -> None:
        if self.hist is not None and self.edges is not None:
            self.hist += sorted_counts(ordered, self.edges)

    def count_distinct(self, values: np.ndarray, weights: np.ndarray) -> None:
        if self.hist is not None and self.edges is not None:
            self.hist += weighted_counts(values, weights, self.edges)

    def add_part(self, n: int, mean: float, m2: float) -> None:
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def merge(self, other: NumericAccumulator) -> None:
        if other.n and not self.n:  # an empty accumulator takes the other's edges
            self.edges = other.edges
            self.hist = None if other.hist is None else other.hist.copy()
        elif other.n:  # counts add up only over the same edges
            mine, theirs = self.hist, other.hist
            same = (mine is not None and theirs is not None and self.edges is not None and other.edges is not None
                    and np.array_equal(self.edges, other.edges))
            self.hist = mine + theirs if same and mine is not None and theirs is not None else None
        self.add_part(other.n, other.mean, other.m2)
        if other.min is not None and other.max is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
            self.max = other.max if self.max is None else max(self.max, other.max)
        self.zeros += other.zeros
        self.sketch.merge(other.sketch)


@dataclass
class StringAccumulator:
    """Frequent values, a distinct-count sketch and the total length in characters."""

    frequent: FrequentValues = field(default_factory=FrequentValues)
    hll: HyperLogLog = field(default_factory=HyperLogLog)
    total_length: int = 0

    def merge(self, other: StringAccumulator) -> None:
        self.frequent.merge(other.frequent)
        self.hll.merge(other.hll)
        self.total_length += other.total_length


@dataclass
class ColumnAccumulator:
    """One column's state. ``missing`` is derived at the end: rows seen minus ``count``."""

    type: str | None  # None: a column with no value yet (all null)
    count: int = 0
    numeric: NumericAccumulator | None = None
    string: StringAccumulator | None = None


@dataclass
class StatsAccumulator:
    """The kernel's accumulator: rows seen and one :class:`ColumnAccumulator` per column."""

    num_rows: int = 0
    columns: dict[str, ColumnAccumulator] = field(default_factory=dict)


class StatisticsKernel:
    """Per-column statistics in the ``ExampleStatistics`` format, as a mergeable kernel.

    Args:
        types: column → jfx type (``int``, ``float``, ``string``, ``bool``, ``timestamp``)
            overriding the Arrow types, e.g. from a Schema (an int column declared
            ``string`` is treated as categorical). Other columns use their Arrow type.
        kll_k: the quantile sketch's size parameter.
        capacity: how many distinct values the frequent-values counter tracks.
        hll_p: the HyperLogLog precision.

    The kernel is a plain picklable object; runners (Beam, Dask) import it by module path.
    """

    def __init__(self, types: dict[str, str] | None = None, *, kll_k: int = DEFAULT_KLL_K,
                 capacity: int = DEFAULT_CAPACITY, hll_p: int = DEFAULT_HLL_P,
                 bounds: dict[str, tuple[float, float]] | None = None) -> None:
        types = dict(types or {})
        for column, kind in types.items():
            if kind not in COLUMN_TYPES:
                raise DataValidationError(
                    f"column {column!r}: type {kind!r} is not one of {', '.join(COLUMN_TYPES)}"
                )
        self.types = types
        self.kll_k = kll_k
        self.capacity = capacity
        self.hll_p = hll_p
        # Column → (min, max) known before reading (Parquet footers): histogram edges to
        # count against as batches go by. Kept only if the exact extremes agree.
        self.bounds = dict(bounds or {})

    # Ask the engine for string columns dictionary-encoded: cheaper to read and to count.
    read_strings_as_dictionary = True

    def __repr__(self) -> str:
        return f"StatisticsKernel(types={self.types!r})"

    # -- the engine's optional hooks (jfx.components._engine) ----------------------------

    def bind(self, pieces: list[Any]) -> StatisticsKernel:
        """This kernel for one split: histogram edges from the Parquet footers of its pieces.

        A split with a CSV file gets none (its extremes are unknown before reading).
        """
        if not pieces or any(p.source.format != "parquet" for p in pieces):
            return self
        bounds = parquet_bounds([p.source.path for p in pieces],
                                lambda f: self.types.get(f.name) or arrow_column_type(f.type))
        if not bounds:
            return self
        return StatisticsKernel(self.types, kll_k=self.kll_k, capacity=self.capacity, hll_p=self.hll_p,
                                bounds=bounds)

    def follow_up(self, acc: StatsAccumulator) -> HistogramKernel | None:
        """A second pass for the columns whose histogram is not exact yet, or ``None``."""
        edges: dict[str, np.ndarray] = {}
        types: dict[str, str] = {}
        for name, col in acc.columns.items():
            num = col.numeric
            if num is None or num.n == 0 or col.type == "bool" or num.sketch.exact:
                continue  # no values, counted exactly (bools), or a sketch that kept them all
            if _exact_counts(num) is None:
                assert num.min is not None and num.max is not None and col.type is not None  # it has values
                edges[name] = equal_width_edges(num.min, num.max)
                types[name] = col.type
        return HistogramKernel(edges, types) if edges else None

    def follow_up_columns(self, schema: pa.Schema) -> list[str]:
        """The columns :meth:`follow_up` may read: the numeric ones, bools aside."""
        kinds = ((f.name, self.types.get(f.name) or arrow_column_type(f.type)) for f in schema)
        return [name for name, kind in kinds if kind in ("int", "float", "timestamp")]

    def complete(self, result: dict[str, Any], counts: dict[str, list[int]]) -> dict[str, Any]:
        """``result`` with the second pass's exact histogram counts."""
        for name, exact in counts.items():
            numeric = result["columns"][name]["numeric"]
            numeric["histogram"]["counts"] = exact
        return result

    # -- the kernel protocol -------------------------------------------------------------

    def create(self) -> StatsAccumulator:
        return StatsAccumulator()

    def add_batch(self, acc: StatsAccumulator, batch: pa.RecordBatch) -> StatsAccumulator:
        acc.num_rows += batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            col = acc.columns.get(name)
            kind = self.types.get(name) or arrow_column_type(column.type)
            if col is None:
                col = acc.columns[name] = self._new_column(kind, name)
            elif kind != col.type and not (_numeric(kind) and _numeric(col.type)):
                raise DataValidationError(
                    f"column {name!r} changes type between batches: {col.type} before, "
                    f"{kind or column.type} now; give all files the same schema"
                )
            if col.type is not None:
                self._add_column(col, column, name)
            else:
                col.count += len(column) - column.null_count
        return acc

    def merge(self, accs: list[StatsAccumulator]) -> StatsAccumulator:
        out = self.create()
        for acc in accs:
            out.num_rows += acc.num_rows
            for name, col in acc.columns.items():
                mine = out.columns.get(name)
                if mine is None:
                    out.columns[name] = mine = self._new_column(col.type)
                elif mine.type != col.type and not (_numeric(mine.type) and _numeric(col.type)):
                    raise DataValidationError(
                        f"column {name!r} has type {mine.type} in one part of the data and {col.type} in another"
                    )
                mine.count += col.count
                if col.numeric is not None and mine.numeric is not None:
                    mine.numeric.merge(col.numeric)
                if col.string is not None and mine.string is not None:
                    mine.string.merge(col.string)
        return out

    def finish(self, acc: StatsAccumulator) -> dict[str, Any]:
        columns = {}
        for name, col in acc.columns.items():
            entry: dict[str, Any] = {"type": col.type or "unsupported", "count": col.count,
                                     "missing": acc.num_rows - col.count}
            if col.numeric is not None and col.numeric.n > 0 and col.type is not None:
                entry["numeric"] = _finish_numeric(col.numeric, col.type)
            if col.string is not None and col.count > 0:
                entry["string"] = _finish_string(col.string, col.count)
            columns[name] = entry
        return {"num_rows": acc.num_rows, "columns": columns}

    # -- per column ----------------------------------------------------------------------

    def _new_column(self, kind: str | None, name: str | None = None) -> ColumnAccumulator:
        col = ColumnAccumulator(type=kind)
        if kind in ("int", "float", "bool", "timestamp"):
            col.numeric = NumericAccumulator(sketch=KllSketch(self.kll_k))
            if name in self.bounds and kind != "bool":
                col.numeric.edges = equal_width_edges(*self.bounds[name])
                col.numeric.hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
        if kind in ("string", "bool"):
            col.string = StringAccumulator(FrequentValues(self.capacity), HyperLogLog(self.hll_p))
        return col

    def _add_column(self, col: ColumnAccumulator, array: pa.Array, name: str) -> None:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        with _read_as(name, array, col.type):
            if col.type == "string" and pa.types.is_dictionary(array.type) and _is_text(array.type.value_type):
                _add_dictionary_strings(col, array)
                return
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            if col.type == "string":
                _add_strings(col, _as_strings(array))
            elif col.type == "bool":
                _add_bools(col, array if pa.types.is_boolean(array.type) else array.cast(pa.bool_()))
            else:
                _add_numbers(col, _as_numbers(array, col.type))


class HistogramKernel:
    """The second pass: exact equal-width histogram counts against edges now known.

    Args:
        edges: column → its edges (from the first pass's exact min and max).
        types: column → its jfx type, to read values as the first pass did.

    ``finish`` gives column → counts per bucket, as ``numpy.histogram`` counts them.
    """

    read_strings_as_dictionary = False

    def __init__(self, edges: dict[str, np.ndarray], types: dict[str, str]) -> None:
        self.edges = edges
        self.types = types

    @property
    def read_columns(self) -> list[str]:
        return list(self.edges)

    def __repr__(self) -> str:
        return f"HistogramKernel(columns={list(self.edges)!r})"

    def create(self) -> dict[str, np.ndarray]:
        return {}

    def add_batch(self, acc: dict[str, np.ndarray], batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            edges = self.edges.get(name)
            if edges is None:
                continue
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            with _read_as(name, array, self.types[name]):
                counts = value_counts(_as_numbers(array, self.types[name]), edges)
            acc[name] = acc[name] + counts if name in acc else counts
        return acc

    def merge(self, accs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for acc in accs:
            for name, counts in acc.items():
                out[name] = out[name] + counts if name in out else counts.copy()
        return out

    def finish(self, acc: dict[str, np.ndarray]) -> dict[str, list[int]]:
        return {name: [int(c) for c in acc.get(name, np.zeros(len(e) - 1, dtype=np.int64))]
                for name, e in self.edges.items()}


@contextlib.contextmanager
def _read_as(name: str, array: pa.Array, kind: str | None) -> Iterator[None]:
    """Turn Arrow's conversion errors into one that names the column and the types."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
        raise DataValidationError(f"column {name!r} of Arrow type {array.type} cannot be read as {kind}: {err}") from err


def _numeric(kind: str | None) -> bool:
    return kind in ("int", "float")


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _as_strings(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    if pa.types.is_boolean(array.type):
        return pc.if_else(array, "true", "false")
    return array.cast(pa.string())


def _as_numbers(array: pa.Array, kind: str | None) -> np.ndarray:
    """The column's present values as int64 (int, timestamp in µs) or float64, no nulls."""
    if array.null_count:
        array = array.drop_null()
    t = array.type
    if kind == "timestamp":
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_date(t):
            array = array.cast(pa.timestamp("us"))
        elif pa.types.is_timestamp(t) and (t.unit != "us" or t.tz is not None):
            array = array.cast(pa.timestamp("us"), safe=False)
        if pa.types.is_timestamp(array.type):
            array = array.cast(pa.int64())
    elif kind == "int" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        array = array.cast(pa.int64())
    elif kind == "float" and not pa.types.is_floating(t):
        array = array.cast(pa.float64())
    values = to_numpy(array)
    if values.dtype.kind == "f":
        # -0.0 is 0.0 (+ 0.0 folds it): which of the two a sort puts first is arbitrary
        values = values.astype(np.float64, copy=False) + 0.0
        nan = np.isnan(values)
        if nan.any():
            values = values[~nan]
    elif values.dtype.kind == "u" and values.dtype.itemsize == 8:
        values = values.astype(np.float64)
    else:
        values = values.astype(np.int64, copy=False)
    return values


_SMALL_INT_RANGE = 1 << 16


def _add_numbers(col: ColumnAccumulator, values: np.ndarray) -> None:
    n = len(values)
    col.count += n
    if n == 0:
        return
    acc = col.numeric
    assert acc is not None  # called for numeric columns only
    if values.dtype == np.int64:
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < _SMALL_INT_RANGE and n > 4 * (hi - lo):
            # Few distinct ints (areas, flags, seconds): count them instead of sorting.
            _add_small_ints(acc, values, lo, hi)
            return
    ordered = _sorted(acc, values)  # one sort serves the sketch, the extremes and the zeros
    lo, hi = ordered[0].item(), ordered[-1].item()
    acc.min = lo if acc.min is None else min(acc.min, lo)
    acc.max = hi if acc.max is None else max(acc.max, hi)
    acc.zeros += int(np.searchsorted(ordered, 0, side="right") - np.searchsorted(ordered, 0, side="left"))
    as_float = ordered.astype(np.float64, copy=False)
    mean = float(as_float.sum()) / n
    centred = as_float - mean
    # Not np.dot: BLAS spins up its own threads, which fight the engine's workers.
    np.multiply(centred, centred, out=centred)
    acc.add_part(n, mean, float(centred.sum()))
    acc.sketch.add(as_float, is_sorted=True)
    acc.count_sorted(as_float)


#: A batch is sorted through its distinct values while they are at most this share of it.
_REPEATS_SHARE = 8
_REPEATS_MIN_ROWS = 4096
#: Values looked at first: where nearly all of them differ (more than 92%: a column with over
#: about a fifth of its values distinct), hashing the batch would cost more than sorting it.
_REPEATS_SAMPLE = 4096
_REPEATS_SAMPLE_DISTINCT = 0.92


def _sorted(acc: NumericAccumulator, values: np.ndarray) -> np.ndarray:
    """``np.sort(values)``. Where a column repeats its values (prices, distances, wide-range
    ints), the same array comes from its distinct values: hashed by pyarrow, only those
    sorted, each repeated by its count; on the taxi table's fares that costs about a third
    of sorting the batch. A column whose values turn out to be mostly distinct (a sample
    of the batch says so, or the hashing did) is sorted directly from then on."""
    n = len(values)
    if not acc.repeats or n < _REPEATS_MIN_ROWS:
        return np.sort(values)
    sample = values[:: n // _REPEATS_SAMPLE]
    if len(np.unique(sample)) > _REPEATS_SAMPLE_DISTINCT * len(sample):
        acc.repeats = False
        return np.sort(values)
    encoded = pc.dictionary_encode(from_numpy(values))
    distinct = to_numpy(encoded.dictionary)
    if len(distinct) * _REPEATS_SHARE > n:
        acc.repeats = False
    counts = np.bincount(to_numpy(encoded.indices), minlength=len(distinct))
    order = np.argsort(distinct)
    return np.repeat(distinct[order], counts[order])


def _add_small_ints(acc: NumericAccumulator, values: np.ndarray, lo: int, hi: int) -> None:
    counts = np.bincount(values - lo)
    present = np.flatnonzero(counts)
    distinct = (present + lo).astype(np.float64)
    weights = counts[present]
    n = len(values)
    acc.min = lo if acc.min is None else min(acc.min, lo)
    acc.max = hi if acc.max is None else max(acc.max, hi)
    if lo <= 0 <= hi:
        acc.zeros += int(counts[-lo])
    mean = float((distinct * weights).sum()) / n
    acc.add_part(n, mean, float((weights * (distinct - mean) ** 2).sum()))
    acc.sketch.add_counts(distinct, weights)
    acc.count_distinct(distinct, weights)


def _add_bools(col: ColumnAccumulator, array: pa.Array) -> None:
    n = len(array) - array.null_count
    col.count += n
    if n == 0:
        return
    trues = int(pc.sum(array).as_py() or 0)
    falses = n - trues
    acc, string = col.numeric, col.string
    assert acc is not None and string is not None  # a bool column has both
    acc.min = min(acc.min, int(falses == 0)) if acc.min is not None else int(falses == 0)
    acc.max = max(acc.max, int(trues > 0)) if acc.max is not None else int(trues > 0)
    acc.zeros += falses
    mean = trues / n
    acc.add_part(n, mean, trues * (1 - mean) ** 2 + falses * mean ** 2)
    acc.sketch.add(np.concatenate([np.zeros(falses), np.ones(trues)]), is_sorted=True)
    present = [(v, c) for v, c in (("false", falses), ("true", trues)) if c]
    values = pa.array([v for v, _ in present], type=pa.large_string())
    string.frequent.add_counts(values, np.array([c for _, c in present], dtype=np.int64))
    string.hll.add_hashes(hash_strings(values))
    string.total_length += 5 * falses + 4 * trues


def _add_strings(col: ColumnAccumulator, array: pa.Array) -> None:
    n = len(array) - array.null_count
    col.count += n
    if n == 0:
        return
    acc = col.string
    assert acc is not None  # called for string columns only
    acc.total_length += int(pc.sum(pc.utf8_length(array)).as_py() or 0)
    values, counts = string_counts(array)
    acc.frequent.add_counts(values, counts)
    acc.hll.add_hashes(hash_strings(values))


def _add_dictionary_strings(col: ColumnAccumulator, array: pa.DictionaryArray) -> None:
    """Strings read dictionary-encoded: count the codes, touch each distinct string once."""
    n = len(array) - array.null_count
    col.count += n
    if n == 0:
        return
    indices = array.indices
    if indices.null_count:
        indices = indices.drop_null()
    counts = np.bincount(to_numpy(indices), minlength=len(array.dictionary))
    used = np.flatnonzero(counts)
    values = array.dictionary.take(from_numpy(used))
    counts = counts[used].astype(np.int64)
    if values.null_count:  # a null in the dictionary itself is a missing value too
        valid = to_numpy(values.is_valid())
        col.count -= int(counts[~valid].sum())
        values, counts = values.filter(from_numpy(valid)), counts[valid]
    acc = col.string
    assert acc is not None  # called for string columns only
    lengths = to_numpy(pc.utf8_length(values))
    acc.total_length += int((lengths.astype(np.int64) * counts).sum())
    acc.frequent.add_counts(values, counts)
    acc.hll.add_hashes(hash_strings(values))


def _py_number(value: float, kind: str | None) -> int | float:
    if kind in ("int", "timestamp", "bool") and float(value).is_integer():
        return int(value)
    return float(value)


def _exact_counts(acc: NumericAccumulator) -> np.ndarray | None:
    """Histogram counts made against edges known in advance, if those were the right edges."""
    if acc.hist is None or acc.edges is None or acc.min is None or acc.max is None:
        return None
    # The footers' extremes gave the edges; the exact extremes decide whether they hold.
    return acc.hist if np.array_equal(acc.edges, equal_width_edges(acc.min, acc.max)) else None


def _finish_numeric(acc: NumericAccumulator, kind: str) -> dict[str, Any]:
    assert acc.min is not None and acc.max is not None  # finished only when it has values
    ranks = np.linspace(0.0, 1.0, NUM_QUANTILES)
    quantiles = acc.sketch.quantiles(ranks)
    edges = equal_width_edges(acc.min, acc.max)
    if kind == "bool":  # the values are 0 and 1, counted exactly
        counts = weighted_counts(np.array([0.0, 1.0]), np.array([acc.zeros, acc.n - acc.zeros]), edges)
    else:
        exact = _exact_counts(acc)
        # without exact counts the engine's second pass replaces these (see follow_up)
        counts = acc.sketch.counts(edges) if exact is None else exact
    deciles = quantiles[:: (NUM_QUANTILES - 1) // NUM_BUCKETS]
    return {
        "min": _py_number(acc.min, kind),
        "max": _py_number(acc.max, kind),
        "mean": float(acc.mean),
        "std": math.sqrt(max(acc.m2, 0.0) / acc.n),
        "zeros": int(acc.zeros),
        "quantiles": [float(q) for q in quantiles],
        "histogram": {"boundaries": [float(b) for b in edges],
                      "counts": [int(c) for c in counts]},
        "quantile_histogram": {"boundaries": [float(b) for b in deciles],
                               "counts": [int(c) for c in acc.sketch.counts(deciles)]},
    }


def _finish_string(acc: StringAccumulator, count: int) -> dict[str, Any]:
    exact = acc.frequent.exact
    unique = acc.frequent.total_distinct() if exact else max(int(round(acc.hll.estimate())), acc.frequent.total_distinct())  # noqa: RUF046 - NumPy 1 rounds a float64 to a float64
    return {
        "unique": unique,
        "top_values": [{"value": v, "count": c} for v, c in acc.frequent.top(TOP_VALUES)],
        "avg_length": acc.total_length / count,
    }


# -- the artifact files ------------------------------------------------------------------


def _split_dir(root: Path, split: str) -> Path:
    return split_folder(root, split)


def write_statistics(artifact_or_path: Any, split: str, stats: dict[str, Any]) -> Path:
    """Write one split's statistics as ``<uri>/Split-<split>/statistics.json``; return the path.

    ``stats`` is a kernel result (``num_rows``, ``columns``); the ``split`` key is added.
    """
    root = Path(getattr(artifact_or_path, "uri", artifact_or_path))
    target = _split_dir(root, split) / STATISTICS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = {"split": split, "num_rows": stats["num_rows"], "columns": stats["columns"]}
    target.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
    return target


