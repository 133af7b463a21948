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
   staging directory, publishes them atomically and records the execution COMPLETE
   with its output artifacts in one transaction. If the component raises, the staging
   directory is removed, nothing is published, and the execution is FAILED with the
   traceback. The one exception is HaltPipeline: the outputs are published, the
   execution is COMPLETE with the reason in its ``halted`` property, and the runner
   does not run the nodes downstream of it.

Before all that, control flow: a node whose ``condition`` (``jfx.If``) is false is
recorded SKIPPED, and so is its downstream; a runner that cannot see the other nodes'
outcomes (a Kubeflow pod) passes ``check_upstream=True`` and the launcher skips a node
whose upstream did not succeed in this run. An ``all_done`` node (``jfx.ExitHandler``)
gets its upstream nodes' states in ``current_context().upstream_states``.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jfx.errors import ComponentError, ComponentTimeoutError, HaltPipeline, InvalidPipelineError, JfxError
from jfx.metadata import (
    NODE,
    ArtifactRecord,
    ArtifactState,
    ExecutionRecord,
    ExecutionState,
    ListOptions,
    MetadataStore,
)
from jfx.orchestrators._logs import capture, log_path
from jfx.orchestrators._publish import (
    canonical_json,
    final_uri,
    fingerprint,
    discard_staging,
    publish_dirs,
    record_temporary,
    staging_dir,
    unpublish_dirs,
)
from jfx.pipelines import NodeIR, PipelineIR, load_component
from jfx.pipelines._control import describe_condition, evaluate_condition
from jfx.pipelines._context import ExecutionContext, reset_context, set_context
from jfx.pipelines._artifacts import Artifact

__all__ = ["RunInfo", "NodeOutcome", "NodeState", "ResolverContext", "launch_node", "node_context_name"]


class NodeState:
    """A node's state in a run result (string constants, also used in the CLI)."""

    COMPLETE = "complete"
    CACHED = "cached"
    REUSED = "reused"  # left out of a partial run: outputs taken from an earlier run
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    PENDING = "pending"
    RUNNING = "running"


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
        state: one of :class:`NodeState`'s values.
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
    state: str
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
        return self.state in (NodeState.COMPLETE, NodeState.CACHED, NodeState.REUSED) and not self.halted


@dataclass(frozen=True)
class ResolverContext:
    """What a resolver function gets: the store and where in it this run lives."""

    store: MetadataStore
    pipeline_name: str
    pipeline_context_id: int
    run_context_id: int
    node_id: str


