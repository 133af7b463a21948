"""Anomaly detection: a split's statistics against a schema, and skew and drift against a baseline.

Every check works on ExampleStatistics documents (docs/artifacts.md), never on the data,
so it costs the same for a hundred rows or a billion.

Anomaly kinds: ``missing_column``, ``new_column``, ``type_change``, ``out_of_domain``,
``out_of_range``, ``low_presence``, ``drift``, ``skew``, ``expectation_failed``.

Environments (TFDV's): validated as data of an ``environment`` (e.g. ``"SERVING"``), a
column the schema puts outside it is not required, and is reported if present (a label
in serving data). Columns named ``_jfx_...`` (request-log metadata) are never new columns.

Comparators (TFDV's ``drift_comparator`` and ``skew_comparator``) measure, as TFDV does:

* ``linf`` (``infinity_norm``; string and bool columns): the L-infinity distance between
  the two value distributions of ``top_values``, each normalised by the sum of its own
  listed counts (TFDV normalises its rank histogram the same way); a value listed on one
  side only has frequency 0 on the other. With at most 100 distinct values (all listed)
  this is the exact distance between the value frequencies.
* ``js`` (``jensen_shannon_divergence``): the Jensen–Shannon divergence with base-2
  logarithms (0 to 1). For numeric columns, from the two equal-width ``histogram`` blocks
  (TFDV's standard histograms): both are re-bucketed onto the union of their bucket
  boundaries, assuming values spread uniformly within a bucket, and a constant column
  (min = max) is a point mass kept in a bucket of its own; for string columns, from the
  ``top_values`` counts. Identical statistics give 0, disjoint ones 1.

Example:
    >>> linf_distance({"a": 6, "b": 4}, {"a": 3, "b": 5, "c": 2})
    0.3
    >>> round(js_divergence([1.0, 0.0], [0.0, 1.0]), 6)
    1.0
    >>> a = {"boundaries": [1.0, 2.0, 3.0], "counts": [2, 2]}
    >>> b = {"boundaries": [2.0, 4.0, 6.0], "counts": [2, 2]}
    >>> round(histogram_js_divergence(a, b), 6)  # TFDV's own worked example
    0.655639
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jfx.components._schema import COLUMN_TYPES, DOMAIN_TYPES, RANGE_TYPES, ColumnSchema, TableSchema

__all__ = [
    "ANOMALY_KINDS",
    "LOG_COLUMN_PREFIX",
    "Anomaly",
    "ValidationResult",
    "detect_anomalies",
    "detect_comparator",
    "detect_drift",
    "linf_distance",
    "js_divergence",
    "histogram_js_divergence",
    "format_report",
]

ANOMALY_KINDS = ("missing_column", "new_column", "type_change", "out_of_domain", "out_of_range",
                 "low_presence", "drift", "skew", "expectation_failed")
# Columns a request log adds beside the model's features (time, model version, prediction):
# never features, so never flagged as columns the schema does not know.
LOG_COLUMN_PREFIX = "_jfx_"
ERROR, WARNING = "error", "warning"
_PRESENCE_TOLERANCE = 1e-9
_LISTED_VALUES = 10  # out-of-domain values named in a description
_METRIC_LABEL = {"linf": "L-infinity distance", "js": "Jensen-Shannon divergence"}
_METRIC_FIELD = {"linf": "infinity_norm", "js": "jensen_shannon_divergence"}


@dataclass(frozen=True)
class Anomaly:
    """One way a split does not match what was expected.

    Attributes:
        column: the column at fault (``None`` for a table-level expectation).
        kind: one of :data:`ANOMALY_KINDS`.
        description: what, where and why, in one sentence a user can act on.
        severity: ``"error"`` (fails validation) or ``"warning"`` (reported only).
        details: the measured values behind the description (JSON-able).
    """

    column: str | None
    kind: str
    description: str
    severity: str = ERROR
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"column": self.column, "kind": self.kind, "severity": self.severity,
               "description": self.description}
        if self.details:
            doc["details"] = self.details
        return doc


@dataclass
class ValidationResult:
    """Everything ExampleValidator found, per split.

    Attributes:
        splits: split → its anomalies (an empty list: the split is clean).
        drift: split → column → ``{"metric", "value", "threshold", "baseline_split"}``
            for every column whose drift could be measured (threshold ``None``: not checked).
        expectations: split → summary of the Great Expectations suite run on it.
        skew: like ``drift``, against the training statistics.
        environment: the environment the splits were validated as (``None``: any).
    """

    splits: dict[str, list[Anomaly]] = field(default_factory=dict)
    drift: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    expectations: dict[str, dict[str, Any]] = field(default_factory=dict)
    skew: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    environment: str | None = None

    @property
    def anomaly_count(self) -> int:
        return sum(len(v) for v in self.splits.values())

    @property
    def passed(self) -> bool:
        return not any(a.severity == ERROR for v in self.splits.values() for a in v)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "passed": self.passed,
            "anomaly_count": self.anomaly_count,
            "splits": {s: [a.to_dict() for a in v] for s, v in self.splits.items()},
        }
        if self.environment is not None:
            doc["environment"] = self.environment
        if self.drift:
            doc["drift"] = self.drift
        if self.skew:
            doc["skew"] = self.skew
        if self.expectations:
            doc["expectations"] = self.expectations
        return doc


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ----------------------------------------------------------------------------- schema checks


def _type_matches(expected: str, seen: str) -> bool:
    # An int column where float is expected is a widening (a CSV whose values are all
    # whole numbers this time), not a change worth failing on.
    return seen == expected or (expected == "float" and seen == "int")


def _domain_anomaly(name: str, col: Mapping[str, Any], spec: ColumnSchema, where: str) -> Anomaly | None:
    assert spec.domain is not None
    s = col.get("string") or {}
    tops = s.get("top_values") or []
    allowed = set(spec.domain)
    outside = [(t["value"], int(t["count"])) for t in tops if t["value"] not in allowed]
    unlisted = int(col.get("count", 0)) - sum(int(t["count"]) for t in tops)
    unique = int(s.get("unique", len(tops)))
    # Values beyond the top values are unknown; when there are more distinct values
    # than the domain holds (beyond the unique sketch's ~2% error), some must be outside.
    overflow = unlisted > 0 and unique > len(allowed) + max(1, math.ceil(0.02 * len(allowed)))
    if not outside and not overflow:
        return None
    named = ", ".join(f"{v!r} ({c})" for v, c in outside[:_LISTED_VALUES])
    more = f" and {len(outside) - _LISTED_VALUES} more" if len(outside) > _LISTED_VALUES else ""
    parts = []
    if outside:
        parts.append(f"{sum(c for _, c in outside)} value(s) outside the schema's domain: {named}{more}")
    if unlisted > 0:
        parts.append(f"{unlisted} value(s) beyond the statistics' top values were not checked "
                     f"(about {unique} distinct values, the domain allows {len(allowed)})")
    return Anomaly(name, "out_of_domain",
                   f"{where}: {'; '.join(parts)}. Fix the data, or add the values to the column's "
                   "\"domain\" in the schema.",
                   details={"values": [{"value": v, "count": c} for v, c in outside],
                            "unchecked_count": max(unlisted, 0)})


def _range_anomaly(name: str, col: Mapping[str, Any], spec: ColumnSchema, where: str) -> Anomaly | None:
    assert spec.range is not None
    numeric = col.get("numeric")
    if not numeric:
        return None
    lo, hi = spec.range
    problems: list[str] = []
    details: dict[str, Any] = {}
    if lo is not None and numeric["min"] < lo:
        problems.append(f"min {_fmt(numeric['min'])} is below the schema's range.min {_fmt(lo)}")
        details.update(min=numeric["min"], range_min=lo)
    if hi is not None and numeric["max"] > hi:
        problems.append(f"max {_fmt(numeric['max'])} is above the schema's range.max {_fmt(hi)}")
        details.update(max=numeric["max"], range_max=hi)
    if not problems:
        return None
    return Anomaly(name, "out_of_range",
                   f"{where}: {' and '.join(problems)}. Fix the data, or widen the column's \"range\" "
                   "in the schema.", details=details)


def detect_anomalies(stats: Mapping[str, Any], schema: TableSchema, *, split: str | None = None,
                     environment: str | None = None) -> list[Anomaly]:
    """Compare one split's statistics document with ``schema``.

    Args:
        stats: the split's statistics (``{"num_rows", "columns": {...}}``).
        schema: the schema to check against.
        split: the split's name, for descriptions (default: ``stats["split"]``).
        environment: the environment the data comes from (``"TRAINING"``, ``"SERVING"``):
            a column the schema puts outside it is not required, and is an anomaly if
            present; ``None``: every column is expected.

    Returns:
        The anomalies, in the schema's column order, then new columns.

    Example:
        >>> from jfx.components._schema import ColumnSchema, TableSchema
        >>> schema = TableSchema({"x": ColumnSchema("float", range=(0.0, 1.0))})
        >>> stats = {"columns": {"x": {"type": "float", "count": 2, "missing": 0,
        ...                            "numeric": {"min": 0.5, "max": 3.0}}}}
        >>> [a.kind for a in detect_anomalies(stats, schema, split="eval")]
        ['out_of_range']
    """
    split = split if split is not None else str(stats.get("split", "?"))
    columns: Mapping[str, Any] = stats.get("columns") or {}
    found: list[Anomaly] = []
    for name, spec in schema.columns.items():
        where = f"split {split!r}, column {name!r}"
        col = columns.get(name)
        expected = schema.in_environment(name, environment)
        if col is None:
            if expected and (spec.required or spec.min_presence > 0 or spec.min_count > 0):
                why = ("marks it required" if spec.required else
                       f"sets its min_presence to {_fmt(spec.min_presence)}" if spec.min_presence > 0 else
                       f"sets its min_count to {spec.min_count}")
                env = f" in environment {environment}" if environment is not None else ""
                found.append(Anomaly(name, "missing_column",
                                     f"{where}: the column is missing; the schema {why}{env}. "
                                     "Add it to the data, or make it optional in the schema "
                                     "(\"required\": false, \"min_presence\": 0, \"min_count\": 0)"
                                     + (f", or list {environment!r} in its \"not_in_environment\"."
                                        if environment is not None else ".")))
            continue
        if not expected:
            found.append(Anomaly(name, "new_column",
                                 f"{where}: the column is present, but the schema says it is not in environment "
                                 f"{environment} (a label in serving data?). Drop it from the {environment} data, "
                                 f"or add {environment!r} to the column's \"in_environment\" in the schema.",
                                 details={"environment": environment}))
        seen = col.get("type")
        if not _type_matches(spec.type, seen):
            found.append(Anomaly(name, "type_change",
                                 f"{where}: the column is {seen}, the schema expects {spec.type}. Fix the data's "
                                 "type, or change the column's \"type\" in the schema.",
                                 details={"expected": spec.type, "actual": seen}))
            continue  # its domain and range checks would only repeat the type change
        count, missing = int(col.get("count", 0)), int(col.get("missing", 0))
        if count + missing > 0:
            presence = count / (count + missing)
            if presence + _PRESENCE_TOLERANCE < spec.min_presence:
                found.append(Anomaly(name, "low_presence",
                                     f"{where}: only {presence:.2%} of rows have a value ({missing} of "
                                     f"{count + missing} missing); the schema's min_presence is "
                                     f"{spec.min_presence:.2%}. Fix the data, or lower \"min_presence\".",
                                     details={"presence": presence, "min_presence": spec.min_presence,
                                              "missing": missing}))
            elif count < spec.min_count:
                have = "no row has a value" if count == 0 else f"only {count} row(s) have a value"
                found.append(Anomaly(name, "low_presence",
                                     f"{where}: {have} ({missing} of {count + missing} missing); the schema's "
                                     f"min_count is {spec.min_count}. Fix the data, or lower \"min_count\".",
                                     details={"count": count, "min_count": spec.min_count, "missing": missing}))
        if spec.domain is not None and spec.type in DOMAIN_TYPES:
            anomaly = _domain_anomaly(name, col, spec, where)
            if anomaly:
                found.append(anomaly)
        if spec.range is not None and spec.type in RANGE_TYPES:
            anomaly = _range_anomaly(name, col, spec, where)
            if anomaly:
                found.append(anomaly)
    for name, col in columns.items():
        if name in schema.columns or name.startswith(LOG_COLUMN_PREFIX):
            continue
        if col.get("type") not in COLUMN_TYPES:  # SchemaGen leaves such columns out: only a warning
            found.append(Anomaly(name, "new_column",
                                 f"split {split!r}, column {name!r}: a column of a type jfx does not check "
                                 f"({col.get('type')}); it is not validated.", severity=WARNING,
                                 details={"type": col.get("type")}))
            continue
        found.append(Anomaly(name, "new_column",
                             f"split {split!r}, column {name!r}: a {col.get('type')} column the schema does "
                             "not know. Drop it from the data, or add it to the schema.",
                             details={"type": col.get("type")}))
    return found


# ----------------------------------------------------------------------------- skew and drift


def _linf(counts_a: Mapping[str, float], counts_b: Mapping[str, float],
          total_a: float | None = None, total_b: float | None = None) -> tuple[str | None, float]:
    """(the value with the largest difference, the L-infinity distance) between two count maps."""
    ta = float(total_a if total_a is not None else sum(counts_a.values()))
    tb = float(total_b if total_b is not None else sum(counts_b.values()))
    best: tuple[str | None, float] = (None, 0.0)
    for value in sorted(set(counts_a) | set(counts_b)):
        fa = counts_a.get(value, 0) / ta if ta > 0 else 0.0
        fb = counts_b.get(value, 0) / tb if tb > 0 else 0.0
        if abs(fa - fb) > best[1]:
            best = (value, abs(fa - fb))
    return best


def linf_distance(counts_a: Mapping[str, float], counts_b: Mapping[str, float],
                  total_a: float | None = None, total_b: float | None = None) -> float:
    """L-infinity distance between two value → count maps, as frequencies.

    Each count is divided by its side's total (default: the sum of its counts, TFDV's
    normalisation); a value missing on one side has frequency 0 there.
    """
    return _linf(counts_a, counts_b, total_a, total_b)[1]


def js_divergence(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Jensen–Shannon divergence of two distributions over the same bins (base 2, in [0, 1]).

    The inputs are normalised to sum to 1 first.
    """
    pv = np.asarray(p, dtype=np.float64)
    qv = np.asarray(q, dtype=np.float64)
    if pv.shape != qv.shape:
        raise ValueError(f"js_divergence needs distributions over the same bins, got {pv.shape} and {qv.shape}")
    if pv.sum() <= 0 or qv.sum() <= 0:
        raise ValueError("js_divergence needs two distributions with positive mass")
    pv, qv = pv / pv.sum(), qv / qv.sum()
    m = (pv + qv) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return min(1.0, max(0.0, (kl(pv) + kl(qv)) / 2))


