"""Run bookkeeping shared by every runner: start, resume, finish, and reap.

A run is a ``pipeline_run`` context (child of the ``pipeline`` context) whose name is
the run id. Its properties hold the run's state, the resolved parameters, the IR it
ran, the pipeline root, who runs it (host, pid) and, once finished, each node's state.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from jfx._config import default_pipeline_root, resolve_metadata_url
from jfx.errors import InvalidArgumentError, NotFoundError, RunInterruptedError
from jfx.metadata import PIPELINE, PIPELINE_RUN, ContextRecord, ExecutionState, ListOptions, MetadataStore
from jfx.metadata._executions_info import ExecutionInfo
from jfx.orchestrators._launcher import NodeOutcome, NodeState, RunInfo
from jfx.orchestrators._publish import discard_staging, staging_dir
from jfx.pipelines import Pipeline, PipelineIR

__all__ = ["RunResult", "RunState", "as_ir", "start_run", "finish_run", "interrupt_run", "cancel_running",
           "reap_abandoned", "new_run_id"]


class RunState:
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    ABANDONED = "ABANDONED"


@dataclass
class RunResult:
    """What a run did: its id, final state and each node's outcome.

    Example: ``result.nodes["trainer"].outputs["model"][0].uri``.
    """

    run_id: str
    pipeline_name: str
    state: str
    nodes: dict[str, NodeOutcome] = field(default_factory=dict)
    metadata_url: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == RunState.COMPLETE

    def outputs(self, node_id: str) -> dict[str, Any]:
        return self.nodes[node_id].outputs


def as_ir(pipeline: Pipeline | PipelineIR | dict[str, Any]) -> PipelineIR:
    if isinstance(pipeline, PipelineIR):
        return pipeline
    if isinstance(pipeline, Pipeline):
        return pipeline.compile()
    if isinstance(pipeline, dict):
        return PipelineIR.from_dict(pipeline)
    raise InvalidArgumentError(f"expected a Pipeline, a PipelineIR or an IR dict, got {type(pipeline).__name__}")


def new_run_id(pipeline_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline_name}-{stamp}-{secrets.token_hex(3)}"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def start_run(
    store: MetadataStore,
    ir: PipelineIR,
    *,
    runner: str,
    parameters: dict[str, Any] | None = None,
    enable_cache: bool = True,
    pipeline_root: str | None = None,
    run_id: str | None = None,
    resume_run_id: str | None = None,
) -> tuple[RunInfo, dict[str, NodeOutcome]]:
    """Create (or reopen, to resume) a run; return its RunInfo and already-done nodes.

    Resuming reuses the run's parameters and pipeline root; nodes that completed (or
    hit the cache) in it are returned as done, everything else runs again.
    """
    pipeline_ctx = store.get_or_create_context(PIPELINE, ir.name)
    assert pipeline_ctx.id is not None
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "runner": runner}
    if resume_run_id:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, resume_run_id)
        if run_ctx is None:
            raise NotFoundError(f"no run {resume_run_id!r} in the metadata store {store.url}")
        if run_ctx.parent_id != pipeline_ctx.id:
            raise InvalidArgumentError(f"run {resume_run_id!r} is not a run of pipeline {ir.name!r}")
        if run_ctx.properties.get("state") == RunState.RUNNING and _alive(run_ctx.properties):
            raise InvalidArgumentError(
                f"run {resume_run_id!r} is still running (pid {run_ctx.properties.get('pid')}); wait for it or stop it"
            )
        if parameters:
            raise InvalidArgumentError("a resumed run keeps its parameters; do not pass --param with --resume")
        values = dict(run_ctx.properties.get("parameters") or {})
        root = run_ctx.properties.get("pipeline_root") or str(default_pipeline_root())
        attempts = int(run_ctx.properties.get("attempts", 1)) + 1
        assert run_ctx.id is not None
        store.update_context_properties(
            run_ctx.id, {"state": RunState.RUNNING, "attempts": attempts, "resumed_time": _now_iso(),
                         "end_time": None, **owner},
        )
        done: dict[str, NodeOutcome] = {}
        infos = [(e.node_id, ExecutionInfo.from_record(e)) for e in store.get_executions_by_context(run_ctx.id)]
        halted = {node_id for node_id, info in infos if info.halted}
        reused = {node_id: info for node_id, info in infos if info.is_reused}  # by a partial run
        for node in ir.nodes:
            outputs = store.get_node_outputs(run_ctx.id, node.id)
            if outputs is not None and node.id in reused:
                source = reused[node.id]
                done[node.id] = NodeOutcome(node.id, NodeState.REUSED, outputs=outputs, cached_from=source.reused_from,
                                            reused_from_run=source.reused_from_run)
            elif outputs is not None and node.id not in halted:  # a halting node is judged again
                done[node.id] = NodeOutcome(node.id, NodeState.COMPLETE, outputs=outputs,
                                            cache_miss_reason="completed in an earlier attempt of this run")
        info = RunInfo(ir.name, resume_run_id, pipeline_ctx.id, run_ctx.id, root, enable_cache, values)
        return info, done

    values = ir.resolve_parameters(parameters)
    root = str(pipeline_root or ir.pipeline_root or default_pipeline_root())
    run_id = run_id or new_run_id(ir.name)
    [run_ctx_id] = store.put_contexts([
        ContextRecord(
            PIPELINE_RUN, run_id, parent_id=pipeline_ctx.id,
            properties={"state": RunState.RUNNING, "start_time": _now_iso(), "end_time": None,
                        "parameters": values, "pipeline_root": root, "enable_cache": enable_cache,
                        "ir": ir.to_dict(), "attempts": 1, **owner},
        )
    ])
    return RunInfo(ir.name, run_id, pipeline_ctx.id, run_ctx_id, root, enable_cache, values), {}


def skipped_by_upstream(node_id: str, blocked: list[NodeOutcome]) -> NodeOutcome:
    """The outcome of a node not run because ``blocked`` upstream nodes did not succeed."""
    up = next((o for o in blocked if not o.by_condition), blocked[0])
    why = "halted the pipeline" if up.halted else up.state
    return NodeOutcome(node_id, NodeState.SKIPPED, error=f"upstream node {up.node_id} {why}",
                       by_condition=all(o.by_condition for o in blocked))


def run_state(outcomes: dict[str, NodeOutcome], left_out: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """COMPLETE if every node succeeded, was skipped by a false condition, or was left out of
    a partial run; else FAILED."""
    ok = all(o.succeeded or o.state == NodeState.SKIPPED and (o.by_condition or k in left_out)
             for k, o in outcomes.items())
    return RunState.COMPLETE if ok else RunState.FAILED


def finish_run(store: MetadataStore, run: RunInfo, state: str, outcomes: dict[str, NodeOutcome]) -> None:
    store.update_context_properties(
        run.run_context_id,
        {"state": state, "end_time": _now_iso(), "node_states": {k: o.state for k, o in outcomes.items()}},
    )


def _alive(props: dict[str, Any]) -> bool:
    """Whether the process recorded in ``props`` (host, pid) still exists."""
    if props.get("host") != socket.gethostname():
        return True  # another machine's process: assume it is alive
    pid = props.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# A run killed before any of its nodes started has no RUNNING execution to find it by;
# such a run is among the newest, so only these many newest runs are looked at for it
# (each run's properties hold its whole IR: loading every run would grow with history).
REAP_RECENT_RUNS = 100


def reap_abandoned(store: MetadataStore) -> list[int]:
    """Mark RUNNING executions and runs whose process died (killed, crashed) ABANDONED.

    Only processes of this host are judged. What each left on disk is removed (see
    :func:`~jfx.orchestrators._publish.discard_staging`): its staging directory, the
    temporary paths its component registered, and outputs it renamed into place but
    never recorded. Returns the ids of the executions marked.
    """
    marked: list[int] = []
    for execution in store.get_executions(state=ExecutionState.RUNNING):
        info = ExecutionInfo.from_record(execution)
        if _alive({"host": info.host, "pid": info.pid}):
            continue  # a live execution's folders are its own, whichever process reaps
        assert execution.id is not None
        run_ctx = store.get_context_by_name(PIPELINE_RUN, info.run_id or "")
        root = run_ctx.properties.get("pipeline_root") if run_ctx is not None else None
        pipeline = info.pipeline
        if root and pipeline:
            # before it is marked: a reaper killed in between leaves it RUNNING, to be reaped again
            discard_staging(staging_dir(root, pipeline, execution.node_id, execution.id),
                            recorded=lambda uri: is_recorded(store, uri))
        store.put_execution(replace(
            execution, state=ExecutionState.ABANDONED, end_time=datetime.now(timezone.utc),
            error=f"the process running it (pid {info.pid}) exited while it ran",
        ))
        marked.append(execution.id)
        if run_ctx is not None:
            _abandon_if_dead(store, run_ctx)
    for run_ctx in store.get_runs(options=ListOptions(limit=REAP_RECENT_RUNS, order_by="id", descending=True)):
        _abandon_if_dead(store, run_ctx)
    return marked


def is_recorded(store: MetadataStore, uri: str) -> bool:
    """Whether an artifact record names ``uri`` (then its folder is never reaped)."""
    return bool(store.get_artifacts(uri=uri, options=ListOptions(limit=1)))


def _abandon_if_dead(store: MetadataStore, run_ctx: ContextRecord) -> None:
    if run_ctx.properties.get("state") == RunState.RUNNING and not _alive(run_ctx.properties):
        assert run_ctx.id is not None
        store.update_context_properties(run_ctx.id, {"state": RunState.ABANDONED, "end_time": _now_iso()})
        run_ctx.properties["state"] = RunState.ABANDONED


def metadata_url_for(ir: PipelineIR, override: str | None) -> str:
    """The metadata URL: an explicit override, else the pipeline's, else the default."""
    return resolve_metadata_url(override or ir.metadata_url)


