"""Anomaly detection: a split's statistics against a schema, and drift against a baseline.

Every check works on ExampleStatistics documents (docs/artifacts.md), never on the data,
so it costs the same for a hundred rows or a billion.

Anomaly kinds: ``missing_column``, ``new_column``, ``type_change``, ``out_of_domain``,
``out_of_range``, ``low_presence``, ``drift``, ``expectation_failed``.

Drift distances:

* categorical columns (string, bool): the L-infinity distance between the two
  frequency vectors of ``top_values``, each count divided by the column's number of
  present values; a value absent from one side counts 0 there.
* numeric columns (int, float, timestamp, bool): the Jensen–Shannon divergence (base-2
  logarithms, so it lies in [0, 1]) of the two distributions over a common set of bins.
  Each side's cumulative distribution function is rebuilt from its 101 quantiles
  (ranks 0.00 … 1.00), piecewise linear between quantiles, with repeated quantiles as
  point masses (a quantile value repeated over ranks r..s holds mass s - r). Without
  quantiles the equal-width histogram is used the same way (uniform within a bucket).
  The common bins are 20 equal-mass bins of both sides pooled (cut at the quantiles of
  the two sides' quantile values together): coarse enough that sampling noise in the
  sketches scores near 0, fine enough to see a shift of half a standard deviation. The
  first bin holds the mass at or below the lowest edge. Identical statistics give
  exactly 0; disjoint supports give 1.

Example:
    >>> linf_distance({"a": 6, "b": 4}, {"a": 3, "b": 5, "c": 2})
    0.3
    >>> round(js_divergence([1.0, 0.0], [0.0, 1.0]), 6)
    1.0
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
    "Anomaly",
    "ValidationResult",
    "detect_anomalies",
    "detect_drift",
    "linf_distance",
    "js_divergence",
    "numeric_bins",
    "format_report",
]

ANOMALY_KINDS = ("missing_column", "new_column", "type_change", "out_of_domain", "out_of_range",
                 "low_presence", "drift", "expectation_failed")
ERROR, WARNING = "error", "warning"
_PRESENCE_TOLERANCE = 1e-9
_LISTED_VALUES = 10  # out-of-domain values named in a description
# Common bins for the JS divergence. Finer bins measure sketch noise: two samples of one
# normal distribution (500 and 1,000 rows) scored 0.052 with bins at every quantile of
# both sides but 0.011 with 20 bins, where a shift of half a standard deviation scores
# 0.054 (true value 0.044).
JS_BINS = 20


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
    """

    splits: dict[str, list[Anomaly]] = field(default_factory=dict)
    drift: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    expectations: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        if self.drift:
            doc["drift"] = self.drift
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


def detect_anomalies(stats: Mapping[str, Any], schema: TableSchema, *, split: str | None = None) -> list[Anomaly]:
    """Compare one split's statistics document with ``schema``.

    Args:
        stats: the split's statistics (``{"num_rows", "columns": {...}}``).
        schema: the schema to check against.
        split: the split's name, for descriptions (default: ``stats["split"]``).

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
        if col is None:
            if spec.required or spec.min_presence > 0 or spec.min_count > 0:
                why = ("marks it required" if spec.required else
                       f"sets its min_presence to {_fmt(spec.min_presence)}" if spec.min_presence > 0 else
                       f"sets its min_count to {spec.min_count}")
                found.append(Anomaly(name, "missing_column",
                                     f"{where}: the column is missing; the schema {why}. "
                                     "Add it to the data, or make it optional in the schema "
                                     "(\"required\": false, \"min_presence\": 0, \"min_count\": 0)."))
            continue
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
        if name in schema.columns:
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


# ----------------------------------------------------------------------------- drift


def linf_distance(counts_a: Mapping[str, float], counts_b: Mapping[str, float],
                  total_a: float | None = None, total_b: float | None = None) -> float:
    """L-infinity distance between two value → count maps, as frequencies.

    Each count is divided by its side's total (default: the sum of its counts); a value
    missing on one side has frequency 0 there.
    """
    ta = float(total_a if total_a is not None else sum(counts_a.values()))
    tb = float(total_b if total_b is not None else sum(counts_b.values()))
    best = 0.0
    for value in set(counts_a) | set(counts_b):
        fa = counts_a.get(value, 0) / ta if ta > 0 else 0.0
        fb = counts_b.get(value, 0) / tb if tb > 0 else 0.0
        best = max(best, abs(fa - fb))
    return best


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


def _cdf_points(numeric: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, F(x)) points of a column's distribution: from quantiles, else the histogram."""
    quantiles = numeric.get("quantiles")
    if quantiles and len(quantiles) >= 2:
        x = np.asarray(quantiles, dtype=np.float64)
        return x, np.linspace(0.0, 1.0, len(x))
    hist = numeric.get("histogram") or {}
    bounds, counts = hist.get("boundaries"), hist.get("counts")
    if bounds and counts and len(bounds) == len(counts) + 1 and sum(counts) > 0:
        cum = np.concatenate([[0.0], np.cumsum(np.asarray(counts, dtype=np.float64))])
        return np.asarray(bounds, dtype=np.float64), cum / cum[-1]
    if numeric.get("min") is not None and numeric.get("min") == numeric.get("max"):
        return np.array([numeric["min"], numeric["min"]], dtype=np.float64), np.array([0.0, 1.0])
    return None


