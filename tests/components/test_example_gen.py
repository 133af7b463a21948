"""ExampleGen: files → Parquet splits, through the plain function, Beam and a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jfx import Pipeline
from jfx.components import _readers as readers
from jfx.components._example_gen import (
    ExampleGen,
    fingerprint_inputs,
    row_hashes,
    select_inputs,
)
from jfx.components._examples import split_files
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner
from jfx.types import Examples, Schema


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def numbered_rows(n: int, start: int = 0) -> list[str]:
    return [f"{i},{i * 0.5},name{i % 7}" for i in range(start, start + n)]


def run(tmp_path: Path, **params) -> Examples:
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    out.mkdir()
    examples = Examples(out)
    ExampleGen.fn(examples=examples, **params)
    return examples


def rows_of(examples: Examples, split: str) -> list[dict]:
    return pa.concat_tables(pq.read_table(f) for f in split_files(examples, split)).to_pylist()


def row_set(examples: Examples, split: str) -> set[tuple]:
    return {tuple(sorted(r.items())) for r in rows_of(examples, split)}


@pytest.fixture
def eg_data(tmp_path) -> Path:
    """3,000 rows of id,x,name in one CSV file."""
    write_csv(tmp_path / "in" / "data.csv", "id,x,name", numbered_rows(3000))
    return tmp_path / "in"


# ------------------------------------------------------------------ the artifact


def test_writes_parquet_splits_and_the_documented_properties(tmp_path, eg_data):
    ex = run(tmp_path, input_base=str(eg_data))
    p = ex.properties
    assert p["splits"] == ["train", "eval"]
    assert sum(p["row_counts"].values()) == 3000
    assert p["columns"] == {"id": "int", "x": "float", "name": "string"}
    assert p["format"] == "csv" and p["span"] is None and p["version"] is None and p["bad_rows_skipped"] == 0
    assert p["input_fingerprint"] == fingerprint_inputs(eg_data)
    assert [f.relative_to(ex.uri).as_posix() for f in split_files(ex, "train")] == ["Split-train/part-00000.parquet"]
    table = pq.read_table(split_files(ex, "eval")[0])
    assert table.schema == pa.schema([("id", pa.int64()), ("x", pa.float64()), ("name", pa.string())])
    assert len(rows_of(ex, "eval")) == p["row_counts"]["eval"]


def test_split_ratio_follows_the_weights(tmp_path, eg_data):
    p = run(tmp_path, input_base=str(eg_data)).properties["row_counts"]
    assert abs(p["train"] / 3000 - 2 / 3) < 0.04
    three = run(tmp_path, input_base=str(eg_data), splits={"train": 8, "eval": 1, "test": 1}).properties
    assert three["splits"] == ["train", "eval", "test"]
    assert abs(three["row_counts"]["train"] / 3000 - 0.8) < 0.04
    assert abs(three["row_counts"]["test"] / 3000 - 0.1) < 0.03


def test_splits_are_the_same_every_run_and_whatever_the_file_chunking(tmp_path, eg_data):
    first = run(tmp_path, input_base=str(eg_data))
    second = run(tmp_path, input_base=str(eg_data))
    # the same rows cut into three files, in another order, with columns reordered
    rows = numbered_rows(3000)
    chunked = tmp_path / "chunked"
    write_csv(chunked / "c.csv", "id,x,name", rows[:700])
    write_csv(chunked / "a.csv", "id,x,name", rows[2000:][::-1])
    write_csv(chunked / "b.csv", "name,id,x", [",".join([r.split(",")[2], *r.split(",")[:2]]) for r in rows[700:2000]])
    third = run(tmp_path, input_base=str(chunked))
    for split in ("train", "eval"):
        assert row_set(first, split) == row_set(second, split) == row_set(third, split)
    assert len(split_files(third, "train")) == 3


def test_split_dict_order_does_not_matter(tmp_path, eg_data):
    a = run(tmp_path, input_base=str(eg_data), splits={"train": 2, "eval": 1})
    b = run(tmp_path, input_base=str(eg_data), splits={"eval": 1, "train": 2})
    assert row_set(a, "eval") == row_set(b, "eval")


def test_row_hashes_are_the_same_in_another_process():
    table = pa.table({"a": [1, None, 3], "s": ["x", "", None], "f": [0.5, -0.0, float("nan")],
                      "b": [True, False, None]})
    code = ("import pyarrow as pa; from jfx.components._example_gen import row_hashes;"
            "t = pa.table({'a': [1, None, 3], 's': ['x', '', None], 'f': [0.5, 0.0, float('nan')],"
            "'b': [True, False, None]}); print(list(map(int, row_hashes(t))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert json.loads(out.stdout) == [int(h) for h in row_hashes(table)]  # -0.0 hashes as 0.0
    assert len(set(row_hashes(table).tolist())) == 3


def test_row_hashes_are_the_same_in_every_version():
    # Pinned: a change to the hash would move existing rows to other splits.
    import datetime

    table = pa.table({"i": pa.array([1, None, -3, 1]), "f": pa.array([0.5, -0.0, float("nan"), None]),
                      "s": pa.array(["a", None, "", "a"]), "b": pa.array([True, False, None, True]),
                      "t": pa.array([datetime.datetime(2024, 1, 2), None, datetime.datetime(1970, 1, 1),
                                     datetime.datetime(2024, 1, 2)], pa.timestamp("us"))})
    pinned = [17232022345752821219, 15528705654690169695, 15848083873992589869, 1994692568182306426]
    assert [int(h) for h in row_hashes(table)] == pinned
    assert [int(h) for h in row_hashes(table.slice(1))] == pinned[1:]  # an offset into the buffers


def test_split_key_keeps_each_key_in_one_split(tmp_path):
    rng = np.random.default_rng(0)
    users = rng.integers(0, 200, 3000)
    write_csv(tmp_path / "in" / "d.csv", "user,v", [f"u{u},{rng.random()}" for u in users])
    ex = run(tmp_path, input_base=str(tmp_path / "in"), split_key="user")
    train = {r["user"] for r in rows_of(ex, "train")}
    evals = {r["user"] for r in rows_of(ex, "eval")}
    assert train and evals and not train & evals and len(train | evals) == 200
    with pytest.raises(DataValidationError, match="split_key 'nope' is not a column"):
        run(tmp_path, input_base=str(tmp_path / "in"), split_key="nope")


def test_bad_split_weights(tmp_path, eg_data):
    with pytest.raises(InvalidArgumentError, match="weight must be a positive number"):
        run(tmp_path, input_base=str(eg_data), splits={"train": 0, "eval": 1})


# ----------------------------------------------------------- patterns and spans


def test_pre_split_input_is_taken_as_given(tmp_path):
    write_csv(tmp_path / "in" / "train" / "part1.csv", "a,b", ["1,x", "2,y"])
    write_csv(tmp_path / "in" / "train" / "part2.csv", "a,b", ["3,z"])
    write_csv(tmp_path / "in" / "eval" / "e.csv", "a,b", ["4,w"])
    write_csv(tmp_path / "in" / "test" / "t.csv", "a,b", [])  # header only: an empty split
    ex = run(tmp_path, input_base=str(tmp_path / "in"), input_pattern="{SPLIT}/*.csv")
    assert ex.properties["splits"] == ["train", "eval", "test"]
    assert ex.properties["row_counts"] == {"train": 3, "eval": 1, "test": 0}
    assert sorted(r["a"] for r in rows_of(ex, "train")) == [1, 2, 3]
    assert rows_of(ex, "test") == [] and len(split_files(ex, "test")) == 1


def make_spans(base: Path) -> None:
    for span, version, value in [(1, 1, 10), (2, 1, 20), (2, 2, 21), (10, 1, 100), (10, 3, 103)]:
        write_csv(base / f"span-{span}" / f"v{version}" / "d.csv", "a", [str(value)] * 3)


def test_latest_span_and_version_unless_pinned(tmp_path):
    make_spans(tmp_path / "in")
    pattern = "span-{SPAN}/v{VERSION}/*.csv"

    def values(ex):
        return {r["a"] for s in ex.properties["splits"] for r in rows_of(ex, s)}

    latest = run(tmp_path, input_base=str(tmp_path / "in"), input_pattern=pattern)
    assert (latest.properties["span"], latest.properties["version"], values(latest)) == (10, 3, {103})
    pinned = run(tmp_path, input_base=str(tmp_path / "in"), input_pattern=pattern, span=2)
    assert (pinned.properties["span"], pinned.properties["version"], values(pinned)) == (2, 2, {21})
    both = run(tmp_path, input_base=str(tmp_path / "in"), input_pattern=pattern, span=2, version=1)
    assert (both.properties["span"], both.properties["version"], values(both)) == (2, 1, {20})
    no_version = select_inputs(tmp_path / "in", "csv", "span-{SPAN}/v1/*.csv")
    assert (no_version.span, no_version.version) == (10, None)
    with pytest.raises(DataValidationError, match=r"span 3 not found.*spans present: 1, 2, 10"):
        run(tmp_path, input_base=str(tmp_path / "in"), input_pattern=pattern, span=3)
    with pytest.raises(InvalidArgumentError, match="no \\{SPAN\\}"):
        run(tmp_path, input_base=str(tmp_path / "in"), input_pattern="**/*.csv", span=1)


# ------------------------------------------------------------------ formats


def test_parquet_and_jsonl_inputs(tmp_path):
    table = pa.table({"a": pa.array(range(300), pa.int32()), "s": [f"s{i}" for i in range(300)]})
    (tmp_path / "pq").mkdir()
    pq.write_table(table.slice(0, 100), tmp_path / "pq" / "p0.parquet")
    pq.write_table(table.slice(100), tmp_path / "pq" / "p1.parquet")
    ex = run(tmp_path, input_base=str(tmp_path / "pq"), format="parquet")
    assert ex.properties["columns"] == {"a": "int", "s": "string"} and ex.properties["format"] == "parquet"
    assert sum(ex.properties["row_counts"].values()) == 300
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    js = run(tmp_path, input_base=str(tmp_path / "js"), format="jsonl")
    assert js.properties["columns"] == {"a": "int", "s": "string"}
    # the same values give the same splits, whatever the file format
    assert row_set(ex, "train") == row_set(js, "train")


def test_jsonl_read_in_small_blocks_gives_what_the_whole_file_gives(tmp_path, monkeypatch):
    # Types that change after the first blocks (int, then floats, then text), a field first met
    # near the end, one null until late, and timestamps that turn out to be text.
    rows = []
    for i in range(3000):
        r = {"id": i, "x": i if i < 2000 else i + 0.5, "code": i if i < 2500 else f"c{i}",
             "when": "2024-01-02" if i < 2900 else "soon", "gone": None if i < 2800 else True}
        if i > 2950:
            r["late"] = i
        rows.append(r)
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "d.jsonl").write_text("".join(json.dumps(r) + "\n\n" for r in rows))
    whole = run(tmp_path, input_base=str(tmp_path / "js"), format="jsonl")
    monkeypatch.setenv("JFX_READ_BLOCK_BYTES", "1024")
    blocks = list(readers.iter_blocks(tmp_path / "js" / "d.jsonl", "jsonl"))
    assert len(blocks) > 100
    small = run(tmp_path, input_base=str(tmp_path / "js"), format="jsonl")
    assert small.properties["columns"] == whole.properties["columns"] == {
        "id": "int", "x": "float", "code": "string", "when": "string", "gone": "bool", "late": "int"}
    assert small.properties["row_counts"] == whole.properties["row_counts"]
    for split in ("train", "eval"):
        assert rows_of(small, split) == rows_of(whole, split)
    codes = {r["code"] for split in ("train", "eval") for r in rows_of(small, split)}
    assert {"7", "c2999"} <= codes
    # a bad line deep in the file is named by its line, read in blocks too
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2000]) + "{oops\n")
    with pytest.raises(DataValidationError, match=r"d\.jsonl: line 2001: not valid JSON"):
        run(tmp_path, input_base=str(tmp_path / "bad"), format="jsonl")


def test_csv_read_in_small_blocks_gives_what_the_whole_file_gives(tmp_path, monkeypatch):
    # Types that change after the first blocks (int, then floats, then text), a column empty
    # until late, timestamps that turn out to be text, quoted values with line breaks; the
    # stream is given the first block's types and read ahead on a thread of its own.
    rows = [f'{i},{i if i < 2000 else i + 0.5},{i if i < 2500 else f"c{i}"},'
            f'{"2024-01-02" if i < 2900 else "soon"},{"" if i < 2800 else "true"},"a\nb {i % 5}"'
            for i in range(3000)]
    write_csv(tmp_path / "csv" / "d.csv", "id,x,code,when,gone,note", rows)
    whole = readers.read_file(tmp_path / "csv" / "d.csv", "csv")
    monkeypatch.setenv("JFX_READ_BLOCK_BYTES", "1024")
    assert (tmp_path / "csv" / "d.csv").stat().st_size > 50 * 1024  # over 50 blocks
    small = run(tmp_path, input_base=str(tmp_path / "csv"))
    assert small.properties["columns"] == readers.column_types(whole.table) == {
        "id": "int", "x": "float", "code": "string", "when": "string", "gone": "bool", "note": "string"}
    got = sorted((r for split in ("train", "eval") for r in rows_of(small, split)), key=lambda r: r["id"])
    assert got == whole.table.to_pylist()
    assert {"7", "c2999"} <= {r["code"] for r in got}
    # a short row deep in the file, and a value the schema's type refuses: named by their line
    write_csv(tmp_path / "bad" / "d.csv", "id,x", [f"{i},{i}" for i in range(2000)] + ["2000"])
    with pytest.raises(DataValidationError, match=r"d\.csv: line 2002: expected 2 fields, got 1"):
        run(tmp_path, input_base=str(tmp_path / "bad"))
    skipped = run(tmp_path, input_base=str(tmp_path / "bad"), on_bad_rows="skip")
    assert skipped.properties["bad_rows_skipped"] == 1 and sum(skipped.properties["row_counts"].values()) == 2000
    write_csv(tmp_path / "typed" / "d.csv", "id,x", [f"{i},{i}" for i in range(2000)] + ["2000,many"])
    schema_dir = tmp_path / "schema"
    schema_dir.mkdir()
    (schema_dir / "schema.json").write_text(json.dumps(
        {"version": 1, "columns": {"id": {"type": "int"}, "x": {"type": "int"}}}))
    with pytest.raises(DataValidationError, match=r"d\.csv: line 2002, column 'x': cannot convert 'many' to int"):
        run(tmp_path, input_base=str(tmp_path / "typed"), schema=Schema(schema_dir))


def test_types_are_unified_across_files(tmp_path):
    write_csv(tmp_path / "in" / "a.csv", "n,code", ["1,007", "2,8"])
    write_csv(tmp_path / "in" / "b.csv", "n,code", ["2.5,x9"])
    ex = run(tmp_path, input_base=str(tmp_path / "in"))
    assert ex.properties["columns"] == {"n": "float", "code": "string"}
    codes = {r["code"] for s in ("train", "eval") for r in rows_of(ex, s)}
    assert codes == {"007", "8", "x9"}  # re-read as text, not "7"


def test_schema_gives_the_column_types(tmp_path):
    write_csv(tmp_path / "in" / "d.csv", "a,b", ["1,2", "3,4", "x,5"])
    schema_dir = tmp_path / "schema"
    schema_dir.mkdir()
    (schema_dir / "schema.json").write_text(json.dumps(
        {"version": 1, "columns": {"a": {"type": "int"}, "b": {"type": "string"}}}))
    schema = Schema(schema_dir)
    with pytest.raises(DataValidationError, match=r"d\.csv: line 4, column 'a': cannot convert 'x' to int"):
        run(tmp_path, input_base=str(tmp_path / "in"), schema=schema)
    ex = run(tmp_path, input_base=str(tmp_path / "in"), schema=schema, on_bad_rows="skip")
    assert ex.properties["columns"] == {"a": "int", "b": "string"}
    assert ex.properties["bad_rows_skipped"] == 1 and sum(ex.properties["row_counts"].values()) == 2


# ------------------------------------------------------------------ bad input


def test_bad_rows_are_skipped_and_counted(tmp_path):
    write_csv(tmp_path / "in" / "d.csv", "a,b", ["1,2", "3", "4,5,6", "7,8"])
    with pytest.raises(DataValidationError, match=r"d\.csv: line 3: expected 2 fields, got 1"):
        run(tmp_path, input_base=str(tmp_path / "in"))
    ex = run(tmp_path, input_base=str(tmp_path / "in"), on_bad_rows="skip")
    assert ex.properties["bad_rows_skipped"] == 2 and sum(ex.properties["row_counts"].values()) == 2


@pytest.mark.parametrize("content, message", [
    (b"", r"empty\.csv: the file is empty"),
    (b"a,b\n", r"no data rows .*empty\.csv.*header line alone"),
    (b"a,b\n1,2\n3,4,5\n", r"empty\.csv: line 3: expected 2 fields, got 3"),
    (b"a,b\n1,2\n\xff,3\n", r"empty\.csv: line 3 \(byte offset 8\) is not valid UTF-8"),
])
def test_bad_files_raise_naming_the_file(tmp_path, content, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.csv").write_bytes(content)
    with pytest.raises(DataValidationError, match=message):
        run(tmp_path, input_base=str(tmp_path / "in"))


def test_files_with_different_columns(tmp_path):
    write_csv(tmp_path / "in" / "a.csv", "x,y", ["1,2"])
    write_csv(tmp_path / "in" / "b.csv", "x,z", ["1,2"])
    with pytest.raises(DataValidationError, match=r"b.csv: its columns differ from a.csv's; missing y; extra z"):
        run(tmp_path, input_base=str(tmp_path / "in"))


def test_missing_input_and_no_matching_files(tmp_path):
    with pytest.raises(DataValidationError, match=r"input_base .*nowhere' does not exist"):
        run(tmp_path, input_base=str(tmp_path / "nowhere"))
    write_csv(tmp_path / "in" / "d.txt", "a", ["1"])
    with pytest.raises(DataValidationError, match="no csv files under"):
        run(tmp_path, input_base=str(tmp_path / "in"))
    with pytest.raises(DataValidationError, match=r"no file under .* matches input_pattern '\*/\*\.csv'"):
        run(tmp_path, input_base=str(tmp_path / "in"), input_pattern="*/*.csv")
    with pytest.raises(InvalidArgumentError, match="format must be one of"):
        run(tmp_path, input_base=str(tmp_path / "in"), format="xlsx")


# ------------------------------------------------------------------ fingerprint


def test_fingerprint_follows_contents_not_timestamps(tmp_path, eg_data):
    f = eg_data / "data.csv"
    before = fingerprint_inputs(eg_data)
    os.utime(f, (1, 1))
    assert fingerprint_inputs(eg_data) == before
    content = f.read_bytes()
    f.write_bytes(content.replace(b"name1\n", b"name2\n", 1))  # same size, new bytes
    assert fingerprint_inputs(eg_data) != before
    f.write_bytes(content)
    (eg_data / ".hidden.csv").write_text("ignored")
    assert fingerprint_inputs(eg_data) == before
    write_csv(eg_data / "more.csv", "id,x,name", ["1,1,a"])
    assert fingerprint_inputs(eg_data) != before


# ------------------------------------------------------------------ Beam


def test_beam_gives_the_same_rows_in_the_same_splits(tmp_path):
    rows = numbered_rows(1500)
    write_csv(tmp_path / "in" / "a.csv", "id,x,name", [*rows[:500], "bad"])
    write_csv(tmp_path / "in" / "b.csv", "id,x,name", rows[500:])
    local = run(tmp_path, input_base=str(tmp_path / "in"), on_bad_rows="skip")
    beam = run(tmp_path, input_base=str(tmp_path / "in"), on_bad_rows="skip",
               beam_pipeline_args=["--runner=DirectRunner"])
    for key in ("splits", "row_counts", "columns", "input_fingerprint", "bad_rows_skipped"):
        assert beam.properties[key] == local.properties[key]
    for split in ("train", "eval"):
        assert row_set(beam, split) == row_set(local, split)
    assert sorted(p.name for p in Path(beam.uri).iterdir()) == ["Split-eval", "Split-train"]
    with pytest.raises(DataValidationError, match=r"a\.csv: line 502: expected 3 fields, got 1"):
        run(tmp_path, input_base=str(tmp_path / "in"), beam_pipeline_args=[])


def test_beam_reads_a_file_bigger_than_a_block_in_pieces(tmp_path, monkeypatch):
    # 3,000 rows (about 45 KB) read in 1 KiB blocks and written in row groups of 256 rows,
    # with a column that turns to text late: the same rows, splits and types as in-process.
    rows = [f"{i},{i * 0.5},{i if i < 2500 else f'c{i}'}" for i in range(3000)]
    write_csv(tmp_path / "in" / "a.csv", "id,x,code", rows)
    monkeypatch.setenv("JFX_READ_BLOCK_BYTES", "1024")
    monkeypatch.setenv("JFX_ROW_GROUP_ROWS", "256")
    local = run(tmp_path, input_base=str(tmp_path / "in"))
    beam = run(tmp_path, input_base=str(tmp_path / "in"), beam_pipeline_args=["--runner=DirectRunner"])
    assert beam.properties["columns"] == local.properties["columns"] == {"id": "int", "x": "float", "code": "string"}
    assert beam.properties["row_counts"] == local.properties["row_counts"]
    for split in ("train", "eval"):
        assert rows_of(beam, split) == rows_of(local, split)
        # written in row groups as it was read, as the local engine writes them
        [shard], [local_shard] = split_files(beam, split), split_files(local, split)
        groups = pq.ParquetFile(shard).metadata.num_row_groups
        assert groups > 2 and groups == pq.ParquetFile(local_shard).metadata.num_row_groups


def _awkward_rows(n: int) -> list[str]:
    """Rows whose values hold quoted line breaks, commas and quotes, and an inch mark."""
    kinds = ['"two\nlines"', '"a, b"', '"say ""hi"""', '5"7', '"many\n\n\nbreaks"', "plain", ""]
    return [f"{i},{i * 0.25},{kinds[i % len(kinds)]}" for i in range(n)]


