"""The metric kernels against scikit-learn (1e-6), and their merge property."""

from __future__ import annotations

import numpy as np
import pytest
from jfx.components._eval_metrics import (
    ClassificationMetrics,
    MetricInputs,
    RegressionMetrics,
    ScoreCurve,
    ScoreTable,
    _truncate_scores,
    average_precision,
    roc_auc,
)
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

TOL = 1e-6


def binary_data(n, seed=0, weighted=False, dtype=np.float32):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    # rounded scores make many ties, which is where AUC definitions differ
    p = np.clip(np.round(0.35 * y + 0.65 * rng.random(n), 2), 0, 1).astype(dtype)
    w = rng.uniform(0.1, 3.0, n) if weighted else np.ones(n)
    return y, np.stack([1 - p, p], axis=1), w


def multi_data(n, k=4, seed=0, weighted=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = np.round(rng.normal(size=(n, k)) + 1.2 * np.eye(k)[y], 1)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    w = rng.uniform(0.1, 3.0, n) if weighted else np.ones(n)
    return y, p, w


def run(kernel, y, p, w, pieces=1, seed=0):
    """Feed random batches to `pieces` accumulators, merge them in a random order."""
    rng = np.random.default_rng(seed)
    accs = [kernel.create() for _ in range(pieces)]
    cuts = np.sort(rng.choice(np.arange(1, len(y)), size=min(len(y) - 1, 7 * pieces), replace=False))
    for j, rows in enumerate(np.split(rng.permutation(len(y)), cuts)):
        i = j % pieces
        accs[i] = kernel.add(accs[i], MetricInputs(y[rows], p[rows], w[rows]))
    order = rng.permutation(pieces)
    return kernel.finish(kernel.merge([accs[i] for i in order]))


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_metrics_match_sklearn(weighted):
    y, p, w = binary_data(3000, weighted=weighted)
    out = run(ClassificationMetrics(2), y, p, w, pieces=3)
    m = out["metrics"]
    pred = np.argmax(p, axis=1)
    assert m["example_count"] == 3000
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w), abs=TOL)
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, sample_weight=w), abs=TOL)
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, sample_weight=w), abs=TOL)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, sample_weight=w), abs=TOL)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1], sample_weight=w), abs=TOL)
    assert m["auc_pr"] == pytest.approx(skm.average_precision_score(y, p[:, 1], sample_weight=w), abs=TOL)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, sample_weight=w), abs=TOL)
    assert m["mean_label"] == pytest.approx(np.average(y, weights=w), abs=TOL)
    assert m["mean_prediction"] == pytest.approx(np.average(p[:, 1], weights=w), abs=TOL)
    assert m["calibration"] == pytest.approx(m["mean_prediction"] / m["mean_label"])
    assert m["exact_curves"] is True
    cm = out["plots"]["confusion_matrix"]
    assert cm["counts"] == skm.confusion_matrix(y, pred).tolist()
    if weighted:
        np.testing.assert_allclose(cm["weighted"], skm.confusion_matrix(y, pred, sample_weight=w), atol=TOL)
    buckets = out["plots"]["calibration"]["buckets"]
    assert len(buckets) == 10 and sum(b["weight"] for b in buckets) == pytest.approx(w.sum())
    roc = out["plots"]["roc_curve"]
    assert len(roc["fpr"]) <= 101 and roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0


def test_saturated_probabilities_are_clipped_like_sklearn():
    y = np.array([0, 1, 1, 0])
    p1 = np.array([0.0, 1.0, 0.0, 0.3], dtype=np.float32)
    p = np.stack([1 - p1, p1], axis=1)
    m = ClassificationMetrics(2).finish(ClassificationMetrics(2).add(ClassificationMetrics(2).create(),
                                                                      MetricInputs(y, p)))["metrics"]
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=TOL)


