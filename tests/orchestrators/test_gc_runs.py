"""``jfx gc`` on real runs: the cache after a deletion, object storage, the command line, and a gc killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jfx_testlib as lib
from jfx_proc import child_env

from jfx import _storage as storage
from jfx.metadata import ArtifactState, MetadataStore, RetentionPolicy, collect_garbage
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._runs import get_run, list_runs
from jfx.orchestrators import LocalDagRunner, NodeState

RUNNER = LocalDagRunner(progress=False)


def _jfx(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "jfx", *args], env=env or child_env(), capture_output=True,
                          text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"jfx {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _marker(tmp_path: Path) -> str:
    """The file whose presence lets the chain's last node succeed."""
    (tmp_path / "marker").write_text("ok")
    return str(tmp_path / "marker")


def _logs(store: MetadataStore, run) -> list[str]:
    """The captured logs of the nodes ``run`` executed (cache hits run nothing and log nothing)."""
    found = []
    for outcome in run.nodes.values():
        if outcome.execution_id is not None:
            uri = ExecutionInfo.from_record(store.get_execution(outcome.execution_id)).log_uri
            if uri and outcome.state == NodeState.COMPLETE:
                found.append(uri)
    return sorted(found)


def _live_without_files(store: MetadataStore) -> list[int]:
    return [a.stored_id for a in store.get_artifacts() if a.state == ArtifactState.LIVE and not storage.isdir(a.uri)]


