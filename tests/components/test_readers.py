"""File readers: CSV / Parquet / JSON Lines → Arrow with jfx types, bad rows, bad files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jfx.components import _readers as readers
from jfx.components._readers import column_types, conform, read_file, unify_types
from jfx.errors import DataValidationError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def csv_read(tmp_path, content, **kw):
    return read_file(write(tmp_path, "data.csv", content), "csv", name="data.csv", **kw)


# --------------------------------------------------------------- type inference


def test_csv_infers_each_type(tmp_path):
    r = csv_read(tmp_path, "i,f,s,b,t,d,z\n"
                           "1,1.5,a,true,2024-01-02T03:04:05,2024-01-02,2024-01-02T03:04:05Z\n"
                           "-2,2,b,False,2024-01-02 03:04:05.123456,2024-01-03,2024-01-02T05:04:05+02:00\n")
    assert column_types(r.table) == {"i": "int", "f": "float", "s": "string", "b": "bool",
                                     "t": "timestamp", "d": "timestamp", "z": "timestamp"}
    rows = r.table.to_pylist()
    assert rows[0]["i"] == 1 and rows[1]["f"] == 2.0 and rows[1]["b"] is False
    assert rows[1]["t"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert rows[1]["d"] == dt.datetime(2024, 1, 3)
    # zoned values are converted to UTC
    assert rows[0]["z"] == rows[1]["z"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert r.table.schema.field("t").type == pa.timestamp("us")


def test_dates_mixed_with_zoned_times_are_still_timestamps(tmp_path):
    r = csv_read(tmp_path, "t\n2024-01-02\n2024-01-03T04:05:06Z\n")
    assert column_types(r.table) == {"t": "timestamp"}
    assert r.table.column("t").to_pylist() == [dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3, 4, 5, 6)]


def test_missing_values_are_null(tmp_path):
    r = csv_read(tmp_path, "a,s\n1,x\n,NA\n3,\n")
    assert column_types(r.table) == {"a": "int", "s": "string"}
    assert r.table.column("a").to_pylist() == [1, None, 3]
    assert r.table.column("s").to_pylist() == ["x", None, None]


def test_type_is_inferred_over_the_whole_file_not_its_first_block(tmp_path):
    # 200k ints, then text far beyond pyarrow's first block: a string column, no row lost.
    n = 200_000
    body = "".join(f"{i},{i}\n" for i in range(n))
    r = csv_read(tmp_path, "a,b\n" + body + "oops,1.5\n")
    assert column_types(r.table) == {"a": "string", "b": "float"}
    assert r.table.num_rows == n + 1
    assert r.table.column("a")[0].as_py() == "0" and r.table.column("a")[n].as_py() == "oops"
    assert r.table.column("b")[n].as_py() == 1.5


def test_jsonl_infers_types_and_widens(tmp_path):
    lines = [{"i": 1, "f": 1, "s": "a", "b": True, "t": "2024-01-02T03:04:05"},
             {"i": 2, "f": 2.5, "s": "b", "b": False, "t": "2024-01-03T00:00:00", "extra": "x"}]
    r = read_file(write(tmp_path, "d.jsonl", "\n".join(map(json.dumps, lines)) + "\n"), "jsonl")
    assert column_types(r.table) == {"i": "int", "f": "float", "s": "string", "b": "bool",
                                     "t": "timestamp", "extra": "string"}
    assert r.table.column("extra").to_pylist() == [None, "x"]


def test_jsonl_field_with_numbers_and_text_is_a_string_column(tmp_path):
    r = read_file(write(tmp_path, "d.jsonl", '{"a": 1}\n{"a": "x"}\n{"a": 2.5}\n'), "jsonl")
    assert column_types(r.table) == {"a": "string"}
    assert r.table.column("a").to_pylist() == ["1", "x", "2.5"]


def test_parquet_types_map_to_jfx_types(tmp_path):
    table = pa.table({
        "i32": pa.array([1, 2], pa.int32()),
        "f32": pa.array([0.5, 1.5], pa.float32()),
        "cat": pa.array(["a", "b"]).dictionary_encode(),
        "ts": pa.array([0, 1_000_000_001], pa.timestamp("ns", tz="Europe/Paris")),
        "day": pa.array([dt.date(2024, 1, 2), None]),
        "ok": pa.array([True, None]),
        "big": pa.array(["x", "y"], pa.large_string()),
    })
    pq.write_table(table, tmp_path / "d.parquet")
    r = read_file(tmp_path / "d.parquet", "parquet")
    assert column_types(r.table) == {"i32": "int", "f32": "float", "cat": "string", "ts": "timestamp",
                                     "day": "timestamp", "ok": "bool", "big": "string"}
    assert r.table.column("ts").to_pylist()[1] == dt.datetime(1970, 1, 1, 0, 0, 1)  # UTC, ns → us
    assert r.table.column("day").to_pylist() == [dt.datetime(2024, 1, 2), None]


# ------------------------------------------------------------------ forced types


def test_forced_types_are_used_instead_of_inferred(tmp_path):
    r = csv_read(tmp_path, "a,b,c,d\n1,007,true,2024-01-02\n2,8,FALSE,2024-01-03T01:00:00Z\n",
                 forced={"a": "float", "b": "string", "c": "bool", "d": "timestamp"})
    assert column_types(r.table) == {"a": "float", "b": "string", "c": "bool", "d": "timestamp"}
    assert r.table.column("b").to_pylist() == ["007", "8"]


def test_a_value_that_cannot_take_the_forced_type_is_a_bad_row(tmp_path):
    content = "a,b\n1,x\n\n2,y\nseven,z\n4,w\n"
    with pytest.raises(DataValidationError, match=r"data\.csv: line 5, column 'a': cannot convert 'seven' to int"):
        csv_read(tmp_path, content, forced={"a": "int"})
    r = csv_read(tmp_path, content, forced={"a": "int"}, on_bad_rows="skip")
    assert r.bad_rows == 1 and r.table.column("a").to_pylist() == [1, 2, 4]
    assert r.table.column("b").to_pylist() == ["x", "y", "w"]


def test_a_few_bad_values_among_many_are_all_found(tmp_path):
    values = [str(i) for i in range(100_000)]
    for i in (5, 50_001, 99_999):
        values[i] = f"bad{i}"
    r = csv_read(tmp_path, "a\n" + "\n".join(values) + "\n", forced={"a": "int"}, on_bad_rows="skip")
    assert r.bad_rows == 3 and r.table.num_rows == 99_997


def test_parquet_and_jsonl_values_that_cannot_take_the_forced_type(tmp_path):
    pq.write_table(pa.table({"a": ["1", "2", "x"]}), tmp_path / "d.parquet")
    with pytest.raises(DataValidationError, match=r"row 3, column 'a'"):
        read_file(tmp_path / "d.parquet", "parquet", forced={"a": "int"})
    r = read_file(tmp_path / "d.parquet", "parquet", forced={"a": "int"}, on_bad_rows="skip")
    assert r.bad_rows == 1 and r.table.column("a").to_pylist() == [1, 2]
    path = write(tmp_path, "d.jsonl", '{"a": "1"}\n\n{"a": 2.5}\n')
    with pytest.raises(DataValidationError, match=r"d\.jsonl: line 3, column 'a'"):
        read_file(path, "jsonl", forced={"a": "int"}, name="d.jsonl")


# -------------------------------------------------------------------- bad input


def test_empty_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataValidationError, match=r"data\.csv: the file is empty"):
        csv_read(tmp_path, "")
    with pytest.raises(DataValidationError, match=r"d\.jsonl: the file is empty"):
        read_file(write(tmp_path, "d.jsonl", ""), "jsonl", name="d.jsonl")


def test_header_only_file_has_no_rows(tmp_path):
    r = csv_read(tmp_path, "a,b\n")
    assert r.table.num_rows == 0 and column_types(r.table) == {"a": None, "b": None}


def test_ragged_rows_name_the_line_a_user_sees(tmp_path):
    # A blank line and a quoted value spanning two lines come before the bad row: line 6.
    content = 'a,b\n1,2\n\n"x\ny",3\n4,5,6\n7,8\n'
    with pytest.raises(DataValidationError, match=r"data\.csv: line 6: expected 2 fields, got 3: '4,5,6'"):
        csv_read(tmp_path, content)
    r = csv_read(tmp_path, content, on_bad_rows="skip")
    assert r.bad_rows == 1 and r.table.column("b").to_pylist() == [2, 3, 8]


GOOD_ROWS = "".join(f"{i},{i},x{i}\n" for i in range(20))


@pytest.mark.parametrize("on_bad_rows", ["error", "skip"])
def test_a_quote_that_never_closes_names_the_line_where_it_opened(tmp_path, on_bad_rows):
    # Read as one value, the quote would swallow the 20 good rows after it (a 1-row table).
    content = 'a,b,c\n1,2,"oops\n' + GOOD_ROWS
    with pytest.raises(DataValidationError,
                       match=r"data\.csv: line 2, character 5: a quoted value opens here and never closes: '\"oops'"):
        csv_read(tmp_path, content, on_bad_rows=on_bad_rows)


def test_an_unclosed_quote_after_valid_multiline_values(tmp_path):
    # Quoted values before it hold line breaks, commas and quotes, and one ends with a comma.
    content = 'a,b,c\n1,"x\ny",z\n2,"a,",""\n3,"say ""hi""\n",4\n5,"never\n' + GOOD_ROWS
    with pytest.raises(DataValidationError, match=r"data\.csv: line 7, character 3: a quoted value"):
        csv_read(tmp_path, content)


def test_an_unclosed_quote_in_a_compressed_or_large_file(tmp_path):
    path = tmp_path / "data.csv.gz"
    # in the last column (pyarrow reads a 1-row table) or before it (pyarrow sees a short row)
    for content, character in (('a,b,c\n1,2,"oops\n', 5), ('a,b,c\n1,"oops,2\n', 3)):
        path.write_bytes(gzip.compress((content + GOOD_ROWS).encode()))
        for on_bad_rows in ("error", "skip"):
            with pytest.raises(DataValidationError,
                               match=rf"data\.csv\.gz: line 2, character {character}: a quoted value opens here"):
                read_file(path, "csv", name="data.csv.gz", on_bad_rows=on_bad_rows)
    # Beyond pyarrow's first block the open value straddles its blocks: still the quote's error.
    big = "a,b,c\n" + "".join(f"{i},{i},x\n" for i in range(200_000)) + '1,2,"oops\n' + GOOD_ROWS * 1000
    with pytest.raises(DataValidationError, match=r"data\.csv: line 200002, character 5: a quoted value"):
        csv_read(tmp_path, big)


def test_quoted_values_may_hold_line_breaks_commas_and_quotes(tmp_path):
    content = ('a,b\n"x\ny",1\n"ends with a break\n",2\n"a,",3\n"say ""hi""",4\n"",5\n'
               'ab"c,6\n"\r\nlast\n\n",')  # the last value spans lines; the file has no final break
    r = csv_read(tmp_path, content)
    assert r.table.column("a").to_pylist() == ["x\ny", "ends with a break\n", "a,", 'say "hi"', None, 'ab"c',
                                               "\r\nlast\n\n"]
    assert r.table.column("b").to_pylist() == [1, 2, 3, 4, 5, 6, None]


