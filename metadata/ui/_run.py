"""The run page: the DAG with each node's state, a run's executions, and one execution's details."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from jfx.errors import InvalidArgumentError, NotFoundError
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._records import ExecutionRecord, ExecutionState
from jfx.metadata._runs import RunRecord, RunState, get_run, node_attempts
from jfx.metadata._store import MetadataStore
from jfx.metadata.ui import _files, _queries
from jfx.metadata.ui._common import (
    ApiError,
    Query,
    artifact_summary,
    duration_s,
    execution_summary,
    external_inputs,
    iso,
    node_state,
    parse_id,
    tail,
)

__all__ = ["run_json", "run_executions_json", "execution_json", "LOG_SUFFIXES"]

LOG_SUFFIXES = (".log", ".log_tail")
_LOG_BYTES = 64 * 1024
_MAX_LOGS = 10


def _run_or_404(store: MetadataStore, run_id: str) -> dict[str, Any]:
    found = _queries.run_context(store, run_id)
    if found is None:
        raise ApiError(404, f"no run {run_id!r} in the metadata store")
    return found


def run_json(store: MetadataStore, run_id: str, query: Query) -> dict[str, Any]:
    """``GET /api/runs/<run_id>``: the run, its DAG (nodes with states, edges) and node summaries."""
    ctx = _run_or_404(store, run_id)
    run = RunRecord.from_properties(ctx["name"], ctx["properties"] or {})
    ir = run.ir or {}
    latest = store.latest_executions(ctx["id"])
    attempts = _queries.executions_per_node(store, ctx["id"])
    recorded = run.node_states
    ir_nodes = ir.get("nodes") or []
    order = [n.get("id") for n in ir_nodes if n.get("id")]
    order += [n for n in latest if n not in order]
    by_id = {n.get("id"): n for n in ir_nodes}
    nodes, edges = [], []
    for node_id in order:
        spec = by_id.get(node_id) or {}
        e = latest.get(node_id)
        entry: dict[str, Any] = {
            "id": node_id, "component": (spec.get("component") or {}).get("name") or (e.type_name if e else ""),
            "upstream": list(spec.get("upstream") or []), "executions": attempts.get(node_id, 0),
        }
        if e is None:
            entry["state"] = recorded.get(node_id) or ("pending" if run.state == RunState.RUNNING else "skipped")
        else:
            info = ExecutionInfo.from_record(e)
            entry.update(
                state=node_state(e), execution_id=e.id, start_time=iso(e.start_time), end_time=iso(e.end_time),
                duration_s=duration_s(e.start_time, e.end_time), cached_from=info.source_execution,
                cache_miss_reason=info.cache_miss_reason, error=info.error_line(e),
                halted=info.halted, skip_reason=info.skip_reason,
            )
        nodes.append(entry)
        data_from = set()
        for key, source in (spec.get("inputs") or {}).items():
            if isinstance(source, dict) and source.get("producer"):
                data_from.add(source["producer"])
                edges.append({"from": source["producer"], "to": node_id, "key": f"{source.get('key')} → {key}",
                              "kind": "data"})
        for up in spec.get("upstream") or []:
            if up not in data_from:
                edges.append({"from": up, "to": node_id, "key": "after", "kind": "order"})
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n["state"]] = counts.get(n["state"], 0) + 1
    return {
        "id": run.run_id, "pipeline": ctx["pipeline"], "state": run.state.value,
        "start_time": iso(run.start_time or ctx["create_time"]), "end_time": iso(run.end_time),
        "duration_s": run.duration_s, "parameters": run.parameters, "pipeline_root": run.pipeline_root,
        "runner": run.runner, "attempts": run.attempts, "host": run.host, "pid": run.pid,
        "enable_cache": run.enable_cache, "live": run.state == RunState.RUNNING, "nodes": nodes, "edges": edges,
        "state_counts": counts, "executions_total": sum(attempts.values()),
        "deleted_time": iso(run.deleted_time), "delete_reason": run.delete_reason,
    }


def run_executions_json(store: MetadataStore, run_id: str, query: Query) -> dict[str, Any]:
    """``GET /api/runs/<run_id>/executions?limit=&offset=``: every execution of the run, newest first."""
    ctx = _run_or_404(store, run_id)
    limit, offset = query.int("limit", 100, lo=1, hi=1000), query.int("offset", 0)
    page, total = _queries.executions_page(store, ctx["id"], limit, offset)
    return {"executions": [execution_summary(e) for e in page], "total": total, "limit": limit, "offset": offset}


def _logs(outputs: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The log files an execution left in its output artifacts (e.g. the Trainer's trainer.log).

    Those at the top of an artifact's folder or one level down; on an object store
    found with one listing of the artifact.
    """
    found: list[dict[str, Any]] = []
    for key, arts in outputs.items():
        for a in arts:
            if _files.is_remote(a.uri):
                listed, _ = _files.listing(a.uri)
                candidates = [f for f in listed if f.rel and f.rel.count("/") <= 1 and f.rel.endswith(LOG_SUFFIXES)]
            else:
                root = Path(a.uri)
                if not root.is_dir():
                    continue
                paths = sorted(p for pattern in ("*", "*/*") for p in root.glob(pattern)
                               if p.is_file() and p.name.endswith(LOG_SUFFIXES))
                candidates = [_files.Entry(p.relative_to(root).as_posix(), str(p), p.stat().st_size) for p in paths]
            for entry in candidates:
                if len(found) >= _MAX_LOGS:
                    return found
                found.append({"artifact_id": a.id, "output": key, "path": entry.rel, "size": entry.size,
                              "text": tail(entry.location, _LOG_BYTES)})
    return found


