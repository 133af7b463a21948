"""The schema model: what columns a split must have, their types and value domains.

A schema is ``<uri>/schema.json`` (see docs/artifacts.md)::

    {"version": 1,
     "default_environment": ["TRAINING", "SERVING"],
     "columns": {"species": {"type": "string", "required": true, "min_presence": 1.0,
                             "domain": ["Adelie", "Chinstrap", "Gentoo"],
                             "not_in_environment": ["SERVING"],
                             "drift_comparator": {"infinity_norm": {"threshold": 0.2}}},
                 "bill_length_mm": {"type": "float", "required": false, "min_presence": 0.0,
                                    "min_count": 1, "range": {"min": 32.1, "max": 59.6},
                                    "skew_comparator": {"jensen_shannon_divergence": {"threshold": 0.1}}}}}

Environments and comparators follow TFDV's schema: ``default_environment`` lists the
environments every column is in, a column's ``in_environment``/``not_in_environment``
adds or removes it (so the label can be required in ``TRAINING`` and absent in
``SERVING``); a schema without ``default_environment`` puts every column in every
environment. ``drift_comparator`` (against a previous span) and ``skew_comparator``
(serving against training) hold an ``infinity_norm`` threshold (categorical columns)
and/or a ``jensen_shannon_divergence`` threshold; the older ``"drift": {"linf": t}`` /
``{"js": t}`` form still loads, as a drift comparator.

:func:`infer_schema` derives one from ExampleStatistics; :func:`load_schema` reads and
validates one (errors name the file, the column and the field at fault);
:func:`save_schema` writes one.

Example:
    >>> stats = {"train": {"split": "train", "num_rows": 4, "columns": {
    ...     "kind": {"type": "string", "count": 4, "missing": 0,
    ...              "string": {"unique": 2, "avg_length": 1.0,
    ...                         "top_values": [{"value": "a", "count": 3}, {"value": "b", "count": 1}]}}}}}
    >>> schema = infer_schema(stats)
    >>> schema.columns["kind"].domain, schema.columns["kind"].required
    (('a', 'b'), True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jfx.errors import DataValidationError
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._layouts import SCHEMA_FILE, STATISTICS_FILE

__all__ = [
    "COLUMN_TYPES",
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "ColumnSchema",
    "TableSchema",
    "schema_from_dict",
    "schema_to_dict",
    "load_schema",
    "save_schema",
    "infer_schema",
    "with_drift",
    "with_comparators",
    "with_environments",
    "COMPARATORS",
    "TRAINING",
    "SERVING",
]

SCHEMA_VERSION = 1
COLUMN_TYPES = ("int", "float", "string", "bool", "timestamp")
RANGE_TYPES = ("int", "float", "timestamp")  # types whose values can be bounded by a range
DOMAIN_TYPES = ("string",)  # types whose values can be listed in a domain
DRIFT_METRICS = {"linf": ("string", "bool"), "js": ("int", "float", "timestamp", "bool")}
# TFDV's comparator thresholds: the schema.json name of each metric and the column types
# it applies to. Jensen-Shannon also reads string columns (their value counts), as TFDV does.
COMPARATOR_METRICS = {"infinity_norm": "linf", "jensen_shannon_divergence": "js"}
COMPARATOR_TYPES = {"linf": ("string", "bool"), "js": ("int", "float", "timestamp", "bool", "string")}
COMPARATORS = ("drift", "skew")  # drift: against a previous span; skew: serving against training
TRAINING, SERVING = "TRAINING", "SERVING"
MAX_DOMAIN_SIZE = 100  # a string column with more distinct values gets no inferred domain

_COLUMN_FIELDS = ("type", "required", "min_presence", "min_count", "domain", "range", "drift", "drift_comparator",
                  "skew_comparator", "in_environment", "not_in_environment", "description")

_SCHEMA_EXAMPLE = """\
Right:
  {"version": 1, "default_environment": ["TRAINING", "SERVING"], "columns": {
     "species": {"type": "string", "required": true, "domain": ["Adelie", "Gentoo"],
                 "not_in_environment": ["SERVING"]},
     "bill_length_mm": {"type": "float", "required": false, "min_presence": 0.95,
                        "range": {"min": 30, "max": 60},
                        "drift_comparator": {"jensen_shannon_divergence": {"threshold": 0.1}}}}}"""


@dataclass(frozen=True)
class ColumnSchema:
    """What one column must look like.

    Attributes:
        type: one of ``int``, ``float``, ``string``, ``bool``, ``timestamp``.
        required: the column must be present in every split (it may still hold nulls,
            up to ``min_presence``).
        min_presence: the least fraction of rows with a non-null value (0 to 1).
        min_count: the least number of rows with a non-null value (TFDV's
            ``presence.min_count``; 1: the column may not be entirely missing).
        domain: the allowed values of a string column (``None``: any value).
        range: ``(min, max)`` allowed for a numeric column; either end may be ``None``.
        drift: the drift comparator's thresholds against a previous span, by metric:
            ``"linf"`` (TFDV's ``infinity_norm``; categorical columns) and/or ``"js"``
            (``jensen_shannon_divergence``); empty: no drift check.
        description: free text kept for the user.
        min_count: see above.
        skew: the skew comparator's thresholds (serving data against the training
            statistics), keyed like ``drift``.
        in_environment: environments the column is in, whatever ``default_environment`` says.
        not_in_environment: environments the column is not in (the label: ``("SERVING",)``).
    """

    type: str
    required: bool = True
    min_presence: float = 1.0
    domain: tuple[str, ...] | None = None
    range: tuple[float | None, float | None] | None = None
    drift: dict[str, float] = field(default_factory=dict)
    description: str | None = None
    min_count: int = 0
    skew: dict[str, float] = field(default_factory=dict)
    in_environment: tuple[str, ...] = ()
    not_in_environment: tuple[str, ...] = ()

    def comparator(self, kind: str) -> dict[str, float]:
        """The thresholds of the ``"drift"`` or ``"skew"`` comparator, by metric."""
        return self.skew if kind == "skew" else self.drift


@dataclass(frozen=True)
class TableSchema:
    """The expected columns of every split, by name.

    ``default_environment``: the environments every column is in unless it says
    otherwise (TFDV's rule); ``None`` (a schema that names none): every column is in
    every environment.
    """

    columns: dict[str, ColumnSchema]
    version: int = SCHEMA_VERSION
    default_environment: tuple[str, ...] | None = None

    def in_environment(self, name: str, environment: str | None) -> bool:
        """Whether column ``name`` belongs in data of ``environment`` (``None``: any data).

        Example:
            >>> s = TableSchema({"label": ColumnSchema("string", not_in_environment=("SERVING",)),
            ...                  "x": ColumnSchema("float")}, default_environment=("TRAINING", "SERVING"))
            >>> s.in_environment("label", "SERVING"), s.in_environment("label", "TRAINING"), s.in_environment("x", "SERVING")
            (False, True, True)
        """
        if environment is None:
            return True
        col = self.columns[name]
        if environment in col.in_environment:
            return True
        if environment in col.not_in_environment:
            return False
        return self.default_environment is None or environment in self.default_environment

    @property
    def environments(self) -> tuple[str, ...]:
        """Every environment the schema names (empty: it names none)."""
        names = list(self.default_environment or ())
        for col in self.columns.values():
            names += [*col.in_environment, *col.not_in_environment]
        return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- (de)serialising


def _fail(source: str, where: str, message: str) -> DataValidationError:
    return DataValidationError(f"schema {source}: {where}{message}\n{_SCHEMA_EXAMPLE}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _column_from_dict(name: str, doc: Any, source: str) -> ColumnSchema:
    where = f"column {name!r}: "
    if not isinstance(doc, dict):
        raise _fail(source, where, f"expected an object like {{\"type\": \"float\"}}, got {doc!r}")
    unknown = sorted(set(doc) - set(_COLUMN_FIELDS))
    if unknown:
        raise _fail(source, where, f"unknown field(s) {', '.join(map(repr, unknown))}; "
                    f"known fields: {', '.join(_COLUMN_FIELDS)}")
    ctype = doc.get("type")
    if ctype not in COLUMN_TYPES:
        raise _fail(source, where, f"field 'type': unknown type {ctype!r}; use one of {', '.join(COLUMN_TYPES)}")
    required = doc.get("required", True)
    if not isinstance(required, bool):
        raise _fail(source, where, f"field 'required' must be true or false, got {required!r}")
    presence = doc.get("min_presence", 1.0 if required else 0.0)
    if not _is_number(presence) or not 0.0 <= presence <= 1.0:
        raise _fail(source, where, f"field 'min_presence' must be a number from 0 to 1, got {presence!r}")
    min_count = doc.get("min_count", 0)
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 0:
        raise _fail(source, where, f"field 'min_count' must be a whole number >= 0, got {min_count!r}")

    domain = doc.get("domain")
    if domain is not None:
        if ctype not in DOMAIN_TYPES:
            raise _fail(source, where, f"field 'domain' applies to string columns; this column is {ctype} "
                        "(bound numbers with \"range\" instead)")
        if not isinstance(domain, list) or not domain or not all(isinstance(v, str) for v in domain):
            raise _fail(source, where, f"field 'domain' must be a non-empty list of strings, got {domain!r}")
        dupes = sorted({v for v in domain if domain.count(v) > 1})
        if dupes:
            raise _fail(source, where, f"field 'domain' lists {', '.join(map(repr, dupes))} more than once")
        domain = tuple(domain)

    bounds = doc.get("range")
    if bounds is not None:
        if ctype not in RANGE_TYPES:
            raise _fail(source, where, f"field 'range' applies to {', '.join(RANGE_TYPES)} columns; "
                        f"this column is {ctype}")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise _fail(source, where, f"field 'range' must be an object with \"min\" and/or \"max\", got {bounds!r}")
        lo, hi = bounds.get("min"), bounds.get("max")
        for key, value in (("min", lo), ("max", hi)):
            if value is not None and not _is_number(value):
                raise _fail(source, where, f"field 'range.{key}' must be a finite number, got {value!r}")
        if lo is not None and hi is not None and lo > hi:
            raise _fail(source, where, f"bad range: min {lo} is greater than max {hi}")
        bounds = (lo, hi)

    drift = doc.get("drift") or {}
    if not isinstance(drift, dict):
        raise _fail(source, where, f"field 'drift' must be an object like {{\"js\": 0.1}}, got {drift!r}")
    if len(drift) > 1:
        raise _fail(source, where, f"field 'drift' takes one metric, got {', '.join(map(repr, drift))}")
    for metric, threshold in drift.items():
        if metric not in DRIFT_METRICS:
            raise _fail(source, where, f"field 'drift': unknown metric {metric!r}; use \"linf\" "
                        "(categorical columns) or \"js\" (numeric columns)")
        if ctype not in DRIFT_METRICS[metric]:
            raise _fail(source, where, f"field 'drift.{metric}' applies to {', '.join(DRIFT_METRICS[metric])} "
                        f"columns; this column is {ctype}")
        if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
            raise _fail(source, where, f"field 'drift.{metric}' must be a number from 0 to 1, got {threshold!r}")
    drift = {k: float(v) for k, v in drift.items()}
    if "drift_comparator" in doc:
        if drift:
            raise _fail(source, where, "fields 'drift' and 'drift_comparator' both set drift thresholds; "
                        "keep 'drift_comparator' (the older 'drift' form reads the same)")
        drift = _comparator_from_dict(doc["drift_comparator"], "drift_comparator", ctype, source, where)
    skew = _comparator_from_dict(doc.get("skew_comparator"), "skew_comparator", ctype, source, where)
    in_env = _environments(doc.get("in_environment"), "in_environment", source, where)
    not_in_env = _environments(doc.get("not_in_environment"), "not_in_environment", source, where)
    both = sorted(set(in_env) & set(not_in_env))
    if both:
        raise _fail(source, where, f"environment {both[0]!r} is in both 'in_environment' and 'not_in_environment'")
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(source, where, f"field 'description' must be a string, got {description!r}")
    return ColumnSchema(ctype, required, float(presence), domain, bounds, drift, description, min_count,
                        skew, in_env, not_in_env)


def _comparator_from_dict(doc: Any, key: str, ctype: str, source: str, where: str) -> dict[str, float]:
    """TFDV's FeatureComparator: ``{"infinity_norm": {"threshold": t}, "jensen_shannon_divergence": {...}}``."""
    if doc is None:
        return {}
    names = ", ".join(f'"{n}"' for n in COMPARATOR_METRICS)
    if not isinstance(doc, dict):
        raise _fail(source, where, f"field {key!r} must be an object like "
                    f"{{\"infinity_norm\": {{\"threshold\": 0.1}}}}, got {doc!r}")
    if len(doc) > 1:
        raise _fail(source, where, f"field {key!r} takes one metric (jfx checks one per comparator), "
                    f"got {', '.join(map(repr, doc))}")
    thresholds: dict[str, float] = {}
    for name, spec in doc.items():
        metric = COMPARATOR_METRICS.get(name)
        if metric is None:
            raise _fail(source, where, f"field '{key}': unknown metric {name!r}; use {names}")
        if not isinstance(spec, dict) or set(spec) != {"threshold"}:
            raise _fail(source, where, f"field '{key}.{name}' must be an object {{\"threshold\": t}}, got {spec!r}")
        threshold = spec["threshold"]
        if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
            raise _fail(source, where, f"field '{key}.{name}.threshold' must be a number from 0 to 1, got {threshold!r}")
        if ctype not in COMPARATOR_TYPES[metric]:
            raise _fail(source, where, f"field '{key}.{name}' applies to {', '.join(COMPARATOR_TYPES[metric])} "
                        f"columns; this column is {ctype}")
        thresholds[metric] = float(threshold)
    return thresholds


def _comparator_to_dict(thresholds: Mapping[str, float]) -> dict[str, Any]:
    names = {metric: name for name, metric in COMPARATOR_METRICS.items()}
    return {names[m]: {"threshold": t} for m, t in thresholds.items()}


def _environments(value: Any, key: str, source: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, where, f"field {key!r} must be a list of environment names like [\"SERVING\"], got {value!r}")
    return tuple(dict.fromkeys(value))


def schema_from_dict(doc: Any, source: str = "<dict>") -> TableSchema:
    """Validate a parsed ``schema.json`` document and return the schema.

    Args:
        doc: the parsed JSON.
        source: where it came from (a file name), for error messages.

    Raises:
        DataValidationError: the document is malformed; the message names ``source``,
            the column and the field at fault.
    """
    if not isinstance(doc, dict):
        raise _fail(source, "", f"expected a JSON object with \"version\" and \"columns\", got {type(doc).__name__}")
    unknown = sorted(set(doc) - {"version", "columns", "default_environment"})
    if unknown:
        raise _fail(source, "", f"unknown top-level field(s) {', '.join(map(repr, unknown))}; "
                    "known fields: version, default_environment, columns")
    version = doc.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _fail(source, "", f"field 'version': this jfx reads schema version {SCHEMA_VERSION}, got {version!r}")
    columns = doc.get("columns")
    if not isinstance(columns, dict):
        raise _fail(source, "", f"field 'columns' must be an object of column name → column schema, got {columns!r}")
    default_env = doc.get("default_environment")
    default = None if default_env is None else _environments(default_env, "default_environment", source, "")
    return TableSchema({name: _column_from_dict(name, col, source) for name, col in columns.items()}, version,
                       default)


def _number(value: float | None) -> float | int | None:
    if value is not None and float(value).is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def schema_to_dict(schema: TableSchema) -> dict[str, Any]:
    """The JSON document of ``schema`` (the inverse of :func:`schema_from_dict`)."""
    columns: dict[str, Any] = {}
    for name, col in schema.columns.items():
        doc: dict[str, Any] = {"type": col.type, "required": col.required, "min_presence": col.min_presence}
        if col.min_count:
            doc["min_count"] = col.min_count
        if col.domain is not None:
            doc["domain"] = list(col.domain)
        if col.range is not None:
            lo, hi = col.range
            doc["range"] = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        if col.in_environment:
            doc["in_environment"] = list(col.in_environment)
        if col.not_in_environment:
            doc["not_in_environment"] = list(col.not_in_environment)
        if col.drift:
            doc["drift_comparator"] = _comparator_to_dict(col.drift)
        if col.skew:
            doc["skew_comparator"] = _comparator_to_dict(col.skew)
        if col.description is not None:
            doc["description"] = col.description
        columns[name] = doc
    out: dict[str, Any] = {"version": schema.version}
    if schema.default_environment is not None:
        out["default_environment"] = list(schema.default_environment)
    out["columns"] = columns
    return out


def _schema_path(where: str | Path | Artifact) -> Path:
    path = Path(where.uri) if isinstance(where, Artifact) else Path(where)
    return path / SCHEMA_FILE if path.is_dir() else path


def load_schema(where: str | Path | Artifact) -> TableSchema:
    """Read and validate a schema: a ``schema.json`` file, its folder or a Schema artifact.

    Raises:
        DataValidationError: the file is missing, is not JSON, or is not a valid schema
            (the message names the file, the column and the field).
    """
    path = _schema_path(where)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataValidationError(f"schema {path}: cannot read it ({err.strerror or err})") from err
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataValidationError(f"schema {path}: not valid JSON: {err}") from err
    return schema_from_dict(doc, str(path))


def save_schema(schema: TableSchema, where: str | Path | Artifact) -> Path:
    """Write ``schema`` as ``schema.json`` into a folder or artifact (or to a file path)."""
    path = Path(where.uri) / SCHEMA_FILE if isinstance(where, Artifact) else Path(where)
    if path.is_dir():
        path = path / SCHEMA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema_to_dict(schema), indent=2) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- statistics


