"""Backend differences: transient-error classification, retries, SQLite locking."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa
from jfx_dbs import SERVER_BACKENDS, fresh_database
from jfx_requires import importorskip

from jfx.errors import AlreadyExistsError, MetadataError, NotFoundError
from jfx.metadata import ArtifactRecord, MetadataStore
from jfx.metadata._backend import integrity_kind, is_transient


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _wrap(cls, orig):
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "backend, orig, transient",
    [
        ("sqlite", sqlite3.OperationalError("database is locked"), True),
        ("sqlite", sqlite3.OperationalError("no such table: x"), False),
        ("postgresql", _PgError("40P01"), True),
        ("postgresql", _PgError("40001"), True),
        ("postgresql", _PgError("42P01"), False),
        ("mysql", Exception(1213, "Deadlock found"), True),
        ("mysql", Exception(1205, "Lock wait timeout"), True),
        ("mysql", Exception(1146, "Table doesn't exist"), False),
    ],
)
def test_transient_errors_are_classified(backend, orig, transient):
    assert is_transient(backend, _wrap(sa.exc.OperationalError, orig)) is transient


@pytest.mark.parametrize(
    "backend, orig, kind",
    [
        ("sqlite", sqlite3.IntegrityError("UNIQUE constraint failed: t.x"), "unique"),
        ("sqlite", sqlite3.IntegrityError("FOREIGN KEY constraint failed"), "foreign_key"),
        ("postgresql", _PgError("23505"), "unique"),
        ("postgresql", _PgError("23503"), "foreign_key"),
        ("mysql", Exception(1062, "Duplicate entry"), "unique"),
        ("mysql", Exception(1452, "Cannot add or update a child row"), "foreign_key"),
        ("mysql", Exception(1048, "Column cannot be null"), "other"),
    ],
)
def test_integrity_errors_are_classified(backend, orig, kind):
    assert integrity_kind(backend, _wrap(sa.exc.IntegrityError, orig)) == kind


def test_mysql_errors_are_classified_by_number_not_by_their_generic_sqlstate():
    # PyMySQL 1.2+ sets sqlstate too, and MySQL's is "23000" for every integrity error
    # and "HY000" / "40001" for lock problems: the error number must decide.
    pymysql = importorskip("pymysql")
    duplicate = pymysql.err.IntegrityError(1062, "Duplicate entry 'pipeline-shared'", sqlstate="23000")
    missing_parent = pymysql.err.IntegrityError(1452, "Cannot add or update a child row", sqlstate="23000")
    assert integrity_kind("mysql", _wrap(sa.exc.IntegrityError, duplicate)) == "unique"
    assert integrity_kind("mysql", _wrap(sa.exc.IntegrityError, missing_parent)) == "foreign_key"
    deadlock = pymysql.err.OperationalError(1213, "Deadlock found", sqlstate="40001")
    lock_wait = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded", sqlstate="HY000")
    assert is_transient("mysql", _wrap(sa.exc.OperationalError, deadlock))
    assert is_transient("mysql", _wrap(sa.exc.OperationalError, lock_wait))


@pytest.fixture
def sqlite_store(tmp_path):
    with MetadataStore(f"sqlite:///{tmp_path / 'm.sqlite'}") as store:
        yield store


def test_transient_errors_are_retried_then_translated(sqlite_store, monkeypatch):
    monkeypatch.setattr("jfx.metadata._store._FIRST_DELAY_S", 0.001)
    calls = []

    def flaky(conn):
        calls.append(1)
        if len(calls) < 3:
            raise _wrap(sa.exc.OperationalError, sqlite3.OperationalError("database is locked"))
        return "done"

    assert sqlite_store._tx(flaky, write=True) == "done" and len(calls) == 3

    def always_locked(conn):
        raise _wrap(sa.exc.OperationalError, sqlite3.OperationalError("database is locked"))

    with pytest.raises(MetadataError, match="stayed locked") as info:
        sqlite_store._tx(always_locked, write=True)
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)

    calls.clear()

    def broken(conn):
        calls.append(1)
        raise _wrap(sa.exc.OperationalError, sqlite3.OperationalError("disk I/O error"))

    with pytest.raises(MetadataError, match="disk I/O error"):
        sqlite_store._tx(broken, write=False)
    assert len(calls) == 1  # not retried


def test_integrity_errors_become_jfx_errors(sqlite_store):
    def duplicate(conn):
        conn.exec_driver_sql(
            "INSERT INTO jfx_contexts (type_name, name, properties, create_time) VALUES ('t', 'n', '{}', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO jfx_contexts (type_name, name, properties, create_time) VALUES ('t', 'n', '{}', 0)"
        )

    with pytest.raises(AlreadyExistsError):
        sqlite_store._tx(duplicate, write=True)

    def dangling(conn):
        conn.exec_driver_sql("INSERT INTO jfx_associations (context_id, execution_id) VALUES (41, 42)")

    with pytest.raises(NotFoundError):
        sqlite_store._tx(dangling, write=True)


def test_sqlite_writer_waits_for_another_writer_instead_of_failing(tmp_path):
    path = tmp_path / "m.sqlite"
    with MetadataStore(f"sqlite:///{path}") as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        other.execute("INSERT INTO jfx_contexts (type_name, name, properties, create_time) VALUES ('t', 'n', '{}', 0)")
        release = threading.Timer(0.5, other.execute, args=("COMMIT",))
        release.start()
        started = time.monotonic()
        [art_id] = store.put_artifacts([ArtifactRecord("X", "/x")])
        assert time.monotonic() - started >= 0.3  # waited on the lock, then wrote
        release.join()
        other.close()
        assert store.get_artifact(art_id).uri == "/x"
        assert store.get_context_by_name("t", "n") is not None


def test_sqlite_reader_is_not_blocked_by_a_writer(tmp_path):
    path = tmp_path / "m.sqlite"
    with MetadataStore(f"sqlite:///{path}") as store:
        store.put_artifacts([ArtifactRecord("X", "/x")])
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            assert len(store.get_artifacts()) == 1  # WAL: readers proceed
            assert time.monotonic() - started < 0.3
        finally:
            other.execute("ROLLBACK")
            other.close()


def _kill_store_connections(url: str) -> int:
    """Close, from the server's side, every other connection to this store's database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                killed = conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()").all()
                return len(killed)
            ids = conn.exec_driver_sql("SELECT id FROM information_schema.processlist "
                                       "WHERE db = DATABASE() AND id <> CONNECTION_ID()").scalars().all()
            for connection_id in ids:
                conn.exec_driver_sql(f"KILL {int(connection_id)}")
            return len(ids)
    finally:
        engine.dispose()