def execution_log_path(store: MetadataStore, execution_id: str) -> Path | str:
    """``GET /api/executions/<id>/log``: the log the launcher captured for that execution."""
    wanted = parse_id(execution_id, "execution")
    try:
        e = store.get_execution(wanted)
    except NotFoundError as err:
        raise ApiError(404, str(err)) from None
    path = _log_file(e)
    if path is None:
        raise ApiError(404, f"execution {e.id} has no captured log")
    return path


def _log_file(e: ExecutionRecord) -> Path | str | None:
    """The execution's captured log, only where the launcher writes logs:
    ``<pipeline_root>/<pipeline>/.logs/<node>/<execution id>.log`` (a path, or a URI on a store)."""
    uri = ExecutionInfo.from_record(e).log_uri
    if not isinstance(uri, str) or not uri:
        return None
    try:
        remote = _files.is_remote(uri)
    except InvalidArgumentError:
        return None
    if remote:
        normalized = _files.normalize(uri)
        key = PurePosixPath(normalized.split("://", 1)[1])
        if key.name != f"{e.id}.log" or key.parent.name != e.node_id or key.parent.parent.name != ".logs":
            return None
        return normalized if _files.is_file(normalized) else None
    path = Path(uri).resolve()
    if path.name != f"{e.id}.log" or path.parent.name != e.node_id or path.parent.parent.name != ".logs":
        return None
    return path if path.is_file() else None


def _execution_log(e: ExecutionRecord) -> list[dict[str, Any]]:
    """What the component printed and logged (the launcher's capture), if it left a file."""
    path = _log_file(e)
    if path is None:
        return []
    return [{"artifact_id": None, "execution_id": e.id, "output": "execution", "path": _files.name_of(path),
             "size": _files.size(path), "text": tail(path, _LOG_BYTES)}]


def execution_json(store: MetadataStore, execution_id: str, query: Query) -> dict[str, Any]:
    """``GET /api/executions/<id>``: parameters, artifacts, cache outcome, timing, error and logs."""
    wanted = parse_id(execution_id, "execution")
    try:
        e = store.get_execution(wanted)
        inputs, outputs = store.get_execution_artifacts(wanted)
    except NotFoundError as err:
        raise ApiError(404, str(err)) from None
    info = ExecutionInfo.from_record(e)
    source_id = info.source_execution
    source = None
    if isinstance(source_id, int):
        try:
            source = execution_summary(store.get_execution(source_id))
        except NotFoundError:
            source = {"id": source_id, "missing": True}
    cache = {"key": e.cache_key, "hit": e.state == ExecutionState.CACHED, "source": source,
             "miss_reason": info.cache_miss_reason, "code_version": info.code_version,
             "material": info.cache_material}
    properties = info.to_properties()
    properties.pop("cache_material", None)  # shown under "cache"
    return {
        **execution_summary(e),
        "parameters": e.parameters, "cache": cache, "halted": info.halted,
        "skip_reason": info.skip_reason, "attempt": info.attempt, "host": info.host, "pid": info.pid,
        "error_message": info.error_line(e),
        "traceback": e.error or None,
        "inputs": {k: [artifact_summary(a) for a in v] for k, v in inputs.items()},
        "outputs": {k: [artifact_summary(a) for a in v] for k, v in outputs.items()},
        "external_inputs": external_inputs(e),
        "logs": _execution_log(e) + _logs(outputs),
        "properties": properties,
        "attempts": _attempts(store, info.run_id, e.node_id),
        **_component_docs(store, info.run_id, e.node_id),
    }


def _attempts(store: MetadataStore, run_id: str | None, node_id: str) -> list[dict[str, Any]]:
    """Every execution of the node in the run (a retried node's attempts), oldest first; [] for one."""
    run = get_run(store, run_id) if run_id else None
    if run is None or run.context_id is None:
        return []
    found = node_attempts(store, run.context_id, node_id)
    if len(found) < 2:
        return []
    out = []
    for x in found:
        xi = ExecutionInfo.from_record(x)
        out.append({**execution_summary(x), "attempt": xi.attempt, "error_message": xi.error_line(x)})
    return out


def _component_docs(store: MetadataStore, run_id: str | None, node_id: str) -> dict[str, Any]:
    """The node's component description and its arguments' ``Args:`` entries, from the run's IR."""
    ctx = _queries.run_context(store, run_id) if run_id else None
    if ctx is None:
        return {}
    ir = RunRecord.from_properties(ctx["name"], ctx["properties"] or {}).ir or {}
    for node in ir.get("nodes") or []:
        if node.get("id") == node_id:
            comp = node.get("component") or {}
            return {"description": comp.get("description") or "", "arg_docs": comp.get("args") or {}}
    return {}
