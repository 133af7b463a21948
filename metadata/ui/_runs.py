"""The runs page: pipelines and their runs (state, start, duration, parameters), filtered and paged."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus

from jfx.metadata._runs import RunState
from jfx.metadata._store import MetadataStore
from jfx.metadata.ui import _queries
from jfx.metadata.ui._common import ApiError, Query, duration_s, iso

__all__ = ["RUN_STATES", "METRIC_TYPES", "pipelines_json", "runs_json", "run_metrics", "first_requests"]

RUN_STATES = tuple(s.value for s in RunState)
MAX_PAGE = 500
# The artifact types whose numeric properties are a run's metrics (the runs list's columns)
METRIC_TYPES = ("ModelEvaluation", "Model", "ModelRun", "Metrics")
PAGE = 50  # runs to a page, as pages/runs.js asks for them


def first_requests(params: dict[str, list[str]]) -> list[str]:
    """The API addresses ``pages/runs.js`` fetches for the page ``/runs?<params>``, written as it
    writes them (``URLSearchParams``), so that the page can preload them.

    Example:
        >>> first_requests({"state": ["FAILED"], "offset": ["50"], "metrics": ["a"]})
        ['/api/pipelines', '/api/runs?limit=50&offset=50&state=FAILED']
    """
    def get(name: str) -> str:
        return (params.get(name) or [""])[0]

    digits = re.match(r"\s*([+-]?\d+)", get("offset"))  # JavaScript's parseInt
    query = [("limit", str(PAGE)), ("offset", str(max(0, int(digits.group(1)) if digits else 0)))]
    query += [(k, v) for k, v in (("pipeline", get("pipeline")), ("state", get("state")), ("q", get("q")),
                                  ("deleted", "1" if get("deleted") == "1" else "")) if v]
    # URLSearchParams leaves * unescaped and escapes ~, unlike quote_plus
    text = "&".join(f"{k}={quote_plus(v, safe='*').replace('~', '%7E')}" for k, v in query)
    return ["/api/pipelines", f"/api/runs?{text}"]


def pipelines_json(store: MetadataStore, query: Query) -> dict[str, Any]:
    """``GET /api/pipelines``: every pipeline, its number of runs and when it last ran.

    ``runs`` stops at :data:`~jfx.metadata.ui._queries.COUNT_CAP`; ``runs_exact`` is false when it did.
    """
    rows = _queries.pipeline_summaries(store)
    return {"pipelines": [{"name": r["name"], "runs": r["runs"], "runs_exact": r["runs_exact"],
                           "last_run_time": iso(r["last_run_time"])} for r in rows]}


def runs_json(store: MetadataStore, query: Query) -> dict[str, Any]:
    """``GET /api/runs?pipeline=&state=&q=&deleted=&limit=&offset=``: one page of runs, newest first.

    ``deleted=1`` includes the runs jfx gc deleted (each with its ``deleted_time``).

    ``total`` counts the matching runs up to :data:`~jfx.metadata.ui._queries.COUNT_CAP` (or
    to this page's end, if deeper); ``total_exact`` is false when there are more.
    """
    state = query.str("state")
    if state is not None:
        state = state.upper()
        if state not in RUN_STATES:
            raise ApiError(400, f"query parameter state={state!r}: expected one of {', '.join(RUN_STATES)}")
    limit = query.int("limit", 50, lo=1, hi=MAX_PAGE)
    offset = query.int("offset", 0)
    pipeline, search = query.str("pipeline"), query.str("q")
    deleted = query.choice("deleted", ("0", "1"), "0") == "1"
    rows, total, exact = _queries.run_page(store, pipeline=pipeline, state=state, search=search, limit=limit,
                                           offset=offset, deleted=deleted)
    runs = [{
        "id": r["name"], "pipeline": r["pipeline"], "state": r["state"] or "",
        "start_time": iso(r["start_time"] or r["create_time"]), "end_time": iso(r["end_time"]),
        "duration_s": duration_s(r["start_time"], r["end_time"]), "parameters": r["parameters"] or {},
        "runner": r["runner"], "attempts": int(r["attempts"]) if r["attempts"] else 1,
        "deleted_time": iso(r["deleted_time"]),
    } for r in rows]
    names: dict[str, int] = {}
    if query.str("metrics", "1") != "0":
        found = run_metrics(store, [int(r["id"]) for r in rows])
        for run, r in zip(runs, rows, strict=True):
            run["metrics"] = found.get(int(r["id"]), {})
            for name in run["metrics"]:
                names[name] = names.get(name, 0) + 1
    return {"runs": runs, "total": total, "total_exact": exact, "limit": limit, "offset": offset,
            "filters": {"pipeline": pipeline, "state": state, "q": search, "deleted": deleted},
            "states": list(RUN_STATES),
            "metric_names": sorted(names, key=lambda n: (-names[n], n))}


def run_metrics(store: MetadataStore, run_context_ids: list[int]) -> dict[int, dict[str, float]]:
    """Run context id → ``{"<node>.<property>": value}``: the numeric properties of the
    evaluations, models and metrics its nodes' latest executions produced (a cache hit's too)."""
    from jfx.metadata.ui._compare import numbers

    latest = _queries.latest_execution_ids(store, run_context_ids)
    outputs = _queries.run_outputs(store, [e_id for by_node in latest.values() for e_id in by_node.values()], METRIC_TYPES)
    found: dict[int, dict[str, float]] = {}
    for ctx, by_node in latest.items():
        metrics: dict[str, float] = {}
        for node, e_id in sorted(by_node.items(), key=lambda item: item[1]):
            for _key, artifact in outputs.get(e_id, []):
                if artifact.type_name in METRIC_TYPES:
                    for name, value in numbers(artifact.properties).items():
                        metrics.setdefault(f"{node}.{name}", value)
        found[ctx] = metrics
    return found
