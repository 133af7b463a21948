"""Evaluator model analysis: bootstrap intervals, numeric bucket slices, fairness rates — against oracles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jfx_testlib as lib
import numpy as np
import pyarrow as pa
import pytest
from jfx import Pipeline
from jfx.components._eval_metrics import ClassificationMetrics, MetricInputs, confidence_interval, poisson_counts, \
    t_quantile
from jfx.components._evaluator import METRICS_FILE, EvalConfig, Evaluator
from jfx.components._thresholds import Threshold, check_thresholds
from jfx.core import load
from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.types import Examples, Model, ModelBlessing, ModelEvaluation
from scipy import stats
from sklearn import metrics as skm

TOL = 1e-9


def evaluate(tmp_path, table, model_path, name="run", row_group_size=None, beam=None, **config):
    ex = tmp_path / "examples"
    if not ex.exists():
        lib.write_examples(str(ex), {"eval": table}, row_group_size=row_group_size)
    base = tmp_path / name
    (base / "evaluation").mkdir(parents=True)
    (base / "blessing").mkdir()
    evaluation, blessing = ModelEvaluation(base / "evaluation"), ModelBlessing(base / "blessing")
    Evaluator.fn(examples=Examples(ex, properties={"splits": ["eval"]}), model=Model(model_path, id=7),
                 evaluation=evaluation, blessing=blessing, eval_config={"label_key": "label", **config},
                 beam_pipeline_args=beam)
    return json.loads(Path(evaluation.uri, METRICS_FILE).read_text()), blessing


# ----------------------------------------------------------------------------- confidence intervals

def test_t_quantile_matches_scipy():
    for dof in (1, 2, 3, 7, 19, 20, 99):
        for level in (0.8, 0.9, 0.95, 0.99):
            assert t_quantile(level, dof) == pytest.approx(stats.t.ppf((1 + level) / 2, dof), abs=1e-9)


def test_poisson_counts_are_poisson_and_depend_only_on_the_row_and_seed():
    counts = poisson_counts(0, np.arange(100_000), seed=0, replicates=4)
    # Poisson(1): P(0) = P(1) = e^-1; mean 1, variance 1 (4 sigma of 400k draws)
    assert abs(counts.mean() - 1) < 4 * math.sqrt(1 / counts.size)
    assert abs((counts == 0).mean() - math.exp(-1)) < 4 * math.sqrt(0.25 / counts.size)
    assert abs(counts.var() - 1) < 0.02
    assert abs(np.corrcoef(counts)[0, 1]) < 0.02  # replicates are independent draws
    # a row's counts are a function of (piece, row, seed) only: any batching gives the same
    again = np.concatenate([poisson_counts(0, np.arange(a, b), 0, 4) for a, b in ((0, 7), (7, 50_000),
                                                                                   (50_000, 100_000))], axis=1)
    assert np.array_equal(again, counts)
    assert not np.array_equal(poisson_counts(0, np.arange(1000), 1, 4), counts[:, :1000])
    assert not np.array_equal(poisson_counts(1, np.arange(1000), 0, 4), counts[:, :1000])


def _bootstrap_accuracy_interval(y, p, seed, replicates=20, level=0.95):
    kernel = ClassificationMetrics(2)
    value = kernel.finish(kernel.add(kernel.create(), MetricInputs(y, p)))["metrics"]["accuracy"]
    counts = poisson_counts(0, np.arange(len(y)), seed, replicates)
    samples = []
    for r in range(replicates):
        rows = np.repeat(np.arange(len(y)), counts[r])
        samples.append(kernel.finish(kernel.add(kernel.create(), MetricInputs(y[rows], p[rows])))["metrics"]["accuracy"])
    return confidence_interval(value, samples, level, replicates)


def test_interval_coverage_of_a_known_accuracy():
    """A fixed classifier on Bernoulli data: its true accuracy is known (0.8); the 95 %
    intervals of 200 independent data sets must cover it about 95 % of the time.

    Covered ~ Binomial(200, c). At the nominal c = 0.95 the test passes with probability
    0.9988 (P(X < 180) ≈ 1.2e-3, P(X = 200) ≈ 4e-5); an interval whose real coverage were
    0.85 would pass with probability 0.025, one of 0.80 with 1e-4 (and one that always
    covers, e.g. far too wide, fails). The data sets and seeds are fixed, so the test is
    deterministic.
    """
    trials, n, truth = 200, 150, 0.8
    covered = 0
    widths = []
    for trial in range(trials):
        rng = np.random.default_rng(1000 + trial)
        # the model predicts class 1 with probability 0.9 always; labels are 1 with p = 0.8,
        # so its accuracy is 0.8 in expectation
        y = (rng.random(n) < truth).astype(np.int64)
        p = np.tile([0.1, 0.9], (n, 1))
        interval = _bootstrap_accuracy_interval(y, p, seed=trial)
        covered += interval["lower"] <= truth <= interval["upper"]
        widths.append(interval["upper"] - interval["lower"])
    assert 180 <= covered < 200, covered
    # and the width is the binomial one: 2 · 1.96 · sqrt(0.16 / 150) ≈ 0.128
    assert np.mean(widths) == pytest.approx(2 * 1.96 * math.sqrt(truth * (1 - truth) / n), rel=0.15)


def test_intervals_per_slice_are_the_same_on_every_engine_and_row_grouping(tmp_path):
    table = lib.eval_table(400, seed=3)
    model_path = lib.export_binary_model(str(tmp_path / "model"), bias=0.05)
    config = {"slicing_specs": [[], ["island"]], "example_weight_key": "weight",
              "confidence_intervals": {"num_bootstrap_samples": 10, "seed": 7}}
    one, _ = evaluate(tmp_path / "a", table, model_path, row_group_size=64, **config)
    beam, _ = evaluate(tmp_path / "a", table, model_path, name="beam", beam=["--runner=DirectRunner"], **config)
    small_batches, _ = evaluate(tmp_path / "a", table, model_path, name="batches", batch_size=17, **config)
    assert one["confidence_intervals"] == {"method": "poisson_bootstrap", "num_bootstrap_samples": 10,
                                           "confidence_level": 0.95, "seed": 7}
    for other in (beam, small_batches):
        for a, b in zip(one["slices"], other["slices"], strict=True):
            for metric, interval in a["intervals"]["candidate"].items():
                other_interval = b["intervals"]["candidate"][metric]
                if interval is None:
                    assert other_interval is None, metric
                else:
                    assert other_interval == pytest.approx(interval, rel=1e-9, abs=1e-12), metric
    overall = one["slices"][0]
    acc = overall["candidate"]["accuracy"]
    ci = overall["intervals"]["candidate"]["accuracy"]
    assert ci["lower"] < acc < ci["upper"] and ci["std_error"] > 0
    assert ci["upper"] - acc == pytest.approx(acc - ci["lower"])
    assert overall["intervals"]["candidate"]["auc"]["std_error"] > 0
    # a different seed draws other replicates
    reseeded, _ = evaluate(tmp_path / "a", table, model_path, name="seed", **{
        **config, "confidence_intervals": {"num_bootstrap_samples": 10, "seed": 8}})
    assert reseeded["slices"][0]["intervals"]["candidate"]["accuracy"] != ci


def test_thresholds_on_the_interval(tmp_path):
    intervals = {"accuracy": {"lower": 0.88, "upper": 0.94, "std_error": 0.015}}
    metrics = {"accuracy": 0.91}

    def check(**spec):
        return check_thresholds([Threshold.parse("accuracy", spec)], metrics, None, intervals)

    assert check(lower_bound=0.9)[0]["passed"] is True  # on the value
    low = check(lower_bound=0.9, on="interval")[0]
    assert low["passed"] is False and low["value"] == 0.88 and low["on"] == "ci_lower"
    assert "lower end of its confidence interval" in low["reason"]
    assert check(lower_bound=0.85, upper_bound=0.95, on="interval")[1]["passed"] is True
    assert check(upper_bound=0.93, on="interval")[0]["passed"] is False
    assert check(lower_bound=0.93, on="ci_upper")[0]["passed"] is True
    assert check_thresholds([Threshold.parse("accuracy", {"lower_bound": 0.5, "on": "interval"})], metrics, None,
                            {"accuracy": None})[0]["passed"] is False
    with pytest.raises(InvalidArgumentError, match=r"'on'\] is 'lower'"):
        Threshold.parse("accuracy", {"lower_bound": 0.5, "on": "lower"})
    # checked when the pipeline is built: on an interval needs intervals
    with pytest.raises(InvalidArgumentError, match="has no 'confidence_intervals'"):
        EvalConfig.parse({"label_key": "y", "thresholds": {"accuracy": {"lower_bound": 0.9, "on": "interval"}}})
    # and in a real evaluation the blessing follows the interval
    table = lib.eval_table(300, seed=5)
    model_path = lib.export_binary_model(str(tmp_path / "model"), bias=0.05)
    metrics_doc, blessing = evaluate(tmp_path, table, model_path, confidence_intervals={"num_bootstrap_samples": 20},
                                     thresholds={"accuracy": {"lower_bound": 0.0, "upper_bound": 1.0, "on": "interval"},
                                                 "auc": {"lower_bound": 0.0, "on": "ci_lower"}})
    value = metrics_doc["slices"][0]["candidate"]["accuracy"]
    lower = metrics_doc["slices"][0]["intervals"]["candidate"]["accuracy"]["lower"]
    assert blessing.properties["blessed"] is True
    _, strict = evaluate(tmp_path, table, model_path, name="strict", confidence_intervals={"num_bootstrap_samples": 20},
                         thresholds={"accuracy": {"lower_bound": (lower + value) / 2, "on": "interval"}})
    assert strict.properties["blessed"] is False
    assert "lower end of its confidence interval" in strict.properties["reasons"][0]


@pytest.mark.parametrize("config, message", [
    ({"confidence_intervals": {"num_bootstrap_sample": 20}}, r"did you mean 'num_bootstrap_samples'"),
    ({"confidence_intervals": {"confidence_level": 95}}, r"confidence_level'\] must be a number in \(0, 1\)"),
    ({"confidence_intervals": {"method": "jackknife"}}, "the method is 'poisson_bootstrap'"),
    ({"fairness": {"threshold": [0.5]}}, r"did you mean 'thresholds'"),
    ({"fairness": {"thresholds": [1.5]}}, r"decision thresholds in \[0, 1\]"),
    ({"slicing_specs": [[{"column": "x", "quantile": 4}]]}, r"slicing_specs'\]\[0\]\[0\] has unknown key.*'quantiles'"),
    ({"slicing_specs": [[{"column": "x", "boundaries": [2, 1]}]]}, "strictly increasing"),
    ({"slicing_specs": [[{"column": "x"}]]}, "exactly one of 'quantiles'"),
    ({"slicing_specs": [["x", {"column": "x", "quantiles": 3}]]}, "names a column twice"),
])
def test_new_config_keys_fail_when_the_pipeline_is_built(config, message):
    with pytest.raises(InvalidArgumentError, match=message):
        EvalConfig.parse({"label_key": "y", **config})
    # the same check runs when a pipeline is built, naming the node
    examples, model = lib.make_eval_examples(), lib.make_eval_model()
    evaluator = Evaluator(examples=examples.outputs["examples"], model=model.outputs["model"],
                          eval_config={"label_key": "y", **config})
    with pytest.raises(InvalidPipelineError, match="node 'Evaluator' parameter 'eval_config'.*" + message):
        Pipeline("p", [examples, model, evaluator])


# ----------------------------------------------------------------------------- numeric buckets

def test_bucketed_slices_match_numpy(tmp_path):
    rng = np.random.default_rng(11)
    table = lib.eval_table(500, seed=2).append_column("length", pa.array(
        np.round(rng.normal(44.0, 5.0, 500), 1), mask=rng.random(500) < 0.05))
    model_path = lib.export_binary_model(str(tmp_path / "model"))
    doc, _ = evaluate(tmp_path, table, model_path, row_group_size=100,
                      slicing_specs=[{"column": "length", "quantiles": 4},
                                     [{"column": "x", "boundaries": [0.25, 0.5]}, "island"]])
    length = np.array(table.column("length").to_pylist(), dtype=float)
    edges = np.quantile(length[~np.isnan(length)], [0.25, 0.5, 0.75])
    spec = doc["slicing_specs"][1][0]
    assert spec["quantiles"] == 4 and spec["boundaries"] == pytest.approx(list(edges), abs=1e-12)
    buckets = [s for s in doc["slices"] if list(s["slice"]) == ["length"]]
    labels = [f"(-inf, {edges[0]:.6g})", f"[{edges[0]:.6g}, {edges[1]:.6g})", f"[{edges[1]:.6g}, {edges[2]:.6g})",
              f"[{edges[2]:.6g}, inf)", None]
    assert [s["slice"]["length"] for s in buckets] == labels  # in bucket order, missing last
    assert buckets[1]["slice_name"] == f"length=[{edges[0]:.6g}, {edges[1]:.6g})"
    index = np.where(np.isnan(length), 4, np.searchsorted(edges, length, side="right"))
    probs = load(model_path)({"x": table.column("x").to_numpy()})["probabilities"]
    y = (np.array(table.column("label").to_pylist()) == "yes").astype(int)
    for i, s in enumerate(buckets):
        rows = index == i
        assert s["candidate"]["example_count"] == rows.sum()
        assert s["candidate"]["accuracy"] == pytest.approx(skm.accuracy_score(y[rows], probs[rows].argmax(1)), abs=TOL)
    # explicit boundaries crossed with a column
    x = table.column("x").to_numpy()
    island = np.array(table.column("island").to_pylist())
    crossed = [s for s in doc["slices"] if list(s["slice"]) == ["x", "island"]]
    assert crossed[0]["slice"] == {"x": "(-inf, 0.25)", "island": "Biscoe"}
    for s in crossed:
        b = ["(-inf, 0.25)", "[0.25, 0.5)", "[0.5, inf)"].index(s["slice"]["x"])
        rows = (np.searchsorted([0.25, 0.5], x, side="right") == b) & (island == s["slice"]["island"])
        assert s["candidate"]["example_count"] == rows.sum()


def test_quantile_boundaries_are_the_same_on_beam(tmp_path):
    table = lib.eval_table(300, seed=4)
    model_path = lib.export_binary_model(str(tmp_path / "model"))
    config = {"slicing_specs": [[{"column": "weight", "quantiles": 5}]]}
    a, _ = evaluate(tmp_path, table, model_path, row_group_size=50, **config)
    b, _ = evaluate(tmp_path, table, model_path, name="beam", beam=["--runner=DirectRunner"], **config)
    assert a["slicing_specs"] == b["slicing_specs"]
    assert a["slicing_specs"][1][0]["boundaries"] == pytest.approx(
        list(np.quantile(table.column("weight").to_numpy(), [0.2, 0.4, 0.6, 0.8])), abs=1e-12)
    assert [s["slice"] for s in a["slices"]] == [s["slice"] for s in b["slices"]]


# ----------------------------------------------------------------------------- fairness indicators

def _rates(y, pred, w):
    """FPR, FNR, positive rate, precision of 0/1 predictions via scikit-learn's confusion matrix."""
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1], sample_weight=w).ravel()
    return {"false_positive_rate": fp / (fp + tn), "false_negative_rate": fn / (fn + tp),
            "positive_rate": (tp + fp) / (tp + fp + tn + fn),
            "precision": skm.precision_score(y, pred, sample_weight=w, zero_division=0)}


