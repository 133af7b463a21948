"""The launcher: runs one node of one run. The same code serves every orchestrator.

For a node it:

1. resolves its inputs from the metadata store (the latest successful outputs of the
   upstream nodes in this run);
2. computes the cache key from the component's code version, the parameter values,
   the input artifacts' fingerprints, the output types and, for a component that reads
   external data, that data's fingerprint;
3. on a hit (an earlier COMPLETE execution of this pipeline node with the same key,
   whose outputs still exist), records a CACHED execution that reuses those outputs;
4. otherwise records a RUNNING execution, runs the component with its outputs in a
   local staging directory (and its inputs, when recorded on an object store, copied
   into a local cache unless the component streams), publishes them (a rename on a
   local root, an upload on an object store; see :mod:`jfx.orchestrators._publish`)
   and records the execution COMPLETE with its output artifacts in one transaction:
   that commit is what makes them visible. If the component raises, the staging
   directory is removed, nothing is published, and the execution is FAILED with the
   traceback. The one exception is HaltPipeline: the outputs are published, the
   execution is COMPLETE with the reason in its ``halted`` property, and the runner
   does not run the nodes downstream of it.

The launch is a :class:`NodeLaunch` object holding the per-node state, in named phases
(as TFX's portable launcher): :meth:`~NodeLaunch.check_control` (conditions, upstream
outcomes) → :meth:`~NodeLaunch.prepare` (component, parameters, inputs, cache key) →
:meth:`~NodeLaunch.from_cache` → :meth:`~NodeLaunch.execute` (the attempts) →
:meth:`~NodeLaunch.publish`; every failure is recorded by one path, :meth:`~NodeLaunch.fail`.
The cache key and lookup live in :mod:`jfx.orchestrators._cache`, the call of the
component (arguments, log capture, timeout) in :mod:`jfx.orchestrators._invoke`. What jfx
records about an execution goes through :class:`~jfx.metadata._executions_info.ExecutionInfo`.

Before all that, control flow: a node whose ``condition`` (``jfx.If``) is false is
recorded SKIPPED, and so is its downstream; a runner that cannot see the other nodes'
outcomes (a Kubeflow pod) passes ``check_upstream=True`` and the launcher skips a node
whose upstream did not succeed in this run. An ``all_done`` node (``jfx.ExitHandler``)
gets its upstream nodes' states in ``current_context().upstream_states`` (and why the ones that did not
succeed ended so in ``upstream_reasons``).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jfx import _storage as storage
from jfx.errors import (
    ArtifactDeletedError,
    ComponentError,
    InvalidPipelineError,
    JfxError,
)
from jfx.metadata import (
    NODE,
    ArtifactRecord,
    ArtifactState,
    ExecutionRecord,
    ExecutionState,
    ListOptions,
    MetadataStore,
)
from jfx.metadata._executions_info import ExecutionInfo, NodeState
from jfx.orchestrators._cache import (
    CacheHit,
    Inputs,
    cache_key,
    cache_material,
    find_cached,
    miss_reason,
)
from jfx.orchestrators._invoke import run_component
from jfx.orchestrators._logs import log_path, remote_log_uri, upload_log
from jfx.orchestrators._publish import (
    discard_execution,
    final_uri,
    fingerprint,
    publish,
    record_temporary,
    remote_journal,
    staging_dir,
    unpublish,
)
from jfx.pipelines import NodeIR, PipelineIR, load_component
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._component import Component
from jfx.pipelines._context import ExecutionContext
from jfx.pipelines._control import condition_refs, describe_condition, evaluate_condition, loop_items

__all__ = [
    "NodeLaunch",
    "NodeOutcome",
    "NodeState",
    "ResolverContext",
    "RunInfo",
    "launch_node",
    "node_context_name",
    "read_loop_items",
]


@dataclass(frozen=True)
class RunInfo:
    """What a launcher needs to know about the run it works for (picklable)."""

    pipeline_name: str
    run_id: str
    pipeline_context_id: int
    run_context_id: int
    pipeline_root: str
    enable_cache: bool
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeOutcome:
    """How one node of a run ended.

    Attributes:
        state: how it ended (a :class:`NodeState`).
        execution_id: the execution recorded for it (``None`` if skipped).
        outputs: output key → the published (or reused) artifact records.
        cache_miss_reason: why it ran instead of hitting the cache.
        cached_from: for a cache hit, the execution whose outputs were reused.
        reused_from_run: for a node left out of a partial run, the run its outputs
            were reused from.
        error: a one-line error for a failed node; ``traceback`` has the whole one.
        halted: for a node whose component raised HaltPipeline (e.g. ExampleValidator
            finding anomalies): the reason. Its outputs are published, and the nodes
            downstream of it do not run.
    """

    node_id: str
    state: NodeState
    execution_id: int | None = None
    outputs: dict[str, list[ArtifactRecord]] = field(default_factory=dict)
    cache_miss_reason: str | None = None
    cached_from: int | None = None
    reused_from_run: str | None = None
    error: str | None = None
    traceback: str | None = None
    duration_s: float = 0.0
    halted: str | None = None
    by_condition: bool = False  # skipped because a jfx.If condition was false (here or upstream)

    @property
    def succeeded(self) -> bool:
        """Ran (or hit the cache) and did not halt the pipeline: downstream may run."""
        return NodeState(self.state).succeeded and not self.halted

    @classmethod
    def from_execution(cls, execution: ExecutionRecord, outputs: dict[str, list[ArtifactRecord]], *,
                       run_over: bool = False) -> NodeOutcome:
        """A node's outcome from the execution the launcher recorded for it.

        Args:
            execution: The node's (latest) execution.
            outputs: Its output artifacts (dropped when the node failed).
            run_over: The run has ended, so an execution still RUNNING lost its process
                (see :func:`~jfx.metadata._executions_info.node_state_of`).
        """
        info = ExecutionInfo.from_record(execution)
        state = info.node_state(execution, run_over=run_over)
        failed = state.failed
        duration = (execution.end_time - execution.start_time).total_seconds() \
            if execution.end_time and execution.start_time else 0.0
        return cls(
            execution.node_id, state, execution.id, {} if failed else outputs,
            cache_miss_reason=info.cache_miss_reason, cached_from=info.source_execution,
            reused_from_run=info.reused_from_run,
            error=(info.error_line(execution) or f"execution {execution.id} is {execution.state.value}") if failed
            else info.skip_reason,
            traceback=execution.error or None, duration_s=duration, halted=info.halted,
            by_condition=info.by_condition,
        )


@dataclass(frozen=True)
class ResolverContext:
    """What a resolver function gets: the store and where in it this run lives."""

    store: MetadataStore
    pipeline_name: str
    pipeline_context_id: int
    run_context_id: int
    node_id: str


@dataclass(frozen=True)
class UpstreamState:
    """How an upstream node of this one ended in this run (for control flow)."""

    state: NodeState
    halted: str | None = None
    by_condition: bool = False
    reason: str | None = None  # a failure's one-line error, or why it was skipped


@dataclass(frozen=True)
class Prepared:
    """The result of :meth:`NodeLaunch.prepare`: what the node runs with, and its cache key."""

    component: Component
    parameters: dict[str, Any]
    inputs: Inputs
    input_ids: dict[str, list[int]]
    material: dict[str, Any]
    cache_key: str
    upstream_states: dict[str, str] | None
    upstream_reasons: dict[str, str] | None = None


@dataclass(frozen=True)
class Skip:
    """The result of the control-flow check: the node does not run, and why."""

    reason: str
    by_condition: bool


def node_context_name(pipeline: str, node_id: str) -> str:
    return f"{pipeline}.{node_id}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _id(record: ArtifactRecord) -> int:
    assert record.id is not None  # resolved from the store
    return record.id


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def launch_node(
    store: MetadataStore,
    ir: PipelineIR,
    node: NodeIR,
    run: RunInfo,
    *,
    cancel: threading.Event | None = None,
    check_upstream: bool = False,
) -> NodeOutcome:
    """Run (or reuse from cache) one node; record everything in ``store``.

    Args:
        check_upstream: skip the node unless every upstream node succeeded in this run
            (for runners that do not track outcomes themselves). An ``all_done`` node
            runs whatever its upstream did.

    Returns the outcome; a component's exception is recorded, not raised. A
    KeyboardInterrupt marks the execution CANCELLED and is re-raised.
    """
    return NodeLaunch(store, ir, node, run, cancel=cancel, check_upstream=check_upstream).launch()


def read_loop_items(store: MetadataStore, run: RunInfo, source: dict[str, str]) -> list[Any]:
    """The items of a dynamic ForEach in this run: its source output's property, a JSON list.

    Raises:
        InvalidPipelineError: the source node has no such output or property in this run,
            or the value is not a list (the message names the node, output, property and
            the value's type).
    """
    producer, key, prop = source["producer"], source["key"], source["property"]
    where = f"ForEach over {producer}.outputs[{key!r}].{prop}"
    records = (store.get_node_outputs(run.run_context_id, producer) or {}).get(key) or []
    if not records:
        raise InvalidPipelineError(f"{where}: {producer!r} has no output {key!r} in run {run.run_id}")
    props = records[0].properties
    if prop not in props:
        raise InvalidPipelineError(
            f"{where}: the artifact has no property {prop!r}; its properties: {', '.join(sorted(props)) or '(none)'}")
    return loop_items(props[prop], source)


class NodeLaunch:
    """One launch of one node: the per-node state, and the phases that use it.

    :meth:`launch` runs the phases in order; each phase's result is a small frozen
    record (:class:`Skip`, :class:`Prepared`, :class:`~jfx.orchestrators._cache.CacheHit`,
    :class:`~jfx.orchestrators._invoke.Ran`), and each writes the node's executions
    through :meth:`record`.
    """

    def __init__(self, store: MetadataStore, ir: PipelineIR, node: NodeIR, run: RunInfo, *,
                 cancel: threading.Event | None = None, check_upstream: bool = False) -> None:
        self.t0 = time.perf_counter()
        self.store, self.ir, self.node, self.run = store, ir, node, run
        self.cancel, self.check_upstream = cancel, check_upstream
        node_ctx = store.get_or_create_context(
            NODE, node_context_name(ir.name, node.id), parent_id=run.pipeline_context_id
        )
        assert node_ctx.id is not None
        self.node_ctx_id: int = node_ctx.id
        self.contexts = [run.pipeline_context_id, run.run_context_id, node_ctx.id]
        self.info = ExecutionInfo(pipeline=ir.name, run_id=run.run_id, pid=os.getpid(), host=socket.gethostname())
        self.base = ExecutionRecord(type_name=node.component.name, node_id=node.id)
        self.input_ids: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ phases

    def launch(self) -> NodeOutcome:
        """Every phase in order; the node's outcome."""
        try:
            skip, upstream = self.check_control()
            if skip is not None:
                return self.skip(skip)
            prepared = self.prepare(upstream)
        except Exception as err:  # noqa: BLE001 - an unloadable component (even a SyntaxError) fails the node
            return self.fail(err, message=str(err) if isinstance(err, JfxError) else _one_line(err))
        if prepared.component.kind == "resolver":
            return self.resolve(prepared)
        if self.node.trigger == "all_done":
            reason = "an exit handler runs on every run"
        elif self.ir.enable_cache and self.run.enable_cache and self.node.options.cache:
            hit = find_cached(self.store, self.node, self.node_ctx_id, prepared.cache_key)
            if hit is not None:
                try:
                    return self.from_cache(hit)
                except ArtifactDeletedError:
                    pass  # gc deleted the outputs since the lookup saw them: the node runs
            reason = miss_reason(self.store, self.node, self.node_ctx_id, prepared.material)
        else:
            reason = "cache disabled" if self.node.options.cache else "cache disabled for this node"
        return self.execute(prepared, reason)

    def check_control(self) -> tuple[Skip | None, dict[str, UpstreamState] | None]:
        """Conditions and upstream outcomes: (why the node is skipped or None, upstream outcomes for all_done)."""
        node = self.node
        if not (node.trigger == "all_done" or self.check_upstream or node.condition is not None):
            return None, None
        states = self._upstream_states()
        if node.trigger == "all_done":
            return self._condition(), states
        if self.check_upstream:
            blocked = [u for u in node.upstream if not states[u].state.succeeded or states[u].halted]
            if blocked:
                up = blocked[0]
                why = "halted the pipeline" if states[up].halted else str(states[up].state)
                return Skip(f"upstream node {up} {why}", all(states[u].by_condition for u in blocked)), None
        return self._condition(), None

    def prepare(self, upstream: dict[str, UpstreamState] | None) -> Prepared:
        """Load the component, resolve parameters and inputs, and compute the cache key."""
        node, run = self.node, self.run
        upstream_states = None if upstream is None else {k: str(v.state) for k, v in upstream.items()}
        upstream_reasons = None if upstream is None else {
            k: f"halted: {v.halted}" if v.halted else str(v.reason) for k, v in upstream.items() if v.halted or v.reason}
        if node.loop is not None:
            src = node.loop
            raise InvalidPipelineError(
                f"node {node.id!r} is the template of a ForEach over {src['producer']}.outputs[{src['key']!r}]."
                f"{src['property']}; the runner runs its copies ({node.id}-0, ...) once {src['producer']!r} has run")
        comp = load_component(node.component)
        params = node.resolve_parameters(run.parameters)
        inputs = self._resolve_inputs(lenient=node.trigger == "all_done")
        external = comp.external_fingerprint(params) if comp.external_fingerprint is not None else None
        material = cache_material(comp.name, comp.code_version, params, inputs,
                                  {k: o.type for k, o in node.outputs.items()},
                                  external=external, upstream_states=upstream_states)
        key = cache_key(material)
        self.input_ids = {k: [_id(x) for x in r] if isinstance(r, list) else [_id(r)]
                          for k, r in inputs.items() if r is not None}
        self.base = replace(self.base, parameters=params, cache_key=key)
        self.info = replace(self.info, code_version=comp.code_version, cache_material=material)
        return Prepared(comp, params, inputs, self.input_ids, material, key, upstream_states, upstream_reasons)

    def from_cache(self, hit: CacheHit) -> NodeOutcome:
        """Record a CACHED execution that reuses ``hit``'s outputs."""
        assert hit.source.id is not None
        halted = hit.halted
        cached = self.record(ExecutionState.CACHED, replace(self.info, cached_from=hit.source.id, halted=halted),
                             outputs=hit.outputs)
        return self._outcome(NodeState.CACHED, cached, hit.outputs, cached_from=hit.source.id, halted=halted)

    def execute(self, prepared: Prepared, reason: str) -> NodeOutcome:
        """Run the component, retried as the node's options say; the last attempt's outcome."""
        attempts = self.node.options.retries + 1
        for attempt in range(1, attempts + 1):
            outcome = self._attempt(prepared, reason, attempt)
            if outcome.state != NodeState.FAILED or attempt == attempts:
                break
            time.sleep(self.node.options.backoff_s * 2 ** (attempt - 1))
        return outcome

    def publish(self, running: ExecutionRecord, info: ExecutionInfo, artifacts: dict[str, Artifact],
                stage: Path) -> dict[str, list[ArtifactRecord]]:
        """Put the outputs in place and record the execution COMPLETE with them, or neither.

        See :mod:`jfx.orchestrators._publish` for the protocol (a rename on a local root,
        an upload to an object store).
        """
        assert running.id is not None
        node, run = self.node, self.run
        records: dict[str, list[ArtifactRecord]] = {}
        moves: list[tuple[Path, str]] = []
        for key, art in artifacts.items():
            try:
                json.dumps(art.properties, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise ComponentError(
                    f"node {node.id!r} output {key!r}: properties must be JSON-serialisable ({err})"
                ) from err
            dst = final_uri(run.pipeline_root, self.ir.name, node.id, key, running.id)
            records[key] = [ArtifactRecord(
                type_name=art.type_name, uri=dst, name=art.name, state=ArtifactState.LIVE,
                fingerprint=fingerprint(art.uri, art.type_name, art.properties), properties=dict(art.properties),
            )]
            moves.append((Path(art.uri), dst))
        journal = remote_journal(run.pipeline_root, self.ir.name, node.id, running.id) \
            if storage.is_remote(run.pipeline_root) else None
        publish(moves, stage, journal)
        try:
            self.record(ExecutionState.COMPLETE, info, execution=running, outputs=records)
        except BaseException:
            unpublish(moves, journal)
            raise
        discard_execution(run.pipeline_root, self.ir.name, node.id, running.id)
        return records

    def resolve(self, prepared: Prepared) -> NodeOutcome:
        """Run a resolver node: record the existing artifacts it picks as its outputs."""
        node, run = self.node, self.run
        rctx = ResolverContext(self.store, self.ir.name, run.pipeline_context_id, run.run_context_id, node.id)
        try:
            declared = dict.fromkeys(prepared.component.spec.outputs)  # Output[...] arguments only declare
            picked = prepared.component.fn(rctx, **prepared.parameters, **declared, **prepared.inputs) or {}
            unknown = set(picked) - set(node.outputs)
            if unknown:
                raise ComponentError(f"resolver {node.id!r} returned unknown output(s) {', '.join(sorted(unknown))}")
        except Exception as err:  # noqa: BLE001 - recorded as the node's failure
            return self.fail(err)
        outputs = {k: [rec] for k, rec in picked.items() if rec is not None}
        info = replace(self.info, resolved={k: (r.id if r is not None else None) for k, r in picked.items()})
        done = self.record(ExecutionState.COMPLETE, info, outputs=outputs)
        return self._outcome(NodeState.COMPLETE, done, outputs, cache_miss_reason="resolvers always run")

    def skip(self, skip: Skip) -> NodeOutcome:
        """Record the node SKIPPED (its outputs are not made) and say why."""
        skipped = self.record(ExecutionState.SKIPPED,
                              replace(self.info, skip_reason=skip.reason, by_condition=skip.by_condition),
                              with_inputs=False)
        return self._outcome(NodeState.SKIPPED, skipped, error=skip.reason, by_condition=skip.by_condition)

    def fail(self, err: BaseException, *, message: str | None = None, execution: ExecutionRecord | None = None,
             info: ExecutionInfo | None = None, interrupted: bool = False,
             cache_miss_reason: str | None = None) -> NodeOutcome:
        """The one failure path: record the execution FAILED (CANCELLED if interrupted) with the error.

        Args:
            err: What went wrong (its traceback is recorded; call from its ``except``).
            message: The one-line error; by default the exception's first line.
            execution: The RUNNING execution that failed; by default a new one.
            info: That execution's info.
            interrupted: Ctrl-C or a cancelled run: CANCELLED, with "interrupted".
            cache_miss_reason: Why the node ran, for the outcome.
        """
        tb = traceback.format_exc()
        message = "interrupted" if interrupted else message or _one_line(err)
        info = replace(info or self.info, error_message=message)
        state = ExecutionState.CANCELLED if interrupted else ExecutionState.FAILED
        failed = self.record(state, info, execution=execution, error=tb)
        return self._outcome(NodeState.CANCELLED if interrupted else NodeState.FAILED, failed, error=message,
                             traceback=tb, cache_miss_reason=cache_miss_reason)

    # ----------------------------------------------------------------- helpers

    def record(self, state: ExecutionState, info: ExecutionInfo, *, execution: ExecutionRecord | None = None,
               outputs: dict[str, list[ArtifactRecord]] | None = None, error: str = "",
               with_inputs: bool = True) -> ExecutionRecord:
        """Write the node's execution (a new one, or ``execution`` updated) in ``state`` with ``info``."""
        base = execution if execution is not None else self.base
        record = replace(base, state=state, properties=info.to_properties(), error=error or base.error,
                         end_time=_now() if state.is_terminal else base.end_time)
        return self.store.put_execution(record, contexts=self.contexts,
                                        inputs=self.input_ids if with_inputs else None, outputs=outputs)

    def _outcome(self, state: NodeState, execution: ExecutionRecord,
                 outputs: dict[str, list[ArtifactRecord]] | None = None, **fields: Any) -> NodeOutcome:
        return NodeOutcome(self.node.id, state, execution.id, outputs or {},
                           duration_s=time.perf_counter() - self.t0, **fields)

    def _attempt(self, prepared: Prepared, reason: str, attempt: int) -> NodeOutcome:
        """One attempt at running the component: a RUNNING execution that ends COMPLETE or FAILED."""
        node, run, ir = self.node, self.run, self.ir
        info = replace(self.info, cache_miss_reason=reason, attempt=attempt)
        running = self.record(ExecutionState.RUNNING, info)
        assert running.id is not None
        stage = staging_dir(run.pipeline_root, ir.name, node.id, running.id)
        log_file = log_path(run.pipeline_root, ir.name, node.id, running.id)
        remote_log = remote_log_uri(run.pipeline_root, ir.name, node.id, running.id)
        info = replace(info, log_uri=remote_log or str(log_file))
        try:
            ctx = ExecutionContext(ir.name, run.run_id, node.id, running.id, run.pipeline_root, ir.beam_pipeline_args,
                                   self.store.url, prepared.upstream_states, functools.partial(record_temporary, stage),
                                   upstream_reasons=prepared.upstream_reasons, cancel=self.cancel)
            try:
                ran = run_component(prepared.component, node, prepared.inputs, prepared.parameters, stage, ctx,
                                    log_file)
            finally:
                if remote_log is not None:
                    upload_log(log_file, remote_log)
            if self.cancel is not None and self.cancel.is_set():
                raise KeyboardInterrupt("run cancelled")
            info = replace(info, halted=ran.halted)
            outputs = self.publish(running, info, ran.artifacts, stage)
        except BaseException as err:
            try:
                # what it uploaded before failing, listed in its journal, is never recorded
                discard_execution(run.pipeline_root, ir.name, node.id, running.id, recorded=self._recorded,
                                  strict=True)
            except OSError as unreachable:
                print(f"jfx: node {node.id!r}: could not remove what it uploaded ({unreachable}); "
                      "the next start removes it", file=sys.stderr)
                info = replace(info, cleanup_pending=True)
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit)) or (
                self.cancel is not None and self.cancel.is_set())
            message = _one_line(err) + (f" (attempt {attempt})" if attempt > 1 else "")
            outcome = self.fail(err, message=message, execution=running, info=info, interrupted=interrupted,
                                cache_miss_reason=reason)
            if interrupted:
                raise
            return outcome
        return self._outcome(NodeState.COMPLETE, running, outputs, cache_miss_reason=reason, halted=ran.halted)

    def _recorded(self, uri: str) -> bool:
        """Whether an artifact record names ``uri`` (then it is never removed)."""
        return bool(self.store.get_artifacts(uri=uri, options=ListOptions(limit=1)))

    def _upstream_states(self) -> dict[str, UpstreamState]:
        """How each upstream node's latest execution in this run ended (SKIPPED if it has none)."""
        latest = self.store.latest_executions(self.run.run_context_id)
        states: dict[str, UpstreamState] = {}
        for nid in self.node.upstream:
            e = latest.get(nid)
            if e is None:
                # never started: an orchestrator that decides parameter conditions itself (a Kubeflow
                # trigger condition) starts nothing for a node whose condition is false
                states[nid] = UpstreamState(NodeState.SKIPPED, by_condition=self._false_by_parameters(nid),
                                            reason=self._not_run_reason(nid, latest))
            else:
                info = ExecutionInfo.from_record(e)
                state = info.node_state(e)
                reason = info.error_line(e) if state.failed else info.skip_reason
                states[nid] = UpstreamState(state, info.halted, info.by_condition, reason)
        return states

    def _not_run_reason(self, node_id: str, latest: dict[str, ExecutionRecord]) -> str | None:
        """Why a node has no execution in this run: its first upstream node that did not succeed (as the runners say)."""
        for up in sorted(self.ir.node(node_id).upstream):
            e = latest.get(up)
            if e is None:
                return f"upstream node {up} skipped"
            info = ExecutionInfo.from_record(e)
            state = info.node_state(e)
            if info.halted or not state.succeeded:
                return f"upstream node {up} {'halted the pipeline' if info.halted else state}"
        return None

    def _false_by_parameters(self, node_id: str) -> bool:
        """Whether node ``node_id``'s condition reads only runtime parameters and is false in this run."""
        cond = self.ir.node(node_id).condition
        if not cond or condition_refs(cond):
            return False
        try:
            return not evaluate_condition(cond, self.run.parameters, self._output_value)
        except (InvalidPipelineError, KeyError):
            return False

    def _condition(self) -> Skip | None:
        """A Skip when the node's ``jfx.If`` condition is false."""
        node, run = self.node, self.run
        if node.condition is None:
            return None
        holds = evaluate_condition(node.condition, run.parameters, self._output_value)
        return None if holds else Skip(f"condition {describe_condition(node.condition)} is false", True)

    def _output_value(self, producer: str, key: str, prop: str) -> Any:
        """The property ``prop`` of output ``key`` of ``producer`` in this run (for a condition)."""
        outputs = self.store.get_node_outputs(self.run.run_context_id, producer) or {}
        records = outputs.get(key) or []
        where = f"node {self.node.id!r} condition on {producer}.outputs[{key!r}].{prop}"
        if not records:
            raise InvalidPipelineError(f"{where}: {producer!r} has no output {key!r} in run {self.run.run_id}")
        props = records[0].properties
        if prop not in props:
            raise InvalidPipelineError(
                f"{where}: the artifact has no property {prop!r}; its properties: {', '.join(sorted(props)) or '(none)'}"
            )
        return props[prop]

    def _resolve_inputs(self, lenient: bool = False) -> Inputs:
        """Each input's artifact record (a list for a list input; ``None`` if not wired).

        ``lenient`` (an ExitHandler's node): an input whose producer did not succeed is
        ``None`` (left out of a list) instead of an error.
        """
        node, run = self.node, self.run
        resolved: Inputs = {}
        for key, spec in node.inputs.items():
            if spec is None:
                resolved[key] = None
                continue
            found = []
            for producer, out_key in spec.sources if spec.many else ((spec.producer, spec.key),):
                outputs = self.store.get_node_outputs(run.run_context_id, producer)
                records = (outputs or {}).get(out_key) or []
                if not records and (lenient or (spec.optional and outputs is not None)):
                    continue  # e.g. a resolver that found nothing
                if not records:
                    raise InvalidPipelineError(
                        f"node {node.id!r} input {key!r}: upstream node {producer!r} has no successful "
                        f"output {out_key!r} in run {run.run_id}"
                    )
                found.append(records[0])
            resolved[key] = found if spec.many else (found[0] if found else None)
        return resolved
