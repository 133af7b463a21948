"""``BeamDagRunner``: run a pipeline's DAG as an Apache Beam pipeline.

Each node is a stage of one Beam pipeline. A root node starts from a one-element
``Create``; a node with upstream nodes waits for them through a ``GroupByKey`` over
their outcomes (a barrier on every runner, and a real dependency in the task graph
of runners such as Dask, unlike a side input). The stage's DoFn runs the shared
launcher (:func:`launch_node`) on the worker: it opens the metadata store from its
URL, parses the IR from its JSON-able dict and gets the :class:`RunInfo` pickled.
Independent nodes are independent stages, so a multi-worker runner (Dask, Flink,
Dataflow) runs them at the same time.

A node whose upstream failed, or halted the pipeline (HaltPipeline), is not run: its
stage emits a SKIPPED outcome, which skips its own downstream in turn. Each stage
writes its node's outcome (a pickled :class:`NodeOutcome`) into a folder the driver
reads back when the Beam pipeline ends, through :mod:`jfx._storage`: under
``--temp_location`` if given, else under ``<root>/<pipeline>/.beam/`` when the pipeline
root is on an object store, else a local temporary folder. A node whose file is missing
is rebuilt from the execution the launcher recorded in the metadata store.

Workers need no filesystem shared with the driver or each other: with an object-store
pipeline root, a node's launcher on a worker downloads its inputs from the store into
that worker's local cache, writes outputs into a local staging directory there and
uploads them on publish (see :mod:`jfx.orchestrators._publish`); logs go to the store
too. What workers need is the store's credentials and the metadata database (a server
such as PostgreSQL: a SQLite file is itself a shared filesystem).

The data components inside the nodes run on Beam with the same arguments (unless the
pipeline sets its own ``beam_pipeline_args``); how their workers read and hand back
results is in :mod:`jfx.components._beam`.
"""

from __future__ import annotations

import logging
import pickle
import threading
import traceback
from dataclasses import replace
from typing import Any

from jfx import _storage as storage
from jfx.components._beam import beam_options, quiet_beam_import, read_results, results_folder, write_result

quiet_beam_import()
import apache_beam as beam  # noqa: E402

from jfx.errors import InvalidArgumentError  # noqa: E402 - after quiet_beam_import()
from jfx.metadata import ExecutionRecord, ExecutionState, MetadataStore  # noqa: E402
from jfx.orchestrators._launcher import (  # noqa: E402
    NodeOutcome,
    NodeState,
    RunInfo,
    launch_node,
)
from jfx.metadata._runs import record_ir  # noqa: E402
from jfx.orchestrators._loops import expand_loop, expand_ready  # noqa: E402
from jfx.orchestrators._run import RunResult, RunSession, as_ir, skipped_by_upstream  # noqa: E402
from jfx.pipelines import Pipeline, PipelineIR  # noqa: E402
from jfx.pipelines._expand import loop_sources, templates_of  # noqa: E402

__all__ = ["BeamDagRunner"]

_LOG = logging.getLogger(__name__)
_DASK_RUNNER = "DaskRunner"


