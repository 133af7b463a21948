"""The records of the metadata store: plain dataclasses and enums, no database code."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from jfx.errors import InvalidArgumentError

# Ids, limits and offsets reach the database as a BIGINT; a larger Python int would
# overflow in the driver (SQLite: OverflowError) instead of failing as bad input.
MAX_SQL_INT = 2**63 - 1

__all__ = [
    "MAX_SQL_INT",
    "ExecutionState",
    "ArtifactState",
    "EventType",
    "PIPELINE",
    "PIPELINE_RUN",
    "NODE",
    "ArtifactRecord",
    "ExecutionRecord",
    "ContextRecord",
    "Event",
    "LineageGraph",
    "ListOptions",
]

# Context type names used by jfx.
PIPELINE = "pipeline"
PIPELINE_RUN = "pipeline_run"
NODE = "node"


class ExecutionState(str, enum.Enum):
    """The life cycle of one execution of a node."""

    NEW = "NEW"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CACHED = "CACHED"
    CANCELLED = "CANCELLED"
    ABANDONED = "ABANDONED"
    SKIPPED = "SKIPPED"  # not run: a jfx.If condition was false, or an upstream node did not succeed

    @property
    def is_terminal(self) -> bool:
        """Whether the execution has finished (successfully or not)."""
        return self not in (ExecutionState.NEW, ExecutionState.RUNNING)

    @property
    def is_success(self) -> bool:
        """Whether the execution's outputs are usable (COMPLETE or CACHED)."""
        return self in (ExecutionState.COMPLETE, ExecutionState.CACHED)


class ArtifactState(str, enum.Enum):
    """The life cycle of one artifact."""

    PENDING = "PENDING"
    LIVE = "LIVE"
    ABANDONED = "ABANDONED"
    # gc: recorded deleted, its files being removed (ML Metadata's MARKED_FOR_DELETION)
    DELETING = "DELETING"
    DELETED = "DELETED"  # gc removed its files; the record stays for lineage

    @property
    def deleted(self) -> bool:
        """Whether gc deleted the artifact (DELETING or DELETED): its files are gone or going."""
        return self in (ArtifactState.DELETING, ArtifactState.DELETED)


class EventType(str, enum.Enum):
    """Whether an event records an artifact read (INPUT) or written (OUTPUT) by an execution."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


def coerce_enum(enum_type: type[enum.Enum], value: Any, what: str) -> Any:
    """``enum_type(value)``, raising an :class:`InvalidArgumentError` that lists the choices."""
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_type)
        raise InvalidArgumentError(f"{what}={value!r} is not one of: {choices}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _ToDict:
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every subclass is a dataclass

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: enums as their values, datetimes as ISO 8601 strings."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


class _Stored(_ToDict):
    id: int | None

    @property
    def stored_id(self) -> int:
        """The id the store gave this record (read from or written to it).

        Raises:
            InvalidArgumentError: the record was never stored.
        """
        if self.id is None:
            raise InvalidArgumentError(f"{type(self).__name__} {getattr(self, 'name', '')!r} has no id: it was never stored")
        return self.id


@dataclass
class ArtifactRecord(_Stored):
    """One artifact: a typed piece of data at a URI.

    ``deleted_time`` and ``delete_reason`` say when and why ``jfx gc`` deleted it (state
    DELETING or DELETED); only gc writes them.

    Example:
        >>> ArtifactRecord("Examples", "/tmp/ex/1").state
        <ArtifactState.LIVE: 'LIVE'>
    """

    type_name: str
    uri: str
    id: int | None = None
    name: str = ""
    state: ArtifactState = ArtifactState.LIVE
    fingerprint: str = ""
    properties: dict = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None
    deleted_time: datetime | None = None
    delete_reason: str | None = None

    def deleted_note(self) -> str:
        """``"deleted by gc on <date> (<reason>)"`` for an artifact gc deleted, ``""`` for a live one.

        Example:
            >>> from datetime import datetime, timezone
            >>> ArtifactRecord("Examples", "/x", state=ArtifactState.DELETED, delete_reason="run r1 older than 30d",
            ...                deleted_time=datetime(2026, 12, 6, 1, 2, tzinfo=timezone.utc)).deleted_note()
            'deleted by gc on 2026-12-06 01:02 UTC (run r1 older than 30d)'
        """
        if not self.state.deleted:
            return ""
        going = ", its files still being removed" if self.state == ArtifactState.DELETING else ""
        if self.deleted_time is None:  # marked by hand, not by gc
            return f"deleted{going}"
        why = f" ({self.delete_reason})" if self.delete_reason else ""
        return f"deleted by gc on {self.deleted_time.strftime('%Y-%m-%d %H:%M UTC')}{why}{going}"


@dataclass
class ExecutionRecord(_Stored):
    """One execution of a pipeline node (``type_name`` is the component name)."""

    type_name: str
    node_id: str
    id: int | None = None
    state: ExecutionState = ExecutionState.NEW
    parameters: dict = field(default_factory=dict)
    cache_key: str = ""
    error: str = ""
    properties: dict = field(default_factory=dict)
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass
class ContextRecord(_Stored):
    """A named group of executions and artifacts: a pipeline, a pipeline run or a node."""

    type_name: str
    name: str
    id: int | None = None
    parent_id: int | None = None
    properties: dict = field(default_factory=dict)
    create_time: datetime | None = None


@dataclass(frozen=True)
class Event(_ToDict):
    """An edge of the lineage graph: an execution read (INPUT) or wrote (OUTPUT) an artifact.

    ``key`` is the input or output name and ``index`` the position in that list.
    """

    artifact_id: int
    execution_id: int
    type: EventType
    key: str = ""
    index: int = 0
    time: datetime | None = None


@dataclass
class LineageGraph:
    """The artifacts and executions around one artifact, with the events between them."""

    artifacts: list[ArtifactRecord]
    executions: list[ExecutionRecord]
    events: list[Event]

    @property
    def artifact_ids(self) -> set[int]:
        """The ids of :attr:`artifacts`."""
        return {a.stored_id for a in self.artifacts}

    @property
    def execution_ids(self) -> set[int]:
        """The ids of :attr:`executions`."""
        return {e.stored_id for e in self.executions}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with ``artifacts``, ``executions`` and ``events`` lists."""
        return {
            "artifacts": [a.to_dict() for a in self.artifacts],
            "executions": [e.to_dict() for e in self.executions],
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True)
class ListOptions:
    """Paging and ordering for list queries.

    Args:
        limit: At most this many records; ``None`` for all.
        offset: Skip this many records first.
        order_by: ``"id"`` or ``"create_time"`` (``"start_time"`` for executions; there
            ``"create_time"`` means the same). Ties are broken by id.
        descending: Newest / highest first.

    Example:
        >>> ListOptions(limit=10, order_by="create_time", descending=True).limit
        10
    """

    limit: int | None = None
    offset: int = 0
    order_by: str = "id"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or not 0 <= self.limit <= MAX_SQL_INT):
            raise InvalidArgumentError(
                f"ListOptions.limit={self.limit!r}: expected None or an int between 0 and {MAX_SQL_INT}")
        if not isinstance(self.offset, int) or not 0 <= self.offset <= MAX_SQL_INT:
            raise InvalidArgumentError(f"ListOptions.offset={self.offset!r}: expected an int between 0 and {MAX_SQL_INT}")
