"""examples/penguin/monitor.py end to end: request-log shards of real penguin rows, validated
as serving data against the latest penguin run's schema and training statistics."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import jfx
from jfx_penguin import node_states, output_dir, run_jfx

EXAMPLES = Path(jfx.__file__).parent / "examples" / "penguin"
PENGUIN, MONITOR = EXAMPLES / "pipeline.py", EXAMPLES / "monitor.py"
# the penguin model's raw inputs (examples/penguin/preprocessing.py): what a request log holds
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]


def write_request_log(folder: Path, rows: pa.Table, *, model_version: int = 1, shard_rows: int = 40) -> list[Path]:
    """Write ``rows`` as ``jfx serve --request_log`` does (the request-log contract): Parquet
    shards ``requests-<UTC time>-<pid>-<seq>.parquet`` of the model's raw input features (the
    training examples' names and Arrow types) plus ``_jfx_time`` (timestamp[us, UTC]),
    ``_jfx_model_version`` (int64) and ``_jfx_prediction`` (JSON text); no label."""
    folder.mkdir(parents=True, exist_ok=True)
    features = rows.select(FEATURES)
    start = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    written = []
    for seq, offset in enumerate(range(0, features.num_rows, shard_rows)):
        shard = features.slice(offset, shard_rows)
        n = shard.num_rows
        times = pa.array([start.timestamp() * 1e6 + (offset + i) * 1e6 for i in range(n)], pa.float64())
        shard = (shard
                 .append_column("_jfx_time", pc.cast(pc.cast(times, pa.int64()), pa.timestamp("us", tz="UTC")))
                 .append_column("_jfx_model_version", pa.array([model_version] * n, pa.int64()))
                 .append_column("_jfx_prediction", pa.array([json.dumps({"class_ids": [0]})] * n)))
        stamp = start.strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"requests-{stamp}-{os.getpid()}-{seq:06d}.parquet"
        pq.write_table(shard, path)
        written.append(path)
    return written


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store where the penguin pipeline's data part ran (ExampleGen, StatisticsGen, SchemaGen),
    and the real penguin rows it ingested, in the training examples' Arrow types."""
    home = tmp_path_factory.mktemp("monitor") / "home"
    proc = run_jfx("run", str(PENGUIN), "--to", "SchemaGen", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    examples = output_dir(home, proc, "ExampleGen", "examples")
    rows = pa.concat_tables(pq.read_table(p) for p in sorted(examples.glob("Split-*/*.parquet")))
    return home, rows


def anomalies_of(home: Path, proc) -> dict:
    return json.loads((output_dir(home, proc, "SkewValidator", "anomalies") / "anomalies.json").read_text())


def test_normal_traffic_passes_and_the_missing_label_is_not_flagged(trained, tmp_path):
    home, rows = trained
    sample = rows.take(np.random.default_rng(3).permutation(rows.num_rows)[:150])
    write_request_log(tmp_path / "log", sample)
    proc = run_jfx("run", str(MONITOR), "--param", f"request_log={tmp_path / 'log'}", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(node_states(proc.stdout).values()) == {"complete"}
    doc = anomalies_of(home, proc)
    assert doc["passed"] is True and doc["splits"] == {"serving": []} and doc["environment"] == "SERVING"
    # every feature was compared with the training split; the label and year are not serving columns
    assert set(doc["skew"]["serving"]) == set(FEATURES)
    assert all(m["baseline_split"] == "train" and m["threshold"] == 0.15 for m in doc["skew"]["serving"].values())


def test_shifted_traffic_halts_naming_the_skewed_features(trained, tmp_path):
    home, rows = trained
    gentoo = rows.filter(pc.equal(rows["species"], "Gentoo"))  # one species: only Biscoe island
    heavier = gentoo.set_column(gentoo.schema.get_field_index("body_mass_g"), "body_mass_g",
                                pc.add(gentoo["body_mass_g"], pa.scalar(800, gentoo["body_mass_g"].type)))
    write_request_log(tmp_path / "log", heavier, model_version=2)
    proc = run_jfx("run", str(MONITOR), "--param", f"request_log={tmp_path / 'log'}", home=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SkewValidator halted the pipeline" in proc.stdout
    doc = anomalies_of(home, proc)
    skewed = {a["column"]: a for a in doc["splits"]["serving"] if a["kind"] == "skew"}
    assert {"island", "body_mass_g", "flipper_length_mm"} <= set(skewed), proc.stdout
    assert skewed["island"]["details"]["value_with_largest_difference"] == "Biscoe"
    for column, anomaly in skewed.items():
        assert anomaly["details"]["value"] > anomaly["details"]["threshold"] == 0.15
        # the report names the feature, its distance and the threshold
        assert column in proc.stdout
        assert f"{anomaly['details']['value']:.4f} is above the schema's skew_comparator threshold 0.15" in proc.stdout
    # nothing about the absent label, nor the log's own columns
    assert not {a["column"] for a in doc["splits"]["serving"]} & {"species", "year", "_jfx_time",
                                                                   "_jfx_model_version", "_jfx_prediction"}


def test_the_monitor_fails_clearly_before_any_training_run(tmp_path):
    write_request_log(tmp_path / "log", pa.table({c: pa.array([1.0]) for c in FEATURES}))
    proc = run_jfx("run", str(MONITOR), "--param", f"request_log={tmp_path / 'log'}", home=tmp_path / "home")
    assert proc.returncode == 1
    assert "no successful run of pipeline 'penguin' in this metadata store has published output 'schema' " \
        "of node 'SchemaGen'; run that pipeline first" in proc.stdout
    assert node_states(proc.stdout)["SkewValidator"] == "skipped"


def test_request_logs_under_an_s3_prefix(trained, tmp_path, s3_root):
    from jfx import _storage as storage

    home, rows = trained
    write_request_log(tmp_path / "log", rows.take(np.random.default_rng(4).permutation(rows.num_rows)[:120]))
    storage.upload_dir(tmp_path / "log", f"{s3_root}/request_log/penguin")
    proc = run_jfx("run", str(MONITOR), "--param", f"request_log={s3_root}/request_log/penguin", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = anomalies_of(home, proc)
    assert doc["passed"] is True and set(doc["skew"]["serving"]) == set(FEATURES)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A store where the whole penguin pipeline ran: a model pushed to $JFX_HOME/serving/penguin."""
    home = tmp_path_factory.mktemp("monitor-e2e") / "home"
    proc = run_jfx("run", str(PENGUIN), home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    examples = output_dir(home, proc, "ExampleGen", "examples")
    rows = pa.concat_tables(pq.read_table(p) for p in sorted(examples.glob("Split-*/*.parquet")))
    assert list((home / "serving" / "penguin").iterdir()), "the pipeline pushed no model"
    return home, rows


def serve_and_send(home: Path, log: Path, batches: list[list[dict]]) -> None:
    """Start a real ``jfx serve --request_log`` on the pushed model, send each batch as one
    REST predict request, then stop it with SIGTERM (which publishes the open shard)."""
    import http.client
    import queue
    import re
    import signal
    import subprocess
    import sys
    import threading

    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    env["JFX_HOME"] = str(home)
    proc = subprocess.Popen([sys.executable, "-m", "jfx", "serve", "--model_base_path", str(home / "serving" / "penguin"),
                             "--model_name", "penguin", "--port", "0", "--request_log", str(log),
                             "--request_log_max_rows", "64"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        seen, found = [], None
        while found is None:  # its log lines first, then the one with the URL
            try:
                seen.append(lines.get(timeout=120))
            except queue.Empty:
                raise AssertionError("jfx serve printed no URL in 120 s:\n" + "".join(seen)) from None
            found = re.search(r"at http://127\.0\.0\.1:(\d+)/", seen[-1])
        conn = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=60)
        for batch in batches:
            conn.request("POST", "/v1/models/penguin:predict", json.dumps({"instances": batch}))
            answer = conn.getresponse()
            assert answer.status == 200, answer.read()
            assert len(json.loads(answer.read())["predictions"]) == len(batch)
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def requests_of(rows: pa.Table, size: int = 10) -> list[list[dict]]:
    """Raw penguin rows as a client sends them (the features only, missing values as null)."""
    records = rows.select(FEATURES).to_pylist()
    return [records[i:i + size] for i in range(0, len(records), size)]


def test_a_real_server_logs_its_requests_and_the_monitor_checks_them(pushed, tmp_path):
    home, rows = pushed
    normal = rows.take(np.random.default_rng(5).permutation(rows.num_rows)[:150])
    serve_and_send(home, tmp_path / "normal", requests_of(normal))
    shards = sorted((tmp_path / "normal").glob("requests-*.parquet"))
    assert len(shards) >= 2 and sum(pq.read_metadata(s).num_rows for s in shards) == 150
    proc = run_jfx("run", str(MONITOR), "--param", f"request_log={tmp_path / 'normal'}", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = anomalies_of(home, proc)
    assert doc["passed"] is True and set(doc["skew"]["serving"]) == set(FEATURES)

    # the traffic mix shifts: only one island's penguins, as a new client might send
    shifted = rows.filter(pc.equal(rows["island"], "Dream"))
    serve_and_send(home, tmp_path / "shifted", requests_of(shifted))
    proc = run_jfx("run", str(MONITOR), "--param", f"request_log={tmp_path / 'shifted'}", home=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SkewValidator halted the pipeline" in proc.stdout
    skewed = {a["column"] for a in anomalies_of(home, proc)["splits"]["serving"] if a["kind"] == "skew"}
    assert "island" in skewed, proc.stdout
    assert not skewed & {"species", "year"}
