"""Compiled Kubeflow specs run the way the KFP v2 backend runs them (tests/resources/jfx_kfp_backend.py).

Every task is a separate process in its own mount namespace where the checkout is hidden and jfx
comes from a wheel; the ExecutorInput is built as the driver builds it (Go protojson), exit
handlers are expanded as the Argo compiler expands them, Argo's fail-fast holds, and the spec's
size limits are checked. Tasks are found by their display name (``taskInfo.name``: the node id,
what the KFP UI shows); their KFP (and Argo) task names are ``jfx-node-task-N``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from jfx_requires import importorskip, unavailable

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

import jfx_kfp_backend as kb

from jfx import _storage as storage
from jfx.metadata import MetadataStore
from jfx.metadata._runs import get_run
from jfx.orchestrators import KubeflowDagRunner
from jfx.pipelines import load_pipeline

_why = kb.unshare_available()
if _why:
    unavailable(f"the KFP backend harness needs private mount namespaces: {_why}", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

IMAGE = "registry.example/jfx:0.1"
REPO = Path(__file__).resolve().parents[2]
FLOW = REPO / "tests" / "resources" / "jfx_flow.py"

def project(folder: Path, source: Path, tail: str = "") -> Path:
    """A copy of ``source`` outside the checkout (the user's own project), with ``tail`` appended."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    target.write_text(source.read_text() + tail)
    return target


def recorded(url: str, run_id: str):
    with MetadataStore(url) as store:
        return get_run(store, run_id)


def value(state) -> str:
    """A state (an enum or its string) in lower case: "complete"."""
    return str(getattr(state, "value", state)).lower()


def node_states(record) -> dict[str, str]:
    return {k: value(v) for k, v in record.node_states.items()}


def node_executions(url: str, run_id: str) -> dict[str, list[str]]:
    from jfx.metadata import PIPELINE_RUN

    with MetadataStore(url) as store:
        ctx = store.get_context_by_name(PIPELINE_RUN, run_id)
        found: dict[str, list[str]] = {}
        for e in sorted(store.get_executions_by_context(ctx.id), key=lambda e: e.id):
            found.setdefault(e.node_id, []).append(value(e.state))
        return found


def jfx_run_id(spec_name: str, run: kb.Run) -> str:
    return f"{spec_name}-kfp-{run.run_id}"


# ------------------------------------------------------------------------------ the harness itself

def test_parameters_are_serialized_as_go_protojson_writes_them():
    assert kb.protojson({"lr": 1.0, "ratio": 0.25, "n": 3, "tiny": 1e-7, "huge": 1e21, "ok": True, "no": None,
                         "nested": [{"x": 2.0}]}) == \
        '{"huge":1e+21,"lr":1,"n":3,"nested":[{"x":2}],"no":null,"ok":true,"ratio":0.25,"tiny":1e-7}'
    assert kb.go_json({"a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e"}'


def test_tasks_run_where_the_checkout_is_hidden_and_jfx_comes_from_the_wheel(tmp_path):
    backend = kb.Backend(tmp_path / "pods")
    probe = backend.probe("import json, os, jfx; print(json.dumps([jfx.__file__, "
                          "{str(p): os.listdir(p) for p in %r}]))" % [str(p) for p in kb.hidden_folders()])
    assert probe.returncode == 0, probe.stderr
    where, listings = json.loads(probe.stdout)
    assert Path(where).is_relative_to(kb.wheel_site())
    assert str(REPO) in listings
    # nothing of any checkout is visible (only the environment's own Python, kept where it was)
    assert all(set(names) <= {".venv", "venv"} for names in listings.values()), listings


# ------------------------------------------------------------------------------ hello, local root

@pytest.fixture(scope="module")
def hello_local(tmp_path_factory):
    """hello (the user's copy), compiled with a local root (--local), run once with rows=50."""
    tmp = tmp_path_factory.mktemp("hello-local")
    source = project(tmp / "project", REPO / "examples" / "hello" / "pipeline.py")
    url = f"sqlite:///{tmp / 'md.sqlite'}"
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp / "artifacts"), metadata_url=url, local=True)
    package = runner.compile(load_pipeline(source), tmp / "hello.yaml")
    run = kb.Backend(tmp / "pods").run(package, {"rows": 50})
    return run, url, jfx_run_id("hello", run)


