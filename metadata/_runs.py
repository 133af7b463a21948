"""What jfx keeps about a run: its state, times, parameters, IR, owner and outcome.

A run is a ``pipeline_run`` context (child of its ``pipeline`` context) named by the
run id. What jfx records about it lives in the context's properties, under keys that
this module alone writes and reads: every other module (the runners, the Kubeflow
entrypoint, the CLI, :class:`~jfx.metadata.Client`, the UI) goes through
:class:`RunRecord` and the functions below.

Example:
    >>> record = RunRecord("p-1", state=RunState.RUNNING, parameters={"epochs": 3})
    >>> RunRecord.from_context(ContextRecord(PIPELINE_RUN, "p-1", properties=record.to_properties())).parameters
    {'epochs': 3}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from jfx.errors import InvalidArgumentError
from jfx.metadata._records import PIPELINE, PIPELINE_RUN, ContextRecord, ExecutionRecord, ListOptions
from jfx.metadata._rows import RUN_COLUMNS, RUN_SUMMARY_KEYS
from jfx.metadata._store import MetadataStore

__all__ = [
    "IR_KEY",
    "PARAMETERS_KEY",
    "RUN_LIST_FIELDS",
    "STATE_KEY",
    "RunRecord",
    "RunState",
    "abandon_run",
    "create_run",
    "deletion_properties",
    "finish_run",
    "get_run",
    "list_runs",
    "list_run_summaries",
    "record_partial",
    "reopen_run",
]

# The property keys. The store copies a run's state and times to indexed columns
# (_rows.RUN_COLUMNS, migration 0003) and its parameters, runner and attempts to a small
# summary column (_rows.RUN_SUMMARY_KEYS, migration 0005), which the run lists read instead
# of the properties, so these names are the stored format: renaming one needs a migration.
STATE_KEY = RUN_COLUMNS["run_state"]
PARAMETERS_KEY, _RUNNER, _ATTEMPTS = RUN_SUMMARY_KEYS
IR_KEY = "ir"
_START, _END, _RESUMED = RUN_COLUMNS["run_start_time"], RUN_COLUMNS["run_end_time"], "resumed_time"
_ROOT, _CACHE = "pipeline_root", "enable_cache"
_HOST, _PID = "host", "pid"
_NODE_STATES, _ERROR, _PARTIAL = "node_states", "error", "partial"
_DELETED, _DELETE_REASON = RUN_COLUMNS["run_deleted_time"], "delete_reason"
# The run properties a run list shows (never the IR, which can be large).
RUN_LIST_FIELDS = (STATE_KEY, _START, _END, _RUNNER, _ATTEMPTS)


class RunState(str, Enum):
    """A run's state. A ``str``, so ``RunState.COMPLETE == "COMPLETE"``, printed as its value.

    (``enum.StrEnum`` needs Python 3.11; jfx supports 3.10.)
    """

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    ABANDONED = "ABANDONED"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @property
    def finished(self) -> bool:
        """Whether the run has ended (any state but RUNNING)."""
        return self is not RunState.RUNNING


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None  # an unreadable time reads as unknown, like a missing one


def _state(value: Any) -> RunState:
    try:
        return RunState(str(value))
    except ValueError:
        # A run written before its state was recorded, or by a foreign tool: it never
        # reported an end, which is what RUNNING means (reaping judges it by its owner).
        return RunState.RUNNING


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunRecord:
    """One run, as jfx records it.

    Attributes:
        run_id: The run id (the run context's name).
        context_id: The run context's id (``None`` before it is stored).
        pipeline_context_id: The pipeline context's id.
        pipeline: The pipeline's name, where the reader knows it.
        state: The run's state.
        start_time: When the run was created.
        end_time: When it ended (``None`` while it runs).
        resumed_time: When it was last resumed (``jfx run --resume``).
        parameters: The resolved runtime parameters.
        pipeline_root: Where its outputs go.
        enable_cache: Whether its nodes may reuse cached executions.
        ir: The IR document it runs (``None`` where the reader left it out).
        attempts: How many times it was started (1, plus one per resume).
        host, pid: The process that runs it, judged by reaping.
        runner: Which runner runs it (``local``, ``beam``, ``kubeflow``, ``kfp-local``).
        node_states: Each node's state once the run ended.
        error: The orchestrator's error, if it reported one.
        partial: A partial run's selection and the run it reuses (``selected``,
            ``reused_from_run``); empty for a full run.
        create_time: The context's creation time.
        deleted_time: When ``jfx gc`` deleted the run (``None``: not deleted).
        delete_reason: Why gc deleted it (the policy that selected it).
    """

    run_id: str
    context_id: int | None = None
    pipeline_context_id: int | None = None
    pipeline: str | None = None
    state: RunState = RunState.RUNNING
    start_time: datetime | None = None
    end_time: datetime | None = None
    resumed_time: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    pipeline_root: str | None = None
    enable_cache: bool = True
    ir: dict[str, Any] | None = None
    attempts: int = 1
    host: str | None = None
    pid: int | None = None
    runner: str | None = None
    node_states: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    partial: dict[str, Any] = field(default_factory=dict)
    create_time: datetime | None = None
    deleted_time: datetime | None = None
    delete_reason: str | None = None

    @classmethod
    def from_context(cls, ctx: ContextRecord, pipeline: str | None = None) -> RunRecord:
        """The record of a run context; missing or unreadable values read as unknown."""
        return cls.from_properties(ctx.name, ctx.properties or {}, context_id=ctx.id,
                                   pipeline_context_id=ctx.parent_id, pipeline=pipeline,
                                   create_time=ctx.create_time)

    @classmethod
    def from_properties(cls, run_id: str, props: Mapping[str, Any], **ids: Any) -> RunRecord:
        """The record of a run whose properties (all, or the list columns) were read by a query."""
        pid = props.get(_PID)
        raw_attempts = props.get(_ATTEMPTS)
        attempts = int(raw_attempts) if isinstance(raw_attempts, (int, str)) and str(raw_attempts).isdigit() else 1
        return cls(
            run_id, state=_state(props.get(STATE_KEY)), start_time=_time(props.get(_START)),
            end_time=_time(props.get(_END)), resumed_time=_time(props.get(_RESUMED)),
            parameters=dict(props.get(PARAMETERS_KEY) or {}), pipeline_root=props.get(_ROOT) or None,
            enable_cache=bool(props.get(_CACHE, True)), ir=props.get(IR_KEY) or None,
            attempts=attempts,
            host=props.get(_HOST), pid=pid if isinstance(pid, int) else None, runner=props.get(_RUNNER),
            node_states=dict(props.get(_NODE_STATES) or {}), error=props.get(_ERROR),
            partial=dict(props.get(_PARTIAL) or {}), deleted_time=_time(props.get(_DELETED)),
            delete_reason=props.get(_DELETE_REASON), **ids,
        )

    def to_properties(self) -> dict[str, Any]:
        """The context properties that store this record (JSON-able)."""
        props: dict[str, Any] = {
            STATE_KEY: self.state.value, _START: _iso(self.start_time), _END: _iso(self.end_time),
            PARAMETERS_KEY: dict(self.parameters), _ROOT: self.pipeline_root, _CACHE: self.enable_cache,
            IR_KEY: self.ir, _ATTEMPTS: self.attempts, _HOST: self.host, _PID: self.pid, _RUNNER: self.runner,
        }
        optional = {_RESUMED: _iso(self.resumed_time), _NODE_STATES: self.node_states or None,
                    _ERROR: self.error, _PARTIAL: self.partial or None, _DELETED: _iso(self.deleted_time),
                    _DELETE_REASON: self.delete_reason}
        props.update({k: v for k, v in optional.items() if v is not None})
        return props

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; ``None`` while it runs or when a time is unknown."""
        if self.start_time is None or self.end_time is None:
            return None
        # both are stamped at millisecond precision by different calls: never below 0
        return max(0.0, round((self.end_time - self.start_time).total_seconds(), 3))

    @property
    def node_order(self) -> list[str]:
        """The node ids in the IR's order (empty if the IR was not read)."""
        return [str(n.get("id")) for n in (self.ir or {}).get("nodes") or [] if n.get("id")]

    def summary(self) -> dict[str, Any]:
        """The record as JSON-able values, without the IR (for ``jfx runs`` and the UI)."""
        return {
            "run_id": self.run_id, "pipeline": self.pipeline, "state": self.state.value,
            "start_time": _iso(self.start_time), "end_time": _iso(self.end_time),
            "duration_s": self.duration_s, "parameters": dict(self.parameters), "pipeline_root": self.pipeline_root,
            "enable_cache": self.enable_cache, "attempts": self.attempts, "runner": self.runner,
            "host": self.host, "pid": self.pid, "resumed_time": _iso(self.resumed_time),
            "node_states": dict(self.node_states), "error": self.error, "partial": dict(self.partial),
            "deleted_time": _iso(self.deleted_time), "delete_reason": self.delete_reason,
        }

    @property
    def deleted(self) -> bool:
        """Whether ``jfx gc`` deleted the run."""
        return self.deleted_time is not None


