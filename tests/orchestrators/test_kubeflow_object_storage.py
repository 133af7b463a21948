"""Kubeflow with an object-store pipeline root: no volume, credentials from Kubernetes secrets,
the user's code uploaded content-addressed under the root and fetched by each task, and local
paths the pods cannot see refused at compile time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jfx_requires import importorskip

from jfx import Pipeline, RuntimeParameter
from jfx import _storage as storage
from jfx.cli import main as jfx_main
from jfx.errors import InvalidArgumentError

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

from google.protobuf import json_format

from jfx.components import ExampleGen, Pusher, StatisticsGen, Trainer
from jfx.orchestrators import KubeflowDagRunner
from jfx.orchestrators._kubeflow import node_task_names
from jfx.pipelines import load_pipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

IMAGE = "registry.example/jfx:0.1"
DB = "postgresql+psycopg://jfx@db.example.internal/jfx"
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello" / "pipeline.py"

USER_PIPELINE = '''\
from pathlib import Path

from jfx import Output, Parameter, Pipeline, component
from jfx.types import Artifact

HERE = Path(__file__).resolve().parent


@component
def apply_user_fn(result: Output[Artifact], module_file: Parameter[str], value: Parameter[int] = 21):
    """Load ``double`` from the user's module file and write double(value)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_fn", module_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result.path("result.txt").write_text(str(module.double(value)))


