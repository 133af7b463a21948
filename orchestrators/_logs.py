"""Each execution's log: what its component printed and logged, in one file per execution.

The launcher runs a component inside :func:`capture`, which sends to
``<pipeline_root>/<pipeline>/.logs/<node>/<execution id>.log`` everything the
component's thread writes to ``sys.stdout`` / ``sys.stderr`` and every ``logging``
record emitted on that thread (the output still reaches the terminal as before).
Nodes run side by side in threads, so the streams are split by thread: output from
threads or processes the component starts itself is not captured. The file is kept
for failed executions too; the execution's ``log_uri`` property names it, and
``jfx ui`` shows it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from jfx import _storage as storage
from jfx.orchestrators._publish import work_root

__all__ = ["log_path", "remote_log_uri", "upload_log", "capture"]

_LOCK = threading.Lock()
_SINKS: dict[int, TextIO] = {}
_ACTIVE = 0
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def log_path(pipeline_root: str | Path, pipeline: str, node_id: str, execution_id: int) -> Path:
    """The local log file (for an object-store root, in its local work folder; see :func:`remote_log_uri`)."""
    # Beside the node folders, not in them: a node's folder holds only its artifacts (a node
    # id cannot start with ".", so no node is called ".logs").
    return work_root(pipeline_root) / pipeline / ".logs" / node_id / f"{execution_id}.log"


def remote_log_uri(pipeline_root: str | Path, pipeline: str, node_id: str, execution_id: int) -> str | None:
    """For an object-store root, where the log is uploaded when the component returns; else ``None``."""
    if not storage.is_remote(pipeline_root):
        return None
    return storage.join(pipeline_root, pipeline, ".logs", node_id, f"{execution_id}.log")


def upload_log(local: Path, uri: str) -> None:
    """Upload a finished log (a failed upload is reported on stderr, and loses only the log)."""
    try:
        data = local.read_bytes()
    except OSError:
        return
    try:
        storage.write_bytes(uri, data)
    except OSError as err:
        print(f"jfx: could not upload the log {local} to {uri}: {err}", file=sys.stderr)


class _Tee(io.TextIOBase):
    """A stand-in for sys.stdout/stderr: writes through, and copies the capturing threads' text."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def write(self, text: str) -> int:
        sink = _SINKS.get(threading.get_ident())
        if sink is not None:
            try:
                sink.write(text)
            except ValueError:  # closed by a finished capture that this thread outlived
                pass
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer ...
        return getattr(self.original, name)


class _ThreadHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sink = _SINKS.get(record.thread or 0)
        if sink is not None:
            try:
                sink.write(_FORMAT.format(record) + "\n")
            except ValueError:
                pass


_HANDLER = _ThreadHandler()


def _install() -> None:
    if not isinstance(sys.stdout, _Tee):
        sys.stdout = _Tee(sys.stdout)
    if not isinstance(sys.stderr, _Tee):
        sys.stderr = _Tee(sys.stderr)
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)


def _uninstall() -> None:
    if isinstance(sys.stdout, _Tee):
        sys.stdout = sys.stdout.original
    if isinstance(sys.stderr, _Tee):
        sys.stderr = sys.stderr.original
    logging.getLogger().removeHandler(_HANDLER)


@contextlib.contextmanager
def capture(path: Path) -> Iterator[None]:
    """Copy this thread's stdout, stderr and log records into ``path`` while inside."""
    global _ACTIVE
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
    ident = threading.get_ident()
    with _LOCK:
        if _ACTIVE == 0:
            _install()
        _ACTIVE += 1
        _SINKS[ident] = sink
    try:
        yield
    finally:
        with _LOCK:
            _SINKS.pop(ident, None)
            _ACTIVE -= 1
            if _ACTIVE == 0:
                _uninstall()
        sink.close()