@pytest.mark.parametrize("beam_args", [
    ["--runner=DirectRunner"],
    ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
], ids=["in_memory", "two_processes"])
def test_beam_converts_one_large_csv_in_parts_with_the_same_rows_in_the_same_order(tmp_path, monkeypatch, beam_args):
    rows = _awkward_rows(4000)
    rows[3500] = "3500,1.5,word"  # a column of text late in the file, and ints that turn to floats
    rows[3900] = "3900,x9,word"
    write_csv(tmp_path / "in" / "a.csv", "id,x,note", rows)
    write_csv(tmp_path / "in" / "b.csv", "id,x,note", _awkward_rows(50))  # smaller than a part: whole
    monkeypatch.setenv("JFX_READ_BLOCK_BYTES", "1024")
    monkeypatch.setenv("JFX_ROW_GROUP_ROWS", "256")
    monkeypatch.setenv("JFX_BEAM_PART_BYTES", "8192")
    local = run(tmp_path, input_base=str(tmp_path / "in"))
    beam = run(tmp_path, input_base=str(tmp_path / "in"), beam_pipeline_args=beam_args)
    for key in ("splits", "row_counts", "columns", "input_fingerprint", "bad_rows_skipped"):
        assert beam.properties[key] == local.properties[key]
    assert beam.properties["columns"] == {"id": "int", "x": "string", "note": "string"}
    for split in ("train", "eval"):
        assert rows_of(beam, split) == rows_of(local, split)  # the same rows, in the file's order
        assert len(split_files(beam, split)) > 10  # a.csv went to the workers in parts
    assert any(r["note"] == "two\nlines" for r in rows_of(beam, "train"))


