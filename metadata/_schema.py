"""The tables of the metadata store, as SQLAlchemy Core objects.

The database schema itself is created only by the alembic migrations in
``jfx/metadata/migrations``; ``tests/metadata/test_migrations.py`` checks that the
migrated schema equals these tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = [
    "HEAD_REVISION",
    "VERSION_TABLE",
    "metadata",
    "artifacts",
    "executions",
    "contexts",
    "events",
    "attributions",
    "associations",
]

# The newest migration in migrations/versions; opening a store compares against it
# without loading alembic (a test pins it to alembic's own head).
HEAD_REVISION = "0006"
VERSION_TABLE = "jfx_alembic_version"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class UtcMillis(sa.types.TypeDecorator):
    """An aware UTC ``datetime`` stored as integer milliseconds since the epoch.

    One integer column behaves the same on SQLite, PostgreSQL and MySQL (no time
    zone or fractional-second differences between the backends).
    """

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: expected a timezone-aware datetime")
        return (value - _EPOCH) // _MS

    def process_result_value(self, value, dialect):
        return None if value is None else _EPOCH + int(value) * _MS


# Long free text (errors, tracebacks): TEXT is only 64 KiB on MySQL.
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

# utf8mb4_bin: case-sensitive unique names on MySQL, as on SQLite and PostgreSQL.
_TABLE_ARGS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

metadata = sa.MetaData()

artifacts = sa.Table(
    "jfx_artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("uri", sa.String(2048), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(255), nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("create_time", UtcMillis, nullable=False),
    sa.Column("update_time", UtcMillis, nullable=False),
    # when and why gc deleted it (state DELETING, then DELETED); NULL for a live artifact
    sa.Column("deleted_time", UtcMillis, nullable=True),
    sa.Column("delete_reason", sa.String(255), nullable=True),
    sa.Index("ix_jfx_artifacts_type_name", "type_name"),
    sa.Index("ix_jfx_artifacts_uri", "uri", mysql_length=255),
    sa.Index("ix_jfx_artifacts_create_time", "create_time"),
    sa.Index("ix_jfx_artifacts_name_id", "name", "id"),
    # gc's unfinished deletions (state DELETING)
    sa.Index("ix_jfx_artifacts_state_id", "state", "id"),
    **_TABLE_ARGS,
)

executions = sa.Table(
    "jfx_executions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("node_id", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=False),
    sa.Column("error", LongText, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("start_time", UtcMillis, nullable=False),
    sa.Column("end_time", UtcMillis, nullable=True),
    sa.Index("ix_jfx_executions_type_name", "type_name"),
    sa.Index("ix_jfx_executions_node_id_state", "node_id", "state"),
    sa.Index("ix_jfx_executions_cache_key", "cache_key"),
    sa.Index("ix_jfx_executions_start_time", "start_time"),
    # the reaper's RUNNING executions, newest FAILED ones; a node's newest executions
    sa.Index("ix_jfx_executions_state_id", "state", "id"),
    sa.Index("ix_jfx_executions_node_id_id", "node_id", "id"),
    **_TABLE_ARGS,
)

contexts = sa.Table(
    "jfx_contexts",
    metadata,
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
    sa.Column("create_time", UtcMillis, nullable=False),
    # a run's state and times, copied from its properties (NULL for other contexts)
    sa.Column("run_state", sa.String(16), nullable=True),
    sa.Column("run_start_time", UtcMillis, nullable=True),
    sa.Column("run_end_time", UtcMillis, nullable=True),
    # when gc deleted the run (NULL: not deleted); default run lists leave deleted runs out
    sa.Column("run_deleted_time", UtcMillis, nullable=True),
    # what else a run list shows (parameters, runner, attempts), copied from its properties so
    # that a list never reads the IR there (migration 0005); NULL for other contexts.
    # json, not PostgreSQL's jsonb, which would reorder the parameters' keys.
    sa.Column("run_summary", sa.JSON(none_as_null=True), nullable=True),
    sa.UniqueConstraint("type_name", "name", name="uq_jfx_contexts_type_name_name"),
    sa.Index("ix_jfx_contexts_parent_id", "parent_id"),
    sa.Index("ix_jfx_contexts_create_time", "create_time"),
    # runs newest first (by time or id); a pipeline's runs, counted from the index alone
    sa.Index("ix_jfx_contexts_type_name_create_time", "type_name", "create_time", "id"),
    sa.Index("ix_jfx_contexts_type_name_id", "type_name", "id"),
    sa.Index("ix_jfx_contexts_parent_id_type_name", "parent_id", "type_name", "create_time"),
    # runs of one state (not deleted by gc) newest first, of all pipelines or of one
    sa.Index("ix_jfx_contexts_type_name_run_state", "type_name", "run_state", "run_deleted_time", "create_time", "id"),
    sa.Index("ix_jfx_contexts_parent_id_run_state", "parent_id", "type_name", "run_state", "run_deleted_time",
             "create_time"),
    # runs not deleted by gc newest first, of all pipelines or of one (migration 0004); with
    # the name, so that a run-id search reads this index alone (migration 0006)
    sa.Index("ix_jfx_contexts_type_name_deleted", "type_name", "run_deleted_time", "create_time", "id", "name"),
    sa.Index("ix_jfx_contexts_parent_id_deleted", "parent_id", "type_name", "run_deleted_time", "create_time"),
    **_TABLE_ARGS,
)

events = sa.Table(
    "jfx_events",
    metadata,
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
    sa.Column("time", UtcMillis, nullable=False),
    # Makes re-recording the same event a no-op (see _backend.insert_ignore).
    sa.UniqueConstraint(
        "execution_id", "type", "key", "idx", "artifact_id", name="uq_jfx_events_edge"
    ),
    sa.Index("ix_jfx_events_artifact_id_type", "artifact_id", "type"),
    **_TABLE_ARGS,
)

attributions = sa.Table(
    "jfx_attributions",
    metadata,
    sa.Column(
        "context_id",
        sa.Integer,
        sa.ForeignKey("jfx_contexts.id", name="fk_jfx_attributions_context_id"),
        primary_key=True,
    ),
    sa.Column(
        "artifact_id",
        sa.Integer,
        sa.ForeignKey("jfx_artifacts.id", name="fk_jfx_attributions_artifact_id"),
        primary_key=True,
    ),
    sa.Index("ix_jfx_attributions_artifact_id", "artifact_id"),
    **_TABLE_ARGS,
)

associations = sa.Table(
    "jfx_associations",
    metadata,
    sa.Column(
        "context_id",
        sa.Integer,
        sa.ForeignKey("jfx_contexts.id", name="fk_jfx_associations_context_id"),
        primary_key=True,
    ),
    sa.Column(
        "execution_id",
        sa.Integer,
        sa.ForeignKey("jfx_executions.id", name="fk_jfx_associations_execution_id"),
        primary_key=True,
    ),
    sa.Index("ix_jfx_associations_execution_id", "execution_id"),
    **_TABLE_ARGS,
)
