"""The data components on object storage: ExampleGen over an ``s3://`` input_base, the
components that stream their Examples, and the penguin pipeline on an ``s3://`` root.

Everything runs against the test S3 server (moto, on 127.0.0.1) of ``tests/conftest.py``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jfx import Pipeline
from jfx import _storage as storage
from jfx.components._example_gen import ExampleGen, fingerprint_inputs, select_inputs
from jfx.components._examples import split_files, split_names
from jfx.components._statistics_gen import StatisticsGen
from jfx.errors import DataValidationError
from jfx.orchestrators import LocalDagRunner
from jfx.types import Examples, ExampleStatistics, Schema

import jfx

PENGUIN = Path(jfx.__file__).parent / "examples" / "penguin" / "pipeline.py"


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def make_inputs(base: Path) -> None:
    """Spans and versions of CSV (plain and gzipped), files ExampleGen skips, Parquet and JSON Lines."""
    for span, version, value in [(1, 1, 10), (2, 1, 20), (2, 2, 21), (10, 1, 100), (10, 3, 103)]:
        write_csv(base / "spans" / f"span-{span}" / f"v{version}" / "d.csv", "a,b",
                  [f"{value},{value * i}" for i in range(40)])
    with gzip.open(base / "spans" / "span-10" / "v3" / "more.csv.gz", "wt") as fh:
        fh.write("a,b\n" + "".join(f"103,{-i}\n" for i in range(30)))
    write_csv(base / "spans" / "span-10" / "v3" / "_SUCCESS", "x", [])
    write_csv(base / "spans" / "_tmp" / "span-11" / "v1" / "d.csv", "a,b", ["1,1"])
    write_csv(base / "split" / "train" / "t.csv", "a,s", [f"{i},\"x,{i}\"" for i in range(50)])
    write_csv(base / "split" / "eval" / "e.csv", "a,s", [f"{i},y{i}" for i in range(20)])
    table = pa.table({"n": list(range(200)), "s": [f"s{i % 9}" for i in range(200)]})
    (base / "pq").mkdir()
    pq.write_table(table.slice(0, 120), base / "pq" / "p0.parquet")
    pq.write_table(table.slice(120), base / "pq" / "p1.parquet")
    (base / "js").mkdir()
    (base / "js" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))


def convert(out: Path, **params) -> Examples:
    out.mkdir(parents=True)
    examples = Examples(out)
    ExampleGen.fn(examples=examples, **params)
    return examples


def contents(examples: Examples) -> dict[str, list[dict]]:
    return {s: pa.concat_tables(pq.read_table(f) for f in split_files(examples, s)).to_pylist()
            for s in split_names(examples)}


@pytest.fixture
def inputs(tmp_path, s3_root) -> tuple[Path, str]:
    """The same input files in a local folder and under an ``s3://`` prefix."""
    local = tmp_path / "in"
    make_inputs(local)
    remote = storage.join(s3_root, "inputs")
    storage.upload_dir(local, remote)
    return local, remote


@pytest.fixture
def no_downloads(monkeypatch):
    """Make reading any object's bytes through s3fs fail (listings and HEADs still work)."""
    import s3fs

    def refuse(self, path, *args, **kwargs):
        raise AssertionError(f"{path} was read")

    for name in ("_cat_file", "_get_file", "_open", "open"):
        monkeypatch.setattr(s3fs.S3FileSystem, name, refuse)


# ------------------------------------------------------------------ ExampleGen


