"""The read-only SQL the UI needs beyond the store's verbs: one query per page section.

Each function takes an open :class:`MetadataStore` and reads in one transaction. The
queries select only the columns a page shows (a run's properties hold its whole IR, so
the run list reads the run columns and their small summary, never the properties) and page with
LIMIT/OFFSET on indexed columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from jfx.metadata._queries import chunks
from jfx.metadata._records import MAX_SQL_INT, PIPELINE, PIPELINE_RUN, ArtifactRecord, EventType, ExecutionRecord
from jfx.metadata._rows import RUN_SUMMARY, RUN_SUMMARY_KEYS, to_artifact, to_execution
from jfx.metadata._runs import RUN_LIST_FIELDS
from jfx.metadata._schema import artifacts as artifacts_t
from jfx.metadata._schema import associations as associations_t
from jfx.metadata._schema import attributions as attributions_t
from jfx.metadata._schema import contexts as contexts_t
from jfx.metadata._schema import events as events_t
from jfx.metadata._schema import executions as executions_t
from jfx.metadata._store import MetadataStore

__all__ = [
    "COUNT_CAP",
    "RUN_FIELDS",
    "pipeline_summaries",
    "run_page",
    "run_context",
    "executions_per_node",
    "executions_page",
    "artifact_events",
    "artifact_runs",
    "run_outputs",
    "artifacts_with_uris",
    "artifact_page",
    "first_runs",
    "latest_execution_ids",
]

# The run properties the run list shows (never the IR).
RUN_FIELDS = RUN_LIST_FIELDS


def _read(store: MetadataStore, fn: Any) -> Any:
    return store._tx(fn, write=False)  # noqa: SLF001 - the UI reads through the store's transactions


# Counts stop here (a page says "10000+"): counting every matching run would read them all.
COUNT_CAP = 10_000


def _run_filters(stmt: sa.Select, pipeline: str | None, state: str | None, search: str | None,
                 deleted: bool = False) -> sa.Select:
    stmt = stmt.where(contexts_t.c.type_name == PIPELINE_RUN)
    if not deleted:  # runs jfx gc deleted are shown only when asked for
        stmt = stmt.where(contexts_t.c.run_deleted_time.is_(None))
    if pipeline:
        parent = contexts_t.alias("pipeline")
        ids = sa.select(parent.c.id).where(parent.c.type_name == PIPELINE, parent.c.name == pipeline)
        stmt = stmt.where(contexts_t.c.parent_id.in_(ids.scalar_subquery()))
    if state:
        stmt = stmt.where(contexts_t.c.run_state == state)  # an indexed column (migration 0003)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(contexts_t.c.name.like(f"%{escaped}%", escape="\\"))
    return stmt


def _capped_count(stmt: sa.Select, cap: int) -> sa.Select:
    """The number of rows ``stmt`` (one id column) returns, reading at most ``cap`` of them."""
    return sa.select(sa.func.count()).select_from(stmt.limit(cap).subquery())


def _run_row(row: Any) -> dict[str, Any]:
    """A run list row with its summary's fields (parameters, runner, attempts) as columns of their own."""
    found = dict(row._mapping)
    summary = found.pop(RUN_SUMMARY) or {}
    found.update({key: summary.get(key) for key in RUN_SUMMARY_KEYS})
    return found


