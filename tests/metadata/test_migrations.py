"""The schema is created and changed only by the alembic migrations, cheaply when at head."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from jfx.errors import MetadataError
from jfx.metadata import ArtifactRecord, ExecutionRecord, ExecutionState, MetadataStore
from jfx.metadata import _store as store_module
from jfx.metadata._backend import normalize_url
from jfx.metadata._migrate import alembic_config, current_revision
from jfx.metadata._schema import HEAD_REVISION, VERSION_TABLE, metadata

TABLES = {t.name for t in metadata.sorted_tables}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)


def _jfx_tables(engine: sa.Engine) -> set[str]:
    return {t for t in sa.inspect(engine).get_table_names() if t.startswith("jfx_")}


def test_head_revision_constant_matches_the_migrations():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_fresh_database_is_migrated_to_head_and_matches_the_tables(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    MetadataStore(store_url).close()
    engine = _engine(store_url)
    try:
        assert _jfx_tables(engine) == TABLES | {VERSION_TABLE}
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_reopening_at_head_does_not_migrate(store_url, monkeypatch):
    MetadataStore(store_url).close()

    def fail(*args, **kwargs):
        raise AssertionError("migrations ran on a database already at head")

    monkeypatch.setattr(store_module, "upgrade", fail)
    with MetadataStore(store_url) as store:
        store.put_artifacts([ArtifactRecord("X", "/x")])


def test_opening_at_head_does_not_import_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    MetadataStore(url).close()
    code = (
        "import sys; from jfx.metadata import MetadataStore; "
        f"MetadataStore({url!r}).close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_downgrade_to_base_and_upgrade_again(store_url):
    from alembic import command

    with MetadataStore(store_url) as store:
        store.put_artifacts([ArtifactRecord("X", "/x")])
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert _jfx_tables(engine) <= {VERSION_TABLE}
        with engine.connect() as conn:
            assert current_revision(conn) is None
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert _jfx_tables(engine) == TABLES | {VERSION_TABLE}
    finally:
        engine.dispose()
    with MetadataStore(store_url) as store:
        assert store.get_artifacts() == []


def test_database_from_a_newer_jfx_is_refused(store_url):
    MetadataStore(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(MetadataError, match="newer jfx"):
        MetadataStore(store_url)


def test_a_store_at_0001_is_upgraded_with_its_records_and_gets_the_scale_indexes(store_url):
    from alembic import command

    with MetadataStore(store_url) as store:
        [art_id] = store.put_artifacts([ArtifactRecord("X", "/x", name="n.out")])
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        with engine.connect() as conn:
            assert current_revision(conn) == "0001"
        assert "ix_jfx_executions_state_id" not in {i["name"] for i in sa.inspect(engine).get_indexes("jfx_executions")}
        with MetadataStore(store_url) as store:  # opening upgrades it
            assert [a.id for a in store.get_artifacts()] == [art_id]
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
        inspector = sa.inspect(engine)
        assert {"ix_jfx_executions_state_id", "ix_jfx_executions_node_id_id"} <= {
            i["name"] for i in inspector.get_indexes("jfx_executions")}
        assert "ix_jfx_contexts_type_name_create_time" in {i["name"] for i in inspector.get_indexes("jfx_contexts")}
    finally:
        engine.dispose()


def test_a_store_at_0002_gets_its_runs_state_and_times_as_indexed_columns(store_url):
    from alembic import command

    from jfx.metadata._runs import RunRecord, RunState, create_run, finish_run, list_runs
    from jfx.metadata.ui import _queries

    with MetadataStore(store_url) as store:
        done = create_run(store, "p", RunRecord("p-1", runner="local"))
        finish_run(store, done.context_id, RunState.FAILED, {"a": "failed"})
        create_run(store, "p", RunRecord("p-2", runner="local"))
        before = list_runs(store, "p")
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
        assert "run_state" not in {c["name"] for c in sa.inspect(engine).get_columns("jfx_contexts")}
        with MetadataStore(store_url) as store:  # opening upgrades it, filling the columns from the properties
            assert list_runs(store, "p") == before
            rows, total, exact = _queries.run_page(store, pipeline="p", state="FAILED", search=None, limit=50,
                                                   offset=0)
            assert [(r["name"], r["state"]) for r in rows] == [("p-1", "FAILED")] and (total, exact) == (1, True)
            failed = next(r for r in before if r.run_id == "p-1")
            assert (rows[0]["start_time"], rows[0]["end_time"]) == (failed.start_time, failed.end_time)
            running = _queries.run_page(store, pipeline=None, state="RUNNING", search=None, limit=50, offset=0)[0]
            assert [(r["name"], r["end_time"]) for r in running] == [("p-2", None)]
        assert "ix_jfx_contexts_type_name_run_state" in {i["name"] for i in sa.inspect(engine).get_indexes("jfx_contexts")}
    finally:
        engine.dispose()


def test_a_store_at_0003_gets_the_gc_columns_and_keeps_its_records(store_url, tmp_path):
    from alembic import command

    from jfx.metadata import ArtifactState, RetentionPolicy, collect_garbage
    from jfx.metadata._runs import RunRecord, RunState, create_run, list_runs

    with MetadataStore(store_url) as store:
        run = create_run(store, "p", RunRecord("p-1", state=RunState.COMPLETE, pipeline_root=str(tmp_path)))
        (tmp_path / "p" / "out").mkdir(parents=True)
        made = ArtifactRecord("X", str(tmp_path / "p" / "out"), name="n.out")
        store.put_execution(ExecutionRecord("C", "n", state=ExecutionState.COMPLETE),
                            contexts=[run.context_id], outputs={"out": [made]})
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        inspector = sa.inspect(engine)
        assert "deleted_time" not in {c["name"] for c in inspector.get_columns("jfx_artifacts")}
        assert "run_deleted_time" not in {c["name"] for c in inspector.get_columns("jfx_contexts")}
        with MetadataStore(store_url) as store:  # opening upgrades it
            [again] = store.get_artifacts()
            assert (again.id, again.state, again.deleted_time, again.delete_reason) == (
                made.id, ArtifactState.LIVE, None, None)
            assert [r.run_id for r in list_runs(store)] == ["p-1"]
            report = collect_garbage(store, RetentionPolicy(run_ids=("p-1",)))
            assert [a.id for a in report.artifacts] == [made.id]
            assert store.get_artifact(made.stored_id).state == ArtifactState.DELETED and list_runs(store) == []
        inspector = sa.inspect(engine)
        assert "ix_jfx_artifacts_state_id" in {i["name"] for i in inspector.get_indexes("jfx_artifacts")}
    finally:
        engine.dispose()


def test_a_store_at_0004_gets_its_runs_list_fields_as_a_summary_column_in_batches(store_url):
    from alembic import command

    from jfx.metadata import PIPELINE, PIPELINE_RUN
    from jfx.metadata._runs import (
        PARAMETERS_KEY,
        RunRecord,
        RunState,
        create_run,
        finish_run,
        list_run_summaries,
        list_runs,
        reopen_run,
    )
    from jfx.metadata._schema import contexts
    from jfx.metadata.ui import UIApp
    from jfx.metadata.ui import _queries

    params = {"zeta": 1, "alpha": {"b": 2, "a": 1}, "mid": [3, 1.5, None], "s": "x"}  # keys out of order
    targets = ("/api/runs?limit=500", "/api/runs?pipeline=p&limit=500", "/api/runs?state=FAILED&limit=500",
               "/api/runs?q=p-1&limit=500", "/api/runs?limit=50&offset=2000")
    with MetadataStore(store_url) as store:
        done = create_run(store, "p", RunRecord("p-1", parameters=params, runner="local"))
        finish_run(store, done.context_id, RunState.FAILED, {"a": "failed"})
        reopen_run(store, list_runs(store, "p")[0], host="h", pid=1, runner="beam")
        create_run(store, "p", RunRecord("p-2", runner="local"))
        pipeline_id = store.get_context_by_name(PIPELINE, "p").id
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
        assert "run_summary" not in {c["name"] for c in sa.inspect(engine).get_columns("jfx_contexts")}
        # more runs than one batch of the fill, written as jfx at 0004 wrote them
        old = sa.table("jfx_contexts", sa.column("type_name", sa.String), sa.column("name", sa.String),
                       sa.column("parent_id", sa.Integer), sa.column("properties", sa.JSON),
                       sa.column("create_time", sa.BigInteger), sa.column("run_state", sa.String))
        with engine.begin() as conn:
            conn.execute(sa.insert(old), [
                {"type_name": PIPELINE_RUN, "name": f"b-{i:05d}", "parent_id": pipeline_id, "create_time": i,
                 "run_state": "COMPLETE", "properties": {
                     "state": "COMPLETE", PARAMETERS_KEY: {"n": i, "b": "x", "a": [i]}, "ir": {"nodes": []},
                     **({"runner": "kubeflow", "attempts": 1 + i % 3} if i % 2 else {})}}
                for i in range(2050)])
        with MetadataStore(store_url) as store:  # opening upgrades it, filling the summaries from the properties
            with engine.connect() as conn:
                assert current_revision(conn) == HEAD_REVISION
                stored = conn.execute(sa.select(contexts.c.name, contexts.c.type_name, contexts.c.properties,
                                                contexts.c.run_summary, contexts.c.run_summary.is_(None))).all()
                # the run list's fields as run_page read them before this revision (from the properties)
                props = contexts.c.properties
                before = {name: (parameters, runner, attempts) for name, parameters, runner, attempts in conn.execute(
                    sa.select(contexts.c.name, props[PARAMETERS_KEY], props["runner"].as_string(),
                              props["attempts"].as_string()).where(contexts.c.type_name == PIPELINE_RUN))}
            assert len(stored) == 2050 + 3
            for name, type_name, properties, summary, is_null in stored:
                if type_name != PIPELINE_RUN:
                    assert (summary, is_null) == (None, True)
                    continue
                assert summary == {k: properties.get(k) for k in ("parameters", "runner", "attempts")}, name
                assert list(summary) == ["parameters", "runner", "attempts"]
            assert list(next(s for n, *_, s, _ in stored if n == "p-1")["parameters"]) == list(params)

            rows, total, exact = _queries.run_page(store, pipeline=None, state=None, search=None, limit=3000,
                                                   offset=0)
            assert (total, exact) == (2052, True)
            for row in rows:
                parameters, runner, attempts = before[row["name"]]
                assert row["parameters"] == parameters and list(row["parameters"] or {}) == list(parameters or {})
                assert row["runner"] == runner
                assert (None if row["attempts"] is None else str(row["attempts"])) == (  # text on PostgreSQL
                    None if attempts is None else str(attempts))
            [p1] = [r for r in rows if r["name"] == "p-1"]
            assert (p1["parameters"], p1["runner"], p1["attempts"]) == (params, "beam", 2)

            bodies = [UIApp(store).handle("GET", t, {}) for t in targets]
            assert all(b.status == 200 for b in bodies)
            listed = [(r.run_id, r.state, r.start_time, r.end_time, r.parameters, r.runner, r.attempts)
                      for r in list_runs(store, "p")]
            assert [(r.run_id, r.state, r.start_time, r.end_time, r.parameters, r.runner, r.attempts)
                    for r in list_run_summaries(store, "p")] == listed
        # the API's bytes (keys and their order included) are those of a store created at head
        with MetadataStore(store_url) as store:
            store.put_contexts([store.get_context_by_name(PIPELINE_RUN, "p-1")])  # rewritten as head writes it
            assert [UIApp(store).handle("GET", t, {}).body for t in targets] == [b.body for b in bodies]
    finally:
        engine.dispose()


def test_a_store_at_0005_gets_the_run_names_in_its_runs_newest_first_index(store_url):
    from alembic import command

    from jfx.metadata import PIPELINE_RUN
    from jfx.metadata._runs import RunRecord, create_run
    from jfx.metadata.ui import _queries

    def index_columns(engine: sa.Engine) -> list[str]:
        [index] = [i for i in sa.inspect(engine).get_indexes("jfx_contexts")
                   if i["name"] == "ix_jfx_contexts_type_name_deleted"]
        return list(index["column_names"])

    with MetadataStore(store_url) as store:
        for i in range(12):
            create_run(store, "p", RunRecord(f"p-{i:02d}", runner="local"))
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        assert index_columns(engine) == ["type_name", "run_deleted_time", "create_time", "id"]
        with MetadataStore(store_url) as store:  # opening upgrades it
            assert index_columns(engine) == ["type_name", "run_deleted_time", "create_time", "id", "name"]
            rows, total, exact = _queries.run_page(store, pipeline=None, state=None, search="p-1", limit=50, offset=0)
            assert [r["name"] for r in rows] == ["p-11", "p-10"] and (total, exact) == (2, True)
            assert store.get_context_by_name(PIPELINE_RUN, "p-00") is not None
    finally:
        engine.dispose()