def _read_statistics(artifact: Artifact) -> dict[str, dict[str, Any]]:
    """Split name → its statistics document, from an ExampleStatistics artifact.

    (StatisticsGen owns the format; this small reader keeps the validator independent
    of its module. Splits come in the order of the ``splits`` property.)
    """
    root = Path(artifact.uri)
    names = list(artifact.properties.get("splits") or [])
    if not names:
        names = sorted(p.parent.name[len("Split-"):] for p in root.glob(f"Split-*/{STATISTICS_FILE}"))
    if not names:
        raise DataValidationError(f"{root}: no Split-<name>/{STATISTICS_FILE}; is it an ExampleStatistics artifact?")
    stats: dict[str, dict[str, Any]] = {}
    for name in names:
        path = root / f"Split-{name}" / STATISTICS_FILE
        try:
            stats[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataValidationError(f"statistics {path}: cannot read split {name!r}: {err}") from err
    return stats


def _merge_column(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Merge one column's statistics from two splits (enough for inference)."""
    types = {a.get("type"), b.get("type")}
    merged: dict[str, Any] = {
        "type": "float" if types == {"int", "float"} else a.get("type"),
        "count": a.get("count", 0) + b.get("count", 0),
        "missing": a.get("missing", 0) + b.get("missing", 0),
    }
    na, nb = a.get("numeric"), b.get("numeric")
    if na and nb:
        merged["numeric"] = {"min": min(na["min"], nb["min"]), "max": max(na["max"], nb["max"])}
    elif na or nb:
        merged["numeric"] = dict(na or nb or {})
    sa, sb = a.get("string"), b.get("string")
    if sa and sb:
        counts: dict[str, int] = {}
        for top in sa.get("top_values", []) + sb.get("top_values", []):
            counts[top["value"]] = counts.get(top["value"], 0) + top["count"]
        tops = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        merged["string"] = {"unique": max(sa.get("unique", 0), sb.get("unique", 0), len(counts)),
                            "top_values": [{"value": v, "count": c} for v, c in tops]}
    elif sa or sb:
        merged["string"] = dict(sa or sb or {})
    return merged


def _inference_columns(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[dict[str, Any], float, int]]:
    """Column → (its statistics merged over all splits, its lowest presence and lowest
    count of values in any split).

    A column absent from a split has presence 0 and count 0 there.
    """
    merged: dict[str, dict[str, Any]] = {}
    for split in stats.values():
        for name, col in (split.get("columns") or {}).items():
            merged[name] = _merge_column(merged[name], col) if name in merged else dict(col)
    result: dict[str, tuple[dict[str, Any], float, int]] = {}
    for name, col in merged.items():
        presences, counts = [], []
        for split in stats.values():
            one = (split.get("columns") or {}).get(name)
            if one is None:
                presences.append(0.0)
                counts.append(0)
                continue
            count, missing = int(one.get("count", 0)), int(one.get("missing", 0))
            counts.append(count)
            if count + missing:
                presences.append(count / (count + missing))
        result[name] = (col, min(presences, default=0.0), min(counts, default=0))
    return result


def _string_domain(col: Mapping[str, Any]) -> tuple[str, ...] | None:
    s = col.get("string") or {}
    tops = s.get("top_values") or []
    covered = sum(t["count"] for t in tops)
    if not tops or len(tops) > MAX_DOMAIN_SIZE or s.get("unique", len(tops)) > MAX_DOMAIN_SIZE:
        return None
    if covered < col.get("count", 0):  # values beyond the top values exist: the domain is not known
        return None
    return tuple(sorted(t["value"] for t in tops))


def infer_schema(stats: Mapping[str, Mapping[str, Any]], *, infer_feature_shape: bool = True) -> TableSchema:
    """Infer a schema from per-split statistics (split → statistics document).

    Inference uses all the splits given (like TFX's SchemaGen), so that the data the
    schema was inferred from passes it: exclude splits by leaving them out. Per column:

    * ``type`` as observed (int in one split and float in another: float);
    * ``required`` when the column is never missing in any split (with
      ``infer_feature_shape=False`` every column is optional: TFX's variable-length
      features);
    * presence, by TFDV's rules: ``min_presence`` 1.0 for a column never missing in
      any split; for any other column 0.0, with ``min_count`` 1 when every split holds
      at least one of its values (so a column that vanishes or is entirely null is
      still caught);
    * ``domain`` for a string column with at most 100 distinct values that the top
      values cover completely;
    * ``range`` (observed min and max over all splits) for int and float columns.

    Columns of a type jfx does not support (statistics type ``unsupported``) are left out.
    Drift thresholds are not inferred: :func:`with_drift` (SchemaGen's
    ``drift_threshold`` and ``drift_thresholds``) sets them, or a user adds
    ``"drift": {"linf": 0.1}`` (categorical) or ``{"js": 0.1}`` (numeric) to a column.

    Raises:
        DataValidationError: ``stats`` holds no split.
    """
    if not stats:
        raise DataValidationError("cannot infer a schema: the statistics hold no split")
    columns: dict[str, ColumnSchema] = {}
    for name, (col, presence, least) in _inference_columns(stats).items():
        ctype = col.get("type")
        if ctype not in COLUMN_TYPES:  # "unsupported" (lists, structs, ...): nothing to check it with
            continue
        required = bool(infer_feature_shape) and presence >= 1.0
        # Presence as TFDV infers it: a fraction is only asserted where it is 1.0 (never
        # missing), because a fraction observed below 1 says little about the next batch.
        # The penguin table (344 rows, 2 missing: 0.994) made a bound of 0.99, which
        # a 117-row batch with 2 missing (0.983) failed; a binomial margin would depend
        # on the size of batches the schema will meet, which inference cannot know.
        # What stays checked there is TFDV's min_count 1: the column must not vanish.
        min_presence = 1.0 if presence >= 1.0 else 0.0
        min_count = 1 if least >= 1 else 0
        domain = _string_domain(col) if ctype in DOMAIN_TYPES else None
        bounds = None
        numeric = col.get("numeric")
        if ctype in ("int", "float") and numeric and numeric.get("min") is not None:
            bounds = (_number(numeric["min"]), _number(numeric["max"]))
        columns[name] = ColumnSchema(ctype, required, min_presence, domain, bounds, min_count=min_count)
    return TableSchema(columns)


def _default_metric(ctype: str) -> str:
    """The metric ExampleValidator measures for a column of this type."""
    return "linf" if ctype in ("string", "bool") else "js"


def with_comparators(schema: TableSchema, kind: str, threshold: float | None = None,
                     per_column: Mapping[str, Any] | None = None, *, source: str = "SchemaGen") -> TableSchema:
    """``schema`` with ``drift`` or ``skew`` comparator thresholds set.

    Args:
        schema: the schema to extend.
        kind: ``"drift"`` (checked against ExampleValidator's ``baseline_statistics``) or
            ``"skew"`` (checked against its ``training_statistics``).
        threshold: a threshold for every column, on its type's metric (``linf``, TFDV's
            ``infinity_norm``, for string and bool columns; ``js``, TFDV's
            ``jensen_shannon_divergence``, for int, float and timestamp ones).
        per_column: column → a threshold on its type's metric, ``{"metric": t}`` to
            name the metric(s) (``linf``/``infinity_norm``, ``js``/``jensen_shannon_divergence``),
            or ``None`` for no check; it wins over ``threshold``.
        source: who asks, for error messages.

    Returns:
        A new schema; columns not given a threshold keep the thresholds they had.

    Raises:
        DataValidationError: an unknown column, a metric that does not fit the column's
            type, or a threshold outside 0..1 (the message names the column and field).

    Example:
        >>> s = TableSchema({"fare": ColumnSchema("float"), "kind": ColumnSchema("string")})
        >>> {n: c.skew for n, c in with_comparators(s, "skew", 0.1, {"fare": 0.05}).columns.items()}
        {'fare': {'js': 0.05}, 'kind': {'linf': 0.1}}
    """
    if kind not in COMPARATORS:
        raise ValueError(f"comparator kind must be one of {COMPARATORS}, got {kind!r}")
    per_column = {} if per_column is None else per_column
    param = f"{kind}_thresholds"
    if not isinstance(per_column, Mapping):
        raise DataValidationError(f"{source}: {param} must be an object of column → threshold "
                                  f"(e.g. {{\"fare\": 0.1}}), got {per_column!r}")
    unknown = sorted(set(per_column) - set(schema.columns))
    if unknown:
        raise DataValidationError(f"{source}: {param} names column {unknown[0]!r}, which the "
                                  f"schema does not have; its columns: {', '.join(schema.columns)}")
    short = {**{m: m for m in COMPARATOR_METRICS.values()}, **COMPARATOR_METRICS}
    names = {metric: name for name, metric in COMPARATOR_METRICS.items()}
    columns: dict[str, ColumnSchema] = {}
    for name, col in schema.columns.items():
        thresholds: Any = col.comparator(kind)
        if name in per_column:
            given = per_column[name]
            if isinstance(given, Mapping):
                bad = sorted(set(given) - set(short))
                if bad:
                    raise DataValidationError(f"{source}: {param}[{name!r}]: unknown metric {bad[0]!r}; use "
                                              "linf (infinity_norm) or js (jensen_shannon_divergence)")
                thresholds = {short[m]: t for m, t in given.items()}
            else:
                thresholds = {} if given is None else {_default_metric(col.type): given}
        elif threshold is not None:
            thresholds = {_default_metric(col.type): threshold}
        # Through the schema's own validation, so a bad value reads like a bad schema file.
        doc = schema_to_dict(TableSchema({name: col}))["columns"][name]
        doc.pop(f"{kind}_comparator", None)
        if thresholds:
            doc[f"{kind}_comparator"] = {names[m]: {"threshold": t} for m, t in thresholds.items()}
        columns[name] = _column_from_dict(name, doc, source)
    return TableSchema(columns, schema.version, schema.default_environment)


def with_drift(schema: TableSchema, threshold: float | None = None,
               per_column: Mapping[str, Any] | None = None, *, source: str = "SchemaGen") -> TableSchema:
    """``schema`` with drift thresholds set: :func:`with_comparators` for ``"drift"``.

    Example:
        >>> s = TableSchema({"fare": ColumnSchema("float"), "kind": ColumnSchema("string")})
        >>> {n: c.drift for n, c in with_drift(s, 0.1, {"fare": 0.05}).columns.items()}
        {'fare': {'js': 0.05}, 'kind': {'linf': 0.1}}
    """
    return with_comparators(schema, "drift", threshold, per_column, source=source)


def with_environments(schema: TableSchema, not_in_serving: Sequence[str], *, source: str = "SchemaGen") -> TableSchema:
    """``schema`` with TFDV's ``TRAINING``/``SERVING`` environments: the columns named are
    required in training data (as inferred) and expected absent from serving data.

    The schema's ``default_environment`` becomes ``["TRAINING", "SERVING"]`` and each
    named column gets ``not_in_environment: ["SERVING"]`` (the label, and any column the
    model does not take as input).

    Raises:
        DataValidationError: a name the schema does not have, or not a list of names.

    Example:
        >>> s = with_environments(TableSchema({"label": ColumnSchema("string"), "x": ColumnSchema("float")}), ["label"])
        >>> s.default_environment, s.in_environment("label", SERVING), s.in_environment("x", SERVING)
        (('TRAINING', 'SERVING'), False, True)
    """
    if isinstance(not_in_serving, str) or not isinstance(not_in_serving, Sequence) or \
            not all(isinstance(n, str) for n in not_in_serving):
        raise DataValidationError(f"{source}: not_in_serving must be a list of column names like [\"species\"], "
                                  f"got {not_in_serving!r}")
    unknown = [n for n in not_in_serving if n not in schema.columns]
    if unknown:
        raise DataValidationError(f"{source}: not_in_serving names column {unknown[0]!r}, which the schema "
                                  f"does not have; its columns: {', '.join(schema.columns)}")
    default = tuple(dict.fromkeys([*(schema.default_environment or ()), TRAINING, SERVING]))
    columns = {}
    for name, col in schema.columns.items():
        if name in not_in_serving:
            col = replace(col, in_environment=tuple(e for e in col.in_environment if e != SERVING),
                          not_in_environment=tuple(dict.fromkeys([*col.not_in_environment, SERVING])))
        columns[name] = col
    return TableSchema(columns, schema.version, default)
