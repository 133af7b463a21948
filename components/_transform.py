"""Transform: fit a user's ``preprocessing_fn`` on the train split, apply it to every split.

The user writes ``preprocessing_fn(inputs) -> outputs`` in JAX with the analyzers of
:mod:`jfx.components.transform` (``scale_to_z_score``, ``compute_and_apply_vocabulary``,
...). Transform

1. analyzes ``analyze_splits`` (default ``["train"]``) with mergeable kernels on the one
   engine (in-process, or Beam with ``beam_pipeline_args``), see
   :mod:`jfx.components._analyzers`;
2. saves the fitted transform as a ``TransformGraph`` (StableHLO + constants + signature,
   :mod:`jfx.components._transform_graph`), which the Trainer exports together with the
   model so serving applies the very same function;
3. applies it, batch by batch, to every split and writes ``transformed_examples``
   (Parquet shards per split, the Examples layout of docs/artifacts.md). Float outputs
   are written as float64, ints as int64, vectors as fixed-size lists; a NaN output is
   written as a missing value.

The source file of ``preprocessing_fn`` is part of the cache key: editing it reruns
Transform.

Example:
    >>> transform = Transform(examples=gen.outputs["examples"],                # doctest: +SKIP
    ...                       schema=schema_gen.outputs["schema"],
    ...                       module_file="preprocessing.py")
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from jfx.components._beam import resolve_beam_args
from jfx.components._engine import (
    ENGINE_BEAM,
    ENGINE_IN_PROCESS,
    plan_pieces,
    read_piece,
)
from jfx import _storage as storage
from jfx.components._examples import SPLIT_PREFIX, localized, split_files, split_names
from jfx.components._statistics import arrow_column_type
from jfx.components._statistics_gen import schema_column_types
from jfx.components._user_code import FunctionRef
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._artifacts import Examples, Schema, TransformGraph

__all__ = ["Transform", "column_types", "preprocessing_ref", "write_transformed"]

def preprocessing_ref(module_file: str | None = None, preprocessing_fn: str | None = None) -> FunctionRef:
    """Where ``preprocessing_fn`` lives, from Transform's parameters.

    ``preprocessing_fn`` is ``"package.module:function"`` or ``"path/file.py:function"``;
    with ``module_file`` it is the function's name in that file (default
    ``preprocessing_fn``).

    Raises:
        InvalidArgumentError: neither is given, or the reference is malformed.
    """
    return FunctionRef.parse(module_file, preprocessing_fn, default="preprocessing_fn", param="preprocessing_fn")


def _module_fingerprint(params: dict[str, Any]) -> str:
    """A hash of the preprocessing module's bytes: an edited module misses the cache."""
    try:
        ref = preprocessing_ref(params.get("module_file"), params.get("preprocessing_fn"))
    except InvalidArgumentError:
        return "invalid"
    path = ref.source_path()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else "unknown"
    except OSError:
        return f"missing:{path}"


def column_types(examples: Examples, schema: Schema | None = None) -> dict[str, str]:
    """Column → jfx type: the Parquet types, overridden by the schema's declared types."""
    files = split_files(examples, split_names(examples)[0])
    arrow = storage.open_parquet(files[0]).schema_arrow
    types = {f.name: arrow_column_type(f.type) or "unsupported" for f in arrow}
    if schema is not None:
        for name, kind in schema_column_types(schema).items():
            if name in types:
                types[name] = kind
    return types


_PARQUET_TYPES = {"f": (pa.float64(), "float", np.float64), "i": (pa.int64(), "int", np.int64),
                  "u": (pa.int64(), "int", np.int64), "b": (pa.bool_(), "bool", np.bool_)}


def _to_arrow(values: np.ndarray) -> tuple[pa.Array, str]:
    kind = np.dtype(values.dtype).kind if values.dtype != np.dtype("bfloat16") else "f"
    if str(values.dtype) == "bfloat16":
        values = values.astype(np.float32)
    arrow_type, jfx_type, np_type = _PARQUET_TYPES[kind]
    flat: np.ndarray = values.reshape(-1).astype(np_type)
    mask = np.isnan(flat) if kind == "f" else None
    arr = pa.array(flat, type=arrow_type, mask=mask)
    if values.ndim == 2:
        arr = pa.FixedSizeListArray.from_arrays(arr, values.shape[1])
    return arr, jfx_type