class BeamDagRunner:
    """Runs a pipeline as a Beam pipeline: each node a stage that runs the launcher.

    Args:
        beam_pipeline_args: Beam options for the DAG pipeline, e.g.
            ``["--runner=DirectRunner", "--direct_running_mode=multi_processing"]`` or
            ``["--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
            "--dask_client_address=tcp://127.0.0.1:8786"]``. The runner defaults to
            the DirectRunner. The same args are given to the data components inside
            the nodes unless the pipeline sets its own ``beam_pipeline_args``.
            With workers on other machines, the metadata database (a server) and the
            pipeline root (an object store, ``s3://`` or ``gs://``) must be reachable
            from them; no shared filesystem is needed.
        metadata_url: overrides the pipeline's metadata URL.
        pipeline_root: overrides the pipeline's root for new runs.
        progress: ``"auto"``, ``"log"``, ``"rich"``, ``False``, or a :class:`Progress`
            object; node results are reported when the Beam pipeline ends.

    Example:
        >>> result = BeamDagRunner(["--runner=DirectRunner"]).run(pipeline)  # doctest: +SKIP
        >>> result.state  # doctest: +SKIP
        'COMPLETE'
    """

    def __init__(
        self,
        beam_pipeline_args: list[str] | tuple[str, ...] | None = None,
        *,
        metadata_url: str | None = None,
        pipeline_root: str | None = None,
        progress: Any = "auto",
    ) -> None:
        args = list(beam_pipeline_args or [])
        if not all(isinstance(a, str) for a in args):
            raise InvalidArgumentError("beam_pipeline_args must be a list of strings, e.g. ['--runner=DirectRunner']")
        self.beam_pipeline_args = args
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
        """Run the pipeline on Beam and return what happened to each node.

        Same contract as :meth:`LocalDagRunner.run`, partial runs included.

        Raises:
            RunInterruptedError: Ctrl-C; the running executions are marked CANCELLED.
        """
        ir = as_ir(pipeline)
        if ir.beam_pipeline_args is None and self.beam_pipeline_args:
            ir = replace(ir, beam_pipeline_args=tuple(self.beam_pipeline_args))
        with RunSession.open(
            ir, runner="beam", metadata_url=self.metadata_url, pipeline_root=self.pipeline_root,
            parameters=parameters, enable_cache=enable_cache, run_id=run_id, resume_run_id=resume_run_id,
            from_nodes=from_nodes, to_nodes=to_nodes, from_run=from_run, progress=self.progress,
        ) as session:
            store, run, outcomes, progress = session.store, session.run, session.outcomes, session.progress
            done_before = dict(outcomes)
            watermark = max((e.id or 0 for e in store.get_executions_by_context(run.run_context_id)), default=0)
            watcher = _Watcher(session.url, run, watermark, progress)
            watcher.start()
            try:
                collected, error = self._run_beam(session.url, ir, run, outcomes)
            except (KeyboardInterrupt, SystemExit):
                watcher.stop()
                raise session.interrupt() from None
            watcher.stop()
            expanded = _gather(store, ir, run, outcomes, collected, watermark, error)
            if expanded is not ir:
                now = {n.id for n in expanded.nodes}
                was = {n.id for n in ir.nodes}
                progress.nodes_replaced([n.id for n in ir.nodes if n.id not in now],
                                        [n.id for n in expanded.nodes if n.id not in was])
            session.ir = ir = expanded
            for node in ir.nodes:
                if node.id not in done_before and node.id not in watcher.reported:
                    if outcomes[node.id].execution_id is not None and node.id not in watcher.started:
                        progress.node_started(node.id)
                    progress.node_finished(outcomes[node.id])
            return session.finish()

    def _run_beam(self, url: str, ir: PipelineIR, run: RunInfo,
                  done: dict[str, NodeOutcome]) -> tuple[dict[str, NodeOutcome], str | None]:
        """Build and run the Beam pipeline; return the outcomes it wrote and its error, if any."""
        options = beam_options(_dag_args(self.beam_pipeline_args))
        remote = storage.join(run.pipeline_root, ir.name, ".beam") if storage.is_remote(run.pipeline_root) else None
        with results_folder(options, f"jfx-dag-{run.run_id}-", remote) as folder:
            error: str | None = None
            try:
                p = beam.Pipeline(options=options)
                ir_doc = ir.to_dict()
                launch = _LaunchNode(url, ir_doc, run, folder)
                stages: dict[str, Any] = {}
                loops: dict[tuple[str, ...], tuple[Any, Any]] = {}  # a dynamic loop: (decided, elements)
                for node in _topological(ir):
                    if node.id in done:
                        stages[node.id] = p | f"{node.id}/Done" >> beam.Create([done[node.id]])
                        continue
                    if node.loop is not None:
                        stages[node.id] = _copies_stage(p, ir, ir_doc, node, run, url, folder, stages, loops)
                        continue
                    if not node.upstream:
                        start = p | f"{node.id}/Start" >> beam.Create([(node.id, [])])
                    else:
                        start = (
                            [stages[u] for u in node.upstream]
                            | f"{node.id}/Upstream" >> beam.Flatten()
                            | f"{node.id}/Key" >> beam.Map(_keyed, node.id)
                            | f"{node.id}/WaitForUpstream" >> beam.GroupByKey()
                        )
                    stages[node.id] = start | f"{node.id}/Launch" >> beam.ParDo(launch)
                # One sink that depends on every stage: the DaskRunner computes only the last one.
                _ = list(stages.values()) | "AllNodes" >> beam.Flatten() | "Finished" >> beam.Map(_node_id)
                result = p.run()
                try:
                    result.wait_until_finish()
                finally:
                    client = getattr(result, "client", None)  # the DaskRunner leaves its client open
                    if client is not None:
                        client.close()
            except Exception as err:  # noqa: BLE001 - the nodes that did finish are still reported
                _LOG.warning("the Beam pipeline of run %s failed: %s", run.run_id, err)
                text = str(err).strip().splitlines()
                error = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
            return _read_outcomes(folder), error


