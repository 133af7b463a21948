"""What a process killed with SIGKILL leaves behind, and how the next start recovers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jfx_testlib as lib

import jfx
from jfx.metadata import ExecutionState, MetadataStore

# The jfx under test (not resolved: it may be reached through a link named jfx), then the
# test components.
PYTHONPATH = os.pathsep.join([str(Path(jfx.__file__).parent.parent), str(Path(lib.__file__).parent)])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PYTHONPATH, "JFX_HOME": str(tmp_path / "home"), **extra}


def _wait_running(url: str, proc: subprocess.Popen, node_id: str, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if Path(url.removeprefix("sqlite:///")).exists():
            with MetadataStore(url) as store:
                if any(e.node_id == node_id for e in store.get_executions(state=ExecutionState.RUNNING)):
                    return
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else f"exited {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"node {node_id} never started running")


STANDARD_AFTER_GATE = '''
from jfx import Pipeline
from jfx.components import ExampleGen, SchemaGen, StatisticsGen
import jfx_testlib as lib

gate = lib.wait_while_exists(marker={marker!r})
# on a resume these run after the gate, two at once, each loading a standard component first
first = ExampleGen(input_base={data!r}).with_id("first").after(gate)
second = ExampleGen(input_base={data!r}).with_id("second").after(gate)
stats = StatisticsGen(examples=first.outputs["examples"])
schema = SchemaGen(statistics=stats.outputs["statistics"])
pipeline = Pipeline("resumable", components=[gate, first, second, stats, schema],
                    pipeline_root={root!r}, metadata_url={url!r})
'''


def test_resume_after_a_kill_loads_the_standard_components_on_parallel_nodes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(60)))
    url, marker = f"sqlite:///{tmp_path / 'md.sqlite'}", tmp_path / "hold"
    marker.write_text("")
    pipeline_file = tmp_path / "resumable.py"
    pipeline_file.write_text(STANDARD_AFTER_GATE.format(marker=str(marker), data=str(data),
                                                        root=str(tmp_path / "root"), url=url))
    jfx_cmd = [sys.executable, "-m", "jfx"]
    proc = subprocess.Popen([*jfx_cmd, "run", str(pipeline_file), "--progress", "log"], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_running(url, proc, "wait_while_exists")
    proc.kill()
    proc.wait()
    marker.unlink()
    with MetadataStore(url) as store:
        [run_ctx] = store.get_runs()
    resumed = subprocess.run([*jfx_cmd, "run", "--resume", run_ctx.name, "--metadata-url", url, "--progress", "log"],
                             env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert "not found" not in resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with MetadataStore(url) as store:
        done = {e.node_id for e in store.get_executions(state=ExecutionState.COMPLETE)}
    assert done == {"wait_while_exists", "first", "second", "StatisticsGen", "SchemaGen"}
