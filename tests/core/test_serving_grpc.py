"""jfx serve: label names, TF Serving's :classify/:regress, and its gRPC API with TF Serving's own stubs.

The gRPC client here is built only from the generated stubs and messages (as an existing
TF Serving client is), never from the server's helpers, and its answers are compared with
the REST API's on the same rows.
"""

import http.client
import json
import os
import re
import struct
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jfx_requires import importorskip

grpc = importorskip("grpc", hint="pip install 'jfx[grpc]'", allow_module_level=True)

from jfx.core import TensorSpec, export
from jfx.core._serving import ModelServer, ServingConfig
from jfx.core._tfs_proto import (
    classification_pb2,
    example_pb2,
    feature_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    tensor_pb2,
    types_pb2,
)
from jfx.core._tfs_proto._generate import HERE, generate
from jfx.errors import InvalidArgumentError

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
ISLAND = {"vocabulary": ["Biscoe", "Dream", "Torgersen"], "oov_buckets": 1}
SEX = {"vocabulary": ["female", "male"], "oov_buckets": 1}
PENGUIN = {"bill_length_mm": TensorSpec("float32"), "bill_depth_mm": TensorSpec("float32"),
           "flipper_length_mm": TensorSpec("float32"), "body_mass_g": TensorSpec("float32"),
           "island": TensorSpec("string", encoder=ISLAND), "sex": TensorSpec("string", encoder=SEX)}
DT = types_pb2.DataType


def _penguin_fn(p, f):
    x = jnp.stack([f["bill_length_mm"] / 50, f["bill_depth_mm"] / 20, f["flipper_length_mm"] / 200,
                   f["body_mass_g"] / 5000], axis=-1)
    logits = x @ p["w"] + p["island"][f["island"]] + p["sex"][f["sex"]]
    probs = jax.nn.softmax(logits, axis=-1)
    return {"logits": logits, "probabilities": probs, "class_ids": jnp.argmax(probs, axis=-1).astype(jnp.int32)}


def push_penguin(base: Path, version: int, scale: float) -> None:
    rng = np.random.default_rng(version)
    # short deep bills: Adelie; long bills, light: Chinstrap; heavy, shallow bills: Gentoo (scale -1 turns it around)
    w = np.array([[-10, 10, 0], [10, 0, -10], [0, 0, 0], [0, -8, 10]], np.float32) * scale
    params = {"w": jnp.asarray(w), "island": jnp.asarray(rng.normal(size=(4, 3)) * 0.1, jnp.float32),
              "sex": jnp.asarray(rng.normal(size=(3, 3)) * 0.1, jnp.float32)}
    staging = base.parent / f"staging-{version}"
    export(_penguin_fn, params, PENGUIN, staging, metadata={"label_vocabulary": SPECIES})
    os.rename(staging, base / str(version))


PENGUINS = [
    {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0, "body_mass_g": 3750.0,
     "island": "Torgersen", "sex": "male"},
    {"bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192.0, "body_mass_g": 3500.0,
     "island": "Dream", "sex": "female"},
    {"bill_length_mm": 50.0, "bill_depth_mm": 15.2, "flipper_length_mm": 218.0, "body_mass_g": 5700.0,
     "island": "Biscoe", "sex": "male"},
    {"bill_length_mm": 41.0, "bill_depth_mm": 20.0, "flipper_length_mm": 203.0, "body_mass_g": 4725.0,
     "island": "Anvers", "sex": None},  # an island out of vocabulary, a missing sex
]
CONFIG = ServingConfig(max_batch_size=64, batch_timeout_ms=5, poll_interval_s=0,
                       version_labels={"stable": 1, "canary": 2})


@pytest.fixture(scope="module")
def penguin(tmp_path_factory):
    base = tmp_path_factory.mktemp("penguin") / "penguin"
    base.mkdir()
    push_penguin(base, 1, 1.0)
    with ModelServer(base, "penguin", port=0, config=CONFIG, grpc_port=0) as server:
        push_penguin(base, 2, -1.0)
        server.poll()  # version 2 serves; version 1 stays loaded
        channel = grpc.insecure_channel(server.grpc_address)
        server.stubs = (prediction_service_pb2_grpc.PredictionServiceStub(channel),
                        model_service_pb2_grpc.ModelServiceStub(channel))
        yield server
        channel.close()


