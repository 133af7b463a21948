"""What a run list shows of a run besides its state and times, as a small column of jfx_contexts.

The run lists (the UI's ``/api/runs``, ``jfx runs list``) show each run's parameters, runner
and attempts, which live in its context's properties beside the run's whole IR: reading
them made the database parse every listed run's document (PostgreSQL parses a ``json``
value for each field taken from it). This revision adds ``run_summary``, a JSON object of
those three properties as they are stored (``{"parameters": ..., "runner": ...,
"attempts": ...}``, in that order; NULL for contexts that are not runs), and fills it for
the runs already stored, a batch at a time. It is ``json`` on PostgreSQL, not ``jsonb``,
which would reorder the parameters' keys. The properties keep the values too, so a store
read by an older jfx still shows them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen history, spelled out rather than read from _schema/_rows.
_TABLE = "jfx_contexts"
_KEYS = ("parameters", "runner", "attempts")
_BATCH = 2000


def upgrade() -> None:
    op.add_column(_TABLE, sa.Column("run_summary", sa.JSON(none_as_null=True), nullable=True))

    ctx = sa.table(_TABLE, sa.column("id", sa.Integer), sa.column("type_name", sa.String),
                   sa.column("properties", sa.JSON), sa.column("run_summary", sa.JSON(none_as_null=True)))
    props = ctx.c.properties
    conn = op.get_bind()
    update = sa.update(ctx).where(ctx.c.id == sa.bindparam("ctx_id")).values(run_summary=sa.bindparam("summary"))
    last = 0
    while True:  # in id order, a batch at a time: only the three fields are read, never the IR
        batch = conn.execute(
            sa.select(ctx.c.id, *(props[key] for key in _KEYS))
            .where(ctx.c.type_name == "pipeline_run", ctx.c.id > last).order_by(ctx.c.id).limit(_BATCH)
        ).all()
        if not batch:
            break
        conn.execute(update, [{"ctx_id": row[0], "summary": dict(zip(_KEYS, row[1:], strict=True))} for row in batch])
        last = batch[-1][0]


def downgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("run_summary")
