"""Pushing to, serving from and tracking MLflow runs on object storage (the test S3 server)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jfx import _storage as storage
from jfx.components._pusher import (
    CLAIM_FILE,
    PUSHED_FILE,
    FilesystemDestination,
    Pusher,
    push_to_filesystem,
)
from jfx.core import TensorSpec, export
from jfx.core._serving import ModelServer, ServingConfig
from jfx.errors import InvalidArgumentError
from jfx.types import Model, PushedModel

MODEL_FILES = {"model.stablehlo", "weights.npz", "signature.json"}


def export_tiny(path, weight: float = 2.0):
    return export(lambda p, f: {"y": f["x"] * p["w"]}, {"w": jnp.float32(weight)}, {"x": TensorSpec("float32")}, path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    return {w: export_tiny(base / f"w{w}", w) for w in (2.0, 3.0)}


def bucket_keys(uri: str) -> list[str]:
    """Every key under ``uri``, listed with boto3 (not through jfx)."""
    import boto3

    bucket, _, prefix = uri.split("://", 1)[1].partition("/")
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix):].lstrip("/") for page in pages for o in page.get("Contents", []))


def predict(server: ModelServer, x: float) -> float:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/v1/models/tiny:predict", json.dumps({"instances": [{"x": x}]}))
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        return float(body["predictions"][0])
    finally:
        conn.close()


def test_the_pusher_pushes_complete_versions_to_s3_and_records_their_uri(models, s3_root, tmp_path, jfx_home):
    base = storage.join(s3_root, "serving")
    for expected in (1, 2):
        out = PushedModel(tmp_path / f"pushed-{expected}")
        Pusher.fn(model=Model(models[2.0], id=4), pushed_model=out,
                  push_destination={"filesystem": {"base_directory": base, "model_name": "tiny"}})
        assert out.properties["pushed"] is True and out.properties["version"] == expected
        assert out.properties["pushed_uri"] == f"{base}/tiny/{expected}"
        doc = json.loads((tmp_path / f"pushed-{expected}" / PUSHED_FILE).read_text())
        assert doc["destinations"]["filesystem"]["uri"] == f"{base}/tiny/{expected}"
    keys = bucket_keys(f"{base}/tiny")
    assert keys == sorted(f"{v}/{name}" for v in (1, 2) for name in (*MODEL_FILES, CLAIM_FILE))
    claim = json.loads(storage.read_bytes(f"{base}/tiny/1/{CLAIM_FILE}"))
    assert claim["pid"] == os.getpid() and claim["host"] == socket.gethostname()
    assert storage.read_bytes(f"{base}/tiny/2/weights.npz") == (models[2.0] / "weights.npz").read_bytes()


def test_signature_json_is_uploaded_after_every_other_file(models, s3_root, monkeypatch):
    fs, _ = storage.filesystem(s3_root)
    order: list[list[str]] = []
    real_put = fs.put

    def put(lpath, rpath, *args, **kwargs):
        order.append(sorted(Path(p).name for p in ([rpath] if isinstance(rpath, str) else rpath)))
        return real_put(lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(fs, "put", put)  # the client jfx uses for this store and settings
    push_to_filesystem(models[2.0], FilesystemDestination(storage.join(s3_root, "serving"), "tiny"))
    assert order == [["model.stablehlo", "weights.npz"], ["signature.json"]]


def test_concurrent_pushers_on_s3_claim_distinct_versions(models, s3_root):
    dest = FilesystemDestination(storage.join(s3_root, "serving"), "tiny")
    results, errors = [], []
    start = threading.Barrier(6)

    def worker():
        start.wait()
        try:
            results.append(push_to_filesystem(models[2.0], dest)[0])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    keys = bucket_keys(dest.model_uri)
    for v in results:
        assert {k.split("/", 1)[1] for k in keys if k.split("/")[0] == str(v)} == {*MODEL_FILES, CLAIM_FILE}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_version_without_its_marker_is_never_served_and_a_killed_push_is_reaped(models, s3_root, jfx_home):
    base = storage.join(s3_root, "serving")
    dest = FilesystemDestination(base, "tiny")
    push_to_filesystem(models[2.0], dest)
    # a push killed mid-upload: its claim and the weights, no signature.json
    killed = storage.join(dest.model_uri, "2")
    storage.write_bytes(storage.join(killed, CLAIM_FILE), json.dumps(
        {"host": socket.gethostname(), "pid": _dead_pid(), "started_at": time.time()}).encode())
    storage.write_bytes(storage.join(killed, "weights.npz"), (models[3.0] / "weights.npz").read_bytes())
    storage.write_bytes(storage.join(killed, "model.stablehlo"), (models[3.0] / "model.stablehlo").read_bytes())
    # a folder someone else is still filling (no claim): left alone, and not served either
    storage.write_bytes(storage.join(dest.model_uri, "7", "weights.npz"), b"partial")
    with ModelServer(dest.model_uri, "tiny", port=0, config=ServingConfig(max_batch_size=2, poll_interval_s=0)) as server:
        assert [s.version for s in server.versions.status()] == [1]
        assert predict(server, 1.5) == 3.0
        # the next push removes the abandoned version and takes a new number above every folder
        version, uri = push_to_filesystem(models[3.0], dest)
        assert version == 8 and uri == storage.join(dest.model_uri, "8")
        assert not any(k.startswith("2/") for k in bucket_keys(dest.model_uri))
        assert "7/weights.npz" in bucket_keys(dest.model_uri)
        server.poll()
        assert predict(server, 1.5) == 4.5
        assert [(s.version, s.state) for s in server.versions.status()] == [(8, "AVAILABLE"), (1, "AVAILABLE")]


def test_a_claim_of_a_live_process_is_not_reaped(models, s3_root):
    dest = FilesystemDestination(storage.join(s3_root, "serving"), "tiny")
    busy = storage.join(dest.model_uri, "1", CLAIM_FILE)
    storage.write_bytes(busy, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                          "started_at": time.time()}).encode())
    assert push_to_filesystem(models[2.0], dest)[0] == 2
    assert storage.exists(busy)


def test_a_missing_bucket_fails_the_push_naming_it(models, s3_root):
    from jfx.errors import ComponentError

    with pytest.raises(ComponentError) as err:
        push_to_filesystem(models[2.0], FilesystemDestination("s3://no-such-bucket-for-jfx/serving", "tiny"))
    assert "the bucket 'no-such-bucket-for-jfx' does not exist" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_a_base_directory_with_an_unknown_scheme_is_refused():
    with pytest.raises(InvalidArgumentError, match=r"base_directory.*ftp://host/models: unknown storage scheme"):
        Pusher.fn(model=Model("/nonexistent"), pushed_model=PushedModel("/nonexistent/out"),
                  push_destination={"filesystem": {"base_directory": "ftp://host/models", "model_name": "m"}})


# ----------------------------------------------------------------------------- MLflow on S3

MODULE = textwrap.dedent('''\
    import optax
    from flax import nnx
    from jfx.core import DNNClassifier, Numeric, fit


    def run_fn(ctx):
        train = ctx.train_dataset(batch_size=32, label="y")
        evals = ctx.eval_dataset(batch_size=64, label="y")
        model = DNNClassifier({"x1": Numeric(), "x2": Numeric()}, hidden_units=(4,), n_classes=2, rngs=nnx.Rngs(0))
        history = fit(model, optax.adam(0.05), "sparse_categorical_crossentropy", train, evals, epochs=1,
                      progress=False)
        ctx.export_model(model, train)
        return history
''')


def test_mlflow_artifacts_land_on_the_bucket_when_the_root_is_s3(s3_root, tmp_path, jfx_home, monkeypatch):
    """Trainer → Pusher (to S3 and the MLflow registry) with an s3:// root and only
    AWS_ENDPOINT_URL set: the runs' artifacts are objects under <root>/mlartifacts/, the
    tracking database is local under $JFX_HOME, and the pushed version is served."""
    from mlflow.tracking import MlflowClient

    from jfx import Pipeline
    from jfx.components._example_gen import ExampleGen
    from jfx.components._trainer import Trainer
    from jfx.orchestrators import LocalDagRunner

    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=200), rng.normal(size=200)
    rows = "".join(f"{a:.4f},{b:.4f},{int(a + b > 0)}\n" for a, b in zip(x1, x2, strict=True))
    (data / "data.csv").write_text("x1,x2,y\n" + rows, encoding="utf-8")
    (tmp_path / "model.py").write_text(MODULE, encoding="utf-8")
    gen = ExampleGen(input_base=str(data), splits={"train": 3, "eval": 1})
    trainer = Trainer(examples=gen.outputs["examples"], module_file=str(tmp_path / "model.py"))
    serving = storage.join(s3_root, "serving")
    pusher = Pusher(model=trainer.outputs["model"],
                    push_destination={"filesystem": {"base_directory": serving, "model_name": "tiny"},
                                      "mlflow": {"model_name": "tiny-s3"}})
    result = LocalDagRunner(progress=False).run(Pipeline(
        "mlflow-s3", components=[gen, trainer, pusher], pipeline_root=s3_root,
        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}"))
    assert result.state == "COMPLETE", result.nodes["Trainer"].traceback or result.nodes["Pusher"].traceback
    [model] = result.nodes["Trainer"].outputs["model"]
    run_id = model.properties["mlflow_run_id"]
    database = jfx_home / "mlflow" / "s3" / s3_root.split("://", 1)[1] / "mlflow.sqlite"
    assert database.is_file() and not (Path.cwd() / "mlruns").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    location = f"{s3_root}/mlartifacts/mlflow-s3"
    assert client.get_run(run_id).info.artifact_uri == f"{location}/{run_id}/artifacts"
    keys = bucket_keys(location)
    # an MLflow Model whose jfx model is one of its artifacts
    assert {f"{run_id}/artifacts/model/artifacts/jfx_model/{name}" for name in MODEL_FILES} <= set(keys)
    assert f"{run_id}/artifacts/model/MLmodel" in keys
    assert f"{run_id}/artifacts/run/history.json" in keys
    pushed = result.nodes["Pusher"].outputs["pushed_model"][0]
    assert pushed.properties["pushed_uri"] == f"{serving}/tiny/1"
    assert pushed.properties["mlflow_run_id"] == run_id  # the Trainer's run is reused
    mv = client.get_model_version_by_alias("tiny-s3", "champion")
    assert mv.source == f"{location}/{run_id}/artifacts/model"
    with ModelServer(f"{serving}/tiny", "tiny", port=0, config=ServingConfig(max_batch_size=2)) as server:
        assert [(s.version, s.state) for s in server.versions.status()] == [(1, "AVAILABLE")]
