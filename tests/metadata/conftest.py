"""Fixtures of the metadata tests: a fresh, empty store URL on each backend."""

from __future__ import annotations

import pytest
from jfx_dbs import BACKENDS, fresh_database as _fresh_database

from jfx.metadata import MetadataStore


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """The URL of a fresh database with no schema, on each backend."""
    yield from _fresh_database(request.param, tmp_path)


@pytest.fixture(params=BACKENDS, scope="module")
def module_store(request, tmp_path_factory):
    """A store on a fresh database shared by one module's tests (for read-only tests)."""
    for url in _fresh_database(request.param, tmp_path_factory.mktemp("store")):
        with MetadataStore(url) as opened:
            yield opened


@pytest.fixture
def store(store_url):
    """An open store on a fresh database."""
    with MetadataStore(store_url) as opened:
        yield opened
