"""KubeflowDagRunner: the compiled spec (read back with kfp's own loader) and the checks on where
a cluster can reach (submit: test_kubeflow_submit.py)."""

from __future__ import annotations

import json

import jfx_flow as flow
import jfx_testlib as lib
import pytest
from jfx_requires import importorskip
from google.protobuf import json_format

from jfx import Pipeline, RuntimeParameter
from jfx.errors import InvalidArgumentError, InvalidPipelineError
importorskip("kfp", hint="pip install kfp", allow_module_level=True)

from jfx.orchestrators import KubeflowDagRunner
from jfx.orchestrators._kubeflow import (
    MIN_BACKEND_VERSION,
    RESERVED_PARAMETERS,
    _spec_ir,
    check_backend_version,
    node_task_names,
)

IMAGE = "registry.example/jfx:0.1"
ROOT = "/mnt/jfx/artifacts"
DB = "postgresql+psycopg://jfx@db.example.internal/jfx"


def cluster_runner(**kwargs):
    return KubeflowDagRunner(IMAGE, pipeline_root=ROOT, metadata_url=DB, volumes={"/mnt/jfx": "jfx-pvc"}, **kwargs)


def load(path):
    """The spec as kfp loads it back: (pipeline spec dict, platform spec dict)."""
    from kfp import components

    loaded = components.load_component_from_file(path)
    return json_format.MessageToDict(loaded.pipeline_spec), json_format.MessageToDict(loaded.platform_spec)


def node_tasks(spec):
    """jfx node id -> its Kubeflow task spec (inside the run's exit handler)."""
    names = node_task_names(spec)
    tasks = {}
    for comp in spec["components"].values():
        for name, task in comp.get("dag", {}).get("tasks", {}).items():
            if name in names:
                tasks[names[name]] = task
    return tasks


def executor_of(spec, task):
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def options_pipeline():
    """make_numbers (resources, retry, timeout) -> total (no cache) ; whoami after total; rows is a parameter."""
    nums = lib.make_numbers(rows=RuntimeParameter("rows", int, default=3), note=RuntimeParameter("note", str))
    nums.with_resources(cpu=2, memory="4Gi", gpu=1).with_retry(2, backoff_s=5).with_timeout(30)
    tot = lib.total(numbers=nums.outputs["numbers"]).with_cache(False)
    who = lib.whoami().after(tot)
    return Pipeline("Opts_demo", components=[nums, tot, who])


