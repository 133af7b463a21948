"""A metadata URL's password never reaches the user: not in ``store.url``, not in a database's error.

Complements tests/metadata/test_store_open.py (unreachable servers, malformed URLs, echoed
DSNs) with real servers that accept or refuse a password, and with passwords that need
URL quoting, whose quoted and unquoted forms must both be masked.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from jfx.errors import MetadataError
from jfx.metadata import Client, MetadataStore
from jfx.metadata._backend import describe_db_error, mask_secrets, shown_url
from jfx_dbs import fresh_database

SECRETS = ["s3cret", "p@ss:w/rd", "100%sure", "sp ace+plus", "unicodé-pässword"]


def _with_password(url: str, user: str, password: str) -> str:
    return url.replace(f"{user}@", f"{user}:{quote(password, safe='')}@", 1)


def _assert_masked(text: str, password: str) -> None:
    for form in {password, quote(password, safe=""), quote_plus(password)}:
        assert form not in text, f"{form!r} shows in {text!r}"


@pytest.mark.parametrize("password", SECRETS)
def test_shown_url_masks_every_form_of_the_password(password):
    url = sa.make_url(_with_password("postgresql+psycopg://u@db.example:5432/x", "u", password))
    assert url.password == password  # the quoted form decodes to the password itself
    shown = shown_url(url)
    assert shown == "postgresql+psycopg://u:***@db.example:5432/x"
    _assert_masked(shown, password)


@pytest.mark.parametrize("password", SECRETS)
def test_a_driver_error_echoing_the_password_in_any_form_is_masked(password):
    url = sa.make_url(_with_password("postgresql+psycopg://u@h/db", "u", password))
    said = (f"FATAL: password authentication failed; tried {password!s} "
            f"(quoted {quote(password, safe='')}, form-encoded {quote_plus(password)})")
    text = describe_db_error(sa.exc.OperationalError("SELECT 1", {}, Exception(said)), url)
    _assert_masked(text, password)
    assert "password authentication failed" in text  # the rest of the driver's message is kept


def test_mask_secrets_leaves_a_text_without_secrets_alone():
    text = "could not connect to server at 127.0.0.1:5432 as user u (database x)"
    assert mask_secrets(text, sa.make_url("postgresql://u@h/x")) == text
    assert mask_secrets(text, None) == text


@pytest.mark.db
@pytest.mark.parametrize("password", ["s3cret", "p@ss:w/rd"])
def test_store_and_client_urls_mask_the_password_on_a_real_server(tmp_path, password):
    # the test server trusts local connections, so any password opens it
    gen = fresh_database("postgresql", tmp_path)
    url = _with_password(next(gen), "root", password)
    try:
        with MetadataStore(url) as store:
            assert store.url.startswith("postgresql+psycopg://root:***@127.0.0.1:5432/jfx_t_")
            _assert_masked(store.url, password)
            assert store.get_runs() == []  # it did open
        with Client(url) as client:
            assert client.url.startswith("postgresql+psycopg://root:***@")
            _assert_masked(client.url, password)
    finally:
        gen.close()


@pytest.mark.db
def test_a_refused_password_is_an_error_without_the_password():
    # the MariaDB test server's root has no password, so a wrong one is refused
    password = "wr0ng-s3cret"
    url = f"mysql+pymysql://root:{password}@127.0.0.1:3306/test"
    with pytest.raises(MetadataError) as info:
        MetadataStore(url)
    message = str(info.value)
    assert "root:***@127.0.0.1:3306/test" in message and "Access denied" in message, message
    _assert_masked(message, password)
    assert password not in repr(info.value)
