"""The initial metadata schema: artifacts, executions, contexts, events, attributions, associations.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Migrations are frozen history: column types are spelled out here, not imported
# from jfx.metadata._schema (which describes the schema at head).
_TABLE_ARGS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
_MILLIS = sa.BigInteger()
_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "jfx_artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("create_time", _MILLIS, nullable=False),
        sa.Column("update_time", _MILLIS, nullable=False),
        **_TABLE_ARGS,
    )
    op.create_index("ix_jfx_artifacts_type_name", "jfx_artifacts", ["type_name"])
    op.create_index("ix_jfx_artifacts_uri", "jfx_artifacts", ["uri"], mysql_length=255)
    op.create_index("ix_jfx_artifacts_create_time", "jfx_artifacts", ["create_time"])

    op.create_table(
        "jfx_executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("error", _LONG_TEXT, nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("start_time", _MILLIS, nullable=False),
        sa.Column("end_time", _MILLIS, nullable=True),
        **_TABLE_ARGS,
    )
    op.create_index("ix_jfx_executions_type_name", "jfx_executions", ["type_name"])
    op.create_index("ix_jfx_executions_node_id_state", "jfx_executions", ["node_id", "state"])
    op.create_index("ix_jfx_executions_cache_key", "jfx_executions", ["cache_key"])
    op.create_index("ix_jfx_executions_start_time", "jfx_executions", ["start_time"])

    op.create_table(
        "jfx_contexts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "parent_id",
            sa.Integer,
            sa.ForeignKey("jfx_contexts.id", name="fk_jfx_contexts_parent_id"),
            nullable=True,
        ),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("create_time", _MILLIS, nullable=False),
        sa.UniqueConstraint("type_name", "name", name="uq_jfx_contexts_type_name_name"),
        **_TABLE_ARGS,
    )
    op.create_index("ix_jfx_contexts_parent_id", "jfx_contexts", ["parent_id"])
    op.create_index("ix_jfx_contexts_create_time", "jfx_contexts", ["create_time"])

    op.create_table(
        "jfx_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "artifact_id",
            sa.Integer,
            sa.ForeignKey("jfx_artifacts.id", name="fk_jfx_events_artifact_id"),
            nullable=False,
        ),
        sa.Column(
            "execution_id",
            sa.Integer,
            sa.ForeignKey("jfx_executions.id", name="fk_jfx_events_execution_id"),
            nullable=False,
        ),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("time", _MILLIS, nullable=False),
        sa.UniqueConstraint(
            "execution_id", "type", "key", "idx", "artifact_id", name="uq_jfx_events_edge"
        ),
        **_TABLE_ARGS,
    )
    op.create_index("ix_jfx_events_artifact_id_type", "jfx_events", ["artifact_id", "type"])

    for name, other, other_table in (
        ("jfx_attributions", "artifact_id", "jfx_artifacts"),
        ("jfx_associations", "execution_id", "jfx_executions"),
    ):
        op.create_table(
            name,
            sa.Column(
                "context_id",
                sa.Integer,
                sa.ForeignKey("jfx_contexts.id", name=f"fk_{name}_context_id"),
                primary_key=True,
            ),
            sa.Column(
                other,
                sa.Integer,
                sa.ForeignKey(f"{other_table}.id", name=f"fk_{name}_{other}"),
                primary_key=True,
            ),
            **_TABLE_ARGS,
        )
        op.create_index(f"ix_{name}_{other}", name, [other])


def downgrade() -> None:
    for table in (
        "jfx_associations",
        "jfx_attributions",
        "jfx_events",
        "jfx_contexts",
        "jfx_executions",
        "jfx_artifacts",
    ):
        op.drop_table(table)
