"""``LocalDagRunner``: run a pipeline on this machine, independent nodes in parallel."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from jfx.errors import InvalidArgumentError
from jfx.metadata import MetadataStore
from jfx.orchestrators._launcher import NodeOutcome, NodeState, RunInfo, launch_node
from jfx.orchestrators._loops import expand_ready
from jfx.orchestrators._progress import Progress
from jfx.orchestrators._run import RunResult, RunSession, skipped_by_upstream
from jfx.pipelines import NodeIR, Pipeline, PipelineIR

__all__ = ["LocalDagRunner"]

EXECUTORS = ("thread", "process")
_SIGNAL_POLL_S = 0.2
#: How long Ctrl-C waits for the running nodes' components to see the cancel flag and stop
#: (one that never checks it is left to the process's exit).
_CANCEL_GRACE_S = 5.0


class LocalDagRunner:
    """Runs a pipeline locally: each node through the launcher, independent nodes at once.

    Args:
        max_workers: how many nodes may run at the same time (default: the number of
            CPUs, at least 2).
        executor: ``"thread"`` (default) runs nodes on threads of this process;
            ``"process"`` on a persistent pool of worker processes, which helps only
            for components that hold the GIL (pure-Python loops). See the
            orchestration benchmark in ``tests/benchmarks`` for the overhead of each.
        metadata_url: overrides the pipeline's metadata URL.
        pipeline_root: overrides the pipeline's root for new runs.
        progress: ``"auto"`` (a live table on a terminal, log lines otherwise),
            ``"log"``, ``"rich"``, ``False``, or a :class:`Progress` object.

    Example:
        >>> result = LocalDagRunner().run(pipeline)  # doctest: +SKIP
        >>> result.state, {k: o.state for k, o in result.nodes.items()}  # doctest: +SKIP
        ('COMPLETE', {'make_data': 'complete', 'summarize': 'cached'})
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        executor: str = "thread",
        metadata_url: str | None = None,
        pipeline_root: str | None = None,
        progress: Any = "auto",
    ) -> None:
        if executor not in EXECUTORS:
            raise InvalidArgumentError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
        if max_workers is not None and max_workers < 1:
            raise InvalidArgumentError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or max(2, os.cpu_count() or 1)
        self.executor = executor
        self.metadata_url = metadata_url
        self.pipeline_root = pipeline_root
        self.progress = progress

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
        """Run the pipeline and return what happened to each node.

        Args:
            pipeline: a Pipeline, its compiled IR, or an IR document.
            parameters: runtime parameter values (strings are parsed by type).
            enable_cache: ``False`` runs every node even if an identical execution exists.
            run_id: the new run's id (default: ``<pipeline>-<UTC time>-<random>``).
            resume_run_id: rerun only the nodes that did not complete in that run.
            from_nodes, to_nodes: a partial run: only the nodes downstream of
                ``from_nodes`` and upstream of ``to_nodes`` (each inclusive) run; the
                upstream nodes they need are reused (state ``"reused"``), all from one
                earlier run in which every one of them completed and no validator
                halted downstream of them: the newest whose values of the parameters
                they read are this run's; the other nodes are skipped.
            from_run: the earlier run a partial run reuses, instead of the newest.

        Raises:
            InvalidArgumentError: a partial run with no earlier run to reuse (the
                message names the node with no usable output); no run is started.
            RunInterruptedError: Ctrl-C; the running executions are marked CANCELLED.
        """
        with RunSession.open(
            pipeline, runner="local", metadata_url=self.metadata_url, pipeline_root=self.pipeline_root,
            parameters=parameters, enable_cache=enable_cache, run_id=run_id, resume_run_id=resume_run_id,
            from_nodes=from_nodes, to_nodes=to_nodes, from_run=from_run, progress=self.progress,
        ) as session:
            cancel = threading.Event()
            try:
                self._schedule(session, cancel)
            except (KeyboardInterrupt, SystemExit):
                if self.executor == "process":
                    _shutdown_pool()
                raise session.interrupt() from None
            return session.finish()

    def _schedule(self, session: RunSession, cancel: threading.Event) -> None:
        """Run the nodes not done yet, each once its upstream nodes are; a dynamic ForEach's
        copies join the DAG (and ``session.ir``) once its source node has run."""
        store, url, ir, run = session.store, session.url, session.ir, session.run
        outcomes, progress = session.outcomes, session.progress
        pending = [n for n in ir.nodes if n.id not in outcomes]
        running: dict[Future[NodeOutcome], str] = {}
        pool = _process_pool(self.max_workers) if self.executor == "process" else None
        ir_doc: dict[str, Any] | None = None
        generation = 0  # the IR's version: a dynamic loop's expansion makes a new one

        def submit(node: NodeIR) -> Future[NodeOutcome]:
            nonlocal ir_doc
            if pool is None:
                return _in_daemon_thread(launch_node, store, ir, node, run, cancel=cancel)
            if ir_doc is None:
                ir_doc = ir.to_dict()
            return pool.submit(_launch_in_worker, url, ir_doc, f"{run.run_id}#{generation}", node.id, run)

        try:
            while True:
                if any(n.loop is not None for n in pending):
                    expanded, decided = expand_ready(store, ir, run, outcomes)
                    if expanded is not ir:
                        _report_copies(progress, ir, expanded)
                        ir, ir_doc, generation = expanded, None, generation + 1
                        session.ir = ir
                    for outcome in decided.values():
                        outcomes[outcome.node_id] = outcome
                        progress.node_finished(outcome)
                    busy = set(running.values())
                    pending = [n for n in ir.nodes if n.id not in outcomes and n.id not in busy]
                for node in list(pending):
                    blocked = [] if node.trigger == "all_done" else [
                        u for u in node.upstream if u in outcomes and not outcomes[u].succeeded]
                    if blocked:
                        pending.remove(node)
                        outcomes[node.id] = skipped_by_upstream(node.id, [outcomes[u] for u in blocked])
                        progress.node_finished(outcomes[node.id])
                    elif len(running) < self.max_workers and all(u in outcomes for u in node.upstream):
                        pending.remove(node)
                        running[submit(node)] = node.id
                        progress.node_started(node.id)
                if not running:
                    break
                # A timeout, not an endless wait: Linux may deliver Ctrl-C's SIGINT to a node's
                # thread, and then Python only raises it once the main thread runs bytecode again.
                finished, _ = wait(running, timeout=_SIGNAL_POLL_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    node_id = running.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as err:  # noqa: BLE001 - the launcher itself failed (e.g. the store is unreachable)
                        outcome = NodeOutcome(node_id, NodeState.FAILED, error=f"{type(err).__name__}: {err}")
                    outcomes[node_id] = outcome
                    progress.node_finished(outcome)
        except BaseException:
            cancel.set()  # before anything else: a node finishing now must not publish
            if running and self.executor != "process":
                # Ctrl-C reached this thread, not the nodes' threads: a component that checks
                # the flag (ExampleGen does between blocks) stops at its next check, and its
                # launcher removes its staging output once nothing writes there any more.
                wait(running, timeout=_CANCEL_GRACE_S)
            raise


def _report_copies(progress: Progress, before: PipelineIR, after: PipelineIR) -> None:
    """Tell the progress display which templates became which copies."""
    now = {n.id for n in after.nodes}
    old = [n.id for n in before.nodes if n.id not in now]
    was = {n.id for n in before.nodes}
    progress.nodes_replaced(old, [n.id for n in after.nodes if n.id not in was])


def _in_daemon_thread(fn: Any, *args: Any, **kwargs: Any) -> Future[Any]:
    """Run ``fn`` on a new daemon thread; its result arrives in the returned future.

    The scheduler already bounds how many nodes run at once, so no pool is needed;
    daemon threads let an interrupted process exit without waiting for user code.
    """
    future: Future[Any] = Future()

    def target() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as err:  # noqa: BLE001 - handed to the scheduler
                future.set_exception(err)

    threading.Thread(target=target, name="jfx-node", daemon=True).start()
    return future


# The process pool persists across runs in one process: starting workers costs far
# more than a node's bookkeeping, so they are started once and reused.
_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _process_pool(size: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or size != _POOL_SIZE or getattr(_POOL, "_broken", False):
            _shutdown_pool()
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["jfx.orchestrators._launcher"])
            _POOL, _POOL_SIZE = ProcessPoolExecutor(size, mp_context=ctx), size
        return _POOL


def _shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None


atexit.register(_shutdown_pool)

# Per worker process: one store per URL and one parsed IR per document.
_WORKER_STORES: dict[str, MetadataStore] = {}
_WORKER_IRS: dict[str, PipelineIR] = {}


def _launch_in_worker(url: str, ir_doc: dict[str, Any], ir_key: str, node_id: str, run: RunInfo) -> NodeOutcome:
    store = _WORKER_STORES.get(url)
    if store is None:
        store = _WORKER_STORES[url] = MetadataStore(url)
    ir = _WORKER_IRS.get(ir_key)
    if ir is None:
        if len(_WORKER_IRS) >= 8:
            _WORKER_IRS.clear()
        ir = _WORKER_IRS[ir_key] = PipelineIR.from_dict(ir_doc)
    return launch_node(store, ir, ir.node(node_id), run)