@pytest.mark.parametrize("params", [
    {"input_pattern": "spans/span-{SPAN}/v{VERSION}/*"},
    {"input_pattern": "spans/span-{SPAN}/v{VERSION}/*", "span": 2},
    {"input_pattern": "spans/span-{SPAN}/v{VERSION}/*", "span": 2, "version": 1},
    {"input_pattern": "spans/span-{SPAN}/v1/*.csv"},
    {"input_pattern": "split/{SPLIT}/*.csv"},
    {"input_pattern": "pq/*.parquet", "format": "parquet", "splits": {"train": 1, "eval": 1, "test": 1}},
    {"input_pattern": "js/*.jsonl", "format": "jsonl"},
], ids=["latest", "span", "span-version", "span-only", "pre-split", "parquet", "jsonl"])
def test_example_gen_reads_an_s3_input_base_as_it_reads_a_folder(tmp_path, inputs, params):
    local, remote = inputs
    here = convert(tmp_path / "local", input_base=str(local), **params)
    there = convert(tmp_path / "remote", input_base=remote, **params)
    assert contents(there) == contents(here)
    for key in ("splits", "row_counts", "columns", "span", "version", "format", "bad_rows_skipped"):
        assert there.properties[key] == here.properties[key], key
    assert sum(there.properties["row_counts"].values()) > 0


def test_spans_versions_and_skipped_names_on_s3(inputs):
    _, remote = inputs
    latest = select_inputs(remote, "csv", "spans/span-{SPAN}/v{VERSION}/*")
    assert (latest.span, latest.version) == (10, 3)
    assert [f.rel for f in latest.files] == ["spans/span-10/v3/d.csv", "spans/span-10/v3/more.csv.gz"]
    assert all(str(f.path).startswith("s3://") and f.size and f.checksum for f in latest.files)
    with pytest.raises(DataValidationError, match=r"span 3 not found.*spans present: 1, 2, 10"):
        select_inputs(remote, "csv", "spans/span-{SPAN}/v{VERSION}/*", span=3)


def test_a_bad_csv_row_on_s3_is_named_as_it_is_locally(tmp_path, s3_root):
    local = tmp_path / "bad"
    write_csv(local / "broken.csv", "a,b", ["1,2", "3", "4,5"])
    write_csv(local / "quote.csv", "a,b", ["1,2", '2,"never closes', "3,4"])
    storage.upload_dir(local, storage.join(s3_root, "bad"))
    for name, message in [("broken.csv", "broken.csv: line 3: expected 2 fields, got 1"),
                          ("quote.csv", "quote.csv: line 3, character 3: a quoted value opens here")]:
        with pytest.raises(DataValidationError, match=re.escape(message)):
            convert(tmp_path / f"out-{name}", input_base=storage.join(s3_root, "bad"), input_pattern=name)


def test_input_fingerprints_come_from_the_listing_without_reading_the_objects(inputs, no_downloads):
    _, remote = inputs
    pattern = "spans/span-{SPAN}/v{VERSION}/*"
    before = fingerprint_inputs(remote, "csv", pattern)
    assert fingerprint_inputs(remote, "csv", pattern) == before
    # the same bytes written again: the same checksum, the same fingerprint
    target = storage.join(remote, "spans/span-10/v3/d.csv")
    body = b"a,b\n" + b"".join(b"103,%d\n" % (103 * i) for i in range(40))
    storage.write_bytes(target, body)
    assert fingerprint_inputs(remote, "csv", pattern) == before
    # one byte changed, same size: another fingerprint
    storage.write_bytes(target, body.replace(b"103,0\n", b"103,9\n"))
    changed = fingerprint_inputs(remote, "csv", pattern)
    assert changed != before
    # an older span changing does not matter; a new version does
    storage.write_bytes(storage.join(remote, "spans/span-2/v1/d.csv"), b"a,b\n1,2\n")
    assert fingerprint_inputs(remote, "csv", pattern) == changed
    storage.write_bytes(storage.join(remote, "spans/span-10/v4/d.csv"), b"a,b\n1,2\n")
    assert fingerprint_inputs(remote, "csv", pattern) != changed


def test_a_pipeline_over_s3_inputs_is_cached_until_an_object_changes(tmp_path, s3_root):
    data = storage.join(s3_root, "data")
    storage.write_bytes(storage.join(data, "rows.csv"), b"x,y\n1,a\n2,b\n3,c\n")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"

    def run():
        pipeline = Pipeline("cache", components=[ExampleGen(input_base=data)], pipeline_root=s3_root,
                            metadata_url=url)
        return LocalDagRunner(progress=False).run(pipeline).nodes["ExampleGen"]

    first = run()
    assert first.state == "complete", first.error
    [art] = first.outputs["examples"]
    assert art.uri.startswith(s3_root + "/")
    assert sorted(r["x"] for r in contents(Examples(art.uri, properties=art.properties)).values() for r in r) \
        == [1, 2, 3]
    assert run().state == "cached"
    storage.write_bytes(storage.join(data, "rows.csv"), b"x,y\n1,a\n2,b\n3,d\n")  # same size, new bytes
    changed = run()
    assert changed.state == "complete" and changed.cache_miss_reason == "changed external input"
    assert changed.outputs["examples"][0].properties["input_fingerprint"] != art.properties["input_fingerprint"]


