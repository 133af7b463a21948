"""Fixtures shared by every test package, and the suite's hermetic environment.

The suite writes nothing outside a temporary folder of its own, removed at exit: ``HOME``, ``TMPDIR``,
the XDG folders and the tool caches point into it (Beam's ``~/.apache_beam``,
Chromium's ``~/.config/chromium``, kfp.local's and pytest's temporary folders), for
this process and every subprocess a test starts. No ``__pycache__`` is written into
the source tree, and Beam's DirectRunner never looks for its Prism runner download.
"""

from __future__ import annotations

import os
import sys

# Before anything else is imported: no bytecode caches in the source tree (subprocesses
# inherit the variable). This module itself was compiled before it could say so, so its
# own cache file is removed below.
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

import atexit  # after the bytecode switch, on purpose
import importlib.abc
import importlib.machinery
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RESOURCES = Path(__file__).parent / "resources"
sys.path.insert(0, str(RESOURCES))

from jfx_dbs import BACKENDS, fresh_database


def _remove_own_bytecode() -> None:
    cache = Path(__file__).parent / "__pycache__"
    for pyc in cache.glob("conftest.*.pyc"):
        pyc.unlink(missing_ok=True)
    try:
        cache.rmdir()  # only if nothing else is in it
    except OSError:
        pass


_remove_own_bytecode()

# -- a private HOME, TMPDIR, XDG folders and tool caches ---------------------------------

SESSION_ROOT = Path(tempfile.mkdtemp(prefix="jfx-tests-"))
_HOME = SESSION_ROOT / "home"
HERMETIC_ENV = {
    "HOME": _HOME,
    "TMPDIR": SESSION_ROOT / "tmp",
    "XDG_CONFIG_HOME": _HOME / ".config",
    "XDG_CACHE_HOME": _HOME / ".cache",
    "XDG_DATA_HOME": _HOME / ".local" / "share",
    "XDG_STATE_HOME": _HOME / ".local" / "state",
    "XDG_RUNTIME_DIR": SESSION_ROOT / "run",
    "MPLCONFIGDIR": _HOME / ".cache" / "matplotlib",
    "PIP_CACHE_DIR": _HOME / ".cache" / "pip",
    "PLAYWRIGHT_BROWSERS_PATH": _HOME / ".cache" / "ms-playwright",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}
for _name, _value in HERMETIC_ENV.items():
    if isinstance(_value, Path):
        _value.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ[_name] = str(_value)
os.environ["JFX_TEST_SESSION_ROOT"] = str(SESSION_ROOT)  # for tests/test_suite_hygiene.py
os.environ.pop("JFX_METADATA_URL", None)  # the developer's own store is never a test's
tempfile.tempdir = None  # recomputed from TMPDIR: pytest's tmp_path and every mkdtemp land inside


_KEEP = {"session root": False}


def _remove_session_root() -> None:
    if not _KEEP["session root"]:
        shutil.rmtree(SESSION_ROOT, ignore_errors=True)


# At exit, not at session finish: registered before multiprocessing is imported, this runs
# after multiprocessing's own exit handler has removed its pymp-* folder inside TMPDIR.
atexit.register(_remove_session_root)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session folder goes at exit, unless ``JFX_TEST_KEEP_TMP`` is set (to look into a failure)."""
    if os.environ.get("JFX_TEST_KEEP_TMP"):
        _KEEP["session root"] = True
        sys.stderr.write(f"\njfx tests: temporary files kept in {SESSION_ROOT}\n")
    elif exitstatus != 0:
        sys.stderr.write("\njfx tests: set JFX_TEST_KEEP_TMP=1 to keep the temporary files of a run\n")


# -- Beam: the DirectRunner never looks for the Prism runner binary ----------------------

class _NoPrismDownload(importlib.abc.MetaPathFinder):
    """Once Beam's Prism module is imported, its binary lookup fails at once, offline.

    Beam's DirectRunner first tries the Prism runner, whose binary it downloads from
    GitHub (without a timeout), then falls back to its own runners. Failing the lookup
    the way a missing ``--prism_location`` file does keeps the fallback and skips the
    network; patching on import keeps ``import apache_beam`` out of test collection.
    """

    target = "apache_beam.runners.portability.prism_runner"

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != self.target:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            _refuse_prism_binary(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _refuse_prism_binary(module: ModuleType) -> None:
    def no_binary(self: Any) -> str:
        raise ValueError("the jfx test suite runs Beam offline: Prism's binary is not looked for "
                         "(the DirectRunner falls back to its own runners)")

    # where the job server resolves (cache, else download) the binary it starts (Beam 2.6x-2.7x)
    module.PrismJobServer._get_executable_path = no_binary
    module.PrismJobServer.path_to_binary = no_binary


if "apache_beam.runners.portability.prism_runner" in sys.modules:  # pragma: no cover - imported by a plugin
    _refuse_prism_binary(sys.modules["apache_beam.runners.portability.prism_runner"])
else:
    sys.meta_path.insert(0, _NoPrismDownload())


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


# -- object storage: an S3 API server on loopback ----------------------------------------

@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 for this session (fails under CI=true if it cannot start)."""
    from jfx_s3 import S3Server

    server = S3Server(SESSION_ROOT / "moto")
    yield server
    server.stop()


@pytest.fixture
def s3_root(s3_server, monkeypatch):
    """``s3://<a new bucket>/root`` on the test S3 server, with its settings in the environment."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.bucket()}/root"


@pytest.fixture(params=["local", "s3"])
def any_root(request, tmp_path):
    """A pipeline root on local disk and on the test S3 server (end-to-end tests run on both)."""
    if request.param == "local":
        return str(tmp_path / "artifacts")
    return request.getfixturevalue("s3_root")