def _gather(store: MetadataStore, ir: PipelineIR, run: RunInfo, outcomes: dict[str, NodeOutcome],
            collected: dict[str, NodeOutcome], watermark: int, error: str | None) -> PipelineIR:
    """Every node's outcome, into ``outcomes``: what the stages wrote, else what the store holds.

    Returns the IR with the dynamic loops whose source node succeeded expanded (the
    workers recorded it on the run): their copies' outcomes are gathered too.
    """
    while True:
        for node in _topological(ir):  # a missing node's upstream are known before it
            if node.id in outcomes:
                continue
            if node.loop is not None:
                expanded, _ = expand_ready(store, ir, run, outcomes, record=False)
                if expanded is not ir:
                    ir = expanded
                    break  # again, over the copies
            outcome = collected.get(node.id) or _outcome_from_store(store, run, node.id, watermark)
            if outcome is None:
                outcome = _skipped(node, outcomes) or NodeOutcome(
                    node.id, NodeState.FAILED,
                    error=f"the Beam pipeline reported no outcome for this node{f': {error}' if error else ''}",
                )
            outcomes[node.id] = outcome
        else:
            return ir


def _dag_args(args: list[str]) -> list[str]:
    """The DAG pipeline's args: on Dask, one bag partition per node unless the args choose."""
    if any(_DASK_RUNNER in a for a in args if a.startswith("--runner")) and not any(
        a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args
    ):
        return [*args, "--dask_npartitions=1"]
    return list(args)


def _copies_stage(p: Any, ir: PipelineIR, ir_doc: dict[str, Any], node: Any, run: RunInfo, url: str, folder: str,
                  stages: dict[str, Any], loops: dict[tuple[str, ...], tuple[Any, Any]]) -> Any:
    """The stage of a dynamic ForEach's template: its copies, one element per item.

    The loop's first template adds the stage that waits for every node the loop's
    templates wait for and emits one element per item (after a reshuffle, so that
    workers take them at once); each template then launches its copy of each element's
    item, in the loop's order. The template's stage yields the loop's decided outcomes
    (the source's, or the templates' if the loop failed or was skipped) and its copies'.
    """
    assert node.loop is not None
    key = (node.loop["producer"], node.loop["key"], node.loop["property"])
    label = f"ForEach[{'.'.join(key)}]"
    if key not in loops:
        templates = templates_of(ir, node.loop)
        ids = {t.id for t in templates}
        outside = list(dict.fromkeys(u for t in templates for u in t.upstream if u not in ids))
        start = (
            [stages[u] for u in outside]
            | f"{label}/Upstream" >> beam.Flatten()
            | f"{label}/Key" >> beam.Map(_keyed, label)
            | f"{label}/WaitForUpstream" >> beam.GroupByKey()
        )
        expanded = start | f"{label}/Expand" >> beam.ParDo(_ExpandLoop(url, ir_doc, run, folder, node.loop)).with_outputs(
            _COPIES, main="decided")
        loops[key] = (expanded.decided, expanded[_COPIES] | f"{label}/Spread" >> beam.Reshuffle())
    decided, elements = loops[key]
    launched = elements | f"{node.id}/LaunchCopies" >> beam.ParDo(
        _LaunchCopy(url, ir_doc, run, folder, node.id)).with_outputs(_OUTCOMES, main="elements")
    loops[key] = (decided, launched.elements)
    return (decided, launched[_OUTCOMES]) | f"{node.id}/Outcomes" >> beam.Flatten()


def _topological(ir: PipelineIR) -> list[Any]:
    """The nodes, each after its upstream nodes (the IR's order where it already is).

    A dynamic ForEach's template comes after every node that any template of its loop
    waits for (the loop's copies start together, see :func:`_copies_stage`).
    """
    placed: set[str] = set()
    order: list[Any] = []
    pending = list(ir.nodes)
    waits: dict[str, set[str]] = {}
    for source in loop_sources(ir):
        templates = templates_of(ir, source)
        ids = {t.id for t in templates}
        outside = {u for t in templates for u in t.upstream if u not in ids}
        for t in templates:
            waits[t.id] = outside | set(t.upstream)
    while pending:
        ready = [n for n in pending if all(u in placed for u in waits.get(n.id, n.upstream))]
        if not ready:
            raise InvalidArgumentError(f"pipeline {ir.name!r} has a cycle among {', '.join(n.id for n in pending)}")
        for n in ready:
            pending.remove(n)
            placed.add(n.id)
            order.append(n)
    return order


def _keyed(outcome: NodeOutcome, node_id: str) -> tuple[str, NodeOutcome]:
    return node_id, outcome


def _node_id(outcome: NodeOutcome) -> str:
    return outcome.node_id


