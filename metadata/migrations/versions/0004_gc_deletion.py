"""What gc deleted, and when: columns for deleted artifacts and runs.

``jfx gc`` marks records deleted instead of removing them, so lineage stays explainable
("artifact 42 was deleted by gc on <date>"). This revision adds to ``jfx_artifacts``
``deleted_time`` and ``delete_reason`` (NULL for a live artifact) and an index on
(``state``, ``id``) that finds the deletions a killed gc left unfinished (state
``DELETING``); and to ``jfx_contexts`` ``run_deleted_time`` (NULL for contexts that are
not deleted runs), which default run lists filter on. Nothing stored needs filling: no
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


def upgrade() -> None:
    op.add_column(_ARTIFACTS, sa.Column("deleted_time", sa.BigInteger, nullable=True))
    op.add_column(_ARTIFACTS, sa.Column("delete_reason", sa.String(255), nullable=True))
    op.add_column(_CONTEXTS, sa.Column("run_deleted_time", sa.BigInteger, nullable=True))
    op.create_index(_STATE_INDEX[0], _ARTIFACTS, _STATE_INDEX[1])


def downgrade() -> None:
    op.drop_index(_STATE_INDEX[0], table_name=_ARTIFACTS)
    with op.batch_alter_table(_CONTEXTS) as batch:
        batch.drop_column("run_deleted_time")
    with op.batch_alter_table(_ARTIFACTS) as batch:
        batch.drop_column("delete_reason")
        batch.drop_column("deleted_time")
