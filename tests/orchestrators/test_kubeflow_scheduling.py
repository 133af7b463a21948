"""Where a node's pod may run on a cluster: accelerator type, node selectors and tolerations."""

from __future__ import annotations

import jfx_testlib as lib
import pytest
from jfx_requires import importorskip

from jfx import Pipeline
from jfx.errors import InvalidPipelineError

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

from google.protobuf import json_format

from jfx.orchestrators import KubeflowDagRunner
from jfx.orchestrators._kubeflow import node_task_names


def _compile(pipeline, path):
    """(pipeline spec, platform spec) of ``pipeline`` compiled for a cluster, as kfp loads them back."""
    from kfp import components

    KubeflowDagRunner("registry.example/jfx:0.1", pipeline_root="/mnt/jfx/artifacts", volumes={"/mnt/jfx": "jfx-pvc"},
                      metadata_url="postgresql+psycopg://jfx@db.example.internal/jfx").compile(pipeline, path)
    loaded = components.load_component_from_file(str(path))
    return json_format.MessageToDict(loaded.pipeline_spec), json_format.MessageToDict(loaded.platform_spec)


def _executors(spec):
    """jfx node id -> its executor label (wherever its task sits in the DAG)."""
    names = node_task_names(spec)
    found = {}
    for comp in spec["components"].values():
        for name, task in comp.get("dag", {}).get("tasks", {}).items():
            if name in names:
                found[names[name]] = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    return found


def test_accelerator_node_selector_and_tolerations_reach_the_pod(tmp_path):
    gpu = lib.make_numbers().with_resources(
        gpu=2, accelerator="amd.com/gpu", node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    plain = lib.total(numbers=gpu.outputs["numbers"])
    spec, platform = _compile(Pipeline("sched", components=[gpu, plain]), tmp_path / "p.yaml")
    label = _executors(spec)
    res = spec["deploymentSpec"]["executors"][label["make_numbers"]]["container"]["resources"]
    assert res["accelerator"]["resourceType"] == "amd.com/gpu" and res["accelerator"]["resourceCount"] == "2"
    pods = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    pod = pods[label["make_numbers"]]
    assert pod["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    other = pods.get(label["total"], {})
    assert "nodeSelector" not in other and "tolerations" not in other


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"accelerator": ""}, "with_resources(accelerator) takes a resource name"),
    ({"node_selector": {"zone": 3}}, "with_resources(node_selector) takes a dict of label"),
    ({"tolerations": [{"key": "k", "operator": "Maybe"}]}, "operator is 'Equal' or 'Exists'"),
    ({"tolerations": [{"key": "k", "effect": "Never"}]}, "effect is NoExecute, NoSchedule or PreferNoSchedule"),
    ({"tolerations": [{"keys": "k"}]}, "each is a dict of"),
])
def test_a_wrong_placement_names_the_node_and_the_argument(kwargs, message):
    with pytest.raises(InvalidPipelineError, match="node 'make_numbers': with_resources") as err:
        lib.make_numbers().with_resources(**kwargs)
    assert message in str(err.value)


def test_a_trainer_tracking_mlflow_in_sqlite_on_a_volume_is_warned_about(tmp_path, monkeypatch, capsys):
    from jfx.examples.penguin.pipeline import create_pipeline

    monkeypatch.setenv("JFX_PENGUIN_DATA", "/mnt/jfx/data")
    monkeypatch.setenv("JFX_PENGUIN_SERVING_DIR", "/mnt/jfx/serving")
    penguin = create_pipeline()
    for env, warned in (({}, True), ({"MLFLOW_TRACKING_URI": "http://mlflow.example:5000"}, False)):
        KubeflowDagRunner("registry.example/jfx:0.1", pipeline_root="/mnt/jfx/artifacts", volumes={"/mnt/jfx": "jfx-pvc"},
                          metadata_url="postgresql+psycopg://jfx@db.example.internal/jfx", env=env,
                          ).compile(penguin, tmp_path / "p.yaml")
        err = capsys.readouterr().err
        assert ("node 'Trainer' tracks its MLflow runs in SQLite on the volume (/mnt/jfx/artifacts/mlflow.sqlite)"
                in err) is warned, err