def test_a_missing_input_prefix_is_one_clear_error(tmp_path, s3_root):
    missing = storage.join(s3_root, "no", "such", "prefix")
    with pytest.raises(DataValidationError) as err:
        select_inputs(missing)
    assert str(err.value) == (f"input_base {missing!r}: no objects under this prefix (it does not exist or is "
                              "empty); give the prefix that holds the csv files")
    result = LocalDagRunner(progress=False).run(Pipeline(
        "missing", components=[ExampleGen(input_base=missing)], pipeline_root=str(tmp_path / "root"),
        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}"))
    outcome = result.nodes["ExampleGen"]
    assert result.state == "FAILED" and outcome.state == "failed"
    assert missing in outcome.error and "no objects under this prefix" in outcome.error
    storage.write_bytes(storage.join(s3_root, "other", "x.txt"), b"1")
    with pytest.raises(DataValidationError, match=re.escape(f"no file under {storage.join(s3_root, 'other')!r} "
                                                            "matches input_pattern '*.csv'")):
        select_inputs(storage.join(s3_root, "other"), "csv", "*.csv")


# ------------------------------------------------------------------ streaming components


def test_statistics_gen_streams_examples_from_s3_and_gets_the_local_statistics(tmp_path, s3_root, monkeypatch):
    local = tmp_path / "in"
    write_csv(local / "d.csv", "id,x,name,flag", [f"{i},{i * 0.25},n{i % 11},{i % 3 == 0}" for i in range(5000)]
              + ["5000,,,"])
    examples = convert(tmp_path / "examples", input_base=str(local))
    schema_dir = tmp_path / "schema"
    schema_dir.mkdir()
    (schema_dir / "schema.json").write_text(json.dumps({"version": 1, "columns": {
        "id": {"type": "string"}, "x": {"type": "float"}, "name": {"type": "string"}, "flag": {"type": "bool"}}}))
    remote_examples, remote_schema = storage.join(s3_root, "examples"), storage.join(s3_root, "schema")
    storage.upload_dir(examples.uri, remote_examples)
    storage.upload_dir(schema_dir, remote_schema)

    def statistics(examples_uri: str, schema_uri: str, name: str) -> dict:
        out = tmp_path / name
        out.mkdir()
        stats = ExampleStatistics(out)
        StatisticsGen.fn(examples=Examples(examples_uri, properties=examples.properties), statistics=stats,
                         schema=Schema(schema_uri, fingerprint="schema-fp"))
        return {"properties": stats.properties,
                **{p.parent.name: json.loads(p.read_text()) for p in out.glob("Split-*/statistics.json")}}

    here = statistics(examples.uri, str(schema_dir), "local")
    downloaded: list[str] = []
    real = storage.download_dir
    monkeypatch.setattr(storage, "download_dir", lambda uri, dst: (downloaded.append(str(uri)), real(uri, dst))[1])
    monkeypatch.setenv("JFX_CACHE_DIR", str(tmp_path / "cache"))
    there = statistics(remote_examples, remote_schema, "remote")
    assert there == here
    assert here["Split-train"]["columns"]["id"]["type"] == "string"  # the schema was read
    assert downloaded == [remote_schema]  # the small schema is copied; the examples are streamed
    assert StatisticsGen.streaming


def test_the_components_that_read_examples_stream_them():
    from jfx.components import (
        BulkInferrer,
        Evaluator,
        ExampleValidator,
        InfraValidator,
        Trainer,
        Transform,
        Tuner,
    )

    for comp in (StatisticsGen, ExampleValidator, Transform, Trainer, Tuner, Evaluator, BulkInferrer, InfraValidator):
        assert comp.streaming, comp.name
        assert "examples" in comp.spec.inputs, comp.name


def test_a_dataset_reads_shards_on_s3_as_it_reads_local_ones(tmp_path, s3_root):
    from jfx.core import Dataset

    local = tmp_path / "in"
    write_csv(local / "d.csv", "x,y", [f"{i * 0.5},{i % 2}" for i in range(1000)])
    examples = convert(tmp_path / "examples", input_base=str(local), splits={"train": 1})
    storage.upload_dir(examples.uri, storage.join(s3_root, "ex"))
    remote = Examples(storage.join(s3_root, "ex"))  # the splits from the listing
    assert split_names(remote) == ["train"]
    shards = split_files(remote, "train")
    assert all(isinstance(s, str) and s.startswith("s3://") for s in shards)

    def batches(files):
        data = Dataset.from_parquet(files, ["x"], "y", batch_size=128, shuffle_buffer=0)
        return data.num_rows, [float(b[0]["x"].sum()) for b in data]

    assert batches(shards) == batches(split_files(examples, "train"))
    with pytest.raises(DataValidationError, match="Parquet files not found"):
        Dataset.from_parquet([storage.join(s3_root, "ex", "nope.parquet")], ["x"], "y")


# ------------------------------------------------------------------ the penguin pipeline


def run_penguin(home: Path, root: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("JFX_METADATA_URL", "JFX_CACHE_DIR")}
    env["JFX_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "jfx", "run", str(PENGUIN), "--pipeline-root", root,
                           "--progress", "log"], env=env, capture_output=True, text=True, timeout=600,
                          cwd=home.parent)