def test_fairness_rates_and_gaps_match_sklearn(tmp_path):
    table = lib.eval_table(600, seed=8)
    model_path = lib.export_binary_model(str(tmp_path / "model"), bias=-0.05)
    thresholds = [0.25, 0.5, 0.75]
    doc, _ = evaluate(tmp_path, table, model_path, slicing_specs=[["island"]], example_weight_key="weight",
                      fairness={"thresholds": thresholds})
    assert doc["fairness_thresholds"] == thresholds
    score = load(model_path)({"x": table.column("x").to_numpy()})["probabilities"][:, 1]
    y = (np.array(table.column("label").to_pylist()) == "yes").astype(int)
    w = table.column("weight").to_numpy()
    island = np.array(table.column("island").to_pylist())
    overall = {t: _rates(y, (score > t).astype(int), w) for t in thresholds}
    for s in doc["slices"]:
        rows = island == s["slice"]["island"] if s["slice"] else np.ones(len(y), bool)
        for t in thresholds:
            expected = _rates(y[rows], (score[rows] > t).astype(int), w[rows])
            for rate, value in expected.items():
                name = f"{rate}@{t:g}"
                assert s["candidate"]["fairness"][name] == pytest.approx(value, abs=TOL), (s["slice"], name)
                assert s["candidate"]["fairness_gap"][name] == pytest.approx(value - overall[t][rate], abs=TOL)
    assert doc["slices"][0]["candidate"]["fairness_gap"]["false_positive_rate@0.5"] == 0.0


