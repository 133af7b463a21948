"""The alembic environment of jfx's metadata schema.

jfx runs it programmatically (see ``jfx.metadata._migrate``) and passes a connection
in ``config.attributes["connection"]``; the alembic command line may give a URL as
``sqlalchemy.url`` instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from jfx.errors import InvalidArgumentError
from jfx.metadata._schema import VERSION_TABLE, metadata

_OPTIONS: dict[str, Any] = {"target_metadata": metadata, "version_table": VERSION_TABLE, "compare_type": True}


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Run the migrations offline (SQL script), on a given connection, or on a URL."""
    config = context.config
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise InvalidArgumentError("the metadata migrations need a connection or a sqlalchemy.url option")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


main()
