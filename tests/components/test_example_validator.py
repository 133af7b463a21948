"""ExampleValidator: schema anomalies, drift, expectation suites, the report and halting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jfx import Input, Output, Parameter, Pipeline, component
from jfx.components._anomalies import (
    detect_anomalies,
    detect_drift,
    format_report,
    histogram_js_divergence,
    js_divergence,
    linf_distance,
    ValidationResult,
)
from jfx.components._example_validator import ExampleValidator, load_expectation_suite
from jfx.components._schema import ColumnSchema, TableSchema, infer_schema, save_schema
from jfx.components._schema_gen import SchemaGen
from jfx.errors import DataValidationError, HaltPipeline, InvalidArgumentError
from jfx.types import ExampleAnomalies, ExampleStatistics, Examples, Metrics, Schema


# ----------------------------------------------------------------------------- fixtures
from jfx_stats import num_col, split_doc, str_col, write_stats


RNG = np.random.default_rng(0)
SPECIES = ["Adelie"] * 50 + ["Gentoo"] * 30 + ["Chinstrap"] * 20
BILL = RNG.normal(44.0, 5.0, 100).clip(32.1, 59.6)


def clean_split(split="train"):
    return split_doc(split, species=str_col(SPECIES), bill=num_col(BILL),
                     year=num_col(RNG.integers(2007, 2010, 100), ctype="int"))


@pytest.fixture
def sv_schema():
    schema = infer_schema({"train": clean_split()})
    # A user's edits: a tolerated presence for bill, drift thresholds.
    cols = dict(schema.columns)
    cols["bill"] = ColumnSchema("float", False, 0.9, None, (32.1, 59.6), {"js": 0.1})
    cols["species"] = ColumnSchema("string", True, 1.0, cols["species"].domain, None, {"linf": 0.2})
    return TableSchema(cols)


@pytest.fixture
def sv_run(tmp_path, sv_schema):
    """Call ExampleValidator.fn on statistics documents; return (anomalies artifact, error)."""
    counter = iter(range(1000))

    def run(docs, *, baseline=None, schema=sv_schema, **params):
        n = next(counter)
        stats = write_stats(tmp_path / f"stats{n}", docs)
        save_schema(schema, tmp_path / f"schema{n}")
        base = write_stats(tmp_path / f"base{n}", baseline) if baseline else None
        out = ExampleAnomalies(tmp_path / f"anomalies{n}")
        Path(out.uri).mkdir()
        params.setdefault("halt_on_anomalies", False)
        ExampleValidator.fn(statistics=stats, schema=Schema(tmp_path / f"schema{n}"), anomalies=out,
                            baseline_statistics=base, **params)
        return out

    return run


def kinds(out):
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    return {(a["column"], a["kind"]) for anomalies in doc["splits"].values() for a in anomalies}


# ----------------------------------------------------------------------------- schema anomalies


def test_clean_data_has_no_anomalies(sv_run):
    out = sv_run({"train": clean_split(), "eval": clean_split("eval")}, halt_on_anomalies=True)
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    assert doc["passed"] is True and doc["splits"] == {"train": [], "eval": []}
    assert out.properties["passed"] is True and out.properties["anomaly_count"] == 0
    report = Path(out.uri, "report.txt").read_text()
    assert "passed" in report and "split eval: no anomalies" in report


def _drop(doc, column):
    del doc["columns"][column]
    return doc


def _set(doc, column, **changes):
    doc["columns"][column].update(changes)
    return doc


@pytest.mark.parametrize("mutate, column, kind, needles", [
    (lambda d: _drop(d, "species"), "species", "missing_column", ["column is missing", "required"]),
    (lambda d: {**d, "columns": {**d["columns"], "island": str_col(["Biscoe"])}}, "island", "new_column",
     ["string column the schema does not know"]),
    (lambda d: _set(d, "year", type="string"), "year", "type_change", ["is string, the schema expects int"]),
    (lambda d: _set(d, "species", **str_col(SPECIES + ["Zebra"] * 4 + ["adelie"])), "species", "out_of_domain",
     ["'Zebra' (4)", "'adelie' (1)", "outside the schema's domain"]),
    (lambda d: _set(d, "bill", **num_col([*BILL, 10.5, 70.0])), "bill", "out_of_range",
     ["min 10.5 is below the schema's range.min 32.1", "max 70 is above the schema's range.max 59.6"]),
    (lambda d: _set(d, "bill", count=80, missing=20), "bill", "low_presence",
     ["only 80.00% of rows have a value", "min_presence is 90.00%"]),
])
def test_each_anomaly_kind_is_found_and_described(sv_run, mutate, column, kind, needles):
    out = sv_run({"train": clean_split(), "eval": mutate(clean_split("eval"))})
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    assert doc["passed"] is False and doc["splits"]["train"] == []
    [anomaly] = doc["splits"]["eval"]
    assert (anomaly["column"], anomaly["kind"], anomaly["severity"]) == (column, kind, "error")
    assert "split 'eval'" in anomaly["description"] and f"column {column!r}" in anomaly["description"]
    for needle in needles:
        assert needle in anomaly["description"]
    report = Path(out.uri, "report.txt").read_text()
    assert "split eval: 1 anomaly" in report and kind in report and needles[0] in report
    assert out.properties == {"passed": False, "anomaly_count": 1, "splits": ["train", "eval"]}


def test_int_data_for_a_float_column_is_not_a_type_change(sv_schema):
    doc = _set(clean_split(), "bill", type="int")
    assert detect_anomalies(doc, sv_schema, split="train") == []


def test_optional_column_absent_with_zero_presence_is_fine():
    schema = TableSchema({"x": ColumnSchema("float", required=False, min_presence=0.0)})
    assert detect_anomalies({"columns": {}}, schema, split="s") == []


def test_unlisted_values_beyond_top_values_are_reported():
    schema = TableSchema({"s": ColumnSchema("string", domain=("a", "b"))})
    col = str_col(["a"] * 3 + ["b"] * 2)
    col["count"], col["string"]["unique"] = 500, 400  # many values beyond the listed top values
    [anomaly] = detect_anomalies({"columns": {"s": col}}, schema, split="s")
    assert anomaly.kind == "out_of_domain" and "495 value(s) beyond the statistics' top values" in anomaly.description


def test_unsupported_columns_are_left_out_and_only_warned_about(sv_run):
    doc = clean_split()
    doc["columns"]["tags"] = {"type": "unsupported", "count": 100, "missing": 0}
    assert "tags" not in infer_schema({"train": doc}).columns
    out = sv_run({"train": doc}, halt_on_anomalies=True)
    assert out.properties["passed"] is True and out.properties["anomaly_count"] == 1
    report = Path(out.uri, "report.txt").read_text()
    assert "new_column [warning]" in report and "type jfx does not check" in report


def test_exclude_splits(sv_run):
    bad = _drop(clean_split("eval"), "species")
    out = sv_run({"train": clean_split(), "eval": bad}, exclude_splits=["eval"])
    assert out.properties["passed"] is True and out.properties["splits"] == ["train"]


# ----------------------------------------------------------------------------- drift


def test_linf_on_a_hand_example():
    # frequencies a: .6/.3, b: .4/.5, c: 0/.2 -> largest difference 0.3
    assert linf_distance({"a": 6, "b": 4}, {"a": 3, "b": 5, "c": 2}) == pytest.approx(0.3)
    assert linf_distance({"a": 1, "b": 1}, {"a": 5, "b": 5}) == 0.0


def test_js_divergence_matches_a_direct_numpy_computation():
    p, q = RNG.random(12), RNG.random(12)
    p[3] = 0.0
    pn, qn = p / p.sum(), q / q.sum()
    m = (pn + qn) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.nansum(np.where(pn > 0, pn * np.log2(pn / m), 0.0))
        kl_q = np.nansum(np.where(qn > 0, qn * np.log2(qn / m), 0.0))
    assert js_divergence(p, q) == pytest.approx((kl_p + kl_q) / 2, abs=1e-12)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_js_from_histograms_on_tfdv_worked_examples():
    # TFDV's own examples (anomalies/metrics_test.cc): different bucket boundaries are
    # re-bucketed onto their union, uniform within a bucket.
    a = {"boundaries": [1.0, 2.0, 3.0], "counts": [2, 2]}
    b = {"boundaries": [2.0, 4.0, 6.0], "counts": [2, 2]}
    assert histogram_js_divergence(a, b) == pytest.approx(0.65563906222, abs=1e-9)
    disjoint = {"boundaries": [3.0, 4.0, 6.0], "counts": [2, 2]}
    assert histogram_js_divergence({"boundaries": [0.0, 1.0, 2.0], "counts": [2, 2]}, disjoint) == pytest.approx(1.0)
    # a zero-width bucket is a point mass of its own, apart from any interval
    assert histogram_js_divergence({"boundaries": [1.0, 1.0], "counts": [4]}, b) == pytest.approx(1.0)
    assert histogram_js_divergence(a, a) == pytest.approx(0.0, abs=1e-12)


def test_js_separates_sampling_noise_from_a_shift():
    rng = np.random.default_rng(7)
    base = num_col(rng.normal(0, 1, 1000))["numeric"]["histogram"]
    same = num_col(rng.normal(0, 1, 500))["numeric"]["histogram"]
    moved = num_col(rng.normal(1, 1, 500))["numeric"]["histogram"]
    assert histogram_js_divergence(same, base) < 0.04
    assert histogram_js_divergence(moved, base) > 0.1


def test_constant_columns_are_point_masses():
    one, two = num_col([1.0] * 5), num_col([2.0] * 5)
    schema = TableSchema({"x": ColumnSchema("float", drift={"js": 0.5})})
    measured, found = detect_drift({"columns": {"x": one}}, {"columns": {"x": two}}, schema,
                                   split="a", baseline_split="b")
    assert measured["x"]["value"] == pytest.approx(1.0) and [a.kind for a in found] == ["drift"]
    measured, found = detect_drift({"columns": {"x": one}}, {"columns": {"x": num_col([1.0] * 9)}}, schema,
                                   split="a", baseline_split="b")
    assert measured["x"]["value"] == pytest.approx(0.0) and found == []


def test_identical_distributions_do_not_drift(sv_run):
    out = sv_run({"train": clean_split()}, baseline={"train": clean_split()}, halt_on_anomalies=True)
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    assert doc["passed"] is True
    drift = doc["drift"]["train"]
    assert drift["species"] == {"metric": "linf", "value": 0.0, "threshold": 0.2, "baseline_split": "train"}
    assert drift["bill"]["metric"] == "js" and drift["bill"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert drift["year"]["threshold"] is None  # measured, not checked


def test_shifted_distributions_drift_above_threshold(sv_run):
    shifted = clean_split("serving")
    shifted["columns"]["bill"] = num_col(BILL + 8.0)
    shifted["columns"]["species"] = str_col(["Adelie"] * 20 + ["Gentoo"] * 30 + ["Chinstrap"] * 50)
    shifted["columns"]["year"] = num_col(RNG.integers(2015, 2018, 100), ctype="int")
    out = sv_run({"serving": shifted}, baseline={"train": clean_split()})  # no 'serving': first split
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    drifted = {a["column"]: a for a in doc["splits"]["serving"] if a["kind"] == "drift"}
    assert set(drifted) == {"bill", "species"}  # year has no threshold: reported only
    assert doc["drift"]["serving"]["species"]["value"] == pytest.approx(0.3)  # Adelie/Chinstrap .5 -> .2/.5
    assert doc["drift"]["serving"]["bill"]["value"] > 0.1
    assert doc["drift"]["serving"]["year"]["value"] == pytest.approx(1.0)
    assert "drifted from the baseline (split 'train')" in drifted["bill"]["description"]
    assert "Jensen-Shannon divergence" in drifted["bill"]["description"]
    assert "L-infinity distance 0.3000 is above the schema's drift_comparator threshold 0.2; the value that " \
        "differs most is " in drifted["species"]["description"]
    assert drifted["species"]["details"]["value_with_largest_difference"] in ("Adelie", "Chinstrap")  # both by .3
    report = Path(out.uri, "report.txt").read_text()
    assert "drift against baseline split 'train'" in report and "DRIFTED" in report


def test_drift_thresholds_set_by_schema_gen_reach_the_validator(tmp_path):
    stats = write_stats(tmp_path / "train_stats", {"train": clean_split()})
    schema = Schema(tmp_path / "schema")
    Path(schema.uri).mkdir()
    SchemaGen.fn(statistics=stats, schema=schema, drift_threshold=0.1, drift_thresholds={"year": 0.5})
    shifted = clean_split("train")
    shifted["columns"]["bill"] = num_col(BILL + 8.0)
    shifted["columns"]["species"] = str_col(["Adelie"] * 20 + ["Gentoo"] * 30 + ["Chinstrap"] * 50)
    out = ExampleAnomalies(tmp_path / "anomalies")
    Path(out.uri).mkdir()
    ExampleValidator.fn(statistics=write_stats(tmp_path / "new_stats", {"train": shifted}), schema=schema,
                        anomalies=out, baseline_statistics=stats, halt_on_anomalies=False)
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    assert {a["column"] for a in doc["splits"]["train"] if a["kind"] == "drift"} == {"bill", "species"}
    assert doc["drift"]["train"]["year"]["threshold"] == 0.5
    assert doc["drift"]["train"]["bill"]["threshold"] == 0.1


def test_detect_drift_skips_columns_missing_on_one_side(sv_schema):
    measured, found = detect_drift(_drop(clean_split(), "bill"), clean_split(), sv_schema,
                                   split="train", baseline_split="train")
    assert "bill" not in measured and found == []


# ----------------------------------------------------------------------------- halting


def test_halts_after_writing_outputs_with_the_report(sv_run, tmp_path):
    bad = _drop(clean_split("eval"), "species")
    with pytest.raises(HaltPipeline) as err:
        sv_run({"train": clean_split(), "eval": bad}, halt_on_anomalies=True)
    message = str(err.value)
    assert "FAILED: 1 anomaly" in message and "missing_column" in message and "species" in message
    # the outputs were written before the raise, and the report is the message
    written = sorted((tmp_path / "anomalies0").iterdir())
    assert [p.name for p in written] == ["anomalies.json", "report.txt"]
    assert written[1].read_text() == message
    assert json.loads(written[0].read_text())["passed"] is False


def test_no_halt_records_failure(sv_run):
    out = sv_run({"eval": _drop(clean_split("eval"), "species")}, halt_on_anomalies=False)
    assert out.properties["passed"] is False and out.properties["anomaly_count"] == 1
    assert json.loads(Path(out.uri, "anomalies.json").read_text())["passed"] is False


def test_format_report_lists_what_where_why(sv_schema):
    result = ValidationResult({"eval": detect_anomalies(_set(clean_split("eval"), "year", type="float"),
                                                        sv_schema, split="eval")})
    report = format_report(result)
    assert report.splitlines()[0] == "ExampleValidator: FAILED: 1 anomaly in 1 split"
    assert re.search(r"^  year\s+type_change$", report, re.M)
    assert "the schema expects int" in report and "change the column's \"type\"" in report


# ----------------------------------------------------------------------------- expectations


@pytest.fixture
def sv_examples(tmp_path):
    root = tmp_path / "examples"
    for split, rows in (("train", 40), ("eval", 10)):
        (root / f"Split-{split}").mkdir(parents=True)
        table = pa.table({"species": ["Adelie", "Gentoo"] * (rows // 2),
                          "body_mass_g": [3000.0 + 10 * i for i in range(rows)]})
        if split == "eval":  # one heavy penguin
            table = table.set_column(1, "body_mass_g", pa.array([3000.0] * (rows - 1) + [9000.0]))
        pq.write_table(table, root / f"Split-{split}" / "part-00000.parquet")
    return Examples(root, properties={"splits": ["train", "eval"]})


@pytest.fixture
def sv_suite(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "penguins", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "species"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "body_mass_g", "min_value": 2000, "max_value": 7000}},
    ]}))
    return path


def _examples_stats():
    species = str_col(["Adelie", "Gentoo"] * 20)
    mass = num_col([3000.0 + 10 * i for i in range(40)])
    return {"train": split_doc("train", species=species, body_mass_g=mass),
            "eval": split_doc("eval", species=species, body_mass_g=mass)}


def test_expectation_suite_pass_and_fail_with_offline_data_docs(sv_run, sv_examples, sv_suite):
    stats = _examples_stats()
    out = sv_run(stats, schema=infer_schema(stats), examples=sv_examples, expectations=str(sv_suite))
    doc = json.loads(Path(out.uri, "anomalies.json").read_text())
    assert doc["splits"]["train"] == []
    [failed] = doc["splits"]["eval"]
    assert (failed["column"], failed["kind"]) == ("body_mass_g", "expectation_failed")
    assert "expect_column_values_to_be_between" in failed["description"] and "9000" in failed["description"]
    assert doc["expectations"]["train"] == {"suite": "penguins", "success": True, "evaluated": 2, "failed": 0,
                                            "data_docs": "data_docs/index.html"}
    assert doc["expectations"]["eval"]["failed"] == 1
    assert "expectations 'penguins': 1 of 2 passed" in Path(out.uri, "report.txt").read_text()

    docs = Path(out.uri, "data_docs")
    pages = list(docs.rglob("*.html"))
    assert (docs / "index.html") in pages and len(pages) >= 3  # index, suite, one page per split
    for page in pages:
        text = page.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I), page
        for ref in re.findall(r"""(?:src|href)\s*=\s*["']([^"'#]+)["']""", text):
            assert (page.parent / ref).exists(), (page, ref)  # every local reference resolves
    for css in docs.rglob("*.css"):
        assert "http" not in css.read_text()
    assert "body_mass_g" in "".join(p.read_text() for p in pages)
    index = (docs / "index.html").read_text()  # without JavaScript, the index still links each split
    assert re.search(r'<a href="validations/[^"]+/jfx-eval\.html">split eval</a> — 1 of 2 failed', index)
    assert re.search(r'<a href="validations/[^"]+/jfx-train\.html">split train</a> — passed', index)


def test_malformed_suite_names_the_file(sv_run, tmp_path, sv_examples):
    bad = tmp_path / "bad_suite.json"
    bad.write_text('{"expectations": [{"kwargs": {}}]}')
    with pytest.raises(DataValidationError, match=r"bad_suite\.json: expectation 0"):
        load_expectation_suite(bad)
    with pytest.raises(DataValidationError, match=r"absent\.json: cannot read"):
        sv_run(_examples_stats(), schema=infer_schema(_examples_stats()), examples=sv_examples,
               expectations=str(tmp_path / "absent.json"))
    bad.write_text("[1, 2")
    with pytest.raises(DataValidationError, match=r"bad_suite\.json: not valid JSON"):
        load_expectation_suite(bad)


def test_unknown_expectation_type_names_the_file(sv_run, tmp_path, sv_examples):
    suite = tmp_path / "typo_suite.json"
    suite.write_text(json.dumps({"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_purple", "kwargs": {"column": "species"}}]}))
    with pytest.raises(DataValidationError, match=r"typo_suite\.json: expectation 0 \(expect_column_values_to_be_purple\)"):
        sv_run(_examples_stats(), schema=infer_schema(_examples_stats()), examples=sv_examples,
               expectations=str(suite))


def test_expectations_without_examples_is_a_clear_error(sv_run, sv_suite):
    with pytest.raises(InvalidArgumentError, match="wire the Examples"):
        sv_run({"train": clean_split()}, expectations=str(sv_suite))


# ----------------------------------------------------------------------------- end to end


@component
def sv_make_stats(statistics: Output[ExampleStatistics], docs: Parameter[dict] = None):
    for split, doc in docs.items():
        statistics.path(f"Split-{split}").mkdir(parents=True)
        statistics.write_json(doc, f"Split-{split}/statistics.json")
    statistics.properties["splits"] = list(docs)


@component
def sv_downstream(anomalies: Input[ExampleAnomalies], out: Output[Metrics]):
    out.write_json({"ok": True})


def test_pipeline_halts_on_anomalies_and_skips_downstream(tmp_path):
    from jfx.orchestrators import LocalDagRunner, NodeState, RunState

    stats = sv_make_stats(docs={"train": clean_split(), "eval": clean_split("eval")})
    schema = SchemaGen(statistics=stats.outputs["statistics"])
    new_eval = _set(clean_split("eval"), "species", **str_col(SPECIES + ["Zebra"] * 4))
    new_stats = sv_make_stats(docs={"eval": new_eval}).with_id("new_stats")
    validator = ExampleValidator(statistics=new_stats.outputs["statistics"], schema=schema.outputs["schema"],
                                 baseline_statistics=stats.outputs["statistics"])
    downstream = sv_downstream(anomalies=validator.outputs["anomalies"])
    pipeline = Pipeline("sv-halt", components=[stats, schema, new_stats, validator, downstream],
                        pipeline_root=str(tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")
    result = LocalDagRunner().run(pipeline)

    assert result.state == RunState.FAILED
    assert result.nodes["SchemaGen"].state == NodeState.COMPLETE
    node = result.nodes["ExampleValidator"]
    assert node.state == NodeState.COMPLETE and "'Zebra' (4)" in node.halted
    [artifact] = node.outputs["anomalies"]
    assert artifact.properties["passed"] is False
    assert json.loads(Path(artifact.uri, "anomalies.json").read_text())["passed"] is False
    assert Path(artifact.uri, "report.txt").read_text() == node.halted
    assert result.nodes["sv_downstream"].state == NodeState.SKIPPED