@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_metrics_match_sklearn(weighted):
    k = 4
    y, p, w = multi_data(2500, k, weighted=weighted)
    names = ["a", "b", "c", "d"]
    out = run(ClassificationMetrics(k, names), y, p, w, pieces=4)
    m = out["metrics"]
    pred = np.argmax(p, axis=1)
    onehot = label_binarize(y, classes=range(k))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w), abs=TOL)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, sample_weight=w, labels=range(k)), abs=TOL)
    for avg in ("micro", "macro"):
        assert m[f"{avg}_precision"] == pytest.approx(
            skm.precision_score(y, pred, average=avg, sample_weight=w), abs=TOL)
        assert m[f"{avg}_recall"] == pytest.approx(skm.recall_score(y, pred, average=avg, sample_weight=w), abs=TOL)
    assert m["macro_auc"] == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro", sample_weight=w), abs=TOL)
    assert m["micro_auc"] == pytest.approx(
        skm.roc_auc_score(onehot.ravel(), p.ravel(), sample_weight=np.repeat(w, k)), abs=TOL)
    assert m["macro_auc_pr"] == pytest.approx(
        skm.average_precision_score(onehot, p, average="macro", sample_weight=w), abs=TOL)
    assert m["micro_auc_pr"] == pytest.approx(
        skm.average_precision_score(onehot, p, average="micro", sample_weight=w), abs=TOL)
    per_precision = skm.precision_score(y, pred, average=None, sample_weight=w)
    per_recall = skm.recall_score(y, pred, average=None, sample_weight=w)
    for c, name in enumerate(names):
        pc_ = m["per_class"][name]
        assert pc_["precision"] == pytest.approx(per_precision[c], abs=TOL)
        assert pc_["recall"] == pytest.approx(per_recall[c], abs=TOL)
        assert pc_["auc"] == pytest.approx(skm.roc_auc_score(y == c, p[:, c], sample_weight=w), abs=TOL)
        assert pc_["auc_pr"] == pytest.approx(skm.average_precision_score(y == c, p[:, c], sample_weight=w), abs=TOL)
    assert out["plots"]["confusion_matrix"]["counts"] == skm.confusion_matrix(y, pred, labels=range(k)).tolist()
    assert set(out["plots"]["roc_curve"]) == set(names)


def test_macro_precision_counts_only_present_classes_like_sklearn():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1], [.3, .6, .1], [.6, .3, .1]])
    k = ClassificationMetrics(3)
    m = k.finish(k.add(k.create(), MetricInputs(y, p)))["metrics"]
    pred = np.argmax(p, axis=1)
    assert m["macro_precision"] == pytest.approx(skm.precision_score(y, pred, average="macro", zero_division=0))
    assert m["macro_recall"] == pytest.approx(skm.recall_score(y, pred, average="macro", zero_division=0))
    assert m["per_class"]["2"]["auc"] is None  # no positives for class 2: undefined, not 0


@pytest.mark.parametrize("weighted", [False, True])
def test_regression_metrics_match_sklearn(weighted):
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 2000)
    p = (y + rng.normal(0, 1, 2000)).astype(np.float32)
    w = rng.uniform(0.1, 2, 2000) if weighted else np.ones(2000)
    m = run(RegressionMetrics(), y, p, w, pieces=3)["metrics"]
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, p, sample_weight=w), abs=TOL)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p, sample_weight=w), abs=TOL)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p, sample_weight=w)), abs=TOL)
    assert m["example_count"] == 2000


@pytest.mark.parametrize("kind", ["binary", "multi", "regression"])
def test_any_partitioning_gives_identical_results(kind):
    if kind == "binary":
        y, p, w = binary_data(4000, seed=5)
        make = lambda: ClassificationMetrics(2)  # noqa: E731
    elif kind == "multi":
        y, p, w = multi_data(4000, seed=5)
        make = lambda: ClassificationMetrics(4)  # noqa: E731
    else:
        y = np.arange(4000) % 17 * 1.0
        p, w = (y + (np.arange(4000) % 5)).astype(np.float32), np.ones(4000)
        make = RegressionMetrics
    results = [run(make(), y, p, w, pieces=pieces, seed=seed) for pieces, seed in ((1, 0), (3, 1), (8, 2))]
    for other in results[1:]:
        assert_same(results[0], other)
    if kind != "regression":  # unit weights: every count, curve and area is bit-identical
        for key in ("accuracy", "auc", "auc_pr", "micro_auc", "macro_auc", "micro_auc_pr"):
            assert [r["metrics"].get(key) for r in results] == [results[0]["metrics"].get(key)] * 3