def _skipped(node: Any, outcomes: dict[str, NodeOutcome]) -> NodeOutcome | None:
    """A SKIPPED outcome if an upstream node did not succeed (as LocalDagRunner words it).

    An ExitHandler's node (trigger ``all_done``) runs whatever its upstream did.
    """
    if node.trigger == "all_done":
        return None
    blocked = [outcomes[u] for u in node.upstream if u in outcomes and not outcomes[u].succeeded]
    return skipped_by_upstream(node.id, blocked) if blocked else None


class _LaunchNode(beam.DoFn):
    """``(node id, upstream outcomes)`` → the node's outcome, after running the launcher."""

    def __init__(self, url: str, ir_doc: dict[str, Any], run: RunInfo, folder: str) -> None:
        self.url = url
        self.ir_doc = ir_doc
        self.run = run
        self.folder = folder

    def process(self, element: tuple[str, Any]):
        node_id, upstream = element
        ups = {o.node_id: o for o in upstream}
        ir = PipelineIR.from_dict(self.ir_doc)
        if any(ir.node(u).loop is not None for u in ir.node(node_id).upstream):
            ir = _expanded(self.url, ir, self.run, ups)  # a Collected input lists the copies
        node = ir.node(node_id)
        outcome = _skipped(node, ups)
        if outcome is None:
            outcome = _launch(self.url, ir, node, self.run)
        _leave(self.folder, outcome)
        yield outcome


_COPIES, _OUTCOMES = "copies", "outcomes"