def test_beam_parts_name_a_bad_row_by_its_line_in_the_whole_file(tmp_path, monkeypatch):
    rows = _awkward_rows(3000)
    rows[2700] = "oops"  # after 2,700 rows, of which some span several lines
    path = write_csv(tmp_path / "in" / "a.csv", "id,x,note", rows)
    line = path.read_text().split("\n").index("oops") + 1
    monkeypatch.setenv("JFX_BEAM_PART_BYTES", "4096")
    beam_args = ["--runner=DirectRunner"]
    with pytest.raises(DataValidationError, match=rf"a\.csv: line {line}: expected 3 fields, got 1"):
        run(tmp_path, input_base=str(tmp_path / "in"), beam_pipeline_args=beam_args)
    local = run(tmp_path, input_base=str(tmp_path / "in"), on_bad_rows="skip")
    beam = run(tmp_path, input_base=str(tmp_path / "in"), on_bad_rows="skip", beam_pipeline_args=beam_args)
    assert beam.properties["bad_rows_skipped"] == local.properties["bad_rows_skipped"] == 1
    assert beam.properties["row_counts"] == local.properties["row_counts"]
    # a value that does not convert to the schema's type is named by its line too
    rows[2700] = "2700,not-a-number,x"
    write_csv(path, "id,x,note", rows)
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "schema.json").write_text(json.dumps({"version": 1, "columns": {
        "id": {"type": "int"}, "x": {"type": "float"}, "note": {"type": "string"}}}))
    with pytest.raises(DataValidationError,
                       match=rf"a\.csv: line {line}, column 'x': cannot convert 'not-a-number' to float"):
        run(tmp_path, input_base=str(tmp_path / "in"), beam_pipeline_args=beam_args, schema=Schema(schema))