@pytest.fixture(params=SERVER_BACKENDS)
def server_store_url(request, tmp_path):
    yield from fresh_database(request.param, tmp_path)


def test_a_pooled_connection_the_server_closed_is_replaced(server_store_url, monkeypatch):
    """A connection the server closed while pooled: one used a moment ago fails its first
    statement, and the transaction runs once more on a new connection; one idle longer than
    PING_IDLE_S is found by a ping before it is used. Either way the caller sees no error,
    and a write is recorded once."""
    url = server_store_url
    with MetadataStore(url) as store:
        [first] = store.put_artifacts([ArtifactRecord("Examples", "/data/a")])
        assert _kill_store_connections(url) >= 1
        calls = []

        def write(conn):
            calls.append(1)
            return conn.execute(sa.text("UPDATE jfx_artifacts SET name = 'renamed' WHERE id = :id"),
                                {"id": first}).rowcount

        assert store._tx(write, write=True) == 1
        assert len(calls) == 2  # the dead connection's attempt, then a new one's
        assert store.get_artifact(first).name == "renamed"

        monkeypatch.setattr("jfx.metadata._backend.PING_IDLE_S", 0.0)
        assert _kill_store_connections(url) >= 1
        calls.clear()
        assert store._tx(lambda conn: calls.append(1) or conn.execute(sa.text("SELECT 1")).scalar(),
                         write=False) == 1
        assert calls == [1]  # the ping found it dead before the read ran: no second attempt
        store.put_artifacts([ArtifactRecord("Examples", "/data/b")])
        assert [a.uri for a in store.get_artifacts()] == ["/data/a", "/data/b"]