def test_ragged_row_deep_in_a_large_file(tmp_path):
    body = "".join(f"{i},{i}\n" for i in range(100_000))
    with pytest.raises(DataValidationError, match=r"line 100002: expected 2 fields, got 1"):
        csv_read(tmp_path, "a,b\n" + body + "9\n")


def test_a_value_of_10_mb_is_read(tmp_path):
    # Longer than pyarrow's 1 MiB block: one quoted (with line breaks and commas), one not.
    quoted = ("lorem, ipsum\n" * 800_000)[:10_000_000]
    plain = "y" * 10_000_000
    r = csv_read(tmp_path, f'a,b,c\n1,"{quoted}",x\n2,z,{plain}\n3,w,v\n')
    assert column_types(r.table) == {"a": "int", "b": "string", "c": "string"}
    assert r.table.column("a").to_pylist() == [1, 2, 3]
    assert r.table.column("b")[0].as_py() == quoted and r.table.column("c")[1].as_py() == plain


def test_a_record_over_the_limit_names_the_line_and_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CSV_MAX_RECORD_BYTES", 2 << 20)
    content = "a,b\n1,x\n\n2,\"" + "y\n" * (3 << 19) + '"\n4,z\n'
    with pytest.raises(DataValidationError,
                       match=r"data\.csv: line 4: a record of 3\.0 MiB; jfx reads CSV records of up to 2 MiB"):
        csv_read(tmp_path, content, on_bad_rows="skip")


