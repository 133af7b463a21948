"""What gc deleted, and when: columns for deleted artifacts and runs.

``jfx gc`` marks records deleted instead of removing them, so lineage stays explainable
("artifact 42 was deleted by gc on <date>"). This revision adds to ``jfx_artifacts``
``deleted_time`` and ``delete_reason`` (NULL for a live artifact) and an index on
(``state``, ``id``) that finds the deletions a killed gc left unfinished (state
``DELETING``); and to ``jfx_contexts`` ``run_deleted_time`` (NULL for contexts that are
not deleted runs), which default run lists filter on, with indexes that list and count
the runs left newest first (of all pipelines, and of one); 0003's run-state indexes
are remade with ``run_deleted_time`` after the state. Nothing stored needs filling: no
record was deleted before this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen history, spelled out rather than read from _schema.
_ARTIFACTS, _CONTEXTS = "jfx_artifacts", "jfx_contexts"
_STATE_INDEX = ("ix_jfx_artifacts_state_id", ["state", "id"])
_RUN_INDEXES = (
    ("ix_jfx_contexts_type_name_deleted", ["type_name", "run_deleted_time", "create_time", "id"]),
    ("ix_jfx_contexts_parent_id_deleted", ["parent_id", "type_name", "run_deleted_time", "create_time"]),
)
# 0003's run-state indexes, remade with run_deleted_time after the state (state filters stay in the index)
_STATE_RUN_INDEXES = (
    ("ix_jfx_contexts_type_name_run_state", ["type_name", "run_state", "create_time", "id"],
     ["type_name", "run_state", "run_deleted_time", "create_time", "id"]),
    ("ix_jfx_contexts_parent_id_run_state", ["parent_id", "type_name", "run_state", "create_time"],
     ["parent_id", "type_name", "run_state", "run_deleted_time", "create_time"]),
)


def upgrade() -> None:
    op.add_column(_ARTIFACTS, sa.Column("deleted_time", sa.BigInteger, nullable=True))
    op.add_column(_ARTIFACTS, sa.Column("delete_reason", sa.String(255), nullable=True))
    op.add_column(_CONTEXTS, sa.Column("run_deleted_time", sa.BigInteger, nullable=True))
    op.create_index(_STATE_INDEX[0], _ARTIFACTS, _STATE_INDEX[1])
    for name, columns in _RUN_INDEXES:
        op.create_index(name, _CONTEXTS, columns)
    for name, _, columns in _STATE_RUN_INDEXES:
        op.drop_index(name, table_name=_CONTEXTS)
        op.create_index(name, _CONTEXTS, columns)


def downgrade() -> None:
    for name, columns, _ in reversed(_STATE_RUN_INDEXES):
        op.drop_index(name, table_name=_CONTEXTS)
        op.create_index(name, _CONTEXTS, columns)
    for name, _ in reversed(_RUN_INDEXES):
        op.drop_index(name, table_name=_CONTEXTS)
    op.drop_index(_STATE_INDEX[0], table_name=_ARTIFACTS)
    with op.batch_alter_table(_CONTEXTS) as batch:
        batch.drop_column("run_deleted_time")
    with op.batch_alter_table(_ARTIFACTS) as batch:
        batch.drop_column("delete_reason")
        batch.drop_column("deleted_time")