def write_transformed(transform: Any, examples: Examples, output: Examples, splits: list[str]) -> dict[str, int]:
    """Applies a loaded transform to ``splits`` of ``examples``; writes ``output``'s shards.

    One output shard per input shard, one row group per batch. Returns split → rows.
    """
    inputs = list(transform.input_specs)
    rows: dict[str, int] = {}
    columns: dict[str, str] = {}
    for split in splits:
        folder = Path(output.uri) / f"{SPLIT_PREFIX}{split}"
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        for i, source in enumerate(split_files(examples, split)):
            writer = None
            try:
                for piece in plan_pieces([source]):
                    for batch in read_piece(piece, columns=inputs):
                        out = transform.apply({c: batch.column(c) for c in inputs})
                        arrays = {}
                        for name, values in out.items():
                            arrays[name], columns[name] = _to_arrow(values)
                        table = pa.table(arrays)
                        if writer is None:
                            writer = pq.ParquetWriter(folder / f"part-{i:05d}.parquet", table.schema)
                        writer.write_table(table)
                        count += table.num_rows
                if writer is None:  # an empty shard still gets a file with the schema
                    empty = transform.apply({c: [] for c in inputs})
                    table = pa.table({k: _to_arrow(v)[0] for k, v in empty.items()})
                    pq.write_table(table, folder / f"part-{i:05d}.parquet")
            finally:
                if writer is not None:
                    writer.close()
        rows[split] = count
    output.properties["columns"] = columns
    return rows


@component(external_fingerprint=_module_fingerprint, streaming=True)
def Transform(  # noqa: N802 - components are named like the TFX components they mirror
    examples: Input[Examples],
    schema: Input[Schema],
    transformed_examples: Output[Examples],
    transform_graph: Output[TransformGraph],
    module_file: Parameter[str] | None = None,
    preprocessing_fn: Parameter[str] | None = None,
    analyze_splits: Parameter[list] | None = None,
    beam_pipeline_args: Parameter[list] | None = None,
):
    """Fit ``preprocessing_fn`` on ``analyze_splits`` and apply it to every split.

    Args:
        examples: raw Parquet shards per split.
        schema: the schema; its declared column types decide what ``inputs`` holds
            (numbers as float32 with NaN for missing, strings for the string analyzers).
        transformed_examples: receives the transformed Parquet shards per split;
            properties ``splits``, ``row_counts``, ``columns`` (output → jfx type).
        transform_graph: receives the fitted transform (docs/artifacts.md); properties
            ``inputs``, ``outputs``, ``analyzers``, ``analyze_splits``, ``passes``, ``engine``.
        module_file: a Python file defining ``preprocessing_fn`` (or the function named
            by ``preprocessing_fn``).
        preprocessing_fn: ``"package.module:function"`` or ``"path/file.py:function"``.
        analyze_splits: the splits the analyzers see (default ``["train"]``).
        beam_pipeline_args: run the analysis on Beam with these options (default: the
            pipeline's, else the in-process engine).

    Raises:
        ComponentError: ``preprocessing_fn`` cannot be imported or fails (the message
            names the module and, for a missing column, the column).
        DataValidationError: an analyze split does not exist or a file is unreadable.
    """
    ref = preprocessing_ref(module_file, preprocessing_fn)
    schema = localized(schema)
    names = split_names(examples)
    analyze = list(analyze_splits) if analyze_splits else ["train"]
    unknown = [s for s in analyze if s not in names]
    if unknown:
        raise DataValidationError(f"analyze_splits names {unknown}, but the examples have splits {names}")
    args = resolve_beam_args(beam_pipeline_args)
    sources = [str(p) for s in analyze for p in split_files(examples, s)]
    from jfx.components._analyzers import analyze as analyze_data
    from jfx.components._transform_graph import load_transform, save_transform

    fitted = analyze_data(ref, column_types(examples, schema), sources, beam_pipeline_args=args)
    save_transform(fitted, transform_graph.uri, extra={"analyze_splits": analyze})
    loaded = load_transform(transform_graph)
    rows = write_transformed(loaded, examples, transformed_examples, names)
    transformed_examples.properties["splits"] = names
    transformed_examples.properties["row_counts"] = rows
    transform_graph.properties.update({
        "inputs": list(loaded.input_specs),
        "outputs": list(loaded.output_specs),
        "analyzers": [a["name"] for a in loaded.analyzers],
        "analyze_splits": analyze,
        "passes": fitted.passes,
        "engine": ENGINE_IN_PROCESS if args is None else ENGINE_BEAM,
        "preprocessing_fn": ref.describe(),
    })

