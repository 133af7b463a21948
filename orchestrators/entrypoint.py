"""What one Kubeflow task runs: the launcher for one node of a run, or the run's finish.

Every task of a compiled Kubeflow pipeline (see :class:`jfx.orchestrators.KubeflowDagRunner`)
is a lightweight Python component whose body calls :func:`run_node` (one per jfx node)
or, in the run's exit handler, :func:`finish`. All tasks of one Kubeflow run join one
jfx run, named after the Kubeflow job (``<pipeline>-kfp-<job id>``): the first task
creates it, the others join it (:func:`jfx.orchestrators._run.join_run`). A node whose code was
uploaded under an object-store root (``<root>/_jfx/code/<sha256>/<name>``) has it
fetched and its hash checked before its component is loaded (``_kfp_code``).

The same steps run from a shell, in the jfx image or anywhere jfx is installed::

    python -m jfx.orchestrators.entrypoint node --ir ir.json --node Trainer --run-id RUN \\
        [--metadata-url URL] [--pipeline-root DIR] [--param k=v ...] [--no-cache] [--from N] [--to N]
        [--from-run RUN_ID]
    python -m jfx.orchestrators.entrypoint finish --ir ir.json --run-id RUN [--failed | --final-state STATE] [...]

A node that FAILED (or was cancelled) exits non-zero, so its task fails and Kubeflow
retries it (``with_retry``) or stops its downstream; a node that was skipped or that
halted the pipeline succeeds, so the downstream tasks still start and the launcher
skips them.

What the backend does around a failure, and what :func:`finish` makes of it:

* Argo stops scheduling new tasks of a DAG once one has failed (KFP never sets
  ``failFast: false``), so nodes that were due but never started have no execution:
  they are recorded SKIPPED, "not started: Argo stops scheduling after node X failed".
* An ``ExitHandler``'s node (IR trigger ``all_done``) runs in its own pod, as an exit
  hook around every node's task (``_kubeflow._add_exit_hooks``): once, after everything,
  whatever failed. If other nodes depend on it, it also has an ordinary task after its
  block; the hook then runs it only when that task never started (``exit_hook=True``).
* A task whose ``triggerPolicy.condition`` (a ``jfx.If`` on runtime parameters) the driver
  found false starts no pod, and Argo omits the tasks after it: :func:`finish` records those
  nodes SKIPPED as the launcher would (``_record_untriggered``).
* ``PipelineTaskFinalStatus.state`` is the MLMD state of the run's DAG execution on a
  backend (``COMPLETE``, ``FAILED``, ...), ``SUCCEEDED``/``FAILED`` under kfp.local; see
  :func:`tasks_succeeded_from_state`.
* Go's protojson writes whole floats as integers (``1.0`` as ``1``) in the task's
  ExecutorInput: :func:`normalize_parameters` restores them against the declared types,
  so a Kubeflow run's cache keys equal a local run's.

The IR reaches a task once, as the pipeline parameter ``jfx_ir``: JSON, or JSON
compressed (:func:`encode_ir` / :func:`decode_ir`), which keeps every task's
ExecutorInput small whatever the pipeline's size.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import socket
import sys
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jfx.errors import ComponentError, InvalidArgumentError, JfxError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._runs import record_ir
from jfx.orchestrators._kfp_code import fetch_node_code
from jfx.orchestrators._launcher import (
    NodeLaunch,
    NodeOutcome,
    NodeState,
    RunInfo,
    launch_node,
)
from jfx.orchestrators._loops import expand_loop, expand_recorded
from jfx.orchestrators._partial import reuse_from, reused_nodes, source_for_run
from jfx.orchestrators._publish import discard_execution
from jfx.orchestrators._run import (
    RunState,
    finish_run,
    is_recorded,
    join_run,
    skipped_by_upstream,
)
from jfx.orchestrators._run import run_state as _run_state
from jfx.pipelines import NodeIR, PipelineIR
from jfx.pipelines._expand import loop_sources

__all__ = ["run_node", "loop_list", "finish", "join_run", "kfp_run_id", "outcomes_from_store", "run_state", "OWNER_PID_ENV",
           "KFP_LOCAL_ENV", "main", "encode_ir", "decode_ir", "normalize_parameters", "tasks_succeeded_from_state"]

# A local Kubeflow run (kfp.local) sets this to the pid of the process that drives it,
# so the run is judged alive (and reaped if it dies) by that process, not by the task's.
OWNER_PID_ENV = "JFX_RUN_OWNER_PID"
# Set ("1") for the tasks of a run under kfp.local (KubeflowDagRunner.run), see loop_list.
KFP_LOCAL_ENV = "JFX_KFP_LOCAL"


class NodeFailedError(JfxError):
    """The node's execution failed: the task fails with this message."""