def _leave(folder: str, outcome: NodeOutcome) -> None:
    """Write a node's outcome for the driver."""
    try:
        write_result(folder, pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as err:  # noqa: BLE001 - the driver then reads the outcome from the metadata store
        _LOG.warning("node %s: could not leave its outcome in %s: %s", outcome.node_id, folder, err)


def _expanded(url: str, ir: PipelineIR, run: RunInfo, ups: dict[str, NodeOutcome]) -> PipelineIR:
    """The IR with the dynamic loops whose source succeeded (in ``ups``) expanded, as the driver's was."""
    store = MetadataStore(url)
    try:
        return expand_ready(store, ir, run, ups, record=False)[0]
    finally:
        store.close()


class _ExpandLoop(beam.DoFn):
    """``(loop, upstream outcomes)`` → one element ``(index, outcomes)`` per item, on the ``copies`` output.

    The main output is what the loop decided for its templates: the source node's outcome
    when the copies were made; the templates' outcomes when the source did not succeed
    (skipped) or its value is not a list (failed, recorded in the store).
    """

    def __init__(self, url: str, ir_doc: dict[str, Any], run: RunInfo, folder: str, source: dict[str, str]) -> None:
        self.url, self.ir_doc, self.run, self.folder, self.source = url, ir_doc, run, folder, source

    def process(self, element: tuple[str, Any]):
        _, upstream = element
        ups = {o.node_id: o for o in upstream}
        ir = PipelineIR.from_dict(self.ir_doc)
        producer = ups.get(self.source["producer"])
        if producer is None or not producer.succeeded:
            for t in templates_of(ir, self.source):
                outcome = _skipped(t, ups) or NodeOutcome(t.id, NodeState.SKIPPED, error="the loop's source did not run")
                _leave(self.folder, outcome)
                yield outcome
            return
        store = MetadataStore(self.url)
        try:
            ir, decided, items = expand_loop(store, ir, self.run, self.source, ups)
            if items is not None:
                record_ir(store, self.run.run_context_id, ir.to_dict())
        finally:
            store.close()
        if items is None:  # not a list: the templates failed
            for outcome in decided.values():
                _leave(self.folder, outcome)
                yield outcome
            return
        yield producer
        for i in range(len(items)):
            yield beam.pvalue.TaggedOutput(_COPIES, (i, {**ups, **decided}))


class _LaunchCopy(beam.DoFn):
    """``(index, outcomes so far)`` → the same with the outcome of the template's copy ``index``.

    The copy's outcome also goes to the ``outcomes`` output. A copy that completed in an
    earlier attempt of a resumed run is already among the outcomes and is not launched.
    """

    def __init__(self, url: str, ir_doc: dict[str, Any], run: RunInfo, folder: str, template: str) -> None:
        self.url, self.ir_doc, self.run, self.folder, self.template = url, ir_doc, run, folder, template
        self._ir: PipelineIR | None = None

    def process(self, element: tuple[int, dict[str, NodeOutcome]]):
        index, ups = element
        copy_id = f"{self.template}-{index}"
        outcome = ups.get(copy_id)
        if outcome is None:
            if self._ir is None:  # one run's items never change: expanded once per worker
                self._ir = _expanded(self.url, PipelineIR.from_dict(self.ir_doc), self.run, ups)
            node = self._ir.node(copy_id)
            outcome = _skipped(node, ups) or _launch(self.url, self._ir, node, self.run)
        _leave(self.folder, outcome)
        yield index, {**ups, copy_id: outcome}
        yield beam.pvalue.TaggedOutput(_OUTCOMES, outcome)


def _launch(url: str, ir: PipelineIR, node: Any, run: RunInfo) -> NodeOutcome:
    """Run the launcher in this worker; a failure of the launcher itself fails the node."""
    seceded = _secede_if_dask_inside(ir)
    try:
        store = MetadataStore(url)
        try:
            return launch_node(store, ir, node, run)
        finally:
            store.close()
    except Exception as err:  # noqa: BLE001 - e.g. the store is unreachable from this worker
        return NodeOutcome(node.id, NodeState.FAILED, error=f"{type(err).__name__}: {err}",
                           traceback=traceback.format_exc())
    finally:
        if seceded:
            from distributed import rejoin

            rejoin()


def _secede_if_dask_inside(ir: PipelineIR) -> bool:
    """On a Dask worker, whose node will itself submit Beam work to Dask: leave the thread pool.

    Otherwise a node waiting for its data components' tasks holds a worker thread
    those tasks need, and a cluster whose threads all hold such nodes deadlocks.
    """
    args = ir.beam_pipeline_args or ()
    if not any(_DASK_RUNNER in a for a in args if a.startswith("--runner")):
        return False
    try:
        from distributed import get_worker, secede

        get_worker()
    except (ImportError, ValueError):
        return False
    secede()
    return True


def _read_outcomes(folder: str) -> dict[str, NodeOutcome]:
    found: dict[str, NodeOutcome] = {}
    try:
        results = read_results(folder)
    except Exception as err:  # noqa: BLE001 - the outcomes are then rebuilt from the metadata store
        _LOG.warning("could not read the nodes' outcomes from %s: %s", folder, err)
        return found
    for data in results:
        outcome = pickle.loads(data)
        found[outcome.node_id] = outcome
    return found




class _Watcher:
    """Live progress while Beam runs: polls the run's executions in the metadata store.

    A node's start is reported when its RUNNING execution appears, and its end when a
    final one does (complete, cached, skipped); failures are reported once the Beam
    pipeline ends, since a retry may still follow.
    """

    def __init__(self, url: str, run: RunInfo, after_id: int, progress: Any, interval_s: float = 0.25) -> None:
        self.url, self.run, self.after_id, self.progress, self.interval_s = url, run, after_id, progress, interval_s
        self.started: set[str] = set()
        self.reported: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jfx-beam-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, after one last look (so fast nodes are reported in order too)."""
        self._stop.set()
        self._thread.join()
        try:
            with MetadataStore(self.url) as store:
                self.poll(store)
        except Exception as err:  # noqa: BLE001 - best effort
            _LOG.debug("live progress: %s", err)

    def _loop(self) -> None:
        store = None
        try:
            store = MetadataStore(self.url)
            while not self._stop.wait(self.interval_s):
                self.poll(store)
        except Exception as err:  # noqa: BLE001 - progress is best effort; the run goes on
            _LOG.debug("live progress stopped: %s", err)
        finally:
            if store is not None:
                store.close()

    def poll(self, store: MetadataStore) -> None:
        for e in store.latest_executions(self.run.run_context_id, after_id=self.after_id).values():
            if e.node_id in self.reported:
                continue
            if e.node_id not in self.started:
                self.started.add(e.node_id)
                self.progress.node_started(e.node_id)
            if e.state in (ExecutionState.COMPLETE, ExecutionState.CACHED, ExecutionState.SKIPPED):
                self.reported.add(e.node_id)
                self.progress.node_finished(_outcome_of(store, e))


def _outcome_from_store(store: MetadataStore, run: RunInfo, node_id: str, after_id: int) -> NodeOutcome | None:
    """The outcome of ``node_id`` in this attempt of the run, from the execution the launcher recorded."""
    latest = store.latest_executions(run.run_context_id, after_id=after_id).get(node_id)
    return _outcome_of(store, latest) if latest is not None else None


def _outcome_of(store: MetadataStore, e: ExecutionRecord) -> NodeOutcome:
    """A node's outcome from the execution the launcher recorded for it."""
    assert e.id is not None
    _, outputs = store.get_execution_artifacts(e.id)
    return NodeOutcome.from_execution(e, outputs, run_over=True)