def node_context_name(pipeline: str, node_id: str) -> str:
    return f"{pipeline}.{node_id}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


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
    t0 = time.perf_counter()
    node_ctx = store.get_or_create_context(
        NODE, node_context_name(ir.name, node.id), parent_id=run.pipeline_context_id
    )
    contexts = [run.pipeline_context_id, run.run_context_id, node_ctx.stored_id]
    base = ExecutionRecord(
        type_name=node.component.name,
        node_id=node.id,
        properties={"pipeline": ir.name, "run_id": run.run_id, "pid": os.getpid(), "host": socket.gethostname()},
    )
    upstream_states: dict[str, str] | None = None
    try:
        if node.trigger == "all_done" or check_upstream or node.condition is not None:
            states = _run_states(store, run, node.upstream)
            if node.trigger == "all_done":
                upstream_states = {k: v[0] for k, v in states.items()}
            elif check_upstream:
                blocked = [u for u in node.upstream if states[u][0] not in (NodeState.COMPLETE, NodeState.CACHED)
                           or states[u][1]]
                if blocked:
                    up = blocked[0]
                    why = "halted the pipeline" if states[up][1] else states[up][0]
                    by_condition = all(states[u][2] for u in blocked)
                    return _skip(store, base, contexts, node, f"upstream node {up} {why}", by_condition, t0)
            if node.condition is not None:
                holds = evaluate_condition(node.condition, run.parameters,
                                           lambda p, k, prop: _output_value(store, run, node, p, k, prop))
                if not holds:
                    return _skip(store, base, contexts, node,
                                 f"condition {describe_condition(node.condition)} is false", True, t0)
        comp = load_component(node.component)
        params = node.resolve_parameters(run.parameters)
        inputs = _resolve_inputs(store, ir, node, run, lenient=node.trigger == "all_done")
        external = comp.external_fingerprint(params) if comp.external_fingerprint is not None else None
    except Exception as err:  # noqa: BLE001 - an unloadable component (even a SyntaxError) fails the node
        message = str(err) if isinstance(err, JfxError) else _one_line(err)
        tb = traceback.format_exc()
        failed = store.put_execution(
            replace(base, state=ExecutionState.FAILED, error=tb, end_time=_now(),
                    properties={**base.properties, "error_message": message}),
            contexts=contexts,
        )
        return NodeOutcome(node.id, NodeState.FAILED, failed.id, error=message, traceback=tb,
                           duration_s=time.perf_counter() - t0)

    material = {
        "component": comp.name,
        "code_version": comp.code_version,
        "parameters": params,
        "inputs": {k: ([x.fingerprint for x in r] if isinstance(r, list) else r.fingerprint if r is not None else None)
                   for k, r in inputs.items()},
        "outputs": {k: o.type for k, o in node.outputs.items()},
    }
    if upstream_states is not None:
        material["upstream_states"] = upstream_states
    if external is not None:
        material["external"] = external
    cache_key = hashlib.sha256(canonical_json(material).encode()).hexdigest()
    input_ids = {k: [x.id for x in r] if isinstance(r, list) else [r.id] for k, r in inputs.items() if r is not None}
    base = replace(base, parameters=params, cache_key=cache_key,
                   properties={**base.properties, "code_version": comp.code_version, "cache_material": material})

    if comp.kind == "resolver":
        return _resolve(store, ir, node, run, comp, params, inputs, base, contexts, input_ids, t0)

    if node.trigger == "all_done":
        reason = "an exit handler runs on every run"
    elif ir.enable_cache and run.enable_cache and node.options.cache:
        hit = _find_cached(store, node, node_ctx.stored_id, cache_key)
        if hit is not None:
            source, outputs = hit
            halted = source.properties.get("halted")
            props = {**base.properties, "cached_from": source.id, **({"halted": halted} if halted else {})}
            cached = store.put_execution(
                replace(base, state=ExecutionState.CACHED, end_time=_now(), properties=props),
                contexts=contexts, inputs=input_ids, outputs=outputs,
            )
            return NodeOutcome(node.id, NodeState.CACHED, cached.id, outputs, cached_from=source.id,
                               duration_s=time.perf_counter() - t0, halted=halted)
        reason = _miss_reason(store, node, node_ctx.stored_id, material)
    else:
        reason = "cache disabled" if node.options.cache else "cache disabled for this node"

    attempts = node.options.retries + 1
    for attempt in range(1, attempts + 1):
        outcome = _execute(store, ir, node, run, comp, inputs, params, base, contexts, input_ids, reason, cancel,
                           upstream_states,
                           attempt)
        if outcome.state != NodeState.FAILED or attempt == attempts:
            break
        time.sleep(node.options.backoff_s * 2 ** (attempt - 1))
    outcome.duration_s = time.perf_counter() - t0
    return outcome


def _execute(store: MetadataStore, ir: PipelineIR, node: NodeIR, run: RunInfo, comp: Any,
             inputs: dict[str, Any], params: dict[str, Any], base: ExecutionRecord,
             contexts: list[int], input_ids: dict[str, list[int]], reason: str,
             cancel: threading.Event | None, upstream_states: dict[str, str] | None, attempt: int) -> NodeOutcome:
    """One attempt at running the component: a RUNNING execution that ends COMPLETE or FAILED."""
    props = {**base.properties, "cache_miss_reason": reason, **({"attempt": attempt} if attempt > 1 else {})}
    running = store.put_execution(replace(base, state=ExecutionState.RUNNING, properties=props),
                                  contexts=contexts, inputs=input_ids)
    assert running.id is not None
    stage = staging_dir(run.pipeline_root, ir.name, node.id, running.id)
    log_file = log_path(run.pipeline_root, ir.name, node.id, running.id)
    running = replace(running, properties={**running.properties, "log_uri": str(log_file)})
    outcome = NodeOutcome(node.id, NodeState.RUNNING, running.id, cache_miss_reason=reason)
    try:
        ctx = ExecutionContext(ir.name, run.run_id, node.id, running.stored_id, run.pipeline_root, ir.beam_pipeline_args,
                               store.url, upstream_states, functools.partial(record_temporary, stage))
        artifacts, halted = _run_component(comp, node, inputs, params, stage, ctx, log_file)
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt("run cancelled")
        if halted:
            running = replace(running, properties={**running.properties, "halted": halted})
        outcome.outputs = _publish(store, ir, node, run, running, contexts, input_ids, artifacts, stage)
        outcome.state, outcome.halted = NodeState.COMPLETE, halted
    except BaseException as err:  # recorded, then re-raised if it is an interrupt
        discard_staging(stage)
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit)) or (cancel is not None and cancel.is_set())
        tb = traceback.format_exc()
        message = "interrupted" if interrupted else _one_line(err)
        if attempt > 1 and not interrupted:
            message = f"{message} (attempt {attempt})"
        store.put_execution(
            replace(running, state=ExecutionState.CANCELLED if interrupted else ExecutionState.FAILED,
                    error=tb, end_time=_now(), properties={**running.properties, "error_message": message}),
            contexts=contexts,
        )
        if interrupted:
            raise
        outcome.state, outcome.error, outcome.traceback = NodeState.FAILED, message, tb
    return outcome


