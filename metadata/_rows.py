"""Records ↔ table rows: argument checks on the way in, conversion on the way out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from jfx.errors import InvalidArgumentError
from jfx.metadata._records import (
    MAX_SQL_INT,
    PIPELINE_RUN,
    ArtifactRecord,
    ArtifactState,
    ContextRecord,
    Event,
    EventType,
    ExecutionRecord,
    ExecutionState,
    coerce_enum,
)

# A run's state and times live in its context's properties (see _runs.py) and are copied
# to indexed columns of jfx_contexts (migration 0003), which the run lists filter on:
# column -> property key. Every write of a run context's properties refreshes them.
RUN_COLUMNS = {"run_state": "state", "run_start_time": "start_time", "run_end_time": "end_time",
               "run_deleted_time": "deleted_time"}  # migration 0004: when gc deleted the run
# _runs.RunState's values (a test keeps them equal); any other stored state reads as RUNNING.
RUN_STATE_VALUES = ("RUNNING", "COMPLETE", "FAILED", "CANCELLED", "ABANDONED")
# The other properties a run list shows, copied as they are into one small JSON column of
# jfx_contexts (migration 0005), so that a run list never parses the properties (which hold
# the run's whole IR): {key: value} in this order, NULL for other contexts. Every write of a
# run context's properties refreshes it, with the columns above.
RUN_SUMMARY = "run_summary"
RUN_SUMMARY_KEYS = ("parameters", "runner", "attempts")


def now() -> datetime:
    """The current UTC time, truncated to the milliseconds the store keeps."""
    current = datetime.now(timezone.utc)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def missing(what: str, ids: Sequence[int]) -> str:
    """The NotFoundError message naming the missing ids."""
    if len(ids) == 1:
        return f"{what} id {ids[0]} does not exist"
    return f"{what} ids {list(ids)} do not exist"


def check_id(value: Any, what: str) -> int:
    """``value``, which must be an int id (not a bool) that fits the id column."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what}={value!r}: expected an integer id")
    if not -MAX_SQL_INT <= value <= MAX_SQL_INT:
        raise InvalidArgumentError(f"{what}={value}: expected an integer id up to {MAX_SQL_INT}")
    return value


def check_ids(values: Iterable[int], what: str) -> list[int]:
    """``values`` as a list of int ids."""
    if isinstance(values, (str, bytes, int)):
        raise InvalidArgumentError(f"{what}={values!r}: expected a list of integer ids")
    return [check_id(v, what) for v in values]


def check_text(value: Any, what: str, allow_empty: bool = False) -> str:
    """``value``, which must be a string (non-empty unless ``allow_empty``)."""
    if not isinstance(value, str) or (not value and not allow_empty):
        raise InvalidArgumentError(f"{what}={value!r}: expected a {'' if allow_empty else 'non-empty '}string")
    return value


def check_dict(value: Any, what: str) -> dict:
    """A copy of ``value``, which must be a JSON-serializable dict (strict JSON: no NaN).

    Checked here, not by the drivers, so that every backend fails alike and early.
    """
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{what}={value!r}: expected a dict")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(
            f"{what} is not JSON serializable ({err}); store strings, numbers, bools, None, lists and dicts"
        ) from err
    return dict(value)


def check_time(value: Any, what: str) -> datetime | None:
    """``value``, which must be ``None`` or a timezone-aware datetime."""
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidArgumentError(
            f"{what}={value!r}: expected a timezone-aware datetime, e.g. datetime.now(timezone.utc)"
        )
    return value


def artifact_row(a: ArtifactRecord, now: datetime) -> dict[str, Any]:
    """The checked column values of an artifact (``now`` stamps the times)."""
    if not isinstance(a, ArtifactRecord):
        raise InvalidArgumentError(f"expected an ArtifactRecord, got {type(a).__name__}")
    a.state = coerce_enum(ArtifactState, a.state, "ArtifactRecord.state")
    return {
        "type_name": check_text(a.type_name, "ArtifactRecord.type_name"),
        "uri": check_text(a.uri, "ArtifactRecord.uri", allow_empty=True),
        "name": check_text(a.name, "ArtifactRecord.name", allow_empty=True),
        "state": a.state.value,
        "fingerprint": check_text(a.fingerprint, "ArtifactRecord.fingerprint", allow_empty=True),
        "properties": check_dict(a.properties, "ArtifactRecord.properties"),
        "create_time": check_time(a.create_time, "ArtifactRecord.create_time") or now,
        "update_time": now,
    }


def execution_row(e: ExecutionRecord, now: datetime) -> dict[str, Any]:
    """The checked column values of an execution; end_time defaults to ``now`` once terminal."""
    if not isinstance(e, ExecutionRecord):
        raise InvalidArgumentError(f"expected an ExecutionRecord, got {type(e).__name__}")
    e.state = coerce_enum(ExecutionState, e.state, "ExecutionRecord.state")
    cache_key = check_text(e.cache_key, "ExecutionRecord.cache_key", allow_empty=True)
    if len(cache_key) > 64:
        raise InvalidArgumentError(f"ExecutionRecord.cache_key is {len(cache_key)} characters; at most 64 fit")
    end_time = check_time(e.end_time, "ExecutionRecord.end_time")
    return {
        "type_name": check_text(e.type_name, "ExecutionRecord.type_name"),
        "node_id": check_text(e.node_id, "ExecutionRecord.node_id"),
        "state": e.state.value,
        "parameters": check_dict(e.parameters, "ExecutionRecord.parameters"),
        "cache_key": cache_key,
        "error": check_text(e.error, "ExecutionRecord.error", allow_empty=True),
        "properties": check_dict(e.properties, "ExecutionRecord.properties"),
        "start_time": check_time(e.start_time, "ExecutionRecord.start_time") or now,
        "end_time": end_time or (now if e.state.is_terminal else None),
    }