def test_bad_rows_after_a_long_value_name_their_line(tmp_path):
    # Python's csv module refuses fields over 128 KiB; the line is found without it.
    long = "x" * 300_000
    with pytest.raises(DataValidationError, match=r"data\.csv: line 4: expected 2 fields, got 3: '3,4,5'"):
        csv_read(tmp_path, f'a,b\n1,"{long}\n"\n3,4,5\n')
    with pytest.raises(DataValidationError, match=r"data\.csv: line 4, column 'b': cannot convert 'x' to int"):
        csv_read(tmp_path, f'a,b\n{long},1\n\n3,x\n', forced={"b": "int"})


def test_non_utf8_bytes_name_line_and_offset(tmp_path):
    with pytest.raises(DataValidationError, match=r"data\.csv: line 3 \(byte offset 10\) is not valid UTF-8"):
        csv_read(tmp_path, b"a,b\n1,2\n3,\xe9t\xe9\n")
    with pytest.raises(DataValidationError, match=r"line 2 \(byte offset 14\) is not valid UTF-8"):
        read_file(write(tmp_path, "d.jsonl", b'{"a":1}\n{"a":"\xff"}\n'), "jsonl")
    # not UTF-8 is a whole-file problem: skipping rows does not hide it
    with pytest.raises(DataValidationError, match="not valid UTF-8"):
        csv_read(tmp_path, b"a,b\n1,2\n3,\xe9t\xe9\n", on_bad_rows="skip")


