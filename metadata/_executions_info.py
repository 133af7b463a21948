"""What jfx keeps about one execution, typed: the node states and the execution's record.

The launcher records, beside an execution's state, why it ran (``cache_miss_reason``),
whose outputs a cache hit reused (``cached_from``), why it was skipped, whether it
halted the pipeline, where its log is, ... in :attr:`ExecutionRecord.properties`.
:class:`ExecutionInfo` is the one writer and the one reader of those keys: the
launcher, the runners, the CLI, :class:`~jfx.metadata.Client` and the UI all go
through it, so a key is spelled in this module only.

:class:`NodeState` is how a node of a run ended, and :func:`node_state_of` the one
mapping from an execution's state to it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from jfx.metadata._records import ExecutionRecord, ExecutionState

__all__ = ["ExecutionInfo", "LOG_URI_KEY", "NodeState", "node_state_of"]

# The property holding the captured log's URI (:attr:`ExecutionInfo.log_uri`), for queries that
# read it in SQL rather than through ExecutionInfo.
LOG_URI_KEY = "log_uri"


class NodeState(str, enum.Enum):
    """How a node of a run ended (or where it is): the states the runners, CLI and UI show.

    A ``str`` enum whose members print as their values, so ``NodeState.COMPLETE ==
    "complete"`` and JSON holds the plain string.

    Example:
        >>> NodeState.CACHED == "cached", f"{NodeState.CACHED}", NodeState.CACHED.succeeded
        (True, 'cached', True)
    """

    COMPLETE = "complete"
    CACHED = "cached"
    REUSED = "reused"  # left out of a partial run: outputs taken from an earlier run
    FAILED = "failed"
    ABANDONED = "abandoned"  # the process running it died (killed, crashed, lost machine)
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    PENDING = "pending"
    RUNNING = "running"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def succeeded(self) -> bool:
        """Whether its outputs exist for downstream nodes (COMPLETE, CACHED or REUSED)."""
        return self in (NodeState.COMPLETE, NodeState.CACHED, NodeState.REUSED)

    @property
    def failed(self) -> bool:
        """Whether it ended without outputs through an error: FAILED, ABANDONED or CANCELLED."""
        return self in (NodeState.FAILED, NodeState.ABANDONED, NodeState.CANCELLED)


# ABANDONED stays its own node state rather than "failed": the store tells a component
# that raised (FAILED, with a traceback to read) from a process that died under it
# (ABANDONED: look for an OOM kill or a lost machine), and the UI shows the difference.
# Whatever asks "did it fail" uses NodeState.failed, which holds for both.
_NODE_STATE = {
    ExecutionState.NEW: NodeState.PENDING,
    ExecutionState.RUNNING: NodeState.RUNNING,
    ExecutionState.COMPLETE: NodeState.COMPLETE,
    ExecutionState.CACHED: NodeState.CACHED,
    ExecutionState.FAILED: NodeState.FAILED,
    ExecutionState.SKIPPED: NodeState.SKIPPED,
    ExecutionState.CANCELLED: NodeState.CANCELLED,
    ExecutionState.ABANDONED: NodeState.ABANDONED,
}


def node_state_of(state: ExecutionState | str, *, reused: bool = False, run_over: bool = False) -> NodeState:
    """The node state shown for an execution in ``state``.

    Args:
        state: The execution's state.
        reused: The execution records outputs reused from another run by a partial run
            (:attr:`ExecutionInfo.reused_from_run`): a CACHED one is then REUSED.
        run_over: The run has ended: an execution still NEW or RUNNING lost its process,
            so the node FAILED.

    Example:
        >>> node_state_of(ExecutionState.ABANDONED), node_state_of("CACHED", reused=True)
        (<NodeState.ABANDONED: 'abandoned'>, <NodeState.REUSED: 'reused'>)
    """
    node = _NODE_STATE[ExecutionState(state)]
    if reused and node == NodeState.CACHED:
        return NodeState.REUSED
    if run_over and node in (NodeState.PENDING, NodeState.RUNNING):
        return NodeState.FAILED
    return node


@dataclass(frozen=True)
class ExecutionInfo:
    """What jfx records about one execution beside its state: the typed view of its properties.

    Attributes:
        pipeline: The pipeline's name.
        run_id: The run the execution belongs to.
        pid: The process that ran it (reaping judges whether it is alive).
        host: The host of that process.
        code_version: The component's code version.
        cache_material: What the cache key was hashed from (component, code version,
            parameters, input fingerprints, output types, external fingerprint).
        cache_miss_reason: Why the node ran instead of hitting the cache.
        cached_from: For a cache hit, the execution whose outputs were reused.
        reused_from: For a node left out of a partial run, the execution (of another
            run) whose outputs were reused.
        reused_from_run: That run's id.
        error_message: A one-line error of a failed execution (the whole traceback is
            :attr:`ExecutionRecord.error`).
        skip_reason: Why a SKIPPED execution did not run.
        by_condition: Skipped because a ``jfx.If`` condition was false (here or upstream).
        halted: The reason a component halted the pipeline (``HaltPipeline``).
        log_uri: The log the launcher captured.
        attempt: Which attempt of the node this is (1 for the first).
        resolved: For a resolver node, output key → the artifact id it picked.
        cleanup_pending: The execution failed while its object store was unreachable, so
            what it had uploaded (never recorded, never read) is still there; the next
            reaping removes it and clears this.
        extra: Properties jfx does not know (kept, and written back, as they are).

    Example:
        >>> info = ExecutionInfo(run_id="r1", cached_from=7)
        >>> info.to_properties()
        {'run_id': 'r1', 'cached_from': 7}
        >>> ExecutionInfo.from_properties(info.to_properties()) == info
        True
    """

    pipeline: str | None = None
    run_id: str | None = None
    pid: int | None = None
    host: str | None = None
    code_version: str | None = None
    cache_material: dict[str, Any] | None = None
    cache_miss_reason: str | None = None
    cached_from: int | None = None
    reused_from: int | None = None
    reused_from_run: str | None = None
    error_message: str | None = None
    skip_reason: str | None = None
    by_condition: bool = False
    halted: str | None = None
    log_uri: str | None = None
    attempt: int = 1
    resolved: dict[str, int | None] | None = None
    cleanup_pending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_properties(cls, properties: dict[str, Any]) -> ExecutionInfo:
        """The info held in an execution's properties (unknown keys go to :attr:`extra`)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in properties.items() if k in known and v is not None}
        values["by_condition"] = bool(values.get("by_condition", False))
        values["cleanup_pending"] = bool(values.get("cleanup_pending", False))
        attempt = values.get("attempt", 1)
        values["attempt"] = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 1
        return cls(**values, extra={k: v for k, v in properties.items() if k not in known})

    @classmethod
    def from_record(cls, execution: ExecutionRecord) -> ExecutionInfo:
        """The info recorded on ``execution``."""
        return cls.from_properties(execution.properties)

    def to_properties(self) -> dict[str, Any]:
        """The properties to record: the fields that are set (defaults are left out), then :attr:`extra`."""
        props: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None or (f.name in ("by_condition", "cleanup_pending") and not value) \
                    or (f.name == "attempt" and value == 1):
                continue
            props[f.name] = value
        return {**props, **self.extra}

    @property
    def source_execution(self) -> int | None:
        """The execution whose outputs this one reused: a cache hit's or a partial run's source."""
        return self.cached_from if self.cached_from is not None else self.reused_from

    @property
    def is_reused(self) -> bool:
        """Whether a partial run recorded it for a node it left out (outputs of another run)."""
        return bool(self.reused_from_run)

    def node_state(self, execution: ExecutionRecord, *, run_over: bool = False) -> NodeState:
        """The node state of ``execution`` (whose info this is); see :func:`node_state_of`."""
        return node_state_of(execution.state, reused=self.is_reused, run_over=run_over)

    def error_line(self, execution: ExecutionRecord) -> str | None:
        """A one-line error: the recorded message, else the traceback's last line."""
        if self.error_message:
            return self.error_message
        return execution.error.strip().splitlines()[-1] if execution.error.strip() else None
