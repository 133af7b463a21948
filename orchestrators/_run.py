"""Run bookkeeping shared by every runner: start, resume, finish, and reap.

A run is a ``pipeline_run`` context (child of the ``pipeline`` context) whose name is
the run id. What is recorded about it (state, parameters, IR, pipeline root, owner,
each node's final state) is a :class:`~jfx.metadata._runs.RunRecord`, written and
read only through :mod:`jfx.metadata._runs`. :class:`RunSession` is the lifecycle
every runner shares (open the store, reap, start or resume the run, prepare a partial
run, report progress, record the end); :class:`Runner` is the interface every runner
implements.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from jfx import _storage as storage
from jfx._config import default_pipeline_root, resolve_metadata_url
from jfx.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    RunInterruptedError,
)
from jfx.metadata import PIPELINE, ExecutionState, ListOptions, MetadataStore, _runs
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._runs import (
    RunRecord,
    RunState,
    abandon_run,
    create_run,
    get_run,
    list_run_summaries,
    reopen_run,
)
from jfx.orchestrators._launcher import NodeOutcome, NodeState, RunInfo
from jfx.orchestrators._partial import choose_before_run, prepare_partial
from jfx.orchestrators._progress import Progress, make_progress
from jfx.orchestrators._publish import discard_execution
from jfx.pipelines import Pipeline, PipelineIR

__all__ = [
    "RunResult",
    "RunSession",
    "RunState",
    "Runner",
    "as_ir",
    "cancel_running",
    "finish_run",
    "interrupt_run",
    "join_run",
    "new_run_id",
    "reap_abandoned",
    "start_run",
]


@dataclass
class RunResult:
    """What a run did: its id, final state and each node's outcome.

    Example: ``result.nodes["trainer"].outputs["model"][0].uri``.
    """

    run_id: str
    pipeline_name: str
    state: RunState
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


def _owner(runner: str) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "runner": runner}


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

    Raises:
        AlreadyExistsError: a run named ``run_id`` exists (resume it instead).
    """
    if not resume_run_id:
        run_id = run_id or new_run_id(ir.name)
        if get_run(store, run_id) is not None:
            raise AlreadyExistsError(f"a run {run_id!r} already exists in the metadata store {store.url}; "
                                     f"resume it with: jfx run --resume {run_id}")
        return join_run(store, ir, run_id, runner=runner, parameters=parameters, enable_cache=enable_cache,
                        pipeline_root=pipeline_root), {}
    pipeline_ctx = store.get_or_create_context(PIPELINE, ir.name)
    record = get_run(store, resume_run_id)
    if record is None:
        raise NotFoundError(f"no run {resume_run_id!r} in the metadata store {store.url}")
    if record.pipeline_context_id != pipeline_ctx.id:
        raise InvalidArgumentError(f"run {resume_run_id!r} is not a run of pipeline {ir.name!r}")
    if record.state == RunState.RUNNING and _alive(record.host, record.pid):
        raise InvalidArgumentError(f"run {resume_run_id!r} is still running (pid {record.pid}); wait for it or stop it")
    if parameters:
        raise InvalidArgumentError("a resumed run keeps its parameters; do not pass --param with --resume")
    record = reopen_run(store, record, **_owner(runner))
    info = _run_info(ir, record, str(default_pipeline_root()))
    return info, done_earlier(store, info, [n.id for n in ir.nodes])


