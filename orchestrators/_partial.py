"""Partial runs (``--from`` / ``--to``): which earlier run the nodes left out are reused from.

A partial run runs only the selected nodes. The upstream nodes they need (the *reused*
nodes) do not run: they take their outputs from ONE earlier run of the pipeline, so the
selected nodes never see the outputs of different runs side by side (the ingested data
of one run with the transform fitted on another's). An earlier run is a *source* when

* each reused node's latest execution in it is COMPLETE or CACHED, did not halt the
  pipeline, and its output artifacts are live and still exist; and
* no node downstream of a reused node halted the pipeline in it (a validator rejected
  what the reused nodes made there).

By default the source is the newest such run in which the reused nodes saw the same
values of the runtime parameters they use; ``from_run`` names one instead. Without a
source the partial run is refused before it starts, naming the node with no usable
output. The rule lives here only: the local and Beam runners call :func:`choose_source`
before the run starts, each Kubeflow task through :func:`source_for_run`, which records
the choice on the run so that every task of one run reuses the same run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jfx.errors import InvalidArgumentError, NotFoundError
from jfx import _storage as storage
from jfx.metadata import (
    NODE,
    PIPELINE,
    ArtifactRecord,
    ArtifactState,
    ExecutionRecord,
    ExecutionState,
    ListOptions,
    MetadataStore,
)
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._runs import RunRecord, RunState, get_run, list_runs, record_partial
from jfx.orchestrators._launcher import (
    NodeOutcome,
    NodeState,
    RunInfo,
    node_context_name,
)
from jfx.pipelines import NodeIR, PipelineIR
from jfx.pipelines._control import condition_params

__all__ = ["ReuseSource", "reused_nodes", "choose_source", "choose_before_run", "source_for_run", "prepare_partial", "reuse_from"]


# Runs are read newest first, this many at a time (each carries its IR: never all at once).
_PAGE = 20

_WHY = {
    ExecutionState.FAILED: "it failed",
    ExecutionState.SKIPPED: "it was skipped",
    ExecutionState.CANCELLED: "it was cancelled",
    ExecutionState.ABANDONED: "it was abandoned",
    ExecutionState.RUNNING: "it was still running",
    ExecutionState.NEW: "it never started",
}


@dataclass(frozen=True)
class ReuseSource:
    """The earlier run a partial run reuses, and the execution it reuses of each reused node.

    Attributes:
        run_id: the source run.
        executions: reused node id → (execution, its input artifacts, its output artifacts).
    """

    run_id: str
    executions: dict[str, tuple[ExecutionRecord, dict[str, list[ArtifactRecord]], dict[str, list[ArtifactRecord]]]] \
        = field(default_factory=dict)


def reused_nodes(ir: PipelineIR, selected: set[str]) -> list[str]:
    """The nodes a partial run reuses: upstream of a selected node, not selected; in DAG order."""
    needed: set[str] = set()
    for node_id in selected:
        needed |= ir.upstream_of(node_id)
    return [n for n in _dag_order(ir) if n in needed and n not in selected]


def _dag_order(ir: PipelineIR) -> list[str]:
    done: list[str] = []
    seen: set[str] = set()
    pending = list(ir.nodes)
    while pending:
        ready = [n for n in pending if all(u in seen for u in n.upstream)] or pending[:1]
        for n in ready:
            pending.remove(n)
            seen.add(n.id)
            done.append(n.id)
    return done


def _parameters_used(ir: PipelineIR, node_ids: list[str]) -> list[str]:
    """The runtime parameters that the given nodes read (as parameters or in conditions)."""
    used: set[str] = set()
    for node_id in node_ids:
        node = ir.node(node_id)
        used |= {p.runtime for p in node.parameters.values() if p.runtime is not None}
        used |= set(condition_params(node.condition))
    return sorted(used)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def choose_source(
    store: MetadataStore,
    ir: PipelineIR,
    selected: set[str],
    parameters: dict[str, Any],
    *,
    from_run: str | None = None,
    exclude_run: str | None = None,
) -> ReuseSource | None:
    """The one earlier run whose outputs a partial run reuses (``None``: it reuses nothing).

    Args:
        selected: the nodes the partial run runs (:meth:`PipelineIR.select`).
        parameters: the partial run's resolved runtime parameter values.
        from_run: use this run (refused if it is not a source); default: the newest
            source whose values of the parameters the reused nodes read are these.
        exclude_run: a run never chosen (the partial run itself, once it exists).

    Raises:
        InvalidArgumentError: no run is a source; the one-line message names the reused
            node with no usable output and why.
        NotFoundError: ``from_run`` is not a run of this pipeline.
    """
    needed = reused_nodes(ir, selected)
    if not needed:
        return None
    pipeline_ctx = store.get_context_by_name(PIPELINE, ir.name)
    if from_run:
        chosen_run = get_run(store, from_run)
        if chosen_run is None or pipeline_ctx is None or chosen_run.pipeline_context_id != pipeline_ctx.id:
            raise NotFoundError(f"partial run: no run {from_run!r} of pipeline {ir.name!r} in the metadata store "
                                f"{store.url}; list the runs with: jfx runs list --pipeline {ir.name}")
        source, problem = _judge(store, ir, chosen_run, needed)
        if problem is not None:
            node_id, why = problem
            raise InvalidArgumentError(f"partial run: node {node_id!r} has no usable output in run {from_run}: {why}; "
                                       f"include {node_id} in the run, or choose another run with --from-run")
        return source
    used = _parameters_used(ir, needed)
    wanted = {k: parameters.get(k) for k in used}
    newest: tuple[str, tuple[str, str]] | None = None
    offset = 0
    while pipeline_ctx is not None:
        page = list_runs(store, ir.name, ListOptions(limit=_PAGE, offset=offset, order_by="id", descending=True))
        for run_ctx in page:
            if run_ctx.run_id == exclude_run or run_ctx.state == RunState.RUNNING:
                continue  # a run still going may yet halt
            values = run_ctx.parameters
            if not all(_same(values.get(k), v) for k, v in wanted.items()):
                continue
            source, problem = _judge(store, ir, run_ctx, needed)
            if source is not None:
                return source
            if newest is None and problem is not None:
                newest = (run_ctx.run_id, problem)
        if len(page) < _PAGE:
            break
        offset += _PAGE
    same = "" if not wanted else " with the same " + ", ".join(f"{k}={v!r}" for k, v in wanted.items())
    if newest is None:
        raise InvalidArgumentError(
            f"partial run: node {needed[0]!r} has no usable output: no earlier run of pipeline {ir.name!r}{same}; "
            f"run the whole pipeline first, or include {needed[0]} in the run")
    run_id, (node_id, why) = newest
    raise InvalidArgumentError(
        f"partial run: node {node_id!r} has no usable output: {why} in run {run_id}, the newest earlier run{same}, "
        f"and no earlier run completed every node the partial run reuses; include {node_id} in the run, or "
        f"choose a run with --from-run RUN_ID")


def _judge(store: MetadataStore, ir: PipelineIR, run_ctx: RunRecord,
           needed: list[str]) -> tuple[ReuseSource | None, tuple[str, str] | None]:
    """Whether ``run_ctx`` is a source: (the source, None) or (None, (node id, why not))."""
    assert run_ctx.context_id is not None
    latest = store.latest_executions(run_ctx.context_id)
    chosen: dict[str, Any] = {}
    for node_id in needed:
        e = latest.get(node_id)
        if e is None:
            return None, (node_id, "it has no execution")
        if ExecutionInfo.from_record(e).halted:
            return None, (node_id, "it halted the pipeline")
        if e.state not in (ExecutionState.COMPLETE, ExecutionState.CACHED):
            return None, (node_id, _WHY.get(e.state, f"it is {e.state.value}"))
        assert e.id is not None
        inputs, outputs = store.get_execution_artifacts(e.id)
        gone = [a for arts in outputs.values() for a in arts if a.state != ArtifactState.LIVE or not storage.exists(a.uri)]
        if gone:
            what = f"was {gone[0].deleted_note()}" if gone[0].state.deleted else "no longer exists"
            return None, (node_id, f"its output artifact {gone[0].id} ({gone[0].uri}) {what}")
        chosen[node_id] = (e, inputs, outputs)
    known = {n.id for n in ir.nodes}
    for halter, e in latest.items():
        if halter in known and halter not in chosen and ExecutionInfo.from_record(e).halted:
            fed = [n for n in needed if halter in ir.downstream(n)]
            if fed:  # the reused nodes' outputs were rejected in that run
                return None, (fed[-1], f"{halter} halted the pipeline downstream of it")
    return ReuseSource(run_ctx.run_id, chosen), None


def choose_before_run(store: MetadataStore, ir: PipelineIR, selected: set[str] | None, *,
                      parameters: dict[str, Any] | None = None, from_run: str | None = None,
                      resume_run_id: str | None = None) -> ReuseSource | None:
    """:func:`choose_source` for a run about to start (or resume): refuses before it exists.

    A resumed partial run keeps its parameters and the source it chose.

    Raises:
        InvalidArgumentError: ``from_run`` without a partial selection, or no source.
    """
    if selected is None:
        if from_run:
            raise InvalidArgumentError(
                f"from_run needs from_nodes or to_nodes (--from-run {from_run} needs --from or --to): "
                "only a partial run reuses an earlier run")
        return None
    if resume_run_id:
        resumed = get_run(store, resume_run_id)
        if resumed is None:
            return None  # start_run says so
        recorded = resumed.partial.get("reused_from_run")
        return choose_source(store, ir, selected, dict(resumed.parameters),
                             from_run=from_run or recorded, exclude_run=resume_run_id)
    return choose_source(store, ir, selected, ir.resolve_parameters(parameters), from_run=from_run)


def source_for_run(store: MetadataStore, ir: PipelineIR, run: RunInfo, selected: set[str],
                   from_run: str | None = None) -> ReuseSource | None:
    """The source of a partial run that already exists (a Kubeflow task's view).

    The first task to ask chooses and records the choice on the run; the others reuse
    that choice, so every task of one run reuses the same run even if a newer one ends
    in between.
    """
    current = get_run(store, run.run_id)
    recorded = current.partial.get("reused_from_run") if current is not None else None
    source = choose_source(store, ir, selected, run.parameters, from_run=recorded or from_run or None,
                           exclude_run=run.run_id)
    if not recorded:
        _record(store, run, selected, source)
    return source


def _record(store: MetadataStore, run: RunInfo, selected: set[str], source: ReuseSource | None) -> None:
    record_partial(store, run.run_context_id, sorted(selected), source.run_id if source is not None else None)


def prepare_partial(store: MetadataStore, ir: PipelineIR, run: RunInfo, outcomes: dict[str, NodeOutcome],
                    selected: set[str], source: ReuseSource | None) -> None:
    """Fill ``outcomes`` for the nodes a partial run does not run: reused from ``source``, or skipped."""
    _record(store, run, selected, source)
    needed = set(reused_nodes(ir, selected))
    for node in ir.nodes:
        if node.id in selected or node.id in outcomes:
            continue
        if node.id in needed and source is not None:
            outcomes[node.id] = reuse_from(store, ir, node, run, source)
        else:
            outcomes[node.id] = NodeOutcome(node.id, NodeState.SKIPPED, error="outside the partial run")


def reuse_from(store: MetadataStore, ir: PipelineIR, node: NodeIR, run: RunInfo, source: ReuseSource) -> NodeOutcome:
    """Record, in this run, the outputs of ``node``'s execution in the source run.

    The record is a CACHED execution (``reused_from``: that execution,
    ``reused_from_run``: the source run), so the selected nodes resolve their inputs,
    and lineage, as in a full run.
    """
    if node.id not in source.executions:
        raise InvalidArgumentError(f"partial run: node {node.id!r} is not reused from run {source.run_id}")
    origin, inputs, outputs = source.executions[node.id]
    node_ctx = store.get_or_create_context(NODE, node_context_name(ir.name, node.id), parent_id=run.pipeline_context_id)
    assert node_ctx.id is not None
    reason = f"outside the partial run: reused from run {source.run_id}"
    reused = store.put_execution(
        ExecutionRecord(type_name=origin.type_name, node_id=node.id, state=ExecutionState.CACHED,
                        parameters=origin.parameters, cache_key=origin.cache_key,
                        end_time=datetime.now(timezone.utc),
                        properties=ExecutionInfo(
                            pipeline=ir.name, run_id=run.run_id, reused_from=origin.id, reused_from_run=source.run_id,
                            cache_miss_reason=reason, cache_material=ExecutionInfo.from_record(origin).cache_material,
                        ).to_properties()),
        contexts=[run.pipeline_context_id, run.run_context_id, node_ctx.id],
        inputs={k: [a.stored_id for a in v] for k, v in inputs.items()}, outputs=outputs,
    )
    return NodeOutcome(node.id, NodeState.REUSED, reused.id, outputs, cache_miss_reason=reason,
                       cached_from=origin.id, reused_from_run=source.run_id)
