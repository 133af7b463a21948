"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, in one place."""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from typing import Any
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from jfx.errors import InvalidArgumentError, MetadataError

__all__ = [
    "WRITE_OPTION",
    "normalize_url",
    "shown_url",
    "mask_secrets",
    "describe_db_error",
    "opening",
    "backend_of",
    "create_engine",
    "insert_ignore",
    "is_transient",
    "integrity_kind",
    "migration_lock",
    "allow_deep_recursion",
]

# Connection execution option: the transaction will write (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "jfx_write"
BUSY_TIMEOUT_S = 60.0

_BACKENDS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
# Plain schemes get the driver jfx depends on.
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_URL_HELP = (
    "expected e.g. 'sqlite:////abs/path/metadata.sqlite', "
    "'postgresql+psycopg://user:pass@host:5432/db' or 'mysql+pymysql://user:pass@host:3306/db'"
)


def normalize_url(raw: str) -> sa.URL:
    """Parse a store URL, adding the default driver to plain ``postgresql://`` / ``mysql://``.

    Raises:
        InvalidArgumentError: Not a URL, or not one of the supported backends.
    """
    try:
        url = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError) as err:  # ValueError: a port that is not a number
        why = f" ({err})" if isinstance(err, ValueError) else ""
        raise InvalidArgumentError(f"metadata URL {mask_secrets(raw)!r} is not a database URL{why}; {_URL_HELP}") from err
    url = url.set(drivername=_DEFAULT_DRIVERS.get(url.drivername, url.drivername))
    if url.get_backend_name() not in _BACKENDS:
        raise InvalidArgumentError(
            f"metadata URL {url.render_as_string()!r}: backend {url.get_backend_name()!r} "
            f"is not supported; {_URL_HELP}"
        )
    return url


