"""MetadataStore on SQLite, PostgreSQL and MariaDB: round trips, errors, composite writes, queries."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

import jfx.metadata as md
from jfx.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from jfx.metadata import (
    NODE,
    PIPELINE,
    PIPELINE_RUN,
    ArtifactRecord,
    ArtifactState,
    ContextRecord,
    Event,
    EventType,
    ExecutionRecord,
    ExecutionState,
    ListOptions,
    MetadataStore,
)

UTC = timezone.utc


def test_public_api_is_pinned():
    assert sorted(md.__all__) == sorted(
        [
            "MetadataStore",
            "Client",
            "RunView",
            "NodeView",
            "ArtifactView",
            "ArtifactRecord",
            "ExecutionRecord",
            "ContextRecord",
            "Event",
            "LineageGraph",
            "ListOptions",
            "ExecutionState",
            "ArtifactState",
            "EventType",
            "PIPELINE",
            "PIPELINE_RUN",
            "NODE",
            "RetentionPolicy",
            "GcReport",
            "collect_garbage",
            "parse_age",
        ]
    )
    assert (PIPELINE, PIPELINE_RUN, NODE) == ("pipeline", "pipeline_run", "node")
    assert [s.value for s in ExecutionState] == [
        "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELLED", "ABANDONED", "SKIPPED"
    ]
    assert [s.value for s in ArtifactState] == ["PENDING", "LIVE", "ABANDONED", "DELETING", "DELETED"]


def _counts(store: MetadataStore) -> tuple[int, int, int, int]:
    executions = store.get_executions()
    artifacts = store.get_artifacts()
    events = store.get_events_by_execution_ids([e.id for e in executions])
    return len(executions), len(artifacts), len(events), len(store.get_contexts())


# ------------------------------------------------------------------ round trips


def test_artifact_round_trip_and_update(store):
    art = ArtifactRecord(
        "Examples",
        "/data/examples/1",
        name="train",
        state="PENDING",
        fingerprint="abc",
        properties={"split": ["train", "eval"], "n": 3, "nested": {"x": 1.5, "ok": True}},
    )
    [art_id] = store.put_artifacts([art])
    assert art.id == art_id and art.state is ArtifactState.PENDING
    got = store.get_artifact(art_id)
    assert got == art
    assert got.create_time.tzinfo is not None and got.create_time.utcoffset() == timedelta(0)
    assert abs(got.create_time - datetime.now(UTC)) < timedelta(minutes=1)

    art.state = ArtifactState.LIVE
    art.fingerprint = "def"
    art.properties = {"n": 4}
    art.uri = "/data/examples/2"
    store.put_artifacts([art])
    got = store.get_artifact(art_id)
    assert (got.state, got.fingerprint, got.properties, got.uri) == (ArtifactState.LIVE, "def", {"n": 4}, "/data/examples/2")
    assert got.create_time == art.create_time
    assert len(store.get_artifacts()) == 1


def test_artifact_queries_filter_and_page(store):
    records = [ArtifactRecord("Model" if i % 2 else "Examples", f"/a/{i}") for i in range(6)]
    ids = store.put_artifacts(records)
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [a.id for a in store.get_artifacts_by_type("Model")] == ids[1::2]
    assert [a.id for a in store.get_artifacts(uri="/a/4")] == [ids[4]]
    assert [a.id for a in store.get_artifacts(ids[:3], type_name="Examples")] == [ids[0], ids[2]]
    assert store.get_artifacts(state="DELETED") == []
    page = store.get_artifacts(options=ListOptions(limit=2, offset=1, descending=True))
    assert [a.id for a in page] == [ids[4], ids[3]]
    newest = store.get_artifacts(options=ListOptions(limit=1, order_by="create_time", descending=True))
    assert [a.id for a in newest] == [ids[-1]]
    assert [a.id for a in store.get_artifacts(options=ListOptions(offset=5))] == [ids[5]]
    with pytest.raises(InvalidArgumentError, match="order_by='name'"):
        store.get_artifacts(options=ListOptions(order_by="name"))


def test_execution_round_trip_update_and_filters(store):
    long_error = "Traceback:\n" + "x" * 200_000  # beyond MySQL TEXT
    ex = ExecutionRecord("Trainer", "trainer", parameters={"epochs": 3, "lr": 0.1}, cache_key="k" * 64)
    [ex_id] = store.put_executions([ex])
    assert ex.start_time is not None and ex.end_time is None
    assert store.get_execution(ex_id) == ex

    ex.state, ex.error, ex.properties = ExecutionState.FAILED, long_error, {"attempt": 2}
    store.put_executions([ex])
    got = store.get_execution(ex_id)
    assert got.state is ExecutionState.FAILED and got.error == long_error and got.properties == {"attempt": 2}
    assert got.end_time is not None and got.end_time >= got.start_time  # set once terminal

    other = ExecutionRecord("Pusher", "pusher", state=ExecutionState.COMPLETE)
    store.put_executions([other])
    assert [e.id for e in store.get_executions(state="FAILED")] == [ex_id]
    assert [e.id for e in store.get_executions(state=["FAILED", ExecutionState.COMPLETE])] == [ex_id, other.id]
    assert [e.id for e in store.get_executions(node_id="pusher")] == [other.id]
    assert [e.id for e in store.get_executions(cache_key="k" * 64)] == [ex_id]
    assert [e.id for e in store.get_executions(type_name="Trainer")] == [ex_id]
    assert [e.id for e in store.get_executions(options=ListOptions(order_by="start_time", descending=True))] == [
        other.id,
        ex_id,
    ]


def test_explicit_times_round_trip_at_millisecond_precision(store):
    start = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    end = datetime(2024, 5, 6, 9, 8, 9, 456000, tzinfo=timezone(timedelta(hours=2)))
    ex = ExecutionRecord("A", "a", state="COMPLETE", start_time=start, end_time=end)
    store.put_executions([ex])
    got = store.get_execution(ex.id)
    assert got.start_time == start and got.end_time == end
    assert got.end_time.tzinfo == UTC
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        store.put_executions([ExecutionRecord("A", "a", start_time=datetime(2024, 1, 1))])


def test_context_round_trip_and_duplicates(store):
    pipe = ContextRecord(PIPELINE, "penguin", properties={"root": "/tmp/p"})
    store.put_contexts([pipe])
    run = ContextRecord(PIPELINE_RUN, "run-1", parent_id=pipe.id)
    store.put_contexts([run])
    assert store.get_context(run.id) == run
    assert store.get_context_by_name(PIPELINE, "penguin") == pipe
    assert store.get_context_by_name(PIPELINE, "nope") is None
    assert store.get_contexts(parent_id=pipe.id) == [run]
    assert store.get_contexts(PIPELINE) == [pipe]
    with pytest.raises(AlreadyExistsError, match="'penguin'"):
        store.put_contexts([ContextRecord(PIPELINE, "penguin")])
    # Same name, other type, other case: distinct contexts on every backend.
    store.put_contexts([ContextRecord(PIPELINE_RUN, "penguin"), ContextRecord(PIPELINE, "Penguin")])
    pipe.properties = {"root": "/tmp/q"}
    store.put_contexts([pipe])
    assert store.get_context(pipe.id).properties == {"root": "/tmp/q"}
    with pytest.raises(NotFoundError, match="context id 9999 does not exist"):
        store.put_contexts([ContextRecord(PIPELINE_RUN, "orphan", parent_id=9999)])


def test_update_context_properties_merges(store):
    ctx = store.get_or_create_context(PIPELINE_RUN, "r", properties={"a": 1, "b": 2})
    got = store.update_context_properties(ctx.id, {"b": 3, "c": [1]})
    assert got.properties == {"a": 1, "b": 3, "c": [1]}
    assert store.get_context(ctx.id).properties == {"a": 1, "b": 3, "c": [1]}
    with pytest.raises(NotFoundError, match="context id 424242"):
        store.update_context_properties(424242, {"x": 1})


def test_update_context_properties_concurrent_writers_keep_all_keys(store):
    ctx = store.get_or_create_context(PIPELINE_RUN, "r")

    def writer(k: int) -> None:
        for j in range(5):
            store.update_context_properties(ctx.id, {f"w{k}-{j}": j})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(store.get_context(ctx.id).properties) == {f"w{k}-{j}" for k in range(4) for j in range(5)}


def test_get_or_create_context_race_returns_one_context(store):
    results, errors = [], []

    def create() -> None:
        try:
            results.append(store.get_or_create_context(PIPELINE, "raced", properties={"x": 1}))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({c.id for c in results}) == 1
    assert len(store.get_contexts(PIPELINE)) == 1


def test_events_round_trip_and_duplicates_are_skipped(store):
    a, b = ArtifactRecord("X", "/a"), ArtifactRecord("X", "/b")
    store.put_artifacts([a, b])
    ex = ExecutionRecord("C", "c")
    store.put_executions([ex])
    events = [
        Event(a.id, ex.id, EventType.INPUT, "in", 0),
        Event(b.id, ex.id, "OUTPUT", "out", 0),
    ]
    store.put_events(events)
    store.put_events(events)  # idempotent
    got = store.get_events_by_execution_ids([ex.id])
    assert [(e.artifact_id, e.type, e.key, e.index) for e in got] == [
        (a.id, EventType.INPUT, "in", 0),
        (b.id, EventType.OUTPUT, "out", 0),
    ]
    assert all(e.time is not None for e in got)
    assert store.get_events_by_artifact_ids([b.id]) == got[1:]
    with pytest.raises(NotFoundError, match=r"artifact ids \[777, 778\] do not exist"):
        store.put_events([Event(777, ex.id, EventType.INPUT), Event(778, ex.id, EventType.INPUT)])


def test_not_found_errors_name_the_id(store):
    with pytest.raises(NotFoundError, match="artifact id 12345 does not exist"):
        store.get_artifact(12345)
    with pytest.raises(NotFoundError, match="execution id 12345 does not exist"):
        store.get_execution(12345)
    with pytest.raises(NotFoundError, match="context id 12345 does not exist"):
        store.get_context(12345)
    with pytest.raises(NotFoundError, match="artifact id 12345 does not exist"):
        store.put_artifacts([ArtifactRecord("X", "/x", id=12345)])
    with pytest.raises(NotFoundError, match="execution id 12345 does not exist"):
        store.get_execution_artifacts(12345)
    assert store.get_artifacts() == []


def test_invalid_arguments_are_explained(store):
    with pytest.raises(InvalidArgumentError, match="state='DONE' is not one of: NEW, RUNNING"):
        store.put_executions([ExecutionRecord("A", "a", state="DONE")])
    with pytest.raises(InvalidArgumentError, match="type_name=''"):
        store.put_artifacts([ArtifactRecord("", "/x")])
    with pytest.raises(InvalidArgumentError, match="properties"):
        store.put_artifacts([ArtifactRecord("X", "/x", properties=[1])])
    with pytest.raises(InvalidArgumentError, match="JSON serializable"):
        store.put_artifacts([ArtifactRecord("X", "/x", properties={"f": object()})])
    with pytest.raises(InvalidArgumentError, match="cache_key"):
        store.put_executions([ExecutionRecord("A", "a", cache_key="k" * 65)])
    with pytest.raises(InvalidArgumentError, match="limit=-1"):
        ListOptions(limit=-1)
    assert store.get_artifacts() == [] and store.get_executions() == []


# ------------------------------------------------------------- put_execution


def _run_contexts(store: MetadataStore, run: str = "run-1") -> list[int]:
    pipe = store.get_or_create_context(PIPELINE, "p")
    run_ctx = store.get_or_create_context(PIPELINE_RUN, run, parent_id=pipe.id)
    return [pipe.id, run_ctx.id]


def test_put_execution_records_everything(store):
    ctx_ids = _run_contexts(store)
    e1, e2 = ArtifactRecord("Examples", "/ex/1"), ArtifactRecord("Examples", "/ex/2")
    store.put_artifacts([e1, e2])
    model, blessing = ArtifactRecord("Model", "/m"), ArtifactRecord("Blessing", "/b")
    ex = ExecutionRecord("Trainer", "trainer", state=ExecutionState.COMPLETE)
    returned = store.put_execution(
        ex,
        contexts=ctx_ids,
        inputs={"examples": [e2.id, e1.id]},
        outputs={"model": [model], "blessing": [blessing]},
    )
    assert returned is ex and ex.id is not None and model.id is not None and blessing.id is not None
    inputs, outputs = store.get_execution_artifacts(ex.id)
    assert {k: [a.id for a in v] for k, v in inputs.items()} == {"examples": [e2.id, e1.id]}
    assert {k: [a.id for a in v] for k, v in outputs.items()} == {"model": [model.id], "blessing": [blessing.id]}
    for ctx_id in ctx_ids:
        assert [e.id for e in store.get_executions_by_context(ctx_id)] == [ex.id]
        assert {a.id for a in store.get_artifacts_by_context(ctx_id)} == {e1.id, e2.id, model.id, blessing.id}
    assert [c.id for c in store.get_contexts_by_execution(ex.id)] == ctx_ids


def test_put_execution_is_idempotent_across_state_changes(store):
    ctx_ids = _run_contexts(store)
    [src] = [ArtifactRecord("Examples", "/ex")]
    store.put_artifacts([src])
    ex = ExecutionRecord("Trainer", "trainer", state=ExecutionState.RUNNING)
    store.put_execution(ex, contexts=ctx_ids, inputs={"examples": [src.id]})
    model = ArtifactRecord("Model", "/m", state=ArtifactState.PENDING)
    ex.state = ExecutionState.COMPLETE
    store.put_execution(ex, contexts=ctx_ids, inputs={"examples": [src.id]}, outputs={"model": [model]})
    model.state = ArtifactState.LIVE
    store.put_execution(ex, contexts=ctx_ids, inputs={"examples": [src.id]}, outputs={"model": [model]})

    assert _counts(store) == (1, 2, 2, 2)
    assert store.get_execution(ex.id).state is ExecutionState.COMPLETE
    assert store.get_artifact(model.id).state is ArtifactState.LIVE
    for ctx_id in ctx_ids:
        assert len(store.get_executions_by_context(ctx_id)) == 1
        assert sorted(a.id for a in store.get_artifacts_by_context(ctx_id)) == [src.id, model.id]


def test_put_execution_is_all_or_nothing(store):
    ctx_ids = _run_contexts(store)
    src = ArtifactRecord("Examples", "/ex")
    store.put_artifacts([src])
    before = _counts(store)

    # Fails after the execution and the first output were written: all rolled back.
    fresh, missing = ArtifactRecord("Model", "/m"), ArtifactRecord("Model", "/gone", id=98765)
    ex = ExecutionRecord("Trainer", "trainer", state=ExecutionState.COMPLETE)
    with pytest.raises(NotFoundError, match="artifact id 98765 does not exist"):
        store.put_execution(ex, contexts=ctx_ids, inputs={"x": [src.id]}, outputs={"model": [fresh, missing]})
    assert _counts(store) == before
    assert ex.id is None and fresh.id is None  # records untouched on failure

    # A value that cannot be stored, in the second output.
    bad = ArtifactRecord("Model", "/bad", properties={"x": {1, 2}})
    with pytest.raises(InvalidArgumentError):
        store.put_execution(ex, contexts=ctx_ids, inputs={"x": [src.id]}, outputs={"a": [fresh], "b": [bad]})
    assert _counts(store) == before

    with pytest.raises(NotFoundError, match="context id 5555 does not exist"):
        store.put_execution(ex, contexts=[ctx_ids[0], 5555], outputs={"model": [fresh]})
    with pytest.raises(NotFoundError, match="artifact id 4444 does not exist"):
        store.put_execution(ex, contexts=ctx_ids, inputs={"x": [4444]}, outputs={"model": [fresh]})
    assert _counts(store) == before
    assert store.get_artifacts_by_context(ctx_ids[1]) == []


# ------------------------------------------------------------------- queries


def test_get_runs_newest_first_and_by_pipeline(store):
    pipes = [store.get_or_create_context(PIPELINE, name) for name in ("p", "q")]
    base = datetime(2024, 1, 1, tzinfo=UTC)
    runs = []
    for i, minutes in enumerate([5, 1, 9, 3]):
        run = ContextRecord(PIPELINE_RUN, f"run-{i}", parent_id=pipes[i % 2].id, create_time=base + timedelta(minutes=minutes))
        store.put_contexts([run])
        runs.append(run)
    assert [r.name for r in store.get_runs()] == ["run-2", "run-0", "run-3", "run-1"]
    assert [r.name for r in store.get_runs("p")] == ["run-2", "run-0"]
    assert [r.name for r in store.get_runs("q", ListOptions(order_by="create_time"))] == ["run-1", "run-3"]
    assert [r.name for r in store.get_runs("p", ListOptions(limit=1, descending=True))] == ["run-2"]
    assert store.get_runs("unknown") == []
    assert [p.name for p in store.get_pipelines()] == ["p", "q"]


def test_get_node_outputs_picks_latest_successful_execution(store):
    ctx_ids = _run_contexts(store)
    other_run = _run_contexts(store, "run-2")[1]
    run = ctx_ids[1]
    assert store.get_node_outputs(run, "trainer") is None

    def record(state: ExecutionState, uri: str, contexts=ctx_ids) -> ArtifactRecord:
        art = ArtifactRecord("Model", uri)
        store.put_execution(ExecutionRecord("Trainer", "trainer", state=state), contexts=contexts, outputs={"model": [art]})
        return art

    record(ExecutionState.COMPLETE, "/m/1")
    cached = record(ExecutionState.CACHED, "/m/2")
    record(ExecutionState.FAILED, "/m/3")
    record(ExecutionState.RUNNING, "/m/4")
    record(ExecutionState.COMPLETE, "/m/5", contexts=[other_run])
    outputs = store.get_node_outputs(run, "trainer")
    assert {k: [a.id for a in v] for k, v in outputs.items()} == {"model": [cached.id]}
    assert store.get_node_outputs(run, "pusher") is None
    assert [a.uri for a in store.get_node_outputs(other_run, "trainer")["model"]] == ["/m/5"]


def test_get_executions_filters_by_context_in_one_query(store):
    ctx_ids = _run_contexts(store)
    other = _run_contexts(store, "run-2")
    mine = store.put_execution(ExecutionRecord("Trainer", "trainer", state=ExecutionState.COMPLETE, cache_key="k"),
                               contexts=ctx_ids)
    store.put_execution(ExecutionRecord("Trainer", "trainer", state=ExecutionState.COMPLETE, cache_key="k"),
                        contexts=other)
    store.put_execution(ExecutionRecord("Trainer", "trainer", state=ExecutionState.FAILED, cache_key="k"),
                        contexts=ctx_ids)
    found = store.get_executions(node_id="trainer", state=ExecutionState.COMPLETE, cache_key="k",
                                 context_id=ctx_ids[1])
    assert [e.id for e in found] == [mine.id]
    assert store.get_executions(context_id=10**9) == []
    with pytest.raises(InvalidArgumentError, match="context_id"):
        store.get_executions(context_id="1")


def test_latest_executions_gives_each_nodes_newest_execution_of_a_run(store):
    ctx_ids = _run_contexts(store)
    other = _run_contexts(store, "run-2")
    run = ctx_ids[1]
    assert store.latest_executions(run) == {}

    def record(node: str, state: ExecutionState, contexts=ctx_ids) -> int:
        execution = store.put_execution(ExecutionRecord("C", node, state=state), contexts=contexts)
        assert execution.id is not None
        return execution.id

    first_trainer = record("trainer", ExecutionState.FAILED)
    gen = record("gen", ExecutionState.COMPLETE)
    trainer = record("trainer", ExecutionState.RUNNING)
    record("trainer", ExecutionState.COMPLETE, contexts=other)  # another run's
    latest = store.latest_executions(run)
    assert {k: e.id for k, e in latest.items()} == {"gen": gen, "trainer": trainer}
    assert list(latest) == ["gen", "trainer"]  # by id
    assert latest["trainer"].state == ExecutionState.RUNNING
    assert {k: e.id for k, e in store.latest_executions(run, after_id=gen).items()} == {"trainer": trainer}
    assert store.latest_executions(run, after_id=trainer) == {}
    assert first_trainer < gen


# ----------------------------------------------------------------- the store


def test_url_is_masked_and_plain_schemes_get_drivers(tmp_path):
    from jfx.metadata._backend import backend_of, normalize_url

    assert normalize_url("postgresql://u:secret@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("mysql://u@h/db").drivername == "mysql+pymysql"
    assert backend_of(normalize_url("mariadb://u@h/db")) == "mysql"
    with pytest.raises(InvalidArgumentError, match="'oracle'"):
        normalize_url("oracle://u@h/db")
    with pytest.raises(InvalidArgumentError, match="not a database URL"):
        normalize_url("just-a-path")
    path = tmp_path / "deep" / "er" / "m.sqlite"
    with MetadataStore(f"sqlite:///{path}") as store:
        assert path.exists() and store.backend == "sqlite"
        assert "m.sqlite" in store.url and repr(store).startswith("MetadataStore(")


def test_default_url_comes_from_jfx_home(tmp_path, monkeypatch):
    monkeypatch.delenv("JFX_METADATA_URL", raising=False)
    monkeypatch.setenv("JFX_HOME", str(tmp_path / "home"))
    with MetadataStore() as store:
        store.put_artifacts([ArtifactRecord("X", "/x")])
    assert (tmp_path / "home" / "metadata.sqlite").exists()


def test_sqlite_pragmas(tmp_path):
    with MetadataStore(f"sqlite:///{tmp_path / 'm.sqlite'}") as store, store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_in_memory_sqlite_works():
    with MetadataStore("sqlite://") as store:
        [art_id] = store.put_artifacts([ArtifactRecord("X", "/x")])
        assert store.get_artifact(art_id).uri == "/x"


def test_stored_id_is_the_id_the_store_gave_and_an_error_before(sqlite_url):
    record = ArtifactRecord("Examples", "/data/examples/1", name="gen.examples")
    with pytest.raises(InvalidArgumentError, match=r"ArtifactRecord 'gen\.examples' has no id: it was never stored"):
        _ = record.stored_id
    with MetadataStore(sqlite_url) as store:
        store.put_artifacts([record])
        (new_id,) = store.put_artifacts([ArtifactRecord("Examples", "/data/examples/2")])
        assert record.stored_id == record.id
        assert store.get_artifact(new_id).stored_id == new_id
