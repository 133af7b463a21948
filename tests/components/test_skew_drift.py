"""Schema environments and TFDV's skew and drift comparators, against NumPy/SciPy oracles."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.spatial.distance import jensenshannon

from jfx.components._anomalies import detect_anomalies, detect_comparator
from jfx.components._engine import run_kernel
from jfx.components._example_validator import ExampleValidator
from jfx.components._schema import (
    SERVING,
    TRAINING,
    ColumnSchema,
    TableSchema,
    infer_schema,
    load_schema,
    save_schema,
    schema_from_dict,
    schema_to_dict,
    with_comparators,
    with_environments,
)
from jfx.components._statistics import StatisticsKernel
from jfx.errors import DataValidationError, HaltPipeline, InvalidArgumentError
from jfx.types import ExampleAnomalies, Schema
from jfx_stats import write_stats

ISLANDS = np.array(["Biscoe", "Dream", "Torgersen", "Ross"])


def kernel_stats(tmp_path: Path, name: str, table: pa.Table) -> dict:
    """The statistics StatisticsGen's kernel computes for ``table`` (one split)."""
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    doc = run_kernel(StatisticsKernel(), [str(path)])
    doc["split"] = name
    return doc


def synthetic(seed: int, n: int, *, loc: float, scale: float, probs: list[float], with_label: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    mass = rng.normal(loc, scale, n)
    columns = {
        "body_mass_g": pa.array(mass, mask=rng.random(n) < 0.05),  # missing values take no part
        "flipper_length_mm": pa.array(rng.gamma(9.0, 20.0, n)),
        "island": pa.array(rng.choice(ISLANDS, n, p=probs)),
    }
    if with_label:
        columns["species"] = pa.array(rng.choice(["Adelie", "Gentoo"], n))
    return pa.table(columns)


# ----------------------------------------------------------------------------- the oracles


def oracle_linf(a: np.ndarray, b: np.ndarray) -> float:
    """L-infinity distance between the normalised value distributions, in plain NumPy."""
    values = np.union1d(a, b)
    fa = np.array([(a == v).sum() for v in values]) / len(a)
    fb = np.array([(b == v).sum() for v in values]) / len(b)
    return float(np.abs(fa - fb).max())


def oracle_js(a: np.ndarray, b: np.ndarray) -> float:
    """TFDV's approximate JS divergence, written independently: the two 10-bucket standard
    histograms (numpy.histogram), each bucket's count spread uniformly over the parts of
    it that the union of both sides' boundaries cuts out, then SciPy's JS (base 2)."""
    ca, ea = np.histogram(a, bins=10)
    cb, eb = np.histogram(b, bins=10)
    union = np.union1d(ea, eb)

    def rebucket(counts, edges):
        out = np.zeros(len(union) - 1)
        for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
            for i in range(len(union) - 1):
                overlap = min(hi, union[i + 1]) - max(lo, union[i])
                if overlap > 0:
                    out[i] += c * overlap / (hi - lo)
        return out

    return float(jensenshannon(rebucket(ca, ea), rebucket(cb, eb), base=2) ** 2)


def present(table: pa.Table, column: str) -> np.ndarray:
    return table[column].drop_null().to_numpy(zero_copy_only=False)


@pytest.mark.parametrize("seed, loc, probs", [
    (1, 4200.0, [0.5, 0.35, 0.15, 0.0]),   # the same mix as training: small distances
    (2, 4900.0, [0.1, 0.2, 0.3, 0.4]),     # shifted masses, and an island training never saw
    (3, 3000.0, [0.0, 0.0, 1.0, 0.0]),     # one island only
])
def test_comparator_distances_match_numpy_and_scipy_on_synthetic_data(tmp_path, seed, loc, probs):
    train = synthetic(0, 1500, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0])
    serving = synthetic(seed, 700, loc=loc, scale=600.0, probs=probs)
    schema = TableSchema({"body_mass_g": ColumnSchema("float", skew={"js": 0.1}),
                          "flipper_length_mm": ColumnSchema("float"),
                          "island": ColumnSchema("string", skew={"linf": 0.1})})
    measured, _ = detect_comparator(kernel_stats(tmp_path, "serving", serving), kernel_stats(tmp_path, "train", train),
                                    schema, "skew", split="serving", baseline_split="train")
    assert measured["island"]["value"] == pytest.approx(oracle_linf(present(train, "island"),
                                                                    present(serving, "island")), abs=1e-12)
    for column in ("body_mass_g", "flipper_length_mm"):
        expected = oracle_js(present(train, column), present(serving, column))
        assert measured[column]["value"] == pytest.approx(expected, abs=1e-9), column
    if seed == 1:
        assert measured["island"]["value"] < 0.05 and measured["body_mass_g"]["value"] < 0.05
    else:
        assert measured["island"]["value"] > 0.3 and measured["body_mass_g"]["value"] > 0.15


