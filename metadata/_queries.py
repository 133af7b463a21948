"""Query building blocks shared by the store's methods; each takes a connection in a transaction."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from jfx.errors import ArtifactDeletedError, InvalidArgumentError, NotFoundError
from jfx.metadata._records import ArtifactRecord, ArtifactState, ContextRecord, EventType, ListOptions
from jfx.metadata._rows import missing, run_columns, to_artifact, to_context
from jfx.metadata._schema import artifacts as artifacts_t
from jfx.metadata._schema import contexts as contexts_t
from jfx.metadata._schema import events as events_t

T = TypeVar("T")

_CHUNK = 500  # ids per IN (...) list
_ORDER_COLUMNS = {
    "jfx_artifacts": {"id": "id", "create_time": "create_time", "update_time": "update_time"},
    "jfx_executions": {"id": "id", "start_time": "start_time", "create_time": "start_time"},
    "jfx_contexts": {"id": "id", "create_time": "create_time"},
}


def page(stmt: sa.Select, table: sa.Table, options: ListOptions) -> sa.Select:
    """``stmt`` ordered and paged by ``options`` (ties broken by id)."""
    allowed = _ORDER_COLUMNS[table.name]
    if options.order_by not in allowed:
        raise InvalidArgumentError(
            f"ListOptions.order_by={options.order_by!r} is not one of: {', '.join(allowed)}"
        )
    keys = [table.c[allowed[options.order_by]]]
    if keys[0] is not table.c.id:
        keys.append(table.c.id)  # ties in time, e.g. two runs in one millisecond
    stmt = stmt.order_by(*(k.desc() if options.descending else k.asc() for k in keys))
    if options.limit is not None:
        stmt = stmt.limit(options.limit)
    if options.offset:
        stmt = stmt.offset(options.offset)
    return stmt


def chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    """The distinct ids, sorted, in lists short enough for an ``IN (...)`` on every backend."""
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def fetch(conn: sa.Connection, table: sa.Table, column: sa.Column, ids: Iterable[int], convert: Callable[[Any], T]) -> list[T]:
    """Rows whose ``column`` is in ``ids`` (in chunks), by table id."""
    rows = [row for chunk in chunks(ids) for row in conn.execute(sa.select(table).where(column.in_(chunk)))]
    rows.sort(key=lambda row: row._mapping["id"])
    return [convert(row) for row in rows]


def require_ids(conn: sa.Connection, table: sa.Table, ids: Iterable[int], what: str) -> None:
    """Raise NotFoundError naming the ids that are not in ``table``."""
    wanted = set(ids)
    found: set[int] = set()
    for chunk in chunks(wanted):
        found.update(conn.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalars())
    if wanted - found:
        raise NotFoundError(missing(what, sorted(wanted - found)))


_GONE = (ArtifactState.DELETING.value, ArtifactState.DELETED.value)


def refuse_deleted(conn: sa.Connection, updated: Mapping[int, str], read: Iterable[int]) -> set[int]:
    """Raise ArtifactDeletedError if a write would revive or reference an artifact gc deleted.

    ``updated``: artifact id -> the state a write gives it; ``read``: ids an event will
    name. DELETING and DELETED are final: the files are gone, so a record must not turn
    LIVE again (a cache hit re-recording outputs it read before gc marked them) and no new
    execution may read one. The rows are locked (updated ones for update, read ones
    shared) so that gc, which locks them for update before marking them, either waits
    for this write or is waited for and then seen.

    Returns the ids it found (so that :func:`save` need not look them up again).

    Raises:
        NotFoundError: A ``read`` id does not exist (checked first).
    """
    wanted_update = {i: s for i, s in updated.items() if s not in _GONE}
    wanted_read = set(read) - set(wanted_update)
    gone: list[ArtifactRecord] = []
    found: set[int] = set()
    for ids, shared in ((wanted_update, False), (wanted_read, True)):
        for chunk in chunks(ids):
            stmt = (sa.select(artifacts_t).where(artifacts_t.c.id.in_(chunk)).order_by(artifacts_t.c.id)
                    .with_for_update(read=shared))
            for artifact in map(to_artifact, conn.execute(stmt)):
                assert artifact.id is not None
                found.add(artifact.id)
                if artifact.state.deleted:
                    gone.append(artifact)
    if absent := wanted_read - found:
        raise NotFoundError(missing("artifact", sorted(absent)))
    if gone:
        first = gone[0]
        more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
        raise ArtifactDeletedError(f"artifact {first.id} ({first.type_name} {first.uri}) was {first.deleted_note()}{more}; "
                                   "its files are gone: rerun the node that made it")
    return found


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows and return their new ids, in order."""
    if len(rows) > 1 and conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        stmt = sa.insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(conn.execute(stmt, rows).scalars())
    # a one-row INSERT always reports its primary key
    return [conn.execute(sa.insert(table), row).inserted_primary_key[0] for row in rows]  # type: ignore[index]


