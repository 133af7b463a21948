"""The artifact page: the record, its producer and consumers, its files, and the lineage graph."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

from jfx.errors import InvalidArgumentError, NotFoundError
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._records import ArtifactRecord, EventType, ExecutionRecord, ExecutionState, LineageGraph
from jfx.metadata._store import MetadataStore
from jfx.metadata.ui import _files as _files_mod
from jfx.metadata.ui import _queries
from jfx.metadata.ui._common import (
    ApiError,
    Query,
    artifact_summary,
    execution_summary,
    external_inputs,
    iso,
    node_state,
    parse_id,
)

__all__ = ["artifact_json", "artifacts_json", "lineage_json", "artifact_file", "file_by_path", "get_artifact", "producer_of",
           "refuse_deleted", "MAX_GRAPH_NODES"]

MAX_GRAPH_NODES = 600
_MAX_LISTED = 100
_MAX_FILES = 500


def refuse_deleted(a: ArtifactRecord) -> None:
    """ApiError 410 for an artifact jfx gc deleted: its files are gone, or going."""
    if a.state.deleted:
        raise ApiError(410, f"artifact {a.id} was {a.deleted_note()}")


def get_artifact(store: MetadataStore, artifact_id: str) -> ArtifactRecord:
    wanted = parse_id(artifact_id, "artifact")
    try:
        return store.get_artifact(wanted)
    except NotFoundError as err:
        raise ApiError(404, str(err)) from None


def producer_of(store: MetadataStore, artifact_id: int) -> tuple[ExecutionRecord | None, int]:
    """The execution that made an artifact, and how many cached executions re-recorded it.

    A cache hit records the reused artifacts as its outputs too; the maker is the first
    execution that is not a cache hit.
    """
    found, total = _queries.artifact_events(store, artifact_id, EventType.OUTPUT, _MAX_LISTED)
    made = [e for _, e in found if e.state != ExecutionState.CACHED]
    producer = made[0] if made else (found[0][1] if found else None)
    return producer, total - (1 if producer is not None else 0)


def _files(root: str) -> tuple[list[dict[str, Any]], bool]:
    found, truncated = _files_mod.listing(root, _MAX_FILES)
    return [{"path": f.rel, "size": f.size} for f in found], truncated


def artifact_json(store: MetadataStore, artifact_id: str, query: Query, *, mlflow_url: str | None = None) -> dict[str, Any]:
    """``GET /api/artifacts/<id>``: the artifact, its producer, consumers, runs and files."""
    from jfx.metadata.ui._viewers import viewer_kind

    a = get_artifact(store, artifact_id)
    assert a.id is not None
    producer, reused = producer_of(store, a.id)
    consumers, consumers_total = _queries.artifact_events(store, a.id, EventType.INPUT, _MAX_LISTED)
    # gc deleted it: no file is offered (a DELETING one's files are being removed)
    files, truncated = ([], False) if a.state.deleted else _files(a.uri)
    return {
        **artifact_summary(a), "properties": a.properties, "update_time": iso(a.update_time),
        "producer": execution_summary(producer) if producer else None, "cached_reuses": reused,
        "consumers": [{**execution_summary(e), "input": key} for key, e in consumers],
        "consumers_total": consumers_total,
        "runs": _queries.artifact_runs(store, a.id, _MAX_LISTED),
        "files": files, "files_truncated": truncated,
        "exists": not a.state.deleted and (bool(files) or _files_mod.exists(a.uri)),
        "viewer": viewer_kind(a),
    }


def artifacts_json(store: MetadataStore, query: Query) -> dict[str, Any]:
    """``GET /api/artifacts?type=&name=&limit=&offset=``: artifacts newest first (e.g. one node's outputs in every run).

    ``total`` counts them up to :data:`~jfx.metadata.ui._queries.COUNT_CAP` (or to this page's
    end, if deeper); ``total_exact`` is false when there are more.
    """
    limit, offset = query.int("limit", 50, lo=1, hi=500), query.int("offset", 0)
    found, total, exact = _queries.artifact_page(store, type_name=query.str("type"), name=query.str("name"), limit=limit,
                                          offset=offset)
    runs = _queries.first_runs(store, [a.stored_id for a in found])
    return {"artifacts": [{**artifact_summary(a), "run_id": runs.get(a.stored_id)} for a in found], "total": total,
            "total_exact": exact, "limit": limit, "offset": offset}


# ------------------------------------------------------------------------ lineage

def _depth(query: Query, name: str, default: int) -> int | None:
    raw = query.str(name)
    if raw is None:
        return default
    if raw == "all":
        return None
    return query.int(name, default, lo=0, hi=10_000)


def _merge(graphs: list[LineageGraph]) -> tuple[dict[int, ArtifactRecord], dict[int, ExecutionRecord], set[tuple]]:
    arts: dict[int, ArtifactRecord] = {}
    execs: dict[int, ExecutionRecord] = {}
    events: set[tuple] = set()
    for g in graphs:
        arts.update({x.stored_id: x for x in g.artifacts})
        execs.update({x.stored_id: x for x in g.executions})
        events.update((ev.artifact_id, ev.execution_id, ev.type.value, ev.key) for ev in g.events)
    return arts, execs, events


def lineage_json(store: MetadataStore, query: Query) -> dict[str, Any]:
    """``GET /api/lineage?artifact=ID&up=2&down=1`` or ``?execution=ID``: a lineage graph.

    ``up`` / ``down`` are execution steps to walk each way (``all``: to the end). The
    answer has ``nodes`` (artifacts, executions, and the external files executions read)
    and ``edges`` (artifact → execution for a read, execution → artifact for a write),
    across runs and pipelines. A cache hit that reused the outputs of an execution shown
    in the graph, with no input of its own, is folded into that execution
    (``cached_reuses``); ``truncated`` says the graph was cut at ``MAX_GRAPH_NODES``.
    """
    artifact_id, execution_id = query.str("artifact"), query.str("execution")
    if (artifact_id is None) == (execution_id is None):
        raise ApiError(400, "give exactly one of the query parameters artifact=ID or execution=ID")
    if artifact_id is not None:
        a = get_artifact(store, artifact_id)
        up, down = _depth(query, "up", 2), _depth(query, "down", 1)
        graphs = []
        try:
            if up != 0:
                graphs.append(store.lineage(a.stored_id, "upstream", up))
            if down != 0:
                graphs.append(store.lineage(a.stored_id, "downstream", down))
        except InvalidArgumentError as err:
            raise ApiError(400, str(err)) from None
        arts, execs, events = _merge(graphs) if graphs else ({a.stored_id: a}, {}, set())
        center = f"a{a.id}"
    else:
        assert execution_id is not None  # exactly one of the two was given
        wanted = parse_id(execution_id, "execution")
        try:
            e = store.get_execution(wanted)
            inputs, outputs = store.get_execution_artifacts(e.stored_id)
        except NotFoundError as err:
            raise ApiError(404, str(err)) from None
        arts, execs, events = {}, {e.stored_id: e}, set()
        for kind, side in ((EventType.INPUT, inputs), (EventType.OUTPUT, outputs)):
            for key, records in side.items():
                for r in records:
                    arts[r.stored_id] = r
                    events.add((r.id, e.id, kind.value, key))
        center = f"e{e.id}"
    return _graph(arts, execs, events, center)


def _fold_cached(execs: dict[int, ExecutionRecord], events: set[tuple]) -> dict[int, int]:
    """Hide cache hits already told by the execution they reused; returns id → reuse count."""
    inputs: dict[int, set[int]] = {}
    for a_id, e_id, kind, _ in events:
        if kind == EventType.INPUT.value:
            inputs.setdefault(e_id, set()).add(a_id)
    reuses: dict[int, int] = {}
    for e in list(execs.values()):
        source = ExecutionInfo.from_record(e).source_execution
        if e.state != ExecutionState.CACHED or source not in execs or source == e.id:
            continue
        if inputs.get(e.stored_id, set()) <= inputs.get(source, set()):
            del execs[e.stored_id]
            reuses[source] = reuses.get(source, 0) + 1
    return reuses


def _graph(arts: dict[int, ArtifactRecord], execs: dict[int, ExecutionRecord], events: set[tuple],
           center: str) -> dict[str, Any]:
    reuses = _fold_cached(execs, events) if center.startswith("a") else {}
    nodes: dict[str, dict[str, Any]] = {}
    for a in arts.values():
        nodes[f"a{a.id}"] = {"id": f"a{a.id}", "kind": "artifact", "ref": a.id, "label": a.type_name,
                             "sub": f"{a.name or 'artifact'} #{a.id}", "state": a.state.value, "uri": a.uri,
                             "deleted": a.deleted_note() or None}
    edges: list[dict[str, Any]] = []
    for e in execs.values():
        key = f"e{e.id}"
        nodes[key] = {"id": key, "kind": "execution", "ref": e.id, "label": e.node_id,
                      "sub": f"{e.type_name} #{e.id}", "state": node_state(e),
                      "run_id": ExecutionInfo.from_record(e).run_id, "cached_reuses": reuses.get(e.stored_id, 0)}
        if e.state != ExecutionState.CACHED:
            for i, x in enumerate(external_inputs(e)):
                xid = f"x{e.id}.{i}"
                nodes[xid] = {"id": xid, "kind": "external", "ref": None, "label": x["name"],
                              "sub": f"{x['parameter']} of {e.node_id}", "state": "external", "path": x["path"],
                              "fingerprint": x["fingerprint"]}
                edges.append({"from": xid, "to": key, "key": x["parameter"]})
    for a_id, e_id, kind, key in sorted(events):
        if e_id not in execs or a_id not in arts:
            continue
        if kind == EventType.INPUT.value:
            edges.append({"from": f"a{a_id}", "to": f"e{e_id}", "key": key})
        else:
            edges.append({"from": f"e{e_id}", "to": f"a{a_id}", "key": key})
    truncated = False
    if len(nodes) > MAX_GRAPH_NODES:
        keep = _nearest(center, edges, MAX_GRAPH_NODES)
        nodes = {k: v for k, v in nodes.items() if k in keep}
        edges = [x for x in edges if x["from"] in keep and x["to"] in keep]
        truncated = True
    return {"center": center, "nodes": list(nodes.values()), "edges": edges, "truncated": truncated}


def _nearest(center: str, edges: list[dict[str, Any]], limit: int) -> set[str]:
    """The ``limit`` nodes closest to ``center``, edges taken both ways."""
    near: dict[str, list[str]] = {}
    for x in edges:
        near.setdefault(x["from"], []).append(x["to"])
        near.setdefault(x["to"], []).append(x["from"])
    seen, todo = {center}, deque([center])
    while todo and len(seen) < limit:
        for nxt in near.get(todo.popleft(), []):
            if nxt not in seen and len(seen) < limit:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# -------------------------------------------------------------------------- files

def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def artifact_file(store: MetadataStore, artifact_id: str, relpath: str) -> Path | str:
    """The file ``relpath`` inside an artifact's URI; ApiError 403 for anything outside it.

    Locally ``..`` and symbolic links are resolved before the check; on an object store
    the key is normalised (see :mod:`jfx.metadata.ui._files`): neither can leave the URI.
    Returns a local path or an object-store URI.
    """
    a = get_artifact(store, artifact_id)
    refuse_deleted(a)
    if _files_mod.is_remote(a.uri):
        root_uri = _files_mod.normalize(a.uri)
        target_uri = _files_mod.normalize(_files_mod.child(root_uri, relpath) if relpath else root_uri)
        if relpath.startswith("/") or not _files_mod.inside(root_uri, target_uri):
            raise ApiError(403, f"{relpath!r} is outside the URI of artifact {a.id}")
        if not _files_mod.exists(target_uri):
            raise ApiError(404, f"artifact {a.id} has no file {relpath!r} ({target_uri} does not exist)")
        return target_uri
    root = Path(a.uri).resolve()
    target = (root / relpath).resolve() if relpath else root
    if not _inside(root, target):
        raise ApiError(403, f"{relpath!r} is outside the URI of artifact {a.id}")
    if not target.exists():
        raise ApiError(404, f"artifact {a.id} has no file {relpath!r} ({target} does not exist)")
    return target


def file_by_path(store: MetadataStore, path: str) -> Path | str:
    """An absolute path or object-store URI that must lie under the URI of a recorded artifact (else ApiError 403)."""
    if path and "://" in path:
        try:
            target_uri = _files_mod.normalize(path)
        except InvalidArgumentError as err:
            raise ApiError(400, f"query parameter path={path!r}: {err}") from None
        candidates = set(_files_mod.parents(target_uri))
        for a in _queries.artifacts_with_uris(store, candidates | {c + "/" for c in candidates}):
            if _files_mod.is_remote(a.uri) and _files_mod.inside(a.uri, target_uri):
                refuse_deleted(a)
                if not _files_mod.exists(target_uri):
                    raise ApiError(404, f"{path} does not exist")
                return target_uri
        raise ApiError(403, f"{path} is not under the URI of any artifact in the metadata store")
    if not path or not os.path.isabs(path):
        raise ApiError(400, f"query parameter path={path!r}: expected an absolute path or an s3:// or gs:// URI")
    given = Path(os.path.normpath(path))
    target = given.resolve()
    candidates = {str(p) for p in (given, *given.parents, target, *target.parents)}
    for a in _queries.artifacts_with_uris(store, candidates):
        if _files_mod.is_remote(a.uri):
            continue
        if _inside(Path(a.uri).resolve(), target):
            refuse_deleted(a)
            if not target.exists():
                raise ApiError(404, f"{path} does not exist")
            return target
    raise ApiError(403, f"{path} is not under the URI of any artifact in the metadata store")