def test_js_on_categorical_counts_matches_scipy(tmp_path):
    train = synthetic(0, 1000, loc=0, scale=1, probs=[0.5, 0.35, 0.15, 0.0])
    serving = synthetic(5, 400, loc=0, scale=1, probs=[0.2, 0.2, 0.2, 0.4])
    schema = TableSchema({"island": ColumnSchema("string", drift={"js": 0.05})})
    measured, [anomaly] = detect_comparator(kernel_stats(tmp_path, "s", serving), kernel_stats(tmp_path, "t", train),
                                            schema, "drift", split="s", baseline_split="t")
    a, b = present(train, "island"), present(serving, "island")
    counts = lambda x: np.array([(x == v).sum() for v in ISLANDS], dtype=float)  # noqa: E731
    assert measured["island"]["value"] == pytest.approx(jensenshannon(counts(a), counts(b), base=2) ** 2, abs=1e-12)
    assert anomaly.kind == "drift" and "Jensen-Shannon divergence" in anomaly.description


# ----------------------------------------------------------------------------- the schema format


def test_environments_and_comparators_round_trip_in_tfdv_form(tmp_path):
    schema = TableSchema({"species": ColumnSchema("string", domain=("Adelie",), not_in_environment=(SERVING,),
                                                  drift={"linf": 0.2}),
                          "mass": ColumnSchema("float", skew={"js": 0.1}, in_environment=("LABELLING",))},
                         default_environment=(TRAINING, SERVING))
    save_schema(schema, tmp_path)
    doc = json.loads((tmp_path / "schema.json").read_text())
    assert doc["default_environment"] == ["TRAINING", "SERVING"]
    assert doc["columns"]["species"]["not_in_environment"] == ["SERVING"]
    assert doc["columns"]["species"]["drift_comparator"] == {"infinity_norm": {"threshold": 0.2}}
    assert doc["columns"]["mass"]["skew_comparator"] == {"jensen_shannon_divergence": {"threshold": 0.1}}
    loaded = load_schema(tmp_path)
    assert loaded == schema and loaded.environments == ("TRAINING", "SERVING", "LABELLING")
    assert [loaded.in_environment("species", e) for e in (TRAINING, SERVING, None)] == [True, False, True]
    assert loaded.in_environment("mass", "LABELLING") and not loaded.in_environment("species", "LABELLING")


def test_schemas_without_environments_or_in_the_older_drift_form_still_load():
    old = schema_from_dict({"version": 1, "columns": {"x": {"type": "float", "drift": {"js": 0.1}},
                                                      "label": {"type": "string"}}})
    assert old.default_environment is None and old.columns["x"].drift == {"js": 0.1}
    # no environments named: every column is in every environment
    assert old.in_environment("label", SERVING) and old.environments == ()
    assert "drift_comparator" in schema_to_dict(old)["columns"]["x"]


@pytest.mark.parametrize("column, needle", [
    ({"type": "float", "drift": {"js": 0.1}, "drift_comparator": {"jensen_shannon_divergence": {"threshold": 0.1}}},
     "both set drift thresholds"),
    ({"type": "float", "skew_comparator": {"infinity_norm": {"threshold": 0.1}}},
     "'skew_comparator.infinity_norm' applies to string, bool columns"),
    ({"type": "string", "skew_comparator": {"l2": {"threshold": 0.1}}}, "unknown metric 'l2'"),
    ({"type": "string", "skew_comparator": {"infinity_norm": 0.1}}, "must be an object {\"threshold\": t}"),
    ({"type": "string", "skew_comparator": {"infinity_norm": {"threshold": 0.1},
                                            "jensen_shannon_divergence": {"threshold": 0.1}}}, "takes one metric"),
    ({"type": "string", "not_in_environment": "SERVING"}, "'not_in_environment' must be a list"),
    ({"type": "string", "in_environment": ["SERVING"], "not_in_environment": ["SERVING"]},
     "'SERVING' is in both"),
])
def test_malformed_comparators_and_environments_name_column_and_field(column, needle):
    with pytest.raises(DataValidationError) as err:
        schema_from_dict({"version": 1, "columns": {"bad": column}}, "edited.json")
    assert "edited.json" in str(err.value) and "column 'bad'" in str(err.value) and needle in str(err.value)


def test_with_environments_and_comparators():
    schema = TableSchema({"species": ColumnSchema("string"), "mass": ColumnSchema("float")})
    schema = with_environments(with_comparators(schema, "skew", 0.2, {"mass": {"jensen_shannon_divergence": 0.05}}),
                               ["species"])
    assert schema.columns["species"].skew == {"linf": 0.2} and schema.columns["mass"].skew == {"js": 0.05}
    assert schema.columns["species"].not_in_environment == (SERVING,)
    assert schema.default_environment == (TRAINING, SERVING)


# ----------------------------------------------------------------------------- validation in an environment


def serving_schema(tmp_path) -> TableSchema:
    train = synthetic(0, 1500, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0])
    schema = infer_schema({"train": kernel_stats(tmp_path, "train", train)})
    # no ranges: normal tails of another sample would fall outside them; the skew is what is tested
    schema = TableSchema({n: replace(c, range=None) for n, c in schema.columns.items()})
    return with_environments(with_comparators(schema, "skew", 0.15), ["species"])


