"""Fixtures shared by every test package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

RESOURCES = Path(__file__).parent / "resources"
sys.path.insert(0, str(RESOURCES))

from jfx_dbs import BACKENDS, fresh_database  # noqa: E402 - needs RESOURCES on the path


@pytest.fixture
def jfx_home(tmp_path, monkeypatch):
    """An empty JFX_HOME; no JFX_METADATA_URL, so the default SQLite store is used."""
    home = tmp_path / "jfx-home"
    monkeypatch.setenv("JFX_HOME", str(home))
    monkeypatch.delenv("JFX_METADATA_URL", raising=False)
    return home


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'metadata.sqlite'}"


@pytest.fixture(params=BACKENDS)
def any_store_url(request, tmp_path):
    """A fresh, empty metadata database on each backend."""
    yield from fresh_database(request.param, tmp_path)