def save(conn: sa.Connection, table: sa.Table, records: Sequence[Any], rows: Sequence[dict[str, Any]],
         updates: Sequence[str], *, known: Collection[int] = ()) -> list[int]:
    """Insert the records without an id, update ``updates`` columns of the others; all ids in order.

    ``known``: ids this transaction has already read, so not looked up again.
    """
    existing = [(r.id, row) for r, row in zip(records, rows, strict=True) if r.id is not None]
    if existing:
        require_ids(conn, table, [i for i, _ in existing if i not in known], table.name.removeprefix("jfx_").rstrip("s"))
        stmt = sa.update(table).where(table.c.id == sa.bindparam("record_id"))
        conn.execute(stmt, [{"record_id": i, **{k: row[k] for k in updates}} for i, row in existing])
    new_ids = iter(insert_rows(conn, table, [row for r, row in zip(records, rows, strict=True) if r.id is None]))
    return [r.id if r.id is not None else next(new_ids) for r in records]


def find_context(conn: sa.Connection, type_name: str, name: str) -> ContextRecord | None:
    """The context named (type_name, name), or ``None``."""
    stmt = sa.select(contexts_t).where(contexts_t.c.type_name == type_name, contexts_t.c.name == name)
    row = conn.execute(stmt).first()
    return None if row is None else to_context(row)


def merge_context_properties(conn: sa.Connection, context_id: int, properties: Mapping[str, Any]) -> ContextRecord:
    """Merge ``properties`` into a context's (one locked read-modify-write); a run's columns follow.

    Raises:
        NotFoundError: No context has this id.
    """
    # FOR UPDATE on PostgreSQL/MySQL; SQLite's BEGIN IMMEDIATE already locks.
    row = conn.execute(sa.select(contexts_t).where(contexts_t.c.id == context_id).with_for_update()).first()
    if row is None:
        raise NotFoundError(missing("context", [context_id]))
    record = to_context(row)
    record.properties = {**record.properties, **properties}
    conn.execute(
        sa.update(contexts_t).where(contexts_t.c.id == context_id)
        .values(properties=record.properties, **run_columns(record.type_name, record.properties))
    )
    return record


def split_ids(ids: Sequence[int], by_key: Mapping[str, Sequence[Any]]) -> dict[str, list[int]]:
    """Cut a flat list of ids into the lists of ``by_key`` (same keys, same lengths)."""
    it = iter(ids)
    return {key: [next(it) for _ in values] for key, values in by_key.items()}


def execution_artifacts(
    conn: sa.Connection, execution_id: int
) -> tuple[dict[str, list[ArtifactRecord]], dict[str, list[ArtifactRecord]]]:
    """(inputs by key, outputs by key) of an execution, each list in event index order."""
    stmt = (
        sa.select(artifacts_t, events_t.c.type.label("event_type"), events_t.c.key.label("event_key"))
        .join(events_t, events_t.c.artifact_id == artifacts_t.c.id)
        .where(events_t.c.execution_id == execution_id)
        .order_by(events_t.c.type, events_t.c.key, events_t.c.idx)
    )
    inputs: dict[str, list[ArtifactRecord]] = {}
    outputs: dict[str, list[ArtifactRecord]] = {}
    for row in conn.execute(stmt):
        side = inputs if row._mapping["event_type"] == EventType.INPUT.value else outputs
        side.setdefault(row._mapping["event_key"], []).append(to_artifact(row))
    return inputs, outputs
