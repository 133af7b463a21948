"""Fixtures shared by the Kubeflow submit and schedule tests."""

from __future__ import annotations

import pytest
from jfx_kfp_api import KFP_ENV, FakeKfp


@pytest.fixture
def kfp_server(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file from the machine
    for name in KFP_ENV:
        monkeypatch.delenv(name, raising=False)
    server = FakeKfp()
    server.thread.start()
    try:
        yield server
    finally:
        server.close()