def test_beam_converts_one_large_parquet_file_by_row_groups(tmp_path, monkeypatch):
    n = 3000
    table = pa.table({"id": list(range(n)), "s": [f"v{i % 13}" for i in range(n)],
                      "code": [str(i) if i != 2500 else "oops" for i in range(n)]})
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "big.parquet", row_group_size=200)  # 15 row groups
    monkeypatch.setenv("JFX_BEAM_PART_BYTES", "4096")
    monkeypatch.setenv("JFX_ROW_GROUP_ROWS", "256")
    beam_args = ["--runner=DirectRunner"]
    local = run(tmp_path, input_base=str(tmp_path / "in"), format="parquet")
    beam = run(tmp_path, input_base=str(tmp_path / "in"), format="parquet", beam_pipeline_args=beam_args)
    for key in ("row_counts", "columns", "input_fingerprint"):
        assert beam.properties[key] == local.properties[key]
    for split in ("train", "eval"):
        assert rows_of(beam, split) == rows_of(local, split)
        assert len(split_files(beam, split)) > 3  # its row groups went to the workers in runs
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "schema.json").write_text(json.dumps({"version": 1, "columns": {
        "id": {"type": "int"}, "s": {"type": "string"}, "code": {"type": "int"}}}))
    with pytest.raises(DataValidationError, match=r"big\.parquet: row 2501, column 'code': cannot convert 'oops'"):
        run(tmp_path, input_base=str(tmp_path / "in"), format="parquet", schema=Schema(schema),
            beam_pipeline_args=beam_args)