def run_page(store: MetadataStore, *, pipeline: str | None, state: str | None, search: str | None,
             limit: int, offset: int, deleted: bool = False) -> tuple[list[dict[str, Any]], int, bool]:
    """One page of runs, newest first; the number of runs matching the filters, and whether it is exact.

    The count stops past :data:`COUNT_CAP` runs (or past this page, if deeper): the number
    is then a lower bound (``exact`` is false) that still tells whether an older page exists.
    The page's ids come from the indexes alone, so a deep page skips index entries, not rows.
    Runs that jfx gc deleted are left out unless ``deleted``.
    """
    ids = _run_filters(sa.select(contexts_t.c.id), pipeline, state, search, deleted)
    newest_first = (contexts_t.c.create_time.desc(), contexts_t.c.id.desc())
    parent = contexts_t.alias("parent")
    # the run columns only: the properties hold the IR, which the database would parse for each run
    columns = [contexts_t.c.id, contexts_t.c.name, contexts_t.c.create_time, parent.c.name.label("pipeline"),
               contexts_t.c.run_state.label("state"), contexts_t.c.run_start_time.label("start_time"),
               contexts_t.c.run_end_time.label("end_time"), contexts_t.c.run_deleted_time.label("deleted_time"),
               contexts_t.c[RUN_SUMMARY]]
    cap = min(max(COUNT_CAP, offset + limit), MAX_SQL_INT - 1) + 1

    def rows_of(source: Any, where: Any = None) -> sa.Select:
        stmt = (sa.select(*columns).select_from(source.outerjoin(parent, contexts_t.c.parent_id == parent.c.id))
                .order_by(*newest_first))
        return stmt if where is None else stmt.where(where)

    if search:
        # No index looks up a substring: the filter reads every run's name once, from the
        # runs-newest-first index that holds the names (migration 0006), not from the rows. The
        # matches' ids (up to the cap, newest first) are read in that one pass and give both the
        # page and the count, instead of a second pass to count.
        matches = ids.order_by(*newest_first).limit(cap)

        def read_matching(conn: sa.Connection) -> tuple[list[dict[str, Any]], int, bool]:
            found = list(conn.execute(matches).scalars())
            page = found[offset:offset + limit]
            rows = [_run_row(r) for r in conn.execute(rows_of(contexts_t, contexts_t.c.id.in_(page)))] if page else []
            return rows, min(len(found), cap - 1), len(found) < cap

        return _read(store, read_matching)

    # a derived table, not IN (...): MariaDB refuses LIMIT inside IN
    page_ids = ids.order_by(*newest_first).limit(limit).offset(offset).subquery("page")
    stmt = rows_of(page_ids.join(contexts_t, contexts_t.c.id == page_ids.c.id))
    count = _capped_count(ids, cap)

    def read(conn: sa.Connection) -> tuple[list[dict[str, Any]], int, bool]:
        rows = [_run_row(r) for r in conn.execute(stmt)]
        total = int(conn.execute(count).scalar() or 0)
        return rows, min(total, cap - 1), total < cap

    return _read(store, read)


def pipeline_summaries(store: MetadataStore) -> list[dict[str, Any]]:
    """Every pipeline with its number of runs (exact up to :data:`COUNT_CAP`; runs jfx gc deleted are not
    counted) and the time of its latest run.

    Each pipeline costs two index lookups: its newest run, and a count that stops at the cap.
    """
    pipelines = (sa.select(contexts_t.c.id, contexts_t.c.name)
                 .where(contexts_t.c.type_name == PIPELINE).order_by(contexts_t.c.name))

    def of(pipeline_id: Any) -> sa.Select:
        return sa.select(contexts_t.c.id).where(contexts_t.c.parent_id == pipeline_id,
                                                 contexts_t.c.type_name == PIPELINE_RUN,
                                                 contexts_t.c.run_deleted_time.is_(None))

    pid: sa.BindParameter[Any] = sa.bindparam("pipeline_id")
    newest = (sa.select(contexts_t.c.create_time).where(contexts_t.c.parent_id == pid,
                                                        contexts_t.c.type_name == PIPELINE_RUN,
                                                        contexts_t.c.run_deleted_time.is_(None))
              .order_by(contexts_t.c.create_time.desc()).limit(1))
    count = _capped_count(of(pid), COUNT_CAP + 1)

    def read(conn: sa.Connection) -> list[dict[str, Any]]:
        found = []
        for p_id, name in conn.execute(pipelines).all():
            runs = int(conn.execute(count, {"pipeline_id": p_id}).scalar() or 0)
            found.append({"id": p_id, "name": name, "runs": min(runs, COUNT_CAP), "runs_exact": runs <= COUNT_CAP,
                          "last_run_time": conn.execute(newest, {"pipeline_id": p_id}).scalar()})
        return found

    return _read(store, read)