def context_row(c: ContextRecord, now: datetime) -> dict[str, Any]:
    """The checked column values of a context."""
    if not isinstance(c, ContextRecord):
        raise InvalidArgumentError(f"expected a ContextRecord, got {type(c).__name__}")
    return {
        "type_name": check_text(c.type_name, "ContextRecord.type_name"),
        "name": check_text(c.name, "ContextRecord.name"),
        "parent_id": None if c.parent_id is None else check_id(c.parent_id, "ContextRecord.parent_id"),
        "properties": check_dict(c.properties, "ContextRecord.properties"),
        "create_time": check_time(c.create_time, "ContextRecord.create_time") or now,
        **run_columns(c.type_name, c.properties if isinstance(c.properties, Mapping) else {}),
    }


def _run_time(value: Any) -> datetime | None:
    parsed: datetime | None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value)) if value else None
        except ValueError:
            return None  # unreadable: unknown, as RunRecord reads it
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def run_columns(type_name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The promoted run columns of a context: a run's state, times and list summary; ``None`` for
    other contexts."""
    if type_name != PIPELINE_RUN:
        return dict.fromkeys((*RUN_COLUMNS, RUN_SUMMARY))
    state = properties.get(RUN_COLUMNS["run_state"])
    return {
        "run_state": state if state in RUN_STATE_VALUES else RUN_STATE_VALUES[0],
        "run_start_time": _run_time(properties.get(RUN_COLUMNS["run_start_time"])),
        "run_end_time": _run_time(properties.get(RUN_COLUMNS["run_end_time"])),
        "run_deleted_time": _run_time(properties.get(RUN_COLUMNS["run_deleted_time"])),
        RUN_SUMMARY: {key: properties.get(key) for key in RUN_SUMMARY_KEYS},
    }


def event_row(e: Event, now: datetime) -> dict[str, Any]:
    """The checked column values of an event."""
    if not isinstance(e, Event):
        raise InvalidArgumentError(f"expected an Event, got {type(e).__name__}")
    return {
        "artifact_id": check_id(e.artifact_id, "Event.artifact_id"),
        "execution_id": check_id(e.execution_id, "Event.execution_id"),
        "type": coerce_enum(EventType, e.type, "Event.type").value,
        "key": check_text(e.key, "Event.key", allow_empty=True),
        "idx": check_id(e.index, "Event.index"),
        "time": check_time(e.time, "Event.time") or now,
    }


def stamp_artifact(record: ArtifactRecord, row: Mapping[str, Any], new_id: int) -> None:
    """After commit: set the id and times the store chose on the caller's record."""
    if record.id is None:
        record.create_time = row["create_time"]
    record.id = new_id
    record.update_time = row["update_time"]


def stamp_execution(record: ExecutionRecord, row: Mapping[str, Any], new_id: int) -> None:
    """After commit: set the id and times the store chose on the caller's record."""
    if record.id is None:
        record.start_time = row["start_time"]
    record.id = new_id
    record.end_time = row["end_time"]


def to_artifact(row: Any) -> ArtifactRecord:
    """An ArtifactRecord from a row of jfx_artifacts."""
    m = row._mapping
    return ArtifactRecord(
        type_name=m["type_name"],
        uri=m["uri"],
        id=m["id"],
        name=m["name"],
        state=ArtifactState(m["state"]),
        fingerprint=m["fingerprint"],
        properties=m["properties"] or {},
        create_time=m["create_time"],
        update_time=m["update_time"],
        deleted_time=m.get("deleted_time"),
        delete_reason=m.get("delete_reason"),
    )


def to_execution(row: Any) -> ExecutionRecord:
    """An ExecutionRecord from a row of jfx_executions."""
    m = row._mapping
    return ExecutionRecord(
        type_name=m["type_name"],
        node_id=m["node_id"],
        id=m["id"],
        state=ExecutionState(m["state"]),
        parameters=m["parameters"] or {},
        cache_key=m["cache_key"],
        error=m["error"],
        properties=m["properties"] or {},
        start_time=m["start_time"],
        end_time=m["end_time"],
    )


def to_context(row: Any) -> ContextRecord:
    """A ContextRecord from a row of jfx_contexts."""
    m = row._mapping
    return ContextRecord(
        type_name=m["type_name"],
        name=m["name"],
        id=m["id"],
        parent_id=m["parent_id"],
        properties=m["properties"] or {},
        create_time=m["create_time"],
    )


def to_run_summary(row: Any) -> ContextRecord:
    """A run's ContextRecord from its run columns alone (no ``properties`` column): the properties
    hold only its state, times (ISO, as runs store them) and summary."""
    m = row._mapping
    properties = {key: m[column] for column, key in RUN_COLUMNS.items()}
    for column in ("run_start_time", "run_end_time", "run_deleted_time"):
        time = m[column]
        properties[RUN_COLUMNS[column]] = None if time is None else time.isoformat(timespec="milliseconds")
    properties.update(m[RUN_SUMMARY] or {})
    return ContextRecord(
        type_name=m["type_name"],
        name=m["name"],
        id=m["id"],
        parent_id=m["parent_id"],
        properties=properties,
        create_time=m["create_time"],
    )


def to_event(row: Any) -> Event:
    """An Event from a row of jfx_events."""
    m = row._mapping
    return Event(
        artifact_id=m["artifact_id"],
        execution_id=m["execution_id"],
        type=EventType(m["type"]),
        key=m["key"],
        index=m["idx"],
        time=m["time"],
    )


