"""A run's state and times as indexed columns of jfx_contexts.

A run keeps its state and start/end times in its context's properties (JSON), where
filtering runs by state had to read every run's document. This revision adds
``run_state``, ``run_start_time`` and ``run_end_time`` (NULL for contexts that are not
runs), fills them for the runs already stored from their properties, and indexes runs
by state, newest first (of all pipelines, and of one). The properties keep the values
too, so a store read by an older jfx still shows them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-15
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen history, spelled out rather than read from _schema/_rows.
_TABLE = "jfx_contexts"
_STATES = ("RUNNING", "COMPLETE", "FAILED", "CANCELLED", "ABANDONED")
_INDEXES = (
    ("ix_jfx_contexts_type_name_run_state", ["type_name", "run_state", "create_time", "id"]),
    ("ix_jfx_contexts_parent_id_run_state", ["parent_id", "type_name", "run_state", "create_time"]),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BATCH = 2000


def _millis(value: str | None) -> int | None:
    """Milliseconds since the epoch of an ISO time as runs store it; ``None`` if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def upgrade() -> None:
    op.add_column(_TABLE, sa.Column("run_state", sa.String(16), nullable=True))
    op.add_column(_TABLE, sa.Column("run_start_time", sa.BigInteger, nullable=True))
    op.add_column(_TABLE, sa.Column("run_end_time", sa.BigInteger, nullable=True))

    ctx = sa.table(_TABLE, sa.column("id", sa.Integer), sa.column("type_name", sa.String),
                   sa.column("properties", sa.JSON), sa.column("run_state", sa.String),
                   sa.column("run_start_time", sa.BigInteger), sa.column("run_end_time", sa.BigInteger))
    props = ctx.c.properties
    conn = op.get_bind()
    last = 0
    update = (sa.update(ctx).where(ctx.c.id == sa.bindparam("ctx_id"))
              .values(run_state=sa.bindparam("state"), run_start_time=sa.bindparam("start"),
                      run_end_time=sa.bindparam("end")))
    while True:  # in id order, a batch at a time: only the three fields are read, never the IR
        batch = conn.execute(
            sa.select(ctx.c.id, props["state"].as_string(), props["start_time"].as_string(),
                      props["end_time"].as_string())
            .where(ctx.c.type_name == "pipeline_run", ctx.c.id > last).order_by(ctx.c.id).limit(_BATCH)
        ).all()
        if not batch:
            break
        conn.execute(update, [{"ctx_id": i, "state": state if state in _STATES else "RUNNING",
                               "start": _millis(start), "end": _millis(end)} for i, state, start, end in batch])
        last = batch[-1][0]

    for name, columns in _INDEXES:
        op.create_index(name, _TABLE, columns)


def downgrade() -> None:
    for name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("run_end_time")
        batch.drop_column("run_start_time")
        batch.drop_column("run_state")
