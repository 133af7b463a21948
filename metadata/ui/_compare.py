"""The compare page: two or more runs side by side — parameters, metrics, artifact fingerprints."""

from __future__ import annotations

import math
from typing import Any

from jfx.metadata._runs import RunRecord
from jfx.metadata._store import MetadataStore
from jfx.metadata.ui import _queries
from jfx.metadata.ui._common import ApiError, Query, iso, node_state

__all__ = ["compare_json", "numbers", "MAX_RUNS"]

MAX_RUNS = 10


def numbers(props: dict[str, Any]) -> dict[str, float]:
    """The numeric properties of an artifact (one level of nesting, as ``outer.inner``)."""
    found: dict[str, float] = {}
    for key, value in props.items():
        if isinstance(value, bool) or key.endswith("_id") or key == "version":
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            found[key] = value
        elif isinstance(value, dict):
            for inner, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    found[f"{key}.{inner}"] = v
    return found


def _same(values: list[Any]) -> bool:
    return all(v == values[0] for v in values[1:])


def compare_json(store: MetadataStore, query: Query) -> dict[str, Any]:
    """``GET /api/compare?runs=A,B[,C...]``: what differs between runs.

    - ``parameters``: the runs' runtime parameters; ``node_parameters``: each node's
      resolved parameters (rows that differ only, with ``same_node_parameters`` counting the rest);
    - ``metrics``: every numeric property of every output artifact, per node and output,
      with the change from the first run;
    - ``artifacts``: per node and output, each run's artifact id and fingerprint, with
      ``changed`` when the fingerprints differ;
    - ``nodes``: each node's state in each run.
    """
    run_ids = query.list("runs")
    if len(run_ids) < 2:
        raise ApiError(400, "query parameter runs: give two or more run ids, e.g. ?runs=RUN_A,RUN_B")
    if len(run_ids) > MAX_RUNS:
        raise ApiError(400, f"query parameter runs: at most {MAX_RUNS} runs can be compared, got {len(run_ids)}")
    runs, latest_by_run = [], []
    for run_id in run_ids:
        ctx = _queries.run_context(store, run_id)
        if ctx is None:
            raise ApiError(404, f"no run {run_id!r} in the metadata store")
        record = RunRecord.from_properties(run_id, ctx["properties"] or {})
        runs.append({"id": run_id, "pipeline": ctx["pipeline"], "state": record.state.value,
                     "start_time": iso(record.start_time), "duration_s": record.duration_s,
                     "parameters": record.parameters, "order": record.node_order})
        latest_by_run.append(store.latest_executions(ctx["id"]))
    outputs = _queries.run_outputs(store, [e.stored_id for latest in latest_by_run for e in latest.values()])

    order: list[str] = []
    for run, latest in zip(runs, latest_by_run, strict=True):
        for node in run.pop("order") + list(latest):
            if node not in order:
                order.append(node)

    keys: list[str] = []
    for run in runs:
        keys += [k for k in run["parameters"] if k not in keys]
    parameters = []
    for key in keys:
        values = [run["parameters"].get(key) for run in runs]
        parameters.append({"name": key, "values": values, "differs": not _same(values)})

    nodes, node_parameters, metrics, artifacts = [], [], [], []
    same_node_parameters = 0
    for node in order:
        execs = [latest.get(node) for latest in latest_by_run]
        nodes.append({"node": node, "states": [node_state(e) if e else None for e in execs],
                      "execution_ids": [e.id if e else None for e in execs]})
        names: list[str] = []
        for ex in execs:
            if ex is not None:
                names += [k for k in ex.parameters if k not in names]
        for name in names:
            values = [e.parameters.get(name) if e else None for e in execs]
            if _same(values):
                same_node_parameters += 1
            else:
                node_parameters.append({"node": node, "name": name, "values": values, "differs": True})
        per_run = [{key: art for key, art in outputs.get(e.stored_id, [])} if e else {} for e in execs]
        out_keys: list[str] = []
        for found in per_run:
            out_keys += [k for k in found if k not in out_keys]
        for key in out_keys:
            arts = [found.get(key) for found in per_run]
            prints = [a.fingerprint if a else None for a in arts]
            artifacts.append({"node": node, "output": key, "type": next(a.type_name for a in arts if a),
                              "ids": [a.id if a else None for a in arts], "fingerprints": prints,
                              "changed": not _same(prints)})
            per_run_numbers = [numbers(a.properties) if a else {} for a in arts]
            metric_names: list[str] = []
            for nums in per_run_numbers:
                metric_names += [m for m in nums if m not in metric_names]
            for name in metric_names:
                values = [found.get(name) for found in per_run_numbers]
                first = values[0]
                deltas = [None if v is None or first is None else v - first for v in values]
                metrics.append({"node": node, "output": key, "name": name, "values": values, "deltas": deltas,
                                "differs": not _same(values)})
    return {"runs": runs, "parameters": parameters, "node_parameters": node_parameters,
            "same_node_parameters": same_node_parameters, "metrics": metrics, "artifacts": artifacts,
            "nodes": nodes, "training": _training(latest_by_run, outputs)}


def _training(latest_by_run: list[dict[str, Any]], outputs: dict[int, list[tuple[str, Any]]]) -> list[dict[str, Any]]:
    """Per trainer node, each run's training history (``history.json`` of its ModelRun), for overlaid curves."""
    from jfx.metadata.ui._viewers import history

    found: dict[str, list[Any]] = {}
    for i, latest in enumerate(latest_by_run):
        for node, e in latest.items():
            for _key, artifact in outputs.get(e.stored_id, []):
                if artifact.type_name == "ModelRun":
                    doc = history(artifact)
                    if doc is not None:
                        found.setdefault(node, [None] * len(latest_by_run))[i] = doc
    return [{"node": node, "runs": docs} for node, docs in found.items()]