def test_hello_local_root_every_node_runs_in_its_own_pod(hello_local):
    run, url, run_id = hello_local
    # one component for every node: KFP task names jfx-node-task-N, the node id as each one's display name
    assert [t.name for t in run.tasks] == ["jfx-node-task", "jfx-node-task-2", "jfx-node-task-3",
                                           "jfx-finish-run"], run.log()
    assert [t.display_name for t in run.tasks] == ["make_data", "summarize", "write_report", "jfx-finish-run"]
    assert all(t.phase == "Succeeded" for t in run.tasks), run.log()
    assert node_executions(url, run_id) == {n: ["complete"] for n in ("make_data", "summarize", "write_report")}
    with MetadataStore(url) as store:
        [report] = [a for a in store.get_artifacts_by_type("Report")]
    assert "50 rows." in storage.read_text(storage.join(report.uri, "report.md"))
    # the driver's ExecutorInput: a whole number is written as Go writes it, the job id substituted
    make_data = run.of("make_data")[0]
    assert re.search(r'"rows":50[,}]', make_data.executor_input) and make_data.parameters["jfx_job_id"] == run.run_id
    assert make_data.parameters["jfx_node"] == "make_data"
    assert run.workflow_bytes < kb.ETCD_REQUEST_LIMIT


def test_hello_finish_task_gets_the_backend_final_status(hello_local):
    run, _, _ = hello_local
    [finish] = run.of("jfx-finish-run")
    assert finish.hook_of == "exit-handler-1"
    assert finish.parameters["status"] == {"state": "COMPLETE", "pipelineTaskName": "exit-handler-1",
                                           "pipelineJobResourceName": run.run_name, "error": {}}


def test_hello_local_root_run_is_recorded_complete(hello_local):
    _, url, run_id = hello_local
    record = recorded(url, run_id)
    assert value(record.state) == "complete", record.error


# ------------------------------------------------------------------------------ hello, s3:// root

@pytest.fixture(scope="module")
def hello_s3(tmp_path_factory, s3_server):
    """hello compiled for a cluster: an s3:// root, credentials from a secret, the store on a volume."""
    tmp = tmp_path_factory.mktemp("hello-s3")
    root = f"s3://{s3_server.bucket()}/root"
    env = s3_server.env()
    volume = tmp / "pvc"
    volume.mkdir()
    source = project(tmp / "project", REPO / "examples" / "hello" / "pipeline.py")
    runner = KubeflowDagRunner(IMAGE, pipeline_root=root, metadata_secret=("jfx-db", "url"), s3_secret="jfx-s3",
                               s3_endpoint=env["AWS_ENDPOINT_URL"], volumes={"/mnt/jfx": "jfx-pvc"},
                               env={"AWS_DEFAULT_REGION": env["AWS_DEFAULT_REGION"]})
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        package = runner.compile(load_pipeline(source), tmp / "hello.yaml")  # uploads the user's code
    finally:
        mp.undo()
    shutil.rmtree(source.parent)  # the pods see only the store
    backend = kb.Backend(tmp / "pods", volumes={"jfx-pvc": volume}, secrets={
        "jfx-db": {"url": "sqlite:////mnt/jfx/metadata.sqlite"},
        "jfx-s3": {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}})
    run = backend.run(package)
    return run, f"sqlite:///{volume / 'metadata.sqlite'}", jfx_run_id("hello", run), root, env


def test_hello_s3_root_nodes_write_to_the_store_from_pods(hello_s3):
    run, url, run_id, root, env = hello_s3
    assert all(t.phase == "Succeeded" for t in run.tasks), run.log()
    assert node_executions(url, run_id) == {n: ["complete"] for n in ("make_data", "summarize", "write_report")}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        reports = [f for f in storage.list_files(f"{root}/hello/write_report") if f.rel.endswith("report.md")]
        assert len(reports) == 1 and "200 rows." in storage.read_text(reports[0].uri)
    finally:
        mp.undo()


def test_hello_s3_root_run_is_recorded_complete(hello_s3):
    _, url, run_id, _, _ = hello_s3
    assert value(recorded(url, run_id).state) == "complete"


