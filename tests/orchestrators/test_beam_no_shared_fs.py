"""The penguin pipeline on Beam with workers that share no filesystem with the driver.

Two ``dask worker`` processes each run in a mount namespace of their own (``unshare
--mount``) with a fresh tmpfs over every folder the driver writes (``/tmp``, the test's
folder, ``JFX_HOME`` and its local cache and work folders, ``TMPDIR``): a file the driver
or the other worker writes there does not exist for them. The pipeline root is on the
test S3 server and the metadata store on PostgreSQL, both reached over 127.0.0.1. The
DAG runs with ``jfx run --runner beam`` on the DaskRunner (each node's launcher on a
worker, and the data components' own Beam work on the workers too), and its Examples,
statistics, schema and Transform outputs have the same fingerprints as an in-process
run on a local root (with its data components on Beam's DirectRunner: the engine is one
of the recorded properties, so it is part of the fingerprint).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from jfx_dbs import fresh_database
from jfx_proc import child_env
from jfx_requires import importorskip, unavailable

import jfx
from jfx.metadata import ExecutionState, MetadataStore

PENGUIN = Path(jfx.__file__).parent / "examples" / "penguin" / "pipeline.py"
DASK_RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"
DATA_NODES = ("ExampleGen", "StatisticsGen", "SchemaGen", "NewExampleGen", "NewStatisticsGen", "Transform")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private_dirs(*paths: Path) -> list[str]:
    """The folders to hide, outermost first, none inside another (a tmpfs hides what is below it)."""
    chosen: list[Path] = []
    for p in sorted({Path(os.path.realpath(x)) for x in paths}, key=lambda x: len(x.parts)):
        if not any(c == p or c in p.parents for c in chosen):
            chosen.append(p)
    return [str(p) for p in chosen]


def _check_unshare(scratch: Path) -> None:
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux) is not installed")
    probe = scratch / "probe"
    probe.mkdir()
    (probe / "seen").write_text("x")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f"mount -t tmpfs tmpfs {probe} && test ! -e {probe}/seen"],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        unavailable(f"unshare --mount with a tmpfs does not work here (needs root): {proc.stderr.strip()}")


@pytest.fixture
def pg_url(tmp_path):
    yield from fresh_database("postgresql", tmp_path)


@pytest.fixture
def private_cluster(tmp_path, s3_root):
    """A Dask scheduler and two workers, each worker with a private tmpfs over the driver's folders."""
    distributed = importorskip("distributed", hint="pip install 'dask[distributed]'")
    _check_unshare(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    # every folder the driver writes: the suite's own temporary root (HOME, TMPDIR and each
    # test's folder are inside it), this test's folder and JFX_HOME; not all of /tmp, where a
    # checkout (and the virtualenv the workers run from) may live
    session = Path(os.environ.get("JFX_TEST_SESSION_ROOT") or tempfile.gettempdir())
    hidden = _private_dirs(session, Path(tempfile.gettempdir()), tmp_path, home)
    for needed in (Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()):
        assert not any(needed == Path(d) or Path(d) in needed.parents for d in hidden), \
            f"{needed} is inside a folder hidden from the workers ({hidden})"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = child_env(JFX_HOME=str(home))
    env.pop("JFX_METADATA_URL", None)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    mounts = " && ".join(f"mount -t tmpfs tmpfs '{d}'" for d in hidden)
    for i in range(2):
        script = f'{mounts} && cd / && exec "$0" -m distributed.cli.dask_worker "$1" --nthreads 2 --no-nanny ' \
                 f'--no-dashboard --host 127.0.0.1 --name private-{i}'
        procs.append(subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                       sys.executable, address], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    client = None
    try:
        deadline = time.monotonic() + 60
        while client is None:
            try:
                client = distributed.Client(address, timeout=5)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        client.wait_for_workers(2, timeout=60)
        # the workers really see none of the driver's files
        marker = tmp_path / "driver-wrote-this"
        marker.write_text("driver")
        assert set(client.run(os.path.exists, str(marker)).values()) == {False}
        client.close()
        yield address, home, env
    finally:
        if client is not None:
            client.close()
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _fingerprints(url: str) -> dict[tuple[str, str], str]:
    with MetadataStore(url) as store:
        found = {}
        for e in store.get_executions():
            if e.node_id in DATA_NODES and e.state == ExecutionState.COMPLETE:
                _, outputs = store.get_execution_artifacts(e.id)
                for key, arts in outputs.items():
                    found[(e.node_id, key)] = arts[0].fingerprint
                    found[(e.node_id, key, "uri")] = arts[0].uri
                    found[(e.node_id, key, "engine")] = arts[0].properties.get("engine")
        return found


def test_penguin_on_dask_workers_without_a_shared_filesystem_matches_a_local_run(
        tmp_path, s3_root, pg_url, private_cluster):
    address, _, env = private_cluster
    proc = subprocess.run(
        [sys.executable, "-m", "jfx", "run", str(PENGUIN), "--runner", "beam", f"--beam-arg={DASK_RUNNER}",
         f"--beam-arg=--dask_client_address={address}", "--pipeline-root", s3_root, "--metadata-url", pg_url,
         "--to", "Transform"],
        env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    on_dask = _fingerprints(pg_url)

    from jfx.orchestrators import LocalDagRunner

    local_url = f"sqlite:///{tmp_path / 'local.sqlite'}"
    spec = importlib.util.spec_from_file_location("penguin_no_shared_fs", PENGUIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the data components on Beam here too (the engine is one of the artifacts' properties)
    pipeline = module.create_pipeline(pipeline_root=str(tmp_path / "local-root"), metadata_url=local_url,
                                      beam_pipeline_args=["--runner=DirectRunner"])
    result = LocalDagRunner(progress=False).run(pipeline, to_nodes=["Transform"])
    assert result.state == "COMPLETE"
    local = _fingerprints(local_url)

    outputs = sorted(k for k in local if len(k) == 2)
    assert len(outputs) >= 7 and {n for n, _ in outputs} == set(DATA_NODES)
    assert {k: on_dask.get(k) for k in outputs} == {k: local[k] for k in outputs}
    for k in outputs:
        assert on_dask[(*k, "uri")].startswith(s3_root + "/penguin/")
    assert on_dask[("StatisticsGen", "statistics", "engine")] == "beam"
