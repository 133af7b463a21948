"""jfx.metadata._runs: the one typed record of a run, written and read by every runner and reader."""

from __future__ import annotations

from datetime import datetime, timezone

import jfx_testlib as lib
import pytest
from jfx.errors import InvalidArgumentError
from jfx.metadata import PIPELINE_RUN, ContextRecord, MetadataStore
from jfx.metadata._client import Client
from jfx.metadata._runs import (
    RunRecord,
    RunState,
    abandon_run,
    create_run,
    finish_run,
    get_run,
    list_runs,
    reopen_run,
)
from jfx.orchestrators import LocalDagRunner


def test_record_round_trips_through_context_properties():
    start = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    record = RunRecord("p-1", state=RunState.FAILED, start_time=start, end_time=start.replace(second=9),
                       parameters={"rows": 4}, pipeline_root="/r", enable_cache=False, ir={"nodes": [{"id": "a"}]},
                       attempts=2, host="h", pid=7, runner="beam", node_states={"a": "failed"}, error="boom",
                       partial={"selected": ["a"], "reused_from_run": None})
    read = RunRecord.from_context(ContextRecord(PIPELINE_RUN, "p-1", properties=record.to_properties()))
    assert read == record
    assert read.duration_s == 4.0 and read.node_order == ["a"]
    assert RunState.COMPLETE == "COMPLETE" and f"{RunState.FAILED}" == "FAILED"  # still a str for old callers


def test_a_store_written_before_the_record_stays_readable():
    # what jfx wrote before: no attempts, no runner, no end time, an unreadable pid
    old = ContextRecord(PIPELINE_RUN, "p-old", id=3, parent_id=1,
                        properties={"state": "COMPLETE", "start_time": "2025-05-01T10:00:00.000+00:00",
                                    "parameters": {"x": 1}, "pid": "n/a"})
    record = RunRecord.from_context(old)
    assert (record.state, record.attempts, record.runner, record.end_time, record.pid) == (
        RunState.COMPLETE, 1, None, None, None)
    assert record.start_time == datetime(2025, 5, 1, 10, tzinfo=timezone.utc) and record.duration_s is None
    assert RunRecord.from_context(ContextRecord(PIPELINE_RUN, "p-none")).state == RunState.RUNNING


def test_lifecycle_writes_through_the_record(tmp_path):
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        made = create_run(store, "p", RunRecord("p-1", parameters={"rows": 4}, host="h", pid=1, runner="local"))
        assert made.context_id is not None and made.start_time is not None and made.state == RunState.RUNNING
        # a second creator (a Kubeflow task) joins the run unchanged
        again = create_run(store, "p", RunRecord("p-1", parameters={"rows": 9}, runner="kubeflow"))
        assert (again.context_id, again.parameters, again.runner) == (made.context_id, {"rows": 4}, "local")
        with pytest.raises(InvalidArgumentError, match="run 'p-1' is not a run of pipeline 'q'"):
            create_run(store, "q", RunRecord("p-1"))
        finish_run(store, made.context_id, RunState.FAILED, {"a": "failed"}, error="task failed")
        done = get_run(store, "p-1")
        assert (done.state, done.node_states, done.error) == (RunState.FAILED, {"a": "failed"}, "task failed")
        assert done.end_time is not None and done.end_time >= done.start_time
        resumed = reopen_run(store, done, host="h2", pid=2, runner="beam")
        assert (resumed.state, resumed.attempts, resumed.end_time, resumed.host, resumed.runner) == (
            RunState.RUNNING, 2, None, "h2", "beam")
        assert resumed.resumed_time is not None
        abandon_run(store, made.context_id)
        assert get_run(store, "p-1").state == RunState.ABANDONED
        assert [r.run_id for r in list_runs(store, "p")] == ["p-1"] and list_runs(store, "q") == []
        assert get_run(store, "missing") is None


@pytest.mark.parametrize("runner", ["local", "beam"])
def test_every_runner_records_the_same_run(tmp_path, runner):
    root, url, marker = tmp_path / "root", f"sqlite:///{tmp_path / 'md.sqlite'}", tmp_path / "marker"
    marker.write_text("ok")
    if runner == "beam":
        from jfx.orchestrators import BeamDagRunner

        made = BeamDagRunner(["--runner=DirectRunner"], progress=False)
    else:
        made = LocalDagRunner(progress=False)
    result = made.run(lib.chain(str(root), url, str(marker)), parameters={"rows": 4})
    assert result.state is RunState.COMPLETE
    with MetadataStore(url) as store:
        record = get_run(store, result.run_id)
    assert record.runner == runner and record.state == RunState.COMPLETE and record.attempts == 1
    assert record.parameters == {"rows": 4, "note": ""} and record.pipeline_root == str(root)
    assert record.node_states == {k: o.state for k, o in result.nodes.items()}
    assert record.node_order == list(result.nodes)
    with Client(url) as client:  # the Client reads the same record
        assert client.run(result.run_id).record == record


def _run_columns(store: MetadataStore, run_id: str) -> tuple:
    import sqlalchemy as sa

    from jfx.metadata._schema import contexts

    with store._engine.connect() as conn:
        return conn.execute(sa.select(contexts.c.run_state, contexts.c.run_start_time, contexts.c.run_end_time)
                            .where(contexts.c.name == run_id)).one()