def test_hello_from_the_image_on_a_volume_root(tmp_path):
    volume = tmp_path / "pvc"
    volume.mkdir()
    from jfx.examples.hello.pipeline import create_pipeline

    runner = KubeflowDagRunner(IMAGE, pipeline_root="/mnt/jfx/artifacts", metadata_secret=("jfx-db", "url"),
                               volumes={"/mnt/jfx": "jfx-pvc"})
    package = runner.compile(create_pipeline(), tmp_path / "hello.yaml")
    run = kb.Backend(tmp_path / "pods", volumes={"jfx-pvc": volume},
                     secrets={"jfx-db": {"url": "sqlite:////mnt/jfx/metadata.sqlite"}}).run(package)
    assert run.phase == "Succeeded", run.log()
    record = recorded(f"sqlite:///{volume / 'metadata.sqlite'}", jfx_run_id("hello", run))
    assert value(record.state) == "complete"


# ------------------------------------------------------------------------------ control flow

def flow_package(tmp: Path, expression: str, **runner_args) -> tuple[Path, str]:
    """A jfx_flow pipeline (the user's copy) compiled with a local root; (package, metadata URL)."""
    source = project(tmp / "project", FLOW, f"\n\npipeline = {expression}\n")
    url = f"sqlite:///{tmp / 'md.sqlite'}"
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp / "artifacts"), metadata_url=url, local=True,
                               **runner_args)
    return Path(runner.compile(load_pipeline(source), tmp / "flow.yaml")), url


EXIT_WITH_RESOURCES = '''
def exit_with_resources():
    pipe = exit_handled()
    [notify] = [n for n in pipe.components if n.id == "report"]
    notify.with_resources(cpu=2, memory="3Gi", node_selector={"pool": "exit"})
    return pipe
'''


@pytest.fixture(scope="module")
def exit_failing(tmp_path_factory):
    """ExitHandler(report, with its own resources) around number -> explode(fail) -> publish."""
    tmp = tmp_path_factory.mktemp("flow-exit")
    source = project(tmp / "project", FLOW, EXIT_WITH_RESOURCES + "\n\npipeline = exit_with_resources()\n")
    url = f"sqlite:///{tmp / 'md.sqlite'}"
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp / "artifacts"), metadata_url=url, local=True)
    package = runner.compile(load_pipeline(source), tmp / "flow.yaml")
    run = kb.Backend(tmp / "pods").run(package, {"fail": True})
    return run, url, jfx_run_id("flow-exit", run)


def test_exit_handler_around_a_failure_records_the_failure(exit_failing):
    run, url, run_id = exit_failing
    assert run.phase == "Failed"
    assert [t.phase for t in run.of("explode")] == ["Failed"]
    assert "comp-jfx-exit-block-1/publish" in run.omitted and not run.of("publish")
    # the finish gets the state of the DAG the node tasks ran in, as the backend computes it
    [finish] = run.of("jfx-finish-run")
    assert finish.parameters["status"]["state"] == "FAILED"
    record = recorded(url, run_id)
    assert value(record.state) == "failed"
    states = node_states(record)
    assert states["explode"] == "failed" and states["publish"] == "skipped" and states["number"] == "complete"


def test_exit_handler_node_runs_once_after_every_node_it_guards_in_its_own_pod(exit_failing):
    run, url, run_id = exit_failing
    # Argo starts nothing after explode failed; the exit node is the hook of the node tasks' group,
    # which runs once after it, failed or not
    [report] = run.of("report")
    assert report.hook_of == "jfx-exit-block-1" and report.phase == "Succeeded", run.log()
    assert report.started >= max(t.ended for t in run.tasks if t.display_name in ("number", "explode"))
    assert node_executions(url, run_id)["report"] == ["complete"]
    # ... with the node's own pod settings, not the finish task's
    assert report.resources["cpuLimit"] == 2 and report.resources["memoryLimit"] == pytest.approx(3.221225472)
    assert report.kubernetes["nodeSelector"]["labels"] == {"pool": "exit"}
    [finish] = run.of("jfx-finish-run")
    assert "cpuLimit" not in finish.resources and "nodeSelector" not in finish.kubernetes
    assert finish.started >= report.ended and "node report" not in finish.output.split("of pipeline")[0]
    with MetadataStore(url) as store:
        [art] = [a for a in store.get_artifacts_by_type("Metrics") if "states" in a.properties]
    assert art.properties["states"] == {"number": "complete", "explode": "failed", "publish": "skipped"}