def test_the_spec_loads_back_with_one_task_per_node_edges_and_parameters(tmp_path):
    path = cluster_runner().compile(options_pipeline(), tmp_path / "out" / "pipeline.yaml")
    spec, _ = load(path)
    assert spec["pipelineInfo"] == {"name": "opts-demo", "displayName": "Opts_demo", "description": "jfx pipeline Opts_demo"}
    tasks = node_tasks(spec)
    assert set(tasks) == {"make_numbers", "total", "whoami"}
    names = {node: name for name, node in node_task_names(spec).items()}
    assert sorted(tasks["total"]["dependentTasks"]) == [names["make_numbers"]]
    assert sorted(tasks["whoami"]["dependentTasks"]) == [names["total"]]
    assert "dependentTasks" not in tasks["make_numbers"]
    assert {n: t["taskInfo"]["name"] for n, t in tasks.items()} == {n: n for n in tasks}  # display names
    # jfx's runtime parameters are the pipeline's parameters, passed to every task; note has no default
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["rows"] == {"parameterType": "NUMBER_INTEGER", "defaultValue": 3.0, "isOptional": True}
    assert params["note"] == {"parameterType": "STRING"}
    assert set(params) == {"rows", "note", *RESERVED_PARAMETERS}
    assert params["jfx_metadata_url"]["defaultValue"] == DB and params["jfx_pipeline_root"]["defaultValue"] == ROOT
    # the IR is passed once, as a pipeline parameter every task references
    ir = _spec_ir(spec, path)
    assert ir.name == "Opts_demo" and [n.id for n in ir.nodes] == ["make_numbers", "total", "whoami"]
    for task in tasks.values():
        inputs = task["inputs"]["parameters"]
        assert inputs["rows"] == {"componentInputParameter": "pipelinechannel--rows"}
        assert inputs["jfx_job_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
        assert inputs["jfx_ir"] == {"componentInputParameter": "pipelinechannel--jfx_ir"}
        assert task.get("cachingOptions", {}).get("enableCache", False) is False  # jfx caches, not Kubeflow
        executor = spec["deploymentSpec"]["executors"][executor_of(spec, task)]["container"]
        assert executor["image"] == IMAGE
        assert "from jfx.orchestrators.entrypoint import decode_ir, kfp_run_id, run_node" in executor["command"][-1]
        assert {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"} in executor["env"]
    # the exit task records the run's end, whatever happened inside
    finish = spec["root"]["dag"]["tasks"]["jfx-finish-run"]
    assert finish["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert finish["inputs"]["parameters"]["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}


def test_node_options_become_task_settings(tmp_path):
    runner = cluster_runner(metadata_secret=("jfx-db", "url"), env={"EXTRA": "1"})
    spec, platform = load(runner.compile(options_pipeline(), tmp_path / "p.yaml"))
    tasks = node_tasks(spec)
    executors = spec["deploymentSpec"]["executors"]
    res = executors[executor_of(spec, tasks["make_numbers"])]["container"]["resources"]
    assert (res["resourceCpuRequest"], res["resourceCpuLimit"]) == ("2", "2")
    assert (res["resourceMemoryRequest"], res["resourceMemoryLimit"]) == ("4Gi", "4Gi")
    assert res["accelerator"]["resourceType"] == "nvidia.com/gpu" and res["accelerator"]["resourceCount"] == "1"
    assert "resources" not in executors[executor_of(spec, tasks["total"])]["container"]
    assert tasks["make_numbers"]["retryPolicy"] == {"maxRetryCount": 2, "backoffDuration": "5s", "backoffFactor": 2.0,
                                                    "backoffMaxDuration": "3600s"}
    assert "retryPolicy" not in tasks["total"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mine = k8s[executor_of(spec, tasks["make_numbers"])]
    assert mine["activeDeadlineSeconds"] == "150"  # 30 s timeout + the pod's grace
    assert "activeDeadlineSeconds" not in k8s[executor_of(spec, tasks["total"])]
    for executor in k8s.values():  # every task, the exit task too, mounts the volume and reads the secret
        assert executor["pvcMount"][0]["mountPath"] == "/mnt/jfx"
        assert executor["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "jfx-pvc"
        assert executor["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "url", "envVar": "JFX_METADATA_URL"}]
    assert len(k8s) == 3  # make_numbers' settings, the other nodes' (shared), the finish's
    assert executor_of(spec, tasks["total"]) == executor_of(spec, tasks["whoami"])
    # with the URL in a secret, none is compiled in
    assert spec["root"]["inputDefinitions"]["parameters"]["jfx_metadata_url"]["defaultValue"] == ""
    env = executors[executor_of(spec, tasks["total"])]["container"]["env"]
    assert {"name": "EXTRA", "value": "1"} in env


def argo_exit_hooks(spec):
    """What the backend's Argo compiler does with ALL_UPSTREAM_TASKS_COMPLETED tasks
    (backend/src/v2/compiler/argocompiler/dag.go, 2.4.0 to 2.17.0): each becomes an exit hook
    on *each* of its dependencies and leaves the Argo DAG. Returns {task: hook count}, and
    asserts no task depends on a hook (Argo refuses a dependency missing from the DAG)."""
    hooks = {}
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        tasks = dag.get("tasks", {})
        exits = {n for n, t in tasks.items()
                 if t.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"}
        for name in exits:
            hooks[name] = len(tasks[name].get("dependentTasks", []))
        for name, task in tasks.items():
            assert not set(task.get("dependentTasks", [])) & exits, f"{name} depends on an exit hook"
    return hooks


def test_an_exit_handlers_node_is_a_hook_argo_runs_once_in_its_own_pod_and_nodes_may_follow_it(tmp_path):
    pipe = flow.exit_handled()
    report = next(n for n in pipe.components if n.id == "report")
    report.with_resources(cpu=2, memory="3Gi")
    spec, _ = load(cluster_runner().compile(pipe, tmp_path / "p.yaml"))
    components = spec["components"]
    outer = components["comp-exit-handler-1"]["dag"]["tasks"]
    # the node tasks' group, and the exit node's task as its exit hook: once, after every node's task
    assert sorted(outer) == ["jfx-exit-1", "jfx-exit-block-1"]
    hook = outer["jfx-exit-1"]
    assert hook["dependentTasks"] == ["jfx-exit-block-1"] and hook["taskInfo"]["name"] == "report"
    assert hook["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert hook["inputs"]["parameters"]["jfx_exit_hook"] == {"runtimeValue": {"constant": True}}
    block = {"components": {"c": components["comp-jfx-exit-block-1"]}}
    assert sorted(node_task_names(block).values()) == ["explode", "number", "publish"]  # no other task runs it
    # its component carries the node's own settings (the finish's does not)
    resources = executor_of(spec, hook)
    assert spec["deploymentSpec"]["executors"][resources]["container"]["resources"]["cpuLimit"] == 2
    assert argo_exit_hooks(spec) == {"jfx-finish-run": 1, "jfx-exit-1": 1}

    # a node after the exit node: its ordinary task stays after its block, so the node can wait for it
    after = lib.whoami().after(report)
    spec, _ = load(cluster_runner().compile(Pipeline("flow-exit", components=[*pipe.components, after]),
                                            tmp_path / "q.yaml"))
    block = spec["components"]["comp-jfx-exit-block-1"]["dag"]["tasks"]
    names = {node: name for name, node in node_task_names({"components": {"c": {"dag": {"tasks": block}}}}).items()}
    ordinary = block[names["report"]]
    assert "triggerPolicy" not in ordinary
    assert sorted(ordinary["dependentTasks"]) == sorted(names[n] for n in ("number", "explode", "publish"))
    assert block[names["whoami"]]["dependentTasks"] == [names["report"]]
    assert spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["jfx-exit-1"]["componentRef"] == \
        ordinary["componentRef"]  # the hook runs with the same settings
    assert argo_exit_hooks(spec) == {"jfx-finish-run": 1, "jfx-exit-1": 1}
    assert spec["root"]["dag"]["tasks"]["jfx-finish-run"]["dependentTasks"] == ["exit-handler-1"]


def executor_inputs(spec):
    """Each node task's ExecutorInput parameters as the driver builds them: constants, and
    pipeline parameters at their defaults, serialized as the launcher's argument."""
    root = spec["root"]["inputDefinitions"]["parameters"]
    sizes = {}
    for node, task in node_tasks(spec).items():
        values = {}
        for name, value in task["inputs"]["parameters"].items():
            if "componentInputParameter" in value:
                values[name] = root[value["componentInputParameter"].removeprefix("pipelinechannel--")].get(
                    "defaultValue")
            else:
                values[name] = value["runtimeValue"]["constant"]
        sizes[node] = len(json.dumps({"inputs": {"parameterValues": values}}))
    return sizes


def wide(n):
    """n nodes: a chain of make_numbers -> total pairs, with a few distinct task settings."""
    nodes = []
    for i in range(n // 2):
        first = lib.make_numbers().with_id(f"make-{i}")
        if nodes:
            first.after(nodes[-1])
        if i % 5 == 0:
            first.with_resources(cpu=2, memory="1Gi")
        nodes += [first, lib.total(numbers=first.outputs["numbers"]).with_id(f"total-{i}")]
    return Pipeline("wide", components=nodes)


def test_the_spec_grows_linearly_and_tasks_share_one_component(tmp_path):
    runner = cluster_runner(metadata_secret="jfx-db", s3_secret="jfx-s3")
    sizes = {}
    for n in (50, 100, 200):
        path = runner.compile(wide(n), tmp_path / f"p{n}.yaml")
        sizes[n] = (tmp_path / f"p{n}.yaml").stat().st_size
        spec, platform = load(path)
        # one node component per distinct setting (with_resources), the finish, the run's group
        assert len(spec["components"]) == 4 and len(spec["deploymentSpec"]["executors"]) == 3
        assert len(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == 3
    per_node = [(sizes[b] - sizes[a]) / (b - a) for a, b in ((50, 100), (100, 200))]
    assert max(per_node) < 2500 and max(per_node) / min(per_node) < 1.1
    path = runner.compile(wide(500), tmp_path / "p500.yaml")
    spec, _ = load(path)
    assert len(node_tasks(spec)) == 500
    assert (tmp_path / "p500.yaml").stat().st_size < 1024 * 1024  # the Argo workflow must fit etcd's 1.5 MiB
    assert max(executor_inputs(spec).values()) < 32 * 1024  # far under Linux's 128 KiB for one argument
    assert len(_spec_ir(spec, path).nodes) == 500


def test_a_metadata_url_with_a_password_is_refused_in_one_line_without_the_password(tmp_path):
    runner = KubeflowDagRunner(IMAGE, pipeline_root=ROOT, volumes={"/mnt/jfx": "jfx-pvc"},
                               metadata_url="postgresql+psycopg://jfx:s3cr3t@db.example.internal/jfx")
    with pytest.raises(InvalidArgumentError) as err:
        runner.compile(options_pipeline(), tmp_path / "p.yaml")
    message = str(err.value)
    assert "\n" not in message and "s3cr3t" not in message and "has a password" in message
    assert "--metadata-secret SECRET:KEY" in message and "***" in message
    assert not (tmp_path / "p.yaml").exists()
    # the secret's name alone: its key "url" becomes JFX_METADATA_URL in every task, no URL in the spec
    spec, platform = load(cluster_runner(metadata_secret="jfx-db").compile(options_pipeline(), tmp_path / "p.yaml"))
    assert "s3cr3t" not in (tmp_path / "p.yaml").read_text()
    for executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        assert executor["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "url", "envVar": "JFX_METADATA_URL"}]
        assert executor["secretAsEnv"][0]["secretName"] == "jfx-db"
    assert spec["root"]["inputDefinitions"]["parameters"]["jfx_metadata_url"]["defaultValue"] == ""


@pytest.mark.parametrize("version, ok", [
    ("2.14.0", True), ("2.14.3", True), ("v2.15.0", True), ("2.17.0-rc.1", True), ("3.0", True),
    ("2.5.0", False), ("2.13.9", False), ("1.8.5", False), ("", False), ("dev", False),
])
def test_backends_older_than_the_minimum_are_refused_in_one_line(version, ok):
    assert MIN_BACKEND_VERSION == "2.14.0"
    if ok:
        check_backend_version(version)
        return
    with pytest.raises(InvalidArgumentError) as err:
        check_backend_version(version)
    assert "\n" not in str(err.value) and "2.14.0 or later" in str(err.value)


def test_for_each_copies_are_ordinary_tasks(tmp_path):
    spec, _ = load(cluster_runner().compile(flow.fan_out(), tmp_path / "p.yaml"))
    tasks = node_tasks(spec)
    assert set(tasks) == {"number", "scale-0", "scale-1", "scale-2", "total", "judge", "publish"}
    names = {node: name for name, node in node_task_names(spec).items()}
    assert sorted(tasks["total"]["dependentTasks"]) == sorted(names[f"scale-{i}"] for i in range(3))
    assert spec["root"]["inputDefinitions"]["parameters"]["threshold"]["defaultValue"] == 10.0


@pytest.mark.parametrize("url, root, volumes, fragment", [
    ("sqlite:////tmp/md.sqlite", ROOT, {"/mnt/jfx": "pvc"}, "the metadata database (SQLite)"),
    ("postgresql+psycopg://jfx@localhost/jfx", ROOT, {"/mnt/jfx": "pvc"}, "the metadata database"),
    ("mysql+pymysql://root@127.0.0.1/test", ROOT, {"/mnt/jfx": "pvc"}, "the metadata database"),
    (DB, "relative/root", {"/mnt/jfx": "pvc"}, "the pipeline root (a relative path)"),
    (DB, "/home/me/artifacts", {"/mnt/jfx": "pvc"}, "the pipeline root (on no volume mounted into the tasks)"),
    (DB, "/mnt/jfxother/a", {"/mnt/jfx": "pvc"}, "the pipeline root (on no volume mounted into the tasks)"),
])
def test_compile_refuses_what_a_cluster_cannot_reach(tmp_path, url, root, volumes, fragment):
    runner = KubeflowDagRunner(IMAGE, pipeline_root=root, metadata_url=url, volumes=volumes)
    with pytest.raises(InvalidArgumentError) as err:
        runner.compile(options_pipeline(), tmp_path / "p.yaml")
    message = str(err.value)
    assert message.startswith(fragment) and "cannot reach it" in message
    assert "local=True" in message and "kfp-local" in message
    assert not (tmp_path / "p.yaml").exists()
    # ... unless it is for kfp.local on this machine
    KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "root"), metadata_url=url, local=True).compile(
        options_pipeline(), tmp_path / "local.yaml")
    assert (tmp_path / "local.yaml").is_file()


def test_the_default_root_and_store_are_refused_for_a_cluster(tmp_path, jfx_home):
    with pytest.raises(InvalidArgumentError, match="the metadata database \\(SQLite\\)"):
        KubeflowDagRunner(IMAGE, volumes={"/mnt/jfx": "pvc"}).compile(options_pipeline(), tmp_path / "p.yaml")
    with pytest.raises(InvalidArgumentError, match="the pipeline has no pipeline_root"):
        KubeflowDagRunner(IMAGE, metadata_url=DB).compile(options_pipeline(), tmp_path / "p.yaml")


def test_bad_runner_arguments_and_unexpressible_pipelines(tmp_path):
    with pytest.raises(InvalidArgumentError, match="takes a container image"):
        KubeflowDagRunner("")
    with pytest.raises(InvalidArgumentError, match="expected an absolute mount path and a PVC name"):
        KubeflowDagRunner(IMAGE, volumes={"mnt": "pvc"})
    with pytest.raises(InvalidArgumentError, match="metadata_secret takes \\(secret name, key\\) or a secret name"):
        KubeflowDagRunner(IMAGE, metadata_secret=("only-name",))
    reserved = Pipeline("r", components=[lib.make_numbers(rows=RuntimeParameter("jfx_run_id", int, default=1))])
    with pytest.raises(InvalidPipelineError, match="runtime parameter 'jfx_run_id' cannot be a Kubeflow"):
        cluster_runner().compile(reserved, tmp_path / "p.yaml")
    bad_cpu = Pipeline("c", components=[lib.make_numbers().with_resources(cpu="lots")])
    with pytest.raises(InvalidPipelineError, match="node 'make_numbers': with_resources"):
        cluster_runner().compile(bad_cpu, tmp_path / "p.yaml")


def test_node_ids_that_are_not_identifiers_get_distinct_tasks(tmp_path):
    a = lib.make_numbers().with_id("load.v1")
    b = lib.make_numbers().with_id("load-v1")
    c = lib.total(numbers=a.outputs["numbers"]).with_id("3sum")
    spec, _ = load(cluster_runner().compile(Pipeline("ids", components=[a, b, c]), tmp_path / "p.yaml"))
    assert sorted(node_tasks(spec)) == ["3sum", "load-v1", "load.v1"]
    assert len(set(node_task_names(spec))) == 3


def test_conditions_on_parameters_are_trigger_conditions_and_conditions_on_outputs_are_not(tmp_path):
    from jfx import If

    mode = RuntimeParameter("mode", str, default="it's")
    base = flow.number(value=1)
    with If((mode == "it's") & (base.outputs["out"].value > 0)):
        gated = flow.publish(x=base.outputs["out"])
    pipe = Pipeline("cond", components=[base, gated])
    tasks = node_tasks(load(cluster_runner().compile(pipe, tmp_path / "c.yaml"))[0])
    # the part on the parameter is decided by the driver; the launcher checks the whole condition in the pod
    assert tasks["publish"]["triggerPolicy"] == {"condition": "inputs.parameter_values['mode'] == 'it\\'s'"}
    assert "triggerPolicy" not in tasks["number"]
    # kfp.local pastes a string value into Python source unescaped: for it, the pod decides
    local = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "r"), metadata_url=DB, local=True)
    assert "triggerPolicy" not in node_tasks(load(local.compile(pipe, tmp_path / "l.yaml"))[0])["publish"]
    # a condition on an output value alone: no trigger at all
    tasks = node_tasks(load(cluster_runner().compile(flow.fan_out(), tmp_path / "f.yaml"))[0])
    assert not [n for n, t in tasks.items() if "triggerPolicy" in t]


def test_a_trainer_with_workers_compiles_to_a_jaxjob_of_its_pods(tmp_path):
    from jfx.components import Trainer
    from jfx.components._example_gen import ExampleGen
    from jfx.orchestrators._jaxjob import LAUNCHER_ENV, TEMPLATE_ENV, jaxjob_manifest

    def pipeline(root=None, **runner_args):
        gen = ExampleGen(input_base="/mnt/jfx/data")
        trainer = Trainer(examples=gen.outputs["examples"], module_file="/mnt/jfx/model.py", workers=4)
        trainer.with_resources(cpu=8, memory="16Gi", gpu=1)
        return Pipeline("Dist", components=[gen, trainer], pipeline_root=root)

    runner = cluster_runner(metadata_secret=("jfx-db", "url"))
    spec, _ = load(runner.compile(pipeline(), tmp_path / "p.yaml"))
    tasks = node_tasks(spec)
    executors = spec["deploymentSpec"]["executors"]
    container = executors[executor_of(spec, tasks["Trainer"])]["container"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[LAUNCHER_ENV] == "jaxjob"
    assert "resources" not in container  # the Trainer's pod waits; the workers get the resources
    template = json.loads(env[TEMPLATE_ENV])
    pod = template["spec"]
    [worker] = pod["containers"]
    assert worker["name"] == "jax" and worker["image"] == IMAGE  # the container the operator configures
    assert worker["ports"] == [{"name": "jaxjob-port", "containerPort": 6666}]
    assert worker["resources"]["limits"] == {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert {"name": "JFX_METADATA_URL", "valueFrom": {"secretKeyRef": {"name": "jfx-db", "key": "url"}}} \
        in worker["env"]
    assert pod["volumes"] == [{"name": "jfx-volume-0", "persistentVolumeClaim": {"claimName": "jfx-pvc"}}]
    assert worker["volumeMounts"] == [{"name": "jfx-volume-0", "mountPath": "/mnt/jfx"}]
    other = executors[executor_of(spec, tasks["ExampleGen"])]["container"]
    assert LAUNCHER_ENV not in {e["name"] for e in other.get("env", [])}
    # what the Trainer's pod creates at run time from it
    job = jaxjob_manifest("jfx-trainer-1", template, 4, ["python", "-m", "jfx.components._trainer_worker", "/x"])
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "JAXJob"
    replicas = job["spec"]["jaxReplicaSpecs"]["Worker"]
    assert replicas["replicas"] == 4 and replicas["template"]["spec"]["containers"][0]["command"][-1] == "/x"

    # the workers share the pipeline root as a volume: an object-store root is refused
    s3 = KubeflowDagRunner(IMAGE, pipeline_root="s3://bucket/root", metadata_url=DB, s3_secret=("s", "a", "b"))
    with pytest.raises(InvalidPipelineError, match="workers=4 runs its workers as a JAXJob"):
        s3.compile(pipeline(), tmp_path / "s3.yaml")


def test_a_dynamic_foreach_compiles_to_a_parallel_for_over_its_source_tasks_output(tmp_path):
    spec, _ = load(cluster_runner().compile(flow.dynamic_fan_out(), tmp_path / "p.yaml"))
    tasks = node_tasks(spec)
    dags = {name: c["dag"] for name, c in spec["components"].items() if "dag" in c}
    [(loop_key, loop)] = [(k, t) for d in dags.values() for k, t in d["tasks"].items() if "parameterIterator" in t]
    source_output = loop["parameterIterator"]["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][source_output]["taskOutputParameter"]["outputParameterKey"] == "Output"
    body = dags[loop["componentRef"]["name"]]
    assert sorted(t["taskInfo"]["name"] for t in body["tasks"].values()) == ["number", "picky", "scale"]
    item = tasks["number"]["inputs"]["parameters"]["jfx_loop_item"]["componentInputParameter"]
    assert item == loop["parameterIterator"]["itemInput"]
    # the fan-in: total's list input is the loop DAG's output, gathered from each iteration's scale task
    collected = tasks["total"]["inputs"]["parameters"]["jfx_collected_0"]["taskOutputParameter"]
    assert collected["producerTask"] == loop_key
    selector = body["outputs"]["parameters"][collected["outputParameterKey"]]["valueFromParameter"]
    assert body["tasks"][selector["producerSubtask"]]["taskInfo"]["name"] == "scale"


def test_dynamic_foreach_shapes_kubeflow_cannot_express_are_refused(tmp_path):
    from jfx import Collected, ExitHandler, ForEach

    made = flow.listing(items="[1]")
    with ForEach(made.outputs["out"].items) as item:
        a = flow.number(value=item).with_id("a")
    with ForEach(made.outputs["out"].count) as item:
        b = flow.number(value=item).with_id("b")
    with pytest.raises(InvalidPipelineError, match="'listing': on Kubeflow, a node is the source of one dynamic"):
        cluster_runner().compile(Pipeline("two-values", [made, a, b]), tmp_path / "a.yaml")
    made = flow.listing(items="[1]")
    notify = flow.report()
    with ExitHandler(notify), ForEach(made.outputs["out"].items) as item:
        a = flow.number(value=item).with_id("a")
    gathered = flow.total(parts=Collected(a.outputs["out"]))
    with pytest.raises(InvalidPipelineError, match=r"'report': on Kubeflow, a jfx\.ExitHandler cannot guard"):
        cluster_runner().compile(Pipeline("guarded", [notify, made, a, gathered]), tmp_path / "b.yaml")