def done_earlier(store: MetadataStore, run: RunInfo, node_ids: list[str]) -> dict[str, NodeOutcome]:
    """Which of ``node_ids`` completed (or were reused) in an earlier attempt of this run.

    For a resumed run: its nodes when it starts, and the copies of a dynamic ForEach when
    the loop is expanded.
    """
    done: dict[str, NodeOutcome] = {}
    infos = [(e.node_id, ExecutionInfo.from_record(e)) for e in store.get_executions_by_context(run.run_context_id)]
    ran = {node_id for node_id, _ in infos}
    halted = {node_id for node_id, x in infos if x.halted}
    reused = {node_id: x for node_id, x in infos if x.is_reused}  # by a partial run
    for node_id in node_ids:
        outputs = store.get_node_outputs(run.run_context_id, node_id) if node_id in ran else None
        if outputs is not None and node_id in reused:
            source = reused[node_id]
            done[node_id] = NodeOutcome(node_id, NodeState.REUSED, outputs=outputs, cached_from=source.reused_from,
                                        reused_from_run=source.reused_from_run)
        elif outputs is not None and node_id not in halted:  # a halting node is judged again
            done[node_id] = NodeOutcome(node_id, NodeState.COMPLETE, outputs=outputs,
                                        cache_miss_reason="completed in an earlier attempt of this run")
    return done


def join_run(
    store: MetadataStore,
    ir: PipelineIR,
    run_id: str,
    *,
    runner: str,
    parameters: dict[str, Any] | None = None,
    enable_cache: bool = True,
    pipeline_root: str | None = None,
    owner: dict[str, Any] | None = None,
) -> RunInfo:
    """Get or create the run ``run_id``: the first caller creates it, later ones join it.

    For runners whose nodes run in separate processes that start on their own (one
    Kubeflow pod per node): every node calls it with the same arguments, and all of
    them land in one run. Safe when several race to create it. A run that exists
    keeps the parameters and pipeline root it was created with.

    Args:
        owner: who runs it (``host``, ``pid``), recorded for :func:`reap_abandoned`;
            default: this process.

    Raises:
        InvalidArgumentError: ``run_id`` names a run of another pipeline.
    """
    values = ir.resolve_parameters(parameters)
    # one line naming the URI and what to fix (no bucket, credentials, endpoint), before any node runs
    root = storage.check_root(str(pipeline_root or ir.pipeline_root or default_pipeline_root()))
    who = {**_owner(runner), **(owner or {})}
    record = create_run(store, ir.name, RunRecord(
        run_id, state=RunState.RUNNING, parameters=values, pipeline_root=root, enable_cache=enable_cache,
        ir=ir.to_dict(), host=who["host"], pid=who["pid"], runner=who["runner"],
    ))
    return _run_info(ir, record, root)


def _run_info(ir: PipelineIR, record: RunRecord, root: str) -> RunInfo:
    assert record.context_id is not None and record.pipeline_context_id is not None
    return RunInfo(ir.name, record.run_id, record.pipeline_context_id, record.context_id,
                   record.pipeline_root or root, record.enable_cache, dict(record.parameters))


def skipped_by_upstream(node_id: str, blocked: list[NodeOutcome]) -> NodeOutcome:
    """The outcome of a node not run because ``blocked`` upstream nodes did not succeed."""
    up = next((o for o in blocked if not o.by_condition), blocked[0])
    why = "halted the pipeline" if up.halted else up.state
    return NodeOutcome(node_id, NodeState.SKIPPED, error=f"upstream node {up.node_id} {why}",
                       by_condition=all(o.by_condition for o in blocked))


def run_state(outcomes: dict[str, NodeOutcome], left_out: set[str] | frozenset[str] = frozenset()) -> RunState:
    """COMPLETE if every node succeeded, was skipped by a false condition, or was left out of
    a partial run; else FAILED."""
    ok = all(o.succeeded or (o.state == NodeState.SKIPPED and (o.by_condition or k in left_out))
             for k, o in outcomes.items())
    return RunState.COMPLETE if ok else RunState.FAILED


def finish_run(store: MetadataStore, run: RunInfo, state: RunState, outcomes: dict[str, NodeOutcome],
               error: str | None = None) -> None:
    """Record the run's end: its state, each node's state and the orchestrator's error, if any."""
    _runs.finish_run(store, run.run_context_id, state, {k: o.state for k, o in outcomes.items()}, error)


