"""Typed viewers: what the artifact page draws for each artifact type (formats in docs/artifacts.md)."""

from __future__ import annotations

import json
import shlex
from pathlib import PurePosixPath
from typing import Any

from jfx.metadata._records import ArtifactRecord
from jfx.metadata._store import MetadataStore
from jfx.metadata.ui import _files, _queries
from jfx.metadata.ui._artifact import get_artifact, producer_of
from jfx.metadata.ui._common import ApiError, Query, artifact_summary, read_json_file, tail
from jfx.pipelines._layouts import ANOMALIES_FILE, SCHEMA_FILE, SPLIT_PREFIX, STATISTICS_FILE, VALUE_FILE

__all__ = ["VIEWERS", "viewer_kind", "view_json", "mlflow_link", "history"]

# Artifact type → viewer. Anything else with a value.json gets the "value" viewer.
VIEWERS = {
    "ExampleStatistics": "statistics",
    "Schema": "schema",
    "ExampleAnomalies": "anomalies",
    "ModelEvaluation": "evaluation",
    "ModelBlessing": "blessing",
    "InfraBlessing": "infra_blessing",
    "Model": "model",
    "ModelRun": "model_run",
    "PushedModel": "pushed_model",
    "Examples": "examples",
    "TransformGraph": "transform_graph",
}


_PREVIEW_SUFFIXES = (".json", ".md", ".txt", ".csv", ".tsv", ".log", ".yaml", ".yml")
_PREVIEW_BYTES = 64 * 1024
_PREVIEW_FILES = 3


def _preview_files(root: str) -> list[_files.Entry]:
    listed, truncated = _files.listing(root, 200)
    if truncated:  # a folder of many files: not a small custom artifact
        return []
    found = [f for f in listed if f.rel and PurePosixPath(f.rel).suffix.lower() in _PREVIEW_SUFFIXES]
    return found[:_PREVIEW_FILES]


def viewer_kind(a: ArtifactRecord) -> str | None:
    kind = VIEWERS.get(a.type_name)
    if kind is None and _files.is_file(_files.child(a.uri, VALUE_FILE)):
        return "value"
    if kind is None and _preview_files(a.uri):
        return "files"
    return kind


def mlflow_link(props: dict[str, Any], mlflow_url: str | None) -> dict[str, Any] | None:
    """The MLflow run behind a Model or ModelRun: ids, tracking URI, and a link when a UI URL is known."""
    run_id = props.get("mlflow_run_id")
    if not run_id:
        return None
    experiment = props.get("mlflow_experiment_id")
    tracking = props.get("mlflow_tracking_uri")
    link = None
    if mlflow_url:
        link = f"{mlflow_url.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
    # what runs where jfx is installed: mlflow-skinny has the CLI and the tracking API,
    # not the web UI's pages (that is the full `mlflow` package's `mlflow ui`)
    command = (f"MLFLOW_TRACKING_URI={shlex.quote(tracking)} mlflow runs describe --run-id {shlex.quote(run_id)}"
               if tracking else None)
    return {"run_id": run_id, "experiment_id": experiment, "tracking_uri": tracking, "url": link,
            "command": command}


def _siblings(store: MetadataStore, a: ArtifactRecord, type_name: str) -> list[ArtifactRecord]:
    """Artifacts of ``type_name`` written by the execution that made ``a``."""
    producer, _ = producer_of(store, a.stored_id)
    if producer is None:
        return []
    outputs = _queries.run_outputs(store, [producer.stored_id])[producer.stored_id]
    return [r for _, r in outputs if r.type_name == type_name]


def _statistics(a: ArtifactRecord) -> dict[str, Any]:
    root = a.uri
    order = list(a.properties.get("splits") or [])
    listed, _ = _files.listing(root)
    found = {}
    for f in listed:
        parts = PurePosixPath(f.rel).parts
        if len(parts) == 2 and parts[0].startswith(SPLIT_PREFIX) and parts[1] == STATISTICS_FILE:
            found[parts[0].removeprefix(SPLIT_PREFIX)] = f.location
    if not found:
        raise ApiError(404, f"ExampleStatistics artifact {a.id}: no {SPLIT_PREFIX}*/{STATISTICS_FILE} under {root}")
    names = [s for s in order if s in found] + sorted(s for s in found if s not in order)
    return {"splits": {s: read_json_file(found[s], f"ExampleStatistics artifact {a.id}") for s in names}}


def history(run: ArtifactRecord) -> dict[str, Any] | None:
    path = _files.child(run.uri, "history.json")
    if not _files.is_file(path):
        return None
    doc = read_json_file(path, f"ModelRun artifact {run.id}")
    return {"artifact": artifact_summary(run), "history": doc.get("history") or {}, "epochs": doc.get("epochs"),
            "best_epoch": doc.get("best_epoch"), "stopped_early": doc.get("stopped_early"),
            "weights_epoch": doc.get("weights_epoch"), "final_metrics": doc.get("final_metrics")}