def _resolve(store: MetadataStore, ir: PipelineIR, node: NodeIR, run: RunInfo, comp: Any, params: dict[str, Any],
             inputs: dict[str, Any], base: ExecutionRecord, contexts: list[int],
             input_ids: dict[str, list[int]], t0: float) -> NodeOutcome:
    """Run a resolver node: record the existing artifacts it picks as its outputs."""
    rctx = ResolverContext(store, ir.name, run.pipeline_context_id, run.run_context_id, node.id)
    try:
        declared = dict.fromkeys(comp.spec.outputs)  # Output[...] arguments only declare; they get None
        picked = comp.fn(rctx, **params, **declared, **inputs) or {}
        unknown = set(picked) - set(node.outputs)
        if unknown:
            raise ComponentError(f"resolver {node.id!r} returned unknown output(s) {', '.join(sorted(unknown))}")
    except Exception as err:  # noqa: BLE001 - recorded as the node's failure
        message, tb = _one_line(err), traceback.format_exc()
        failed = store.put_execution(
            replace(base, state=ExecutionState.FAILED, error=tb, end_time=_now(),
                    properties={**base.properties, "error_message": message}),
            contexts=contexts, inputs=input_ids,
        )
        return NodeOutcome(node.id, NodeState.FAILED, failed.id, error=message, traceback=tb,
                           duration_s=time.perf_counter() - t0)
    outputs = {k: [rec] for k, rec in picked.items() if rec is not None}
    done = store.put_execution(
        replace(base, state=ExecutionState.COMPLETE, end_time=_now(),
                properties={**base.properties, "resolved": {k: (r.id if r is not None else None) for k, r in picked.items()}}),
        contexts=contexts, inputs=input_ids, outputs=outputs,
    )
    return NodeOutcome(node.id, NodeState.COMPLETE, done.id, outputs, cache_miss_reason="resolvers always run",
                       duration_s=time.perf_counter() - t0)


def _resolve_inputs(store: MetadataStore, ir: PipelineIR, node: NodeIR, run: RunInfo,
                    lenient: bool = False) -> dict[str, Any]:
    """Each input's artifact record (a list for a list input; ``None`` if not wired).

    ``lenient`` (an ExitHandler's node): an input whose producer did not succeed is
    ``None`` (left out of a list) instead of an error.
    """
    resolved: dict[str, Any] = {}
    for key, spec in node.inputs.items():
        if spec is None:
            resolved[key] = None
            continue
        found = []
        for producer, out_key in spec.sources or ((spec.producer, spec.key),):
            outputs = store.get_node_outputs(run.run_context_id, producer)
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


def _run_states(store: MetadataStore, run: RunInfo, node_ids: tuple[str, ...]) -> dict[str, tuple[str, Any, bool]]:
    """For each node: (state, halt reason, skipped-by-condition) of its latest execution in this run."""
    latest: dict[str, ExecutionRecord] = {}
    for e in store.get_executions_by_context(run.run_context_id, ListOptions(order_by="id")):
        if e.node_id in node_ids:
            latest[e.node_id] = e
    states: dict[str, tuple[str, Any, bool]] = {}
    for nid in node_ids:
        last = latest.get(nid)
        if last is None:
            states[nid] = (NodeState.SKIPPED, None, False)
        else:
            states[nid] = (STATE_OF[last.state], last.properties.get("halted"), bool(last.properties.get("by_condition")))
    return states