def kfp_run_id(pipeline_name: str, job_id: str) -> str:
    """The jfx run id of a Kubeflow run: ``<pipeline>-kfp-<Kubeflow job id>``."""
    if not job_id or "{{" in job_id:
        raise InvalidArgumentError(f"a Kubeflow job id is needed to name the run, got {job_id!r}")
    return f"{pipeline_name}-kfp-{job_id}"


# A compressed IR: this prefix, then base64 of the zlib-compressed JSON document.
IR_ZLIB_PREFIX = "jfx-ir-zlib:"


def encode_ir(ir: PipelineIR) -> str:
    """The IR as one short string for a pipeline parameter (compressed JSON).

    >>> from jfx.pipelines import PipelineIR
    >>> ir = PipelineIR.from_dict({"ir_version": 1, "pipeline": {"name": "p"}, "parameters": {}, "nodes": []})
    >>> text = encode_ir(ir)
    >>> text.startswith("jfx-ir-zlib:"), decode_ir(text).name
    (True, 'p')
    """
    doc = json.dumps(ir.to_dict(), sort_keys=True, separators=(",", ":"))
    return IR_ZLIB_PREFIX + base64.b64encode(zlib.compress(doc.encode(), 9)).decode("ascii")


def decode_ir(text: str) -> PipelineIR:
    """The IR from a JSON document or from :func:`encode_ir`'s string."""
    if text.startswith(IR_ZLIB_PREFIX):
        try:
            text = zlib.decompress(base64.b64decode(text[len(IR_ZLIB_PREFIX):], validate=True)).decode()
        except (ValueError, zlib.error) as err:
            raise InvalidArgumentError(f"the pipeline IR is corrupted ({err}); compile the pipeline again") from None
    return PipelineIR.from_dict(json.loads(text))


def _ir(doc: str | dict[str, Any] | PipelineIR) -> PipelineIR:
    if isinstance(doc, PipelineIR):
        return doc
    if isinstance(doc, str):
        return decode_ir(doc)
    return PipelineIR.from_dict(doc)