def test_exit_handler_around_a_success_runs_once_and_the_run_completes(tmp_path):
    package, url = flow_package(tmp_path, "exit_handled()")
    run = kb.Backend(tmp_path / "pods").run(package, {"fail": False})
    assert run.phase == "Succeeded", run.log()
    [report] = run.of("report")
    assert report.hook_of == "jfx-exit-block-1" and report.started >= max(
        t.ended for t in run.tasks if t.display_name in ("number", "explode", "publish"))
    run_id = jfx_run_id("flow-exit", run)
    assert node_executions(url, run_id)["report"] == ["complete"]
    assert value(recorded(url, run_id).state) == "complete"


AFTER_EXIT = '''
def after_exit():
    notify = report()
    with ExitHandler(notify):
        base = number(value=3)
    tail = chatty(text="after").with_id("tail").after(notify)
    return Pipeline("flow-after-exit", [notify, base, tail])
'''


def test_a_node_after_an_exit_handler_node_is_accepted_by_argo_and_the_node_runs_once(tmp_path):
    source = project(tmp_path / "project", FLOW, AFTER_EXIT + "\n\npipeline = after_exit()\n")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "a"), metadata_url=url, local=True)
    package = runner.compile(load_pipeline(source), tmp_path / "p.yaml")
    spec, k8s = kb.load_package(package)
    workflow = kb.argo_workflow(spec, k8s, kb.runtime_parameters(spec, {}))
    # the exit node is a DAG task of the group, and the node after it waits for it; the hooks are
    # the exit node's (on the group) and the run's finish
    assert sorted(t["name"] for t in workflow["spec"]["templates"] if "hooks" in json.dumps(t)) == \
        ["comp-exit-handler-1", "root"]
    [dag] = [t["dag"]["tasks"] for t in workflow["spec"]["templates"] if t["name"] == "comp-jfx-exit-block-1"]
    drivers = {json.loads(next(p["value"] for p in t["arguments"]["parameters"] if p["name"] == "task"))
               ["taskInfo"]["name"]: t for t in dag if t["name"].endswith("-driver")}
    assert drivers["tail"]["depends"] == f"{drivers['report']['name'].removesuffix('-driver')}.Succeeded"
    run = kb.Backend(tmp_path / "pods").run(package)
    assert run.phase == "Succeeded", run.log()
    ordinary, hook = run.of("report")  # the node's own task ran it; its hook found it done
    assert ordinary.hook_of is None and hook.hook_of == "jfx-exit-block-1"
    assert "node report: ran in its own task already (complete" in hook.output
    assert node_executions(url, jfx_run_id("flow-after-exit", run)) == {n: ["complete"] for n in
                                                                        ("report", "number", "tail")}


@pytest.fixture(scope="module")
def fan(tmp_path_factory):
    """number -> ForEach scale x3 -> total(Collected) -> judge -> If passed: publish."""
    tmp = tmp_path_factory.mktemp("flow-fan")
    package, url = flow_package(tmp, "fan_out()")
    run = kb.Backend(tmp / "pods").run(package)
    return run, url, jfx_run_id("flow-fan", run)


def test_foreach_and_if_run_through_the_backend(fan):
    run, url, run_id = fan
    assert all(t.phase == "Succeeded" for t in run.tasks), run.log()
    executions = node_executions(url, run_id)
    assert executions["total"] == executions["judge"] == executions["publish"] == ["complete"], executions
    assert len([n for n in executions if n.startswith("scale")]) == 3
    judge = run.of("judge")[0]
    assert re.search(r'"threshold":10[,}]', judge.executor_input)  # the root default, written as Go writes it


def test_foreach_and_if_run_is_recorded_complete(fan):
    _, url, run_id = fan
    assert value(recorded(url, run_id).state) == "complete"


