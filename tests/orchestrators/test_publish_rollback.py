"""Publishing is all or nothing: when it fails part way, no output is visible and the store is consistent.

Outputs are renamed from staging to their final folders, then COMPLETE is recorded with
them in one transaction. A failure anywhere in between (a later rename, the metadata
commit, or inside its transaction) must leave what a failed component leaves: no final
folder, no staging folder, a FAILED execution with no output events, no artifact rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import jfx.metadata._store as store_module
import jfx_testlib as lib
import pytest
from jfx import Pipeline
from jfx.metadata import EventType, ExecutionState, MetadataStore
from jfx.metadata._schema import artifacts as artifacts_t
from jfx.orchestrators import LocalDagRunner, NodeState, RunState

RUNNER = LocalDagRunner(progress=False)


def _pipeline(tmp_path: Path) -> Pipeline:
    two = lib.two_outputs(value=7)
    marker = tmp_path / "marker"
    marker.write_text("ok")
    after = lib.fail_unless(result=two.outputs["first"], marker=str(marker))  # never runs: no input published
    return Pipeline("pub", components=[two, after], pipeline_root=str(tmp_path / "root"),
                    metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


def _assert_nothing_published(tmp_path: Path, result) -> None:
    outcome = result.nodes["two_outputs"]
    assert result.state == RunState.FAILED
    assert outcome.state == NodeState.FAILED and outcome.outputs == {}
    assert result.nodes["fail_unless"].state == NodeState.SKIPPED
    node_dir = tmp_path / "root" / "pub" / "two_outputs"
    # an output's folder is <node>/<output>/<execution id>; the empty <output> parent may stay
    leftovers = sorted(p.relative_to(node_dir).as_posix() for p in node_dir.glob("*/*"))
    leftovers += sorted(p.name for p in node_dir.glob(".staging-*"))
    assert leftovers == [], f"a failed publish left {leftovers}"
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        execution = store.get_execution(outcome.execution_id)
        assert execution.state == ExecutionState.FAILED, "the execution must not stay RUNNING or be COMPLETE"
        events = store.get_events_by_execution_ids([outcome.execution_id])
        assert EventType.OUTPUT not in {e.type for e in events}
        assert store.get_artifacts() == [], "no artifact row may name an unpublished folder"


def _rerun_publishes_both(tmp_path: Path) -> None:
    result = RUNNER.run(_pipeline(tmp_path))
    assert result.state == RunState.COMPLETE
    outs = result.nodes["two_outputs"].outputs
    assert lib.read(outs["first"][0].uri) == {"first": 7} and lib.read(outs["second"][0].uri) == {"second": 7}


def test_a_failed_rename_of_a_later_output_unpublishes_the_earlier_ones(tmp_path, monkeypatch):
    real_rename = os.rename
    published: list[str] = []

    def rename(src, dst, *args, **kwargs):
        if ".staging-" in str(src) and Path(src).name == "second":
            raise OSError(28, "No space left on device", str(dst))
        real_rename(src, dst, *args, **kwargs)
        if ".staging-" in str(src):
            published.append(str(dst))

    monkeypatch.setattr(os, "rename", rename)
    result = RUNNER.run(_pipeline(tmp_path))
    assert published, "the first output was renamed into place before the second failed"
    assert "No space left on device" in result.nodes["two_outputs"].error
    _assert_nothing_published(tmp_path, result)
    monkeypatch.undo()
    _rerun_publishes_both(tmp_path)


def test_a_failed_complete_record_unpublishes_every_output(tmp_path, monkeypatch):
    real_put = MetadataStore.put_execution

    def put_execution(self, execution, **kwargs):
        if execution.state == ExecutionState.COMPLETE and execution.node_id == "two_outputs":
            raise ConnectionError("the database went away")
        return real_put(self, execution, **kwargs)

    monkeypatch.setattr(MetadataStore, "put_execution", put_execution)
    result = RUNNER.run(_pipeline(tmp_path))
    assert "the database went away" in result.nodes["two_outputs"].error
    _assert_nothing_published(tmp_path, result)
    monkeypatch.undo()
    _rerun_publishes_both(tmp_path)


def test_a_complete_record_failing_inside_its_transaction_writes_nothing(tmp_path, monkeypatch):
    real_save = store_module.save

    def save(conn, table, records, rows, updates, **options):
        ids = real_save(conn, table, records, rows, updates, **options)
        if table is artifacts_t and records:  # the output rows are written; the events are not yet
            raise RuntimeError("the disk filled up mid-transaction")
        return ids

    monkeypatch.setattr(store_module, "save", save)
    result = RUNNER.run(_pipeline(tmp_path))
    assert "the disk filled up mid-transaction" in result.nodes["two_outputs"].error
    _assert_nothing_published(tmp_path, result)
    monkeypatch.undo()
    _rerun_publishes_both(tmp_path)



def test_on_an_object_store_a_failed_complete_record_or_upload_leaves_no_object(tmp_path, s3_root):
    """On a store publishing is an upload, and the metadata commit makes it visible: when either fails,
    no object of the node's outputs stays on the store and no artifact is recorded."""
    from jfx import _storage as storage

    def pipeline() -> Pipeline:
        two = lib.two_outputs(value=7)
        return Pipeline("pub", components=[two], pipeline_root=s3_root, metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")

    def objects_left() -> list[str]:
        fs, path = storage.filesystem(storage.join(s3_root, "pub", "two_outputs"))
        try:
            return sorted(fs.find(path))
        except FileNotFoundError:
            return []

    real_put = MetadataStore.put_execution

    def put_execution(self, execution, **kwargs):
        if execution.state == ExecutionState.COMPLETE and execution.node_id == "two_outputs":
            raise ConnectionError("the database went away")
        return real_put(self, execution, **kwargs)

    with pytest.MonkeyPatch.context() as mp:  # the fixture's own monkeypatch holds the store's settings
        mp.setattr(MetadataStore, "put_execution", put_execution)
        result = RUNNER.run(pipeline())
    assert "the database went away" in result.nodes["two_outputs"].error
    assert objects_left() == [], "the uploads were removed"

    import jfx._storage as storage_module

    real_upload = storage_module.upload_dir

    def upload_dir(local, uri, *args, **kwargs):
        if str(uri).rstrip("/").split("/")[-2] == "second":
            raise OSError(28, "the store refused the upload")
        return real_upload(local, uri, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(storage_module, "upload_dir", upload_dir)
        result = RUNNER.run(pipeline())
    assert "the store refused the upload" in result.nodes["two_outputs"].error
    assert objects_left() == [], "the first output's upload was removed"
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        assert store.get_artifacts() == []
    assert RUNNER.run(pipeline()).state == RunState.COMPLETE
    assert len(objects_left()) == 2