def _like(value: Any, template: Any) -> Any:
    """``value`` with whole numbers made floats where ``template`` (the declared default) holds floats."""
    if isinstance(template, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(template, dict) and isinstance(value, dict):
        return {k: _like(v, template[k]) if k in template else v for k, v in value.items()}
    if isinstance(template, list) and isinstance(value, list) and template:
        if len(template) == len(value):
            return [_like(v, t) for v, t in zip(value, template, strict=True)]
        numbers = [t for t in template if isinstance(t, (int, float)) and not isinstance(t, bool)]
        if len(numbers) == len(template) and any(isinstance(t, float) for t in numbers):
            return [_like(v, 0.0) for v in value]  # a list of floats of another length
        if all(isinstance(t, dict) for t in template) and len({json.dumps(sorted(t)) for t in template}) == 1:
            return [_like(v, template[0]) for v in value]  # a list of records of one shape
    return value


def normalize_parameters(ir: PipelineIR, values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Runtime parameter values as a local run has them, from what a Kubeflow task received.

    The backend's launcher builds the task's ExecutorInput with Go's protojson, which
    writes a whole float as an integer (``{"lr": 1.0}`` arrives as ``{"lr": 1}``). A
    ``float`` parameter's whole numbers become floats again, and inside ``dict`` and
    ``list`` parameters so do whole numbers where the parameter's default holds a float
    (the declared shape), so the cache key is the one a local run computes.

    >>> from jfx.pipelines import PipelineIR
    >>> ir = PipelineIR.from_dict({"ir_version": 1, "pipeline": {"name": "p"}, "nodes": [], "parameters": {
    ...     "opt": {"type": "dict", "default": {"lr": 0.5, "steps": 10}}, "w": {"type": "float", "default": 0.5}}})
    >>> normalize_parameters(ir, {"opt": {"lr": 1, "steps": 20}, "w": 2})
    {'opt': {'lr': 1.0, 'steps': 20}, 'w': 2.0}
    """
    if values is None:
        return None
    fixed = dict(values)
    for name, value in values.items():
        declared = ir.parameters.get(name)
        if declared is None:
            continue
        if declared.type == "float":
            fixed[name] = _like(value, 0.0)
        elif declared.type in ("dict", "list") and declared.default is not None:
            fixed[name] = _like(value, declared.default)
    return fixed


# ``PipelineTaskFinalStatus.state`` as each orchestrator sends it to the run's exit task.
# A KFP backend (>= 2.14) sends the MLMD state of the exit handler's DAG execution,
# ``producer.GetExecution().GetLastKnownState().String()`` (backend/src/v2/driver/resolve.go,
# tags 2.14.0 to 2.17.0): one of ml_metadata's Execution.State names UNKNOWN, NEW, RUNNING,
# COMPLETE, FAILED, CACHED, CANCELED. The DAG's state is set by each task's launcher
# (metadata/client.go UpdateDAGExecutionsState): COMPLETE once every task is COMPLETE, CACHED
# or CANCELED (not triggered), FAILED once one failed; it stays RUNNING when a task's pod
# ended without its launcher recording it (killed, out of memory). kfp.local sends
# SUCCEEDED or FAILED (the SDK documents SUCCEEDED, FAILED, CANCELLED).
FINAL_STATES_SUCCEEDED = frozenset({"COMPLETE", "CACHED", "SUCCEEDED"})
FINAL_STATES_FAILED = frozenset({"FAILED", "CANCELED", "CANCELLED"})


def tasks_succeeded_from_state(state: str | None) -> bool | None:
    """Whether the orchestrator saw every task succeed: True, False, or None when ``state`` is
    not a final state (RUNNING, NEW, UNKNOWN: the metadata store alone then decides).

    >>> [tasks_succeeded_from_state(s) for s in ("COMPLETE", "SUCCEEDED", "FAILED", "CANCELED", "RUNNING")]
    [True, True, False, False, None]
    """
    name = (state or "").strip().upper()
    if name in FINAL_STATES_SUCCEEDED:
        return True
    if name in FINAL_STATES_FAILED:
        return False
    return None


def _owner() -> dict[str, Any]:
    raw = os.environ.get(OWNER_PID_ENV, "").strip()
    return {"host": socket.gethostname(), "pid": int(raw) if raw.isdigit() else os.getpid()}


def _join(store: MetadataStore, ir: PipelineIR, run_id: str, runner: str, parameters: dict[str, Any] | None,
          enable_cache: bool, pipeline_root: str | None) -> RunInfo:
    return join_run(store, ir, run_id, runner=runner, parameters=parameters, enable_cache=enable_cache,
                    pipeline_root=pipeline_root or None, owner=_owner())


def _selection(ir: PipelineIR, from_nodes: Sequence[str] | None, to_nodes: Sequence[str] | None) -> set[str] | None:
    if not from_nodes and not to_nodes:
        return None
    return ir.select(list(from_nodes or []), list(to_nodes or []))


def _abandon_leftovers(store: MetadataStore, run: RunInfo, node_id: str | None = None) -> None:
    """Mark RUNNING executions of this run (of one node, or all) ABANDONED.

    Kubeflow starts a task again (a retry) or the exit handler only after the earlier
    pod ended, so a RUNNING execution left then belongs to a pod that was killed. Its
    staging directory is removed, with what it left outside (see ``discard_execution``).
    """
    for e in store.get_executions_by_context(run.run_context_id):
        if e.state == ExecutionState.RUNNING and (node_id is None or e.node_id == node_id):
            assert e.id is not None
            discard_execution(run.pipeline_root, run.pipeline_name, e.node_id, e.id,
                              recorded=lambda uri: is_recorded(store, uri))
            store.put_execution(dataclasses.replace(
                e, state=ExecutionState.ABANDONED, end_time=datetime.now(timezone.utc),
                error="the Kubeflow task running it ended while it ran",
            ))


def run_node(
    *,
    ir: str | dict[str, Any] | PipelineIR,
    node_id: str,
    run_id: str,
    metadata_url: str | None = None,
    pipeline_root: str | None = None,
    parameters: dict[str, Any] | None = None,
    enable_cache: bool = True,
    from_nodes: Sequence[str] | None = None,
    to_nodes: Sequence[str] | None = None,
    runner: str = "kubeflow",
    from_run: str | None = None,
    exit_hook: bool = False,
    loop_index: int | None = None,
) -> NodeOutcome:
    """Run one node of run ``run_id`` (joining or creating the run) and return its outcome.

    ``loop_index``: ``node_id`` is a dynamic ForEach's template, and the task runs its copy
    ``<node_id>-<loop_index>`` (a task of Kubeflow's ``ParallelFor``). A pipeline with dynamic
    loops is expanded from the store first (:func:`~jfx.orchestrators._loops.expand_recorded`),
    so a copy and a node after the loop (its ``Collected`` input) see the copies.

    ``exit_hook``: the task is an exit node's hook, which runs after every node's task; when
    the node already has an execution in this run (its ordinary task ran it), that is its
    outcome and nothing runs again.

    Retries are the orchestrator's (Kubeflow's retry policy), so the launcher makes
    one attempt here; each attempt is its own execution. In a partial run, a node the
    selected nodes need is reused from the one earlier run that the run's first such
    task chose (``from_run``, else the newest usable one; see ``_partial``).

    Raises:
        NodeFailedError: the node failed or was cancelled (the task must fail).
    """
    pipeline = _ir(ir)
    node = pipeline.node(node_id)
    parameters = normalize_parameters(pipeline, parameters)
    store = MetadataStore(metadata_url or None)
    try:
        run = _join(store, pipeline, run_id, runner, parameters, enable_cache, pipeline_root)
        if any(n.loop is not None for n in pipeline.nodes):
            pipeline = expand_recorded(store, pipeline, run)
            node = pipeline.node(node_id if loop_index is None else f"{node_id}-{loop_index}")
        _abandon_leftovers(store, run, node.id)
        selected = _selection(pipeline, from_nodes, to_nodes)
        done = store.latest_executions(run.run_context_id).get(node.id) if exit_hook else None
        if done is not None:
            assert done.id is not None
            _, outputs = store.get_execution_artifacts(done.id)
            outcome = NodeOutcome.from_execution(done, outputs, run_over=True)
            print(f"jfx: run {run_id} node {node.id}: ran in its own task already ({_describe(outcome)})", flush=True)
            return outcome
        if selected is not None and node.id not in selected:
            if node.id in reused_nodes(pipeline, selected):
                source = source_for_run(store, pipeline, run, selected, from_run)
                assert source is not None  # there is a node to reuse
                outcome = reuse_from(store, pipeline, node, run, source)
            else:
                outcome = NodeOutcome(node.id, NodeState.SKIPPED, error="outside the partial run")
        else:
            # user code uploaded at compile time (an object-store root): fetched, hash checked, loaded from here
            node = fetch_node_code(node)
            one_attempt = dataclasses.replace(node, options=dataclasses.replace(node.options, retries=0))
            outcome = launch_node(store, pipeline, one_attempt, run, check_upstream=True)
    finally:
        store.close()
    print(f"jfx: run {run_id} node {node.id}: {_describe(outcome)}", flush=True)
    if NodeState(outcome.state).failed:
        if outcome.traceback:
            print(outcome.traceback, file=sys.stderr, flush=True)
        raise NodeFailedError(f"node {node.id!r} {outcome.state}: {outcome.error}")
    return outcome


def loop_list(
    *,
    ir: str | dict[str, Any] | PipelineIR,
    node_id: str,
    run_id: str,
    metadata_url: str | None = None,
    pipeline_root: str | None = None,
    parameters: dict[str, Any] | None = None,
    enable_cache: bool = True,
    runner: str = "kubeflow",
) -> list[dict[str, Any]]:
    """What the task of a dynamic ForEach's source node outputs for Kubeflow's ``ParallelFor``.

    One ``{"jfx_index": i, "item": item}`` per item of the loops over an output of
    ``node_id`` (the tasks inside the loop run copy ``i``); none when the node made no
    output (it was skipped, or it halted the pipeline: the copies would be skipped too).
    Under kfp.local (:data:`KFP_LOCAL_ENV` set) no items is one ``{"jfx_index": -1}``, whose
    tasks run nothing: kfp.local (2.17) cannot collect the outputs of a ParallelFor that had
    no iteration ("task ... not found").

    Raises:
        NodeFailedError: the value is not a list; the loop's templates are recorded FAILED
            with the reason first (the task fails, and Argo starts nothing after it).
    """
    pipeline = _ir(ir)
    parameters = normalize_parameters(pipeline, parameters)
    sources = [s for s in loop_sources(pipeline) if s["producer"] == node_id]
    none = [{"jfx_index": -1}] if os.environ.get(KFP_LOCAL_ENV) == "1" else []
    if not sources:
        return none
    store = MetadataStore(metadata_url or None)
    try:
        run = _join(store, pipeline, run_id, runner, parameters, enable_cache, pipeline_root)
        latest = store.latest_executions(run.run_context_id).get(node_id)
        outputs = store.get_node_outputs(run.run_context_id, node_id)
        if latest is None or outputs is None or ExecutionInfo.from_record(latest).halted:
            return none
        done = {node_id: NodeOutcome(node_id, NodeState.COMPLETE, outputs=outputs)}
        _, failed, items = expand_loop(store, pipeline, run, sources[0], done)
    finally:
        store.close()
    if items is None:
        error = next(iter(failed.values())).error if failed else "the loop's items could not be read"
        for template in failed:
            print(f"jfx: run {run_id} node {template}: failed: {error}", flush=True)
        raise NodeFailedError(str(error))
    print(f"jfx: run {run_id} node {node_id}: {len(items)} ForEach item(s)", flush=True)
    return [{"jfx_index": i, "item": item} for i, item in enumerate(items)] or none


def _describe(o: NodeOutcome) -> str:
    if o.halted:
        return f"{o.state}, halted the pipeline: {o.halted.splitlines()[0]}"
    if o.state == NodeState.REUSED:
        return f"reused from run {o.reused_from_run} (outputs of execution {o.cached_from})"
    if o.state == NodeState.CACHED:
        return f"cached (outputs of execution {o.cached_from})"
    if o.error:
        return f"{o.state}: {o.error}"
    return f"{o.state}" + (f" ({o.cache_miss_reason})" if o.cache_miss_reason else "")


def outcomes_from_store(store: MetadataStore, ir: PipelineIR, run: RunInfo,
                        selected: set[str] | None = None) -> dict[str, NodeOutcome]:
    """Each node's outcome in ``run``, rebuilt from the latest execution the launcher recorded.

    A node with no execution is SKIPPED: outside the partial run, because an upstream
    node did not succeed, or because a node failed and Argo then stopped scheduling new
    tasks (fail-fast). It is FAILED only when no node failed yet its task never recorded
    anything (its pod did not start, or died before the launcher ran).
    """
    latest = store.latest_executions(run.run_context_id)
    recorded: dict[str, NodeOutcome] = {}
    for node in ir.nodes:
        e = latest.get(node.id)
        if e is not None:
            assert e.id is not None
            _, outputs = store.get_execution_artifacts(e.id)
            recorded[node.id] = NodeOutcome.from_execution(e, outputs, run_over=True)
    failed = [k for k, o in recorded.items() if NodeState(o.state).failed]
    outcomes: dict[str, NodeOutcome] = {}
    for node in ir.nodes:
        outcomes[node.id] = recorded.get(node.id) or _not_run(node, outcomes, selected, failed)
    return outcomes


def _not_run(node: NodeIR, outcomes: dict[str, NodeOutcome], selected: set[str] | None,
             failed: list[str]) -> NodeOutcome:
    if selected is not None and node.id not in selected:
        return NodeOutcome(node.id, NodeState.SKIPPED, error="outside the partial run")
    if node.trigger == "all_done":  # its exit hook always runs: its pod did not start, or died early
        return NodeOutcome(node.id, NodeState.FAILED, error="its Kubeflow task did not run")
    blocked = [outcomes[u] for u in node.upstream if u in outcomes and not outcomes[u].succeeded]
    if blocked:
        return skipped_by_upstream(node.id, blocked)
    if failed:
        return NodeOutcome(node.id, NodeState.SKIPPED,
                           error=f"not started: Argo stops scheduling after node {failed[0]} failed")
    return NodeOutcome(node.id, NodeState.FAILED, error="its Kubeflow task did not run")


def run_state(outcomes: dict[str, NodeOutcome], selected: set[str] | None,
              tasks_succeeded: bool | None = True) -> RunState:
    """The run's state (as the local runner judges it); FAILED also when the orchestrator saw a task fail."""
    left_out = set() if selected is None else set(outcomes) - selected
    return RunState.FAILED if tasks_succeeded is False else _run_state(outcomes, left_out)


def _record_untriggered(store: MetadataStore, pipeline: PipelineIR, run: RunInfo, selected: set[str] | None) -> None:
    """Record SKIPPED, as the launcher would, the nodes whose task never started because a false
    condition skipped them: a task whose ``triggerPolicy.condition`` the driver found false (no
    pod starts), and the tasks after it, which Argo then omits.

    Only nodes with no execution are looked at, in the pipeline's order, and only a skip
    that the launcher's own control check decides from a false condition (here or upstream)
    is recorded; a node that never started for another reason (Argo's fail-fast after a
    failure) is left to :func:`outcomes_from_store`.
    """
    latest = store.latest_executions(run.run_context_id)
    skipped = {nid for nid, e in latest.items() if e.state == ExecutionState.SKIPPED}
    for node in pipeline.nodes:
        if node.id in latest or (selected is not None and node.id not in selected):
            continue
        if node.condition is None and not skipped.intersection(node.upstream):
            continue  # neither a condition of its own nor a skipped node before it
        launch = NodeLaunch(store, pipeline, node, run, check_upstream=True)
        try:
            skip, _ = launch.check_control()
        except JfxError:
            continue  # a condition on an output that was never made: not a skip by condition
        if skip is not None and skip.by_condition:
            outcome = launch.skip(skip)
            skipped.add(node.id)
            print(f"jfx: run {run.run_id} node {node.id} (not triggered): {_describe(outcome)}", flush=True)


def finish(
    *,
    ir: str | dict[str, Any] | PipelineIR,
    run_id: str,
    metadata_url: str | None = None,
    pipeline_root: str | None = None,
    parameters: dict[str, Any] | None = None,
    enable_cache: bool = True,
    from_nodes: Sequence[str] | None = None,
    to_nodes: Sequence[str] | None = None,
    tasks_succeeded: bool | None = True,
    final_state: str | None = None,
    error: str | None = None,
    runner: str = "kubeflow",
) -> str:
    """Record the run's end: each node's state and the run's state. Returns the run state.

    Nodes that a false trigger condition skipped are recorded first (``_record_untriggered``).

    Args:
        tasks_succeeded: whether the orchestrator saw every task succeed; ``False`` makes
            the run FAILED, ``None`` leaves it to the metadata store.
        final_state: the orchestrator's final state of the run's tasks
            (``PipelineTaskFinalStatus.state``); when given, it decides ``tasks_succeeded``
            (:func:`tasks_succeeded_from_state`).
        error: the orchestrator's error message, recorded with the run.
    """
    pipeline = _ir(ir)
    parameters = normalize_parameters(pipeline, parameters)
    if final_state is not None:
        tasks_succeeded = tasks_succeeded_from_state(final_state)
    store = MetadataStore(metadata_url or None)
    try:
        run = _join(store, pipeline, run_id, runner, parameters, enable_cache, pipeline_root)
        _abandon_leftovers(store, run)
        if any(n.loop is not None for n in pipeline.nodes):  # the run's nodes: the dynamic loops' copies
            pipeline = expand_recorded(store, pipeline, run)
            record_ir(store, run.run_context_id, pipeline.to_dict())
        selected = _selection(pipeline, from_nodes, to_nodes)
        _record_untriggered(store, pipeline, run, selected)
        outcomes = outcomes_from_store(store, pipeline, run, selected)
        state = run_state(outcomes, selected, tasks_succeeded)
        finish_run(store, run, state, outcomes, (error or None) if state == RunState.FAILED else None)
    finally:
        store.close()
    width = max((len(k) for k in outcomes), default=4)
    print(f"jfx: run {run_id} of pipeline {pipeline.name}: {state}", flush=True)
    for node_id, o in outcomes.items():
        print(f"  {node_id:<{width}}  {_describe(o)}", flush=True)
    return state


# --------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jfx.orchestrators.entrypoint",
                                     description="Run one node of a jfx run, or record a run's end.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (("node", "run one node through the launcher"), ("finish", "record the run's end")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--ir", required=True, metavar="FILE|JSON",
                       help="the pipeline IR: a JSON file or document, or the spec's jfx_ir value")
        if name == "node":
            p.add_argument("--node", required=True, metavar="NODE_ID")
        p.add_argument("--run-id", required=True)
        p.add_argument("--metadata-url", metavar="URL", help="default: $JFX_METADATA_URL, else the SQLite store")
        p.add_argument("--pipeline-root", metavar="DIR", help="default: the pipeline's, else $JFX_HOME/artifacts")
        p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--no-cache", action="store_true")
        p.add_argument("--from", dest="from_nodes", action="append", default=None, metavar="NODE")
        p.add_argument("--to", dest="to_nodes", action="append", default=None, metavar="NODE")
        if name == "node":
            p.add_argument("--from-run", metavar="RUN_ID", help="a partial run reuses this run (default: the newest "
                                                                "usable one)")
        if name == "finish":
            p.add_argument("--failed", action="store_true", help="the orchestrator saw a task fail")
            p.add_argument("--final-state", metavar="STATE",
                           help="the orchestrator's final state of the tasks (COMPLETE, FAILED, RUNNING, ...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        text = args.ir
        if not text.lstrip().startswith(("{", IR_ZLIB_PREFIX)):
            text = Path(text).read_text()
        params: dict[str, Any] = {}
        for item in args.param:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidArgumentError(f"--param {item!r}: expected KEY=VALUE")
            params[key.strip()] = value
        common = {"ir": text, "run_id": args.run_id, "metadata_url": args.metadata_url,
                  "pipeline_root": args.pipeline_root, "parameters": params, "enable_cache": not args.no_cache,
                  "from_nodes": args.from_nodes, "to_nodes": args.to_nodes}
        if args.command == "node":
            run_node(node_id=args.node, from_run=args.from_run, **common)
            return 0
        state = finish(tasks_succeeded=not args.failed, final_state=args.final_state, **common)
        return 0 if state == RunState.COMPLETE else 1
    except (JfxError, ComponentError, OSError, ValueError) as err:
        print(f"jfx: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