def shown_url(url: sa.URL) -> str:
    """The URL as messages show it: the password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


# A password inside a URL (scheme://user:PASSWORD@host) or a libpq conninfo (password=...).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s;,)]+)", re.IGNORECASE)
# A password shorter than this is masked only where it stands as a URL's or conninfo's
# password: replacing every bare occurrence of, say, "pw" would garble the message.
_MIN_BARE_SECRET = 4


def mask_secrets(text: str, url: sa.URL | None = None) -> str:
    """``text`` with every password of a URL or conninfo in it, and ``url``'s password, as ``***``.

    Drivers echo their connection string in some errors, so nothing a database says
    reaches a message before it passes through here.

    Example:
        >>> mask_secrets("cannot reach postgresql://u:s3cret@db/x (password=s3cret)")
        'cannot reach postgresql://u:***@db/x (password=***)'
    """
    text = _CONNINFO_PASSWORD.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>***", text))
    password = url.password if url is not None else None
    if password and len(str(password)) >= _MIN_BARE_SECRET:
        from urllib.parse import quote, quote_plus

        for form in {str(password), quote(str(password), safe=""), quote_plus(str(password))}:
            text = text.replace(form, "***")
    return text


def describe_db_error(err: BaseException, url: sa.URL) -> str:
    """One line saying what the database driver reported, secrets masked.

    SQLAlchemy's wrapper adds the statement and a link; the driver's own error says
    what went wrong. Multi-line driver messages (libpq's hints) are joined with "; ".

    Example:
        >>> orig = Exception(1049, "Unknown database 'x'")  # how PyMySQL reports
        >>> describe_db_error(sa.exc.OperationalError("SELECT 1", {}, orig), sa.make_url("mysql://r@h/x"))
        "Unknown database 'x' (MySQL error 1049)"
    """
    orig = getattr(err, "orig", None) or err
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):  # PyMySQL, mysqlclient
        text = f"{args[1]} (MySQL error {args[0]})"
    else:
        text = str(orig) or type(orig).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return mask_secrets("; ".join(lines), url)


@contextlib.contextmanager
def opening(url: sa.URL) -> Iterator[None]:
    """Turn a database error while a store is opened into one :class:`MetadataError`.

    Unreachable servers, missing databases and refused logins all surface on the first
    connection; the error names the URL (password masked) and what the driver said,
    with the driver's error chained.
    """
    try:
        yield
    except sa.exc.DBAPIError as err:
        raise MetadataError(f"cannot open the metadata store {shown_url(url)}: {describe_db_error(err, url)}") from err


def backend_of(url: sa.URL) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB counts as mysql)."""
    return _BACKENDS[url.get_backend_name()]


def create_engine(url: sa.URL) -> sa.Engine:
    """An engine configured for concurrent use of the store by many processes.

    Raises:
        InvalidArgumentError: The URL names a driver that is not installed.
    """
    try:
        return _create_engine(url)
    except (ImportError, sa.exc.NoSuchModuleError) as err:
        raise InvalidArgumentError(
            f"metadata URL {shown_url(url)}: the database driver {url.get_driver_name()!r} is not installed "
            f"({mask_secrets(str(err), url)}); install it, or use the default driver: {_URL_HELP}"
        ) from err


def _create_engine(url: sa.URL) -> sa.Engine:
    backend = backend_of(url)
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return _ping_when_idle(sa.create_engine(url))
    # READ COMMITTED (as PostgreSQL): fewer gap locks, fewer deadlocks between writers.
    return _ping_when_idle(sa.create_engine(url, pool_recycle=3600, isolation_level="READ COMMITTED"))


# A pooled connection back in the pool for longer than this is pinged before it is used
# (a restarted server or a proxy's idle timeout may have closed it); one used a moment ago
# is not, which saves a round trip on nearly every transaction of a run. One that died
# all the same fails its first statement, and the store runs that transaction again.
PING_IDLE_S = 10.0
_IDLE_SINCE = "jfx_idle_since"


def _ping_when_idle(engine: sa.Engine) -> sa.Engine:
    """``pool_pre_ping``, only for connections idle longer than :data:`PING_IDLE_S`."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checking_out(dbapi_connection, record, _proxy):
        since = record.info.get(_IDLE_SINCE)  # none yet: connected just now
        if since is None or time.monotonic() - since < PING_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            # the pool discards this connection and checks out another (SQLAlchemy's contract)
            raise sa.exc.DisconnectionError(f"a pooled connection was closed: {err}") from err

    return engine


def _use_wal(cursor: Any) -> None:
    """Put a SQLite database in WAL mode, which its file keeps once set.

    Switching takes an exclusive lock that SQLite does not wait for (busy_timeout does not
    apply): processes opening a new store at once may find it "locked". So the mode is
    read first (set already: nothing to take) and a switch is tried again until the busy
    timeout.
    """
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database or ""
    kwargs: dict = {"connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}}
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        kwargs["poolclass"] = StaticPool  # one shared connection, else each one is a new DB
    elif not url.query.get("uri"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)

    # The pysqlite recipe: take transaction control from the driver, so that writers
    # start with BEGIN IMMEDIATE (take the write lock first, wait on busy_timeout)
    # instead of upgrading a read lock mid-transaction, which fails at once with
    # "database is locked" when another process writes.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def insert_ignore(backend: str, table: sa.Table):
    """An INSERT that skips rows that would duplicate a primary or unique key.

    Unlike MySQL's ``INSERT IGNORE``, foreign-key violations still raise.
    """
    if backend == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    first = next(iter(table.primary_key.columns))
    return mysql_insert(table).on_duplicate_key_update({first.name: first})  # a no-op update


def _driver_code(err: sa.exc.DBAPIError):
    """MySQL's numeric error number when the driver gives one, else the SQLSTATE (psycopg).

    The number comes first: PyMySQL (1.2+) also sets ``sqlstate``, but MySQL's SQLSTATE
    is the generic "23000" for every integrity error (a duplicate key and a foreign-key
    violation alike) and "HY000" for lock waits, so only the number tells them apart.
    """
    orig = err.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL / mysqlclient: (errno, message)
        return args[0]
    return getattr(orig, "sqlstate", None) or None


def is_transient(backend: str, err: sa.exc.DBAPIError) -> bool:
    """Whether retrying the whole transaction may succeed (locks, deadlocks, serialization)."""
    if backend == "sqlite":
        message = str(err.orig).lower()
        return isinstance(err, sa.exc.OperationalError) and ("locked" in message or "busy" in message)
    if backend == "postgresql":
        return _driver_code(err) in ("40001", "40P01")  # serialization failure, deadlock
    return _driver_code(err) in (1205, 1213)  # lock wait timeout, deadlock


def integrity_kind(backend: str, err: sa.exc.IntegrityError) -> str:
    """``"unique"``, ``"foreign_key"`` or ``"other"``."""
    if backend == "sqlite":
        message = str(err.orig)
        if "UNIQUE constraint" in message:
            return "unique"
        return "foreign_key" if "FOREIGN KEY constraint" in message else "other"
    code = _driver_code(err)
    if code in ("23505", 1062):
        return "unique"
    return "foreign_key" if code in ("23503", 1216, 1217, 1451, 1452) else "other"


@contextlib.contextmanager
def migration_lock(backend: str, conn: sa.Connection) -> Iterator[None]:
    """Serialize schema migrations of one database across processes.

    SQLite: the caller's BEGIN IMMEDIATE already holds the write lock. PostgreSQL: a
    transaction-scoped advisory lock. MySQL: a named lock (DDL is not transactional
    there, so the lock, not the transaction, keeps two migrators apart).
    """
    if backend == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key()})
        yield
    elif backend == "mysql":
        name = f"jfx_migrate:{conn.engine.url.database}"[:64]
        got = conn.execute(sa.text("SELECT GET_LOCK(:name, 600)"), {"name": name}).scalar()
        if got != 1:
            raise sa.exc.OperationalError("GET_LOCK", {}, Exception(f"could not lock {name!r}"))
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    else:
        yield


def allow_deep_recursion(conn: sa.Connection) -> None:
    """Lift the recursion limit of ``WITH RECURSIVE`` for this session.

    MariaDB stops a recursive CTE after ``max_recursive_iterations`` (1000 by default)
    *silently*, which would cut long lineage walks short; MySQL 8 fails after
    ``cte_max_recursion_depth`` (1000). SQLite and PostgreSQL have no such limit.
    """
    if conn.dialect.name == "mysql":
        variable = "max_recursive_iterations" if getattr(conn.dialect, "is_mariadb", False) else "cte_max_recursion_depth"
        conn.exec_driver_sql(f"SET SESSION {variable} = 4294967295")


def _lock_key() -> int:
    return zlib.crc32(b"jfx.metadata.migrate")  # fits a bigint; advisory locks are per database