def test_gc_removes_a_runs_own_outputs_keeps_what_a_later_run_reused_and_the_cache_recomputes(any_root, tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    marker = _marker(tmp_path)
    first = RUNNER.run(lib.chain(any_root, url, marker))
    second = RUNNER.run(lib.chain(any_root, url, marker), parameters={"rows": 4})
    # maybe_extra does not depend on rows: the second run reused the first run's output from the cache
    assert second.nodes["maybe_extra"].state == NodeState.CACHED
    [reused] = first.nodes["maybe_extra"].outputs["out"]
    [numbers] = first.nodes["make_numbers"].outputs["numbers"]
    own = [first.nodes[n].outputs[k][0] for n, k in (("make_numbers", "numbers"), ("total", "result"),
                                                      ("fail_unless", "checked"))]
    with MetadataStore(url) as store:
        first_logs, second_logs = _logs(store, first), _logs(store, second)
        assert first_logs and second_logs and all(storage.exists(u) for u in first_logs + second_logs)
        dry = collect_garbage(store, RetentionPolicy(run_ids=(first.run_id,)), dry_run=True)
        assert {a.id for a in dry.artifacts} == {a.id for a in own}
        assert sorted(dry.logs) == first_logs and all(storage.exists(u) for u in first_logs)
        assert dry.log_bytes == sum(storage.file_size(u) for u in first_logs)
        assert all(a.size_bytes and a.size_bytes > 0 for a in dry.artifacts), dry.artifacts  # listed on s3 too
        assert storage.isdir(numbers.uri)
        report = collect_garbage(store, RetentionPolicy(run_ids=(first.run_id,)))
        assert report.bytes_freed == dry.bytes_freed and report.errors == []
        # the deleted run's execution logs go with it; the kept run's stay
        assert sorted(report.logs) == first_logs and not any(storage.exists(u) for u in first_logs)
        assert all(storage.exists(u) for u in second_logs)
        assert [(k.id, k.why.split(" (")[0]) for k in report.kept] == [(reused.id, f"used by run {second.run_id}")]
        assert not storage.exists(numbers.uri) and storage.isdir(reused.uri)
        assert store.get_artifact(numbers.stored_id).state == ArtifactState.DELETED
        assert _live_without_files(store) == []
        assert [r.run_id for r in list_runs(store)] == [second.run_id]
    # a deleted artifact is never a cache hit: the node runs again and says why
    third = RUNNER.run(lib.chain(any_root, url, marker))
    made = third.nodes["make_numbers"]
    assert made.state == NodeState.COMPLETE and made.cached_from is None
    [fresh] = made.outputs["numbers"]
    assert fresh.id != numbers.id and storage.isdir(fresh.uri)
    assert third.nodes["maybe_extra"].state == NodeState.CACHED


def test_the_command_line_deletes_lists_and_shows_deleted_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    marker = _marker(tmp_path)
    root = str(tmp_path / "artifacts")
    runs = [RUNNER.run(lib.chain(root, url, marker), parameters={"rows": rows}) for rows in (3, 4, 5)]
    dry = _jfx("gc", "--keep-last", "2", "--dry-run", "--metadata-url", url)
    assert "dry run: nothing changed" in dry.stdout and f"would delete run {runs[0].run_id}" in dry.stdout
    assert "would be freed" in dry.stdout
    as_json = json.loads(_jfx("gc", "--keep-last", "2", "--dry-run", "--json", "--metadata-url", url).stdout)
    assert [r["run_id"] for r in as_json["runs"]] == [runs[0].run_id] and as_json["bytes_freed"] > 0
    done = _jfx("gc", "--keep-last", "2", "--metadata-url", url)
    assert f"deleted run {runs[0].run_id}" in done.stdout and "freed" in done.stdout
    listed = _jfx("runs", "list", "--metadata-url", url).stdout
    assert runs[0].run_id not in listed and runs[1].run_id in listed
    with_deleted = _jfx("runs", "list", "--deleted", "--metadata-url", url).stdout
    assert runs[0].run_id in with_deleted and "DELETED" in with_deleted
    shown = _jfx("runs", "show", runs[0].run_id, "--metadata-url", url).stdout
    assert "deleted by jfx gc on" in shown and "[deleted by gc on" in shown
    [numbers] = runs[0].nodes["make_numbers"].outputs["numbers"]
    assert "[deleted by gc on" in _jfx("lineage", str(numbers.id), "--metadata-url", url).stdout
    resume = _jfx("run", "--resume", runs[0].run_id, "--metadata-url", url, check=False)
    assert resume.returncode == 1 and "was deleted by jfx gc" in resume.stderr
    for args, message in ((("gc",), "select the runs to delete"),
                          (("gc", "--older-than", "3y"), "expected a positive whole number and a unit"),
                          (("gc", "--run", "nope"), "no run 'nope'")):
        bad = _jfx(*args, "--metadata-url", url, check=False)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_a_gc_killed_after_removing_files_leaves_no_live_artifact_without_files_and_a_rerun_finishes(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    marker = _marker(tmp_path)
    root = str(tmp_path / "artifacts")
    old = RUNNER.run(lib.chain(root, url, marker))
    RUNNER.run(lib.chain(root, url, marker, name="other"))
    proc = subprocess.Popen([sys.executable, "-m", "jfx", "gc", "--run", old.run_id, "--metadata-url", url],
                            env=child_env(JFX_GC_PAUSE_AFTER="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once the first artifact's files are gone, before it is marked DELETED
        assert "paused after removing the files of 1 artifact" in line, line + proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    with MetadataStore(url) as store:
        assert _live_without_files(store) == []
        run = get_run(store, old.run_id)
        assert run is not None and run.deleted
        states = {a.stored_id: a.state for a in store.get_artifacts()}
        deleting = [i for i, s in states.items() if s == ArtifactState.DELETING]
        assert len(deleting) >= 2, states  # the one whose files went, and those not reached yet
        assert any(storage.isdir(store.get_artifact(i).uri) for i in deleting)
        assert any(not storage.exists(store.get_artifact(i).uri) for i in deleting)
    started = time.time()
    again = _jfx("gc", "--run", old.run_id, "--metadata-url", url)
    assert "finished deleting" in again.stdout and time.time() - started < 60
    with MetadataStore(url) as store:
        assert store.get_artifacts(state=ArtifactState.DELETING) == []
        gone = store.get_artifacts(state=ArtifactState.DELETED)
        assert {a.stored_id for a in gone} == set(deleting)
        assert not any(storage.exists(a.uri) for a in gone) and _live_without_files(store) == []


def test_a_rerun_after_gc_recomputes_and_says_gc_deleted_the_outputs(tmp_path):
    url, root, marker = f"sqlite:///{tmp_path / 'md.sqlite'}", str(tmp_path / "artifacts"), _marker(tmp_path)
    first = RUNNER.run(lib.chain(root, url, marker))
    with MetadataStore(url) as store:
        collect_garbage(store, RetentionPolicy(run_ids=(first.run_id,)))
    again = RUNNER.run(lib.chain(root, url, marker))
    assert {o.state for o in again.nodes.values()} == {NodeState.COMPLETE}
    assert again.nodes["make_numbers"].cache_miss_reason.startswith("earlier outputs were deleted by gc on ")
    assert lib.read(again.nodes["total"].outputs["result"][0].uri) == {"total": 3}


def test_a_cache_hit_on_outputs_gc_deletes_while_the_node_looks_runs_the_node(tmp_path, monkeypatch):
    from jfx.orchestrators import _launcher

    url, root, marker = f"sqlite:///{tmp_path / 'md.sqlite'}", str(tmp_path / "artifacts"), _marker(tmp_path)
    first = RUNNER.run(lib.chain(root, url, marker))
    found = _launcher.find_cached

    def found_then_deleted(store, node, node_ctx_id, key):
        hit = found(store, node, node_ctx_id, key)  # LIVE records, files present
        if hit is not None and node.id == "make_numbers":
            collect_garbage(store, RetentionPolicy(run_ids=(first.run_id,)))
        return hit

    monkeypatch.setattr(_launcher, "find_cached", found_then_deleted)
    again = RUNNER.run(lib.chain(root, url, marker))
    made = again.nodes["make_numbers"]
    assert made.state == NodeState.COMPLETE and made.cached_from is None
    [numbers] = first.nodes["make_numbers"].outputs["numbers"]
    with MetadataStore(url) as store:
        assert store.get_artifact(numbers.stored_id).state == ArtifactState.DELETED  # not revived by the hit
        assert _live_without_files(store) == []
