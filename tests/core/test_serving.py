"""jfx serve: TF Serving's REST API over real HTTP, hot swaps, dynamic batching."""

import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from jfx.core import TensorSpec, export
from jfx.core._batching import Batcher
from jfx.core._rest import ROUTES
from jfx.core._serving import ModelServer, ServingConfig, openapi_spec
from jfx.errors import NotFoundError

CITY = {"vocabulary": ["paris", "oslo", "lima"], "oov_buckets": 1}
SIGNATURE = {"x": TensorSpec("float32"), "v": TensorSpec("float32", (2,)), "city": TensorSpec("string", encoder=CITY)}
CONFIG = ServingConfig(max_batch_size=16, batch_timeout_ms=5, poll_interval_s=0.1, version_labels={"stable": 1})


def _fn(p, f):
    return {"y": f["x"] * p["w"] + f["v"].sum(axis=-1), "city_id": f["city"]}


def push(base: Path, version: int, w: float, fn=_fn, signature=SIGNATURE) -> Path:
    """Exports next to the base path, then renames into place (as the Pusher does)."""
    staging = base.parent / f"staging-{base.name}-{version}"
    export(fn, {"w": jnp.float32(w)}, signature, staging)
    os.rename(staging, base / str(version))
    return base / str(version)


def expected_y(x, v, w):
    return x * w + sum(v)


def _reject_constant(token: str):
    raise ValueError(f"{token} is not RFC 8259 JSON")


def strict_json(raw: bytes):
    """Parses a response body as RFC 8259 JSON: NaN, Infinity and -Infinity are refused."""
    return json.loads(raw, parse_constant=_reject_constant)


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        self.conn.request(method, path, body, headers or {})
        resp = self.conn.getresponse()
        raw = resp.read()
        if raw and not (resp.getheader("Content-Type") or "").startswith("application/json"):
            return resp.status, raw, resp  # the Prometheus metrics' text
        return resp.status, (strict_json(raw) if raw else None), resp

    def predict(self, payload, version=None, name="m"):
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
        status, data, _ = self.request("POST", path, payload)
        return status, data

    def close(self):
        self.conn.close()


def row(i: int) -> dict:
    return {"x": float(i), "v": [0.5, float(i % 3)], "city": ["paris", "oslo", "lima", "rome"][i % 4]}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "m"
    base.mkdir()
    push(base, 1, 2.0)
    with ModelServer(base, "m", port=0, config=CONFIG) as server:
        yield server


@pytest.fixture
def client(served):
    c = Client(served.port)
    yield c
    c.close()


# ---------------------------------------------------------------------------------------
# The REST shape
# ---------------------------------------------------------------------------------------

def test_predict_rows_gives_one_object_per_row(client):
    status, data = client.predict({"instances": [row(1), row(2), row(7)]})
    assert status == 200
    assert data["predictions"] == [
        {"y": expected_y(1, [0.5, 1], 2), "city_id": 1},
        {"y": expected_y(2, [0.5, 2], 2), "city_id": 2},
        {"y": expected_y(7, [0.5, 1], 2), "city_id": 3},  # "rome" is out of vocabulary
    ]


def test_predict_columns_gives_outputs(client):
    status, data = client.predict({"inputs": {"x": [1.0, 2.0], "v": [[0, 0], [1, 1]], "city": ["lima", "paris"]},
                                   "signature_name": "serving_default"})
    assert status == 200
    assert data == {"outputs": {"y": [2.0, 6.0], "city_id": [2, 0]}}


def test_empty_instances_give_empty_predictions(client):
    assert client.predict({"instances": []}) == (200, {"predictions": []})


def test_one_output_model_gives_bare_values(tmp_path):
    base = tmp_path / "single"
    base.mkdir()
    push(base, 3, 10.0, fn=lambda p, f: f["x"] * p["w"], signature={"x": TensorSpec("float32")})
    with ModelServer(base, "single", port=0, config=ServingConfig(max_batch_size=4)) as server:
        c = Client(server.port)
        assert c.predict({"instances": [{"x": 1}, {"x": 2}]}, name="single") == (200, {"predictions": [10.0, 20.0]})
        # a one-input model takes bare values, as TF Serving's does
        assert c.predict({"instances": [3, 4]}, name="single") == (200, {"predictions": [30.0, 40.0]})
        assert c.predict({"inputs": [1, 2]}, name="single") == (200, {"outputs": [10.0, 20.0]})
        assert c.predict({"inputs": {"x": [5]}}, version=3, name="single") == (200, {"outputs": [50.0]})