def _alive(host: Any, pid: Any) -> bool:
    """Whether the process ``pid`` on ``host`` still exists."""
    if host != socket.gethostname():
        return True  # another machine's process: assume it is alive
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
# (from the run columns; loading every run would grow with history).
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
        if _alive(info.host, info.pid):
            continue  # a live execution's folders are its own, whichever process reaps
        assert execution.id is not None
        run = get_run(store, info.run_id or "")
        root = run.pipeline_root if run is not None else None
        pipeline = info.pipeline
        if root and pipeline:
            # before it is marked: a reaper killed in between leaves it RUNNING, to be reaped again
            discard_execution(root, pipeline, execution.node_id, execution.id,
                              recorded=lambda uri: is_recorded(store, uri))
        store.put_execution(replace(
            execution, state=ExecutionState.ABANDONED, end_time=datetime.now(timezone.utc),
            error=f"the process running it (pid {info.pid}) exited while it ran",
        ))
        marked.append(execution.id)
        if run is not None:
            _abandon_if_dead(store, run)
    # the newest runs' states from the run columns; only a RUNNING one's properties (its owner) are read
    for summary in list_run_summaries(store, options=ListOptions(limit=REAP_RECENT_RUNS, order_by="id", descending=True)):
        if summary.state == RunState.RUNNING and (run := get_run(store, summary.run_id)) is not None:
            _abandon_if_dead(store, run)
    _finish_pending_cleanups(store)
    return marked


# Failed executions whose store was unreachable when they failed are among the newest.
REAP_RECENT_FAILED = 200


def _finish_pending_cleanups(store: MetadataStore) -> None:
    """Remove what failed executions uploaded while their object store was unreachable
    (:attr:`ExecutionInfo.cleanup_pending`), now that it may be reachable again."""
    recent = store.get_executions(state=ExecutionState.FAILED,
                                  options=ListOptions(limit=REAP_RECENT_FAILED, order_by="id", descending=True))
    for execution in recent:
        info = ExecutionInfo.from_record(execution)
        if not info.cleanup_pending or not info.pipeline:
            continue
        assert execution.id is not None
        run = get_run(store, info.run_id or "")
        if run is None or not run.pipeline_root:
            continue
        try:
            discard_execution(run.pipeline_root, info.pipeline, execution.node_id, execution.id,
                              recorded=lambda uri: is_recorded(store, uri), strict=True)
        except OSError:
            continue  # still unreachable: the next start tries again
        store.put_execution(replace(execution, properties=replace(info, cleanup_pending=False).to_properties()))


def is_recorded(store: MetadataStore, uri: str) -> bool:
    """Whether an artifact record names ``uri`` (then its folder is never reaped)."""
    return bool(store.get_artifacts(uri=uri, options=ListOptions(limit=1)))


def _abandon_if_dead(store: MetadataStore, run: RunRecord) -> None:
    if run.state == RunState.RUNNING and not _alive(run.host, run.pid):
        assert run.context_id is not None
        # re-read: the same run may have been marked through an execution a moment ago
        latest = get_run(store, run.run_id)
        if latest is not None and latest.state == RunState.RUNNING:
            abandon_run(store, run.context_id)
            _discard_run_scratch(latest)


def _discard_run_scratch(run: RunRecord) -> None:
    """Remove what a dead BeamDagRunner driver left on an object store for its run's outcomes
    (``<root>/<pipeline>/.beam/jfx-dag-<run id>-*``; a local one is in a temporary folder)."""
    root, pipeline = run.pipeline_root, run.pipeline or (run.ir or {}).get("pipeline", {}).get("name")
    if not root or not pipeline or not storage.is_remote(root):
        return
    folder = storage.join(root, pipeline, ".beam")
    try:
        fs, path = storage.filesystem(folder)
        for entry in fs.ls(path, detail=False):
            if entry.rstrip("/").rsplit("/", 1)[-1].startswith(f"jfx-dag-{run.run_id}-"):
                storage.remove(f"{storage.scheme_of(root)}://{entry}")
    except FileNotFoundError:
        return
    except OSError as err:
        print(f"jfx: could not clean up {folder}: {err}", file=sys.stderr)


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
            discard_execution(run.pipeline_root, run.pipeline_name, execution.node_id, execution.id)


