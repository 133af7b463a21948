"""jfx serve's Prometheus metrics and request log, on real servers answering real HTTP requests."""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jfx import _storage as storage
from jfx.core import TensorSpec, export
from jfx.core._monitoring import ServingMetrics
from jfx.core._request_log import RequestLogConfig, RequestLogger, request_log_schema
from jfx.core._serve_flags import add_serve_parser, serve_options
from jfx.core._serving import ModelServer, ServingConfig
from jfx.errors import InvalidArgumentError
from prometheus_client.parser import text_string_to_metric_families

CITY = {"vocabulary": ["paris", "oslo", "lima"], "oov_buckets": 1}
# the raw features of a tabular model: what ExampleGen gives and a Trainer's export takes
SIGNATURE = {"x": TensorSpec("float32"), "k": TensorSpec("int32"), "city": TensorSpec("string", encoder=CITY),
             "ok": TensorSpec("float32", source_type="bool")}
CONFIG = ServingConfig(max_batch_size=4, batch_timeout_ms=2, poll_interval_s=0)
SHARD = re.compile(r"requests-(\d{8}T\d{12})-(\d+)-(\d+)\.parquet")


def _fn(p, f):
    return {"y": f["x"] * p["w"] + f["k"] + f["ok"], "city_id": f["city"]}


@pytest.fixture(scope="module")
def model_base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("monitoring") / "m"
    base.mkdir()
    export(_fn, {"w": jnp.float32(2.0)}, SIGNATURE, base / "1")
    return base


def row(i: int) -> dict:
    return {"x": float(i), "k": i % 5, "city": ["paris", "oslo", "lima", "rome"][i % 4], "ok": i % 2 == 0}


def expected(r: dict) -> dict:
    """A row's entry of the REST answer's predictions."""
    y = None if r["x"] is None else r["x"] * 2 + r["k"] + (float("nan") if r["ok"] is None else float(r["ok"]))
    y = None if y is None or y != y else y
    city = {"paris": 0, "oslo": 1, "lima": 2}.get(r["city"], 3)
    return {"city_id": city, "y": y}


class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes, str]:
        self.conn.request(method, path, json.dumps(body) if body is not None else None)
        resp = self.conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""

    def predict(self, payload, version=None, name="m") -> tuple[int, dict]:
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
        status, raw, _ = self.request("POST", path, payload)
        return status, json.loads(raw)

    def scrape(self) -> dict[str, dict[tuple, float]]:
        """The server's metrics: sample name → {sorted label items: value}."""
        status, raw, ctype = self.request("GET", "/monitoring/prometheus/metrics")
        assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
        samples: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(raw.decode()):
            for s in family.samples:
                samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return samples

    def close(self) -> None:
        self.conn.close()


def labels(**kw) -> tuple:
    return tuple(sorted(kw.items()))


def shards(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if SHARD.fullmatch(p.name))


def read_log(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in shards(folder))


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------