@dataclass(frozen=True)
class _Histogram:
    """A histogram as TFDV aligns it: contiguous buckets (``edges``, ``counts``) and point masses."""

    edges: np.ndarray
    counts: np.ndarray
    points: dict[float, float]


def _as_histogram(hist: Mapping[str, Any] | None, numeric: Mapping[str, Any] | None = None,
                  count: float = 0.0) -> _Histogram | None:
    numeric = numeric or {}
    hist = hist or {}
    bounds, counts = hist.get("boundaries"), hist.get("counts")
    total = float(sum(counts)) if counts else float(count)
    lo, hi = numeric.get("min"), numeric.get("max")
    if lo is not None and lo == hi and total > 0:
        # A constant column: StatisticsGen spreads it over a unit-wide span (numpy's rule),
        # TFDV keeps it as one zero-width bucket, a point mass. The point mass it is.
        return _Histogram(np.empty(0), np.empty(0), {float(lo): total})
    if not bounds or not counts or len(bounds) != len(counts) + 1 or total <= 0:
        return None
    edges = np.asarray(bounds, dtype=np.float64)
    width_zero = edges[1:] == edges[:-1]
    points: dict[float, float] = {}
    for j in np.flatnonzero(width_zero):
        points[float(edges[j])] = points.get(float(edges[j]), 0.0) + float(counts[j])
    if width_zero.any():  # zero-width buckets: point masses, outside the rebucketing (TFDV)
        keep = ~width_zero
        edges = np.concatenate([edges[:-1][keep], edges[1:][keep][-1:]]) if keep.any() else np.empty(0)
        counts = [c for c, k in zip(counts, keep, strict=True) if k]
    return _Histogram(edges, np.asarray(counts, dtype=np.float64), points)