def fingerprints(home: Path, proc: subprocess.CompletedProcess) -> dict[str, tuple[str, str]]:
    from jfx.metadata import Client

    found = re.search(r"^run (\S+) of pipeline penguin", proc.stdout, re.MULTILINE)
    assert found, proc.stdout + proc.stderr
    with Client(f"sqlite:///{home / 'metadata.sqlite'}") as client:
        run = client.run(found.group(1))
        return {f"{node}.{key}": (view.fingerprint, view.uri)
                for node, key in [("ExampleGen", "examples"), ("NewExampleGen", "examples"),
                                  ("StatisticsGen", "statistics"), ("NewStatisticsGen", "statistics"),
                                  ("SchemaGen", "schema"), ("Transform", "transformed_examples")]
                for view in [run.nodes[node].outputs[key]]}


def test_penguin_on_an_s3_root_matches_a_local_run(tmp_path, s3_root):
    local_home, s3_home = tmp_path / "local" / "home", tmp_path / "s3" / "home"
    local_home.parent.mkdir()
    s3_home.parent.mkdir()
    local = run_penguin(local_home, str(tmp_path / "local" / "artifacts"))
    assert local.returncode == 0, local.stdout + local.stderr
    remote = run_penguin(s3_home, s3_root)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert "of pipeline penguin: COMPLETE" in remote.stdout
    here, there = fingerprints(local_home, local), fingerprints(s3_home, remote)
    assert {k: fp for k, (fp, _) in there.items()} == {k: fp for k, (fp, _) in here.items()}
    assert all(uri.startswith(s3_root + "/penguin/") for _, uri in there.values())
    # the Examples were streamed by every component that read them: none was copied to the cache
    cached = {p.name for p in (s3_home / "cache" / "artifacts").glob("*")}
    examples = {there[k][0] for k in ("ExampleGen.examples", "NewExampleGen.examples", "Transform.transformed_examples")}
    assert cached and not cached & examples
    with open(_penguins_csv(), newline="") as fh:
        rows = len(list(csv.DictReader(fh)))
    stats = storage.list_files(there["StatisticsGen.statistics"][1])
    total = sum(json.loads(storage.read_text(f.uri))["num_rows"] for f in stats if f.rel.endswith("statistics.json"))
    assert total == rows == 344


def _penguins_csv() -> Path:
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
