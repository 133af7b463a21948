"""The hot queries of a long-lived store read through indexes, never every execution or run.

Checked on SQLite with EXPLAIN QUERY PLAN on a small store analysed as a large one is
(most contexts are runs, most executions share a node): a plan step ``SCAN jfx_executions``
or ``SCAN jfx_contexts`` (a whole-table read, no index) fails the test.
``tests/benchmarks/bench_store_scale.py`` times the same queries at a million executions.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jfx.metadata import ArtifactRecord, ContextRecord, ExecutionRecord, ExecutionState, ListOptions, MetadataStore
from jfx.metadata._records import PIPELINE, PIPELINE_RUN
from jfx.metadata._runs import list_runs
from jfx.orchestrators._run import reap_abandoned


@pytest.fixture
def history(tmp_path):
    """A store with 30 runs of a 3-node pipeline, and the SQL each hot call sends."""
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    with MetadataStore(url) as store:
        pipeline = store.get_or_create_context(PIPELINE, "p")
        nodes = {n: store.get_or_create_context("node", f"p.{n}", parent_id=pipeline.id) for n in ("a", "b", "c")}
        for r in range(30):
            [run_id] = store.put_contexts([ContextRecord(PIPELINE_RUN, f"r{r}", parent_id=pipeline.id,
                                                         properties={"state": "COMPLETE"})])
            for n, ctx in nodes.items():
                store.put_execution(ExecutionRecord("C", n, state=ExecutionState.COMPLETE, cache_key=f"{n}{r}"),
                                    contexts=[pipeline.id, run_id, ctx.id],
                                    outputs={"out": [ArtifactRecord("D", f"/x/{n}/{r}", name=f"{n}.out")]})
        with store._engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        yield store, nodes


def plans_of(store: MetadataStore, call) -> list[tuple[str, list[str]]]:
    """(SQL, plan steps) of every SELECT that ``call`` sends."""
    sent: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        return [(sql, [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)])
                for sql, params in sent if "jfx_alembic_version" not in sql]


def full_scans(plans: list[tuple[str, list[str]]]) -> list[str]:
    return [f"{step}  <-  {sql}" for sql, steps in plans for step in steps
            if step.startswith(("SCAN jfx_executions", "SCAN jfx_contexts")) and "INDEX" not in step]


def test_cache_lookup_and_miss_reason_use_indexes(history):
    store, nodes = history
    calls = [
        lambda: store.get_executions(node_id="b", state=ExecutionState.COMPLETE, cache_key="b3",
                                     context_id=nodes["b"].id, options=ListOptions(limit=20, order_by="id",
                                                                                    descending=True)),
        lambda: store.get_executions(node_id="b", state=[ExecutionState.COMPLETE, ExecutionState.CACHED],
                                     context_id=nodes["b"].id, options=ListOptions(limit=1, order_by="id",
                                                                                    descending=True)),
    ]
    for call in calls:
        plans = plans_of(store, call)
        assert plans and full_scans(plans) == []
        # newest first straight from an index: no sort of every execution of the node
        assert not any("TEMP B-TREE FOR ORDER BY" in step for _, steps in plans for step in steps), plans


def test_reaping_and_run_lists_use_indexes(history):
    store, _ = history
    for call in (lambda: reap_abandoned(store),
                 lambda: list_runs(store, options=ListOptions(limit=50, order_by="id", descending=True)),
                 lambda: store.get_pipelines(),
                 lambda: store.get_artifacts(options=ListOptions(limit=5))):
        plans = plans_of(store, call)
        assert plans and full_scans(plans) == [], full_scans(plans)


def test_the_ui_run_list_and_pipelines_use_indexes(history):
    from jfx.metadata.ui import _queries

    store, _ = history
    for call in (lambda: _queries.run_page(store, pipeline=None, state=None, search=None, limit=50, offset=0),
                 lambda: _queries.run_page(store, pipeline="p", state=None, search=None, limit=50, offset=0),
                 lambda: _queries.pipeline_summaries(store),
                 lambda: _queries.artifact_page(store, type_name=None, name="b.out", limit=50, offset=0)):
        plans = plans_of(store, call)
        assert plans and full_scans(plans) == [], full_scans(plans)


def test_run_lists_by_state_and_capped_counts_use_indexes(history, monkeypatch):
    from jfx.metadata.ui import _queries

    store, _ = history
    monkeypatch.setattr(_queries, "COUNT_CAP", 5)
    calls = [lambda: _queries.run_page(store, pipeline=None, state="FAILED", search=None, limit=50, offset=0),
             lambda: _queries.run_page(store, pipeline="p", state="COMPLETE", search=None, limit=10, offset=20),
             lambda: _queries.run_page(store, pipeline=None, state=None, search=None, limit=10, offset=20)]
    for call in calls:
        plans = plans_of(store, call)
        assert plans and full_scans(plans) == [], full_scans(plans)
        # newest first straight from an index, filtered by state in it: no sort of the runs
        # newest first straight from an index, filtered by state in it: the only sort is of the page's rows
        for _, steps in plans:
            inner = steps[:steps.index("SCAN page")] if "SCAN page" in steps else steps
            assert not any("TEMP B-TREE" in step for step in inner), steps
        assert any("ix_jfx_contexts_type_name_run_state" in step or "ix_jfx_contexts_parent_id_run_state" in step
                   for _, steps in plans for step in steps) or call is calls[2], plans
    assert _queries.run_page(store, pipeline="p", state="COMPLETE", search=None, limit=3, offset=0)[1:] == (5, False)
    assert _queries.run_page(store, pipeline="p", state="COMPLETE", search=None, limit=10, offset=20)[1:] == (30, True)
    [summary] = _queries.pipeline_summaries(store)
    assert (summary["runs"], summary["runs_exact"]) == (5, False)
    # the artifact list counts the same way: to the cap, or to the page's end if deeper
    assert _queries.artifact_page(store, type_name=None, name="b.out", limit=3, offset=0)[1:] == (5, False)
    assert _queries.artifact_page(store, type_name="D", name="b.out", limit=10, offset=20)[1:] == (30, True)
    plans = plans_of(store, lambda: _queries.artifact_page(store, type_name=None, name=None, limit=3, offset=0))
    assert any("LIMIT" in sql and "count" in sql for sql, _ in plans), [sql for sql, _ in plans]


def test_a_run_id_search_pages_and_counts_from_one_pass_over_the_runs(history, monkeypatch):
    from jfx.metadata.ui import _queries

    store, _ = history
    # r1, r10..r19: 11 matches, newest first
    rows, total, exact = _queries.run_page(store, pipeline="p", state="COMPLETE", search="r1", limit=4, offset=2)
    assert [r["name"] for r in rows] == ["r17", "r16", "r15", "r14"] and (total, exact) == (11, True)
    assert all(r["pipeline"] == "p" and r["state"] == "COMPLETE" for r in rows)
    assert _queries.run_page(store, pipeline=None, state=None, search="r1", limit=4, offset=20)[:2] == ([], 11)
    assert _queries.run_page(store, pipeline=None, state=None, search="nothing", limit=4, offset=0)[1:] == (0, True)
    monkeypatch.setattr(_queries, "COUNT_CAP", 5)  # the count stops at the cap, or at the page's end if deeper
    assert _queries.run_page(store, pipeline=None, state=None, search="r1", limit=4, offset=0)[1:] == (5, False)
    assert _queries.run_page(store, pipeline=None, state=None, search="r1", limit=4, offset=4)[1:] == (8, False)
    assert _queries.run_page(store, pipeline=None, state=None, search="r1", limit=4, offset=8)[1:] == (11, True)
    plans = plans_of(store, lambda: _queries.run_page(store, pipeline=None, state=None, search="r", limit=5, offset=0))
    assert sum("LIKE" in sql for sql, _ in plans) == 1, [sql for sql, _ in plans]
    # the names are read from the runs-newest-first index, never from the runs' rows
    [search_steps] = [steps for sql, steps in plans if "LIKE" in sql]
    assert any("COVERING INDEX ix_jfx_contexts_type_name_deleted" in step for step in search_steps), search_steps


def test_the_run_list_reads_its_runs_latest_executions_in_one_query(history):
    from jfx.metadata.ui import _queries
    from jfx.metadata.ui._runs import run_metrics

    store, nodes = history
    runs = [r["id"] for r in _queries.run_page(store, pipeline=None, state=None, search=None, limit=20, offset=0)[0]]
    latest = _queries.latest_execution_ids(store, runs)
    assert all(set(by_node) == set(nodes) for by_node in latest.values())
    assert all(latest[ctx] == {n: e.id for n, e in store.latest_executions(ctx).items()} for ctx in runs)
    plans = plans_of(store, lambda: run_metrics(store, runs))
    assert len(plans) == 2 and full_scans(plans) == [], plans  # the latest executions, then their outputs