def cancel_running(store: MetadataStore, run: RunInfo) -> None:
    """Mark this run's RUNNING executions CANCELLED and drop their staging directories.

    A node thread still inside user code sees the cancel flag when it returns and
    publishes nothing.
    """
    for execution in store.get_executions_by_context(run.run_context_id):
        if execution.state == ExecutionState.RUNNING:
            store.put_execution(replace(
                execution, state=ExecutionState.CANCELLED, end_time=datetime.now(timezone.utc),
                error="the run was interrupted",
            ))
            assert execution.id is not None
            discard_staging(staging_dir(run.pipeline_root, run.pipeline_name, execution.node_id, execution.id))


def interrupt_run(store: MetadataStore, ir: PipelineIR, run: RunInfo, outcomes: dict[str, NodeOutcome],
                  progress: Any) -> RunInterruptedError:
    """Ctrl-C: cancel the running executions, record the run CANCELLED; return the error to raise."""
    cancel_running(store, run)
    for node in ir.nodes:
        outcomes.setdefault(node.id, NodeOutcome(node.id, NodeState.CANCELLED))
    finish_run(store, run, RunState.CANCELLED, outcomes)
    progress.finish(RunState.CANCELLED)
    return RunInterruptedError(
        f"run {run.run_id} was interrupted; rerun what did not complete with: jfx run --resume {run.run_id}"
    )