def test_beam_converts_a_large_parquet_object_on_a_store_by_row_groups(tmp_path, monkeypatch, s3_root):
    """A Parquet file on an object store is cut by its footer's row groups too: the workers
    read their runs of groups through the storage layer, with the rows of a local copy."""
    from jfx import _storage as storage

    n = 3000
    table = pa.table({"id": list(range(n)), "x": [i * 0.5 for i in range(n)], "s": [f"v{i % 13}" for i in range(n)]})
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "big.parquet", row_group_size=200)  # 15 row groups
    remote = storage.join(s3_root, "in")
    storage.write_bytes(storage.join(remote, "big.parquet"), (tmp_path / "in" / "big.parquet").read_bytes())
    monkeypatch.setenv("JFX_BEAM_PART_BYTES", "4096")
    monkeypatch.setenv("JFX_ROW_GROUP_ROWS", "256")
    local = run(tmp_path, input_base=str(tmp_path / "in"), format="parquet")
    beam = run(tmp_path, input_base=remote, format="parquet", beam_pipeline_args=["--runner=DirectRunner"])
    for key in ("row_counts", "columns"):  # (the fingerprint of an object is of its ETag, not its bytes)
        assert beam.properties[key] == local.properties[key]
    for split in ("train", "eval"):
        assert rows_of(beam, split) == rows_of(local, split)
        assert len(split_files(beam, split)) > 3  # in runs of row groups, not as one element


