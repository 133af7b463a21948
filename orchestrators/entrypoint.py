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
    python -m jfx.orchestrators.entrypoint finish --ir ir.json --run-id RUN [...]

A node that FAILED (or was cancelled) exits non-zero, so its task fails and Kubeflow
retries it (``with_retry``) or stops its downstream; a node that was skipped or that
halted the pipeline succeeds, so the downstream tasks still start and the launcher
skips them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jfx.errors import ComponentError, InvalidArgumentError, JfxError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.orchestrators._kfp_code import fetch_node_code
from jfx.orchestrators._launcher import (
    NodeOutcome,
    NodeState,
    RunInfo,
    launch_node,
)
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

__all__ = ["run_node", "finish", "join_run", "kfp_run_id", "outcomes_from_store", "run_state", "OWNER_PID_ENV", "main"]

# A local Kubeflow run (kfp.local) sets this to the pid of the process that drives it,
# so the run is judged alive (and reaped if it dies) by that process, not by the task's.
OWNER_PID_ENV = "JFX_RUN_OWNER_PID"


class NodeFailedError(JfxError):
    """The node's execution failed: the task fails with this message."""


def kfp_run_id(pipeline_name: str, job_id: str) -> str:
    """The jfx run id of a Kubeflow run: ``<pipeline>-kfp-<Kubeflow job id>``."""
    if not job_id or "{{" in job_id:
        raise InvalidArgumentError(f"a Kubeflow job id is needed to name the run, got {job_id!r}")
    return f"{pipeline_name}-kfp-{job_id}"


def _ir(doc: str | dict[str, Any] | PipelineIR) -> PipelineIR:
    if isinstance(doc, PipelineIR):
        return doc
    if isinstance(doc, str):
        doc = json.loads(doc)
    return PipelineIR.from_dict(doc)  # type: ignore[arg-type]


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
) -> NodeOutcome:
    """Run one node of run ``run_id`` (joining or creating the run) and return its outcome.

    Retries are the orchestrator's (Kubeflow's retry policy), so the launcher makes
    one attempt here; each attempt is its own execution. In a partial run, a node the
    selected nodes need is reused from the one earlier run that the run's first such
    task chose (``from_run``, else the newest usable one; see ``_partial``).

    Raises:
        NodeFailedError: the node failed or was cancelled (the task must fail).
    """
    pipeline = _ir(ir)
    node = pipeline.node(node_id)
    store = MetadataStore(metadata_url or None)
    try:
        run = _join(store, pipeline, run_id, runner, parameters, enable_cache, pipeline_root)
        _abandon_leftovers(store, run, node.id)
        selected = _selection(pipeline, from_nodes, to_nodes)
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

    A node with no execution is SKIPPED: outside the partial run, or because an
    upstream node did not succeed (so its task never started).
    """
    latest = store.latest_executions(run.run_context_id)
    outcomes: dict[str, NodeOutcome] = {}
    for node in ir.nodes:
        e = latest.get(node.id)
        if e is None:
            outcomes[node.id] = _not_run(node, outcomes, selected)
            continue
        assert e.id is not None
        _, outputs = store.get_execution_artifacts(e.id)
        outcomes[node.id] = NodeOutcome.from_execution(e, outputs, run_over=True)
    return outcomes


def _not_run(node: NodeIR, outcomes: dict[str, NodeOutcome], selected: set[str] | None) -> NodeOutcome:
    if selected is not None and node.id not in selected:
        return NodeOutcome(node.id, NodeState.SKIPPED, error="outside the partial run")
    blocked = [outcomes[u] for u in node.upstream if u in outcomes and not outcomes[u].succeeded]
    if blocked:
        return skipped_by_upstream(node.id, blocked)
    return NodeOutcome(node.id, NodeState.FAILED, error="its Kubeflow task did not run")


def run_state(outcomes: dict[str, NodeOutcome], selected: set[str] | None, tasks_succeeded: bool = True) -> RunState:
    """The run's state (as the local runner judges it); FAILED also when the orchestrator saw a task fail."""
    left_out = set() if selected is None else set(outcomes) - selected
    return _run_state(outcomes, left_out) if tasks_succeeded else RunState.FAILED


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
    tasks_succeeded: bool = True,
    error: str | None = None,
    runner: str = "kubeflow",
) -> str:
    """Record the run's end: each node's state and the run's state. Returns the run state.

    Args:
        tasks_succeeded: whether the orchestrator saw every task succeed (Kubeflow's
            final status of the run's body); ``False`` makes the run FAILED.
        error: the orchestrator's error message, recorded with the run.
    """
    pipeline = _ir(ir)
    store = MetadataStore(metadata_url or None)
    try:
        run = _join(store, pipeline, run_id, runner, parameters, enable_cache, pipeline_root)
        _abandon_leftovers(store, run)
        selected = _selection(pipeline, from_nodes, to_nodes)
        outcomes = outcomes_from_store(store, pipeline, run, selected)
        state = run_state(outcomes, selected, tasks_succeeded)
        finish_run(store, run, state, outcomes, error if not tasks_succeeded else None)
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
        p.add_argument("--ir", required=True, metavar="FILE|JSON", help="the pipeline IR: a JSON file or document")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        text = args.ir
        if not text.lstrip().startswith("{"):
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
        state = finish(tasks_succeeded=not args.failed, **common)
        return 0 if state == RunState.COMPLETE else 1
    except (JfxError, ComponentError, OSError, ValueError) as err:
        print(f"jfx: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
