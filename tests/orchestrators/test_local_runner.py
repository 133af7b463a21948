"""The launcher and LocalDagRunner: recording, caching, failure, resume, parallelism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import _thread
import time
from pathlib import Path

import jfx_testlib as lib
from jfx_proc import SIGINT_AS_CTRL_C, child_env
import pytest

from jfx import Output, Parameter, Pipeline, check_cancelled, component
from jfx.errors import RunInterruptedError
from jfx.metadata import PIPELINE_RUN, ArtifactState, EventType, ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner, NodeState, RunState
from jfx.pipelines import load_pipeline
from jfx.types import Dataset

RUNNER = LocalDagRunner(progress=False)


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "artifacts"
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    marker = tmp_path / "marker"
    marker.write_text("ok")
    return root, url, marker


def states(result):
    return {k: o.state for k, o in result.nodes.items()}


def test_a_run_records_executions_artifacts_and_lineage(env):
    root, url, marker = env
    result = RUNNER.run(lib.chain(str(root), url, str(marker)))
    assert result.state == RunState.COMPLETE
    assert states(result) == {"make_numbers": "complete", "total": "complete", "fail_unless": "complete",
                              "maybe_extra": "complete"}
    total = result.nodes["total"]
    [art] = total.outputs["result"]
    # outputs are published under <root>/<pipeline>/<node>/<output>/<execution id>/
    assert Path(art.uri) == root / "chain" / "total" / "result" / str(total.execution_id)
    assert lib.read(art.uri) == {"total": 3} and art.properties == {"total": 3}
    assert not list((root / "chain" / "total").glob(".staging-*"))
    assert lib.read(result.nodes["maybe_extra"].outputs["out"][0].uri) == {"had_extra": False}
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, result.run_id)
        assert run_ctx.properties["state"] == "COMPLETE" and run_ctx.properties["parameters"] == {"rows": 3, "note": ""}
        executions = store.get_executions_by_context(run_ctx.id)
        assert sorted(e.node_id for e in executions) == sorted(result.nodes)
        assert {e.state for e in executions} == {ExecutionState.COMPLETE}
        stored = store.get_artifact(art.id)
        assert stored.state == ArtifactState.LIVE and stored.fingerprint == art.fingerprint != ""
        checked = result.nodes["fail_unless"].outputs["checked"][0]
        graph = store.lineage(checked.id, "upstream")
        assert {e.node_id for e in graph.executions} == {"make_numbers", "total", "fail_unless"}
        assert {a.name for a in graph.artifacts} == {"make_numbers.numbers", "total.result", "fail_unless.checked"}


def test_unchanged_rerun_hits_the_cache(env):
    root, url, marker = env
    first = RUNNER.run(lib.chain(str(root), url, str(marker)))
    second = RUNNER.run(lib.chain(str(root), url, str(marker)))
    assert set(states(second).values()) == {NodeState.CACHED}
    for node_id, outcome in second.nodes.items():
        assert outcome.cached_from == first.nodes[node_id].execution_id
        assert [a.id for a in outcome.outputs[next(iter(outcome.outputs))]] == \
               [a.id for a in first.nodes[node_id].outputs[next(iter(outcome.outputs))]]
    with MetadataStore(url) as store:
        cached = store.get_execution(second.nodes["total"].execution_id)
        assert cached.state == ExecutionState.CACHED
        ins, outs = store.get_execution_artifacts(cached.id)
        assert ins["numbers"][0].id == first.nodes["make_numbers"].outputs["numbers"][0].id
        assert outs["result"][0].id == first.nodes["total"].outputs["result"][0].id


def test_a_changed_parameter_misses_and_so_does_what_it_feeds(env):
    root, url, marker = env
    RUNNER.run(lib.chain(str(root), url, str(marker)))
    result = RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"rows": "5"})
    assert states(result)["make_numbers"] == "complete"
    assert result.nodes["make_numbers"].cache_miss_reason == "new parameter value: rows 3 -> 5"
    assert result.nodes["total"].cache_miss_reason == "changed upstream artifact: numbers"
    assert lib.read(result.nodes["total"].outputs["result"][0].uri) == {"total": 10}
    assert states(result)["maybe_extra"] == "cached"


def test_an_upstream_rerun_with_identical_output_keeps_downstream_cached(env):
    root, url, marker = env
    RUNNER.run(lib.chain(str(root), url, str(marker)))
    # `note` changes the node's parameters but not the data it writes
    result = RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"note": "again"})
    assert states(result)["make_numbers"] == "complete"
    assert states(result)["total"] == "cached"


def test_changed_component_source_misses(tmp_path):
    source = textwrap.dedent('''
        from jfx import Input, Output, Parameter, Pipeline, component
        from jfx.types import Dataset, Metrics

        @component
        def produce(data: Output[Dataset]):
            data.write_json([1, 2, 3])

        @component
        def consume(data: Input[Dataset], out: Output[Metrics]):
            out.write_json(sum(data.read_json()))

        p = produce()
        pipeline = Pipeline("edit", components=[p, consume(data=p.outputs["data"])],
                            pipeline_root=ROOT, metadata_url=URL)
    ''').replace("ROOT", repr(str(tmp_path / "a"))).replace("URL", repr(f"sqlite:///{tmp_path / 'md.sqlite'}"))
    file = tmp_path / "edit_pipeline.py"
    file.write_text(source)
    RUNNER.run(load_pipeline(file))
    file.write_text(source.replace("out.write_json(sum(data.read_json()))", "out.write_json(max(data.read_json()))"))
    result = RUNNER.run(load_pipeline(file))
    assert states(result) == {"produce": "cached", "consume": "complete"}
    assert result.nodes["consume"].cache_miss_reason == "changed component source"
    assert lib.read(result.nodes["consume"].outputs["out"][0].uri) == 3


def test_no_cache_runs_everything(env):
    root, url, marker = env
    RUNNER.run(lib.chain(str(root), url, str(marker)))
    result = RUNNER.run(lib.chain(str(root), url, str(marker)), enable_cache=False)
    assert set(states(result).values()) == {"complete"}
    assert {o.cache_miss_reason for o in result.nodes.values()} == {"cache disabled"}


def test_a_failing_component_publishes_nothing_and_skips_downstream(env, tmp_path):
    root, url, _ = env
    missing = tmp_path / "missing-marker"
    result = RUNNER.run(lib.chain(str(root), url, str(missing)))
    assert result.state == RunState.FAILED
    assert states(result) == {"make_numbers": "complete", "total": "complete", "fail_unless": "failed",
                              "maybe_extra": "complete"}
    failed = result.nodes["fail_unless"]
    assert failed.error == f"RuntimeError: marker file {missing} is missing"
    assert "Traceback" in failed.traceback
    node_dir = root / "chain" / "fail_unless"
    assert not (node_dir / "checked").exists(), "a failed component must not publish its output"
    assert not list(node_dir.glob(".staging-*")), "the half-written staging directory is removed"
    with MetadataStore(url) as store:
        execution = store.get_execution(failed.execution_id)
        assert execution.state == ExecutionState.FAILED
        assert "marker file" in execution.error and "Traceback" in execution.error
        events = store.get_events_by_execution_ids([failed.execution_id])
        assert {e.type for e in events} == {EventType.INPUT}, "a failed execution has no outputs"


def test_downstream_of_a_failure_is_skipped_not_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    first = lib.bad_property()
    after = lib.make_numbers().after(first)
    result = RUNNER.run(Pipeline("skip", components=[first, after], pipeline_root=str(tmp_path), metadata_url=url))
    assert states(result) == {"bad_property": "failed", "make_numbers": "skipped"}
    assert "properties must be JSON-serialisable" in result.nodes["bad_property"].error
    assert result.nodes["make_numbers"].error == "upstream node bad_property failed"
    with MetadataStore(url) as store:
        assert store.get_executions(node_id="make_numbers") == []


def test_a_component_that_returns_a_value_fails_with_advice(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    result = RUNNER.run(Pipeline("ret", components=[lib.returns_value()], pipeline_root=str(tmp_path), metadata_url=url))
    assert "returned int; components return nothing" in result.nodes["returns_value"].error


def test_resume_reruns_only_what_did_not_complete(env, tmp_path):
    root, url, _ = env
    marker = tmp_path / "later"
    failed = RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"rows": 4})
    assert failed.state == RunState.FAILED
    marker.write_text("now it exists")
    resumed = RUNNER.run(lib.chain(str(root), url, str(marker)), resume_run_id=failed.run_id)
    assert resumed.run_id == failed.run_id and resumed.state == RunState.COMPLETE
    assert states(resumed)["fail_unless"] == "complete"
    assert resumed.nodes["total"].execution_id is None, "completed nodes are not run again"
    assert lib.read(resumed.nodes["fail_unless"].outputs["checked"][0].uri) == {"total": 6}
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, failed.run_id)
        assert run_ctx.properties["state"] == "COMPLETE" and run_ctx.properties["attempts"] == 2
        by_node = {}
        for e in store.get_executions_by_context(run_ctx.id):
            by_node.setdefault(e.node_id, []).append(e.state)
        assert by_node["total"] == [ExecutionState.COMPLETE]
        assert by_node["fail_unless"] == [ExecutionState.FAILED, ExecutionState.COMPLETE]


def test_independent_nodes_run_at_the_same_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    lib.BARRIER.reset()
    nodes = [lib.meet_at_barrier(tag=str(i)).with_id(f"meet{i}") for i in range(3)]
    result = LocalDagRunner(max_workers=3, progress=False).run(
        Pipeline("fan", components=nodes, pipeline_root=str(tmp_path), metadata_url=url))
    # each node waits at a 3-party barrier: run one at a time, they would time out
    assert set(states(result).values()) == {"complete"}


def test_the_process_executor_gives_the_same_artifacts(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ok")
    fingerprints = {}
    for executor in ("thread", "process"):
        url = f"sqlite:///{tmp_path / executor / 'md.sqlite'}"
        result = LocalDagRunner(executor=executor, progress=False).run(
            lib.chain(str(tmp_path / executor / "root"), url, str(marker)))
        assert result.state == RunState.COMPLETE, states(result)
        fingerprints[executor] = {k: o.outputs[next(iter(o.outputs))][0].fingerprint for k, o in result.nodes.items()}
        if executor == "process":
            with MetadataStore(url) as store:
                pids = {e.properties["pid"] for e in store.get_executions()}
            assert os.getpid() not in pids, "nodes ran in worker processes"
    assert fingerprints["thread"] == fingerprints["process"]


KILLABLE = '''
import sys
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_testlib as lib
node = lib.sleep_then_write(seconds=60.0)
pipeline = Pipeline("sleepy", components=[node], pipeline_root=sys.argv[1], metadata_url=sys.argv[2])
LocalDagRunner(progress="log").run(pipeline)
'''


def _start_sleeper(tmp_path, url):
    script = tmp_path / "sleepy.py"
    script.write_text(SIGINT_AS_CTRL_C + KILLABLE)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "root"), url], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if Path(url.removeprefix("sqlite:///")).exists():
            with MetadataStore(url) as store:
                running = store.get_executions(state=ExecutionState.RUNNING)
            # running, and inside the component: its staging folder is made just after the record
            if running and list((tmp_path / "root").glob("*/*/.staging-*")):
                return proc
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read())
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the node never started running")


def test_a_killed_run_is_marked_abandoned_on_the_next_start_and_can_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    proc = _start_sleeper(tmp_path, url)
    proc.kill()
    proc.wait()
    with MetadataStore(url) as store:
        [running] = store.get_executions(state=ExecutionState.RUNNING)
        run_id = running.properties["run_id"]
    assert list((tmp_path / "root" / "sleepy" / "sleep_then_write").glob(".staging-*"))
    # any later start reaps what the dead process left behind
    RUNNER.run(Pipeline("other", components=[lib.make_numbers()], pipeline_root=str(tmp_path / "root"), metadata_url=url))
    with MetadataStore(url) as store:
        assert store.get_execution(running.id).state == ExecutionState.ABANDONED
        assert store.get_context_by_name(PIPELINE_RUN, run_id).properties["state"] == "ABANDONED"
    assert not list((tmp_path / "root" / "sleepy" / "sleep_then_write").glob(".staging-*"))
    node = lib.sleep_then_write(seconds=0.0)
    resumed = RUNNER.run(Pipeline("sleepy", components=[node], pipeline_root=str(tmp_path / "root"), metadata_url=url),
                         resume_run_id=run_id)
    assert resumed.state == RunState.COMPLETE


def test_ctrl_c_cancels_the_running_node(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    proc = _start_sleeper(tmp_path, url)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "RunInterruptedError" in out and "jfx run --resume" in out
    with MetadataStore(url) as store:
        [execution] = store.get_executions()
        assert execution.state == ExecutionState.CANCELLED
        [run_ctx] = store.get_runs()
        assert run_ctx.properties["state"] == "CANCELLED"
        assert json.dumps(run_ctx.properties["node_states"]) == '{"sleep_then_write": "cancelled"}'


@component
def writes_in_pieces(data: Output[Dataset]):
    """Writes a file every 10 ms for 3 s, checking for a cancelled run before each; Ctrl-C after the fifth."""
    for i in range(300):
        if i == 5:
            _thread.interrupt_main()  # as Ctrl-C: KeyboardInterrupt in the main thread
        check_cancelled()
        Path(data.uri, f"piece-{i}").write_text("x")
        time.sleep(0.01)


def test_ctrl_c_stops_a_component_that_checks_for_it_before_its_staging_is_removed(tmp_path):
    # Ctrl-C reaches the main thread; the component runs on a node thread and keeps writing
    # into its staging folder until it checks the cancel flag. The runner waits for it to
    # stop, so nothing is written there after the folder is removed.
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    started = time.perf_counter()
    # SIGINT as Ctrl-C here too, whatever this process inherited (see jfx_proc.SIGINT_AS_CTRL_C)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(RunInterruptedError):
            RUNNER.run(Pipeline("pieces", components=[writes_in_pieces()], pipeline_root=str(tmp_path / "root"),
                                metadata_url=url))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - started < 2.5, "the component did not stop at its next check"
    time.sleep(0.3)  # a component still writing would have made its folders again by now
    node_dir = tmp_path / "root" / "pieces" / "writes_in_pieces"
    assert not list(node_dir.glob(".staging-*")) and not (node_dir / "data").exists()
    with MetadataStore(url) as store:
        [execution] = store.get_executions()
        assert execution.state == ExecutionState.CANCELLED


class _InterruptingCounter:
    """A kernel that counts rows and sends Ctrl-C at its first batch (slowly, as a real one)."""

    def create(self):
        return 0

    def add_batch(self, acc, batch):
        if acc == 0:
            _thread.interrupt_main()
        time.sleep(0.02)
        return acc + batch.num_rows

    def merge(self, accs):
        return sum(accs)

    def finish(self, acc):
        return acc


@component
def counts_many_pieces(data: Output[Dataset], source: Parameter[str] = ""):
    from jfx.components._engine import run_kernel

    data.write_json({"rows": run_kernel(_InterruptingCounter(), [source], batch_size=100, num_workers=1)})


def test_ctrl_c_stops_a_kernel_based_component_at_its_next_piece(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "many.parquet"
    pq.write_table(pa.table({"x": list(range(20_000))}), source, row_group_size=100)  # 200 pieces
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    started = time.perf_counter()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(RunInterruptedError):
            RUNNER.run(Pipeline("kernel", components=[counts_many_pieces(source=str(source))],
                                pipeline_root=str(tmp_path / "root"), metadata_url=url))
    finally:
        signal.signal(signal.SIGINT, previous)
    # all 200 pieces take 4 s; the reader checks before each, so the node stops within a few
    assert time.perf_counter() - started < 2.5, "the kernel's reader did not stop at the next piece"
    with MetadataStore(url) as store:
        [execution] = store.get_executions()
        assert execution.state == ExecutionState.CANCELLED


def test_halt_publishes_outputs_and_skips_downstream(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"

    def build(limit):
        nums = lib.make_numbers(rows=10)
        tot = lib.total(numbers=nums.outputs["numbers"])
        gate = lib.gate(result=tot.outputs["result"], limit=limit)
        after = lib.maybe_extra(extra=nums.outputs["numbers"]).after(gate)
        return Pipeline("halt", components=[nums, tot, gate, after], pipeline_root=str(tmp_path), metadata_url=url)

    result = RUNNER.run(build(limit=10))
    assert result.state == RunState.FAILED
    assert states(result) == {"make_numbers": "complete", "total": "complete", "gate": "complete",
                              "maybe_extra": "skipped"}
    gate = result.nodes["gate"]
    assert gate.halted.startswith("total 45 is over the limit 10") and not gate.succeeded
    assert result.nodes["maybe_extra"].error == "upstream node gate halted the pipeline"
    assert lib.read(gate.outputs["verdict"][0].uri) == {"total": 45, "ok": False}, "the report is published"
    with MetadataStore(url) as store:
        execution = store.get_execution(gate.execution_id)
        assert execution.state == ExecutionState.COMPLETE and execution.properties["halted"] == gate.halted
    # from the cache, the halt is replayed: downstream still does not run
    again = RUNNER.run(build(limit=10))
    assert states(again)["gate"] == "cached" and again.nodes["gate"].halted == gate.halted
    assert states(again)["maybe_extra"] == "skipped"
    # resuming re-judges the halting node (here the same answer, from cache)
    resumed = RUNNER.run(build(limit=10), resume_run_id=result.run_id)
    assert states(resumed)["maybe_extra"] == "skipped"
    passing = RUNNER.run(build(limit=100))
    assert passing.state == RunState.COMPLETE and states(passing)["maybe_extra"] == "complete"


def test_components_see_their_execution_context(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    pipeline = Pipeline("ctx", components=[lib.whoami()], pipeline_root=str(tmp_path), metadata_url=url,
                        beam_pipeline_args=["--runner=DirectRunner"])
    assert pipeline.to_ir()["pipeline"]["beam_pipeline_args"] == ["--runner=DirectRunner"]
    result = RUNNER.run(pipeline)
    node = result.nodes["whoami"]
    assert lib.read(node.outputs["out"][0].uri) == {
        "pipeline": "ctx", "run_id": result.run_id, "node": "whoami", "execution_id": node.execution_id,
        "beam": ["--runner=DirectRunner"]}


def test_changed_external_data_misses_the_cache(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    data = tmp_path / "input.txt"
    data.write_text("v1")

    def build():
        return Pipeline("ext", components=[lib.read_file(path=str(data))], pipeline_root=str(tmp_path / "a"),
                        metadata_url=url)

    RUNNER.run(build())
    assert states(RUNNER.run(build())) == {"read_file": "cached"}
    data.write_text("v2")
    result = RUNNER.run(build())
    assert states(result) == {"read_file": "complete"}
    assert result.nodes["read_file"].cache_miss_reason == "changed external input"
    assert lib.read(result.nodes["read_file"].outputs["out"][0].uri) == "v2"


def test_runs_cache_and_failures_behave_the_same_on_every_backend(any_store_url, tmp_path):
    marker = tmp_path / "marker"
    first = RUNNER.run(lib.chain(str(tmp_path / "root"), any_store_url, str(marker)))
    assert states(first)["fail_unless"] == "failed" and states(first)["maybe_extra"] == "complete"
    marker.write_text("ok")
    resumed = RUNNER.run(lib.chain(str(tmp_path / "root"), any_store_url, str(marker)), resume_run_id=first.run_id)
    assert resumed.state == RunState.COMPLETE
    again = RUNNER.run(lib.chain(str(tmp_path / "root"), any_store_url, str(marker)))
    assert set(states(again).values()) == {"cached"}
    with MetadataStore(any_store_url) as store:
        [run_ctx] = [r for r in store.get_runs("chain") if r.name == first.run_id]
        assert run_ctx.properties["state"] == "COMPLETE" and run_ctx.properties["attempts"] == 2
        checked = again.nodes["fail_unless"].outputs["checked"][0]
        graph = store.lineage(checked.id, "upstream")
        assert {e.node_id for e in graph.executions} == {"make_numbers", "total", "fail_unless"}


def test_a_partial_run_reuses_the_upstream_outputs_of_a_run_with_the_same_parameters(env):
    root, url, marker = env
    full = RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"rows": 4})
    RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"rows": 5})  # newer, other rows: not reused
    part = RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"rows": 4}, from_nodes=["total"],
                      to_nodes=["total"], enable_cache=False)
    assert part.state == RunState.COMPLETE
    assert states(part) == {"make_numbers": "reused", "total": "complete", "fail_unless": "skipped",
                            "maybe_extra": "skipped"}
    reused = part.nodes["make_numbers"]
    assert reused.cached_from == full.nodes["make_numbers"].execution_id
    assert reused.reused_from_run == full.run_id
    assert lib.read(part.nodes["total"].outputs["result"][0].uri) == {"total": 6}  # rows=4 from the full run
    with MetadataStore(url) as store:
        graph = store.lineage(part.nodes["total"].outputs["result"][0].id, "upstream")
        assert {e.node_id for e in graph.executions} >= {"make_numbers", "total"}


def test_a_partial_run_needs_earlier_outputs_and_known_nodes(env):
    root, url, marker = env
    from jfx.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="node 'make_numbers' has no usable output: no earlier run"):
        RUNNER.run(lib.chain(str(root), url, str(marker)), from_nodes=["total"])
    RUNNER.run(lib.chain(str(root), url, str(marker)))
    with pytest.raises(InvalidArgumentError, match="has no node 'nope'"):
        RUNNER.run(lib.chain(str(root), url, str(marker)), from_nodes=["nope"])
    with MetadataStore(url) as store:
        assert len(store.get_runs("chain")) == 1, "a bad selection starts no run"


SIGNALLED = '''
import sys
from jfx import Pipeline
from jfx.orchestrators import LocalDagRunner
import jfx_testlib as lib
pipeline = Pipeline("signalled", components=[lib.ctrl_c_on_own_thread(seconds=60.0)],
                    pipeline_root=sys.argv[1], metadata_url=sys.argv[2])
LocalDagRunner(progress="log").run(pipeline)
'''


def test_ctrl_c_delivered_to_a_node_thread_still_stops_the_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    script = tmp_path / "signalled.py"
    script.write_text(SIGINT_AS_CTRL_C + SIGNALLED)
    # without a prompt reaction the run would sleep out the node's 60 s and exceed the timeout
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "root"), url], env=child_env(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "RunInterruptedError" in proc.stdout + proc.stderr
    with MetadataStore(url) as store:
        [execution] = store.get_executions()
        assert execution.state == ExecutionState.CANCELLED


def test_a_nan_property_fails_the_node_naming_the_output(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    result = RUNNER.run(Pipeline("nan", components=[lib.nan_property()], pipeline_root=str(tmp_path),
                                 metadata_url=url))
    outcome = result.nodes["nan_property"]
    assert outcome.state == "failed"
    assert "node 'nan_property' output 'out': properties must be JSON-serialisable" in outcome.error
    with MetadataStore(url) as store:
        assert store.get_artifacts() == [], "nothing is recorded with a property JSON cannot hold"