def run_context(store: MetadataStore, run_id: str) -> dict[str, Any] | None:
    """The run context named ``run_id`` with its pipeline's name, or ``None``."""
    parent = contexts_t.alias("parent")
    stmt = (
        sa.select(contexts_t.c.id, contexts_t.c.name, contexts_t.c.properties, contexts_t.c.create_time,
                  parent.c.name.label("pipeline"))
        .select_from(contexts_t.outerjoin(parent, contexts_t.c.parent_id == parent.c.id))
        .where(contexts_t.c.type_name == PIPELINE_RUN, contexts_t.c.name == run_id)
    )

    def read(conn: sa.Connection) -> dict[str, Any] | None:
        row = conn.execute(stmt).first()
        return None if row is None else dict(row._mapping)

    return _read(store, read)


def executions_per_node(store: MetadataStore, run_context_id: int) -> dict[str, int]:
    """Node id → how many executions (attempts, cache hits) it has in a run."""
    stmt = (
        sa.select(executions_t.c.node_id, sa.func.count())
        .join(associations_t, associations_t.c.execution_id == executions_t.c.id)
        .where(associations_t.c.context_id == run_context_id)
        .group_by(executions_t.c.node_id)
    )
    return _read(store, lambda conn: {node_id: int(n) for node_id, n in conn.execute(stmt)})