def test_the_metrics_endpoint_counts_what_was_asked(model_base, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(model_base, base)
    with ModelServer(base, "m", port=0, config=CONFIG) as server:
        c = Client(server.port)
        assert c.predict({"instances": [row(1), row(2), row(3)]})[0] == 200
        assert c.predict({"instances": [row(4)]}, version=1)[0] == 200
        assert c.predict({"inputs": {"x": [1.0, 2.0], "k": [1, 2], "city": ["oslo", None], "ok": [True, None]}})[0] == 200
        assert c.predict({"instances": [{"x": "one", "k": 1, "city": "oslo", "ok": True}]})[0] == 400
        assert c.predict({"instances": [row(1)]}, version=9)[0] == 404  # not loaded
        assert c.predict({"instances": [row(1)]}, name="other")[0] == 404  # no such model
        assert c.request("GET", "/v1/models/m")[0] == 200
        assert c.request("GET", "/v1/models/m/metadata")[0] == 200
        assert c.request("GET", "/nowhere")[0] == 404
        # a version that fails to load is counted, and the loaded one's load time is there
        (base / "2").mkdir()
        (base / "2" / "signature.json").write_text("{not json")
        server.poll()
        m = c.scrape()
        c.close()

    requests = m["jfx_serving_requests_total"]
    assert requests[labels(model="m", version="1", api="predict", status="200")] == 3
    assert requests[labels(model="m", version="1", api="predict", status="400")] == 1
    assert requests[labels(model="m", version="", api="predict", status="404")] == 1
    assert requests[labels(model="", version="", api="predict", status="404")] == 1  # a made-up name is no label
    assert requests[labels(model="m", version="", api="status", status="200")] == 1
    assert requests[labels(model="m", version="1", api="metadata", status="200")] == 1
    assert requests[labels(model="", version="", api="none", status="404")] == 1
    assert sum(requests.values()) == 9  # the scrape counts once it is answered
    latency = m["jfx_serving_request_latency_seconds_count"]
    assert latency == requests
    assert all(v > 0 for v in m["jfx_serving_request_latency_seconds_sum"].values())
    # every answered predict went through the batching queue: 6 rows in 3 requests
    assert m["jfx_serving_batch_size_sum"][labels(model="m", version="1")] == 6
    assert 1 <= m["jfx_serving_batch_size_count"][labels(model="m", version="1")] <= 3
    assert m["jfx_serving_queue_seconds_count"][labels(model="m", version="1")] == 3
    assert m["jfx_serving_model_load_seconds"][labels(model="m", version="1")] > 0
    assert m["jfx_serving_model_load_failures_total"] == {labels(model="m", version="2"): 1}


def test_each_server_counts_in_a_registry_of_its_own(model_base):
    one, two = ModelServer(model_base, "m", port=0), ModelServer(model_base, "m", port=0)
    one.metrics.record_request("m", 1, "predict", 200, 0.01)
    assert b'api="predict"' in one.metrics.exposition()[0]
    assert b'api="predict"' not in two.metrics.exposition()[0]
    # what a gRPC front end records: a status code's name
    two.metrics.record_request("m", None, "classify", "NOT_FOUND", 0.002)
    assert b'jfx_serving_requests_total{api="classify",model="m",status="NOT_FOUND",version=""} 1.0' \
        in two.metrics.exposition()[0]


# ---------------------------------------------------------------------------------------
# The request log
# ---------------------------------------------------------------------------------------

def test_logged_requests_read_back_in_the_raw_schema_and_feed_example_gen(model_base, tmp_path):
    from jfx.components._example_gen import ExampleGen
    from jfx.components._examples import split_files
    from jfx.types import Examples

    folder = tmp_path / "log"
    rows = [row(i) for i in range(5)]
    columns = {"x": [7.5, None], "k": [3, 4], "city": ["lima", None], "ok": [None, False]}
    started = datetime.now(timezone.utc)
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=RequestLogConfig(str(folder))) as server:
        c = Client(server.port)
        status, answer = c.predict({"instances": rows})
        assert status == 200 and answer["predictions"] == [expected(r) for r in rows]
        status, columnar = c.predict({"inputs": columns}, version=1)
        assert status == 200
        assert c.predict({"instances": [{**row(1), "k": 1.5}]})[0] == 400  # refused: not logged
        assert c.predict({"instances": []})[0] == 200  # no rows: nothing to log
        c.close()
        assert server.request_log is not None and server.request_log.flush()
        files = shards(folder)
        assert len(files) == 1  # visible while the server runs
    finished = datetime.now(timezone.utc)

    assert [p.name for p in folder.iterdir()] == [files[0].name]  # no temporary file left
    stamp, pid, seq = SHARD.fullmatch(files[0].name).groups()
    assert (int(pid), int(seq)) == (os.getpid(), 0)
    table = pq.read_table(files[0])
    assert table.schema.names == ["x", "k", "city", "ok", "_jfx_time", "_jfx_model_version", "_jfx_prediction"]
    assert table.schema == request_log_schema(SIGNATURE)
    assert [table.schema.field(n).type for n in ("x", "k", "city", "ok")] == [pa.float32(), pa.int32(), pa.string(),
                                                                              pa.bool_()]
    assert table.schema.field("_jfx_time").type == pa.timestamp("us", tz="UTC")
    logged = table.to_pylist()
    sent = rows + [dict(zip(columns, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]
    assert [{k: r[k] for k in ("x", "k", "city", "ok")} for r in logged] == sent
    # each row's prediction is its entry of the REST answer's predictions, in either format
    assert [json.loads(r["_jfx_prediction"]) for r in logged] == answer["predictions"] + [
        {"city_id": c, "y": y} for c, y in zip(columnar["outputs"]["city_id"], columnar["outputs"]["y"], strict=True)]
    assert all(r["_jfx_model_version"] == 1 for r in logged)
    times = [r["_jfx_time"] for r in logged]
    assert all(started <= t <= finished for t in times) and len(set(times[:5])) == 1
    assert stamp == times[0].strftime("%Y%m%dT%H%M%S%f")

    # ExampleGen reads the log folder as it reads any Parquet data
    out = tmp_path / "examples"
    out.mkdir()
    examples = Examples(out)
    ExampleGen.fn(examples=examples, input_base=str(folder), format="parquet")
    assert sum(examples.properties["row_counts"].values()) == len(sent)
    assert {k: examples.properties["columns"][k] for k in ("x", "k", "city", "ok")} == {
        "x": "float", "k": "int", "city": "string", "ok": "bool"}
    back = pa.concat_tables(pq.read_table(f) for split in examples.properties["splits"]
                            for f in split_files(examples, split))
    key = lambda r: (r["x"] is None, r["x"] or 0, r["k"])  # noqa: E731
    assert sorted(back.select(["x", "k", "city", "ok"]).to_pylist(), key=key) == sorted(sent, key=key)


def test_the_sample_rate_is_respected(model_base, tmp_path):
    folder = tmp_path / "log"
    n, rate, seed = 300, 0.2, 11
    config = RequestLogConfig(str(folder), sample_rate=rate, seed=seed)
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=config) as server:
        c = Client(server.port)
        for i in range(n):
            assert c.predict({"instances": [row(i)]})[0] == 200
        c.close()
    logged = sorted(int(x) for x in read_log(folder).column("x").to_pylist())
    # one draw per answered request, in order: exactly the seeded draws below the rate
    draws = random.Random(seed)
    assert logged == [i for i in range(n) if draws.random() < rate]
    assert 0.1 * n < len(logged) < 0.3 * n  # and about the rate (binomial: 60 ± 7)


def test_shards_rotate_by_rows_and_by_time(model_base, tmp_path):
    by_rows = tmp_path / "rows"
    config = RequestLogConfig(str(by_rows), max_rows=4, rotate_s=3600)
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=config) as server:
        c = Client(server.port)
        for i in range(7):
            assert c.predict({"instances": [row(i)]})[0] == 200
        assert c.predict({"instances": [row(i) for i in range(7, 13)]})[0] == 200  # spans two shards
        c.close()
    files = shards(by_rows)
    assert [pq.read_metadata(f).num_rows for f in files] == [4, 4, 4, 1]
    assert [int(SHARD.fullmatch(f.name).group(3)) for f in files] == [0, 1, 2, 3]
    assert sorted(read_log(by_rows).column("x").to_pylist()) == [float(i) for i in range(13)]

    by_time = tmp_path / "time"
    config = RequestLogConfig(str(by_time), rotate_s=0.3)
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=config) as server:
        c = Client(server.port)
        assert c.predict({"instances": [row(1)]})[0] == 200
        wait_for(lambda: len(shards(by_time)) == 1)  # published while serving, without a flush
        assert c.predict({"instances": [row(2), row(3)]})[0] == 200
        wait_for(lambda: len(shards(by_time)) == 2)
        c.close()
    assert [pq.read_metadata(f).num_rows for f in shards(by_time)] == [1, 2]


