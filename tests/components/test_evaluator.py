"""Evaluator: metrics per slice against scikit-learn, engines, thresholds, blessing, pipeline."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import jfx_testlib as lib
import numpy as np
import pyarrow as pa
import pytest
from jfx import Pipeline
from jfx.components._evaluator import (
    BLESSING_FILE,
    METRICS_FILE,
    PLOTS_FILE,
    Evaluator,
    Threshold,
    check_thresholds,
)
from jfx.components._resolvers import LatestBlessedModel
from jfx.core import TensorSpec, export, load
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.orchestrators import LocalDagRunner
from jfx.types import Examples, Model, ModelBlessing, ModelEvaluation
from sklearn import metrics as skm

TOL = 1e-6
RUNNER = LocalDagRunner(progress=False)


def artifacts(tmp_path, name="run"):
    base = tmp_path / name
    (base / "evaluation").mkdir(parents=True)
    (base / "blessing").mkdir()
    return ModelEvaluation(base / "evaluation"), ModelBlessing(base / "blessing")


def examples(tmp_path, table, **kw):
    uri = tmp_path / "examples"
    lib.write_examples(str(uri), {"eval": table}, **kw)
    return Examples(uri, properties={"splits": ["eval"]})


def evaluate(tmp_path, ex, model_path, baseline_path=None, name="run", **config):
    evaluation, blessing = artifacts(tmp_path, name)
    beam = config.pop("beam_pipeline_args", None)
    Evaluator.fn(examples=ex, model=Model(model_path, id=7), evaluation=evaluation, blessing=blessing,
                 baseline_model=Model(baseline_path, id=3) if baseline_path else None,
                 eval_config=config, beam_pipeline_args=beam)
    return (json.loads(Path(evaluation.uri, METRICS_FILE).read_text()),
            json.loads(Path(evaluation.uri, PLOTS_FILE).read_text()), evaluation, blessing)


def slice_rows(table, spec):
    """{slice dict: row mask} of the table for one slicing spec, as an oracle."""
    if not spec:
        return {(): np.ones(table.num_rows, bool)}
    cols = [table.column(c).to_pylist() for c in spec]
    keys = list(zip(*cols, strict=True))
    return {tuple(zip(spec, k, strict=True)): np.array([r == k for r in keys]) for k in set(keys)}


def test_binary_metrics_per_slice_match_sklearn(tmp_path):
    table = lib.eval_table(600, seed=1)
    model_path = lib.export_binary_model(str(tmp_path / "model"), bias=0.05)
    specs = [[], ["island"], ["island", "sex"]]
    metrics, plots, evaluation, _ = evaluate(tmp_path, examples(tmp_path, table, row_group_size=128), model_path,
                                             label_key="label", slicing_specs=specs, example_weight_key="weight")
    probs = load(model_path)({"x": table.column("x").to_numpy()})["probabilities"]
    y = (np.array(table.column("label").to_pylist()) == "yes").astype(int)
    w = table.column("weight").to_numpy()
    found = {tuple(s["slice"].items()): s["candidate"] for s in metrics["slices"]}
    assert metrics["slices"][0]["slice"] == {} and metrics["slices"][0]["slice_name"] == "Overall"
    expected = {k: m for spec in specs for k, m in slice_rows(table, spec).items()}
    assert set(found) == set(expected)
    for key, rows in expected.items():
        got, yy, pp, ww = found[key], y[rows], probs[rows], w[rows]
        pred = np.argmax(pp, axis=1)
        assert got["example_count"] == rows.sum(), key
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(yy, pred, sample_weight=ww), abs=TOL)
        assert got["precision"] == pytest.approx(
            skm.precision_score(yy, pred, sample_weight=ww, zero_division=0), abs=TOL)
        assert got["recall"] == pytest.approx(skm.recall_score(yy, pred, sample_weight=ww, zero_division=0), abs=TOL)
        assert got["log_loss"] == pytest.approx(skm.log_loss(yy, pp, sample_weight=ww, labels=[0, 1]), abs=TOL)
        if 0 < yy.sum() < len(yy):
            assert got["auc"] == pytest.approx(skm.roc_auc_score(yy, pp[:, 1], sample_weight=ww), abs=TOL)
            assert got["auc_pr"] == pytest.approx(skm.average_precision_score(yy, pp[:, 1], sample_weight=ww), abs=TOL)
    overall = found[()]
    assert evaluation.properties["accuracy"] == overall["accuracy"]
    assert evaluation.properties["auc"] == overall["auc"] and evaluation.properties["model_type"] == "classification"
    assert metrics["classes"] == ["no", "yes"] and metrics["models"]["candidate"]["id"] == 7
    overall_plots = plots["slices"][0]["candidate"]
    assert overall_plots["confusion_matrix"]["labels"] == ["no", "yes"]
    assert overall_plots["confusion_matrix"]["counts"] == skm.confusion_matrix(y, np.argmax(probs, 1)).tolist()
    assert len(overall_plots["calibration"]["buckets"]) == 10
    assert overall_plots["roc_curve"]["fpr"][-1] == 1.0


def test_multiclass_and_regression_match_sklearn(tmp_path):
    rng = np.random.default_rng(4)
    n = 500
    y = rng.integers(0, 3, n)
    logits = np.round(rng.normal(size=(n, 3)) + np.eye(3)[y], 1).astype(np.float32)
    table = pa.table({"a": logits[:, 0], "b": logits[:, 1], "c": logits[:, 2],
                      "species": np.array(["Adelie", "Chinstrap", "Gentoo"])[y],
                      "target": (y * 2.0 + rng.normal(size=n)), "g": rng.choice(["u", "v"], n)})
    ex = examples(tmp_path, table, row_group_size=100)
    spec = {k: TensorSpec("float32") for k in "abc"}
    multi = export(lambda p, f: {"probabilities": jax.nn.softmax(jnp.stack([f["a"], f["b"], f["c"]], -1))},
                   {}, spec, tmp_path / "multi")
    metrics, _, _, _ = evaluate(tmp_path, ex, str(multi), name="multi", label_key="species",
                                label_vocabulary=["Adelie", "Chinstrap", "Gentoo"], slicing_specs=[["g"]])
    p = load(multi)({k: table.column(k).to_numpy() for k in "abc"})["probabilities"]
    for s in metrics["slices"]:
        rows = np.ones(n, bool) if not s["slice"] else (table.column("g").to_numpy(zero_copy_only=False) == s["slice"]["g"])
        got, yy, pp = s["candidate"], y[rows], p[rows]
        pred = np.argmax(pp, 1)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(yy, pred), abs=TOL)
        assert got["macro_precision"] == pytest.approx(skm.precision_score(yy, pred, average="macro"), abs=TOL)
        assert got["macro_recall"] == pytest.approx(skm.recall_score(yy, pred, average="macro"), abs=TOL)
        assert got["macro_auc"] == pytest.approx(skm.roc_auc_score(yy, pp, multi_class="ovr"), abs=TOL)
        assert got["log_loss"] == pytest.approx(skm.log_loss(yy, pp, labels=[0, 1, 2]), abs=TOL)
        assert got["per_class"]["Gentoo"]["auc"] == pytest.approx(skm.roc_auc_score(yy == 2, pp[:, 2]), abs=TOL)

    reg = export(lambda prm, f: {"predictions": f["a"] * prm["w"] + 1.0}, {"w": jnp.float32(1.5)},
                 {"a": TensorSpec("float32")}, tmp_path / "reg")
    metrics, _, evaluation, _ = evaluate(tmp_path, ex, str(reg), name="reg", label_key="target",
                                         slicing_specs=[["g"]])
    pred = load(reg)({"a": table.column("a").to_numpy()})["predictions"]
    target = table.column("target").to_numpy()
    for s in metrics["slices"]:
        rows = np.ones(n, bool) if not s["slice"] else (table.column("g").to_numpy(zero_copy_only=False) == s["slice"]["g"])
        got = s["candidate"]
        assert got["mse"] == pytest.approx(skm.mean_squared_error(target[rows], pred[rows]), abs=TOL)
        assert got["mae"] == pytest.approx(skm.mean_absolute_error(target[rows], pred[rows]), abs=TOL)
        assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(target[rows], pred[rows])), abs=TOL)
    assert evaluation.properties["model_type"] == "regression" and "mse" in evaluation.properties


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15)
    else:
        assert a == b


def test_beam_and_in_process_engines_agree(tmp_path):
    table = lib.eval_table(900, seed=2)
    ex = examples(tmp_path, table, row_group_size=150, shards=3)
    model_path = lib.export_binary_model(str(tmp_path / "model"))
    config = {"label_key": "label", "slicing_specs": [["island"], ["island", "sex"]], "example_weight_key": "weight"}
    local = evaluate(tmp_path, ex, model_path, name="local", **config)
    beam = evaluate(tmp_path, ex, model_path, name="beam", beam_pipeline_args=["--runner=DirectRunner"], **config)
    _same(local[0], beam[0])
    _same(local[1], beam[1])
    assert local[2].properties["engine"] == "in-process" and beam[2].properties["engine"] == "beam"
    small = evaluate(tmp_path, ex, model_path, name="small", batch_size=37, **config)  # other batches, same numbers
    _same(local[0], small[0])


def test_thresholds_bounds_and_change_against_baseline():
    lower = Threshold.parse("accuracy", {"lower_bound": 0.8})
    upper = Threshold.parse("log_loss", {"upper_bound": 0.5})
    assert [c["passed"] for c in check_thresholds([lower, upper], {"accuracy": 0.85, "log_loss": 0.6}, None)] == [
        True, False]
    absolute = Threshold.parse("accuracy", {"change": {"higher_is_better": True, "absolute": 0.02}})
    relative = Threshold.parse("log_loss", {"change": {"relative": 0.1}})  # lower is better, inferred
    base = {"accuracy": 0.90, "log_loss": 0.40}
    ok = check_thresholds([absolute, relative], {"accuracy": 0.885, "log_loss": 0.43}, base)
    assert [c["passed"] for c in ok] == [True, True]
    bad = check_thresholds([absolute, relative], {"accuracy": 0.87, "log_loss": 0.45}, base)
    assert [c["passed"] for c in bad] == [False, False]
    assert "absolute tolerance 0.02" in bad[0]["reason"] and "relative tolerance 0.1" in bad[1]["reason"]
    skipped = check_thresholds([absolute], {"accuracy": 0.5}, None)
    assert skipped[0]["passed"] is None and "no baseline" in skipped[0]["reason"]
    strict = Threshold.parse("accuracy", {"change": {}})  # no tolerance: must not be worse at all
    assert check_thresholds([strict], {"accuracy": 0.899}, base)[0]["passed"] is False
    assert check_thresholds([strict], {"accuracy": 0.9}, base)[0]["passed"] is True
    assert check_thresholds([lower], {"accuracy": None}, None)[0]["passed"] is False
    with pytest.raises(InvalidArgumentError, match=r"'acurracy'.*metrics: .*accuracy"):
        check_thresholds([Threshold.parse("acurracy", {"lower_bound": 0.5})], {"accuracy": 0.9}, None)
    with pytest.raises(InvalidArgumentError, match=r"unknown key\(s\) \[.lower.\] \(did you mean .lower_bound.\?\)"):
        Threshold.parse("accuracy", {"lower": 0.5})


def test_blessing_with_and_without_baseline(tmp_path):
    table = lib.eval_table(500, seed=3)
    ex = examples(tmp_path, table)
    good = lib.export_binary_model(str(tmp_path / "good"), bias=0.0)
    worse = lib.export_binary_model(str(tmp_path / "worse"), bias=0.3)
    thresholds = {"accuracy": {"lower_bound": 0.5, "change": {"higher_is_better": True, "absolute": 0.0}}}
    metrics, _, _, blessing = evaluate(tmp_path, ex, good, name="first", label_key="label", thresholds=thresholds)
    assert blessing.properties["blessed"] is True
    assert any("skipped: no baseline" in r for r in blessing.properties["reasons"])
    assert blessing.properties["model_id"] == 7 and blessing.properties["baseline_model_id"] is None
    doc = json.loads(Path(blessing.uri, BLESSING_FILE).read_text())
    assert doc["blessed"] is True and doc["model"]["uri"] == good

    metrics, _, _, blessing = evaluate(tmp_path, ex, worse, baseline_path=good, name="second", label_key="label",
                                       thresholds=thresholds)
    cand, base = metrics["slices"][0]["candidate"], metrics["slices"][0]["baseline"]
    assert cand["accuracy"] < base["accuracy"]
    assert blessing.properties["blessed"] is False
    assert any("FAILED" in r and "vs baseline" in r for r in blessing.properties["reasons"])

    tolerant = {"accuracy": {"change": {"absolute": 1.0}}}
    _, _, _, blessing = evaluate(tmp_path, ex, worse, baseline_path=good, name="third", label_key="label",
                                 thresholds=tolerant)
    assert blessing.properties["blessed"] is True
    _, _, _, blessing = evaluate(tmp_path, ex, worse, name="fourth", label_key="label")
    assert blessing.properties["blessed"] is True and blessing.properties["reasons"] == [
        "no thresholds configured: blessed"]


def test_custom_metric_from_a_file(tmp_path):
    source = tmp_path / "my_metrics.py"
    source.write_text(textwrap.dedent("""
        import numpy as np

        class PositiveRate:
            name = "positive_rate"
            def create(self):
                return [0.0, 0.0]
            def add(self, acc, inputs):
                return [acc[0] + float(np.sum(inputs.weights * (inputs.predictions[:, 1] > 0.5))),
                        acc[1] + float(np.sum(inputs.weights))]
            def merge(self, accs):
                return [sum(a[0] for a in accs), sum(a[1] for a in accs)]
            def finish(self, acc):
                return {"rate": acc[0] / acc[1] if acc[1] else None, "rows": acc[1]}

        def make():
            return PositiveRate()
    """))
    table = lib.eval_table(300, seed=5)
    model_path = lib.export_binary_model(str(tmp_path / "model"))
    metrics, _, _, blessing = evaluate(
        tmp_path, examples(tmp_path, table), model_path, label_key="label", slicing_specs=[["island"]],
        custom_metrics=[f"{source}:make"], thresholds={"positive_rate/rate": {"upper_bound": 1.0}})
    overall = metrics["slices"][0]["candidate"]
    x = table.column("x").to_numpy()
    assert overall["positive_rate/rate"] == pytest.approx(np.mean(x > 0.5))
    assert overall["positive_rate/rows"] == 300
    assert blessing.properties["blessed"] is True
    with pytest.raises(InvalidArgumentError, match="no 'nope'"):
        evaluate(tmp_path, examples(tmp_path, table), model_path, name="bad", label_key="label",
                 custom_metrics=[f"{source}:nope"])


def test_bad_inputs_are_named(tmp_path):
    table = lib.eval_table(100)
    model_path = lib.export_binary_model(str(tmp_path / "model"))
    ex = examples(tmp_path, table)
    with pytest.raises(DataValidationError, match=r"label column .*'species'"):
        evaluate(tmp_path, ex, model_path, name="a", label_key="species")
    with pytest.raises(DataValidationError, match=r"slicing column .*'region'"):
        evaluate(tmp_path, ex, model_path, name="b", label_key="label", slicing_specs=[["region"]])
    no_x = tmp_path / "no_x"
    lib.write_examples(str(no_x), {"eval": table.drop_columns(["x"])})
    with pytest.raises(DataValidationError, match="model reads column 'x'"):
        evaluate(tmp_path, Examples(no_x), model_path, name="c", label_key="label")
    odd = tmp_path / "odd"
    lib.write_examples(str(odd), {"eval": table.set_column(2, "label", pa.array(["yes"] * 99 + ["maybe"]))})
    with pytest.raises(DataValidationError, match="label 'maybe' in column 'label' is not in the label vocabulary"):
        evaluate(tmp_path, Examples(odd), model_path, name="d", label_key="label")
    with pytest.raises(DataValidationError, match="label 'maybe'"):
        evaluate(tmp_path, Examples(odd), model_path, name="e", label_key="label",
                 beam_pipeline_args=["--runner=DirectRunner"])
    with pytest.raises(InvalidArgumentError, match="label_key"):
        evaluate(tmp_path, ex, model_path, name="f")
    with pytest.raises(InvalidArgumentError, match="unknown key\\(s\\) \\['slices'\\]"):
        evaluate(tmp_path, ex, model_path, name="g", label_key="label", slices=[])
    with pytest.raises(DataValidationError, match="names \\['test'\\]"):
        evaluate(tmp_path, ex, model_path, name="h", label_key="label", splits=["test"])


def test_pipeline_blesses_then_uses_the_blessed_model_as_baseline(tmp_path):
    def build(bias):
        data = lib.make_eval_examples(rows=300)
        model = lib.make_eval_model(bias=bias)
        baseline = LatestBlessedModel()
        evaluator = Evaluator(examples=data.outputs["examples"], model=model.outputs["model"],
                              baseline_model=baseline.outputs["baseline"],
                              eval_config={"label_key": "label", "slicing_specs": [["island"]],
                                           "thresholds": {"accuracy": {"lower_bound": 0.6,
                                                                       "change": {"absolute": 0.01}}}})
        return Pipeline("evaluate", components=[data, model, baseline, evaluator],
                        pipeline_root=str(tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")

    first = RUNNER.run(build(0.0))
    assert first.state == "COMPLETE", first.nodes["Evaluator"].error
    blessing = first.nodes["Evaluator"].outputs["blessing"][0]
    assert blessing.properties["blessed"] is True
    model_id = first.nodes["make_eval_model"].outputs["model"][0].id

    second = RUNNER.run(build(0.25))  # a worse model: judged against run 1's blessed model
    assert second.state == "COMPLETE", second.nodes["Evaluator"].error
    assert second.nodes["LatestBlessedModel"].outputs["baseline"][0].id == model_id
    blessing = second.nodes["Evaluator"].outputs["blessing"][0]
    assert blessing.properties["blessed"] is False and blessing.properties["baseline_model_id"] == model_id
    metrics = json.loads(Path(second.nodes["Evaluator"].outputs["evaluation"][0].uri, METRICS_FILE).read_text())
    assert metrics["models"]["baseline"]["id"] == model_id and metrics["slices"][0]["baseline"] is not None

    third = RUNNER.run(build(0.0))  # the second model was not blessed: the baseline stays run 1's
    assert third.nodes["LatestBlessedModel"].outputs["baseline"][0].id == model_id