@pytest.mark.parametrize("push", [False, True])
def test_a_false_parameter_condition_starts_no_pod_and_the_nodes_are_recorded_skipped(tmp_path, push):
    package, url = flow_package(tmp_path, "gated()")
    run = kb.Backend(tmp_path / "pods").run(package, {"push": push})
    assert run.phase == "Succeeded", run.log()
    ran, skipped = (["publish", "scaled"], ["other"]) if push else (["other"], ["publish", "scaled"])
    # the driver decides the condition: no process starts for a skipped node
    assert [t.display_name for t in run.tasks] == ["number", *ran, "jfx-finish-run"], run.log()
    assert not any(run.of(n) for n in skipped)
    if push:
        assert run.not_triggered == ["comp-exit-handler-1/other"]
    else:  # scaled depends on publish, whose executor Argo skipped: omitted, its driver never ran
        assert run.not_triggered == ["comp-exit-handler-1/publish"] and run.omitted == ["comp-exit-handler-1/scaled"]
    run_id = jfx_run_id("flow-gate", run)
    # the finish task records them SKIPPED, as the launcher does in a pod (an execution with the reason)
    assert node_executions(url, run_id) == {**{n: ["complete"] for n in ["number", *ran]},
                                            **{n: ["skipped"] for n in skipped}}
    [finish] = run.of("jfx-finish-run")
    for node in skipped:
        assert f"node {node} (not triggered): skipped" in finish.output
    record = recorded(url, run_id)
    assert value(record.state) == "complete" and {n: node_states(record)[n] for n in skipped} == \
        dict.fromkeys(skipped, "skipped")
    if not push:
        # an omitted task has no execution, so the backend's DAG never reaches COMPLETE: the finish
        # gets RUNNING, and the jfx store decides
        assert finish.parameters["status"]["state"] == "RUNNING"


CONDITIONS = [
    ("push", "==", True), ("push", "!=", False), ("rows", ">", 10), ("rows", "<=", 2.5), ("ratio", ">=", 0.25),
    ("ratio", "==", 1), ("name", "==", "it's \\ \"a\"\n é"), ("name", "<", "b"), ("rows", "==", "3"),
    ("push", "<", True),
]
VALUES = [{"push": p, "rows": r, "ratio": f, "name": n} for p in (True, False) for r in (-3, 2, 3, 11)
          for f in (0.25, 1.0, 0.1) for n in ("it's \\ \"a\"\n é", "a", "c")]


def test_compiled_trigger_conditions_decide_as_the_launcher_does():
    from jfx.orchestrators._kubeflow import cel_condition
    from jfx.pipelines import PipelineIR
    from jfx.pipelines._control import evaluate_condition

    ir = PipelineIR.from_dict({"ir_version": 1, "pipeline": {"name": "p"}, "nodes": [], "parameters": {
        "push": {"type": "bool", "default": True}, "rows": {"type": "int", "default": 3},
        "ratio": {"type": "float", "default": 0.5}, "name": {"type": "str", "default": "a"},
        "maybe": {"type": "str"}}})

    def cmp(name, op, constant):
        return {"op": op, "args": [{"param": name}, {"value": constant}]}

    on_output = {"op": "==", "args": [{"output": {"producer": "e", "key": "b", "property": "ok"}}, {"value": True}]}
    comparisons = [cmp(*c) for c in CONDITIONS]
    compiled = [c for c in comparisons if cel_condition(c, ir.parameters)]
    # mismatched types (int == "3") and ordered booleans stay with the launcher, as do outputs and a null parameter
    assert len(compiled) == len(comparisons) - 2
    assert cel_condition(on_output, ir.parameters) is None
    assert cel_condition(cmp("maybe", "==", "x"), ir.parameters) is None
    conditions = [
        *compiled,
        {"op": "not", "args": [compiled[0]]},
        {"op": "and", "args": [compiled[1], compiled[2], {"op": "not", "args": [compiled[6]]}]},
        {"op": "or", "args": [compiled[3], {"op": "not", "args": [compiled[4]]}]},
    ]
    for cond in conditions:
        cel = cel_condition(cond, ir.parameters)
        for values in VALUES:
            assert kb.evaluate_condition(cel, values) == evaluate_condition(cond, values, None), (cel, values)
    # a part on an output: the compiled condition is weaker, never false where the node runs
    partial = {"op": "and", "args": [compiled[2], on_output]}
    assert cel_condition(partial, ir.parameters) == cel_condition(compiled[2], ir.parameters)
    assert cel_condition({"op": "not", "args": [partial]}, ir.parameters) is None
    assert cel_condition({"op": "or", "args": [compiled[2], on_output]}, ir.parameters) is None
    with pytest.raises(kb.ConditionError, match="no such key"):
        kb.evaluate_condition("inputs.parameter_values['gone'] == 1", {})


FAIL_FIRST = '''
def fail_first():
    first = number(value=1)
    bad = explode(x=first.outputs["out"], fail=True).with_id("bad")
    other = number(value=2).with_id("other")
    later = scale(x=other.outputs["out"]).with_id("later")
    return Pipeline("flow-fail-fast", [first, bad, other, later])
'''