def node_attempts(store: MetadataStore, run_context_id: int, node_id: str) -> list[ExecutionRecord]:
    """Every execution of ``node_id`` in one run, oldest first: a retried node's attempts
    (and a resumed run's reruns), each its own execution."""
    return store.get_executions(node_id=node_id, context_id=run_context_id, options=ListOptions(order_by="id"))


def get_run(store: MetadataStore, run_id: str) -> RunRecord | None:
    """The run ``run_id``, or ``None``."""
    ctx = store.get_context_by_name(PIPELINE_RUN, run_id)
    return None if ctx is None else RunRecord.from_context(ctx)


def list_runs(store: MetadataStore, pipeline: str | None = None, options: ListOptions | None = None, *,
              include_deleted: bool = False) -> list[RunRecord]:
    """The runs (of one pipeline, if named), newest first unless ``options`` say otherwise.

    Runs that ``jfx gc`` deleted are left out unless ``include_deleted``.
    """
    return [RunRecord.from_context(c, pipeline) for c in store.get_runs(pipeline, options,
                                                                         include_deleted=include_deleted)]


def list_run_summaries(store: MetadataStore, pipeline: str | None = None, options: ListOptions | None = None, *,
                       include_deleted: bool = False) -> list[RunRecord]:
    """The runs :func:`list_runs` finds, with only what a run list shows: state, times, parameters,
    runner, attempts and deletion time. The rest (the IR among it) reads as unknown.

    Each is read from the run columns, never from the properties, which hold the run's whole IR.
    """
    return [RunRecord.from_context(c, pipeline) for c in store.get_run_summaries(pipeline, options,
                                                                                  include_deleted=include_deleted)]