def assert_same(a, b, path=""):
    """Equal, except floats made from float sums (log loss, mean prediction): 1e-12 relative."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), path
    else:
        assert a == b, path


def _tied_pair_bound(y, s, coarse):
    """Half the fraction of (positive, negative) pairs of distinct scores that share a cell."""
    pos, neg = coarse[y], coarse[~y]
    cells = np.unique(coarse)
    same = sum(np.sum(coarse[y] == c) * np.sum(coarse[~y] == c) for c in cells)
    exact_ties = sum(np.sum(s[y] == v) * np.sum(s[~y] == v) for v in np.unique(s))
    return 0.5 * (same - exact_ties) / (len(pos) * len(neg))


def test_score_tables_go_to_a_coarser_fixed_grid_over_the_limit():
    rng = np.random.default_rng(0)
    y, s = (rng.random(5000) < 0.5), rng.random(5000)
    s = np.where(y, s * 0.8 + 0.2, s * 0.8)
    exact = ScoreTable.of(s, y, np.ones(5000))
    parts = [ScoreTable.of(s[i::4], y[i::4], np.ones(1250)) for i in range(4)]
    small = ScoreTable.union(parts, max_scores=500)
    assert small.rounded and len(small) <= 500 < len(exact)
    # the grid depends only on all the scores: any grouping, or one row at a time, gives the same table
    again = ScoreTable.union([ScoreTable.union(parts[:2], 500), ScoreTable.union(parts[2:], 500)], 500)
    one_by_one = ScoreTable.empty()
    for i in range(0, 5000, 7):
        one_by_one = ScoreTable.union([one_by_one, ScoreTable.of(s[i:i + 7], y[i:i + 7], np.ones(len(s[i:i + 7])))],
                                      500)
    for other in (again, one_by_one):
        assert other.level == small.level
        np.testing.assert_array_equal(small.scores, other.scores)
        np.testing.assert_array_equal(small.pos, other.pos)
    # truncation is monotone: only pairs in one cell become ties, which bounds the error
    coarse = small.scores[np.searchsorted(small.scores, _truncate_scores(s, small.level))]
    bound = _tied_pair_bound(y, s, coarse)
    assert 0 < bound < 0.01
    assert abs(roc_auc(small) - skm.roc_auc_score(y, s)) <= bound + 1e-12
    assert roc_auc(exact) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(small) == pytest.approx(skm.average_precision_score(y, s), abs=0.01)
    k = ClassificationMetrics(2, exact_max_scores=100)
    out = k.finish(k.add(k.create(), MetricInputs(y.astype(int), np.stack([1 - s, s], axis=1))))
    assert out["metrics"]["exact_curves"] is False


def test_a_score_curve_stays_within_its_limit_however_many_rows():
    rng = np.random.default_rng(1)
    curve = ScoreCurve(max_scores=2000)
    scores, labels = rng.random(200_000), rng.random(200_000)
    labels = labels < scores
    for i in range(0, 200_000, 5000):
        curve.add(scores[i:i + 5000], labels[i:i + 5000], np.ones(5000))
        assert len(curve.table) <= 2000
    table = curve.consolidate()
    assert table.rounded and len(table) <= 2000
    # the same table as all rows at once: nothing dropped, nothing counted twice
    whole = ScoreTable.union([ScoreTable.of(scores, labels, np.ones(200_000))], 2000)
    assert table.level == whole.level
    np.testing.assert_array_equal(table.scores, whole.scores)
    np.testing.assert_array_equal(table.pos, whole.pos)
    np.testing.assert_array_equal(table.neg, whole.neg)


def test_empty_slice_has_no_values_but_no_errors():
    k = ClassificationMetrics(2)
    m = k.finish(k.create())["metrics"]
    assert m["example_count"] == 0 and m["accuracy"] is None and m["auc"] is None
    assert RegressionMetrics().finish(RegressionMetrics().create())["metrics"]["mse"] is None
