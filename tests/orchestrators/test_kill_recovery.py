"""What a process killed with SIGKILL leaves behind, and how the next start recovers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jfx_testlib as lib
from jfx_proc import child_env

from jfx import Pipeline
from jfx.metadata import ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner

RUNNER = LocalDagRunner(progress=False)

def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return child_env(JFX_HOME=str(tmp_path / "home"), **extra)


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


# Makes the process SIGKILL itself right after the rename into place of node total's output,
# before the execution that made it is recorded COMPLETE.
KILLED_WHILE_PUBLISHING = '''
import os, signal, sys
import jfx.orchestrators._launcher as launcher
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_testlib as lib

publish = launcher.publish

def publish_then_die(moves, *args, **kwargs):
    publish(moves, *args, **kwargs)
    if any(dst.rstrip("/").split("/")[-3] == "total" for _, dst in moves):
        os.kill(os.getpid(), signal.SIGKILL)

launcher.publish = publish_then_die
nums = lib.make_numbers()
pipeline = Pipeline("killed", components=[nums, lib.total(numbers=nums.outputs["numbers"])],
                    pipeline_root=sys.argv[1], metadata_url=sys.argv[2])
LocalDagRunner(progress=False).run(pipeline)
'''

LIVE = '''
import sys
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_testlib as lib
pipeline = Pipeline("live", components=[lib.wait_while_exists(marker=sys.argv[3])], pipeline_root=sys.argv[1],
                    metadata_url=sys.argv[2])
LocalDagRunner(progress=False).run(pipeline)
'''


def _script(tmp_path: Path, name: str, text: str, *args: str) -> subprocess.Popen:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return subprocess.Popen([sys.executable, str(path), *args], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_an_output_published_by_a_process_killed_before_recording_it_is_removed_on_the_next_start(tmp_path):
    root, url, hold = tmp_path / "root", f"sqlite:///{tmp_path / 'md.sqlite'}", tmp_path / "hold"
    hold.write_text("")
    # a run of another process, alive the whole time: nothing of it may be touched
    live = _script(tmp_path, "live", LIVE, str(root), url, str(hold))
    try:
        _wait_running(url, live, "wait_while_exists")
        killed = _script(tmp_path, "killed", KILLED_WHILE_PUBLISHING, str(root), url)
        out, _ = killed.communicate(timeout=120)
        assert killed.returncode == -9, out
        with MetadataStore(url) as store:
            [made] = store.get_executions(node_id="make_numbers")
            [dying] = store.get_executions(node_id="total")
            assert made.state == ExecutionState.COMPLETE and dying.state == ExecutionState.RUNNING
            [numbers] = store.get_node_outputs(store.get_runs("killed")[0].id, "make_numbers")["numbers"]
        leaked = root / "killed" / "total" / "result" / str(dying.id)
        assert (leaked / "value.json").is_file(), "published, never recorded"
        [live_stage] = (root / "live" / "wait_while_exists").glob(".staging-*")

        RUNNER.run(Pipeline("other", components=[lib.make_numbers()], pipeline_root=str(root), metadata_url=url))

        assert not leaked.exists()
        assert not list((root / "killed" / "total").glob(".staging-*"))
        assert lib.read(numbers.uri, "numbers.json") == [0, 1, 2], "a recorded artifact is kept"
        assert live_stage.is_dir(), "a live execution's staging folder is kept"
        with MetadataStore(url) as store:
            assert store.get_execution(dying.id).state == ExecutionState.ABANDONED
            [running] = store.get_executions(state=ExecutionState.RUNNING)
            assert running.node_id == "wait_while_exists", "the live execution is still running"
    finally:
        live.kill()
        live.wait()


# Makes the process SIGKILL itself once the Pusher has copied the model into its temporary
# folder, before the rename to a version.
KILLED_WHILE_PUSHING = '''
import os, signal, sys
import jfx.components._pusher as pusher
from jfx import Pipeline
from jfx.components import Pusher
from jfx.orchestrators import LocalDagRunner
import jfx_testlib as lib

pusher._fsync_tree = lambda folder: os.kill(os.getpid(), signal.SIGKILL)
model = lib.exported_model()
push = Pusher(model=model.outputs["model"],
              push_destination={"filesystem": {"base_directory": sys.argv[3], "model_name": "m"}})
LocalDagRunner(progress=False).run(Pipeline("pushing", components=[model, push], pipeline_root=sys.argv[1],
                                            metadata_url=sys.argv[2]))
'''


def test_a_pusher_killed_mid_copy_leaves_no_temporary_folder_after_the_next_start(tmp_path):
    root, url, serving = tmp_path / "root", f"sqlite:///{tmp_path / 'md.sqlite'}", tmp_path / "serving"
    earlier = serving / "m" / "1"
    earlier.mkdir(parents=True)
    (earlier / "signature.json").write_text('{"earlier": true}')  # a version pushed before
    killed = _script(tmp_path, "pushing", KILLED_WHILE_PUSHING, str(root), url, str(serving))
    out, _ = killed.communicate(timeout=120)
    assert killed.returncode == -9, out
    assert len(list((serving / "m").glob(".tmp-push-*"))) == 1, "the copy the kill interrupted"

    RUNNER.run(Pipeline("other", components=[lib.make_numbers()], pipeline_root=str(root), metadata_url=url))

    assert sorted(p.name for p in (serving / "m").iterdir()) == ["1"]
    assert (earlier / "signature.json").read_text() == '{"earlier": true}'
    with MetadataStore(url) as store:
        [push] = store.get_executions(node_id="Pusher")
        assert push.state == ExecutionState.ABANDONED
