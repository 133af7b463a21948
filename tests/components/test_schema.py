"""The schema model, SchemaGen and ImportSchemaGen."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jfx.components._schema import (
    ColumnSchema,
    TableSchema,
    infer_schema,
    load_schema,
    save_schema,
    schema_from_dict,
    schema_to_dict,
)
from jfx.components._schema_gen import ImportSchemaGen, SchemaGen
from jfx.errors import DataValidationError
from jfx.types import Schema


from jfx_stats import num_col, split_doc, str_col, write_stats


SPECIES = ["Adelie"] * 5 + ["Gentoo"] * 3 + ["Chinstrap"] * 2


@pytest.fixture
def penguin_stats():
    train = split_doc(
        "train",
        species=str_col(SPECIES),
        bill=num_col([32.1, 40.0, 45.5, 59.6, 38.0, 41.0, 50.0, 47.0, 44.0], missing=1),
        year=num_col([2007, 2008, 2009, 2007, 2008, 2009, 2007, 2008, 2009, 2009], ctype="int"),
        name=str_col([f"n{i}" for i in range(10)] * 1, unique=150),  # too many values for a domain
    )
    return {"train": train}


def test_infer_schema_types_domains_ranges_and_presence(penguin_stats):
    schema = infer_schema(penguin_stats)
    species, bill, year, name = (schema.columns[c] for c in ("species", "bill", "year", "name"))
    assert list(schema.columns) == ["species", "bill", "year", "name"]
    assert species == ColumnSchema("string", True, 1.0, ("Adelie", "Chinstrap", "Gentoo"), None, min_count=1)
    assert (bill.type, bill.required, bill.min_presence, bill.range) == ("float", False, 0.0, (32.1, 59.6))
    assert bill.min_count == 1
    assert (year.type, year.required, year.range) == ("int", True, (2007, 2009))
    assert name.domain is None and name.range is None  # high-cardinality string: no domain


def test_infer_schema_spans_all_splits_and_leaves_partial_presence_loose():
    a = split_doc("a", x=num_col(range(985), missing=15), z=str_col(["p"]), k=str_col(["u"]))
    b = split_doc("b", x=num_col(range(-5, 10)), y=str_col(["u", "v"]), k=str_col(["v", "w"]))
    schema = infer_schema({"a": a, "b": b})
    assert list(schema.columns) == ["x", "z", "k", "y"]
    assert schema.columns["x"].min_presence == 0.0  # missing in split a: only min_count is asserted
    assert schema.columns["x"].min_count == 1
    assert schema.columns["x"].required is False  # missing in split a
    assert schema.columns["x"].range == (-5, 984)  # over both splits: the inferring data passes
    assert schema.columns["k"].domain == ("u", "v", "w") and schema.columns["k"].required is True
    y = schema.columns["y"]
    assert (y.required, y.min_presence, y.min_count) == (False, 0.0, 0)  # absent from a
    assert schema.columns["y"].domain == ("u", "v")


def test_infer_schema_no_domain_when_top_values_do_not_cover_the_column():
    col = str_col(["a", "b"])
    col["count"] = 5  # three values beyond the listed top values
    assert infer_schema({"train": split_doc("train", s=col)}).columns["s"].domain is None


def test_infer_feature_shape_false_makes_columns_optional(penguin_stats):
    schema = infer_schema(penguin_stats, infer_feature_shape=False)
    assert not any(c.required for c in schema.columns.values())


def test_schema_round_trip(tmp_path):
    schema = TableSchema({
        "species": ColumnSchema("string", True, 1.0, ("Adelie", "Gentoo"), None, {"linf": 0.2}, "penguin kind"),
        "bill": ColumnSchema("float", False, 0.98, None, (32.1, None), {"js": 0.1}),
        "when": ColumnSchema("timestamp", False, 0.0),
    })
    path = save_schema(schema, tmp_path)
    assert path == tmp_path / "schema.json"
    assert load_schema(tmp_path) == schema
    assert load_schema(path) == schema
    assert schema_from_dict(schema_to_dict(schema)) == schema
    doc = json.loads(path.read_text())
    assert doc["columns"]["bill"]["range"] == {"min": 32.1}


@pytest.mark.parametrize("column, needle", [
    ({"type": "decimal"}, "unknown type 'decimal'"),
    ({"type": "float", "range": {"min": 5, "max": 1}}, "bad range: min 5 is greater than max 1"),
    ({"type": "float", "range": {"min": "low"}}, "range.min"),
    ({"type": "string", "range": {"min": 0}}, "field 'range' applies to"),
    ({"type": "float", "domain": ["a"]}, "field 'domain' applies to string columns"),
    ({"type": "string", "domain": ["a", "a"]}, "lists 'a' more than once"),
    ({"type": "float", "min_presence": 1.5}, "min_presence"),
    ({"type": "float", "requird": True}, "unknown field(s) 'requird'"),
    ({"type": "float", "drift": {"linf": 0.1}}, "drift.linf"),
    ({"type": "string", "drift": {"kl": 0.1}}, "unknown metric 'kl'"),
    ({"type": "bool", "drift": {"js": 0.1, "linf": 0.1}}, "takes one metric"),
    ({"type": "float", "drift": {"js": 2}}, "drift.js' must be a number from 0 to 1"),
])
def test_malformed_schema_errors_name_file_column_and_field(tmp_path, column, needle):
    path = tmp_path / "my_schema.json"
    path.write_text(json.dumps({"version": 1, "columns": {"ok": {"type": "int"}, "bad_col": column}}))
    with pytest.raises(DataValidationError) as err:
        load_schema(path)
    message = str(err.value)
    assert str(path) in message and "column 'bad_col'" in message and needle in message


def test_schema_file_not_json_or_missing(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataValidationError, match=r"broken\.json: not valid JSON"):
        load_schema(broken)
    with pytest.raises(DataValidationError, match=r"nowhere\.json: cannot read"):
        load_schema(tmp_path / "nowhere.json")
    (tmp_path / "v2.json").write_text('{"version": 2, "columns": {}}')
    with pytest.raises(DataValidationError, match=r"v2\.json: field 'version'"):
        load_schema(tmp_path / "v2.json")


def test_schema_gen_component_writes_schema_json(tmp_path, penguin_stats):
    stats = write_stats(tmp_path / "stats", penguin_stats)
    out = Schema(tmp_path / "schema")
    (tmp_path / "schema").mkdir()
    SchemaGen.fn(statistics=stats, schema=out)
    doc = json.loads((tmp_path / "schema" / "schema.json").read_text())
    assert doc["version"] == 1
    assert doc["columns"]["species"] == {"type": "string", "required": True, "min_presence": 1.0,
                                         "min_count": 1, "domain": ["Adelie", "Chinstrap", "Gentoo"]}
    assert doc["columns"]["bill"]["range"] == {"min": 32.1, "max": 59.6}
    assert out.properties["columns"] == 4
    assert "bill" not in out.properties["required"]


def test_import_schema_gen_copies_a_valid_file(tmp_path):
    src = tmp_path / "edited.json"
    src.write_text(json.dumps({"version": 1, "columns": {"x": {"type": "float", "drift": {"js": 0.2}}}}, indent=4))
    out = Schema(tmp_path / "out")
    (tmp_path / "out").mkdir()
    ImportSchemaGen.fn(schema=out, schema_file=str(src))
    assert (tmp_path / "out" / "schema.json").read_text() == src.read_text()
    assert load_schema(out).columns["x"].drift == {"js": 0.2}


def test_import_schema_gen_rejects_a_malformed_file_naming_it(tmp_path):
    src = tmp_path / "edited.json"
    src.write_text(json.dumps({"version": 1, "columns": {"bill": {"type": "float", "range": {"min": 9, "max": 3}}}}))
    (tmp_path / "out").mkdir()
    with pytest.raises(DataValidationError, match=r"edited\.json: column 'bill': bad range"):
        ImportSchemaGen.fn(schema=Schema(tmp_path / "out"), schema_file=str(src))
    assert not (tmp_path / "out" / "schema.json").exists()


def test_import_schema_gen_cache_key_follows_file_content(tmp_path):
    src = tmp_path / "s.json"
    src.write_text('{"version": 1, "columns": {}}')
    before = ImportSchemaGen.external_fingerprint({"schema_file": str(src)})
    src.write_text('{"version": 1, "columns": {"x": {"type": "int"}}}')
    assert ImportSchemaGen.external_fingerprint({"schema_file": str(src)}) != before


def test_inferred_presence_does_not_flag_sampling_variation():
    from jfx.components._anomalies import detect_anomalies

    # 344 training rows with 2 missing (presence 0.994): the penguin table. A later batch
    # of 117 rows with 2 missing (0.983) is the same data, sampled; it must pass.
    train = split_doc("train", bill=num_col(np.linspace(32.0, 60.0, 342), missing=2),
                      species=str_col(["Adelie"] * 344))
    schema = infer_schema({"train": train})
    bill = schema.columns["bill"]
    assert (bill.required, bill.min_presence, bill.min_count) == (False, 0.0, 1)
    assert (schema.columns["species"].min_presence, schema.columns["species"].min_count) == (1.0, 1)
    batch = split_doc("serving", bill=num_col(np.linspace(33.0, 59.0, 115), missing=2),
                      species=str_col(["Adelie"] * 117))
    assert detect_anomalies(batch, schema, split="serving") == []
    # What presence still catches: a column that lost every value, or vanished.
    empty = split_doc("serving", bill={"type": "float", "count": 0, "missing": 117},
                      species=str_col(["Adelie"] * 117))
    [anomaly] = detect_anomalies(empty, schema, split="serving")
    assert (anomaly.column, anomaly.kind) == ("bill", "low_presence")
    assert "no row has a value" in anomaly.description and "min_count is 1" in anomaly.description
    gone = split_doc("serving", species=str_col(["Adelie"] * 117))
    assert [(a.column, a.kind) for a in detect_anomalies(gone, schema, split="serving")] == [("bill", "missing_column")]
    # A never-missing column still must be complete.
    short = split_doc("serving", bill=num_col(np.linspace(33.0, 59.0, 117)), species=str_col(["Adelie"] * 116, missing=1))
    assert [(a.column, a.kind) for a in detect_anomalies(short, schema, split="serving")] == [("species", "low_presence")]


def test_min_count_round_trips_and_is_validated(tmp_path):
    schema = TableSchema({"x": ColumnSchema("float", False, 0.0, min_count=1), "y": ColumnSchema("int")})
    save_schema(schema, tmp_path)
    assert load_schema(tmp_path) == schema
    assert "min_count" not in json.loads((tmp_path / "schema.json").read_text())["columns"]["y"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"version": 1, "columns": {"x": {"type": "float", "min_count": -1}}}))
    with pytest.raises(DataValidationError, match=r"bad\.json: column 'x': field 'min_count'"):
        load_schema(path)


def _schema_gen(tmp_path, stats, **params):
    out = Schema(tmp_path / "schema")
    (tmp_path / "schema").mkdir()
    SchemaGen.fn(statistics=write_stats(tmp_path / "stats", stats), schema=out, **params)
    return load_schema(out)


def test_schema_gen_sets_drift_thresholds_for_all_columns_and_per_column(tmp_path, penguin_stats):
    schema = _schema_gen(tmp_path, penguin_stats, drift_threshold=0.2,
                         drift_thresholds={"bill": 0.05, "name": {"linf": 0.3}, "year": None})
    cols = schema.columns
    assert cols["species"].drift == {"linf": 0.2}  # categorical: L-infinity
    assert cols["bill"].drift == {"js": 0.05}  # numeric: Jensen-Shannon, the per-column value wins
    assert cols["name"].drift == {"linf": 0.3}
    assert cols["year"].drift == {}  # None: no drift check for this column


def test_schema_gen_per_column_drift_alone(tmp_path, penguin_stats):
    schema = _schema_gen(tmp_path, penguin_stats, drift_thresholds={"species": 0.1})
    assert schema.columns["species"].drift == {"linf": 0.1}
    assert all(not c.drift for n, c in schema.columns.items() if n != "species")


@pytest.mark.parametrize("params, needle", [
    ({"drift_thresholds": {"bil": 0.1}}, "drift_thresholds names column 'bil'"),
    ({"drift_thresholds": {"bill": {"linf": 0.1}}}, "column 'bill': field 'drift_comparator.infinity_norm' applies to"),
    ({"drift_thresholds": {"bill": 1.5}},
     "column 'bill': field 'drift_comparator.jensen_shannon_divergence.threshold' must be a number from 0 to 1"),
    ({"drift_threshold": -0.1}, "field 'drift_comparator.infinity_norm.threshold' must be a number from 0 to 1"),
    ({"drift_thresholds": ["bill"]}, "drift_thresholds must be an object"),
    ({"skew_thresholds": {"bill": {"kl": 0.1}}}, "skew_thresholds['bill']: unknown metric 'kl'"),
    ({"skew_threshold": 2}, "field 'skew_comparator.infinity_norm.threshold' must be a number from 0 to 1"),
    ({"not_in_serving": ["specie"]}, "not_in_serving names column 'specie'"),
    ({"not_in_serving": "species"}, "not_in_serving must be a list of column names"),
])
def test_schema_gen_rejects_bad_drift_skew_and_environment_parameters(tmp_path, penguin_stats, params, needle):
    with pytest.raises(DataValidationError) as err:
        _schema_gen(tmp_path, penguin_stats, **params)
    assert needle in str(err.value)
    assert not (tmp_path / "schema" / "schema.json").exists()
