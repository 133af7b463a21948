"""The compiled Kubeflow pipeline run by kfp.local (SubprocessRunner, no cluster): every task a
subprocess that runs the jfx launcher, with the same outcomes as the LocalDagRunner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jfx_flow as flow
import jfx_testlib as lib
import pytest
from jfx_requires import importorskip

from jfx import Output, Parameter, Pipeline, RuntimeParameter, component
from jfx.types import Metrics
from jfx.metadata import PIPELINE_RUN, ExecutionState, MetadataStore
importorskip("kfp", hint="pip install kfp", allow_module_level=True)

from jfx.orchestrators import KubeflowDagRunner, LocalDagRunner, NodeState, RunState

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

IMAGE = "python:3.11"


@pytest.fixture
def where(tmp_path):
    return str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"


def kfp_local(**kwargs):
    return KubeflowDagRunner(IMAGE, local=True, **kwargs)


def states(result):
    return {k: o.state for k, o in result.nodes.items()}


def fingerprints(result):
    return {(node, key): [a.fingerprint for a in arts]
            for node, o in result.nodes.items() for key, arts in o.outputs.items()}


def recorded(url, run_id):
    """(run properties, {node: [execution states in order]}) as the store has them."""
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, run_id)
        executions = {}
        for e in sorted(store.get_executions_by_context(run_ctx.id), key=lambda e: e.id):
            executions.setdefault(e.node_id, []).append(e.state)
        return run_ctx.properties, executions


def test_same_nodes_and_fingerprints_as_the_local_runner_and_one_shared_cache(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ok")
    note = "/usr/lib/python3.11/site-packages"  # kept verbatim (kfp.local rewrites 'python3' in commands)
    local_url = f"sqlite:///{tmp_path / 'local.sqlite'}"
    local = LocalDagRunner(progress=False).run(lib.chain(str(tmp_path / "local"), local_url, str(marker)),
                                               parameters={"rows": 4, "note": note})
    url = f"sqlite:///{tmp_path / 'kfp.sqlite'}"
    log = tmp_path / "kfp.log"
    first = kfp_local().run_local(lib.chain(str(tmp_path / "kfp"), url, str(marker)),
                                  parameters={"rows": 4, "note": note}, log=log)
    assert first.state == RunState.COMPLETE
    assert states(first) == states(local) == {n: NodeState.COMPLETE for n in local.nodes}
    assert fingerprints(first) == fingerprints(local) and all(fingerprints(first).values())
    assert lib.read(first.nodes["total"].outputs["result"][0].uri) == {"total": 6}
    assert "jfx: run " + first.run_id + " node total: complete" in log.read_text()  # each task's own log
    props, executions = recorded(url, first.run_id)
    assert props["state"] == "COMPLETE" and props["runner"] == "kfp-local" and props["parameters"] == \
        {"rows": 4, "note": note}
    assert props["node_states"] == {n: "complete" for n in local.nodes}  # written by the exit task
    assert executions == {n: [ExecutionState.COMPLETE] for n in local.nodes}  # one run for all the tasks
    assert props["pid"] == os.getpid()  # the run belongs to the process that drives kfp.local

    # the Kubeflow run and a local run against the same store share one cache, both ways
    again = LocalDagRunner(progress=False).run(lib.chain(str(tmp_path / "kfp"), url, str(marker)),
                                               parameters={"rows": 4, "note": note})
    assert set(states(again).values()) == {NodeState.CACHED}
    assert {n: o.cached_from for n, o in again.nodes.items()} == {n: o.execution_id for n, o in first.nodes.items()}
    changed = LocalDagRunner(progress=False).run(lib.chain(str(tmp_path / "kfp"), url, str(marker)),
                                                 parameters={"rows": 5, "note": note})
    cached = kfp_local().run_local(lib.chain(str(tmp_path / "kfp"), url, str(marker)),
                                   parameters={"rows": 5, "note": note})
    assert set(states(cached).values()) == {NodeState.CACHED}
    assert {n: o.cached_from for n, o in cached.nodes.items()} == \
        {n: o.cached_from or o.execution_id for n, o in changed.nodes.items()}


def failing(root, url, marker):
    """make_numbers -> total -> fail_unless -> gate -> maybe_extra (after gate), plus an independent whoami."""
    nums = lib.make_numbers()
    tot = lib.total(numbers=nums.outputs["numbers"])
    chk = lib.fail_unless(result=tot.outputs["result"], marker=marker)
    gate = lib.gate(result=chk.outputs["checked"], limit=1)
    after = lib.maybe_extra().after(gate)
    return Pipeline("failing", components=[nums, tot, chk, gate, after, lib.whoami()], pipeline_root=root,
                    metadata_url=url)


def test_a_failed_node_fails_its_task_and_a_halting_node_stops_what_follows(tmp_path, where):
    result = kfp_local().run_local(failing(*where, str(tmp_path / "missing")))
    assert result.state == RunState.FAILED
    assert states(result) == {"make_numbers": "complete", "total": "complete", "fail_unless": "failed",
                              "gate": "skipped", "maybe_extra": "skipped", "whoami": "complete"}
    assert result.nodes["fail_unless"].error.startswith("RuntimeError: marker file")
    assert result.nodes["gate"].error == "upstream node fail_unless failed"
    assert result.nodes["maybe_extra"].error == "upstream node gate skipped"
    props, executions = recorded(where[1], result.run_id)
    assert props["state"] == "FAILED" and props["node_states"]["gate"] == "skipped"
    assert executions["fail_unless"] == [ExecutionState.FAILED] and "gate" not in executions
    assert not list(Path(where[0], "failing", "fail_unless").glob(".staging-*"))

    # the marker appears: gate now halts (total 3 > 1); its task succeeds, the launcher skips what follows
    (tmp_path / "marker").write_text("ok")
    halted = kfp_local().run_local(failing(*where, str(tmp_path / "marker")))
    assert halted.state == RunState.FAILED
    assert states(halted) == {"make_numbers": "cached", "total": "cached", "fail_unless": "complete",
                              "gate": "complete", "maybe_extra": "skipped", "whoami": "cached"}
    assert halted.nodes["gate"].halted.startswith("total 3 is over the limit 1")
    assert halted.nodes["maybe_extra"].error == "upstream node gate halted the pipeline"
    assert lib.read(halted.nodes["whoami"].outputs["out"][0].uri)["run_id"] != halted.run_id  # cached: older run


def test_retry_timeout_cache_and_after_on_kubeflow(tmp_path, where):
    flaky = lib.flaky(counter=str(tmp_path / "calls"), failures=2).with_retry(2, backoff_s=0.0)
    slow = lib.sleep_then_write(seconds=30.0).with_timeout(1)
    after_slow = lib.make_numbers(rows=2).after(slow)
    nums = lib.make_numbers(rows=3).with_id("nums")
    always = lib.total(numbers=nums.outputs["numbers"]).with_cache(False).after(flaky)

    def build():
        return Pipeline("opts", components=[flaky, slow, after_slow, nums, always], pipeline_root=where[0],
                        metadata_url=where[1])

    result = kfp_local().run_local(build())
    assert states(result) == {"flaky": "complete", "sleep_then_write": "failed", "make_numbers": "skipped",
                              "nums": "complete", "total": "complete"}
    assert lib.read(result.nodes["flaky"].outputs["out"][0].uri) == {"calls": 3}
    assert result.nodes["sleep_then_write"].error == \
        "ComponentTimeoutError: node 'sleep_then_write' timed out after 1 s"
    _props, executions = recorded(where[1], result.run_id)
    # each Kubeflow retry of the task is one attempt, one execution, as on the local runner
    assert executions["flaky"] == [ExecutionState.FAILED, ExecutionState.FAILED, ExecutionState.COMPLETE]
    assert not Path(where[0], "opts", "sleep_then_write", "out").exists()

    (tmp_path / "calls").unlink()
    again = kfp_local().run_local(build())
    assert states(again)["nums"] == "cached" and states(again)["flaky"] == "cached"
    assert states(again)["total"] == "complete"
    assert again.nodes["total"].cache_miss_reason == "cache disabled for this node"


def by_condition(result):
    return {k for k, o in result.nodes.items() if o.by_condition}


def value(result, node, key="out"):
    return result.nodes[node].outputs[key][0].properties["value"]


def test_for_each_and_a_condition_on_an_output_as_on_the_local_runner(tmp_path):
    local = LocalDagRunner(progress=False).run(
        flow.fan_out(root=str(tmp_path / "l"), url=f"sqlite:///{tmp_path / 'l.sqlite'}"), parameters={"threshold": 13})
    where = str(tmp_path / "k"), f"sqlite:///{tmp_path / 'k.sqlite'}"
    result = kfp_local().run_local(flow.fan_out(root=where[0], url=where[1]), parameters={"threshold": 13})
    assert result.state == local.state == RunState.COMPLETE
    assert states(result) == states(local)
    assert result.nodes["publish"].state == NodeState.SKIPPED and by_condition(result) == by_condition(local) == \
        {"publish"}
    assert result.nodes["publish"].error == local.nodes["publish"].error
    assert fingerprints(result) == fingerprints(local)
    assert value(result, "total") == 12
    props, executions = recorded(where[1], result.run_id)
    assert props["state"] == "COMPLETE" and executions["publish"] == [ExecutionState.SKIPPED]

    passing = kfp_local().run_local(flow.fan_out(root=where[0], url=where[1]))  # threshold 10: publish runs
    assert passing.state == RunState.COMPLETE and states(passing)["publish"] == NodeState.COMPLETE
    assert states(passing)["total"] == NodeState.CACHED


@pytest.mark.parametrize("items", ['[{"n": 3}, {"n": 1}]', "[]"])
def test_a_dynamic_foreach_as_on_the_local_runner(tmp_path, items):
    local = LocalDagRunner(progress=False).run(
        flow.dynamic_fan_out(root=str(tmp_path / "l"), url=f"sqlite:///{tmp_path / 'l.sqlite'}"), parameters={"items": items})
    where = str(tmp_path / "k"), f"sqlite:///{tmp_path / 'k.sqlite'}"
    result = kfp_local().run(flow.dynamic_fan_out(root=where[0], url=where[1]), parameters={"items": items})
    assert result.state == local.state == RunState.COMPLETE
    assert states(result) == states(local)  # the copies, in the same order
    assert fingerprints(result) == fingerprints(local)
    assert value(result, "total") == value(local, "total") == (40 if items != "[]" else 0)


def test_print_is_this_processs_own_again_after_a_run_whose_loop_tasks_overlapped(where, monkeypatch):
    # kfp.local runs a ParallelFor's iterations in threads, and each replaces builtins.print
    # while it runs (to indent its log), restoring what it found: overlapping, the task that
    # ends last restores another task's indenting print. The same end, made certain here.
    import builtins
    import contextlib

    from kfp.local import logging_utils

    original = builtins.print

    @contextlib.contextmanager
    def overlapped(num_spaces: int = 4):
        builtins.print = lambda *args, **kwargs: original(" " * num_spaces, *args, **kwargs)
        yield

    monkeypatch.setattr(logging_utils, "indented_print", overlapped)
    try:
        result = kfp_local().run(flow.dynamic_fan_out(root=where[0], url=where[1]), parameters={"items": '[{"n": 3}]'})
        assert result.state == RunState.COMPLETE
        assert builtins.print is original
    finally:
        builtins.print = original


@pytest.mark.parametrize("push", [True, False])
def test_a_condition_on_a_parameter_and_its_negation(where, push):
    result = kfp_local().run_local(flow.gated(root=where[0], url=where[1]), parameters={"push": push})
    assert result.state == RunState.COMPLETE
    ran, skipped = (["publish", "scaled"], ["other"]) if push else (["other"], ["publish", "scaled"])
    assert {n: result.nodes[n].state for n in ran} == {n: NodeState.COMPLETE for n in ran}
    assert {n: result.nodes[n].state for n in skipped} == {n: NodeState.SKIPPED for n in skipped}
    assert by_condition(result) == set(skipped)
    if not push:
        assert result.nodes["scaled"].error == "upstream node publish skipped"


def test_an_exit_handlers_node_runs_after_a_failed_task_and_sees_every_state(where):
    result = kfp_local().run_local(flow.exit_handled(root=where[0], url=where[1]))
    assert result.state == RunState.FAILED
    assert states(result) == {"number": NodeState.COMPLETE, "explode": NodeState.FAILED,
                              "publish": NodeState.SKIPPED, "report": NodeState.COMPLETE}
    seen = result.nodes["report"].outputs["out"][0].properties["states"]
    assert seen == {"explode": "failed", "number": "complete", "publish": "skipped"}
    props, _ = recorded(where[1], result.run_id)
    assert props["state"] == "FAILED" and props["node_states"]["report"] == "complete"

    ok = kfp_local().run_local(flow.exit_handled(root=where[0], url=where[1]), parameters={"fail": False})
    assert ok.state == RunState.COMPLETE
    assert ok.nodes["report"].outputs["out"][0].properties["states"] == {
        "explode": "complete", "number": "cached", "publish": "complete"}


def test_partial_run_reuses_the_latest_upstream_outputs(where):
    first = LocalDagRunner(progress=False).run(flow.fan_out(root=where[0], url=where[1]))
    part = kfp_local().run_local(flow.fan_out(root=where[0], url=where[1]), from_nodes=["total"],
                                 to_nodes=["judge"], enable_cache=False)
    assert part.state == RunState.COMPLETE
    assert states(part) == {"number": "reused", "scale-0": "reused", "scale-1": "reused", "scale-2": "reused",
                            "total": "complete", "judge": "complete", "publish": "skipped"}
    assert {part.nodes[n].reused_from_run for n in ("number", "scale-0", "scale-1", "scale-2")} == {first.run_id}
    assert part.nodes["scale-1"].outputs["out"][0].id == first.nodes["scale-1"].outputs["out"][0].id
    assert part.nodes["publish"].error == "outside the partial run"
    assert value(part, "total") == 12
    props, executions = recorded(where[1], part.run_id)
    assert props["state"] == "COMPLETE" and "publish" not in executions
    assert executions["total"] == [ExecutionState.COMPLETE] and executions["number"] == [ExecutionState.CACHED]


def test_partial_run_reuses_one_run_that_no_validator_halted(tmp_path):
    import jfx_partial

    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("Adelie Gentoo Chinstrap")
    bad.write_text("Adelie Penguinzilla")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    pipeline = jfx_partial.penguinish(str(tmp_path / "root"), url)
    local = LocalDagRunner(progress=False)
    first = local.run(pipeline, parameters={"data": str(good)})
    second = local.run(pipeline, parameters={"data": str(good)}, enable_cache=False)
    assert local.run(pipeline, parameters={"data": str(bad)}).nodes["validate"].halted
    reused = ["ingest", "validate", "fit"]

    part = kfp_local().run_local(pipeline, parameters={"data": str(good)}, from_nodes=["train"],
                                 to_nodes=["evaluate"], enable_cache=False)
    assert part.state == RunState.COMPLETE, {k: o.error for k, o in part.nodes.items()}
    assert {n: (part.nodes[n].state, part.nodes[n].reused_from_run) for n in reused} == \
        dict.fromkeys(reused, (NodeState.REUSED, second.run_id))
    props, _ = recorded(url, part.run_id)
    assert props["partial"]["reused_from_run"] == second.run_id

    chosen = kfp_local().run_local(pipeline, parameters={"data": str(good)}, from_nodes=["train"],
                                   to_nodes=["evaluate"], from_run=first.run_id)
    assert {chosen.nodes[n].reused_from_run for n in reused} == {first.run_id}
    assert [a.id for a in chosen.nodes["fit"].outputs["vocabulary"]] == \
        [a.id for a in first.nodes["fit"].outputs["vocabulary"]]

    from jfx.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="node 'validate' has no usable output: it halted the pipeline"):
        kfp_local().run_local(pipeline, parameters={"data": str(bad)}, from_nodes=["train"])


def test_jfx_run_with_the_kfp_local_runner(tmp_path, any_root):
    """On the default (local) root and on an S3 root, where the tasks fetch the uploaded pipeline file."""
    import hashlib

    from jfx import _storage as storage

    hello = Path(__file__).resolve().parents[2] / "examples" / "hello" / "pipeline.py"
    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}  # the S3 server's settings included
    env["JFX_HOME"] = str(tmp_path / "home")
    remote = storage.is_remote(any_root)
    root = any_root if remote else str(tmp_path / "home" / "artifacts")  # the default root
    cmd = [sys.executable, "-m", "jfx", "run", str(hello), "--runner", "kfp-local", "--param", "rows=30",
           *(["--pipeline-root", any_root] if remote else [])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "of pipeline hello: COMPLETE" in proc.stdout
    assert "task logs:" in proc.stderr
    [log] = (tmp_path / "home" / "kfp-local").glob("hello-*.log")
    assert "jfx: run hello-" in log.read_text()
    [report] = [f for f in storage.list_files(storage.join(root, "hello", "write_report", "report"))
                if f.rel.endswith("report.md")]
    assert "30 rows." in storage.read_text(report.uri)
    digest = hashlib.sha256(hello.read_bytes()).hexdigest()
    if remote:  # the tasks loaded the pipeline file uploaded under the root, fetched into the code cache
        assert "1 file(s) uploaded" in proc.stderr
        assert storage.exists(f"{any_root}/_jfx/code/{digest}/pipeline.py")
        assert (tmp_path / "home" / "cache" / "code" / digest / "pipeline.py").is_file()
        assert not (tmp_path / "home" / "artifacts").exists()
    else:
        assert not (tmp_path / "home" / "cache" / "code").exists()
    resume = subprocess.run([*cmd[:5], "--runner", "kfp-local", "--resume", "x"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert resume.returncode == 1 and "drop --runner kfp-local" in resume.stderr


def test_penguin_on_kfp_local_as_on_the_local_runner(tmp_path, jfx_home, any_root, monkeypatch):
    from jfx.pipelines import load_pipeline

    monkeypatch.chdir(tmp_path)  # the tasks' working folder

    pipeline = load_pipeline(Path(__file__).resolve().parents[2] / "examples" / "penguin" / "pipeline.py")
    local = LocalDagRunner(progress=False, pipeline_root=str(tmp_path / "l"),
                           metadata_url=f"sqlite:///{tmp_path / 'l.sqlite'}").run(pipeline)
    # on an S3 root the tasks fetch the uploaded module files (Transform's and Trainer's)
    kfp = kfp_local(pipeline_root=any_root, metadata_url=f"sqlite:///{tmp_path / 'k.sqlite'}").run_local(
        pipeline, log=tmp_path / "kfp.log")
    assert kfp.state == local.state == RunState.COMPLETE
    assert states(kfp) == states(local) == {n: NodeState.COMPLETE for n in local.nodes} and len(local.nodes) == 12
    assert set(fingerprints(kfp)) == set(fingerprints(local))
    # the data half is byte for byte the same; the model half differs between any two runs (MLflow run
    # ids, timings), and a transform graph's StableHLO carries the Python call stack as debug locations
    same = [("ExampleGen", "examples"), ("StatisticsGen", "statistics"), ("SchemaGen", "schema"),
            ("NewExampleGen", "examples"), ("NewStatisticsGen", "statistics"), ("ExampleValidator", "anomalies"),
            ("Transform", "transformed_examples")]
    assert {k: fingerprints(kfp)[k] for k in same} == {k: fingerprints(local)[k] for k in same}
    blessing = kfp.nodes["Evaluator"].outputs["blessing"][0].properties
    assert blessing["blessed"] is True
    if any_root.startswith("s3://"):  # the module files ran from their uploaded, content-addressed copies
        import hashlib

        from jfx import _storage as storage

        for name in ("model.py", "preprocessing.py"):
            source = Path(__file__).resolve().parents[2] / "examples" / "penguin" / name
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
            assert storage.exists(f"{any_root}/_jfx/code/{digest}/{name}")
            assert (jfx_home / "cache" / "code" / digest / name).is_file()
        assert kfp.nodes["Trainer"].outputs["model"][0].uri.startswith(any_root)


def test_the_entrypoint_runs_one_node_at_a_time_from_a_shell(tmp_path):
    import json as _json

    from jfx.metadata import ExecutionRecord
    from jfx.orchestrators._publish import staging_dir
    from jfx.orchestrators.entrypoint import join_run
    from jfx.orchestrators.entrypoint import main as entrypoint

    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    ir = tmp_path / "ir.json"
    ir.write_text(_json.dumps(lib.chain(root, url, str(tmp_path / "missing")).to_ir()))
    common = ["--ir", str(ir), "--run-id", "by-hand", "--metadata-url", url, "--param", "rows=4"]
    assert entrypoint(["node", "--node", "make_numbers", *common]) == 0
    # a pod killed while it ran total left a RUNNING execution and its staging folder; the retry cleans up
    with MetadataStore(url) as store:
        run = join_run(store, lib.chain(root, url).compile(), "by-hand", runner="kubeflow")
        killed = store.put_execution(ExecutionRecord("total", "total", state=ExecutionState.RUNNING),
                                     contexts=[run.pipeline_context_id, run.run_context_id])
    stage = staging_dir(root, "chain", "total", killed.id)
    (stage / "result").mkdir(parents=True)
    assert entrypoint(["node", "--node", "total", *common]) == 0
    assert not stage.exists()
    assert entrypoint(["node", "--node", "fail_unless", *common]) == 1  # the marker is missing: the node fails
    assert entrypoint(["finish", "--final-state", "FAILED", *common]) == 1
    props, executions = recorded(url, "by-hand")
    assert props["state"] == "FAILED" and props["parameters"] == {"rows": 4, "note": ""}
    assert props["node_states"] == {"make_numbers": "complete", "total": "complete", "fail_unless": "failed",
                                    "maybe_extra": "skipped"}  # Argo started no task after the failure
    assert executions == {"make_numbers": [ExecutionState.COMPLETE],
                          "total": [ExecutionState.ABANDONED, ExecutionState.COMPLETE],
                          "fail_unless": [ExecutionState.FAILED]}
    proc = subprocess.run([sys.executable, "-m", "jfx.orchestrators.entrypoint", "node", "--node", "nope", *common],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "has no node 'nope'" in proc.stderr


def test_a_run_whose_tasks_never_started_is_recorded_failed(where, monkeypatch):
    from kfp import components

    monkeypatch.setattr(components, "load_component_from_file", lambda path: (lambda **arguments: None))
    result = kfp_local().run_local(lib.chain(*where))
    assert result.state == RunState.FAILED
    assert {k: (o.state, o.error) for k, o in result.nodes.items()} == {
        "make_numbers": ("failed", "its Kubeflow task did not run"),
        "total": ("skipped", "upstream node make_numbers failed"),
        "fail_unless": ("skipped", "upstream node total skipped"),
        "maybe_extra": ("failed", "its Kubeflow task did not run")}
    props, executions = recorded(where[1], result.run_id)
    assert props["state"] == "FAILED" and executions == {}


# --------------------------------------------------------------------- what a KFP backend sends the tasks

@component
def use_options(out: Output[Metrics], opt: Parameter[dict] = None, weights: Parameter[list] = None):
    out.write_json({"opt": opt, "weights": weights})


def options_flow(root, url):
    node = use_options(opt=RuntimeParameter("opt", dict, default={"lr": 0.5, "steps": 10}),
                       weights=RuntimeParameter("weights", list, default=[0.5, 0.25]))
    return Pipeline("floats", components=[node], pipeline_root=root, metadata_url=url)


def test_whole_floats_delivered_as_ints_give_the_local_runs_cache_key(where):
    from jfx.orchestrators.entrypoint import run_node

    values = {"opt": {"lr": 1.0, "steps": 3}, "weights": [1.0, 2.0, 0.5]}
    local = LocalDagRunner(progress=False).run(options_flow(*where), parameters=values)
    assert local.nodes["use_options"].state == NodeState.COMPLETE
    # the backend's launcher writes the ExecutorInput with Go's protojson: 1.0 arrives as 1
    delivered = {"opt": {"lr": 1, "steps": 3}, "weights": [1, 2, 0.5]}
    outcome = run_node(ir=options_flow(*where).compile(), node_id="use_options", run_id="kfp-floats",
                       metadata_url=where[1], parameters=delivered)
    assert outcome.state == NodeState.CACHED and outcome.cached_from == local.nodes["use_options"].execution_id
    props, _ = recorded(where[1], "kfp-floats")
    assert props["parameters"] == values


@pytest.mark.parametrize("final_state, expected", [
    ("COMPLETE", RunState.COMPLETE),   # a KFP backend: the MLMD state of the run's DAG
    ("SUCCEEDED", RunState.COMPLETE),  # kfp.local
    ("FAILED", RunState.FAILED),
    ("CANCELED", RunState.FAILED),
    ("RUNNING", RunState.COMPLETE),    # no final state: the store decides
])
def test_the_finish_reads_the_backends_final_states(tmp_path, final_state, expected):
    from jfx.orchestrators.entrypoint import finish, run_node

    marker = tmp_path / "marker"
    marker.write_text("ok")
    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    ir = lib.chain(root, url, str(marker)).compile()
    for node in ir.nodes:
        run_node(ir=ir, node_id=node.id, run_id="r", metadata_url=url)
    assert finish(ir=ir, run_id="r", metadata_url=url, final_state=final_state) == expected
    props, _ = recorded(url, "r")
    assert props["state"] == str(expected).upper()


def test_nodes_argo_never_started_after_a_failure_are_skipped_with_the_reason(where, capsys):
    from jfx.orchestrators.entrypoint import NodeFailedError, finish, outcomes_from_store, run_node

    ir = lib.chain(*where, marker="/nonexistent/marker").compile()
    for node_id in ("make_numbers", "total"):
        run_node(ir=ir, node_id=node_id, run_id="ff", metadata_url=where[1])
    with pytest.raises(NodeFailedError):
        run_node(ir=ir, node_id="fail_unless", run_id="ff", metadata_url=where[1])
    # maybe_extra was due, but Argo schedules nothing new once a task failed
    assert finish(ir=ir, run_id="ff", metadata_url=where[1], final_state="FAILED") == RunState.FAILED
    assert "not started: Argo stops scheduling after node fail_unless failed" in capsys.readouterr().out
    with MetadataStore(where[1]) as store:
        from jfx.orchestrators._run import join_run

        run = join_run(store, ir, "ff", runner="kubeflow")
        outcomes = outcomes_from_store(store, ir, run)
    assert (outcomes["maybe_extra"].state, outcomes["maybe_extra"].error) == (
        NodeState.SKIPPED, "not started: Argo stops scheduling after node fail_unless failed")
    assert outcomes["fail_unless"].state == NodeState.FAILED


def test_an_exit_nodes_hook_runs_it_once_and_the_finish_runs_no_node(where, capsys):
    from jfx.orchestrators.entrypoint import NodeFailedError, finish, run_node

    ir = flow.exit_handled(root=where[0], url=where[1]).compile()
    run_node(ir=ir, node_id="number", run_id="ex", metadata_url=where[1])
    with pytest.raises(NodeFailedError):
        run_node(ir=ir, node_id="explode", run_id="ex", metadata_url=where[1])
    # Argo starts no ordinary task after the failure; the exit node's hook (once, after everything) runs it
    assert run_node(ir=ir, node_id="report", run_id="ex", metadata_url=where[1], exit_hook=True).state == "complete"
    # a hook finds a node that already ran (its ordinary task) and runs nothing
    again = run_node(ir=ir, node_id="report", run_id="ex", metadata_url=where[1], exit_hook=True)
    assert again.state == "complete" and "node report: ran in its own task already" in capsys.readouterr().out
    assert finish(ir=ir, run_id="ex", metadata_url=where[1], final_state="FAILED") == RunState.FAILED
    props, executions = recorded(where[1], "ex")
    assert executions["report"] == [ExecutionState.COMPLETE]
    assert props["node_states"] == {"number": "complete", "explode": "failed", "publish": "skipped",
                                    "report": "complete"}

    # an exit node whose hook never ran (its pod did not start): FAILED, and the finish does not run it
    ir = flow.exit_handled(name="flow-exit-2", root=where[0], url=where[1]).compile()
    run_node(ir=ir, node_id="number", run_id="ex2", metadata_url=where[1], parameters={"fail": False})
    assert finish(ir=ir, run_id="ex2", metadata_url=where[1], final_state="RUNNING") == RunState.FAILED
    props, executions = recorded(where[1], "ex2")
    assert "report" not in executions and props["node_states"]["report"] == "failed"
