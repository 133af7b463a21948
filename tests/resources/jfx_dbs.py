"""Fresh databases on each metadata backend, for tests (SQLite, PostgreSQL, MariaDB).

A server that is not reachable skips its tests, except under ``CI=true``, where it
fails them: CI must prove all three backends.
"""

from __future__ import annotations

import uuid

import pytest
from jfx_requires import importorskip, unavailable

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/{db}"
MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/{db}"

SERVER_BACKENDS = [
    pytest.param("postgresql", marks=pytest.mark.db),
    pytest.param("mysql", marks=pytest.mark.db),
]
BACKENDS = ["sqlite", *SERVER_BACKENDS]


def _unavailable(message: str) -> None:
    """Skip, except under CI where a missing database server is a failure."""
    unavailable(message)


def _fresh_name() -> str:
    return f"jfx_t_{uuid.uuid4().hex[:16]}"


def _postgres_database():
    psycopg = importorskip("psycopg", hint="pip install 'psycopg[binary]'")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        _unavailable(f"PostgreSQL is not reachable at {PG_ADMIN}: {err}")
    name = _fresh_name()
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield PG_URL.format(db=name)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _mysql_database():
    pymysql = importorskip("pymysql", hint="pip install PyMySQL")
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as err:
        _unavailable(f"MariaDB/MySQL is not reachable at 127.0.0.1:3306: {err}")
    name = _fresh_name()
    with admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        try:
            yield MYSQL_URL.format(db=name)
        finally:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")


def _fresh_database(backend: str, directory):
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'db' / 'metadata.sqlite'}"
    elif backend == "postgresql":
        yield from _postgres_database()
    else:
        yield from _mysql_database()


def fresh_database(backend: str, directory):
    """Yield the URL of a new, empty database on ``backend``; drop it afterwards."""
    yield from _fresh_database(backend, directory)