def test_fairness_one_vs_rest_per_class_and_gap_intervals():
    k = ClassificationMetrics(3, ["a", "b", "c"], fairness_thresholds=[0.3, 0.6])
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], 200)
    y = rng.integers(0, 3, 200)
    fairness = k.finish(k.add(k.create(), MetricInputs(y, p)))["metrics"]["fairness"]
    assert list(fairness) == ["a", "b", "c"]
    for c, name in enumerate("abc"):
        for t in (0.3, 0.6):
            expected = _rates((y == c).astype(int), (p[:, c] > t).astype(int), None)
            for rate, value in expected.items():
                assert fairness[name][f"{rate}@{t:g}"] == pytest.approx(value, abs=TOL)


def test_fairness_gaps_get_paired_bootstrap_intervals(tmp_path):
    table = lib.eval_table(400, seed=9)
    model_path = lib.export_binary_model(str(tmp_path / "model"))
    doc, _ = evaluate(tmp_path, table, model_path, slicing_specs=[["island"]], fairness={"thresholds": [0.5]},
                      confidence_intervals={"num_bootstrap_samples": 10})
    overall, first = doc["slices"][0], doc["slices"][1]
    # the overall slice's gap is 0 in every replicate, so its interval is a point
    assert overall["intervals"]["candidate"]["fairness_gap/positive_rate@0.5"]["std_error"] == 0.0
    gap = first["intervals"]["candidate"]["fairness_gap/positive_rate@0.5"]
    assert gap["std_error"] > 0 and gap["lower"] < first["candidate"]["fairness_gap"]["positive_rate@0.5"] < gap["upper"]