def test_after_a_failure_no_task_starts_and_those_nodes_are_skipped(tmp_path):
    source = project(tmp_path / "project", FLOW, FAIL_FIRST + "\n\npipeline = fail_first()\n")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "a"), metadata_url=url, local=True)
    package = runner.compile(load_pipeline(source), tmp_path / "p.yaml")
    run = kb.Backend(tmp_path / "pods", parallelism=1).run(package)
    assert [t.display_name for t in run.tasks][:2] == ["number", "bad"] and not run.of("later"), run.log()
    states = node_states(recorded(url, jfx_run_id("flow-fail-fast", run)))
    assert states["bad"] == "failed"
    assert states["other"] == states["later"] == "skipped", states


# ------------------------------------------------------------------------------ size limits

@pytest.fixture(scope="module")
def wide_package(tmp_path_factory):
    """40 independent nodes, each with a 4 KB parameter (the IR is ~190 KB)."""
    tmp = tmp_path_factory.mktemp("wide")
    tail = ("\n\npipeline = Pipeline('wide', [chatty(text='x' * 4000 + str(i)).with_id(f'c{i}') "
            "for i in range(40)])\n")
    source = project(tmp / "project", FLOW, tail)
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp / "a"), metadata_url="sqlite:///x", local=True)
    return runner.compile(load_pipeline(source), tmp / "wide.yaml"), tmp


def test_a_40_node_workflow_fits_etcd_request_limit(wide_package):
    package, _ = wide_package
    spec, k8s = kb.load_package(package)
    size = kb.workflow_bytes(kb.argo_workflow(spec, k8s, kb.runtime_parameters(spec, {})))
    assert size <= kb.ETCD_REQUEST_LIMIT


def test_every_task_command_line_fits_linux_argument_limit(wide_package):
    package, tmp = wide_package
    run = kb.Backend(tmp / "pods").run(package, execute=False, enforce_size=False)  # every task resolved, none run
    too_long = [f"{t.name}: {t.output}" for t in run.tasks if t.phase != "Succeeded"]
    assert len(run.tasks) == 41 and not too_long, too_long


# ------------------------------------------------------------------------------ penguin

def test_penguin_compiled_for_a_cluster_runs_on_an_s3_root(tmp_path, s3_root, s3_server, monkeypatch):
    from jfx.examples.penguin.pipeline import create_pipeline, penguins_dir

    # compiled as docs/kubeflow.md tells a user to: the data and the push destination on the store
    storage.write_bytes(f"{s3_root}/penguin/data/penguins.csv", (Path(penguins_dir()) / "penguins.csv").read_bytes())
    monkeypatch.setenv("JFX_PENGUIN_DATA", f"{s3_root}/penguin/data")
    monkeypatch.setenv("JFX_PENGUIN_SERVING_DIR", f"{s3_root}/serving")
    env = s3_server.env()
    volume = tmp_path / "pvc"
    volume.mkdir()
    runner = KubeflowDagRunner(IMAGE, pipeline_root=f"{s3_root}/jfx", metadata_secret=("jfx-db", "url"),
                               s3_secret="jfx-s3", s3_endpoint=env["AWS_ENDPOINT_URL"],
                               volumes={"/mnt/jfx": "jfx-pvc"}, env={"AWS_DEFAULT_REGION": env["AWS_DEFAULT_REGION"]})
    package = runner.compile(create_pipeline(), tmp_path / "penguin.yaml")
    run = kb.Backend(tmp_path / "pods", volumes={"jfx-pvc": volume}, secrets={
        "jfx-db": {"url": "sqlite:////mnt/jfx/metadata.sqlite"},
        "jfx-s3": {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}}).run(package)
    assert run.phase == "Succeeded", run.log()
    record = recorded(f"sqlite:///{volume / 'metadata.sqlite'}", jfx_run_id("penguin", run))
    assert value(record.state) == "complete", node_states(record)
    assert any(f.rel.endswith(".json") for f in storage.list_files(f"{s3_root}/serving/penguin"))


# ------------------------------------------------------------------------------ a dynamic ForEach

@pytest.fixture(scope="module")
def dyn(tmp_path_factory):
    """listing(items) -> ForEach over its items: number -> picky -> scale -> total(Collected), compiled once."""
    tmp = tmp_path_factory.mktemp("flow-dyn")
    package, url = flow_package(tmp, "dynamic_fan_out()")
    return tmp, package, url