def test_a_failing_sink_never_fails_a_request_and_is_reported(model_base, tmp_path, caplog):
    folder = tmp_path / "log"
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=RequestLogConfig(str(folder))) as server:
        assert server.request_log is not None
        c = Client(server.port)
        shutil.rmtree(folder)
        folder.write_text("a file where the log's folder was")  # nothing can be written under it
        with caplog.at_level(logging.WARNING, logger="jfx.serve"):
            for i in range(3):
                assert c.predict({"instances": [row(i)]})[0] == 200
            server.request_log.flush()
        failures = [r.getMessage() for r in caplog.records if "could not be written" in r.getMessage()]
        assert failures and str(folder) in failures[0] and "3 request(s) lost" in failures[0], caplog.text
        m = c.scrape()
        assert m["jfx_serving_request_log_write_errors_total"] == {labels(model="m"): 1}
        assert m["jfx_serving_request_log_dropped_total"][labels(model="m", reason="write_error")] == 3
        # once the folder can be written again, logging goes on
        folder.unlink()
        assert c.predict({"instances": [row(7)]})[0] == 200
        c.close()
    assert read_log(folder).column("x").to_pylist() == [7.0]


def test_a_slow_sink_drops_entries_instead_of_blocking(model_base, tmp_path, monkeypatch):
    stuck, entered = threading.Event(), threading.Event()
    write = RequestLogger._write

    def slow_write(self, entries):
        entered.set()
        stuck.wait(30)  # a sink that hangs
        write(self, entries)

    monkeypatch.setattr(RequestLogger, "_write", slow_write)
    folder = tmp_path / "log"
    config = RequestLogConfig(str(folder), queue_rows=3)
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=config) as server:
        c = Client(server.port)
        assert c.predict({"instances": [row(0)]})[0] == 200
        assert entered.wait(10)
        started = time.monotonic()
        for i in range(1, 10):
            assert c.predict({"instances": [row(i)]})[0] == 200
        assert time.monotonic() - started < 10  # answered while the writer hangs
        dropped = c.scrape()["jfx_serving_request_log_dropped_total"][labels(model="m", reason="queue_full")]
        assert dropped == 6  # the queue holds 3 rows; the first request is with the writer
        stuck.set()
        c.close()
    assert len(read_log(folder)) == 10 - dropped