def interrupt_run(store: MetadataStore, ir: PipelineIR, run: RunInfo, outcomes: dict[str, NodeOutcome],
                  progress: Progress) -> RunInterruptedError:
    """Ctrl-C: cancel the running executions, record the run CANCELLED; return the error to raise."""
    cancel_running(store, run)
    for node in ir.nodes:
        outcomes.setdefault(node.id, NodeOutcome(node.id, NodeState.CANCELLED))
    finish_run(store, run, RunState.CANCELLED, outcomes)
    progress.finish(RunState.CANCELLED)
    return RunInterruptedError(
        f"run {run.run_id} was interrupted; rerun what did not complete with: jfx run --resume {run.run_id}"
    )


@runtime_checkable
class Runner(Protocol):
    """What every runner implements: run a pipeline, return what each node did.

    :class:`~jfx.orchestrators.LocalDagRunner`, :class:`~jfx.orchestrators.BeamDagRunner`
    and :class:`~jfx.orchestrators.KubeflowDagRunner` (with ``local=True``) all do; the
    ``jfx run --runner NAME`` command looks one up by name and calls this.
    """

    def run(
        self,
        pipeline: Pipeline | PipelineIR | dict[str, Any],
        *,
        parameters: dict[str, Any] | None = None,
        enable_cache: bool = True,
        run_id: str | None = None,
        resume_run_id: str | None = None,
        from_nodes: list[str] | None = None,
        to_nodes: list[str] | None = None,
        from_run: str | None = None,
    ) -> RunResult:
        """Run ``pipeline`` (see :meth:`LocalDagRunner.run` for the arguments)."""
        ...