def test_every_state_change_updates_the_indexed_run_columns(store):
    from jfx.metadata._rows import RUN_STATE_VALUES

    assert tuple(s.value for s in RunState) == RUN_STATE_VALUES
    made = create_run(store, "p", RunRecord("p-1", host="h", pid=1, runner="local"))
    assert _run_columns(store, "p-1") == ("RUNNING", made.start_time, None)
    finish_run(store, made.context_id, RunState.FAILED, {"a": "failed"})
    done = get_run(store, "p-1")
    assert _run_columns(store, "p-1") == ("FAILED", done.start_time, done.end_time) and done.end_time is not None
    reopen_run(store, done, host="h", pid=2, runner="local")
    assert _run_columns(store, "p-1") == ("RUNNING", done.start_time, None)
    abandon_run(store, made.context_id)
    assert _run_columns(store, "p-1") == ("ABANDONED", done.start_time, get_run(store, "p-1").end_time)
    # other contexts have none; a run context written directly gets them from its properties
    assert _run_columns(store, "p") == (None, None, None)
    [ctx] = store.put_contexts([ContextRecord(PIPELINE_RUN, "p-2", properties={"state": "odd", "start_time": "x"})])
    assert _run_columns(store, "p-2") == ("RUNNING", None, None)  # as RunRecord reads it
    store.put_contexts([ContextRecord(PIPELINE_RUN, "p-2", id=ctx, properties={"state": "COMPLETE"})])
    assert _run_columns(store, "p-2")[0] == "COMPLETE"


def _run_summary(store: MetadataStore, run_id: str) -> tuple:
    """(the run_summary column as read, whether it is SQL NULL)."""
    import sqlalchemy as sa

    from jfx.metadata._schema import contexts

    with store._engine.connect() as conn:
        return conn.execute(sa.select(contexts.c.run_summary, contexts.c.run_summary.is_(None))
                            .where(contexts.c.name == run_id)).one()


def test_every_write_of_a_run_refreshes_its_summary_column(store):
    params = {"zeta": 1, "alpha": {"b": 2, "a": 1}, "mid": [3, 1]}  # keys out of order: kept as written
    made = create_run(store, "p", RunRecord("p-1", parameters=params, host="h", pid=1, runner="local"))
    summary, _ = _run_summary(store, "p-1")
    assert summary == {"parameters": params, "runner": "local", "attempts": 1}
    assert list(summary) == ["parameters", "runner", "attempts"] and list(summary["parameters"]) == list(params)
    assert list(summary["parameters"]["alpha"]) == ["b", "a"]
    finish_run(store, made.context_id, RunState.FAILED, {"a": "failed"})
    reopen_run(store, get_run(store, "p-1"), host="h", pid=2, runner="beam")
    assert _run_summary(store, "p-1")[0] == {"parameters": params, "runner": "beam", "attempts": 2}
    store.update_context_properties(made.context_id, {"parameters": {"b": 1, "a": 2}})
    assert _run_summary(store, "p-1")[0] == {"parameters": {"b": 1, "a": 2}, "runner": "beam", "attempts": 2}
    # other contexts have none (SQL NULL, not JSON null); a run context written directly gets one
    assert _run_summary(store, "p") == (None, True)
    [ctx] = store.put_contexts([ContextRecord(PIPELINE_RUN, "p-2", properties={"state": "COMPLETE"})])
    assert _run_summary(store, "p-2")[0] == {"parameters": None, "runner": None, "attempts": None}
    store.put_contexts([ContextRecord(PIPELINE_RUN, "p-2", id=ctx, properties={"runner": "kubeflow", "attempts": 3})])
    assert _run_summary(store, "p-2")[0] == {"parameters": None, "runner": "kubeflow", "attempts": 3}


def test_run_summaries_read_what_a_run_list_shows_without_the_properties(store):
    from jfx.metadata import ListOptions
    from jfx.metadata._runs import deletion_properties, list_run_summaries

    made = create_run(store, "p", RunRecord("p-1", parameters={"z": 1, "a": 2}, runner="local", ir={"nodes": []}))
    finish_run(store, made.context_id, RunState.COMPLETE, {})
    create_run(store, "q", RunRecord("q-1", runner="beam"))
    gone = create_run(store, "p", RunRecord("p-2"))
    store.update_context_properties(gone.context_id, deletion_properties(datetime.now(timezone.utc), "policy"))
    listed = ("run_id", "context_id", "pipeline_context_id", "state", "start_time", "end_time", "parameters",
              "runner", "attempts", "deleted_time", "create_time")

    def fields(runs: list[RunRecord]) -> list[tuple]:
        return [tuple(getattr(r, f) for f in listed) for r in runs]

    for pipeline, deleted in ((None, False), ("p", False), ("p", True), ("q", False)):
        options = ListOptions(limit=10, order_by="id", descending=True)
        summaries = list_run_summaries(store, pipeline, options, include_deleted=deleted)
        assert fields(summaries) == fields(list_runs(store, pipeline, options, include_deleted=deleted))
        assert all(r.ir is None for r in summaries)
    assert list(list_run_summaries(store, "p")[0].parameters) == ["z", "a"]
