"""Schema creation and upgrades, by the alembic migrations in ``migrations/``.

Opening a store at head costs one query; alembic is imported only when the schema
must change.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from jfx.errors import MetadataError
from jfx.metadata._backend import migration_lock
from jfx.metadata._schema import HEAD_REVISION, VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "current_revision", "needs_upgrade", "upgrade", "alembic_config"]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")


def current_revision(conn: sa.Connection) -> str | None:
    """The schema revision of the database, or ``None`` when it has no jfx schema yet."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def needs_upgrade(engine: sa.Engine) -> bool:
    """Whether the database is not at :data:`HEAD_REVISION` (one quick query)."""
    with engine.connect() as conn:
        try:
            revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        except sa.exc.DBAPIError:
            return True  # no version table yet: a fresh database
        return revision != HEAD_REVISION


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """An alembic ``Config`` for jfx's migrations, without an alembic.ini.

    Args:
        connection: Run the migrations on this connection, in its transaction.
        url: Else connect to this URL (used by the alembic command line).

    Example:
        >>> from alembic import command
        >>> command.upgrade(alembic_config(url="sqlite:////tmp/m.sqlite"), "head")  # doctest: +SKIP
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(backend: str, conn: sa.Connection, revision: str = "head") -> None:
    """Upgrade the schema on ``conn`` (inside its write transaction), holding the migration lock.

    Safe when many processes open a fresh database at once: the first one migrates,
    the others wait on the lock and then find the schema at head.
    """
    from alembic import command
    from alembic.util import CommandError

    with migration_lock(backend, conn):
        try:
            command.upgrade(alembic_config(conn), revision)
        except CommandError as err:
            raise MetadataError(
                f"cannot upgrade the metadata schema to {revision!r}: {err}. A database written "
                "by a newer jfx needs that jfx version (or newer) to open it."
            ) from err