class RunSession:
    """One run's lifecycle, the same for every runner.

    Opening it opens the metadata store, reaps runs and executions whose process died,
    refuses a partial run with nothing to reuse (before any run exists), starts the run
    (or resumes it, or joins it where the nodes' own processes create it), records the
    nodes a partial run reuses or leaves out, and starts the progress display. The runner
    then runs the nodes that are not in :attr:`outcomes` yet, and ends the session with
    :meth:`finish` (or :meth:`interrupt` on Ctrl-C). Closing it closes the store.

    Attributes:
        store: the open metadata store.
        url: its URL (unmasked: worker processes open it again).
        ir: the pipeline's IR.
        run: what the launcher needs to know about the run.
        outcomes: node id → outcome, for the nodes already done (a resumed run's
            completed nodes, a partial run's reused and left-out nodes); the runner
            adds the others.
        selected: a partial run's selected nodes (``None`` for a full run).
        progress: the progress display.
        source: the earlier run a partial run reuses (``None`` for a full run).

    Example:
        >>> with RunSession.open(ir, runner="local") as session:  # doctest: +SKIP
        ...     for node in ir.nodes:
        ...         if node.id not in session.outcomes:
        ...             session.outcomes[node.id] = launch_node(session.store, ir, node, session.run)
        ...     result = session.finish()
    """

    def __init__(self, store: MetadataStore, url: str, ir: PipelineIR, run: RunInfo,
                 outcomes: dict[str, NodeOutcome], selected: set[str] | None, progress: Progress,
                 source: Any = None) -> None:
        self.store, self.url, self.ir, self.run = store, url, ir, run
        self.outcomes, self.selected, self.progress = outcomes, selected, progress
        self.source = source  # the run a partial run reuses (a ReuseSource), if any

    @classmethod
    @contextmanager
    def open(
        cls,
        pipeline: Pipeline | PipelineIR | dict[str, Any],
        *,
        runner: str,
        metadata_url: str | None = None,
        pipeline_root: str | None = None,
        parameters: dict[str, Any] | None = None,
        enable_cache: bool = True,
        run_id: str | None = None,
        resume_run_id: str | None = None,
        from_nodes: list[str] | None = None,
        to_nodes: list[str] | None = None,
        from_run: str | None = None,
        progress: Any = "auto",
        join_owner: dict[str, Any] | None = None,
    ) -> Iterator[RunSession]:
        """Open the store and start the run; close the store when the block ends.

        Args:
            runner: the runner's name, recorded with the run.
            metadata_url: overrides the pipeline's metadata URL.
            pipeline_root: overrides the pipeline's root for a new run.
            parameters, enable_cache, run_id, resume_run_id, from_nodes, to_nodes,
                from_run: as for :meth:`LocalDagRunner.run`.
            progress: as for :class:`LocalDagRunner`.
            join_owner: create the run so that other processes join it (the tasks
                of a Kubeflow run, see :func:`join_run`), owned by this ``host``/``pid``;
                a partial run's reused nodes are then recorded by those processes.

        Raises:
            InvalidArgumentError: a bad selection, or a partial run with nothing to
                reuse; no run is started.
        """
        ir = as_ir(pipeline)
        selected = ir.select(from_nodes, to_nodes) if (from_nodes or to_nodes) else None  # checked before the run
        url = metadata_url_for(ir, metadata_url)
        store = MetadataStore(url)
        try:
            reap_abandoned(store)
            source = choose_before_run(store, ir, selected, parameters=parameters, from_run=from_run,
                                       resume_run_id=resume_run_id)  # a refused partial run starts no run
            outcomes: dict[str, NodeOutcome] = {}
            if join_owner is not None:
                if resume_run_id:
                    raise InvalidArgumentError(f"the {runner} runner cannot resume a run; resume it on the local "
                                               "or beam runner")
                run = join_run(store, ir, run_id or new_run_id(ir.name), runner=runner, parameters=parameters,
                               enable_cache=enable_cache, pipeline_root=pipeline_root, owner=join_owner)
            else:
                run, outcomes = start_run(store, ir, runner=runner, parameters=parameters, enable_cache=enable_cache,
                                          pipeline_root=pipeline_root, run_id=run_id, resume_run_id=resume_run_id)
                if selected is not None:
                    prepare_partial(store, ir, run, outcomes, selected, source)
            shown = make_progress(progress)
            shown.start(ir.name, run.run_id, [n.id for n in ir.nodes], outcomes)
            yield cls(store, url, ir, run, outcomes, selected, shown, source)
        finally:
            store.close()

    @property
    def left_out(self) -> set[str]:
        """The nodes a partial run leaves out (reused or skipped)."""
        return set() if self.selected is None else {n.id for n in self.ir.nodes} - self.selected

    def record(self) -> RunRecord:
        """The run as recorded now."""
        found = get_run(self.store, self.run.run_id)
        assert found is not None  # the session created it
        return found

    def finish(self, state: RunState | None = None, error: str | None = None) -> RunResult:
        """Record the run's end and return its result.

        Args:
            state: the run's state; default: judged from :attr:`outcomes` (COMPLETE if
                every node succeeded, was skipped by a condition or left out).
            error: the orchestrator's error, recorded with the run.
        """
        state = state or run_state(self.outcomes, self.left_out)
        finish_run(self.store, self.run, state, self.outcomes, error)
        self.progress.finish(state)
        return self.result(state)

    def result(self, state: RunState) -> RunResult:
        """The run's result with ``state``, nodes in the IR's order (nothing is recorded)."""
        ordered = {n.id: self.outcomes[n.id] for n in self.ir.nodes if n.id in self.outcomes}
        return RunResult(self.run.run_id, self.ir.name, RunState(state), ordered, self.store.url)

    def interrupt(self) -> RunInterruptedError:
        """Ctrl-C: cancel the running executions, record the run CANCELLED; return the error to raise."""
        return interrupt_run(self.store, self.ir, self.run, self.outcomes, self.progress)