def deletion_properties(when: datetime, reason: str) -> dict[str, Any]:
    """The run properties that record ``jfx gc`` deleting a run (merged into its context's)."""
    return {_DELETED: _iso(when), _DELETE_REASON: reason}


def create_run(store: MetadataStore, pipeline: str, record: RunRecord) -> RunRecord:
    """Store a new run of ``pipeline``, or return the one of that id that already exists.

    Several processes (a Kubeflow run's tasks) may race to create one run: the first
    creates it and the others get it unchanged, with the values it was created with.
    A ``start_time`` left unset is now.

    Returns:
        The stored record.

    Raises:
        InvalidArgumentError: a run of that id exists, of another pipeline.
    """
    pipeline_ctx = store.get_or_create_context(PIPELINE, pipeline)
    if record.start_time is None:
        record = replace(record, start_time=_now())
    store.get_or_create_context(PIPELINE_RUN, record.run_id, parent_id=pipeline_ctx.id,
                                properties=record.to_properties())
    ctx = store.get_context_by_name(PIPELINE_RUN, record.run_id)
    assert ctx is not None  # just created, or found
    if ctx.parent_id != pipeline_ctx.id:
        raise InvalidArgumentError(f"run {record.run_id!r} is not a run of pipeline {pipeline!r}")
    return RunRecord.from_context(ctx, pipeline)


def reopen_run(store: MetadataStore, run: RunRecord, *, host: str, pid: int, runner: str) -> RunRecord:
    """Mark a finished run RUNNING again for one more attempt, owned by ``host``/``pid``."""
    assert run.context_id is not None
    ctx = store.update_context_properties(run.context_id, {
        STATE_KEY: RunState.RUNNING.value, _ATTEMPTS: run.attempts + 1, _RESUMED: _iso(_now()), _END: None,
        _HOST: host, _PID: pid, _RUNNER: runner,
    })
    return RunRecord.from_context(ctx, run.pipeline)


def finish_run(store: MetadataStore, context_id: int, state: RunState, node_states: Mapping[str, str],
               error: str | None = None) -> None:
    """Record a run's end: its state, the time, each node's state and the orchestrator's error."""
    update: dict[str, Any] = {STATE_KEY: RunState(state).value, _END: _iso(_now()),
                              _NODE_STATES: {k: str(v) for k, v in node_states.items()}}
    if error:
        update[_ERROR] = error
    store.update_context_properties(context_id, update)


def record_ir(store: MetadataStore, context_id: int, ir: dict[str, Any]) -> None:
    """Record the IR a run now runs: its dynamic ForEach loops expanded into their copies."""
    store.update_context_properties(context_id, {IR_KEY: ir})


def abandon_run(store: MetadataStore, context_id: int) -> None:
    """Record that a run's process died before it recorded an end."""
    store.update_context_properties(context_id, {STATE_KEY: RunState.ABANDONED.value, _END: _iso(_now())})


def record_partial(store: MetadataStore, context_id: int, selected: list[str], reused_from_run: str | None) -> None:
    """Record a partial run's selected nodes and the run whose outputs it reuses."""
    store.update_context_properties(context_id, {_PARTIAL: {"selected": sorted(selected),
                                                            "reused_from_run": reused_from_run}})
