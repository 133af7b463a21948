"""A run-id search reads one index: the runs-newest-first index also holds each run's name.

A ``q=`` search of the run list matches a substring of run ids, which no index can look
up: the search walks the runs not deleted by gc newest first and tests each name. With
the name in that walk's index (``type_name``, ``run_deleted_time``, ``create_time``,
``id``, now ``name``), the walk reads only the index, not each run's row, whose
properties hold the run's whole IR. The index is remade with the name at its end, so the
lists it served keep their order and prefix.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen history, spelled out rather than read from _schema.
_TABLE = "jfx_contexts"
_INDEX = "ix_jfx_contexts_type_name_deleted"
_BEFORE = ["type_name", "run_deleted_time", "create_time", "id"]
_AFTER = [*_BEFORE, "name"]


def upgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, _AFTER)


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, _BEFORE)
