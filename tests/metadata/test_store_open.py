"""Opening a store that cannot be opened: one typed error naming the URL, password masked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jfx.errors import InvalidArgumentError, MetadataError
from jfx.metadata import MetadataStore
from jfx.metadata._backend import describe_db_error, mask_secrets
from jfx.metadata.ui import open_store_read_only

UNREACHABLE = "postgresql+psycopg://u:s3cret@127.0.0.1:1/x"  # nothing listens on port 1


@pytest.mark.parametrize("opener", [MetadataStore, open_store_read_only])
def test_an_unreachable_server_is_a_metadata_error_naming_the_masked_url(opener):
    with pytest.raises(MetadataError) as info:
        opener(UNREACHABLE)
    message = str(info.value)
    assert "postgresql+psycopg://u:***@127.0.0.1:1/x" in message and "refused" in message
    assert "s3cret" not in message and "\n" not in message
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)  # the driver's error is chained


@pytest.mark.db
def test_a_missing_mysql_database_is_named():
    with pytest.raises(MetadataError, match=r"mysql\+pymysql://root@127.0.0.1/no_such_db: .*no_such_db") as info:
        MetadataStore("mysql+pymysql://root@127.0.0.1/no_such_db")
    assert "\n" not in str(info.value)


def test_a_driver_that_is_not_installed_is_an_invalid_argument():
    with pytest.raises(InvalidArgumentError, match=r"postgresql\+pg8000://u:\*\*\*@h/db.*pg8000"):
        MetadataStore("postgresql+pg8000://u:s3cret@h/db")


def test_a_malformed_url_is_an_invalid_argument_without_its_password():
    with pytest.raises(InvalidArgumentError, match="not a database URL") as info:
        MetadataStore("postgresql://u:s3cret@h:notaport/x")
    assert "postgresql://u:***@h:notaport/x" in str(info.value) and "s3cret" not in str(info.value)


def test_secrets_that_a_driver_echoes_are_masked():
    url = sa.make_url("postgresql+psycopg://u:s3cret!@h/db")
    orig = Exception('connection to "postgresql://u:s3cret!@h/db" failed\n\tdsn: host=h password=s3cret! user=u;'
                     " also postgresql://v:other@g/db and password='x y' and the bare s3cret! itself")
    text = describe_db_error(sa.exc.OperationalError("SELECT 1", {}, orig), url)
    assert "s3cret" not in text and "other" not in text and "x y" not in text and "\n" not in text
    assert "postgresql://u:***@h/db" in text and "password=***" in text
    assert mask_secrets("password=pw", None) == "password=***"


def test_errors_after_opening_mask_the_password_too(sqlite_url, monkeypatch):
    store = MetadataStore(sqlite_url)
    # as if the store had been opened with a password that a later driver error echoes
    monkeypatch.setattr(store, "_url", sa.make_url("postgresql+psycopg://u:s3cret@h/db"))

    def broken(conn):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection for u:s3cret@h"))

    with pytest.raises(MetadataError) as info:
        store._tx(broken, write=False)
    assert "s3cret" not in str(info.value) and "u:***@h" in str(info.value)
    store.close()


def test_a_jfx_metadata_url_that_is_not_a_url_is_named_without_its_value(monkeypatch):
    from jfx._config import default_metadata_url

    monkeypatch.setenv("JFX_METADATA_URL", "postgres:u:hunter2secret@db")
    with pytest.raises(InvalidArgumentError, match="JFX_METADATA_URL is not a database URL") as info:
        default_metadata_url()
    assert "hunter2secret" not in str(info.value)
