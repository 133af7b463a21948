"""Faults on a large input: a bad row near the end of a big CSV, and Ctrl-C in the middle of
ExampleGen, through real runs. Each leaves nothing half-written where a reader could see it,
and a store that says what happened.

The input is the synthetic taxi table at 200,000 rows (generated here), written in small row
groups (and, for Ctrl-C, read in small blocks), so that ExampleGen has written many row
groups of its shards when the fault comes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.csv as pcsv
import pytest
from jfx_proc import SIGINT_AS_CTRL_C, child_env

from jfx import Pipeline
from jfx.components import ExampleGen
from jfx.examples.taxi.generate import generate
from jfx.metadata import ArtifactState, ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner

ROWS = 200_000
SMALL_PIECES = {"JFX_READ_BLOCK_BYTES": str(64 << 10), "JFX_ROW_GROUP_ROWS": "4096"}


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> Path:
    """A folder holding ``taxi.csv``: ROWS rows of the taxi table (about 29 MB)."""
    folder = tmp_path_factory.mktemp("big") / "data"
    folder.mkdir()
    pcsv.write_csv(generate(ROWS, seed=5), folder / "taxi.csv")
    return folder


def _store_is_consistent(url: str, node_dir: Path) -> None:
    """No Examples artifact recorded LIVE, no output folder, no staging folder left."""
    with MetadataStore(url) as store:
        assert not [a for a in store.get_artifacts() if a.state == ArtifactState.LIVE]
    assert not (node_dir / "examples").exists()
    assert not list(node_dir.glob(".staging-*"))


def test_a_bad_row_near_the_end_of_a_large_csv_fails_naming_its_line_and_publishes_nothing(
        big_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("JFX_ROW_GROUP_ROWS", "4096")  # row groups written before the bad row is met
    data = tmp_path / "data"
    data.mkdir()
    lines = (big_csv / "taxi.csv").read_bytes().splitlines(keepends=True)
    # a row of two fields, ten rows before the end: record ROWS - 8 after the header
    (data / "taxi.csv").write_bytes(b"".join([*lines[:-10], b"1,2\n", *lines[-10:]]))
    bad_line = len(lines) - 10 + 1
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    root = tmp_path / "root"
    result = LocalDagRunner(progress=False).run(
        Pipeline("big", components=[ExampleGen(input_base=str(data))], pipeline_root=str(root), metadata_url=url))
    outcome = result.nodes["ExampleGen"]
    assert result.state == "FAILED" and outcome.state == "failed"
    assert f"taxi.csv: line {bad_line}: expected 18 fields, got 2" in outcome.error
    with MetadataStore(url) as store:
        [execution] = store.get_executions()
        assert execution.state == ExecutionState.FAILED
    _store_is_consistent(url, root / "big" / "ExampleGen")


_PIPELINE = """
from jfx import Pipeline
from jfx.components import ExampleGen

pipeline = Pipeline("big", components=[ExampleGen(input_base={data!r})], pipeline_root={root!r},
                    metadata_url={url!r})
"""

# `jfx run`, as the console script runs it, with SIGINT taken as Ctrl-C whatever the parent does.
_JFX = SIGINT_AS_CTRL_C + "import runpy, sys\nsys.argv[0] = 'jfx'\nrunpy.run_module('jfx', run_name='__main__')\n"


def _jfx(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _JFX, *args], cwd=cwd, env=child_env(**SMALL_PIECES),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_ctrl_c_in_the_middle_of_example_gen_stops_it_cleans_up_and_a_rerun_succeeds(big_csv, tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    root = tmp_path / "root"
    pipeline = tmp_path / "pipeline.py"
    pipeline.write_text(_PIPELINE.format(data=str(big_csv), root=str(root), url=url))
    node_dir = root / "big" / "ExampleGen"
    proc = _jfx("run", str(pipeline), "--progress", "log", cwd=tmp_path)
    try:
        deadline = time.time() + 120
        # inside ExampleGen, with row groups of its shards already written to its staging folder
        while not list(node_dir.glob(".staging-*/**/part-*.parquet")):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.time() < deadline, "ExampleGen never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        sent = time.time()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.time() - sent < 30, "Ctrl-C took more than 30 s to stop ExampleGen"
    assert proc.returncode != 0, out
    assert "jfx run --resume" in out and "Traceback" not in out
    with MetadataStore(url) as store:
        [execution] = store.get_executions()
        assert execution.state == ExecutionState.CANCELLED
        [run] = store.get_runs()
        assert run.properties["state"] == "CANCELLED"
    _store_is_consistent(url, node_dir)

    rerun = _jfx("run", str(pipeline), cwd=tmp_path)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    with MetadataStore(url) as store:
        [examples] = [a for a in store.get_artifacts() if a.state == ArtifactState.LIVE]
    assert sum(examples.properties["row_counts"].values()) == ROWS
    assert examples.properties["splits"] == ["train", "eval"]
    assert not list(node_dir.glob(".staging-*"))


def test_a_beam_worker_that_died_is_named_as_such():
    """What Beam raises when a worker process is killed mid-part (the DirectRunner's data
    plane, dask.distributed's KilledWorker) reaches the user as a worker that exited, with
    the runner's own line; other errors pass unchanged. (Killing a real worker, by hand:
    the run failed 2 s later with this message and published nothing.)"""
    from jfx.components._beam import worker_errors
    from jfx.errors import ComponentError

    class KilledWorker(Exception):  # noqa: N818 - dask.distributed's name
        pass

    def beam_wrapped(inner: BaseException) -> None:
        try:
            raise inner
        except BaseException as err:
            raise RuntimeError("Pipeline failed in stage ReadAndConvert") from err

    for inner, said in ((RuntimeError("Channel closed prematurely."), "RuntimeError: Channel closed prematurely."),
                        (KilledWorker("Attempted to run task ('convert', 3) on 3 different workers"),
                         "KilledWorker: Attempted to run task")):
        lost = "a Beam worker process exited before its work was done"
        with pytest.raises(ComponentError, match=lost) as info, worker_errors():
            beam_wrapped(inner)
        assert said in str(info.value)
    with pytest.raises(RuntimeError, match="stage ReadAndConvert"), worker_errors():
        beam_wrapped(ValueError("a bug"))