STATE_OF = {
    ExecutionState.NEW: NodeState.PENDING,
    ExecutionState.RUNNING: NodeState.RUNNING,
    ExecutionState.COMPLETE: NodeState.COMPLETE,
    ExecutionState.CACHED: NodeState.CACHED,
    ExecutionState.FAILED: NodeState.FAILED,
    ExecutionState.SKIPPED: NodeState.SKIPPED,
    ExecutionState.CANCELLED: NodeState.CANCELLED,
    ExecutionState.ABANDONED: NodeState.FAILED,
}
# Once a run has ended, an execution still RUNNING lost its process: the node failed.
FINISHED_STATE_OF = {**STATE_OF, ExecutionState.NEW: NodeState.FAILED, ExecutionState.RUNNING: NodeState.FAILED}


def _skip(store: MetadataStore, base: ExecutionRecord, contexts: list[int], node: NodeIR, reason: str,
          by_condition: bool, t0: float) -> NodeOutcome:
    """Record the node SKIPPED (its outputs are not made) and say why."""
    skipped = store.put_execution(
        replace(base, state=ExecutionState.SKIPPED, end_time=_now(),
                properties={**base.properties, "skip_reason": reason, "by_condition": by_condition}),
        contexts=contexts,
    )
    return NodeOutcome(node.id, NodeState.SKIPPED, skipped.id, error=reason, by_condition=by_condition,
                       duration_s=time.perf_counter() - t0)


def _output_value(store: MetadataStore, run: RunInfo, node: NodeIR, producer: str, key: str, prop: str) -> Any:
    """The property ``prop`` of output ``key`` of ``producer`` in this run (for a condition)."""
    outputs = store.get_node_outputs(run.run_context_id, producer) or {}
    records = outputs.get(key) or []
    where = f"node {node.id!r} condition on {producer}.outputs[{key!r}].{prop}"
    if not records:
        raise InvalidPipelineError(f"{where}: {producer!r} has no output {key!r} in run {run.run_id}")
    props = records[0].properties
    if prop not in props:
        raise InvalidPipelineError(
            f"{where}: the artifact has no property {prop!r}; its properties: {', '.join(sorted(props)) or '(none)'}"
        )
    return props[prop]


def _find_cached(
    store: MetadataStore, node: NodeIR, node_ctx_id: int, cache_key: str
) -> tuple[ExecutionRecord, dict[str, list[ArtifactRecord]]] | None:
    candidates = store.get_executions(
        node_id=node.id, state=ExecutionState.COMPLETE, cache_key=cache_key,
        options=ListOptions(limit=20, order_by="id", descending=True),
    )
    for candidate in candidates:
        assert candidate.id is not None
        if node_ctx_id not in {c.id for c in store.get_contexts_by_execution(candidate.id)}:
            continue
        _, outputs = store.get_execution_artifacts(candidate.id)
        if set(outputs) != set(node.outputs):
            continue
        if all(a.state == ArtifactState.LIVE and Path(a.uri).is_dir() for recs in outputs.values() for a in recs):
            return candidate, outputs
    return None


def _miss_reason(store: MetadataStore, node: NodeIR, node_ctx_id: int, material: dict[str, Any]) -> str:
    """Why a node runs: compare with its latest successful execution in this pipeline."""
    earlier = None
    for e in store.get_executions(
        node_id=node.id, state=[ExecutionState.COMPLETE, ExecutionState.CACHED],
        options=ListOptions(limit=20, order_by="id", descending=True),
    ):
        assert e.id is not None
        if node_ctx_id in {c.id for c in store.get_contexts_by_execution(e.id)}:
            earlier = e
            break
    if earlier is None:
        return "no earlier run"
    before = earlier.properties.get("cache_material") or {}
    reasons = []
    if before.get("code_version") != material["code_version"]:
        reasons.append("changed component source")
    old_p, new_p = before.get("parameters") or {}, material["parameters"]
    for k in sorted(set(old_p) | set(new_p)):
        if old_p.get(k) != new_p.get(k):
            reasons.append(f"new parameter value: {k} {old_p.get(k)!r} -> {new_p.get(k)!r}")
    old_i, new_i = before.get("inputs") or {}, material["inputs"]
    changed = [k for k in sorted(set(old_i) | set(new_i)) if old_i.get(k) != new_i.get(k)]
    if changed:
        reasons.append(f"changed upstream artifact: {', '.join(changed)}")
    if before.get("external") != material.get("external"):
        reasons.append("changed external input")
    if before.get("outputs") != material["outputs"]:
        reasons.append("changed output types")
    return "; ".join(reasons) or "earlier outputs no longer available"