def _cdf(x: np.ndarray, f: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The right-continuous, piecewise-linear CDF through points (x, f), evaluated at ``at``.

    Repeated x values make a jump (a point mass): the last of them gives F there.
    """
    j = np.searchsorted(x, at, side="right") - 1
    out = np.empty_like(at)
    below, above = j < 0, j >= len(x) - 1
    out[below] = 0.0
    out[above] = f[-1]
    mid = ~(below | above)
    jm = j[mid]
    x0, x1 = x[jm], x[jm + 1]
    out[mid] = f[jm] + (at[mid] - x0) / (x1 - x0) * (f[jm + 1] - f[jm])
    return out


def numeric_bins(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Two numeric columns' distributions over common bins (see the module docstring).

    Args:
        a, b: the ``numeric`` sections of two columns' statistics.

    Returns:
        ``(p, q, edges)``: the masses of each side in each bin (bin 0 is ``<= edges[0]``,
        bin i is ``(edges[i-1], edges[i]]``), or ``None`` when either side has neither
        quantiles nor a histogram.
    """
    pa, pb = _cdf_points(a), _cdf_points(b)
    if pa is None or pb is None:
        return None
    pooled = np.concatenate([pa[0], pb[0]])
    edges = np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, JS_BINS + 1)))
    fa, fb = _cdf(*pa, edges), _cdf(*pb, edges)
    p = np.diff(np.concatenate([[0.0], fa]))
    q = np.diff(np.concatenate([[0.0], fb]))
    return np.clip(p, 0.0, None), np.clip(q, 0.0, None), edges


def _top_counts(col: Mapping[str, Any]) -> dict[str, float]:
    return {t["value"]: t["count"] for t in (col.get("string") or {}).get("top_values") or []}


def _measure(col: Mapping[str, Any], base: Mapping[str, Any], spec: ColumnSchema) -> tuple[str, float] | None:
    """(metric, distance) for a column, by its schema's threshold, else by its type."""
    metric = next(iter(spec.drift), None)
    if metric is None:
        metric = "linf" if spec.type in ("string", "bool") else "js"
    if metric == "linf":
        if not (col.get("string") and base.get("string")):
            return None
        return metric, linf_distance(_top_counts(col), _top_counts(base), col.get("count") or None,
                                     base.get("count") or None)
    if not (col.get("numeric") and base.get("numeric")):
        return None
    bins = numeric_bins(col["numeric"], base["numeric"])
    if bins is None:
        return None
    p, q, _ = bins
    return metric, js_divergence(p, q)


def detect_drift(stats: Mapping[str, Any], baseline: Mapping[str, Any], schema: TableSchema, *,
                 split: str, baseline_split: str) -> tuple[dict[str, dict[str, Any]], list[Anomaly]]:
    """Measure drift of every schema column between a split and its baseline.

    Columns with a ``drift`` threshold in the schema are checked against it (an
    anomaly when the distance exceeds it); the others are measured and reported only.

    Returns:
        ``(measurements, anomalies)``: column → ``{"metric", "value", "threshold",
        "baseline_split"}``, and the drift anomalies.
    """
    cols, base_cols = stats.get("columns") or {}, baseline.get("columns") or {}
    measured: dict[str, dict[str, Any]] = {}
    found: list[Anomaly] = []
    for name, spec in schema.columns.items():
        if name not in cols or name not in base_cols:
            continue
        result = _measure(cols[name], base_cols[name], spec)
        if result is None:
            continue
        metric, value = result
        threshold = spec.drift.get(metric)
        measured[name] = {"metric": metric, "value": value, "threshold": threshold,
                          "baseline_split": baseline_split}
        if threshold is not None and value > threshold:
            label = "L-infinity distance" if metric == "linf" else "Jensen-Shannon divergence"
            found.append(Anomaly(name, "drift",
                                 f"split {split!r}, column {name!r}: drifted from the baseline split "
                                 f"{baseline_split!r}: {label} {value:.4f} is above the schema's threshold "
                                 f"{_fmt(threshold)}. Check the data, or raise \"drift\": {{\"{metric}\": ...}} "
                                 "in the schema.",
                                 details={"metric": metric, "value": value, "threshold": threshold}))
    return measured, found


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
    lines = [f"{title}: {verdict}: {n} anomal{'y' if n == 1 else 'ies'} in {splits} split{'s' if splits != 1 else ''}"]
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
        drift = result.drift.get(split) or {}
        if drift:
            lines.append(f"  drift against baseline split {next(iter(drift.values()))['baseline_split']!r}:")
            width = max(len(c) for c in drift)
            for column, m in drift.items():
                label = "L-inf" if m["metric"] == "linf" else "JS"
                limit = f"threshold {_fmt(m['threshold'])}" if m["threshold"] is not None else "no threshold"
                flag = "  DRIFTED" if m["threshold"] is not None and m["value"] > m["threshold"] else ""
                lines.append(f"    {column:<{width}}  {label} {m['value']:.4f} ({limit}){flag}")
        exp = result.expectations.get(split)
        if exp:
            lines.append(f"  expectations {exp['suite']!r}: {exp['evaluated'] - exp['failed']} of "
                         f"{exp['evaluated']} passed")
    return "\n".join(lines) + "\n"
