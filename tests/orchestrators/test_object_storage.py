"""Pipeline roots on object storage (an S3 API server on loopback) and on local disk alike.

What a user sees: the same run on either root, URIs recorded under the root, the same
fingerprints, the cache; components written for local paths run unchanged; a root jfx
cannot use is one line before any node runs; a store that dies mid-upload or a process
killed mid-publish leaves nothing recorded and nothing a reader follows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jfx_storage_lib as slib
import jfx_testlib as lib
import pytest
from jfx_proc import child_env
from jfx_s3 import CuttableProxy, S3Server

from jfx import Pipeline
from jfx import _storage as storage
from jfx.errors import InvalidArgumentError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.metadata._executions_info import ExecutionInfo
from jfx.orchestrators import LocalDagRunner
from jfx.orchestrators._publish import fingerprint

RUNNER = LocalDagRunner(progress=False)


def _pipeline(name: str, root: str, url: str, rows: int = 100, files: int = 1) -> Pipeline:
    table = slib.write_table(rows=rows, files=files)
    return Pipeline(name, components=[table, slib.sum_table(table=table.outputs["table"])],
                    pipeline_root=root, metadata_url=url)


def _stored_fingerprint(uri: str, type_name: str, properties: dict, tmp_path: Path) -> str:
    """The fingerprint of what is at ``uri`` now, read back from wherever it is."""
    local = tmp_path / f"check-{abs(hash(uri))}"
    storage.download_dir(uri, local)
    return fingerprint(local, type_name, properties)


def test_a_pipeline_runs_the_same_on_a_local_and_an_s3_root(any_root, tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    result = RUNNER.run(_pipeline("objects", any_root, url))
    assert result.state == "COMPLETE", result
    with MetadataStore(url) as store:
        artifacts = store.get_artifacts()
        execs = store.get_executions()
    assert len(artifacts) == 2
    for a in artifacts:
        assert a.uri.startswith(any_root.rstrip("/") + ("/" if storage.is_remote(any_root) else os.sep)), a.uri
        assert storage.isdir(a.uri)
        assert _stored_fingerprint(a.uri, a.type_name, a.properties, tmp_path) == a.fingerprint
    [summary] = [a for a in artifacts if a.type_name == "Metrics"]
    value = json.loads(storage.read_text(storage.join(summary.uri, "value.json")))
    assert value["sum"] == sum(range(100)) and value["note"] == "written with open()"
    assert value["input_is_local"], "a component that does not stream reads a local directory"
    [table] = [a for a in artifacts if a.type_name == "Dataset"]
    assert value["stored_uri"] == table.uri, "stored_uri is the recorded URI"
    for e in execs:
        log = ExecutionInfo.from_record(e).log_uri
        assert log is not None and storage.exists(log), "each execution's log is kept beside its outputs"
        assert storage.is_remote(log) == storage.is_remote(any_root)
    again = RUNNER.run(_pipeline("objects", any_root, url))
    assert {o.state for o in again.nodes.values()} == {"cached"}


def test_fingerprints_do_not_depend_on_the_root(s3_root, tmp_path):
    fps = {}
    for name, root in (("local", str(tmp_path / "root")), ("s3", s3_root)):
        url = f"sqlite:///{tmp_path / (name + '.sqlite')}"
        assert RUNNER.run(_pipeline("same", root, url, rows=50, files=3)).state == "COMPLETE"
        with MetadataStore(url) as store:
            # the summary names its input's URI, so only the data's fingerprint can agree
            fps[name] = [a.fingerprint for a in store.get_artifacts() if a.type_name == "Dataset"]
    assert len(fps["local"]) == 1 and fps["local"] == fps["s3"]


def test_remote_inputs_are_copied_once_into_a_bounded_local_cache(s3_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("JFX_CACHE_DIR", str(cache))
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    downloads: list[str] = []
    real = storage.download_dir

    def counting(uri, local):
        downloads.append(str(uri))
        return real(uri, local)

    monkeypatch.setattr(storage, "download_dir", counting)
    assert RUNNER.run(_pipeline("cached", s3_root, url)).state == "COMPLETE"
    assert len(downloads) == 1
    # the consumer runs again (cache off): its input comes from the local copy
    assert RUNNER.run(_pipeline("cached", s3_root, url), enable_cache=False).state == "COMPLETE"
    assert len(downloads) == 1, "the same content is not downloaded twice"
    entries = [p for p in (cache / "artifacts").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    # a cache bounded below one artifact keeps only the newest copy
    monkeypatch.setenv("JFX_CACHE_MAX_GB", "0.0000001")
    assert RUNNER.run(_pipeline("cached", s3_root, url, rows=7)).state == "COMPLETE"
    left = [p for p in (cache / "artifacts").iterdir() if not p.name.startswith(".")]
    assert len(downloads) == 2 and len(left) == 1 and left != entries


def _no_node_ran(url: str) -> None:
    path = Path(url.removeprefix("sqlite:///"))
    if path.exists():
        with MetadataStore(url) as store:
            assert store.get_executions() == []


def _cli(tmp_path: Path, root: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jfx", "run", str(Path(lib.__file__).parent / "jfx_storage_pipeline.py"),
         "--pipeline-root", root, "--metadata-url", f"sqlite:///{tmp_path / 'md.sqlite'}"],
        env=child_env(JFX_HOME=str(tmp_path / "home"), AWS_EC2_METADATA_DISABLED="true", **env),
        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["scheme", "bucket", "endpoint", "no-credentials"])
def test_a_root_jfx_cannot_use_is_one_line_before_any_node_runs(case, s3_root, s3_server, tmp_path):
    bucket = s3_root.split("/")[2]
    root, env, expected = {
        "scheme": ("s4://bucket/root", {}, "s4://bucket/root: unknown storage scheme 's4'"),
        "bucket": ("s3://no-such-bucket-jfx/root", {}, "the bucket 'no-such-bucket-jfx' does not exist"),
        "endpoint": (s3_root, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot reach http://127.0.0.1:9"),
        "no-credentials": (s3_root, {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "no credentials found"),
    }[case]
    if case == "no-credentials":
        env = {k: v for k, v in s3_server.env().items() if not k.startswith("AWS_ACCESS") and "SECRET" not in k}
        proc = subprocess.run(
            [sys.executable, "-m", "jfx", "run", str(Path(lib.__file__).parent / "jfx_storage_pipeline.py"),
             "--pipeline-root", root, "--metadata-url", f"sqlite:///{tmp_path / 'md.sqlite'}"],
            env={k: v for k, v in child_env(JFX_HOME=str(tmp_path / "home"), AWS_EC2_METADATA_DISABLED="true",
                                            **env).items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
            capture_output=True, text=True, timeout=120)
    else:
        proc = _cli(tmp_path, root, **env)
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    _no_node_ran(f"sqlite:///{tmp_path / 'md.sqlite'}")
    assert not list(tmp_path.glob("s4:*")) and not list(Path.cwd().glob("s4:*")), "never a local folder named after it"
    assert bucket


def test_refused_credentials_are_one_line(tmp_path, monkeypatch):
    server = S3Server(tmp_path / "auth", auth=True)
    try:
        proc = _cli(tmp_path, f"s3://{server.bucket()}/root", **{**server.env(), "AWS_ACCESS_KEY_ID": "AKIAWRONG"})
    finally:
        server.stop()
    assert proc.returncode != 0
    assert "the credentials were refused" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_unknown_scheme_in_the_pipeline_is_an_error_at_definition(tmp_path):
    with pytest.raises(InvalidArgumentError, match="unknown storage scheme 'hdfs'"):
        _pipeline("bad", "hdfs://nn/root", f"sqlite:///{tmp_path / 'md.sqlite'}")


def test_gcs_uris_take_the_same_path(monkeypatch):
    assert storage.scheme_of("gs://b/p") == storage.scheme_of("gcs://b/p") == "gs"
    assert storage.join("gs://b/root", "p", "n") == "gs://b/root/p/n"
    assert storage.parent("gs://b/root/p") == "gs://b/root"
    with pytest.raises(storage.StorageError) as err:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
        storage.check_root("gs://jfx-no-bucket/root")
    assert str(err.value).startswith("gs://jfx-no-bucket/root: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("back", ["before the failure is recorded", "only at the next start"])
def test_a_store_that_dies_mid_upload_fails_the_node_records_nothing_and_a_rerun_completes(
        back, s3_server, tmp_path, monkeypatch):
    proxy = CuttableProxy(s3_server.port)
    bucket = s3_server.bucket()
    for k, v in {**s3_server.env(), "AWS_ENDPOINT_URL": proxy.endpoint, "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(k, v)
    root, url = f"s3://{bucket}/root", f"sqlite:///{tmp_path / 'md.sqlite'}"
    import jfx.orchestrators._launcher as launcher

    real = launcher.publish

    def publish_while_the_store_dies(moves, stage, journal):
        if any("/write_table/" in dst for _, dst in moves):
            proxy.cut_after(200_000)  # partway through the table's files
        try:
            return real(moves, stage, journal)
        finally:
            if proxy.cut_count and back == "before the failure is recorded":
                proxy.restore()

    monkeypatch.setattr(launcher, "publish", publish_while_the_store_dies)
    first = RUNNER.run(_pipeline("dies", root, url, rows=20_000, files=8))
    assert proxy.cut_count == 1
    assert first.state == "FAILED" and first.nodes["write_table"].state == "failed", first
    with MetadataStore(url) as store:
        assert store.get_artifacts() == [], "nothing is recorded as published"
        [failed] = store.get_executions(node_id="write_table")
        assert failed.state == ExecutionState.FAILED
    monkeypatch.setattr(launcher, "publish", real)
    if back == "only at the next start":
        assert ExecutionInfo.from_record(failed).cleanup_pending, "the failure says what is left to remove"
        proxy.restore()
    else:
        assert not ExecutionInfo.from_record(failed).cleanup_pending
    second = RUNNER.run(_pipeline("dies", root, url, rows=20_000, files=8))
    assert second.state == "COMPLETE", second
    with MetadataStore(url) as store:
        recorded = {a.uri for a in store.get_artifacts()}
        for a in store.get_artifacts():
            assert _stored_fingerprint(a.uri, a.type_name, a.properties, tmp_path) == a.fingerprint
        assert not ExecutionInfo.from_record(store.get_execution(failed.id)).cleanup_pending
    fs, path = storage.filesystem(storage.join(root, "dies", "write_table", "table"))
    on_store = {f"s3://{p}" for p in fs.ls(path, detail=False)}
    assert on_store == {u for u in recorded if "/write_table/" in u}, "the failed upload left nothing behind"
    assert not storage.exists(storage.join(root, "dies", "write_table", f".staging-{failed.id}"))


KILLED_AFTER_UPLOAD = '''
import os, signal, sys
import jfx.orchestrators._launcher as launcher
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_storage_lib as slib

publish = launcher.publish

def publish_then_die(moves, *args, **kwargs):
    publish(moves, *args, **kwargs)
    if any("/sum_table/" in dst for _, dst in moves):
        os.kill(os.getpid(), signal.SIGKILL)

launcher.publish = publish_then_die
table = slib.write_table()
LocalDagRunner(progress=False).run(Pipeline("killed", components=[table, slib.sum_table(table=table.outputs["table"])],
                                            pipeline_root=sys.argv[1], metadata_url=sys.argv[2]))
'''


def test_uploads_of_a_process_killed_before_recording_them_are_reaped(s3_root, tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AFTER_UPLOAD)
    env = child_env(JFX_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, str(script), s3_root, url], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    with MetadataStore(url) as store:
        [dying] = store.get_executions(node_id="sum_table")
        assert dying.state == ExecutionState.RUNNING
        [table] = store.get_artifacts()
    leaked = storage.join(s3_root, "killed", "sum_table", "result", str(dying.id))
    assert storage.isdir(leaked), "uploaded, never recorded"
    assert RUNNER.run(Pipeline("other", components=[lib.make_numbers()], pipeline_root=s3_root,
                               metadata_url=url)).state == "COMPLETE"
    assert not storage.exists(leaked), "the next start's reaping removed it"
    assert not storage.exists(storage.join(s3_root, "killed", "sum_table", f".staging-{dying.id}"))
    assert storage.isdir(table.uri), "a recorded artifact is kept"
    with MetadataStore(url) as store:
        assert store.get_execution(dying.id).state == ExecutionState.ABANDONED


CONCURRENT = '''
import sys
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_storage_lib as slib
table = slib.write_table(rows=int(sys.argv[3]), files=3)
result = LocalDagRunner(progress=False).run(Pipeline("busy", components=[table, slib.sum_table(table=table.outputs["table"])],
                                            pipeline_root=sys.argv[1], metadata_url=sys.argv[2]))
sys.exit(0 if result.state == "COMPLETE" else 1)
'''


def test_five_concurrent_runs_on_one_bucket_and_store_lose_and_duplicate_nothing(s3_root, tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    script = tmp_path / "busy.py"
    script.write_text(CONCURRENT)
    env = child_env(JFX_HOME=str(tmp_path / "home"))
    procs = [subprocess.Popen([sys.executable, str(script), s3_root, url, str(rows)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rows in (10, 20, 30, 40, 10)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, outs
    with MetadataStore(url) as store:
        artifacts = store.get_artifacts()
        runs = store.get_runs("busy")
        complete = [e for e in store.get_executions() if e.state == ExecutionState.COMPLETE]
    assert len(runs) == 5
    uris = [a.uri for a in artifacts]
    assert len(uris) == len(set(uris)), "no artifact URI is recorded twice"
    assert len(artifacts) == len(complete) and len(artifacts) >= 8, \
        "one artifact per completed execution; 4 distinct inputs make at least 8"
    sums = {a.properties["sum"] for a in artifacts if a.type_name == "Metrics"}
    assert sums == {sum(range(n * 3)) for n in (10, 20, 30, 40)}
    for a in artifacts:
        assert _stored_fingerprint(a.uri, a.type_name, a.properties, tmp_path) == a.fingerprint
    fs, path = storage.filesystem(storage.join(s3_root, "busy", "write_table", "table"))
    on_store = {p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}
    recorded = {a.uri.rsplit("/", 1)[-1] for a in artifacts if a.type_name == "Dataset"}
    assert on_store == recorded, "every prefix on the store is a recorded artifact"


SCRATCH = '''
import sys
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_storage_lib as slib
LocalDagRunner(progress=False).run(Pipeline("scratchy", components=[
    slib.scratch_on_store_then_wait(scratch=sys.argv[3], marker=sys.argv[4])],
    pipeline_root=sys.argv[1], metadata_url=sys.argv[2]))
'''


def test_a_scratch_prefix_on_the_store_registered_by_a_killed_component_is_reaped(s3_root, tmp_path, monkeypatch):
    import time

    # the reaping runs on the same machine with the same JFX_HOME (its journal is in the local work folder)
    monkeypatch.setenv("JFX_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    scratch = storage.join(s3_root, "scratch", "tmp-1234abcd")
    marker = tmp_path / "hold"
    marker.write_text("")
    script = tmp_path / "scratch.py"
    script.write_text(SCRATCH)
    proc = subprocess.Popen([sys.executable, str(script), s3_root, url, scratch, str(marker)],
                            env=child_env(JFX_HOME=str(tmp_path / "home")))
    try:
        deadline = time.monotonic() + 90
        while not Path(str(marker) + ".started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the component never started"
            time.sleep(0.05)
        assert storage.exists(storage.join(scratch, "part-0"))
    finally:
        proc.kill()
        proc.wait()
    assert RUNNER.run(Pipeline("other", components=[lib.make_numbers()], pipeline_root=s3_root,
                               metadata_url=url)).state == "COMPLETE"
    assert not storage.exists(scratch), "the next start's reaping removed the registered prefix"


def test_the_outcome_folder_of_a_dead_beam_driver_on_the_store_is_reaped_with_its_run(s3_root, tmp_path):
    import socket

    from jfx.orchestrators._run import join_run, reap_abandoned

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    ir = _pipeline("beamy", s3_root, url).compile()
    with MetadataStore(url) as store:
        run = join_run(store, ir, "beamy-run-1", runner="beam", owner={"host": socket.gethostname(), "pid": pid})
        mine = storage.join(s3_root, "beamy", ".beam", f"jfx-dag-{run.run_id}-0123abcd", "outcome.pkl")
        other = storage.join(s3_root, "beamy", ".beam", "jfx-dag-beamy-run-2-4567ef01", "outcome.pkl")
        for uri in (mine, other):
            storage.write_bytes(uri, b"x")
        reap_abandoned(store)
    assert not storage.exists(mine), "the dead run's outcome folder is removed"
    assert storage.exists(other), "another run's is kept"