# ------------------------------------------------------------------ a real run


def test_a_pipeline_run_publishes_examples_and_a_failure_publishes_nothing(tmp_path, eg_data):
    root = tmp_path / "root"
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    runner = LocalDagRunner(progress=False)
    result = runner.run(Pipeline("t", components=[ExampleGen(input_base=str(eg_data))],
                                 pipeline_root=str(root), metadata_url=url))
    assert result.state == "COMPLETE"
    [art] = result.nodes["ExampleGen"].outputs["examples"]
    assert art.properties["row_counts"]["train"] + art.properties["row_counts"]["eval"] == 3000
    published = Examples(art.uri, properties=art.properties)
    assert len(rows_of(published, "train")) == art.properties["row_counts"]["train"]

    bad = tmp_path / "bad"
    write_csv(bad / "broken.csv", "a,b", ["1,2", "3"])
    failed = runner.run(Pipeline("t2", components=[ExampleGen(input_base=str(bad))],
                                 pipeline_root=str(root), metadata_url=url))
    outcome = failed.nodes["ExampleGen"]
    assert failed.state == "FAILED" and outcome.state == "failed"
    assert "broken.csv: line 3" in outcome.error and "DataValidationError" in outcome.error
    node_dir = root / "t2" / "ExampleGen"
    assert not (node_dir / "examples").exists()
    assert not list(node_dir.glob(".staging-*"))