def test_duplicate_or_empty_column_names(tmp_path):
    with pytest.raises(DataValidationError, match=r"duplicate column name.*: a"):
        csv_read(tmp_path, "a,a\n1,2\n")
    with pytest.raises(DataValidationError, match="column 2 has an empty name"):
        csv_read(tmp_path, "a,\n1,2\n")


def test_bad_jsonl_lines(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"a": 1}\n{"a": 2\n[3]\n{"a": 4}\n')
    with pytest.raises(DataValidationError, match=r"d\.jsonl: line 2: not valid JSON"):
        read_file(path, "jsonl", name="d.jsonl")
    r = read_file(path, "jsonl", on_bad_rows="skip")
    assert r.bad_rows == 2 and r.table.column("a").to_pylist() == [1, 4]


def test_nested_jsonl_values_are_refused(tmp_path):
    with pytest.raises(DataValidationError, match="column 'a' holds nested values"):
        read_file(write(tmp_path, "d.jsonl", '{"a": {"b": 1}}\n'), "jsonl")


def test_unreadable_parquet(tmp_path):
    with pytest.raises(DataValidationError, match=r"d\.parquet: cannot read the file as Parquet"):
        read_file(write(tmp_path, "d.parquet", "not parquet"), "parquet", name="d.parquet")


# -------------------------------------------------------------- across files


def test_unify_types_widens_across_files():
    assert unify_types([("a", {"x": "int", "y": None, "z": "bool"}),
                        ("b", {"x": "float", "y": None, "z": "int"})], "csv") == \
        {"x": "float", "y": "string", "z": "string"}
    assert unify_types([("a", {"x": None}), ("b", {"x": "timestamp"})], "csv") == {"x": "timestamp"}
    # JSON Lines files may each hold some of the fields
    assert unify_types([("a", {"x": "int"}), ("b", {"y": "string"})], "jsonl") == {"x": "int", "y": "string"}
    with pytest.raises(DataValidationError, match=r"b.csv: its columns differ from a.csv's; missing y; extra z"):
        unify_types([("a.csv", {"x": "int", "y": "int"}), ("b.csv", {"x": "int", "z": "int"})], "csv")


def test_conform_orders_columns_and_fills_missing_ones():
    t = pa.table({"b": pa.nulls(2), "a": [1, 2]})
    out = conform(t, {"a": "int", "b": "string", "c": "float"})
    assert out.column_names == ["a", "b", "c"]
    assert out.schema.types == [pa.int64(), pa.string(), pa.float64()]
    assert np.all(np.isnan(out.column("c").to_numpy(zero_copy_only=False)))
