"""BulkInferrer: batch predictions of a model over splits of an Examples artifact.

Every input piece (one Parquet row group, :func:`jfx.components._engine.plan_pieces`)
becomes one output shard ``<uri>/Split-<name>/part-<nnnnn>.parquet`` holding the
piece's key columns and the model's outputs, rows in input order. In-process the
pieces run one after another (the model call itself uses every core); on Beam each
piece is one element (``Create | Reshuffle | Map(infer and write)``). Both engines read
a piece in the same batches and run the same function, so they write identical
Parquet content. On a distributed runner the output folder must be on a file
system the workers share.

A ``model_blessing`` that is not blessed makes BulkInferrer do nothing: it writes
``skipped.json`` (``{"skipped": true, "reason": ...}``), records ``skipped: true`` and
the reason in its properties and returns normally, so the run goes on (a gate that
stops the run is ``Evaluator`` thresholds plus a component that raises
``HaltPipeline``).

Example:
    >>> inferrer = BulkInferrer(examples=gen.outputs["examples"], model=trainer.outputs["model"],  # doctest: +SKIP
    ...                         model_blessing=evaluator.outputs["blessing"],
    ...                         data_spec={"splits": ["eval"], "key_columns": ["id"]})
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from jfx.components._beam import beam_options, resolve_beam_args
from jfx.components._engine import (
    ENGINE_BEAM,
    ENGINE_IN_PROCESS,
    Piece,
    plan_pieces,
    read_piece,
)
from jfx.components._evaluator import load_model, model_features
from jfx import _storage as storage
from jfx.components._examples import SPLIT_PREFIX, local_dir, split_files, split_names
from jfx.errors import DataValidationError, InvalidArgumentError, unknown_keys_message
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._artifacts import Examples, InferenceResult, Model, ModelBlessing

__all__ = ["SKIPPED_FILE", "BulkInferrer", "InferenceTask", "infer_piece"]

SKIPPED_FILE = "skipped.json"
DEFAULT_BATCH_SIZE = 16_384
_DATA_SPEC_KEYS = ("splits", "key_columns", "output_columns", "batch_size")
_TYPES = {"float32": pa.float32(), "float64": pa.float64(), "float16": pa.float32(), "bfloat16": pa.float32(),
          "int32": pa.int32(), "int64": pa.int64(), "int8": pa.int8(), "uint8": pa.uint8(), "bool": pa.bool_()}


@dataclass(frozen=True)
class InferenceTask:
    """One piece to predict and the shard it becomes (picklable: URIs and names only).

    ``model_uri`` is where the model is recorded (a folder or an object-store URI, read
    through a local copy keyed by ``model_fingerprint``); ``out_rel`` is the shard's path
    inside the output folder, which the in-process engine writes directly and a Beam
    worker writes into a folder of its own, sent back to the driver.
    """

    piece: Piece
    model_uri: str
    out_rel: str
    key_columns: tuple[str, ...]
    output_columns: tuple[str, ...]
    batch_size: int = DEFAULT_BATCH_SIZE
    model_fingerprint: str = ""


def _arrow_type(spec: dict[str, Any]) -> pa.DataType:
    t = _TYPES.get(spec["dtype"], pa.float64())
    return pa.list_(t) if spec["shape"] else t


def _output_array(values: np.ndarray, spec: dict[str, Any]) -> pa.Array:
    t = _arrow_type(spec)
    if spec["dtype"] in ("float16", "bfloat16"):
        values = values.astype(np.float32)
    if not spec["shape"]:
        return pa.array(values.reshape(-1), type=t)
    flat = values.reshape(len(values), -1)
    offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1), type=t.value_type))


def infer_piece(task: InferenceTask, out_root: str | Path) -> int:
    """Predict one piece and write its shard under the local folder ``out_root``; returns its rows."""
    model = load_model(str(storage.localize(task.model_uri, task.model_fingerprint)))
    columns = list(dict.fromkeys([*task.key_columns, *model.inputs]))
    parts = []
    for batch in read_piece(task.piece, columns=columns, batch_size=task.batch_size):
        outputs = model(model_features(model, batch, f"the examples ({task.piece.source.path})"))
        arrays = [batch.column(batch.schema.names.index(c)) for c in task.key_columns]
        arrays += [_output_array(np.asarray(outputs[c]), model.outputs[c]) for c in task.output_columns]
        parts.append(pa.record_batch(arrays, names=[*task.key_columns, *task.output_columns]))
    source = storage.open_parquet(task.piece.source.path).schema_arrow if task.key_columns else None
    schema = pa.schema([*(source.field(c) for c in task.key_columns),  # type: ignore[union-attr]
                        *(pa.field(c, _arrow_type(model.outputs[c])) for c in task.output_columns)])
    table = pa.Table.from_batches([b.cast(schema) if b.schema != schema else b for b in parts], schema=schema)
    out = Path(out_root, task.out_rel)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return table.num_rows


def _beam_infer(task: InferenceTask, results: str) -> None:
    """On a Beam worker: predict one piece; its shard and row count reach the driver through ``results``."""
    from jfx.components._beam import worker_output, write_report

    with worker_output(results) as local:
        rows = infer_piece(task, local)
    write_report(results, task.out_rel.replace("/", "-"), {"shard": task.out_rel, "rows": rows})


def _run_on_beam(tasks: list[InferenceTask], args: list[str], out_root: str) -> None:
    """Every task on Beam; the workers' shards are copied into the local folder ``out_root``."""
    from jfx.components._beam import quiet_beam_import, read_reports, receive_files, results_folder, worker_errors

    quiet_beam_import()
    import apache_beam as beam

    options = beam_options(args)
    with worker_errors(), results_folder(options, "jfx-inference-") as results:
        with beam.Pipeline(options=options) as p:
            _ = (p | "Pieces" >> beam.Create(tasks) | "Spread" >> beam.Reshuffle()
                 | "Infer" >> beam.Map(_beam_infer, results))
        done = {r["shard"] for r in read_reports(results)}
        missing = [t.out_rel for t in tasks if t.out_rel not in done]
        if missing:
            raise DataValidationError(f"the Beam pipeline wrote {len(done)} of {len(tasks)} inference shards "
                                      f"(missing {missing[0]}) into {results}")
        receive_files(results, out_root)