pipeline = Pipeline("user_code", components=[apply_user_fn(module_file=str(HERE / "double.py"))])
'''


def load(path):
    """(pipeline spec, platform spec) as kfp loads the compiled file back."""
    from kfp import components

    loaded = components.load_component_from_file(str(path))
    return json_format.MessageToDict(loaded.pipeline_spec), json_format.MessageToDict(loaded.platform_spec)


def compiled_ir(spec):
    """The jfx IR the tasks read (the pipeline parameter jfx_ir), as a JSON document."""
    from jfx.orchestrators.entrypoint import decode_ir

    encoded = spec["root"]["inputDefinitions"]["parameters"]["jfx_ir"]["defaultValue"]
    return json.dumps(decode_ir(encoded).to_dict(), sort_keys=True)


def user_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "double.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "pipeline.py").write_text(USER_PIPELINE)
    return folder / "pipeline.py"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_s3_root_needs_no_volume_and_every_task_gets_the_secret_and_endpoint(s3_root, tmp_path):
    runner = KubeflowDagRunner(IMAGE, pipeline_root=s3_root, metadata_url=DB,
                               s3_secret=("mlpipeline-minio-artifact", "accesskey", "secretkey"),
                               s3_endpoint="http://minio-service.kubeflow:9000")
    spec, platform = load(runner.compile(load_pipeline(HELLO), tmp_path / "p.yaml"))
    assert spec["root"]["inputDefinitions"]["parameters"]["jfx_pipeline_root"]["defaultValue"] == s3_root
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executors = spec["deploymentSpec"]["executors"]
    assert set(k8s) == set(executors) and len(executors) == 2  # the nodes' shared one and the exit task's
    for name, executor in k8s.items():
        assert "pvcMount" not in executor
        pairs = {(k["secretKey"], k["envVar"]) for e in executor["secretAsEnv"] for k in e["keyToEnv"]}
        assert pairs == {("accesskey", "AWS_ACCESS_KEY_ID"), ("secretkey", "AWS_SECRET_ACCESS_KEY")}
        assert {e["secretName"] for e in executor["secretAsEnv"]} == {"mlpipeline-minio-artifact"}
        env = {e["name"]: e["value"] for e in executors[name]["container"]["env"]}
        assert env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio-service.kubeflow:9000"


def test_cli_compile_with_an_s3_secret_and_a_gcs_secret(s3_root, tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert jfx_main(["compile", str(HELLO), "--image", IMAGE, "-o", str(out), "--metadata-url", DB,
                     "--pipeline-root", s3_root, "--s3-secret", "jfx-s3"]) == 0
    _, platform = load(out)
    for executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        assert "pvcMount" not in executor
        [secret] = executor["secretAsEnv"]
        assert secret["secretName"] == "jfx-s3"
        assert {(k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]} == \
            {("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")}
    assert jfx_main(["compile", str(HELLO), "--image", IMAGE, "-o", str(out), "--metadata-url", DB,
                     "--pipeline-root", s3_root, "--s3-secret", "a:b"]) == 1
    assert "--s3-secret 'a:b': expected SECRET or SECRET:ACCESS_KEY_KEY:SECRET_KEY_KEY" in capsys.readouterr().err

    # a gs:// root: a key file mounted from the secret; nothing to upload (jfx's own components only)
    gcs = Pipeline("gcs", components=[
        (eg := ExampleGen(input_base="gs://data-bucket/penguins")),
        StatisticsGen(examples=eg.outputs["examples"])])
    runner = KubeflowDagRunner(IMAGE, pipeline_root="gs://bucket/jfx", metadata_url=DB, gcs_secret=("jfx-gcs", "sa.json"))
    spec, platform = load(runner.compile(gcs, tmp_path / "g.yaml"))
    for name, executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        assert "pvcMount" not in executor
        assert executor["secretAsVolume"][0]["secretName"] == "jfx-gcs"
        assert executor["secretAsVolume"][0]["mountPath"] == "/var/secrets/jfx-gcs"
        env = {e["name"]: e["value"] for e in spec["deploymentSpec"]["executors"][name]["container"]["env"]}
        assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/var/secrets/jfx-gcs/sa.json"


def run_task(ir: str, node: str, *, cwd: Path, cache: Path, url: str, root: str) -> subprocess.CompletedProcess:
    """Run one node the way its pod does: a fresh process, working folder and code cache."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "ir.json").write_text(ir)
    env = {**os.environ, "JFX_CACHE_DIR": str(cache), "JFX_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, "-m", "jfx.orchestrators.entrypoint", "node", "--ir", "ir.json",
                           "--node", node, "--run-id", "pod-run", "--metadata-url", url, "--pipeline-root", root],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_user_code_is_uploaded_by_content_and_a_task_fetches_and_checks_it(s3_root, tmp_path, capsys,
                                                                           monkeypatch):
    source = user_project(tmp_path / "project")
    runner = KubeflowDagRunner(IMAGE, pipeline_root=s3_root, metadata_url=DB, s3_secret="jfx-s3")
    spec, _ = load(runner.compile(load_pipeline(source), tmp_path / "p.yaml"))
    assert "2 file(s) uploaded, 0 already there" in capsys.readouterr().err
    ir = compiled_ir(spec)
    [node] = json.loads(ir)["nodes"]
    code = f"{s3_root}/_jfx/code"
    assert node["component"]["file"] == f"{code}/{sha(source)}/pipeline.py"
    assert node["parameters"]["module_file"] == {"value": f"{code}/{sha(source.parent / 'double.py')}/double.py"}
    assert storage.read_bytes(node["component"]["file"]) == source.read_bytes()

    # the same content again: the same objects, nothing sent
    writes = []
    with monkeypatch.context() as m:
        m.setattr(storage, "write_bytes", lambda uri, data: writes.append(uri))
        again, _ = load(runner.compile(load_pipeline(source), tmp_path / "again.yaml"))
    assert writes == [] and compiled_ir(again) == ir
    assert "0 file(s) uploaded, 2 already there" in capsys.readouterr().err

    # the pod: the user's folder is gone, a fresh working folder and code cache
    shutil.rmtree(source.parent)
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    proc = run_task(ir, "apply_user_fn", cwd=tmp_path / "pod", cache=tmp_path / "pod-cache", url=url, root=s3_root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "node apply_user_fn: complete" in proc.stdout
    [result] = [f for f in storage.list_files(f"{s3_root}/user_code/apply_user_fn/result") if f.rel.endswith("result.txt")]
    assert storage.read_text(result.uri) == "42"
    assert (tmp_path / "pod-cache" / "code" / node["parameters"]["module_file"]["value"].split("/")[-2] /
            "double.py").is_file()

    # an object changed after upload is refused by its hash, before the component runs
    storage.write_bytes(node["parameters"]["module_file"]["value"], b"def double(x):\n    return 0\n")
    proc = run_task(ir, "apply_user_fn", cwd=tmp_path / "pod2", cache=tmp_path / "pod2-cache", url=url, root=s3_root)
    assert proc.returncode == 1
    assert "the fetched bytes have sha256" in proc.stderr and "/double.py" in proc.stderr


def trainer_pipeline(input_base, module_file, base_directory, **trainer_args):
    eg = ExampleGen(input_base=input_base)
    trainer = Trainer(examples=eg.outputs["examples"], module_file=module_file, **trainer_args)
    pusher = Pusher(model=trainer.outputs["model"], push_destination={
        "filesystem": {"base_directory": base_directory, "model_name": "m"}})
    return Pipeline("pushy", components=[eg, trainer, pusher])


def test_local_paths_the_pods_cannot_see_are_refused_in_one_line(s3_root, tmp_path):
    data, model = tmp_path / "data", tmp_path / "model.py"
    data.mkdir()
    model.write_text("def run_fn(ctx):\n    pass\n")
    runner = KubeflowDagRunner(IMAGE, pipeline_root=s3_root, metadata_url=DB, volumes={"/mnt/shared": "pvc"})

    def refused(pipeline):
        with pytest.raises(InvalidArgumentError) as err:
            runner.compile(pipeline, tmp_path / "p.yaml")
        assert "\n" not in str(err.value) and "--local" in str(err.value)
        return str(err.value)

    assert refused(trainer_pipeline(str(data), str(model), "s3://b/serving")).startswith(
        f"node 'ExampleGen': parameter input_base={str(data)!r} is a local path; the Kubeflow pods cannot see it")
    assert refused(trainer_pipeline("s3://b/data", str(model), "/tmp/serving")).startswith(
        "node 'Pusher': parameter push_destination['filesystem']['base_directory']='/tmp/serving' is a local path")
    assert refused(trainer_pipeline("s3://b/data", str(tmp_path / "nope.py"), "s3://b/serving")).startswith(
        f"node 'Trainer': parameter module_file={str(tmp_path / 'nope.py')!r} is a local path that is not a file here")
    by_default = Pipeline("p", components=[ExampleGen(input_base=RuntimeParameter("data", str, default=str(data)))])
    assert refused(by_default).startswith(f"node 'ExampleGen': parameter input_base={str(data)!r} (the default of "
                                          "runtime parameter 'data') is a local path")
    # any other string that is an existing local path (here inside a dict parameter)
    in_dict = trainer_pipeline("s3://b/data", str(model), "s3://b/serving", custom_config={"cache": str(data)})
    assert refused(in_dict).startswith(f"node 'Trainer': parameter custom_config['cache']={str(data)!r} is a local")

    # on a mounted volume, on the store, or uploaded: compiles; the module file is uploaded
    ok = runner.compile(trainer_pipeline("/mnt/shared/data", str(model), "s3://b/serving"), tmp_path / "ok.yaml")
    trainer = next(n for n in json.loads(compiled_ir(load(ok)[0]))["nodes"] if n["id"] == "Trainer")
    assert trainer["parameters"]["module_file"]["value"] == f"{s3_root}/_jfx/code/{sha(model)}/model.py"
    # --local: the same pipeline is fine for kfp.local on this machine
    local = KubeflowDagRunner(IMAGE, pipeline_root=s3_root, local=True)
    local.compile(trainer_pipeline(str(data), str(model), "/tmp/serving"), tmp_path / "local.yaml")


def test_cli_refuses_a_local_input_base_in_one_line_and_local_allows_it(s3_root, tmp_path, capsys):
    source = tmp_path / "pipe.py"
    source.write_text(f"from jfx import Pipeline\nfrom jfx.components import ExampleGen\n"
                      f"pipeline = Pipeline('eg', components=[ExampleGen(input_base={str(tmp_path)!r})])\n")
    common = ["compile", str(source), "--image", IMAGE, "-o", str(tmp_path / "p.yaml"), "--pipeline-root", s3_root]
    assert jfx_main([*common, "--metadata-url", DB]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jfx: error: node 'ExampleGen': parameter input_base=")
    assert jfx_main([*common, "--local"]) == 0
    assert node_task_names(load(tmp_path / "p.yaml")[0])
