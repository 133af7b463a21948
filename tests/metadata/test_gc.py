"""Retention (collect_garbage) on SQLite, PostgreSQL and MariaDB: what goes, what stays and why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jfx.errors import ArtifactDeletedError, InvalidArgumentError, NotFoundError
from jfx.metadata import (
    ArtifactRecord,
    ArtifactState,
    ExecutionRecord,
    ExecutionState,
    MetadataStore,
    RetentionPolicy,
    collect_garbage,
    parse_age,
)
from jfx.metadata._records import NODE
from jfx.metadata._runs import RunRecord, RunState, create_run, get_run, list_runs

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


class History:
    """Runs with executions and artifacts whose files lie under one pipeline root."""

    def __init__(self, store: MetadataStore, root: Path) -> None:
        self.store, self.root, self.serial = store, root, 0

    def run(self, run_id: str, days_ago: float, *, state: RunState = RunState.COMPLETE, pipeline: str = "p",
            root: Path | None = None) -> RunRecord:
        start = NOW - timedelta(days=days_ago)
        return create_run(self.store, pipeline, RunRecord(run_id, state=state, start_time=start,
                                                          pipeline_root=str(root or self.root)))

    def _contexts(self, run: RunRecord, node: str) -> list[int]:
        pipeline = self.store.get_context(run.pipeline_context_id)
        node_ctx = self.store.get_or_create_context(NODE, f"{pipeline.name}.{node}", parent_id=pipeline.id)
        return [run.pipeline_context_id, run.context_id, node_ctx.stored_id]

    def make(self, run: RunRecord, node: str, *, size: int = 100, inputs: dict[str, list[ArtifactRecord]] | None = None,
             type_name: str = "Dataset", properties: dict | None = None, key: str = "out",
             state: ExecutionState = ExecutionState.COMPLETE, uri: Path | None = None) -> ArtifactRecord:
        self.serial += 1
        folder = uri or self.root / "p" / node / key / str(self.serial)
        folder.mkdir(parents=True)
        (folder / "data.bin").write_bytes(b"x" * size)
        artifact = ArtifactRecord(type_name, str(folder), name=f"{node}.{key}", properties=properties or {})
        self.store.put_execution(ExecutionRecord(node, node, state=state), contexts=self._contexts(run, node),
                                 inputs={k: [a.stored_id for a in v] for k, v in (inputs or {}).items()},
                                 outputs={key: [artifact]})
        return artifact

    def reuse(self, run: RunRecord, node: str, artifact: ArtifactRecord, key: str = "out") -> None:
        """A cache hit in ``run`` that re-records ``artifact`` as its output."""
        self.store.put_execution(ExecutionRecord(node, node, state=ExecutionState.CACHED),
                                 contexts=self._contexts(run, node), outputs={key: [artifact]})

    def read(self, run: RunRecord, node: str, artifact: ArtifactRecord,
             state: ExecutionState = ExecutionState.COMPLETE) -> None:
        self.store.put_execution(ExecutionRecord(node, node, state=state), contexts=self._contexts(run, node),
                                 inputs={"x": [artifact.stored_id]})


@pytest.fixture
def history(store, tmp_path):
    return History(store, tmp_path / "root")


def _state(store: MetadataStore, artifact: ArtifactRecord) -> ArtifactState:
    return store.get_artifact(artifact.stored_id).state


def gc(store: MetadataStore, **policy) -> object:
    dry_run = policy.pop("dry_run", False)
    return collect_garbage(store, RetentionPolicy(**policy), dry_run=dry_run, at=NOW)


def test_older_runs_go_with_their_artifacts_marked_deleted_and_their_files_removed(store, history):
    old, new = history.run("r-old", 40), history.run("r-new", 10)
    a_old = history.make(old, "make", size=1000)
    a_new = history.make(new, "make", size=10)
    report = gc(store, older_than=parse_age("30d"))
    assert [r.run_id for r in report.runs] == ["r-old"]
    assert [(a.id, a.size_bytes) for a in report.artifacts] == [(a_old.id, 1000)] and report.bytes_freed == 1000
    gone = store.get_artifact(a_old.stored_id)
    assert gone.state == ArtifactState.DELETED and not Path(a_old.uri).exists()
    assert gone.deleted_time is not None and gone.delete_reason == "run r-old older than 30d"
    assert gone.deleted_note().startswith("deleted by gc on ")
    assert _state(store, a_new) == ArtifactState.LIVE and Path(a_new.uri).is_dir()
    # the run is marked, hidden from default listings and shown when asked for
    assert [r.run_id for r in list_runs(store)] == ["r-new"]
    assert {r.run_id for r in list_runs(store, include_deleted=True)} == {"r-old", "r-new"}
    record = get_run(store, "r-old")
    assert record.deleted and record.state == RunState.COMPLETE and "older than 30d" in record.delete_reason
    # lineage still explains it: the deleted artifact and the execution that made it
    assert {a.state for a in store.lineage(a_old.stored_id).artifacts} == {ArtifactState.DELETED}
    # a second gc finds nothing more
    assert gc(store, older_than=parse_age("30d")).runs == []


def test_dry_run_lists_runs_artifacts_and_bytes_and_changes_nothing(store, history):
    old = history.run("r-old", 40)
    a = history.make(old, "make", size=300)
    b = history.make(old, "train", size=200, inputs={"examples": [a]})
    report = gc(store, older_than=parse_age("4w"), dry_run=True)
    assert report.dry_run and [r.run_id for r in report.runs] == ["r-old"]
    assert {(x.id, x.uri, x.size_bytes) for x in report.artifacts} == {(a.id, a.uri, 300), (b.id, b.uri, 200)}
    assert report.bytes_freed == 500
    assert {_state(store, a), _state(store, b)} == {ArtifactState.LIVE} and Path(a.uri).is_dir()
    assert [r.run_id for r in list_runs(store)] == ["r-old"]


def test_keep_last_counts_per_pipeline_and_pipeline_narrows(store, history):
    runs = [history.run(f"p-{i}", 10 - i) for i in range(4)]
    others = [history.run(f"q-{i}", 10 - i, pipeline="q") for i in range(2)]
    made = {r.run_id: history.make(r, "make", size=1) for r in runs + others}
    assert gc(store, keep_last=2, pipeline="q").runs == []
    report = gc(store, keep_last=2)
    assert sorted(r.run_id for r in report.runs) == ["p-0", "p-1"]
    assert {k for k, a in made.items() if _state(store, a) == ArtifactState.DELETED} == {"p-0", "p-1"}
    # with an age too, a run goes only if both select it
    assert gc(store, keep_last=1, older_than=timedelta(days=8), pipeline="p").runs == []
    assert [r.run_id for r in gc(store, keep_last=1, older_than=timedelta(days=7), pipeline="p").runs] == ["p-2"]


def test_an_artifact_a_kept_run_reuses_from_the_cache_stays_unless_forced(store, history):
    old, new = history.run("r-old", 40), history.run("r-new", 1)
    shared = history.make(old, "make")
    own = history.make(old, "other")
    history.reuse(new, "make", shared)
    report = gc(store, older_than=timedelta(days=30))
    assert [a.id for a in report.artifacts] == [own.id]
    [kept] = report.kept
    assert kept.id == shared.id and "used by run r-new" in kept.why
    assert _state(store, shared) == ArtifactState.LIVE and Path(shared.uri).is_dir()
    # forced, what a deleted run made goes even where a kept run reuses it
    old2, new2 = history.run("r-old2", 40), history.run("r-new2", 1)
    shared2 = history.make(old2, "make")
    history.reuse(new2, "make", shared2)
    forced = gc(store, run_ids=("r-old2",), force=True)
    assert [a.id for a in forced.artifacts] == [shared2.id] and _state(store, shared2) == ArtifactState.DELETED
    again = gc(store, run_ids=("r-old2",))
    assert again.runs == [] and again.skipped_runs[0].why.startswith("already deleted on ")


def test_what_a_deleted_run_only_re_recorded_belongs_to_the_run_that_made_it(store, history):
    maker, reuser = history.run("r-maker", 1), history.run("r-reuser", 40)
    made = history.make(maker, "make")
    history.reuse(reuser, "make", made)
    report = gc(store, older_than=timedelta(days=30), force=True)
    assert [r.run_id for r in report.runs] == ["r-reuser"] and report.artifacts == []
    assert "made by a run that stays" in report.kept[0].why and _state(store, made) == ArtifactState.LIVE


def test_running_runs_and_artifacts_a_running_execution_reads_stay(store, history):
    running = history.run("r-running", 50, state=RunState.RUNNING)
    history.make(running, "make")
    broken = history.run("r-broken", 40, state=RunState.ABANDONED)
    read = history.make(broken, "make")
    history.read(broken, "train", read, state=ExecutionState.RUNNING)
    report = gc(store, older_than=timedelta(days=30))
    assert [r.run_id for r in report.runs] == ["r-broken"]
    assert [(s.run_id, s.why.split(" (")[0]) for s in report.skipped_runs] == [("r-running", "still running")]
    assert [k.id for k in report.kept] == [read.id] and report.kept[0].why.startswith("read by running execution")
    assert _state(store, read) == ArtifactState.LIVE
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        gc(store, run_ids=("nope",))
    assert gc(store, run_ids=("r-running",), force=True).runs == []  # never, even forced


def test_pushed_and_blessed_models_and_what_they_need_stay(store, history):
    old = history.run("r-old", 40)
    examples = history.make(old, "gen", size=5000, type_name="Examples")
    model = history.make(old, "trainer", inputs={"examples": [examples]}, type_name="Model", key="model")
    blessing = history.make(old, "evaluator", inputs={"model": [model], "examples": [examples]},
                            type_name="ModelBlessing", key="blessing", properties={"blessed": True})
    pushed = history.make(old, "pusher", inputs={"model": [model], "model_blessing": [blessing]},
                          type_name="PushedModel", key="pushed_model", properties={"pushed": True})
    rejected = history.make(old, "trainer2", inputs={"examples": [examples]}, type_name="Model", key="model")
    history.make(old, "evaluator2", inputs={"model": [rejected]}, type_name="ModelBlessing", key="blessing",
                 properties={"blessed": False})
    report = gc(store, older_than=timedelta(days=30))
    kept = {k.id: k.why for k in report.kept}
    assert set(kept) == {model.id, blessing.id, pushed.id}
    assert kept[pushed.id].startswith("a pushed model") and kept[blessing.id].startswith("a blessed verdict")
    assert kept[model.id] in (f"an input of pushed model artifact {pushed.id}", f"the model blessed by artifact {blessing.id}")
    assert _state(store, examples) == _state(store, rejected) == ArtifactState.DELETED
    assert _state(store, model) == ArtifactState.LIVE and Path(model.uri).is_dir()


def test_a_blessed_model_alone_is_kept_with_its_blessing(store, history):
    old = history.run("r-old", 40)
    model = history.make(old, "trainer", type_name="Model", key="model")
    history.make(old, "evaluator", inputs={"model": [model]}, type_name="ModelBlessing", key="blessing",
                 properties={"blessed": True})
    report = gc(store, older_than=timedelta(days=30))
    assert report.artifacts == [] and len(report.kept) == 2 and [r.run_id for r in report.runs] == ["r-old"]


def test_files_outside_the_pipeline_root_are_never_removed(store, history, tmp_path):
    old = history.run("r-old", 40)
    outside = history.make(old, "import", uri=tmp_path / "user-data" / "x")
    report = gc(store, older_than=timedelta(days=30), force=True)
    assert report.artifacts == [] and "outside the pipeline root" in report.kept[0].why
    assert _state(store, outside) == ArtifactState.LIVE and Path(outside.uri).is_dir()


def test_the_store_never_revives_or_reads_a_deleted_artifact(store, history):
    old, new = history.run("r-old", 40), history.run("r-new", 1)
    stale = history.make(old, "make")  # the record a cache lookup read before gc marked it
    gc(store, older_than=timedelta(days=30))
    executions = len(store.get_executions())
    with pytest.raises(ArtifactDeletedError, match=rf"artifact {stale.id} .* was deleted by gc on .*older than 30d"):
        history.reuse(new, "make", stale)
    with pytest.raises(ArtifactDeletedError):
        history.read(new, "train", stale)
    with pytest.raises(ArtifactDeletedError):
        store.put_artifacts([stale])
    assert len(store.get_executions()) == executions and _state(store, stale) == ArtifactState.DELETED


def test_a_gc_rerun_finishes_deletions_an_interrupted_one_left(store, history):
    old = history.run("r-old", 40)
    left = history.make(old, "make", size=70)
    left.state = ArtifactState.DELETING  # what a gc killed after its marking commit leaves
    store.put_artifacts([left])
    assert Path(left.uri).is_dir()
    dry = gc(store, run_ids=("r-old",), dry_run=True)
    assert [(a.id, a.size_bytes) for a in dry.finished] == [(left.id, 70)] and Path(left.uri).is_dir()
    report = gc(store, run_ids=("r-old",))
    assert [a.id for a in report.finished] == [left.id] and report.bytes_freed == 70
    assert _state(store, left) == ArtifactState.DELETED and not Path(left.uri).exists()


def test_policies_and_ages_are_checked():
    assert parse_age("30d") == timedelta(days=30) and parse_age("2w") == timedelta(weeks=2)
    assert parse_age("12h") == timedelta(hours=12) and parse_age("90m") == timedelta(minutes=90)
    for bad in ("30", "d", "-1d", "0d", "3y", "1.5d"):
        with pytest.raises(InvalidArgumentError, match="expected a positive whole number and a unit"):
            parse_age(bad)
    with pytest.raises(InvalidArgumentError, match="select the runs to delete"):
        RetentionPolicy()
    with pytest.raises(InvalidArgumentError, match="not both"):
        RetentionPolicy(run_ids=("a",), keep_last=2)
    with pytest.raises(InvalidArgumentError, match="keep_last"):
        RetentionPolicy(keep_last=-1)
    assert RetentionPolicy(older_than=timedelta(days=30), keep_last=3).describe() == \
        "older than 30d and not among the newest 3 of its pipeline"


def test_an_unknown_pipeline_is_an_error(store, history):
    history.run("r", 40)
    with pytest.raises(NotFoundError, match="no pipeline 'nope'"):
        gc(store, keep_last=1, pipeline="nope")


def test_the_client_leaves_deleted_runs_out_and_refuses_to_read_a_deleted_artifact(store, history):
    from jfx.metadata import Client

    old, new = history.run("r-old", 40), history.run("r-new", 1)
    value = history.make(old, "make")
    Path(value.uri, "value.json").write_text("3")
    history.make(new, "make")
    gc(store, older_than=timedelta(days=30))
    with Client(store.url) as client:  # the test databases have no password to mask
        assert [r.id for r in client.runs()] == ["r-new"]
        with pytest.raises(ArtifactDeletedError, match=rf"artifact {value.id} .* was deleted by gc on "):
            client.artifact(value.stored_id).read()


def test_gc_racing_cache_hits_never_leaves_a_reused_artifact_deleted(store, history):
    import threading

    from jfx.metadata._schema import events as events_t

    old = history.run("r-old", 40)
    shared = history.make(old, "make")
    readers = [history.run(f"r-new-{i}", 1) for i in range(12)]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def hits():
        with MetadataStore(store.url) as own:
            mine = History(own, history.root)
            start.wait()
            for run in readers:  # each a cache lookup that saw the artifact LIVE, then records its hit
                try:
                    mine.reuse(run, "make", ArtifactRecord("Dataset", shared.uri, id=shared.id, name=shared.name))
                    outcomes.append("hit")
                except ArtifactDeletedError:
                    outcomes.append("refused")

    thread = threading.Thread(target=hits)
    thread.start()
    start.wait()
    with MetadataStore(store.url) as own:
        report = collect_garbage(own, RetentionPolicy(run_ids=("r-old",)), at=NOW)
    thread.join(60)
    final = store.get_artifact(shared.stored_id)
    with store._engine.connect() as conn:
        users = conn.execute(events_t.select().where(events_t.c.artifact_id == shared.id).order_by(events_t.c.id)).all()
    outside = [e for e in users if e.execution_id != users[0].execution_id]
    if final.state == ArtifactState.DELETED:  # gc went first: every later hit was refused
        assert outside == [] and set(outcomes) == {"refused"} and not Path(shared.uri).exists()
        assert [a.id for a in report.artifacts] == [shared.id]
    else:  # a hit went first: gc saw it and kept the artifact, and every hit was recorded
        assert final.state == ArtifactState.LIVE and Path(shared.uri).is_dir()
        assert "hit" in outcomes and "used by run r-new-" in report.kept[0].why
        assert outcomes.count("hit") == len(outside)
