"""What every page module of the UI shares: the error type, argument parsing, summaries."""

from __future__ import annotations

import builtins
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jfx.errors import JfxError
from jfx.metadata._client import parse_time
from jfx.metadata._executions_info import ExecutionInfo, NodeState
from jfx.metadata._records import MAX_SQL_INT, ArtifactRecord, ExecutionRecord

__all__ = [
    "ApiError",
    "Query",
    "parse_int",
    "parse_id",
    "artifact_summary",
    "execution_summary",
    "node_state",
    "duration_s",
    "parse_time",
    "iso",
    "read_json_file",
    "tail",
    "external_inputs",
]

_MAX_JSON_BYTES = 64 * 1024 * 1024


class ApiError(JfxError):
    """An error answered as ``{"error": {"code": code, "message": message}}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ASCII digits only: int() also takes "1_000", " 7 " and digits of other scripts, which
# would make one id reachable under many spellings.
_INTEGER = re.compile(r"-?[0-9]+")
_SHOWN = 40  # characters of a bad value quoted back in a message


def parse_int(raw: str, what: str, *, lo: int = 0, hi: int = MAX_SQL_INT) -> int:
    """``raw`` as an int between ``lo`` and ``hi``; every number a request carries goes through here.

    Args:
        raw: The text from the path or the query string.
        what: How the message names it, e.g. ``"query parameter offset"``.
        lo: The smallest value accepted.
        hi: The largest (at most :data:`MAX_SQL_INT`: the database takes nothing larger).

    Raises:
        ApiError: 400, naming ``what`` and the value, for a non-number or one out of range.

    Example:
        >>> parse_int("12", "query parameter offset")
        12
    """
    hi = min(hi, MAX_SQL_INT)
    shown = raw if len(raw) <= _SHOWN else raw[:_SHOWN] + "..."
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, f"{what}={shown!r}: expected an integer")
    # more significant digits than MAX_SQL_INT has is out of range anyway; int() of a huge
    # string is slow (and refused past 4300 digits)
    significant = raw.lstrip("-").lstrip("0")
    value = int(raw) if len(significant) <= len(str(MAX_SQL_INT)) else None
    if value is None or not lo <= value <= hi:
        bounds = f"between {lo} and {hi}" if hi < MAX_SQL_INT else f">= {lo} (at most {MAX_SQL_INT})"
        raise ApiError(400, f"{what}={shown}: expected an integer {bounds}")
    return value


def parse_id(raw: str, what: str) -> int:
    """A record id from a path or query (``what``: ``"artifact"``, ``"execution"``); 400 unless 1..MAX_SQL_INT.

    Example:
        >>> parse_id("7", "artifact")
        7
    """
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, f"{what} id {raw[:_SHOWN]!r} is not an integer")
    return parse_int(raw, f"{what} id", lo=1)


class Query:
    """The query string of one request, with typed getters that answer 400 on bad values."""

    def __init__(self, params: Mapping[str, list[str]]) -> None:
        self._params = params

    def str(self, name: str, default: str | None = None) -> str | None:
        values = self._params.get(name)
        return values[-1] if values and values[-1] != "" else default

    def list(self, name: builtins.str) -> list[builtins.str]:
        """Repeated or comma-separated values."""
        return [v for raw in self._params.get(name, []) for v in raw.split(",") if v]

    def int(self, name: builtins.str, default: int, *, lo: int = 0, hi: int = MAX_SQL_INT) -> int:
        """The parameter as an int in ``lo..hi`` (see :func:`parse_int`); ``default`` when absent."""
        raw = self.str(name)
        if raw is None:
            return default
        return parse_int(raw, f"query parameter {name}", lo=lo, hi=hi)

    def choice(self, name: builtins.str, choices: tuple[builtins.str, ...], default: builtins.str) -> builtins.str:
        value = self.str(name, default)
        if value not in choices:
            raise ApiError(400, f"query parameter {name}={value!r}: expected one of {', '.join(choices)}")
        return value


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def duration_s(start: Any, end: Any) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    # start and end are stamped by different calls at millisecond precision: never below 0
    return max(0.0, round((b - a).total_seconds(), 3))


def node_state(execution: ExecutionRecord) -> str:
    """How a node looks, by the state of its latest execution (the DAG's colours): a :class:`NodeState`."""
    state: NodeState = ExecutionInfo.from_record(execution).node_state(execution)
    return state.value


def artifact_summary(a: ArtifactRecord) -> dict[str, Any]:
    """The fields of an artifact that lists and graphs show."""
    return {"id": a.id, "type": a.type_name, "name": a.name, "uri": a.uri, "state": a.state.value,
            "fingerprint": a.fingerprint, "create_time": iso(a.create_time),
            # set when jfx gc deleted it: the page shows the note and links to no file
            "deleted": a.deleted_note() or None, "deleted_time": iso(a.deleted_time), "delete_reason": a.delete_reason}


def execution_summary(e: ExecutionRecord) -> dict[str, Any]:
    """The fields of an execution that lists and graphs show."""
    info = ExecutionInfo.from_record(e)
    return {"id": e.id, "node_id": e.node_id, "component": e.type_name, "state": e.state.value,
            "node_state": node_state(e), "run_id": info.run_id, "pipeline": info.pipeline,
            "start_time": iso(e.start_time), "end_time": iso(e.end_time), "duration_s": duration_s(e.start_time, e.end_time),
            "cached_from": info.source_execution}


def read_json_file(path: str | Path, what: str) -> Any:
    """A JSON file of an artifact (a path or an object-store URI); ApiError 404 when missing, 422 when it is not JSON."""
    from jfx import _storage as storage

    try:
        if storage.file_size(path) > _MAX_JSON_BYTES:
            raise ApiError(422, f"{what}: {path} is larger than {_MAX_JSON_BYTES // 2**20} MiB")
        return json.loads(storage.read_text(path))
    except FileNotFoundError:
        raise ApiError(404, f"{what}: {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(422, f"{what}: {path} is not valid JSON ({err})") from None


def tail(path: str | Path, max_bytes: int = 64 * 1024) -> str:
    """The last ``max_bytes`` of a text file, local or on a store (from a line start when cut)."""
    from jfx import _storage as storage

    with storage.open_uri(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    if size > max_bytes:
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else data
    return data.decode("utf-8", errors="replace")


def external_inputs(e: ExecutionRecord) -> list[dict[str, Any]]:
    """Files outside the store that an execution read (the CSV of an ExampleGen, a module file).

    They come from its parameters: ``input_base`` (with ``input_pattern``) and any
    ``*_file`` parameter; the fingerprint of their bytes is in the cache material when
    the component declares one.
    """
    params = e.parameters or {}
    material = ExecutionInfo.from_record(e).cache_material or {}
    fingerprint = material.get("external") if isinstance(material, dict) else None
    found: list[dict[str, Any]] = []
    base = params.get("input_base")
    if isinstance(base, str) and base:
        pattern = params.get("input_pattern")
        path = os.path.join(base, pattern) if isinstance(pattern, str) and pattern else base
        found.append({"parameter": "input_base", "path": path, "name": os.path.basename(path.rstrip("/")) or path})
    for key, value in sorted(params.items()):
        if key.endswith("_file") and isinstance(value, str) and value:
            found.append({"parameter": key, "path": value, "name": os.path.basename(value) or value})
    for entry in found:
        entry["fingerprint"] = fingerprint if isinstance(fingerprint, str) else None
    return found
