"""Pusher: blessed models only; atomic, monotonic filesystem versions; the MLflow registry; a real pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import jax.numpy as jnp
import jfx_requires
import numpy as np
import pytest

from jfx import Input, Output, Parameter, Pipeline, component
from jfx.components._infra_validator import InfraValidator
from jfx.components._pusher import (
    PUSHED_FILE,
    FilesystemDestination,
    Pusher,
    parse_push_destination,
    push_to_filesystem,
)
from jfx.core import TensorSpec, export
from jfx.errors import InvalidArgumentError
from jfx.orchestrators import LocalDagRunner
from jfx.types import InfraBlessing, Model, ModelBlessing, PushedModel

MODEL_FILES = {"model.stablehlo", "weights.npz", "signature.json"}


def export_tiny(path, weight: float = 2.0, size: int = 1):
    params = {"w": jnp.float32(weight), "pad": jnp.zeros((size,), jnp.float32)}
    return export(lambda p, f: {"y": f["x"] * p["w"] + p["pad"][0]}, params, {"x": TensorSpec("float32")}, path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("models") / "m")


def blessing(kind, blessed, **props):
    return kind(f"/nonexistent/{kind.__name__}", id=11, properties={"blessed": blessed, **props})


def push(model, tmp_path, destination, **blessings):
    out = PushedModel(tmp_path / f"pushed-{len(list(tmp_path.glob('pushed-*')))}")
    Pusher.fn(model=model, pushed_model=out, push_destination=destination,
              model_blessing=blessings.get("model_blessing"), infra_blessing=blessings.get("infra_blessing"))
    return out, json.loads(Path(out.uri, PUSHED_FILE).read_text())


def fs_dest(base, name="tiny"):
    return {"filesystem": {"base_directory": str(base), "model_name": name}}


# ----------------------------------------------------------------------------- filesystem


def test_filesystem_versions_are_monotonic_and_complete(model_dir, tmp_path):
    base = tmp_path / "serving"
    model = Model(model_dir, id=3)
    versions = []
    for _ in range(3):
        out, doc = push(model, tmp_path, fs_dest(base), model_blessing=blessing(ModelBlessing, True),
                        infra_blessing=blessing(InfraBlessing, True, model_id=3))
        assert out.properties["pushed"] is True and doc["pushed"] is True
        assert out.properties["destinations"] == ["filesystem"]
        assert out.properties["pushed_uri"] == str(base.resolve() / "tiny" / str(out.properties["version"]))
        assert out.properties["mlflow_model_version"] is None
        versions.append(out.properties["version"])
    assert versions == [1, 2, 3]
    assert sorted(os.listdir(base / "tiny")) == ["1", "2", "3"]
    for v in versions:
        folder = base / "tiny" / str(v)
        assert set(os.listdir(folder)) == MODEL_FILES
        assert (folder / "weights.npz").read_bytes() == (model_dir / "weights.npz").read_bytes()


def test_the_next_version_follows_the_largest_existing_number(model_dir, tmp_path):
    base = tmp_path / "serving"
    (base / "tiny" / "41").mkdir(parents=True)  # e.g. pushed by an older system
    (base / "tiny" / "notes").mkdir()
    version, folder = push_to_filesystem(model_dir, FilesystemDestination(str(base), "tiny"))
    assert version == 42 and folder == str(base.resolve() / "tiny" / "42")


def test_a_model_without_a_blessing_is_pushed(model_dir, tmp_path):
    out, _ = push(Model(model_dir), tmp_path, fs_dest(tmp_path / "serving"))
    assert out.properties["pushed"] is True and out.properties["version"] == 1


@pytest.mark.parametrize("blessings, why", [
    ({"model_blessing": blessing(ModelBlessing, False)}, "model_blessing (artifact 11) is not blessed"),
    ({"model_blessing": blessing(ModelBlessing, True),
      "infra_blessing": blessing(InfraBlessing, False, reasons=["loaded: the server could not load it"])},
     "infra_blessing (artifact 11) is not blessed (blessed=False): loaded: the server could not load it"),
    ({"infra_blessing": blessing(InfraBlessing, "yes")}, "not blessed (blessed='yes')"),
    ({"model_blessing": ModelBlessing("/nonexistent", id=2)}, "not blessed (blessed=None)"),
    ({"infra_blessing": blessing(InfraBlessing, True, model_id=99)}, "judged model artifact 99, not this model"),
])
def test_a_model_that_is_not_blessed_is_not_pushed(model_dir, tmp_path, blessings, why):
    base = tmp_path / "serving"
    out, doc = push(Model(model_dir, id=3), tmp_path, fs_dest(base), **blessings)
    assert out.properties["pushed"] is False and doc["pushed"] is False
    assert why in out.properties["reasons"][0]
    assert out.properties["version"] is None and out.properties["pushed_uri"] is None
    assert out.properties["destinations"] == []
    assert not base.exists(), "nothing may be written to the destination"


def test_concurrent_pushers_get_distinct_versions_and_leave_no_partial_folders(model_dir, tmp_path):
    base = tmp_path / "serving"
    dest = FilesystemDestination(str(base), "tiny")
    results, errors = [], []
    start = threading.Barrier(8)

    def worker():
        start.wait()
        try:
            results.append(push_to_filesystem(model_dir, dest)[0])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    # and 3 other processes at the same time
    code = ("import sys; from jfx.components._pusher import FilesystemDestination, push_to_filesystem; "
            "print(push_to_filesystem(sys.argv[1], FilesystemDestination(sys.argv[2], 'tiny'))[0])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(model_dir), str(base)], stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    for t in threads:
        t.join()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(int(out.strip()))
    assert errors == []
    assert sorted(results) == list(range(1, 12))
    assert sorted(os.listdir(base / "tiny"), key=int) == [str(v) for v in range(1, 12)], "no temporary folders left"
    for v in results:
        assert set(os.listdir(base / "tiny" / str(v))) == MODEL_FILES


def test_a_watcher_never_sees_a_version_folder_without_its_signature(tmp_path):
    big = export_tiny(tmp_path / "big", size=4_000_000)  # 16 MB of weights: the copy takes a while
    base = tmp_path / "serving"
    model_dir = base / "tiny"
    model_dir.mkdir(parents=True)
    seen_incomplete, scans = [], [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            for entry in os.scandir(model_dir):
                if entry.name.isdigit() and not os.path.exists(os.path.join(entry.path, "signature.json")):
                    seen_incomplete.append(entry.name)
            scans[0] += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(5):
            push_to_filesystem(big, FilesystemDestination(str(base), "tiny"))
    finally:
        done.set()
        watcher.join()
    assert seen_incomplete == []
    assert scans[0] > 10
    assert sorted(os.listdir(model_dir)) == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("destination, match", [
    (None, "needs a push_destination"),
    ({}, "needs a push_destination"),
    ({"s3": {}}, "unknown destination"),
    ({"filesystem": {"base_directory": "/x"}}, "'model_name'.* is required"),
    ({"filesystem": {"base_directory": "/x", "model_name": "a/b"}}, "must be a folder name"),
    ({"filesystem": {"base_directory": "/x", "model_name": "m", "version": 3}}, "unknown key"),
    ({"filesystem": "/x"}, "must be a dict"),
    ({"mlflow": {"tracking_uri": "sqlite:///x"}}, "'model_name'.* is required"),
    ({"mlflow": {"model_name": "m", "alias": 3}}, "'alias'.* must be a string"),
    ({"filesystem": None, "mlflow": None}, "names no destination"),
])
def test_a_bad_push_destination_is_refused(destination, match):
    with pytest.raises(InvalidArgumentError, match=match):
        parse_push_destination(destination)


def test_a_bad_destination_is_refused_even_for_an_unblessed_model(model_dir, tmp_path):
    with pytest.raises(InvalidArgumentError):
        push(Model(model_dir), tmp_path, {"filesytem": {}}, model_blessing=blessing(ModelBlessing, False))


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """One SQLite tracking + registry store for the module (creating its schema takes seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.sqlite'}"


def registry(uri):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_mlflow_registers_versions_and_moves_the_champion_alias(model_dir, tmp_path, mlflow_store, jfx_home):
    model = Model(model_dir, id=5)
    dest = {"mlflow": {"model_name": "tiny-registry", "tracking_uri": mlflow_store}}
    out1, doc1 = push(model, tmp_path, dest, model_blessing=blessing(ModelBlessing, True))
    out2, _ = push(model, tmp_path, dest)
    assert out1.properties["mlflow_model_version"] == 1 and out2.properties["mlflow_model_version"] == 2
    assert out1.properties["destinations"] == ["mlflow"] and out1.properties["version"] == 1
    assert out2.properties["pushed_uri"] == "models:/tiny-registry/2"
    assert doc1["destinations"]["mlflow"]["alias"] == "champion"
    assert doc1["destinations"]["mlflow"]["reused_trainer_run"] is False
    client = registry(mlflow_store)
    champion = client.get_model_version_by_alias("tiny-registry", "champion")
    assert str(champion.version) == "2" and champion.run_id == out2.properties["mlflow_run_id"]
    assert champion.tags["jfx.model_artifact_id"] == "5"
    files = {Path(a.path).name for a in client.list_artifacts(champion.run_id, "model/artifacts/jfx_model")}
    assert files == MODEL_FILES
    source = client.get_model_version_download_uri("tiny-registry", "2")
    assert source.startswith(f"file://{jfx_home}")
    assert set(os.listdir(Path(source[len("file://"):]) / "artifacts" / "jfx_model")) == MODEL_FILES


def test_the_registered_model_is_an_mlflow_model_that_pyfunc_loads_by_alias(model_dir, tmp_path, mlflow_store,
                                                                            jfx_home, monkeypatch):
    import mlflow
    import pandas as pd

    from jfx.core import load

    push(Model(model_dir, id=7), tmp_path, {"mlflow": {"model_name": "tiny-pyfunc", "tracking_uri": mlflow_store}})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    pyfunc = mlflow.pyfunc.load_model("models:/tiny-pyfunc@champion")
    assert pyfunc.metadata.get_input_schema().input_names() == ["x"]
    assert [c.name for c in pyfunc.metadata.get_output_schema().inputs] == ["y"]
    got = pyfunc.predict(pd.DataFrame({"x": [1.5, -2.0, None]}))
    want = load(model_dir)({"x": [1.5, -2.0, None]})["y"]
    np.testing.assert_array_equal(got["y"].to_numpy(), want)  # NaN in, NaN out, as jfx serve


def test_mlflow_reuses_the_trainers_run_and_pushes_to_both_destinations(model_dir, tmp_path, mlflow_store, jfx_home):
    from jfx.components._mlflow import default_artifact_location, start_run

    run = start_run(mlflow_store, "trainer-exp", run_name="Trainer",
                    artifact_location=default_artifact_location(tmp_path, "trainer-exp"))
    run.log_artifacts(model_dir, "model")  # what the Trainer logs
    run.finish()
    model = Model(model_dir, id=6, properties={"mlflow_run_id": run.run_id, "mlflow_tracking_uri": mlflow_store})
    dest = {**fs_dest(tmp_path / "serving"), "mlflow": {"model_name": "tiny-both", "alias": "prod"}}
    out, doc = push(model, tmp_path, dest)
    assert out.properties["destinations"] == ["filesystem", "mlflow"]
    assert out.properties["version"] == 1 and out.properties["mlflow_model_version"] == 1
    assert out.properties["pushed_uri"].endswith("/tiny/1")
    assert doc["destinations"]["mlflow"]["reused_trainer_run"] is True
    assert out.properties["mlflow_run_id"] == run.run_id
    mv = registry(mlflow_store).get_model_version_by_alias("tiny-both", "prod")
    location = (tmp_path / "mlartifacts" / "trainer-exp").as_uri()
    assert mv.run_id == run.run_id and mv.source == f"{location}/{run.run_id}/artifacts/model"


# ----------------------------------------------------------------------------- a real pipeline


@component
def tiny_trainer(model: Output[Model], weight: Parameter[float] = 2.0):
    export_tiny(model.uri, weight)


@component
def tiny_evaluator(model: Input[Model], blessing: Output[ModelBlessing], bless: Parameter[bool] = True):
    blessing.write_json({"blessed": bless})
    blessing.properties["blessed"] = bless


def pipeline(tmp_path, bless=True, root=None, serving=None):
    trainer = tiny_trainer()
    evaluator = tiny_evaluator(model=trainer.outputs["model"], bless=bless)
    infra = InfraValidator(model=trainer.outputs["model"], request_spec={"num_examples": 3, "max_latency_ms": 5000})
    pusher = Pusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                    infra_blessing=infra.outputs["infra_blessing"],
                    push_destination=fs_dest(serving or tmp_path / "serving"))
    return Pipeline("push", components=[trainer, evaluator, infra, pusher],
                    pipeline_root=str(root or tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


def test_a_pipeline_validates_then_pushes_a_blessed_model(tmp_path, any_root, jfx_home):
    """On an object-store root the Model is recorded on the store: InfraValidator serves it
    and the Pusher pushes it to a version folder on the store."""
    from jfx import _storage as storage
    from jfx.core import load

    serving = storage.join(any_root, "serving")
    result = LocalDagRunner(progress=False).run(pipeline(tmp_path, root=any_root, serving=serving))
    assert result.state == "COMPLETE", result
    infra = result.nodes["InfraValidator"].outputs["infra_blessing"][0]
    assert infra.properties["blessed"] is True and infra.properties["latency_p99_ms"] > 0
    [model] = result.nodes["tiny_trainer"].outputs["model"]
    assert model.uri.startswith(any_root) and infra.properties["model_id"] == model.id
    report = json.loads(storage.read_text(storage.join(infra.uri, "infra_blessing.json")))
    assert report["model_uri"] == model.uri and report["blessed"] is True
    pushed = result.nodes["Pusher"].outputs["pushed_model"][0]
    assert pushed.properties["pushed"] is True and pushed.properties["version"] == 1
    folder = storage.join(storage.check_uri(serving) if storage.is_remote(serving) else
                          str(Path(serving).resolve()), "tiny", "1")
    assert pushed.properties["pushed_uri"] == folder
    assert {f.rel for f in storage.list_files(folder)} - {".jfx-push.json"} == MODEL_FILES
    assert np.allclose(load(storage.localize(folder))({"x": [1.5]})["y"], [3.0])


# ----------------------------------------------------------------------------- ONNX


def export_boundary_classifier(path):
    """A linear 2-class model; its two scores differ by about 1e-3 of their size on the rows below,
    so int8 weights flip many of its decisions."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3,)).astype(np.float32)
    w = jnp.asarray(np.stack([w0, w0 * 1.001 + 1e-3], axis=1))

    def fn(p, f):
        x = jnp.stack([f["a"], f["b"], f["c"]], axis=-1)
        logits = x @ p["w"]
        probs = jax_softmax(logits)
        return {"logits": logits, "probabilities": probs, "class_ids": jnp.argmax(logits, -1).astype(jnp.int32)}

    spec = {k: TensorSpec("float32") for k in "abc"}
    return export(fn, {"w": w}, spec, path, metadata={"label_key": "label"})


def jax_softmax(x):
    import jax

    return jax.nn.softmax(x, axis=-1)


def boundary_examples(tmp_path, model_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jfx.core import load
    from jfx.types import Examples

    rng = np.random.default_rng(1)
    cols = {k: rng.normal(size=400).astype(np.float32) for k in "abc"}
    labels = load(model_path)(cols)["class_ids"]  # the float model is right on every row
    folder = tmp_path / "examples" / "Split-eval"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({**cols, "label": labels.astype(np.int64)}), folder / "part-00000.parquet")
    return Examples(tmp_path / "examples", id=3, properties={"splits": ["eval"]})


def push_onnx(model, tmp_path, destination, onnx, examples=None):
    out = PushedModel(tmp_path / f"pushed-{len(list(tmp_path.glob('pushed-*')))}")
    Pusher.fn(model=model, pushed_model=out, push_destination=destination, onnx=onnx, examples=examples)
    return out, json.loads(Path(out.uri, PUSHED_FILE).read_text())


def test_the_pushed_version_carries_an_onnx_export_with_the_same_outputs(tmp_path):
    jfx_requires.importorskip("jax2onnx", hint="pip install 'jfx[onnx]'")
    from jfx.core import load, load_onnx

    model_path = export_boundary_classifier(tmp_path / "model")
    out, doc = push_onnx(Model(model_path, id=9), tmp_path, fs_dest(tmp_path / "serving"), onnx={})
    assert out.properties["pushed"] is True
    version = Path(out.properties["pushed_uri"])
    assert {p.name for p in (version / "onnx").iterdir()} == {"model.onnx", "signature.json"}
    assert Path(out.properties["onnx_uri"]) == Path(out.uri) / "onnx"  # the PushedModel artifact keeps it too
    assert out.properties["onnx_quantize"] is None and doc["onnx"]["bytes"] == out.properties["onnx_bytes"]
    rows = [{"a": 0.5, "b": -1.0, "c": 2.0}, {"a": -0.1, "b": 0.3, "c": 0.0}]
    want, got = load(version)(rows), load_onnx(version / "onnx")(rows)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)
    assert got["class_ids"].tolist() == want["class_ids"].tolist()


def test_an_int8_model_that_loses_accuracy_beyond_the_threshold_is_not_pushed(tmp_path):
    jfx_requires.importorskip("jax2onnx", hint="pip install 'jfx[onnx]'")
    model_path = export_boundary_classifier(tmp_path / "model")
    examples = boundary_examples(tmp_path, model_path)
    model = Model(model_path, id=9)
    serving = tmp_path / "serving"
    out, doc = push_onnx(model, tmp_path, fs_dest(serving), {"quantize": "int8", "max_degradation": 0.01}, examples)
    check = out.properties["onnx_check"]
    assert check["metric"] == "accuracy" and check["float"] == 1.0 and check["rows"] == 400
    assert check["degradation"] > 0.01
    assert out.properties["pushed"] is False and not serving.exists()
    [reason] = out.properties["reasons"]
    assert "int8 quantization drops accuracy by" in reason and "beyond the allowed 0.01" in reason
    assert doc["onnx"]["quantize"] == "int8" and doc["onnx"]["bytes"] == out.properties["onnx_bytes"]
    # a looser threshold lets the same model through
    out, _ = push_onnx(model, tmp_path, fs_dest(serving), {"quantize": "int8", "max_degradation": 1.0}, examples)
    assert out.properties["pushed"] is True and (serving / "tiny" / "1" / "onnx" / "model.onnx").is_file()
    sig = json.loads((serving / "tiny" / "1" / "onnx" / "signature.json").read_text())
    assert sig["quantization"]["type"] == "int8" and sig["quantization"]["check"]["degradation"] > 0.01


@pytest.mark.parametrize("onnx,examples,match", [
    ({"quantise": "int8"}, False, "unknown key"),
    ({"quantize": "int4"}, False, "must be 'int8' or None"),
    ({"quantize": "int8", "max_degradation": 0.1}, False, "examples"),
    ({"max_degradation": 0.1}, True, "quantize"),
    ({"quantize": "int8", "max_degradation": -1}, True, "a number >= 0"),
    ("int8", False, "must be a dict"),
])
def test_a_bad_onnx_option_is_refused_before_anything_is_pushed(tmp_path, model_dir, onnx, examples, match):
    from jfx.types import Examples

    ex = Examples(tmp_path / "ex") if examples else None
    with pytest.raises(InvalidArgumentError, match=match):
        push_onnx(Model(model_dir, id=1), tmp_path, fs_dest(tmp_path / "serving"), onnx, ex)
    assert not (tmp_path / "serving").exists()