def test_regressor_intervals_cover_its_mse_and_fairness_needs_a_classifier(tmp_path):
    import jax.numpy as jnp
    from jfx.core import TensorSpec, export

    rng = np.random.default_rng(6)
    table = pa.table({"x": rng.normal(size=400).astype(np.float32), "label": rng.normal(size=400)})
    model = export(lambda prm, f: {"predictions": f["x"] * prm["w"]}, {"w": jnp.float32(0.5)},
                   {"x": TensorSpec("float32")}, tmp_path / "reg")
    doc, _ = evaluate(tmp_path, table, str(model), confidence_intervals={"num_bootstrap_samples": 10},
                      slicing_specs=[{"column": "x", "boundaries": [0.0]}])
    assert [s["slice_name"] for s in doc["slices"]] == ["Overall", "x=(-inf, 0)", "x=[0, inf)"]
    overall = doc["slices"][0]
    mse = overall["intervals"]["candidate"]["mse"]
    assert mse["lower"] < overall["candidate"]["mse"] < mse["upper"]
    pred = load(str(model))({"x": table.column("x").to_numpy()})["predictions"]
    assert overall["candidate"]["mse"] == pytest.approx(skm.mean_squared_error(table.column("label"), pred), abs=1e-6)
    with pytest.raises(InvalidArgumentError, match=r"'fairness'\] needs a classifier"):
        evaluate(tmp_path, table, str(model), name="fair", fairness={"thresholds": [0.5]})