def test_a_request_log_on_an_object_store(model_base, s3_root):
    prefix = storage.join(s3_root, "request-logs")
    with ModelServer(model_base, "m", port=0, config=CONFIG, request_log=RequestLogConfig(prefix)) as server:
        c = Client(server.port)
        assert c.predict({"instances": [row(1), row(2)]})[0] == 200
        assert c.predict({"inputs": {"x": [3.0], "k": [3], "city": ["oslo"], "ok": [True]}})[0] == 200
        c.close()
    files = storage.list_files(prefix)
    assert len(files) == 1 and SHARD.fullmatch(files[0].rel), [f.rel for f in files]
    table = storage.open_parquet(files[0].uri).read()
    assert table.schema == request_log_schema(SIGNATURE)
    assert table.column("x").to_pylist() == [1.0, 2.0, 3.0]
    assert table.column("city").to_pylist() == ["oslo", "lima", "oslo"]


def test_a_store_that_cannot_be_used_fails_the_start(model_base, s3_root):
    with pytest.raises(storage.StorageError, match="no-such-bucket-for-jfx"):
        ModelServer(model_base, "m", port=0, request_log=RequestLogConfig("s3://no-such-bucket-for-jfx/logs")).start()


def test_shard_types_follow_the_signature_and_a_new_signature_opens_a_new_shard(tmp_path):
    """Vectors and bfloat16 (not in Examples, but in signatures); a version with other inputs."""
    vec = {"v": TensorSpec("float32", (2,)), "b": TensorSpec("bfloat16"), "t": TensorSpec("string", (2,),
                                                                                           {"hash_buckets": 3})}
    flat = {"x": TensorSpec("float32")}
    metrics = ServingMetrics()
    logger = RequestLogger(RequestLogConfig(str(tmp_path / "log")), "m", metrics)
    try:
        import ml_dtypes

        arrays = {"v": np.array([[1, 2], [3, np.nan]], np.float32), "b": np.array([0.5, 2], ml_dtypes.bfloat16)}
        outputs = {"y": np.array([1.0, np.inf], np.float32)}
        assert logger.submit(3, SimpleNamespace(inputs=vec, metadata={}), arrays, outputs, 2,
                             lambda: {"t": [["a", "b"], ["c", None]]})
        assert logger.submit(4, SimpleNamespace(inputs=flat, metadata={}), {"x": np.array([5.0], np.float32)},
                             {"y": np.array([6.0], np.float32)}, 1)
    finally:
        logger.close()
    first, second = (pq.read_table(p) for p in shards(tmp_path / "log"))
    assert first.schema.field("v").type == pa.list_(pa.float32(), 2)
    assert first.schema.field("b").type == pa.float32()
    assert first.schema.field("t").type == pa.list_(pa.string(), 2)
    assert first.select(["v", "b", "t", "_jfx_model_version", "_jfx_prediction"]).to_pylist() == [
        {"v": [1.0, 2.0], "b": 0.5, "t": ["a", "b"], "_jfx_model_version": 3, "_jfx_prediction": "1.0"},
        {"v": [3.0, None], "b": 2.0, "t": ["c", None], "_jfx_model_version": 3, "_jfx_prediction": "null"}]
    assert second.schema == request_log_schema(flat) and second.column("x").to_pylist() == [5.0]
    assert metrics.registry.get_sample_value("jfx_serving_request_log_shards_total", {"model": "m"}) == 2


