"""Lineage walks as recursive SQL (one ``WITH RECURSIVE`` query per direction)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from jfx.metadata._backend import allow_deep_recursion
from jfx.metadata._records import EventType
from jfx.metadata._schema import artifacts, events

__all__ = ["DIRECTIONS", "walk"]

DIRECTIONS = ("upstream", "downstream", "both")


def walk(conn: sa.Connection, artifact_id: int, upstream: bool, depth: int | None) -> tuple[set[int], set[int]]:
    """The artifact and execution ids reachable from ``artifact_id`` in one direction.

    One step goes artifact → execution → artifact: upstream from an artifact to the
    execution that produced it (OUTPUT event) and on to that execution's inputs;
    downstream to the executions that consumed it (INPUT event) and on to their outputs.

    Args:
        conn: A connection in a transaction.
        artifact_id: Where the walk starts (an existing artifact).
        upstream: The direction.
        depth: At most this many execution steps; ``None`` for no limit.

    Returns:
        (artifact ids, execution ids), the start artifact included.
    """
    via, to = (EventType.OUTPUT, EventType.INPUT) if upstream else (EventType.INPUT, EventType.OUTPUT)
    bounded = depth is not None
    # The anchor reads the artifacts table so the CTE's column types come from it.
    anchor_columns = [artifacts.c.id.label("artifact_id")]
    if bounded:
        anchor_columns.append(sa.literal_column("0", sa.Integer).label("depth"))
    cte = sa.select(*anchor_columns).where(artifacts.c.id == artifact_id).cte("walk", recursive=True)

    prev, hop, step = cte.alias("w"), events.alias("hop"), events.alias("step")
    columns: list[sa.ColumnElement[Any]] = [step.c.artifact_id]
    if bounded:
        columns.append(prev.c.depth + 1)
    recursive = sa.select(*columns).select_from(
        prev.join(hop, (hop.c.artifact_id == prev.c.artifact_id) & (hop.c.type == via.value)).join(
            step, (step.c.execution_id == hop.c.execution_id) & (step.c.type == to.value)
        )
    )
    if bounded:
        recursive = recursive.where(prev.c.depth < depth)
    # UNION (not UNION ALL) ends the walk on already-visited rows: cycles terminate and
    # diamonds are not expanded once per path.
    cte = cte.union(recursive)

    # The executions one step away from each visited artifact come out of the same query.
    hop = events.alias("edge")
    on = (hop.c.artifact_id == cte.c.artifact_id) & (hop.c.type == via.value)
    if bounded:
        on &= cte.c.depth < depth
    query = sa.select(cte.c.artifact_id, hop.c.execution_id).select_from(cte.outerjoin(hop, on)).distinct()
    allow_deep_recursion(conn)
    artifact_ids: set[int] = set()
    execution_ids: set[int] = set()
    for a_id, e_id in conn.execute(query):
        artifact_ids.add(a_id)
        if e_id is not None:
            execution_ids.add(e_id)
    return artifact_ids, execution_ids
