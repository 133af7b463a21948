"""``SchemaGen`` infers a schema from statistics; ``ImportSchemaGen`` brings in a user-edited one.

Both write ``<schema.uri>/schema.json`` (docs/artifacts.md). The usual loop: run
SchemaGen once, copy its ``schema.json`` into the project, edit it (tighten domains,
add drift thresholds), and switch the pipeline to ``ImportSchemaGen(schema_file=...)``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from jfx.components._schema import (
    SCHEMA_FILE,
    _read_statistics,
    infer_schema,
    load_schema,
    save_schema,
    with_comparators,
    with_environments,
)
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._artifacts import ExampleStatistics, Schema

__all__ = ["SchemaGen", "ImportSchemaGen"]


def _summarise(schema_artifact: Schema, schema: Any) -> None:
    cols = schema.columns
    schema_artifact.properties.update(
        columns=len(cols),
        required=sorted(n for n, c in cols.items() if c.required),
    )


@component(name="SchemaGen")
def SchemaGen(  # noqa: N802 - components are named like the TFX classes they replace
    statistics: Input[ExampleStatistics],
    schema: Output[Schema],
    infer_feature_shape: Parameter[bool] = True,
    drift_threshold: Parameter[float] | None = None,
    drift_thresholds: Parameter[dict] | None = None,
    skew_threshold: Parameter[float] | None = None,
    skew_thresholds: Parameter[dict] | None = None,
    not_in_serving: Parameter[list] | None = None,
):
    """Infer ``schema.json`` from ExampleStatistics (see :func:`infer_schema`).

    Per column: its type; required and ``min_presence`` 1.0 when never missing in any
    split, else presence left loose (``min_count`` 1: it must not vanish); a string
    domain for low-cardinality strings; the observed range of int and float columns;
    drift and skew thresholds, and TFDV's ``TRAINING``/``SERVING`` environments, when
    asked for.

    Args:
        statistics: StatisticsGen's output.
        schema: receives ``schema.json``; properties ``columns`` (count) and
            ``required`` (names).
        infer_feature_shape: infer ``required`` from presence (default); ``False``
            makes every column optional.
        drift_threshold: check every column for drift against ExampleValidator's
            baseline with this threshold (0 to 1) on its type's metric: L-infinity
            for string and bool columns, Jensen-Shannon for numeric ones.
        drift_thresholds: per column, overriding ``drift_threshold``: a threshold
            (``{"fare": 0.1}``), a metric and threshold (``{"fare": {"js": 0.1}}``), or
            ``None`` for no check.
        skew_threshold, skew_thresholds: the same for the skew comparator, which
            ExampleValidator checks between serving data and ``training_statistics``.
        not_in_serving: columns absent from serving data (the label, and any column
            the model does not take): the schema gets ``default_environment``
            ``["TRAINING", "SERVING"]`` and these columns ``not_in_environment:
            ["SERVING"]``, so ExampleValidator(environment="SERVING") does not ask for
            them. Nothing is guessed: without it the schema names no environments and
            every column is expected everywhere.

    Raises:
        DataValidationError: ``drift_thresholds``, ``skew_thresholds`` or
            ``not_in_serving`` names an unknown column, a metric that does not fit the
            column, or a threshold outside 0..1.

    Example:
        >>> schema = SchemaGen(statistics=stats.outputs["statistics"],  # doctest: +SKIP
        ...                    drift_threshold=0.1, drift_thresholds={"fare": 0.05},
        ...                    skew_threshold=0.2, not_in_serving=["tips"])
    """
    inferred = infer_schema(_read_statistics(statistics), infer_feature_shape=infer_feature_shape)
    for kind, threshold, per_column in (("drift", drift_threshold, drift_thresholds),
                                        ("skew", skew_threshold, skew_thresholds)):
        if threshold is not None or per_column is not None:
            inferred = with_comparators(inferred, kind, threshold, per_column,
                                        source=f"inferred by SchemaGen ({kind}_threshold, {kind}_thresholds)")
    if not_in_serving is not None:
        inferred = with_environments(inferred, not_in_serving, source="SchemaGen (not_in_serving)")
    save_schema(inferred, schema)
    _summarise(schema, inferred)


def _schema_file_fingerprint(params: dict[str, Any]) -> str:
    """The imported file's content hash: an edited schema misses the cache."""
    path = Path(str(params.get("schema_file") or "")).expanduser()
    if path.is_dir():
        path = path / SCHEMA_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


@component(name="ImportSchemaGen", external_fingerprint=_schema_file_fingerprint)
def ImportSchemaGen(  # noqa: N802
    schema: Output[Schema],
    schema_file: Parameter[str],
):
    """Validate a user-edited ``schema.json`` and publish it as a Schema artifact.

    Args:
        schema: receives the validated schema as ``schema.json``.
        schema_file: path of the schema file (the format of docs/artifacts.md).

    Raises:
        DataValidationError: the file is missing or malformed; the message names the
            file, the column and the field (unknown type, bad range, ...).
    """
    source = Path(schema_file).expanduser()
    loaded = load_schema(source)
    shutil.copyfile(source if source.is_file() else source / SCHEMA_FILE, schema.path(SCHEMA_FILE))
    schema.properties["source"] = str(source.resolve())
    _summarise(schema, loaded)
