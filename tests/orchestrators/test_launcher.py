"""The launcher's cache lookup and the node outcomes rebuilt from the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jfx_testlib as lib
import sqlalchemy as sa

from jfx import Pipeline
from jfx.metadata import PIPELINE_RUN, ExecutionRecord, ExecutionState, MetadataStore
from jfx.metadata.ui._common import Query
from jfx.metadata.ui._run import run_json
from jfx.orchestrators import LocalDagRunner, NodeState
from jfx.orchestrators._launcher import RunInfo
from jfx.orchestrators.entrypoint import outcomes_from_store

RUNNER = LocalDagRunner(progress=False)


def _one_node(name: str, root: str, url: str, rows: int = 3) -> Pipeline:
    return Pipeline(name, components=[lib.make_numbers(rows=rows).with_id("gen")], pipeline_root=root, metadata_url=url)


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL statements every engine of this process runs inside the block."""
    seen: list[str] = []

    def note(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", note)


def test_the_cache_hits_past_other_pipelines_executions_of_the_same_node_in_queries_that_do_not_grow(tmp_path):
    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    assert RUNNER.run(_one_node("a", root, url)).nodes["gen"].state == NodeState.COMPLETE
    with _statements() as before:
        assert RUNNER.run(_one_node("a", root, url)).nodes["gen"].state == NodeState.CACHED
    # another pipeline runs the same node (same id, component, parameters: the same cache
    # key) more often than the lookup looks back: its executions are not this pipeline's
    for _ in range(21):
        assert RUNNER.run(_one_node("b", root, url), enable_cache=False).succeeded
    with _statements() as after:
        rerun = RUNNER.run(_one_node("a", root, url))
    assert rerun.nodes["gen"].state == NodeState.CACHED, rerun.nodes["gen"].cache_miss_reason
    assert len(after) == len(before), "the cache lookup's queries grew with the other pipeline's executions"
    changed = RUNNER.run(_one_node("a", root, url, rows=4)).nodes["gen"]
    assert changed.state == NodeState.COMPLETE
    assert changed.cache_miss_reason == "new parameter value: rows 3 -> 4"


def test_an_abandoned_node_shows_one_state_to_the_runners_and_the_ui(tmp_path):
    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    pipeline = _one_node("a", root, url)
    result = RUNNER.run(pipeline)
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, result.run_id)
        assert run_ctx is not None and run_ctx.id is not None
        # a later attempt of the node whose process died under it
        store.put_execution(ExecutionRecord("make_numbers", "gen", state=ExecutionState.ABANDONED,
                                            error="the process running it (pid 1) exited while it ran"),
                            contexts=[run_ctx.parent_id, run_ctx.id])
        run = RunInfo("a", result.run_id, run_ctx.parent_id, run_ctx.id, root, True)
        outcome = outcomes_from_store(store, pipeline.compile(), run)["gen"]
        shown = {n["id"]: n["state"] for n in run_json(store, result.run_id, Query({}))["nodes"]}
    assert outcome.state == shown["gen"] == "abandoned"
    assert not outcome.succeeded and outcome.outputs == {}
    assert outcome.error == "the process running it (pid 1) exited while it ran"


def test_a_pod_that_sees_only_the_store_skips_a_node_whose_upstream_failed_and_says_which(tmp_path):
    """Kubeflow's tasks launch one node each (check_upstream=True): the launcher itself skips a
    node whose upstream node failed in this run, naming it, and runs one whose upstream succeeded."""
    import jfx_flow as flow

    from jfx.orchestrators._launcher import launch_node
    from jfx.orchestrators._run import join_run

    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    ir = flow.exit_handled(root=str(tmp_path / "root"), url=url).compile()
    with MetadataStore(url) as store:
        run = join_run(store, ir, "pods-1", runner="kubeflow", parameters={"fail": True})
        outcomes = {nid: launch_node(store, ir, ir.node(nid), run, check_upstream=True)
                    for nid in ("number", "explode", "publish")}
    assert outcomes["number"].state == NodeState.COMPLETE, "its upstream (none) succeeded: it runs"
    assert outcomes["explode"].state == NodeState.FAILED
    skipped = outcomes["publish"]
    assert skipped.state == NodeState.SKIPPED and skipped.error == "upstream node explode failed"
    assert not skipped.by_condition