def executions_page(store: MetadataStore, run_context_id: int, limit: int, offset: int) -> tuple[list[ExecutionRecord], int]:
    """One page of a run's executions (newest first) and their total."""
    stmt = (
        sa.select(executions_t)
        .join(associations_t, associations_t.c.execution_id == executions_t.c.id)
        .where(associations_t.c.context_id == run_context_id)
        .order_by(executions_t.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    count = sa.select(sa.func.count()).select_from(associations_t).where(associations_t.c.context_id == run_context_id)

    def read(conn: sa.Connection) -> tuple[list[ExecutionRecord], int]:
        return [to_execution(r) for r in conn.execute(stmt)], int(conn.execute(count).scalar() or 0)

    return _read(store, read)


def artifact_events(store: MetadataStore, artifact_id: int, kind: EventType, limit: int) -> tuple[list[tuple[str, ExecutionRecord]], int]:
    """(event key, execution) of up to ``limit`` events of one kind on an artifact, oldest first, and their total."""
    stmt = (
        sa.select(executions_t, events_t.c.key.label("event_key"))
        .join(events_t, events_t.c.execution_id == executions_t.c.id)
        .where(events_t.c.artifact_id == artifact_id, events_t.c.type == kind.value)
        .order_by(executions_t.c.id)
        .limit(limit)
    )
    count = (sa.select(sa.func.count()).select_from(events_t)
             .where(events_t.c.artifact_id == artifact_id, events_t.c.type == kind.value))

    def read(conn: sa.Connection):
        found = [(r._mapping["event_key"], to_execution(r)) for r in conn.execute(stmt)]
        return found, int(conn.execute(count).scalar() or 0)

    return _read(store, read)


def artifact_runs(store: MetadataStore, artifact_id: int, limit: int) -> list[dict[str, Any]]:
    """The runs an artifact is attributed to (read or written there), oldest first."""
    parent = contexts_t.alias("parent")
    stmt = (
        sa.select(contexts_t.c.name.label("id"), parent.c.name.label("pipeline"),
                  contexts_t.c.run_state.label("state"))
        .select_from(attributions_t.join(contexts_t, contexts_t.c.id == attributions_t.c.context_id)
                     .outerjoin(parent, contexts_t.c.parent_id == parent.c.id))
        .where(attributions_t.c.artifact_id == artifact_id, contexts_t.c.type_name == PIPELINE_RUN)
        .order_by(contexts_t.c.id)
        .limit(limit)
    )
    return _read(store, lambda conn: [dict(r._mapping) for r in conn.execute(stmt)])


def run_outputs(store: MetadataStore, execution_ids: Sequence[int],
                type_names: Iterable[str] | None = None) -> dict[int, list[tuple[str, ArtifactRecord]]]:
    """Execution id → its (output key, artifact) pairs, in event order (only artifacts of ``type_names``, if given)."""
    wanted = sorted(set(type_names)) if type_names is not None else None
    found: dict[int, list[tuple[str, ArtifactRecord]]] = {i: [] for i in execution_ids}

    def read(conn: sa.Connection) -> None:
        for chunk in chunks(execution_ids):
            stmt = (
                sa.select(artifacts_t, events_t.c.execution_id.label("event_execution"),
                          events_t.c.key.label("event_key"))
                .join(events_t, events_t.c.artifact_id == artifacts_t.c.id)
                .where(events_t.c.execution_id.in_(chunk), events_t.c.type == EventType.OUTPUT.value)
                .order_by(events_t.c.execution_id, events_t.c.key, events_t.c.idx)
            )
            if wanted is not None:
                stmt = stmt.where(artifacts_t.c.type_name.in_(wanted))
            for row in conn.execute(stmt):
                found[row._mapping["event_execution"]].append((row._mapping["event_key"], to_artifact(row)))

    _read(store, read)
    return found


def artifact_page(store: MetadataStore, *, type_name: str | None, name: str | None, limit: int,
                  offset: int) -> tuple[list[ArtifactRecord], int, bool]:
    """One page of artifacts (of a type and/or name), newest first; their number and whether it is exact.

    As for runs, the count stops past :data:`COUNT_CAP` (or past this page, if deeper).
    """
    ids = sa.select(artifacts_t.c.id)
    stmt = sa.select(artifacts_t)
    if type_name:
        stmt, ids = stmt.where(artifacts_t.c.type_name == type_name), ids.where(artifacts_t.c.type_name == type_name)
    if name:
        stmt, ids = stmt.where(artifacts_t.c.name == name), ids.where(artifacts_t.c.name == name)
    stmt = stmt.order_by(artifacts_t.c.id.desc()).limit(limit).offset(offset)
    cap = min(max(COUNT_CAP, offset + limit), MAX_SQL_INT - 1) + 1
    count = _capped_count(ids, cap)

    def read(conn: sa.Connection) -> tuple[list[ArtifactRecord], int, bool]:
        total = int(conn.execute(count).scalar() or 0)
        return [to_artifact(r) for r in conn.execute(stmt)], min(total, cap - 1), total < cap

    return _read(store, read)


def latest_execution_ids(store: MetadataStore, context_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Context id → node id → the id of that node's latest execution in it: one query for a page of runs."""
    found: dict[int, dict[str, int]] = {ctx: {} for ctx in context_ids}

    def read(conn: sa.Connection) -> None:
        for chunk in chunks(list(context_ids)):
            stmt = (sa.select(associations_t.c.context_id, executions_t.c.node_id, sa.func.max(executions_t.c.id))
                    .join(associations_t, associations_t.c.execution_id == executions_t.c.id)
                    .where(associations_t.c.context_id.in_(chunk))
                    .group_by(associations_t.c.context_id, executions_t.c.node_id))
            for ctx, node, e_id in conn.execute(stmt):
                found[ctx][node] = int(e_id)

    _read(store, read)
    return found


def first_runs(store: MetadataStore, artifact_ids: Sequence[int]) -> dict[int, str]:
    """Artifact id → the first run (by context id) it is attributed to."""
    found: dict[int, tuple[int, str]] = {}

    def read(conn: sa.Connection) -> None:
        for chunk in chunks(artifact_ids):
            stmt = (sa.select(attributions_t.c.artifact_id, contexts_t.c.id, contexts_t.c.name)
                    .join(contexts_t, contexts_t.c.id == attributions_t.c.context_id)
                    .where(attributions_t.c.artifact_id.in_(chunk), contexts_t.c.type_name == PIPELINE_RUN))
            for a_id, c_id, name in conn.execute(stmt):
                if a_id not in found or c_id < found[a_id][0]:
                    found[a_id] = (c_id, name)

    _read(store, read)
    return {a: name for a, (_, name) in found.items()}


def artifacts_with_uris(store: MetadataStore, uris: Iterable[str]) -> list[ArtifactRecord]:
    """The artifacts whose URI is one of ``uris`` (an indexed lookup)."""
    wanted = sorted(set(uris))
    if not wanted:
        return []
    stmt = sa.select(artifacts_t).where(artifacts_t.c.uri.in_(wanted)).limit(1000)
    return _read(store, lambda conn: [to_artifact(r) for r in conn.execute(stmt)])