def test_a_dynamic_foreach_runs_one_iteration_per_item_and_collects_them_in_order(dyn, tmp_path):
    _, package, url = dyn
    run = kb.Backend(tmp_path / "pods").run(package, {"items": '[{"n": 3}, {"n": 1}, {"n": 2}]'})
    assert run.phase == "Succeeded" and all(t.phase == "Succeeded" for t in run.tasks), run.log()
    [loop] = [k for k in run.iterations]
    assert run.iterations[loop] == 3  # a ParallelFor over the source task's output parameter
    [source] = run.of("listing")
    assert [x["jfx_index"] for x in source.outputs["Output"]] == [0, 1, 2]
    assert sorted(json.loads(t.executor_input)["inputs"]["parameterValues"]["jfx_loop_item"]["item"]["n"]
                  for t in run.of("number")) == [1, 2, 3]
    [total] = run.of("total")
    assert sorted(total.parameters["jfx_collected_0"]) == ["scale-0", "scale-1", "scale-2"]  # the loop DAG's outputs
    run_id = jfx_run_id("flow-dyn", run)
    executions = node_executions(url, run_id)
    assert [executions[n] for n in ("number-0", "scale-2", "total")] == [["complete"]] * 3
    with MetadataStore(url) as store:
        ctx = store.get_context_by_name("pipeline_run", run_id)
        [e] = [e for e in store.get_executions_by_context(ctx.id) if e.node_id == "total"]
        _, outputs = store.get_execution_artifacts(e.id)
    assert outputs["out"][0].properties["values"] == [30, 10, 20]  # in item order, whatever order the pods ran
    record = recorded(url, run_id)
    assert value(record.state) == "complete"
    assert [n["id"] for n in record.ir["nodes"]][:4] == ["listing", "number-0", "number-1", "number-2"]


def test_a_dynamic_foreach_over_an_empty_list_runs_no_iteration_and_collects_nothing(dyn, tmp_path):
    _, package, url = dyn
    run = kb.Backend(tmp_path / "pods").run(package, {"items": "[]"})
    assert run.phase == "Succeeded", run.log()
    assert list(run.iterations.values()) == [0] and not run.of("number")
    [total] = run.of("total")
    assert total.parameters["jfx_collected_0"] == []
    record = recorded(url, jfx_run_id("flow-dyn", run))
    assert value(record.state) == "complete" and set(node_states(record)) == {"listing", "total"}


def test_a_dynamic_foreach_over_a_value_that_is_not_a_list_fails_the_source_task(dyn, tmp_path):
    _, package, url = dyn
    run = kb.Backend(tmp_path / "pods").run(package, {"items": '{"n": 1}'})
    assert run.phase == "Failed" and not run.iterations and not run.of("number") and not run.of("total")
    [source] = run.of("listing")
    assert source.phase == "Failed" and "the value is dict" in source.output
    states = node_states(recorded(url, jfx_run_id("flow-dyn", run)))
    assert states == {"listing": "complete", "number": "failed", "picky": "failed", "scale": "failed",
                      "total": "skipped"}, states


DYNAMIC_WITH_EXIT = '''
def dynamic_with_exit():
    from jfx import ExitHandler
    notify = report()
    with ExitHandler(notify):
        first = number(value=1).with_id("first")
    pipe = dynamic_fan_out()
    return Pipeline("flow-dyn-exit", [notify, first, *pipe.components], pipeline_root=pipe.pipeline_root,
                    metadata_url=pipe.metadata_url)
'''


def test_a_dynamic_foreach_next_to_an_exit_handler(tmp_path):
    source = project(tmp_path / "project", FLOW, DYNAMIC_WITH_EXIT + "\n\npipeline = dynamic_with_exit()\n")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    runner = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "artifacts"), metadata_url=url, local=True)
    package = runner.compile(load_pipeline(source), tmp_path / "flow.yaml")
    run = kb.Backend(tmp_path / "pods").run(package, {"items": '[{"n": 2}]'})
    assert run.phase == "Succeeded", run.log()
    assert len(run.of("report")) == 1 and len(run.of("number")) == 1
    states = node_states(recorded(url, jfx_run_id("flow-dyn-exit", run)))
    assert states == dict.fromkeys(["report", "first", "listing", "number-0", "picky-0", "scale-0", "total"],
                                   "complete"), states