def _rebucket(h: _Histogram, boundaries: np.ndarray) -> np.ndarray:
    """``h``'s mass in each interval between ``boundaries`` (which include all of its edges),
    spread uniformly within each of its buckets; 0 outside them."""
    if len(boundaries) < 2:
        return np.empty(0)
    if len(h.edges) < 2:
        return np.zeros(len(boundaries) - 1)
    cumulative = np.concatenate([[0.0], np.cumsum(h.counts)])
    return np.diff(np.interp(boundaries, h.edges, cumulative))


def _aligned(a: _Histogram, b: _Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Two histograms over common buckets, as TFDV aligns them before the JS divergence:
    the union of both sides' bucket boundaries (uniform mass within a bucket), then one
    bucket per distinct point mass of either side."""
    boundaries = np.union1d(a.edges, b.edges)
    p, q = _rebucket(a, boundaries), _rebucket(b, boundaries)
    points = sorted(set(a.points) | set(b.points))
    p = np.concatenate([p, [a.points.get(x, 0.0) for x in points]])
    q = np.concatenate([q, [b.points.get(x, 0.0) for x in points]])
    return p, q


def histogram_js_divergence(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """TFDV's approximate Jensen–Shannon divergence of two ``histogram`` blocks
    (``{"boundaries", "counts"}``; zero-width buckets are point masses).

    Raises:
        ValueError: either histogram is empty or malformed.
    """
    ha, hb = _as_histogram(a), _as_histogram(b)
    if ha is None or hb is None:
        raise ValueError("histogram_js_divergence needs two non-empty histograms (boundaries, counts)")
    return js_divergence(*_aligned(ha, hb))


def _top_counts(col: Mapping[str, Any]) -> dict[str, float]:
    return {t["value"]: t["count"] for t in (col.get("string") or {}).get("top_values") or []}


def _numeric_histogram(col: Mapping[str, Any]) -> _Histogram | None:
    numeric = col.get("numeric")
    if not numeric:
        return None
    return _as_histogram(numeric.get("histogram"), numeric, float(col.get("count") or 0))


def _measure(col: Mapping[str, Any], base: Mapping[str, Any], metric: str) -> tuple[float, str | None] | None:
    """(distance, the value that differs most, for ``linf``) of a column from its baseline,
    or ``None`` when the statistics cannot give it (no values on a side)."""
    if metric == "linf":
        if not (col.get("string") and base.get("string")):
            return None
        value, distance = _linf(_top_counts(base), _top_counts(col))
        return distance, value
    top, base_top = _top_counts(col), _top_counts(base)
    if top and base_top:  # TFDV: value counts first (string and bool columns), else histograms
        keys = sorted(set(top) | set(base_top))
        return js_divergence([base_top.get(k, 0.0) for k in keys], [top.get(k, 0.0) for k in keys]), None
    ha, hb = _numeric_histogram(base), _numeric_histogram(col)
    if ha is None or hb is None:
        return None
    return js_divergence(*_aligned(ha, hb)), None


def _default_metric(spec: ColumnSchema) -> str:
    return "linf" if spec.type in ("string", "bool") else "js"


def detect_comparator(stats: Mapping[str, Any], baseline: Mapping[str, Any], schema: TableSchema, kind: str, *,
                      split: str, baseline_split: str,
                      environment: str | None = None) -> tuple[dict[str, dict[str, Any]], list[Anomaly]]:
    """Measure ``kind`` (``"drift"`` or ``"skew"``) of every schema column between a split
    and its baseline (the previous span for drift, the training data for skew).

    Columns whose ``<kind>_comparator`` sets a threshold are checked against it (an
    anomaly when the distance is above it); the others are measured on their type's
    metric and reported only. Columns the schema puts outside ``environment``, or
    missing on either side, are left out.

    Returns:
        ``(measurements, anomalies)``: column → ``{"metric", "value", "threshold",
        "baseline_split"}`` (plus ``"value_with_largest_difference"`` for ``linf``), and
        the anomalies, which name the column, the distance and the threshold.
    """
    cols, base_cols = stats.get("columns") or {}, baseline.get("columns") or {}
    measured: dict[str, dict[str, Any]] = {}
    found: list[Anomaly] = []
    against = ("the training statistics" if kind == "skew" else "the baseline") + f" (split {baseline_split!r})"
    for name, spec in schema.columns.items():
        if name not in cols or name not in base_cols or not schema.in_environment(name, environment):
            continue
        thresholds = spec.comparator(kind)
        metric = next(iter(thresholds), None) or _default_metric(spec)
        result = _measure(cols[name], base_cols[name], metric)
        if result is None:
            continue
        value, top = result
        threshold = thresholds.get(metric)
        entry: dict[str, Any] = {"metric": metric, "value": value, "threshold": threshold,
                                 "baseline_split": baseline_split}
        if top is not None:
            entry["value_with_largest_difference"] = top
        measured[name] = entry
        if threshold is None or value <= threshold:
            continue
        most = f"; the value that differs most is {top!r}" if top is not None else ""
        verb = "differs from" if kind == "skew" else "drifted from"
        found.append(Anomaly(name, kind,
                             f"split {split!r}, column {name!r}: {verb} {against}: {_METRIC_LABEL[metric]} "
                             f"{value:.4f} is above the schema's {kind}_comparator threshold {_fmt(threshold)}{most}. "
                             f"Check the data, or raise \"{kind}_comparator\": {{\"{_METRIC_FIELD[metric]}\": "
                             "{\"threshold\": ...}} in the schema.",
                             details={"metric": metric, "value": value, "threshold": threshold,
                                      "baseline_split": baseline_split,
                                      **({"value_with_largest_difference": top} if top is not None else {})}))
    return measured, found


def detect_drift(stats: Mapping[str, Any], baseline: Mapping[str, Any], schema: TableSchema, *,
                 split: str, baseline_split: str,
                 environment: str | None = None) -> tuple[dict[str, dict[str, Any]], list[Anomaly]]:
    """:func:`detect_comparator` for the ``drift_comparator`` thresholds."""
    return detect_comparator(stats, baseline, schema, "drift", split=split, baseline_split=baseline_split,
                             environment=environment)


# ----------------------------------------------------------------------------- the report


def _strip_where(description: str, split: str, column: str | None) -> str:
    """A description without its "split 'x', column 'y': " prefix (the report's headings say it)."""
    for prefix in (f"split {split!r}, column {column!r}: ", f"split {split!r}: "):
        if description.startswith(prefix):
            return description[len(prefix):]
    return description


def format_report(result: ValidationResult, *, title: str = "ExampleValidator") -> str:
    """The readable report: per split, per column, what was found and how to fix it."""
    n, splits = result.anomaly_count, len(result.splits)
    verdict = "passed" if result.passed else "FAILED"
    env = f" (environment {result.environment})" if result.environment is not None else ""
    lines = [f"{title}: {verdict}: {n} anomal{'y' if n == 1 else 'ies'} in {splits} split{'s' if splits != 1 else ''}"
             f"{env}"]
    for split, anomalies in result.splits.items():
        lines.append("")
        if not anomalies:
            lines.append(f"split {split}: no anomalies")
        else:
            lines.append(f"split {split}: {len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}")
            width = max(len(a.column or "(table)") for a in anomalies)
            order = {c: i for i, c in enumerate(dict.fromkeys(a.column for a in anomalies))}
            for a in sorted(anomalies, key=lambda a: order[a.column]):  # stable: grouped by column
                tag = "" if a.severity == ERROR else f" [{a.severity}]"
                lines.append(f"  {(a.column or '(table)'):<{width}}  {a.kind}{tag}")
                lines.append(f"    {_strip_where(a.description, split, a.column)}")
        for heading, measured, flag_word in (("drift against baseline", result.drift, "DRIFTED"),
                                             ("skew against training", result.skew, "SKEWED")):
            found = measured.get(split) or {}
            if not found:
                continue
            lines.append(f"  {heading} split {next(iter(found.values()))['baseline_split']!r}:")
            width = max(len(c) for c in found)
            for column, m in found.items():
                label = "L-inf" if m["metric"] == "linf" else "JS"
                limit = f"threshold {_fmt(m['threshold'])}" if m["threshold"] is not None else "no threshold"
                flag = f"  {flag_word}" if m["threshold"] is not None and m["value"] > m["threshold"] else ""
                lines.append(f"    {column:<{width}}  {label} {m['value']:.4f} ({limit}){flag}")
        exp = result.expectations.get(split)
        if exp:
            lines.append(f"  expectations {exp['suite']!r}: {exp['evaluated'] - exp['failed']} of "
                         f"{exp['evaluated']} passed")
    return "\n".join(lines) + "\n"
