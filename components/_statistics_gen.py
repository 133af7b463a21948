"""StatisticsGen: per-split, per-column statistics of an Examples artifact.

Writes ``<uri>/Split-<name>/statistics.json`` per split in the ``ExampleStatistics``
format (docs/artifacts.md), computed by :class:`~jfx.components._statistics.StatisticsKernel`
on the in-process engine, or on Beam when ``beam_pipeline_args`` are given (here or on
the pipeline).

Example:
    >>> gen = ExampleGen(input_base="data/")                        # doctest: +SKIP
    >>> stats = StatisticsGen(examples=gen.outputs["examples"])     # doctest: +SKIP
    >>> load_statistics(artifact)["train"]["columns"]["fare"]       # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from jfx.components._beam import resolve_beam_args
from jfx.components._engine import ENGINE_BEAM, ENGINE_IN_PROCESS, run_kernel
from jfx.components._examples import localized, split_files, split_names
from jfx.components._statistics import COLUMN_TYPES, StatisticsKernel, write_statistics
from jfx.errors import DataValidationError
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._layouts import SCHEMA_FILE
from jfx.pipelines._artifacts import Examples, ExampleStatistics, Schema

__all__ = ["StatisticsGen", "schema_column_types"]



def schema_column_types(schema: Schema) -> dict[str, str]:
    """Column → declared type from a Schema artifact's ``schema.json``.

    Raises:
        DataValidationError: the file is missing, not JSON, or declares an unknown type.
    """
    path = Path(schema.uri) / SCHEMA_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataValidationError(f"{path}: the Schema artifact has no {SCHEMA_FILE}") from None
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}: not valid JSON ({err})") from err
    types = {}
    for name, spec in (doc.get("columns") or {}).items():
        kind = (spec or {}).get("type")
        if kind not in COLUMN_TYPES:
            raise DataValidationError(
                f"{path}: column {name!r} has type {kind!r}; expected one of {', '.join(COLUMN_TYPES)}"
            )
        types[name] = kind
    return types


@component(streaming=True)
def StatisticsGen(  # noqa: N802 - components are named like the TFX components they mirror
    examples: Input[Examples],
    statistics: Output[ExampleStatistics],
    schema: Optional[Input[Schema]] = None,  # noqa: UP045 - the DSL reads Optional[...]
    exclude_splits: Parameter[list] | None = None,
    beam_pipeline_args: Parameter[list] | None = None,
):
    """Compute statistics of every split of ``examples`` (except ``exclude_splits``).

    The examples are read where they are recorded, streamed from an object store.

    Args:
        examples: Parquet shards per split.
        statistics: receives ``Split-<name>/statistics.json`` per split; properties
            ``splits``, ``num_rows`` (split → rows) and ``engine`` (``in-process`` or ``beam``).
        schema: optional; its declared column types override the Parquet types (an int
            column declared ``string`` gets string statistics).
        exclude_splits: split names to skip.
        beam_pipeline_args: run on Beam with these options (default: the pipeline's, else
            the in-process engine).

    Raises:
        DataValidationError: a split has no files, a file is corrupt (the message names
            it), or ``exclude_splits`` names a split that does not exist.
    """
    names = split_names(examples)
    excluded = [str(s) for s in (exclude_splits or [])]
    unknown = sorted(set(excluded) - set(names))
    if unknown:
        raise DataValidationError(
            f"exclude_splits names {unknown}, but the examples have splits {names}"
        )
    splits = [s for s in names if s not in excluded]
    if not splits:
        raise DataValidationError(f"every split of the examples ({names}) is excluded; nothing to compute")
    files = {split: [str(p) for p in split_files(examples, split)] for split in splits}
    kernel = StatisticsKernel(schema_column_types(localized(schema)) if schema is not None else None)
    args = resolve_beam_args(beam_pipeline_args)
    results = run_kernel(kernel, files, beam_pipeline_args=args)
    for split in splits:
        write_statistics(statistics, split, results[split])
    statistics.properties["splits"] = splits
    statistics.properties["num_rows"] = {split: results[split]["num_rows"] for split in splits}
    statistics.properties["engine"] = ENGINE_IN_PROCESS if args is None else ENGINE_BEAM