# ---------------------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------------------

def _parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser(prog="jfx", exit_on_error=False)
    add_serve_parser(parser.add_subparsers(dest="command"))
    return serve_options(parser.parse_args(["serve", "--model_base_path", "b", "--model_name", "m", *argv]))


def test_request_log_flags_become_serve_arguments(capsys):
    options = _parse("--request_log", "s3://bucket/logs", "--request_log_sample_rate", "0.05",
                     "--request_log_max_rows", "5000", "--request-log-rotate-s", "60")
    assert {k: v for k, v in options.items() if k.startswith("request_log")} == {
        "request_log": "s3://bucket/logs", "request_log_sample_rate": 0.05, "request_log_max_rows": 5000,
        "request_log_rotate_s": 60.0}
    assert _parse()["request_log"] is None
    for flag, value in [("--request_log_sample_rate", "0"), ("--request_log_sample_rate", "1.5"),
                        ("--request_log_sample_rate", "nan"), ("--request_log_max_rows", "0"),
                        ("--request_log_rotate_s", "-1")]:
        with pytest.raises(SystemExit):
            _parse("--request_log", "x", flag, value)
        assert value in capsys.readouterr().err
    for bad in [{"sample_rate": 0.0}, {"sample_rate": 2.0}, {"max_rows": 0}, {"rotate_s": 0.0}]:
        with pytest.raises(InvalidArgumentError, match=f"request_log_{next(iter(bad))}"):
            RequestLogConfig("x", **bad)
    with pytest.raises(InvalidArgumentError, match="unknown storage scheme 'ftp'"):
        RequestLogConfig("ftp://host/logs")


def test_jfx_serve_logs_requests_and_publishes_its_shard_on_sigterm(model_base, tmp_path):
    folder = tmp_path / "log"
    cmd = [sys.executable, "-m", "jfx.core._serving", "serve", "--model_base_path", str(model_base),
           "--model_name", "m", "--port", "0", "--max_batch_size", "4", "--request_log", str(folder),
           "--request_log_rotate_s", "3600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v1/models/m", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        c = Client(int(m.group(1)))
        assert c.predict({"instances": [row(1), row(2)]})[0] == 200
        c.close()
        assert not shards(folder)  # the shard is open
        proc.terminate()
        assert proc.wait(60) == 0, proc.stderr.read()
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert shards(folder), (err, list(folder.iterdir()) if folder.exists() else None)
    assert read_log(folder).column("x").to_pylist() == [1.0, 2.0]


def test_a_request_log_folder_that_cannot_be_made_fails_the_start(model_base, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    server = ModelServer(model_base, "m", port=0, request_log=RequestLogConfig(str(tmp_path / "file" / "log")))
    with pytest.raises(storage.StorageError, match=r"request log .*file/log: cannot create the folder"):
        server.start()
    assert server.request_log is None and server.versions.latest is None  # nothing left running


def test_an_int_column_of_the_training_data_is_logged_as_int64_and_a_fraction_is_counted(tmp_path):
    from jfx.core._export import INT_INPUTS_KEY
    from jfx.core._monitoring import ServingMetrics
    from jfx.core._request_log import RequestLogConfig, RequestLogger

    metrics = ServingMetrics()
    logger = RequestLogger(RequestLogConfig(str(tmp_path / "log")), "m", metrics)
    model = SimpleNamespace(inputs={"mass": TensorSpec("float32"), "x": TensorSpec("float32")},
                            metadata={INT_INPUTS_KEY: ["mass"]})
    arrays = {"mass": np.array([3750.0, np.nan, 3800.5], np.float32), "x": np.array([0.5, 1.5, 2.5], np.float32)}
    assert logger.submit(1, model, arrays, {"y": np.zeros(3, np.float32)}, 3)
    logger.close()
    [shard] = sorted((tmp_path / "log").glob("requests-*.parquet"))
    table = pq.read_table(shard)
    assert table.schema.field("mass").type == pa.int64() and table.schema.field("x").type == pa.float32()
    assert table.column("mass").to_pylist() == [3750, None, None]
    assert metrics.log_not_whole.labels("m")._value.get() == 1
