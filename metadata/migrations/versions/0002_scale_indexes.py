"""Indexes for stores with a long history: each hot query reads only the rows it returns.

The reaper's RUNNING (and recent FAILED) executions, a node's newest executions (the
cache's miss reason), runs newest first by type (run lists, the reaper, the UI) and
artifacts by name (the UI) are found through these indexes instead of a scan of every
execution or run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (name, table, columns): frozen history, spelled out rather than read from _schema.
_INDEXES = (
    ("ix_jfx_executions_state_id", "jfx_executions", ["state", "id"]),
    ("ix_jfx_executions_node_id_id", "jfx_executions", ["node_id", "id"]),
    ("ix_jfx_contexts_type_name_create_time", "jfx_contexts", ["type_name", "create_time", "id"]),
    ("ix_jfx_contexts_type_name_id", "jfx_contexts", ["type_name", "id"]),
    ("ix_jfx_contexts_parent_id_type_name", "jfx_contexts", ["parent_id", "type_name", "create_time"]),
    ("ix_jfx_artifacts_name_id", "jfx_artifacts", ["name", "id"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