def test_status_and_metadata(client):
    status, data, _ = client.request("GET", "/v1/models/m")
    assert status == 200
    assert data == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.request("GET", "/v1/models/m/versions/1")[1] == data
    status, meta, _ = client.request("GET", "/v1/models/m/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "m", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["v"] == {"dtype": "float32", "shape": [-1, 2]}
    assert sig["inputs"]["city"]["encoder"]["vocabulary"] == CITY["vocabulary"]
    assert sig["outputs"] == {"y": {"dtype": "float32", "shape": [-1]}, "city_id": {"dtype": "int32", "shape": [-1]}}
    assert client.request("GET", "/v1/models/m/versions/1/metadata")[1] == meta


def test_keep_alive_and_http_1_0(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port)
    conn.connect()
    sock = conn.sock
    for i in range(20):
        conn.request("POST", "/v1/models/m:predict", json.dumps({"instances": [row(i)]}))
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
        resp.read()
        assert conn.sock is sock  # the same connection throughout
    conn.close()
    import socket

    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET /v1/models/m HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"model_version_status" in data


def test_chunked_body_is_read(served):
    body = json.dumps({"instances": [row(1)]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", served.port)
    conn.request("POST", "/v1/models/m:predict", iter([body[:10], body[10:]]), {"Transfer-Encoding": "chunked"},
                 encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert strict_json(resp.read())["predictions"][0]["city_id"] == 1


# ---------------------------------------------------------------------------------------
# Bad requests: 4xx with a JSON error naming the field, never a 500
# ---------------------------------------------------------------------------------------

BAD_BODIES = [
    (b"", 400, "empty"),
    (b"   ", 400, "empty"),
    (b"{", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b"null", 400, "JSON object"),
    (b"{}", 400, "neither \"instances\" nor \"inputs\""),
    (b'{"instance": []}', 400, "'instance'"),
    (b'{"instances": [], "inputs": {}}', 400, "only one"),
    (b'{"instances": {"x": 1}}', 400, "\"instances\" must be a list"),
    (b'{"instances": [1]}', 400, "instance 0"),
    (b'{"instances": [{"x": 1, "v": [1, 2]}]}', 400, "'city'"),
    (b'{"instances": [{"x": 1, "v": [1, 2], "city": "oslo", "z": 1}]}', 400, "'z'"),
    (b'{"instances": [{"x": "one", "v": [1, 2], "city": "oslo"}]}', 400, "'x'"),
    (b'{"instances": [{"x": {"a": 1}, "v": [1, 2], "city": "oslo"}]}', 400, "'x'"),
    (b'{"instances": [{"x": 1, "v": [1, 2, 3], "city": "oslo"}]}', 400, "'v'"),
    (b'{"instances": [{"x": 1, "v": [1, 2], "city": "oslo"}, {"x": 1, "v": [1], "city": "oslo"}]}', 400, "'v'"),
    (b'{"instances": [{"x": 1, "v": [1, 2], "city": 7}]}', 400, "'city'"),
    (b'{"instances": [{"x": 1e999999, "v": [1, 2], "city": "a"}]}', 400, "'x'"),  # inf is not a number
    (b'{"instances": [{"x": 1' + b"0" * 400 + b', "v": [1, 2], "city": "a"}]}', 400, "'x'"),
    (b'{"inputs": [1, 2]}', 400, "\"inputs\" must be an object"),
    (b'{"inputs": {"x": [1], "v": [[1, 2]]}}', 400, "'city'"),
    (b'{"inputs": {"x": [1, 2], "v": [[1, 2]], "city": ["a"]}}', 400, "batch sizes"),  # ragged columns
    (b'{"inputs": {"x": 1, "v": [[1, 2]], "city": ["a"]}}', 400, "'x'"),
    (b'{"inputs": {"x": [1], "v": [[1, 2]], "city": ["a"], "w": [1]}}', 400, "'w'"),
    (b'{"inputs": {"x": [1], "v": [[1, 2]], "city": [["a"]]}}', 400, "'city'"),
    (b'{"instances": [], "signature_name": "other"}', 400, "signature_name"),
    (b"[" * 100_000, 400, "JSON"),
]


@pytest.mark.parametrize("body,status,needle", BAD_BODIES, ids=[repr(b[0][:30]) for b in BAD_BODIES])
def test_bad_bodies_get_4xx_naming_the_field(client, body, status, needle):
    got, data, resp = client.request("POST", "/v1/models/m:predict", body, {"Content-Type": "application/json"})
    assert got == status, data
    if status != 200:
        assert resp.getheader("Content-Type") == "application/json"
        assert set(data) == {"error"} and needle in data["error"], data


@pytest.mark.parametrize("method,path,status", [
    ("POST", "/v1/models/other:predict", 404),
    ("GET", "/v1/models/other", 404),
    ("GET", "/v1/models/other/metadata", 404),
    ("POST", "/v1/models/m/versions/9:predict", 404),
    ("POST", "/v1/models/m/versions/abc:predict", 404),
    ("GET", "/v1/models/m/versions/9", 404),
    ("GET", "/v1/models/m/versions/9/metadata", 404),
    ("POST", "/v1/models/m:explain", 404),
    ("GET", "/v1/nothing", 404),
    ("GET", "/", 404),
    ("GET", "/v1/models/m:predict", 405),
    ("PUT", "/v1/models/m:predict", 405),
    ("DELETE", "/v1/models/m", 405),
    ("POST", "/v1/models/m", 405),
    ("POST", "/v1/models/m/metadata", 405),
    ("HEAD", "/v1/models/m", 405),
    ("FOO", "/v1/models/m", 405),
    ("OPTIONS", "/v1/openapi.json", 405),
])
def test_wrong_routes_and_methods(served, method, path, status):
    c = Client(served.port)
    c.conn.request(method, path, b"{}" if method in ("POST", "PUT") else None)
    resp = c.conn.getresponse()
    raw = resp.read()
    assert resp.status == status, raw
    if method != "HEAD":
        assert "error" in strict_json(raw)
    if status == 405:
        assert resp.getheader("Allow")
    # the connection is still usable afterwards (the body was consumed)
    assert c.request("GET", "/v1/models/m")[0] == 200
    c.close()


def test_malformed_http_gets_4xx(served):
    import socket

    for raw in [b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
                b"POST /v1/models/m:predict HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                b"POST /v1/models/m:predict HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n",
                b"POST /v1/models/m:predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
            s.sendall(raw)
            data = s.recv(65536)
        status = int(data.split()[1])
        assert 400 <= status < 500, (raw, data)


def _random_json(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "null", "list", "dict", "feature"] if depth < 4 else ["int", "str", "null"]
    k = rng.choice(kinds)
    if k == "int":
        return rng.choice([0, 1, -1, 2**31, 2**70, rng.randint(-100, 100)])
    if k == "float":
        return rng.choice([0.5, -1e300, 1e-300, float("nan"), float("inf")])
    if k == "str":
        return rng.choice(["", "x", "oslo", "instances", "inputs", "\u2603", "1.5"])
    if k == "bool":
        return rng.random() < 0.5
    if k == "null":
        return None
    if k == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if k == "dict":
        keys = ["x", "v", "city", "instances", "inputs", "signature_name", "zzz"]
        return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return {"instances": [{"x": _random_json(rng, depth + 1), "v": _random_json(rng, depth + 1),
                           "city": _random_json(rng, depth + 1)}]}


def test_fuzzed_bodies_never_get_a_5xx(client):
    rng = random.Random(0)
    statuses = set()
    for _ in range(400):
        body = json.dumps(_random_json(rng))
        if rng.random() < 0.1:  # and some broken JSON
            cut = rng.randint(0, len(body))
            body = body[:cut]
        status, data, _ = client.request("POST", "/v1/models/m:predict", body)
        assert status < 500, (body, data)
        statuses.add(status)
    assert 400 in statuses


# ---------------------------------------------------------------------------------------
# Numbers: only finite JSON numbers of the feature's type; every answer is strict JSON
# ---------------------------------------------------------------------------------------

TYPED = {"a": TensorSpec("float32"), "b": TensorSpec("float32"), "k": TensorSpec("int32"),
         "v": TensorSpec("float32", (2,))}
GOOD = {"a": 1.0, "b": 2, "k": 3, "v": [0.5, 1]}


def _typed_fn(p, f):
    return {"y": f["a"] * p["w"] + f["b"] + f["k"] + f["v"].sum(axis=-1), "log_a": jnp.log(f["a"])}


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """A model with scalar float features (read as one matrix), an int feature and a vector."""
    base = tmp_path_factory.mktemp("typed") / "t"
    base.mkdir()
    push(base, 1, 2.0, fn=_typed_fn, signature=TYPED)
    with ModelServer(base, "t", port=0, config=CONFIG) as server:
        yield server


def _post_t(server, body):
    c = Client(server.port)
    try:
        status, data, _ = c.request("POST", "/v1/models/t:predict", body)
    finally:
        c.close()
    return status, data


BAD_NUMBERS = [  # (feature, the JSON text of its value, what the error says)
    ("a", "NaN", "NaN"), ("a", "Infinity", "Infinity"), ("a", "-Infinity", "-Infinity"),
    ("a", "1e999", "float32"), ("a", "1e300", "float32"), ("a", "true", "boolean"),
    ("a", '"NaN"', "string"), ("a", '"1.5"', "string"), ("a", "[1.0]", "list"),
    ("b", "false", "boolean"),
    ("k", "1.5", "whole"), ("k", str(2 ** 70), "int32"), ("k", str(2 ** 31), "int32"), ("k", "true", "boolean"),
    ("k", "null", "null"), ("k", '"3"', "string"), ("k", "NaN", "NaN"), ("k", "1e999", "int32"),
    ("v", "[1, NaN]", "NaN"), ("v", "[1, true]", "boolean"), ("v", "[1, 1e999]", "float32"),
    ("v", '[1, "2"]', "string"), ("v", "[1]", "shape"), ("v", "1.0", "shape"),
    ("k", "1" + "0" * 400, "int32"), ("a", "-1" + "0" * 400, "float32"),
]


@pytest.mark.parametrize("form", ["instances", "inputs"])
@pytest.mark.parametrize("feature,text,needle", BAD_NUMBERS, ids=[f"{f}={t}" for f, t, _ in BAD_NUMBERS])
def test_non_finite_and_mistyped_numbers_get_400_naming_instance_and_feature(typed, form, feature, text, needle):
    rows = [dict(GOOD), dict(GOOD), dict(GOOD), dict(GOOD)]
    rows[2][feature] = "@@"  # every instance is checked, not only the first
    if form == "instances":
        doc = json.dumps({"instances": rows})
    else:
        doc = json.dumps({"inputs": {n: [r[n] for r in rows] for n in TYPED}})
    body = doc.replace('"@@"', text).encode()
    status, data = _post_t(typed, body)
    assert status == 400, data
    message = data["error"]
    assert "instance 2" in message and f"'{feature}'" in message and needle in message, message


def test_null_is_a_missing_float_and_non_finite_outputs_answer_null(typed):
    rows = [{**GOOD, "a": -1.0}, {**GOOD, "a": 0.0}, {**GOOD, "a": None}, GOOD, {**GOOD, "k": 3.0}]
    status, data = _post_t(typed, {"instances": rows})
    assert status == 200, data
    preds = data["predictions"]
    assert preds[0] == {"y": -2.0 + 2 + 3 + 1.5, "log_a": None}  # log(-1) is NaN
    assert preds[1] == {"y": 0.0 + 2 + 3 + 1.5, "log_a": None}  # log(0) is -inf
    assert preds[2] == {"y": None, "log_a": None}  # a missing float feature is NaN to the model
    assert preds[3] == preds[4] == {"y": 2.0 + 2 + 3 + 1.5, "log_a": 0.0}
    status, data = _post_t(typed, {"inputs": {n: [r[n] for r in rows] for n in TYPED}})
    assert status == 200, data
    assert data["outputs"]["log_a"] == [None, None, None, 0.0, 0.0]
    assert data["outputs"]["y"][2] is None


def test_scalar_float_rows_with_a_non_finite_value_are_refused(client):
    # the model of `served` reads its scalar float feature x through the one-matrix path
    rows = [row(i) for i in range(6)]
    body = json.dumps({"instances": rows}).replace('"x": 4.0', '"x": -1e400').encode()
    status, data, _ = client.request("POST", "/v1/models/m:predict", body)
    assert status == 400 and "instance 4" in data["error"] and "'x'" in data["error"], data
    assert client.predict({"instances": [{**row(1), "x": True}]})[0] == 400
    assert client.predict({"instances": [{**row(1), "x": 7}]}) == (200, {"predictions": [
        {"y": expected_y(7, [0.5, 1], 2), "city_id": 1}]})


# ---------------------------------------------------------------------------------------
# OpenAPI: every route answered is described, and every description is answered
# ---------------------------------------------------------------------------------------

def test_openapi_matches_the_routes_answered(served, client):
    status, spec, _ = client.request("GET", "/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert client.request("GET", "/openapi.json")[1] == spec
    assert spec == json.loads(json.dumps(openapi_spec("m")))
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item if method != "parameters"}
    # every described operation answers (not 404/405) with real values filled in; this
    # model is neither a classifier nor a regressor, so classify and regress say so
    for path, method in described:
        concrete = path.replace("{model_name}", "m").replace("{version}", "1").replace("{label}", "stable")
        if concrete.endswith((":classify", ":regress")):
            got, data, _ = client.request(method, concrete, {"examples": [row(1)]})
            assert got == 400 and "version 1 is neither a classifier" in data["error"], (concrete, got, data)
            continue
        body = {"instances": [row(1)]} if method == "POST" else None
        got = client.request(method, concrete, body)[0]
        assert got == 200, (method, concrete, got)
        for other in {"GET", "POST", "PUT", "DELETE"} - {method}:
            if (path, other) not in described:
                assert client.request(other, concrete, b"{}" if other != "GET" else None)[0] == 405
    # every route the server answers is described, with the same methods
    answered = {(template, m) for template, _, methods in ROUTES for m in methods}
    assert answered == described
    # and the router answers nothing outside them
    for junk in ["/v1", "/v1/models", "/v1/models/", "/v1/models/m/", "/v1/models/m/versions",
                 "/v1/models/m/versions/1/", "/v1/models/m:predict/x", "/v1/openapi", "/openapi.yaml"]:
        assert client.request("GET", junk)[0] == 404, junk


# ---------------------------------------------------------------------------------------
# Dynamic batching
# ---------------------------------------------------------------------------------------

def _hammer(port, n_threads, per_thread, rows_per_request, version=None):
    """Each thread sends distinct rows and checks it gets exactly its own predictions back."""
    failures, done = [], []

    def work(t):
        c = Client(port)
        try:
            for j in range(per_thread):
                base = (t * per_thread + j) * rows_per_request
                rows = [row(base + k) for k in range(rows_per_request)]
                status, data = c.predict({"instances": rows}, version=version)
                if status != 200:
                    failures.append((status, data))
                    continue
                got = [p["y"] for p in data["predictions"]]
                want = [expected_y(r["x"], r["v"], 2.0) for r in rows]
                if got != want:
                    failures.append((t, j, got, want))
            done.append(t)
        finally:
            c.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not failures, failures[:3]
    assert len(done) == n_threads


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(served):
    batcher = served.versions.latest.batcher
    before = (batcher.stats.batches, batcher.stats.requests)
    _hammer(served.port, n_threads=32, per_thread=15, rows_per_request=3)
    batches = batcher.stats.batches - before[0]
    requests = batcher.stats.requests - before[1]
    assert requests == 32 * 15
    assert batches < requests  # some calls carried several requests
    assert batcher.stats.largest <= CONFIG.max_batch_size


def test_batching_off_is_also_correct(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    push(base, 1, 2.0)
    with ModelServer(base, "m", port=0, config=ServingConfig(enable_batching=False)) as server:
        assert server.versions.latest.batcher is None
        _hammer(server.port, n_threads=8, per_thread=10, rows_per_request=2)


def test_a_request_bigger_than_max_batch_size_runs_alone(client, served):
    rows = [row(i) for i in range(CONFIG.max_batch_size * 2 + 1)]
    status, data = client.predict({"instances": rows})
    assert status == 200
    assert [p["y"] for p in data["predictions"]] == [expected_y(r["x"], r["v"], 2.0) for r in rows]


def test_batcher_unit():
    calls = []

    def predict(cols):
        calls.append(len(cols["x"]))
        if (cols["x"] < 0).any():
            raise RuntimeError("boom")
        return {"y": cols["x"] * 2}

    b = Batcher(predict, max_batch_size=4, batch_timeout_ms=50)
    parts = [{"x": np.array([i, i], np.float32)} for i in range(2)] + [{"x": np.array([7.0], np.float32)}]
    results = b.run_batch(parts, [2, 2, 1])
    assert [r["y"].tolist() for r in results] == [[0.0, 0.0], [2.0, 2.0], [14.0]]  # each gets its own rows
    assert calls == [5]  # one model call
    assert (b.stats.batches, b.stats.requests, b.stats.rows, b.stats.largest) == (1, 3, 5, 5)
    with pytest.raises(RuntimeError, match="boom"):
        b.run_batch([{"x": np.array([1.0])}, {"x": np.array([-1.0])}], [1, 1])
    assert b.stats.batches == 2  # a failed call is counted too
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(predict, max_batch_size=0)


# ---------------------------------------------------------------------------------------
# Versions: pick-up, hot swap, failures, unloading
# ---------------------------------------------------------------------------------------

def _wait_for(cond, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _hot_swap_under_load(port: int, base, status_of, push=push) -> None:
    """Threads hammer predict while version 2 is pushed: every answer is 200 and from v1 or v2."""
    stop = threading.Event()
    seen: list[set] = []
    failures: list = []

    def work(t):
        c = Client(port)
        versions = set()
        i = 0
        try:
            while not stop.is_set():
                r = row(t * 100_000 + i)
                i += 1
                status, data = c.predict({"instances": [r]})
                if status != 200:
                    failures.append((status, data))
                    continue
                y = data["predictions"][0]["y"]
                match = [w for w in (2.0, 3.0) if y == expected_y(r["x"], r["v"], w)]
                if len(match) != 1 and r["x"] != 0:
                    failures.append(("neither version", r, y))
                versions.update(match)
        finally:
            c.close()
            seen.append(versions)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    push(base, 2, 3.0)
    _wait_for(lambda: any(s["version"] == "2" and s["state"] == "AVAILABLE" for s in status_of()),
              what="version 2 to load")
    time.sleep(0.5)
    stop.set()
    for th in threads:
        th.join(60)
    assert not failures, failures[:3]
    assert set().union(*seen) == {2.0, 3.0}
    c = Client(port)
    r = row(5)
    status, data = c.predict({"instances": [r]})
    assert status == 200 and data["predictions"][0]["y"] == expected_y(r["x"], r["v"], 3.0)
    status, data = c.predict({"instances": [r]}, version=1)  # the old version still answers by number
    assert status == 200 and data["predictions"][0]["y"] == expected_y(r["x"], r["v"], 2.0)
    c.close()


def test_hot_swap_under_load_in_process(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    push(base, 1, 2.0)
    with ModelServer(base, "m", port=0, config=CONFIG) as server:
        _hot_swap_under_load(server.port, base, lambda: Client(server.port).request("GET", "/v1/models/m")[1][
            "model_version_status"])


def test_partial_and_broken_versions_do_not_replace_the_serving_one(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    push(base, 1, 2.0)
    (base / "not-a-version").mkdir()
    with ModelServer(base, "m", port=0, config=ServingConfig(max_batch_size=4, poll_interval_s=0)) as server:
        c = Client(server.port)
        (base / "5").mkdir()  # half-written: no signature.json yet
        (base / "5" / "weights.npz").write_bytes(b"partial")
        server.poll()
        assert [s["version"] for s in c.request("GET", "/v1/models/m")[1]["model_version_status"]] == ["1"]
        (base / "5" / "signature.json").write_text("{not json")  # complete but broken
        server.poll()
        status = c.request("GET", "/v1/models/m")[1]["model_version_status"]
        assert status[0]["version"] == "5" and status[0]["state"] == "END"
        assert status[0]["status"]["error_code"] != "OK" and status[0]["status"]["error_message"]
        assert status[1] == {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        assert c.predict({"instances": [row(1)]})[1]["predictions"][0]["y"] == expected_y(1, [0.5, 1], 2.0)
        assert c.predict({"instances": [row(1)]}, version=5)[0] == 404
        # the Pusher replaces the broken folder with a good one: it loads
        shutil.rmtree(base / "5")
        push(base, 5, 3.0)
        server.poll()
        assert c.predict({"instances": [row(1)]})[1]["predictions"][0]["y"] == expected_y(1, [0.5, 1], 3.0)
        c.close()


def test_old_versions_are_unloaded_beyond_max_loaded_versions(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    push(base, 1, 2.0)
    config = ServingConfig(max_batch_size=4, poll_interval_s=0, max_loaded_versions=2)
    with ModelServer(base, "m", port=0, config=config) as server:
        c = Client(server.port)
        push(base, 2, 3.0)
        push(base, 3, 4.0)
        server.poll()
        states = {s["version"]: s["state"] for s in c.request("GET", "/v1/models/m")[1]["model_version_status"]}
        assert states == {"3": "AVAILABLE", "1": "AVAILABLE"}  # 2 was skipped: 3 was newer when it was found
        push(base, 4, 5.0)
        server.poll()
        states = {s["version"]: s["state"] for s in c.request("GET", "/v1/models/m")[1]["model_version_status"]}
        assert states == {"4": "AVAILABLE", "3": "AVAILABLE", "1": "END"}
        assert c.predict({"instances": [row(0)]}, version=1)[0] == 404
        assert c.predict({"instances": [row(1)]}, version=3)[1]["predictions"][0]["y"] == expected_y(1, [0.5, 1], 4.0)
        shutil.rmtree(base / "4")  # a removed version is unloaded; the next newest serves
        server.poll()
        assert c.predict({"instances": [row(1)]})[1]["predictions"][0]["y"] == expected_y(1, [0.5, 1], 4.0)
        c.close()


def test_no_version_yet_is_503_then_serves_once_pushed(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    with ModelServer(base, "m", port=0, config=ServingConfig(max_batch_size=2, poll_interval_s=0.05)) as server:
        c = Client(server.port)
        status, data = c.predict({"instances": [row(1)]})
        assert status == 503 and "no version" in data["error"]
        assert c.request("GET", "/v1/models/m")[1] == {"model_version_status": []}
        push(base, 1, 2.0)
        _wait_for(lambda: c.predict({"instances": [row(1)]})[0] == 200, what="version 1")
        c.close()


def test_server_arguments_are_checked(tmp_path):
    with pytest.raises(NotFoundError, match="not a folder"):
        ModelServer(tmp_path / "missing", "m")
    with pytest.raises(ValueError, match="max_batch_size"):
        ServingConfig(max_batch_size=0)


def test_binds_loopback_by_default(tmp_path):
    server = ModelServer(tmp_path, "m", port=0)
    assert server.url.startswith("http://127.0.0.1:")


# ---------------------------------------------------------------------------------------
# The command in a subprocess
# ---------------------------------------------------------------------------------------

def _serve_command() -> list[str]:
    """``python -m jfx serve`` once the CLI has the subcommand, else the module's own entry."""
    from jfx import cli

    sub = next((a for a in cli._parser()._actions if a.__class__.__name__ == "_SubParsersAction"), None)
    if sub is not None and "serve" in sub.choices:
        return [sys.executable, "-m", "jfx", "serve"]
    return [sys.executable, "-m", "jfx.core._serving", "serve"]


def push_to_store(base: str, version: int, w: float) -> str:
    """Exports locally, then pushes to the store as the Pusher does (signature.json last)."""
    from jfx import _storage as storage
    from jfx.components._pusher import FilesystemDestination, push_to_filesystem

    staging = Path(os.environ["JFX_CACHE_DIR"]).parent / f"staging-{version}"
    export(_fn, {"w": jnp.float32(w)}, SIGNATURE, staging)
    pushed, uri = push_to_filesystem(staging, FilesystemDestination(storage.parent(base), storage.basename(base)))
    assert pushed == version, (pushed, version)
    return uri


def test_jfx_serve_in_a_subprocess_with_a_hot_swap_under_load(tmp_path, any_root, monkeypatch):
    """``jfx serve`` on a local folder, and on an ``s3://`` prefix it polls and downloads from."""
    from jfx import _storage as storage

    monkeypatch.setenv("JFX_CACHE_DIR", str(tmp_path / "cache"))
    if storage.is_remote(any_root):
        base, pusher = storage.join(any_root, "models", "m"), push_to_store
    else:
        base, pusher = Path(any_root) / "m", push
        base.mkdir(parents=True)
    pusher(base, 1, 2.0)
    cmd = [*_serve_command(), "--model_base_path", str(base), "--model_name", "m", "--port", "0",
           "--max_batch_size", "8", "--poll_interval_s", "0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v1/models/m", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(m.group(1))
        c = Client(port)
        assert c.request("GET", "/v1/models/m")[1]["model_version_status"][0]["state"] == "AVAILABLE"
        assert c.predict({"instances": [{"x": 1}]})[0] == 400
        c.close()
        _hot_swap_under_load(port, base, lambda: Client(port).request("GET", "/v1/models/m")[1]["model_version_status"],
                             push=pusher)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("where", ["missing bucket", "unknown scheme"])
def test_jfx_serve_with_a_bad_model_base_path_on_a_store_is_one_line(s3_root, where):
    base = ("s3://no-such-bucket-for-jfx/models/m" if where == "missing bucket" else "ftp://host/models/m")
    proc = subprocess.run([*_serve_command(), "--model_base_path", base, "--model_name", "m", "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    needle = "the bucket 'no-such-bucket-for-jfx' does not exist" if where == "missing bucket" else \
        "unknown storage scheme 'ftp'"
    assert lines[0].startswith("jfx: error: ") and base in lines[0] and needle in lines[0], lines[0]


def test_idle_keep_alive_connections_are_closed(tmp_path, monkeypatch):
    import socket

    import jfx.core._http as http_front

    monkeypatch.setattr(http_front, "IDLE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(http_front, "_SWEEP_S", 0.1)
    base = tmp_path / "m"
    base.mkdir()
    push(base, 1, 2.0)
    with ModelServer(base, "m", port=0, config=ServingConfig(poll_interval_s=0)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(1.0)
            assert s.recv(65536) == b""  # the server closed the idle connection
        busy = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for _ in range(5):  # a connection in use stays open
            busy.request("GET", "/v1/models/m")
            assert busy.getresponse().read()
            time.sleep(0.1)
        busy.close()


# ---------------------------------------------------------------------------------------
# HTTP hygiene: half-closed clients, message lengths, slow or silent connections
# ---------------------------------------------------------------------------------------

def _exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 10.0) -> bytes:
    """Sends ``data`` on a fresh socket (then half-closes it) and reads until the server closes."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _responses(raw: bytes) -> list[tuple[int, dict[str, str], object]]:
    """Splits the bytes of one or more HTTP/1.1 responses (each with a Content-Length)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        n = int(headers["content-length"])
        out.append((int(lines[0].split()[1]), headers, strict_json(rest[:n])))
        raw = rest[n:]
    return out


def _post_bytes(body: bytes, extra: str = "") -> bytes:
    return (f"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_a_half_closed_client_gets_its_answers(served):
    body = json.dumps({"instances": [row(1), row(2)]}).encode()
    [(status, _, data)] = _responses(_exchange(served.port, _post_bytes(body)))
    assert status == 200 and [p["city_id"] for p in data["predictions"]] == [1, 2]
    # pipelined requests before the half-close are all answered, in order
    got = _responses(_exchange(served.port, _post_bytes(body) + b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n"
                               + _post_bytes(json.dumps({"instances": [row(3)]}).encode())))
    assert [s for s, _, _ in got] == [200, 200, 200]
    assert "model_version_status" in got[1][2] and got[2][2]["predictions"][0]["city_id"] == 3
    # a request cut short by the half-close is answered 400, not left hanging
    [(status, headers, data)] = _responses(_exchange(served.port, _post_bytes(body)[:-5]))
    assert status == 400 and headers.get("connection") == "close" and "before" in data["error"], data


@pytest.mark.parametrize("extra,needle", [
    ("Content-Length: 7\r\n", "Content-Length"),  # a second, different length
    ("Transfer-Encoding: chunked\r\n", "Transfer-Encoding"),  # a length and chunked both
], ids=["two-lengths", "length-and-chunked"])
def test_conflicting_message_lengths_get_400_and_close(served, extra, needle):
    body = json.dumps({"instances": [row(1)]}).encode()
    # the bytes after the body would be a smuggled second request if either length were believed
    raw = _exchange(served.port, _post_bytes(body, extra) + b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n",
                    half_close=False)
    [(status, headers, data)] = _responses(raw)
    assert status == 400 and headers.get("connection") == "close", data
    assert needle in data["error"] and "RFC 9112" in data["error"], data


@pytest.mark.parametrize("head", [
    "Content-Length: 5, 7\r\n", "Content-Length: +5\r\n", "Content-Length: 0x5\r\n",
    "Transfer-Encoding: chunked, gzip\r\n", "Transfer-Encoding: gzip\r\n",
])
def test_unusable_message_lengths_get_4xx(served, head):
    raw = _exchange(served.port, f"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n{head}\r\n{{}}".encode(),
                    half_close=False)
    [(status, headers, data)] = _responses(raw)
    assert status in (400, 501) and headers.get("connection") == "close" and "error" in data, data


def test_repeated_equal_lengths_are_one_length(served):
    body = json.dumps({"instances": [row(1)]}).encode()
    raw = _exchange(served.port, _post_bytes(body, f"Content-Length: {len(body)}\r\nConnection: close\r\n"),
                    half_close=False)
    [(status, _, data)] = _responses(raw)
    assert status == 200 and data["predictions"][0]["city_id"] == 1


def test_slow_and_silent_connections_are_closed_after_the_header_timeout(tmp_path):
    import socket

    from jfx.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="header_timeout_s"):
        ServingConfig(header_timeout_s=0)
    base = tmp_path / "m"
    base.mkdir()
    push(base, 1, 2.0)
    with ModelServer(base, "m", port=0, config=ServingConfig(poll_interval_s=0, header_timeout_s=0.5)) as server:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        kept.request("GET", "/v1/models/m")
        assert kept.getresponse().read()
        started = time.monotonic()
        slow.sendall(b"GET /v1/models/m HTTP/1.1\r\n")
        try:  # a header line every 0.1 s never finishes the head; trickling does not reset the clock
            while time.monotonic() - started < 5:
                slow.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.1)
        except OSError:
            pass
        answer = b""
        try:
            while chunk := slow.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 4, "the slow head was not cut off"
        [(status, headers, data)] = _responses(answer)
        assert status == 408 and headers.get("connection") == "close" and "0.5" in data["error"], data
        assert silent.recv(65536) == b""  # a connection that never sent a byte is closed too
        silent.close()
        slow.close()
        kept.request("GET", "/v1/models/m")  # an idle keep-alive connection is not cut by it
        assert kept.getresponse().status == 200
        kept.close()