def _run_component(comp: Any, node: NodeIR, inputs: dict[str, Any],
                   params: dict[str, Any], stage: Path, ctx: ExecutionContext,
                   log_file: Path | None = None) -> tuple[dict[str, Artifact], str | None]:
    """Call the component; return its output artifacts and a halt reason (or None)."""
    kwargs: dict[str, Any] = dict(params)

    def artifact(spec: Any, rec: ArtifactRecord) -> Artifact:
        return spec.type(rec.uri, id=rec.id, name=rec.name, properties=dict(rec.properties),
                         fingerprint=rec.fingerprint)

    for key, spec in comp.spec.inputs.items():
        rec = inputs.get(key)
        if spec.many:
            kwargs[key] = [artifact(spec, r) for r in rec or []]
        else:
            kwargs[key] = None if rec is None else artifact(spec, rec)
    outputs: dict[str, Artifact] = {}
    for key, spec in comp.spec.outputs.items():
        out_dir = stage / key
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs[key] = kwargs[key] = spec.type(out_dir, name=f"{node.id}.{key}")
    token = set_context(ctx)
    try:
        fn = comp.fn if log_file is None else _logged(comp.fn, log_file)
        result = _call_with_timeout(fn, kwargs, node.options.timeout_s, node.id)
    except HaltPipeline as halt:
        return outputs, str(halt) or f"node {node.id!r} halted the pipeline"
    finally:
        reset_context(token)
    if result is not None:
        raise ComponentError(
            f"component {comp.name} (node {node.id!r}) returned {type(result).__name__}; components "
            "return nothing: write results into Output[...] artifacts (files under .uri, small values in .properties)"
        )
    return outputs, None


def _logged(fn: Any, log_file: Path) -> Any:
    """``fn`` with what it prints and logs (on its thread) copied into ``log_file``."""

    def run(**kwargs: Any) -> Any:
        with capture(log_file):
            return fn(**kwargs)

    return run


def _call_with_timeout(fn: Any, kwargs: dict[str, Any], timeout_s: float | None, node_id: str) -> Any:
    """``fn(**kwargs)``, or ComponentTimeoutError after ``timeout_s`` (the thread is abandoned)."""
    if timeout_s is None:
        return fn(**kwargs)
    box: dict[str, Any] = {}
    run_in = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = run_in.run(fn, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed back to the launcher
            box["error"] = err

    worker = threading.Thread(target=target, name=f"jfx-{node_id}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ComponentTimeoutError(f"node {node_id!r} timed out after {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _publish(store: MetadataStore, ir: PipelineIR, node: NodeIR, run: RunInfo, running: ExecutionRecord,
             contexts: list[int], input_ids: dict[str, list[int]], artifacts: dict[str, Artifact],
             stage: Path) -> dict[str, list[ArtifactRecord]]:
    assert running.id is not None
    records: dict[str, list[ArtifactRecord]] = {}
    moves: list[tuple[Path, Path]] = []
    for key, art in artifacts.items():
        try:
            json.dumps(art.properties, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ComponentError(
                f"node {node.id!r} output {key!r}: properties must be JSON-serialisable ({err})"
            ) from err
        dst = final_uri(run.pipeline_root, ir.name, node.id, key, running.id)
        records[key] = [ArtifactRecord(
            type_name=art.type_name, uri=str(dst), name=art.name, state=ArtifactState.LIVE,
            fingerprint=fingerprint(art.uri, art.type_name, art.properties), properties=dict(art.properties),
        )]
        moves.append((Path(art.uri), dst))
    publish_dirs(moves, stage)
    try:
        store.put_execution(
            replace(running, state=ExecutionState.COMPLETE, end_time=_now()),
            contexts=contexts, inputs=input_ids, outputs=records,
        )
    except BaseException:
        unpublish_dirs(moves)
        raise
    discard_staging(stage)
    return records