def _parse_data_spec(spec: dict | None) -> dict[str, Any]:
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(_DATA_SPEC_KEYS))
    if unknown:
        raise InvalidArgumentError(unknown_keys_message("data_spec", unknown, _DATA_SPEC_KEYS))
    for key in ("splits", "key_columns", "output_columns"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise InvalidArgumentError(f"data_spec[{key!r}] must be a list of names, got {value!r}")
    batch_size = spec.get("batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"data_spec['batch_size'] must be a positive integer, got {batch_size!r}")
    spec["batch_size"] = batch_size
    return spec


@component(streaming=True, checks={"data_spec": _parse_data_spec})
def BulkInferrer(  # noqa: N802 - components are named like the TFX components they mirror
    examples: Input[Examples],
    model: Input[Model],
    inference_result: Output[InferenceResult],
    model_blessing: Input[ModelBlessing] | None = None,
    data_spec: Parameter[dict] | None = None,
    beam_pipeline_args: Parameter[list] | None = None,
):
    """Predict every row of the chosen splits with ``model``; write Parquet shards.

    Args:
        examples: raw examples holding the model's input columns.
        model: a model artifact (``jfx.core.export`` layout).
        inference_result: receives ``Split-<name>/part-<nnnnn>.parquet`` (one shard per
            input row group): the key columns, then one column per model output
            (vector outputs as list columns). Properties: ``splits``, ``row_counts``,
            ``columns`` (name → Arrow type), ``key_columns``, ``output_columns``,
            ``model_id``, ``engine``, ``skipped`` (false).
        model_blessing: optional; when not blessed nothing is predicted: ``skipped.json``
            is written and properties ``skipped: true`` and ``reason`` are recorded.
        data_spec: ``{"splits": [...] (default: every split), "key_columns": [...] (input
            columns copied to the output, default none), "output_columns": [...] (model
            outputs to keep, default all), "batch_size": 16384}``.
        beam_pipeline_args: run on Beam with these options (default: the pipeline's,
            else in-process).

    Raises:
        InvalidArgumentError: a bad ``data_spec`` (unknown split, output, key column
            clashing with an output).
        DataValidationError: a key column or a model input column is missing from the
            examples (named).
    """
    spec = _parse_data_spec(data_spec)
    if model_blessing is not None and model_blessing.properties.get("blessed") is not True:
        reason = (f"model blessing {model_blessing.id} ({model_blessing.uri}) is not blessed; "
                  f"reasons: {model_blessing.properties.get('reasons')}")
        Path(inference_result.uri, SKIPPED_FILE).write_text(json.dumps({"skipped": True, "reason": reason}, indent=1))
        inference_result.properties.update({"skipped": True, "reason": reason, "splits": [], "row_counts": {}})
        return
    names = split_names(examples)
    splits = spec.get("splits") or names
    unknown = [s for s in splits if s not in names]
    if unknown:
        raise InvalidArgumentError(f"data_spec['splits'] names {unknown}, but the examples have splits {names}")
    # the examples stream; the model is read from a local copy, made where it is used (on
    # Beam, by each worker from the recorded URI)
    loaded = load_model(str(local_dir(model)))
    outputs = spec.get("output_columns") or list(loaded.outputs)
    bad = [c for c in outputs if c not in loaded.outputs]
    if bad:
        raise InvalidArgumentError(f"data_spec['output_columns'] names {bad}; the model's outputs are "
                                   f"{sorted(loaded.outputs)}")
    keys = spec.get("key_columns") or []
    clash = [c for c in keys if c in outputs]
    if clash:
        raise InvalidArgumentError(f"key column(s) {clash} have the name of a model output; rename the column or "
                                   "leave that output out with data_spec['output_columns']")
    tasks: dict[str, list[InferenceTask]] = {}
    for split in splits:
        files = [str(p) for p in split_files(examples, split)]
        for path in files:
            columns = storage.open_parquet(path).schema_arrow.names
            for what, cols in (("key column", keys), ("model input column", list(loaded.inputs))):
                missing = [c for c in cols if c not in columns]
                if missing:
                    raise DataValidationError(f"the {what} {missing[0]!r} is not in split {split!r} "
                                              f"({path}; columns: {columns})")
        tasks[split] = [InferenceTask(piece, model.stored_uri, f"{SPLIT_PREFIX}{split}/part-{i:05d}.parquet",
                                      tuple(keys), tuple(outputs), spec["batch_size"], model.fingerprint)
                        for i, piece in enumerate(plan_pieces(files))]
    everything = [t for group in tasks.values() for t in group]
    args = resolve_beam_args(beam_pipeline_args)
    if args is None:
        for task in everything:
            infer_piece(task, inference_result.uri)
    else:
        _run_on_beam(everything, args, inference_result.uri)
    out = Path(inference_result.uri)
    row_counts = {split: sum(pq.ParquetFile(out / t.out_rel).metadata.num_rows for t in group)
                  for split, group in tasks.items()}
    schema = pq.read_schema(out / everything[0].out_rel) if everything else None
    inference_result.properties.update({
        "skipped": False, "splits": list(splits), "row_counts": row_counts,
        "columns": {f.name: str(f.type) for f in schema} if schema is not None else {},
        "key_columns": list(keys), "output_columns": list(outputs), "model_id": model.id,
        "engine": ENGINE_IN_PROCESS if args is None else ENGINE_BEAM,
    })