def test_the_label_is_not_required_in_serving_but_is_in_training(tmp_path):
    schema = serving_schema(tmp_path)
    serving = synthetic(1, 500, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0], with_label=False)
    stats = kernel_stats(tmp_path, "serving", serving)
    assert detect_anomalies(stats, schema, environment=SERVING) == []
    assert [(a.column, a.kind) for a in detect_anomalies(stats, schema, environment=TRAINING)] == \
        [("species", "missing_column")]
    # a label in serving data is reported: the schema says it is not there
    leaked = kernel_stats(tmp_path, "leak", synthetic(1, 500, loc=4200.0, scale=800.0,
                                                      probs=[0.5, 0.35, 0.15, 0.0]))
    [anomaly] = detect_anomalies(leaked, schema, environment=SERVING)
    assert anomaly.kind == "new_column" and "not in environment SERVING" in anomaly.description


def with_log_columns(table: pa.Table, version: int = 3) -> pa.Table:
    n = table.num_rows
    time = pa.array(np.arange(n) * 1_000_000 + 1_760_000_000_000_000, type=pa.timestamp("us", tz="UTC"))
    return (table.append_column("_jfx_time", time)
            .append_column("_jfx_model_version", pa.array([version] * n, type=pa.int64()))
            .append_column("_jfx_prediction", pa.array(['{"class_ids": [0]}'] * n)))


def run_validator(tmp_path, schema, serving_table, **params):
    train = synthetic(0, 1500, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0])
    training = write_stats(tmp_path / "train_stats", {"train": kernel_stats(tmp_path, "train", train),
                                                      "eval": kernel_stats(tmp_path, "eval", train.slice(0, 400))})
    serving = write_stats(tmp_path / "serving_stats", {"serving": kernel_stats(tmp_path, "serving", serving_table)})
    save_schema(schema, tmp_path / "schema")
    out = ExampleAnomalies(tmp_path / "anomalies")
    Path(out.uri).mkdir(exist_ok=True)
    ExampleValidator.fn(statistics=serving, schema=Schema(tmp_path / "schema"), anomalies=out,
                        training_statistics=training, **params)
    return out, json.loads(Path(out.uri, "anomalies.json").read_text())


def test_validator_passes_normal_traffic_and_ignores_log_columns(tmp_path):
    table = with_log_columns(synthetic(1, 600, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0],
                                       with_label=False))
    _, doc = run_validator(tmp_path, serving_schema(tmp_path), table, environment=SERVING)
    assert doc["passed"] is True and doc["splits"] == {"serving": []}, doc["splits"]
    assert doc["environment"] == "SERVING"
    assert set(doc["skew"]["serving"]) == {"body_mass_g", "flipper_length_mm", "island"}  # no label, no _jfx_
    assert doc["skew"]["serving"]["island"]["baseline_split"] == "train"  # no 'serving' split: the first


def test_validator_halts_on_skewed_traffic_naming_features_distances_and_thresholds(tmp_path):
    table = with_log_columns(synthetic(3, 600, loc=3000.0, scale=300.0, probs=[0.0, 0.0, 1.0, 0.0],
                                       with_label=False))
    with pytest.raises(HaltPipeline) as err:
        run_validator(tmp_path, serving_schema(tmp_path), table, environment=SERVING)
    doc = json.loads((tmp_path / "anomalies" / "anomalies.json").read_text())
    skewed = {a["column"]: a for a in doc["splits"]["serving"]}
    assert set(skewed) == {"body_mass_g", "island"} and {a["kind"] for a in skewed.values()} == {"skew"}
    island = skewed["island"]["details"]
    assert island["value"] == pytest.approx(doc["skew"]["serving"]["island"]["value"]) and island["threshold"] == 0.15
    assert island["value_with_largest_difference"] == "Torgersen"  # 0.15 of training, all of it here
    report = str(err.value)
    assert "ExampleValidator: FAILED: 2 anomalies in 1 split (environment SERVING)" in report
    assert "skew against training split 'train':" in report and "SKEWED" in report
    assert f"L-infinity distance {island['value']:.4f} is above the schema's skew_comparator threshold 0.15" in report
    assert "species" not in report  # the label is absent from serving data by design


def test_validator_refuses_an_environment_the_schema_does_not_name(tmp_path):
    table = synthetic(1, 100, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0], with_label=False)
    with pytest.raises(InvalidArgumentError, match=r"environment='serving' is not one the schema names "
                                                   r"\(TRAINING, SERVING\)"):
        run_validator(tmp_path, serving_schema(tmp_path), table, environment="serving")


def test_a_schema_without_environments_expects_every_column_in_serving(tmp_path):
    with_envs = serving_schema(tmp_path)
    schema = TableSchema({n: replace(c, not_in_environment=()) for n, c in with_envs.columns.items()})
    table = synthetic(1, 300, loc=4200.0, scale=800.0, probs=[0.5, 0.35, 0.15, 0.0], with_label=False)
    _, doc = run_validator(tmp_path, schema, table, environment=SERVING, halt_on_anomalies=False)
    assert [(a["column"], a["kind"]) for a in doc["splits"]["serving"]] == [("species", "missing_column")]