def _model(store: MetadataStore, a: ArtifactRecord, mlflow_url: str | None) -> dict[str, Any]:
    listed, _ = _files.listing(a.uri)
    sizes = {f.rel: f.size for f in listed if f.rel}
    signature = read_json_file(_files.child(a.uri, "signature.json"), f"Model artifact {a.id}") \
        if "signature.json" in sizes else None
    runs = _siblings(store, a, "ModelRun")
    return {
        "signature": None if signature is None else {k: signature.get(k) for k in ("format", "version", "inputs",
                                                                                  "outputs", "metadata")},
        "files": sizes, "size_bytes": sum(sizes.values()),
        "mlflow": mlflow_link(a.properties, mlflow_url),
        "training": history(runs[0]) if runs else None,
    }


def _evaluation(store: MetadataStore, a: ArtifactRecord) -> dict[str, Any]:
    metrics = read_json_file(_files.child(a.uri, "metrics.json"), f"ModelEvaluation artifact {a.id}")
    blessing = None
    for b in _siblings(store, a, "ModelBlessing"):
        path = _files.child(b.uri, "blessing.json")
        if _files.is_file(path):
            blessing = {"artifact": artifact_summary(b), **read_json_file(path, f"ModelBlessing artifact {b.id}")}
    confusion = None
    plots = None
    path = _files.child(a.uri, "plots.json")
    if _files.is_file(path):
        doc = read_json_file(path, f"ModelEvaluation artifact {a.id}")
        confusion = [{"slice_name": s.get("slice_name"),
                      "candidate": ((s.get("candidate") or {}).get("confusion_matrix")),
                      "baseline": ((s.get("baseline") or {}).get("confusion_matrix"))}
                     for s in doc.get("slices") or []]
        # per slice: ROC and PR curves, calibration and the confusion matrix, drawn by the viewer
        plots = [{"slice": s.get("slice"), "slice_name": s.get("slice_name"), "candidate": s.get("candidate"),
                  "baseline": s.get("baseline")} for s in doc.get("slices") or []]
    return {"metrics": metrics, "blessing": blessing, "confusion": confusion, "plots": plots}


def _preview(file: _files.Entry) -> dict[str, Any]:
    """The start of a text file of a custom artifact (JSON parsed when it is whole and valid)."""
    size = file.size
    text = _files.read_head(file.location, _PREVIEW_BYTES).decode("utf-8", errors="replace")
    entry: dict[str, Any] = {"path": file.rel, "size": size, "truncated": size > _PREVIEW_BYTES,
                             "format": PurePosixPath(file.rel).suffix.lower().lstrip("."), "text": text}
    if entry["format"] == "json" and not entry["truncated"]:
        try:
            entry["json"] = json.loads(text)
        except json.JSONDecodeError:
            pass
    return entry


def view_json(store: MetadataStore, artifact_id: str, query: Query, *, mlflow_url: str | None = None) -> dict[str, Any]:
    """``GET /api/artifacts/<id>/view``: the data of the artifact's typed viewer.

    ``{"kind": ..., "artifact": {...}, "data": {...}}``; ``kind`` is one of
    :data:`VIEWERS`' values, ``value`` or ``none``.
    """
    a = get_artifact(store, artifact_id)
    if a.state.deleted:  # its files are gone: nothing to view
        return {"kind": "none", "artifact": artifact_summary(a), "data": None}
    kind = viewer_kind(a) or "none"
    where = f"{a.type_name} artifact {a.id}"
    root = a.uri

    def at(name: str) -> str:
        return _files.child(root, name)

    data: Any
    if kind == "statistics":
        data = _statistics(a)
    elif kind == "schema":
        data = read_json_file(at(SCHEMA_FILE), where)
    elif kind == "anomalies":
        data = read_json_file(at(ANOMALIES_FILE), where)
    elif kind == "evaluation":
        data = _evaluation(store, a)
    elif kind == "blessing":
        data = read_json_file(at("blessing.json"), where)
    elif kind == "infra_blessing":
        data = read_json_file(at("infra_blessing.json"), where)
    elif kind == "pushed_model":
        data = read_json_file(at("pushed.json"), where)
    elif kind == "model":
        data = _model(store, a, mlflow_url)
    elif kind == "model_run":
        log = at("trainer.log")
        data = {"training": history(a), "mlflow": mlflow_link(a.properties, mlflow_url),
                "log": tail(log) if _files.is_file(log) else None}
    elif kind == "transform_graph":
        data = read_json_file(at("transform.json"), where) if _files.is_file(at("transform.json")) else None
    elif kind == "value":
        data = read_json_file(at(VALUE_FILE), where)
    elif kind == "files":
        data = {"files": [_preview(f) for f in _preview_files(root)]}
    else:
        data = None
    if kind == "examples":
        data = {"splits": a.properties.get("splits"), "row_counts": a.properties.get("row_counts"),
                "columns": a.properties.get("columns")}
    return {"kind": kind, "artifact": {**artifact_summary(a), "properties": a.properties},
            "data": data}
