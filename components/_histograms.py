"""Exact equal-width histograms: the edges, the counting, and the bounds Parquet footers give.

An equal-width histogram's edges follow from a column's minimum and maximum, which are
known only once every value has been seen. The statistics kernel gets its counts exact
in one of two ways, both checked against the exact extremes at the end:

* **from the footers, in the same pass**: Parquet row groups carry each column's min and
  max, so :func:`parquet_bounds` knows the edges before the first value is read, and
  every batch is counted against them as it goes by (its values are sorted already for
  the quantile sketch, so this costs a few binary searches per batch);
* **in a second pass** over the columns whose edges were not known (CSV files, Parquet
  written without statistics, or footers that disagree with the data).

Counts follow ``numpy.histogram``: bucket ``i`` holds ``edges[i] <= x < edges[i+1]``,
the last bucket also holds ``x == edges[-1]``, and values outside are not counted.

Example:
    >>> edges = equal_width_edges(0.0, 10.0)
    >>> sorted_counts(np.array([0.0, 0.5, 9.9, 10.0]), edges).tolist()
    [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
from jfx import _storage as storage

__all__ = ["NUM_BUCKETS", "equal_width_edges", "sorted_counts", "weighted_counts", "value_counts",
           "parquet_bounds"]

NUM_BUCKETS = 10
_TIMESTAMP_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


def equal_width_edges(lo: float, hi: float, buckets: int = NUM_BUCKETS) -> np.ndarray:
    """``buckets + 1`` edges from ``lo`` to ``hi``; a constant column gets numpy's unit-wide span."""
    lo, hi = float(lo), float(hi)
    if hi > lo:
        return np.linspace(lo, hi, buckets + 1)
    return np.linspace(lo - 0.5, hi + 0.5, buckets + 1)


def _inclusive_ranks(ordered: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # numpy.histogram's own rule for explicit edges: left ranks, the last edge inclusive.
    return np.concatenate((ordered.searchsorted(edges[:-1], "left"), ordered.searchsorted(edges[-1:], "right")))


def sorted_counts(ordered: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bucket of values already sorted ascending."""
    return np.diff(_inclusive_ranks(ordered, edges)).astype(np.int64)


def weighted_counts(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bucket of distinct sorted ``values`` seen ``weights`` times each."""
    cumulative = np.concatenate(([0], np.cumsum(np.asarray(weights, dtype=np.int64))))
    return np.diff(cumulative[_inclusive_ranks(np.asarray(values, dtype=np.float64), edges)]).astype(np.int64)


def value_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bucket of values in any order (no sort: a binary search per value)."""
    nb = len(edges) - 1
    values = np.asarray(values, dtype=np.float64)
    bucket = np.searchsorted(edges, values, side="right") - 1
    bucket[values == edges[-1]] = nb - 1
    inside = (bucket >= 0) & (bucket < nb)
    return np.bincount(bucket[inside], minlength=nb).astype(np.int64)


def _footer_number(stats: Any, arrow_type: pa.DataType, kind: str) -> tuple[float, float] | None:
    """(min, max) of one column chunk in the kernel's number space, or None when unknown."""
    if stats is None or not stats.has_min_max:
        return None
    if kind in ("int", "float") and (pa.types.is_floating(arrow_type) or
                                     (pa.types.is_integer(arrow_type) and arrow_type != pa.uint64())):
        lo, hi = stats.min, stats.max
    elif kind == "timestamp" and pa.types.is_timestamp(arrow_type) and arrow_type.unit in _TIMESTAMP_US:
        scale = _TIMESTAMP_US[arrow_type.unit]  # the kernel counts timestamps in integer microseconds
        lo, hi = stats.min_raw * scale, stats.max_raw * scale
    else:
        return None
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or isinstance(lo, bool):
        return None
    return lo, hi


def parquet_bounds(paths: Iterable[str], kind_of: Callable[[pa.Field], str | None]) -> dict[str, tuple[float, float]]:
    """Column → (min, max) over Parquet files, from their row groups' footer statistics.

    Only columns whose every column chunk has statistics are given; a file without the
    column adds nothing (its rows are missing values). These are hints: the statistics
    kernel keeps counts made with them only when the exact extremes agree.

    Args:
        paths: Parquet files (each read once, footer only).
        kind_of: a file's field → the kernel's type for it (``int``, ``float``, ``timestamp``...).
    """
    bounds: dict[str, tuple[float, float]] = {}
    unknown: set[str] = set()
    for path in dict.fromkeys(paths):
        try:
            pf = storage.open_parquet(path)
        except (pa.ArrowException, OSError):
            return {}  # plan_pieces has named the file already; no hints from it
        meta, arrow = pf.metadata, pf.schema_arrow
        index = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
        for field in arrow:
            kind = kind_of(field)
            j = index.get(field.name)
            if kind not in ("int", "float", "timestamp") or j is None or field.name in unknown:
                continue
            for g in range(meta.num_row_groups):
                chunk = meta.row_group(g).column(j)
                if chunk.num_values == 0 or (chunk.statistics is not None and
                                             chunk.statistics.null_count == chunk.num_values):
                    continue  # no values in this chunk: nothing to bound
                found = _footer_number(chunk.statistics, field.type, kind)
                if found is None:
                    unknown.add(field.name)
                    bounds.pop(field.name, None)
                    break
                lo, hi = found
                if field.name in bounds:
                    lo, hi = min(lo, bounds[field.name][0]), max(hi, bounds[field.name][1])
                bounds[field.name] = (lo, hi)
    return bounds