def test_a_run_over_a_csv_with_a_quote_that_never_closes_fails_and_records_nothing(tmp_path):
    bad = tmp_path / "bad"
    write_csv(bad / "quotes.csv", "a,b,c", ['1,2,"oops'] + [f"{i},{i},x" for i in range(20)])
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    root = tmp_path / "root"
    for on_bad_rows in ("error", "skip"):  # skipping rows cannot skip this: where would the row end?
        result = LocalDagRunner(progress=False).run(Pipeline(
            f"q-{on_bad_rows}", components=[ExampleGen(input_base=str(bad), on_bad_rows=on_bad_rows)],
            pipeline_root=str(root), metadata_url=url))
        outcome = result.nodes["ExampleGen"]
        assert result.state == "FAILED" and outcome.state == "failed"
        assert "quotes.csv: line 2, character 5: a quoted value opens here and never closes" in outcome.error
        assert not outcome.outputs.get("examples")
        assert not (root / f"q-{on_bad_rows}" / "ExampleGen" / "examples").exists()
        assert not list((root / f"q-{on_bad_rows}" / "ExampleGen").glob(".staging-*"))
    with MetadataStore(url) as store:
        assert store.get_artifacts_by_type("Examples") == []
        assert {e.state for e in store.get_executions()} == {ExecutionState.FAILED}