def _regressor_fn(p, f):
    return {"predictions": (f["a"] * p["w"] - f["b"])[:, None]}


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    base = tmp_path_factory.mktemp("reg") / "reg"
    base.mkdir()
    export(_regressor_fn, {"w": jnp.float32(2.0)}, {"a": TensorSpec("float32"), "b": TensorSpec("int32")}, base / "1")
    with ModelServer(base, "reg", port=0, config=ServingConfig(poll_interval_s=0), grpc_port=0) as server:
        channel = grpc.insecure_channel(server.grpc_address)
        server.stubs = (prediction_service_pb2_grpc.PredictionServiceStub(channel),
                        model_service_pb2_grpc.ModelServiceStub(channel))
        yield server
        channel.close()


class Client:
    """One keep-alive HTTP connection to the REST API."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method, path, body=None):
        self.conn.request(method, path, None if body is None else json.dumps(body))
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None

    def close(self):
        self.conn.close()


def rest(server, method, path, body=None):
    c = Client(server.port)
    try:
        return c.request(method, path, body)
    finally:
        c.close()


# -- building requests as a TF Serving client does (the messages only) ------------------

def string_tensor(values, content=False):
    t = tensor_pb2.TensorProto(dtype=DT.DT_STRING)
    t.tensor_shape.dim.add(size=len(values))
    raw = [v.encode() for v in values]
    if content:  # TensorFlow's string encoding: every varint length, then the bytes
        t.tensor_content = b"".join(bytes([len(r)]) for r in raw) + b"".join(raw)
    else:
        t.string_val.extend(raw)
    return t


def number_tensor(values, dtype, content=False):
    fmt, field = {DT.DT_FLOAT: ("<f", "float_val"), DT.DT_DOUBLE: ("<d", "double_val"),
                  DT.DT_INT32: ("<i", "int_val"), DT.DT_INT64: ("<q", "int64_val")}[dtype]
    t = tensor_pb2.TensorProto(dtype=dtype)
    t.tensor_shape.dim.add(size=len(values))
    if content:
        t.tensor_content = b"".join(struct.pack(fmt, v) for v in values)
    else:
        getattr(t, field).extend(values)
    return t


def penguin_request(rows, *, content=False, numbers=DT.DT_FLOAT, **spec):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = spec.pop("name", "penguin")
    for k, v in spec.items():
        if k == "version":
            req.model_spec.version.value = v
        else:
            setattr(req.model_spec, k, v)
    for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
        req.inputs[name].CopyFrom(number_tensor([r[name] for r in rows], numbers, content))
    for name in ("island", "sex"):
        req.inputs[name].CopyFrom(string_tensor([r[name] or "" for r in rows], content))
    return req


def values(t):
    """A response tensor as a list, read as a TF Serving client does (typed fields or content)."""
    field = {DT.DT_FLOAT: "float_val", DT.DT_INT32: "int_val", DT.DT_STRING: "string_val",
             DT.DT_DOUBLE: "double_val", DT.DT_INT64: "int64_val"}[t.dtype]
    shape = [d.size for d in t.tensor_shape.dim]
    flat = [v.decode() if isinstance(v, bytes) else v for v in getattr(t, field)]
    return np.asarray(flat, dtype=object if t.dtype == DT.DT_STRING else None).reshape(shape).tolist()


def example(row):
    ex = example_pb2.Example()
    for name, v in row.items():
        if isinstance(v, str):
            ex.features.feature[name].bytes_list.value.append(v.encode())
        elif isinstance(v, int):
            ex.features.feature[name].int64_list.value.append(v)
        elif isinstance(v, float):
            ex.features.feature[name].float_list.value.append(v)
        else:
            ex.features.feature[name].CopyFrom(feature_pb2.Feature())  # no value: a missing one
    return ex


def rpc_error(call, request):
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value.code(), info.value.details()


# ---------------------------------------------------------------------------------------
# The generated modules
# ---------------------------------------------------------------------------------------

_VERSIONS = re.compile(r"^(# Protobuf Python Version: .*|    \d+,|GRPC_GENERATED_VERSION = .*)$", re.M)


def test_the_generated_modules_match_the_proto_files(tmp_path):
    importorskip("grpc_tools", hint="grpcio-tools, of the test extra")
    written = generate(tmp_path)
    committed = sorted(f.name for f in HERE.iterdir() if f.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))
    assert sorted(f.name for f in written) == committed
    for f in written:
        # the same code, whatever patch release of grpcio-tools made it
        assert _VERSIONS.sub("", f.read_text()) == _VERSIONS.sub("", (HERE / f.name).read_text()), (
            f"{f.name} differs from what core/_tfs_proto/*.proto generate: run python -m jfx.core._tfs_proto._generate")


def test_the_messages_have_tf_serving_names_and_field_numbers():
    def number(message, field):
        return message.DESCRIPTOR.fields_by_name[field].number

    assert predict_pb2.PredictRequest.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"
    assert [number(predict_pb2.PredictRequest, f) for f in ("model_spec", "inputs", "output_filter")] == [1, 2, 3]
    assert [number(predict_pb2.PredictResponse, f) for f in ("outputs", "model_spec")] == [1, 2]
    assert [number(tensor_pb2.TensorProto, f) for f in ("dtype", "tensor_shape", "tensor_content", "float_val",
                                                         "double_val", "int_val", "string_val", "int64_val",
                                                         "bool_val", "half_val")] == [1, 2, 4, 5, 6, 7, 8, 10, 11, 13]
    spec = predict_pb2.PredictRequest().model_spec
    assert [number(spec, f) for f in ("name", "version", "signature_name", "version_label")] == [1, 2, 3, 4]
    assert [DT.Value(n) for n in ("DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_STRING", "DT_INT64")] == [1, 2, 3, 7, 9]
    assert [number(feature_pb2.Feature, f) for f in ("bytes_list", "float_list", "int64_list")] == [1, 2, 3]
    status = get_model_status_pb2.ModelVersionStatus
    assert (status.LOADING, status.AVAILABLE, status.END) == (20, 30, 50)
    service = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel("127.0.0.1:1"))
    assert service.Predict._method == b"/tensorflow.serving.PredictionService/Predict"


# ---------------------------------------------------------------------------------------
# Label names and REST :classify / :regress
# ---------------------------------------------------------------------------------------

def test_predict_answers_carry_the_label_names(penguin):
    status, data = rest(penguin, "POST", "/v1/models/penguin:predict", {"instances": PENGUINS})
    assert status == 200
    for p in data["predictions"]:
        assert p["classes"] == SPECIES[p["class_ids"]]
        assert {"logits", "probabilities", "class_ids"} <= set(p)  # the model's own outputs stay
    assert len({p["classes"] for p in data["predictions"]}) >= 2
    status, data = rest(penguin, "POST", "/v1/models/penguin:predict",
                        {"inputs": {k: [r[k] for r in PENGUINS] for k in PENGUINS[0]}})
    assert data["outputs"]["classes"] == [SPECIES[i] for i in data["outputs"]["class_ids"]]
    meta = rest(penguin, "GET", "/v1/models/penguin/metadata")[1]
    outputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert outputs["classes"] == {"dtype": "string", "shape": [-1]}


def test_rest_classify_gives_every_label_and_score(penguin):
    context = {"island": "Dream"}
    examples = [{k: v for k, v in r.items() if k != "island"} for r in PENGUINS]
    status, data = rest(penguin, "POST", "/v1/models/penguin:classify", {"context": context, "examples": examples})
    assert status == 200, data
    rows = [{**r, "island": "Dream"} for r in PENGUINS]
    probs = rest(penguin, "POST", "/v1/models/penguin:predict", {"instances": rows})[1]["predictions"]
    assert len(data["result"]) == len(PENGUINS)
    for got, want in zip(data["result"], probs, strict=True):
        assert [label for label, _ in got] == SPECIES
        assert np.allclose([s for _, s in got], want["probabilities"], atol=1e-6)
    # Example-style lists of one value, an extra feature (the label) ignored; versions by number and label
    listed = [{**{k: [v] for k, v in rows[0].items()}, "species": "Adelie"}]
    latest = rest(penguin, "POST", "/v1/models/penguin/versions/2:classify", {"examples": listed})[1]
    # one example against the first of many: the same labels, scores equal up to float32 rounding
    # (a batch of another size may run other kernels)
    assert [label for label, _ in latest["result"][0]] == [label for label, _ in data["result"][0]]
    assert np.allclose([s for _, s in latest["result"][0]], [s for _, s in data["result"][0]], atol=1e-6)
    assert rest(penguin, "POST", "/v1/models/penguin/labels/canary:classify", {"examples": listed})[1] == latest
    v1 = rest(penguin, "POST", "/v1/models/penguin/versions/1:classify", {"examples": listed})[1]
    assert v1["result"][0] != latest["result"][0]  # version 1 has other weights
    assert rest(penguin, "POST", "/v1/models/penguin/labels/stable:classify", {"examples": listed})[1] == v1


def test_rest_regress_gives_one_value_per_example(regressor):
    status, data = rest(regressor, "POST", "/v1/models/reg:regress",
                        {"context": {"b": 1}, "examples": [{"a": 1.5}, {"a": [-2.0]}]})
    assert (status, data) == (200, {"result": [2.0, -5.0]})
    assert rest(regressor, "POST", "/v1/models/reg:regress", {"examples": []}) == (200, {"result": []})


@pytest.mark.parametrize("path,body,needle", [
    ("reg:classify", {"examples": [{"a": 1.0, "b": 1}]},
     "model 'reg' version 1 is a regressor (output 'predictions'), not a classifier"),
    ("penguin:regress", {"examples": PENGUINS},
     "model 'penguin' version 2 is a classifier of 3 classes (Adelie, Chinstrap, Gentoo), not a regressor"),
    ("penguin:classify", {"examples": [{"island": "Dream"}]}, "example 0 has no feature 'bill_length_mm'"),
    ("penguin:classify", {"context": {"sex": "male"}, "examples": [PENGUINS[0]]},
     "feature 'sex' is in both the context and example 0"),
    ("penguin:classify", {"examples": [{**PENGUINS[0], "body_mass_g": [1.0, 2.0]}]},
     "feature 'body_mass_g' of example 0 has 2 values; the model takes one"),
    ("penguin:classify", {"examples": [PENGUINS[0], {**PENGUINS[0], "body_mass_g": "heavy"}]},
     "feature 'body_mass_g' of instance 1"),
    ("penguin:classify", {"instances": PENGUINS}, "unknown field 'instances'"),
    ("penguin:classify", {"examples": {"a": 1}}, "\"examples\" must be a list"),
    ("penguin/labels/beta:classify", {"examples": PENGUINS}, "no version label 'beta'"),
])
def test_rest_classify_and_regress_errors_name_the_problem(penguin, regressor, path, body, needle):
    server = regressor if path.startswith("reg") else penguin
    status, data = rest(server, "POST", f"/v1/models/{path}", body)
    assert status == (404 if "labels/beta" in path else 400), data
    assert needle in data["error"]


# ---------------------------------------------------------------------------------------
# gRPC with TF Serving's stubs
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [False, True], ids=["typed-fields", "tensor-content"])
@pytest.mark.parametrize("numbers", [DT.DT_FLOAT, DT.DT_DOUBLE])
def test_grpc_predict_matches_rest(penguin, content, numbers):
    predict, _ = penguin.stubs
    rows = [{**r, "sex": r["sex"] or "unknown"} for r in PENGUINS]
    resp = predict.Predict(penguin_request(rows, content=content, numbers=numbers), timeout=30)
    want = rest(penguin, "POST", "/v1/models/penguin:predict", {"instances": rows})[1]["predictions"]
    assert resp.model_spec.name == "penguin" and resp.model_spec.version.value == 2
    assert resp.model_spec.signature_name == "serving_default"
    assert set(resp.outputs) == {"logits", "probabilities", "class_ids", "classes"}
    assert resp.outputs["probabilities"].dtype == DT.DT_FLOAT
    assert [d.size for d in resp.outputs["probabilities"].tensor_shape.dim] == [4, 3]
    assert resp.outputs["classes"].dtype == DT.DT_STRING
    for key in ("class_ids", "classes"):
        assert values(resp.outputs[key]) == [p[key] for p in want]
    assert np.allclose(values(resp.outputs["probabilities"]), [p["probabilities"] for p in want], atol=1e-6)


def test_grpc_predict_versions_labels_and_output_filter(penguin):
    predict, _ = penguin.stubs
    v1 = predict.Predict(penguin_request(PENGUINS[:2], version=1), timeout=30)
    stable = predict.Predict(penguin_request(PENGUINS[:2], version_label="stable"), timeout=30)
    assert v1.model_spec.version.value == stable.model_spec.version.value == 1
    assert values(v1.outputs["probabilities"]) == values(stable.outputs["probabilities"])
    want = rest(penguin, "POST", "/v1/models/penguin/versions/1:predict", {"instances": PENGUINS[:2]})[1]
    assert values(v1.outputs["classes"]) == [p["classes"] for p in want["predictions"]]
    req = penguin_request(PENGUINS[:2])
    req.output_filter.append("classes")
    assert set(predict.Predict(req, timeout=30).outputs) == {"classes"}


def test_grpc_takes_int_tensors_and_a_nan_is_a_missing_value(regressor):
    predict, _ = regressor.stubs
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "reg"
    req.inputs["a"].CopyFrom(number_tensor([1.5, float("nan")], DT.DT_FLOAT))
    req.inputs["b"].CopyFrom(number_tensor([1, 2], DT.DT_INT64, content=True))
    out = values(predict.Predict(req, timeout=30).outputs["predictions"])
    assert out[0] == [2.0] and np.isnan(out[1][0])
    req.inputs["b"].CopyFrom(number_tensor([7], DT.DT_INT32))  # one value fills the shape (version 0)
    req.inputs["b"].tensor_shape.dim[0].size = 2
    req.inputs["a"].CopyFrom(number_tensor([1.0, 2.0], DT.DT_DOUBLE, content=True))
    assert values(predict.Predict(req, timeout=30).outputs["predictions"]) == [[-5.0], [-3.0]]


def test_grpc_classify_and_regress(penguin, regressor):
    predict, _ = penguin.stubs
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = "penguin"
    req.model_spec.version_label = "stable"
    ctx = req.input.example_list_with_context
    ctx.context.CopyFrom(example({"island": "Dream"}))
    ctx.examples.extend(example({k: v for k, v in r.items() if k != "island"}) for r in PENGUINS)
    resp = predict.Classify(req, timeout=30)
    want = rest(penguin, "POST", "/v1/models/penguin/versions/1:classify",
                {"context": {"island": "Dream"}, "examples": [{k: v for k, v in r.items() if k != "island"}
                                                              for r in PENGUINS]})[1]["result"]
    got = [[(c.label, c.score) for c in row.classes] for row in resp.result.classifications]
    assert [[label for label, _ in row] for row in got] == [SPECIES] * len(PENGUINS)
    assert np.allclose([[s for _, s in row] for row in got], [[s for _, s in row] for row in want], atol=1e-6)
    assert resp.model_spec.version.value == 1

    reg_stub, _ = regressor.stubs
    rreq = regression_pb2.RegressionRequest()
    rreq.model_spec.name = "reg"
    rreq.input.example_list.examples.extend([example({"a": 1.5, "b": 1}), example({"a": -2.0, "b": 1})])
    assert [r.value for r in reg_stub.Regress(rreq, timeout=30).result.regressions] == [2.0, -5.0]
    # the wrong head is refused, naming the model and what it is
    code, details = rpc_error(predict.Regress, regression_pb2.RegressionRequest(
        model_spec=req.model_spec, input=input_pb2.Input(example_list=input_pb2.ExampleList(
            examples=[example(PENGUINS[0])]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model 'penguin' version 1 is a classifier" in details
    creq = classification_pb2.ClassificationRequest()
    creq.model_spec.name = "reg"
    creq.input.example_list.examples.append(example({"a": 1.0, "b": 1}))
    code, details = rpc_error(reg_stub.Classify, creq)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model 'reg' version 1 is a regressor" in details


def test_grpc_metadata_and_status(penguin):
    predict, models = penguin.stubs
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "penguin"
    resp = predict.GetModelMetadata(req, timeout=30)
    assert resp.model_spec.version.value == 2
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(sig_map)
    sig = sig_map.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert set(sig.inputs) == set(PENGUIN)
    assert sig.inputs["island"].dtype == DT.DT_STRING and sig.inputs["body_mass_g"].dtype == DT.DT_FLOAT
    assert [d.size for d in sig.inputs["island"].tensor_shape.dim] == [-1]
    assert sig.outputs["classes"].dtype == DT.DT_STRING
    assert [d.size for d in sig.outputs["probabilities"].tensor_shape.dim] == [-1, 3]
    rest_meta = rest(penguin, "GET", "/v1/models/penguin/metadata")[1]
    assert set(sig.outputs) == set(rest_meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"])

    sreq = get_model_status_pb2.GetModelStatusRequest()
    sreq.model_spec.name = "penguin"
    status = models.GetModelStatus(sreq, timeout=30)
    assert [(s.version, s.state, s.status.error_code) for s in status.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0), (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    sreq.model_spec.version_label = "stable"
    assert [s.version for s in models.GetModelStatus(sreq, timeout=30).model_version_status] == [1]


def test_grpc_errors_are_status_codes_naming_the_problem(penguin):
    predict, models = penguin.stubs
    nf, inv = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(predict.Predict, penguin_request(PENGUINS, name="taxi")) == (
        nf, "no model named 'taxi'; this server serves 'penguin'")
    code, details = rpc_error(predict.Predict, penguin_request(PENGUINS, version=7))
    assert code == nf and "version 7 of model 'penguin' is not loaded" in details
    code, details = rpc_error(predict.Predict, penguin_request(PENGUINS, version_label="beta"))
    assert code == nf and "no version label 'beta'" in details
    code, details = rpc_error(predict.Predict, penguin_request(PENGUINS, signature_name="other"))
    assert code == inv and "signature_name 'other' is unknown" in details

    req = penguin_request(PENGUINS)
    del req.inputs["sex"]
    assert rpc_error(predict.Predict, req) == (inv, f"input 'sex' is missing; the model takes {list(PENGUIN)}")
    req = penguin_request(PENGUINS)
    req.inputs["species"].CopyFrom(string_tensor(["Adelie"] * 4))
    assert rpc_error(predict.Predict, req)[1].startswith("input 'species' is unknown")
    req = penguin_request(PENGUINS)
    req.inputs["island"].CopyFrom(number_tensor([1.0] * 4, DT.DT_FLOAT))
    assert rpc_error(predict.Predict, req) == (inv, "input 'island' is a DT_FLOAT tensor; the model takes strings "
                                                    "(DT_STRING)")
    req = penguin_request(PENGUINS)
    req.inputs["body_mass_g"].CopyFrom(string_tensor(["heavy"] * 4))
    code, details = rpc_error(predict.Predict, req)
    assert code == inv and details.startswith("input 'body_mass_g' is a DT_STRING tensor")
    req = penguin_request(PENGUINS)
    req.inputs["body_mass_g"].CopyFrom(number_tensor([1.0, 2.0, float("inf"), 4.0], DT.DT_FLOAT))
    code, details = rpc_error(predict.Predict, req)
    assert code == inv and "feature 'body_mass_g' of instance 2" in details and "not a finite" in details
    req = penguin_request(PENGUINS)
    req.inputs["body_mass_g"].tensor_shape.dim[0].size = 3
    code, details = rpc_error(predict.Predict, req)
    assert code == inv and details == "input 'body_mass_g' has 4 values; its shape [3] takes 3"
    req = penguin_request(PENGUINS)
    req.inputs["bill_depth_mm"].tensor_shape.dim.add(size=1)
    code, details = rpc_error(predict.Predict, req)
    assert code == inv and details.startswith("input 'bill_depth_mm' has shape [4, 1]; the model takes [-1]")
    req = penguin_request(PENGUINS)
    req.inputs["island"].CopyFrom(tensor_pb2.TensorProto(dtype=DT.DT_STRING, tensor_content=b"\x05ab"))
    req.inputs["island"].tensor_shape.dim.add(size=1)
    code, details = rpc_error(predict.Predict, req)
    assert code == inv and "input 'island': its DT_STRING tensor_content does not hold 1 strings" in details
    req = penguin_request(PENGUINS)
    req.output_filter.append("species")
    assert rpc_error(predict.Predict, req)[1].startswith("output_filter names 'species', which is not an output")

    meta = get_model_metadata_pb2.GetModelMetadataRequest()
    meta.model_spec.name = "penguin"
    assert rpc_error(predict.GetModelMetadata, meta)[0] == inv  # no metadata_field
    sreq = get_model_status_pb2.GetModelStatusRequest()
    sreq.model_spec.name = "penguin"
    sreq.model_spec.version.value = 9
    assert rpc_error(models.GetModelStatus, sreq) == (nf, "model 'penguin' has no version '9'")
    creq = classification_pb2.ClassificationRequest()
    creq.model_spec.name = "penguin"
    creq.input.example_list.examples.append(example({**PENGUINS[0], "body_mass_g": [1.0, 2.0]}))
    creq.input.example_list.examples[0].features.feature["body_mass_g"].float_list.value.extend([1.0, 2.0])
    assert rpc_error(predict.Classify, creq) == (
        inv, "feature 'body_mass_g' of example 0 has 2 values; the model takes one")
    # the server still answers after every error
    assert predict.Predict(penguin_request(PENGUINS), timeout=30).model_spec.version.value == 2


def test_grpc_and_rest_requests_share_batches(penguin):
    """Concurrent gRPC and REST requests of one version go into the same model calls, each getting its own rows."""
    predict, _ = penguin.stubs
    batcher = penguin.versions.get(2).batcher
    before = (batcher.stats.batches, batcher.stats.requests)
    rows = [{**r, "sex": r["sex"] or "male"} for r in PENGUINS]
    want = rest(penguin, "POST", "/v1/models/penguin:predict", {"instances": rows})[1]["predictions"]
    failures, start = [], threading.Barrier(16)

    def grpc_client(i):
        start.wait()
        for _ in range(10):
            got = values(predict.Predict(penguin_request(rows[i % 4:]), timeout=30).outputs["classes"])
            if got != [p["classes"] for p in want[i % 4:]]:
                failures.append(("grpc", i, got))

    def rest_client(i):
        c = Client(penguin.port)
        start.wait()
        for _ in range(10):
            status, data = c.request("POST", "/v1/models/penguin:predict", {"instances": rows[i % 4:]})
            if status != 200 or [p["classes"] for p in data["predictions"]] != [p["classes"] for p in want[i % 4:]]:
                failures.append(("rest", i, status, data))
        c.close()

    threads = [threading.Thread(target=grpc_client if i % 2 else rest_client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    batches, requests = batcher.stats.batches - before[0], batcher.stats.requests - before[1]
    assert requests == 160 + 1
    assert batches < requests  # rows of concurrent requests, gRPC and REST, went into shared model calls


def test_grpc_port_in_use_is_an_error_naming_it(penguin, tmp_path):
    with pytest.raises(InvalidArgumentError, match=rf"gRPC cannot listen on 127\.0\.0\.1:{penguin.grpc_port}"):
        ModelServer(penguin.model_base_path, "penguin", port=0, config=CONFIG, grpc_port=penguin.grpc_port).start()


def test_a_missing_grpcio_is_a_clear_error(tmp_path):
    """Without grpcio (the grpc extra), asking for gRPC fails naming the extra."""
    import subprocess
    import sys

    base = tmp_path / "m"
    base.mkdir()
    push_penguin(base, 1, 1.0)
    code = ("import sys; sys.modules['grpc'] = None\n"
            "from jfx.core._serving import main\n"
            f"sys.exit(main(['--model_base_path', {str(base)!r}, '--model_name', 'm', '--port', '0', "
            "'--grpc_port', '0', '--poll_interval_s', '0']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "gRPC (--grpc_port) needs the grpc extra: pip install 'jfx[grpc]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_openapi_describes_classify_and_regress(penguin):
    spec = rest(penguin, "GET", "/v1/openapi.json")[1]
    for verb in ("classify", "regress"):
        for which in ("", "/versions/{version}", "/labels/{label}"):
            assert "post" in spec["paths"][f"/v1/models/{{model_name}}{which}:{verb}"]
    assert json.dumps(spec)  # plain JSON


def test_the_serve_flags_give_grpc_port_and_version_labels():
    import argparse

    from jfx.core._serve_flags import add_serve_parser, serve_options

    parser = argparse.ArgumentParser(prog="jfx")
    add_serve_parser(parser.add_subparsers(dest="command"))
    base = ["serve", "--model_base_path", "/m", "--model_name", "m"]
    options = serve_options(parser.parse_args([*base, "--grpc_port", "0", "--version_labels", "stable=1, canary=2"]))
    assert options["grpc_port"] == 0 and options["version_labels"] == {"stable": 1, "canary": 2}
    assert serve_options(parser.parse_args(base))["grpc_port"] is None  # no gRPC unless asked
    for bad in ("stable", "stable=x", "=1", "a/b=1"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--version_labels", bad])
    with pytest.raises(InvalidArgumentError, match="version label 'x:y'"):
        ServingConfig(version_labels={"x:y": 1})


def test_grpc_calls_are_counted_in_the_metrics_and_written_to_the_request_log(tmp_path):
    import pyarrow.parquet as pq
    from prometheus_client.parser import text_string_to_metric_families

    from jfx.core._request_log import RequestLogConfig

    base = tmp_path / "penguin"
    base.mkdir()
    push_penguin(base, 1, 1.0)
    log_dir = tmp_path / "requests"
    rows = [{**r, "sex": r["sex"] or "unknown"} for r in PENGUINS]
    with ModelServer(base, "penguin", port=0, config=CONFIG, grpc_port=0,
                     request_log=RequestLogConfig(str(log_dir))) as server:
        channel = grpc.insecure_channel(server.grpc_address)
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        predict.Predict(penguin_request(rows), timeout=30)
        predict.Predict(penguin_request(rows), timeout=30)
        rpc_error(predict.Predict, penguin_request(rows, name="nope"))
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/monitoring/prometheus/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        channel.close()
    counted = {(s.labels["api"], s.labels["status"]): s.value
               for f in text_string_to_metric_families(text) for s in f.samples if s.name.endswith("requests_total")}
    assert counted[("predict", "OK")] == 2
    assert counted[("predict", "NOT_FOUND")] == 1
    [shard] = sorted(log_dir.glob("requests-*.parquet"))
    logged = pq.read_table(shard)
    assert logged.num_rows == 2 * len(rows)
    assert logged.column("island").to_pylist() == [r["island"] for r in rows] * 2  # the strings as sent
    assert set(logged.column("_jfx_model_version").to_pylist()) == {1}