def test_a_run_reads_a_10_mb_value_and_refuses_one_over_the_limit(tmp_path, monkeypatch):
    data = tmp_path / "data"
    value = "v" * 10_000_000
    write_csv(data / "wide.csv", "id,blob", [f'1,"{value}"', "2,short"])
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    root = tmp_path / "root"

    def run(name):
        return LocalDagRunner(progress=False).run(Pipeline(
            name, components=[ExampleGen(input_base=str(data))], pipeline_root=str(root), metadata_url=url))

    done = run("wide")
    assert done.state == "COMPLETE"
    [art] = done.nodes["ExampleGen"].outputs["examples"]
    published = Examples(art.uri, properties=art.properties)
    blobs = {r["id"]: r["blob"] for s in ("train", "eval") for r in rows_of(published, s)}
    assert blobs == {1: value, 2: "short"}

    monkeypatch.setattr(readers, "CSV_MAX_RECORD_BYTES", 8 << 20)
    failed = run("too-wide")
    outcome = failed.nodes["ExampleGen"]
    assert failed.state == "FAILED" and outcome.state == "failed"
    assert "wide.csv: line 2: a record of 9.5 MiB; jfx reads CSV records of up to 8 MiB" in outcome.error
    assert not outcome.outputs.get("examples")
    assert not (root / "too-wide" / "ExampleGen" / "examples").exists()
    with MetadataStore(url) as store:
        assert [a.uri for a in store.get_artifacts_by_type("Examples")] == [art.uri]


def test_a_changed_input_file_misses_the_cache(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("x,y\n1,a\n2,b\n3,c\n")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"

    def run():
        pipeline = Pipeline("cache", components=[ExampleGen(input_base=str(data))], pipeline_root=str(tmp_path / "r"),
                            metadata_url=url)
        return LocalDagRunner(progress=False).run(pipeline).nodes["ExampleGen"]

    first = run()
    assert run().state == "cached"
    (data / "rows.csv").write_text("x,y\n1,a\n2,b\n3,d\n")  # same size, new bytes
    changed = run()
    assert changed.state == "complete" and changed.cache_miss_reason == "changed external input"
    assert changed.outputs["examples"][0].properties["input_fingerprint"] != \
        first.outputs["examples"][0].properties["input_fingerprint"]
