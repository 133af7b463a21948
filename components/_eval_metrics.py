"""Evaluation metric kernels: classification and regression metrics, mergeable and exact.

Every metric here is a small kernel (STYLE.md item 5) over :class:`MetricInputs`, the
labels, predictions and weights of some rows of one slice::

    create() -> acc
    add(acc, inputs: MetricInputs) -> acc
    merge(accs: list[acc]) -> acc
    finish(acc) -> result

The Evaluator (:mod:`jfx.components._evaluator`) holds one accumulator per model and
slice inside its engine kernel, so either engine of :mod:`jfx.components._engine`
runs them. A user metric (``eval_config["custom_metrics"]``) has the same four
functions; its ``finish`` returns a number or a dict of numbers.

Exactness (tested against scikit-learn to 1e-6, per slice and weighted):

* Counts, the confusion matrix, accuracy, precision, recall, log loss, MSE, MAE, the
  means and calibration are sums: exact up to floating-point summation order (any
  partitioning agrees to ~1e-15 relative; with unit weights counts are identical).
* ROC AUC and PR AUC (average precision) keep a :class:`ScoreTable` per curve: the
  distinct scores with the positive and negative weight seen at each. Merging is a
  union with summed weights, and both areas depend only on that table, so they are
  *exact* — the same numbers as ``roc_auc_score`` / ``average_precision_score`` on all
  rows — whatever the partitioning, as long as a curve has at most
  ``exact_max_scores`` (default 262,144) distinct scores. Beyond that the table
  truncates every score to the finest grid of :data:`GRID_BITS` (20, 18, ..., 2 or
  0 significant bits; 20 is a relative spacing of ~1e-6) on which the curve's scores
  have at most ``exact_max_scores`` distinct values (at 0 bits, powers of two: at
  most ~4,100). The grids are nested, so the grid a curve ends on depends only on all
  its scores, never on the partitioning: merging stays order-independent, and a
  table never holds more than ``exact_max_scores`` scores, whatever the number of
  rows. Truncation is monotone, so only scores that fall in one cell become ties;
  the error is at most half the weighted fraction of such pairs.
  ``metrics["exact_curves"]`` says which was used.

Example:
    >>> import numpy as np
    >>> k = ClassificationMetrics(num_classes=2)
    >>> acc = k.add(k.create(), MetricInputs(np.array([0, 1, 1]), np.array([[.8, .2], [.3, .7], [.6, .4]])))
    >>> k.finish(acc)["metrics"]["auc"]
    1.0
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = [
    "EXACT_MAX_SCORES",
    "FAIRNESS_RATES",
    "GRID_BITS",
    "ClassificationMetrics",
    "MetricInputs",
    "MetricKernel",
    "RegressionMetrics",
    "ScoreCurve",
    "ScoreTable",
    "average_precision",
    "confidence_interval",
    "poisson_counts",
    "roc_auc",
    "scalar_metrics",
    "t_quantile",
]

FAIRNESS_RATES = ("false_positive_rate", "false_negative_rate", "positive_rate", "precision")
EXACT_MAX_SCORES = 262_144
# significant bits a ScoreTable keeps at grid level 1, 2, ... (level 0: exact scores)
GRID_BITS = (20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0)
_CONSOLIDATE_MIN = 65_536


@dataclass
class MetricInputs:
    """What a metric sees of one batch of one slice.

    Attributes:
        labels: class ids (int64, classifiers) or values (float64, regressors), shape (n,).
        predictions: the prediction output: probabilities (n, k) for classifiers (a
            binary model's (n,) positive-class probability arrives as (n, 2)), values
            (n,) for regressors.
        weights: example weights, float64 (n,) (ones without ``example_weight_key``).
        outputs: every model output for these rows (name → array).
        features: the rows themselves (a ``pyarrow.RecordBatch``), or ``None``.
    """

    labels: np.ndarray
    predictions: np.ndarray
    weights: np.ndarray | None = None
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    features: Any = None

    def __post_init__(self) -> None:
        if self.weights is None:
            self.weights = np.ones(len(self.labels), dtype=np.float64)


Acc = TypeVar("Acc")
Out = TypeVar("Out")


class MetricKernel(Generic[Acc, Out]):
    """The protocol of a metric (built-in or user): create / add / merge / finish.

    The engine kernel's contract (``Kernel`` in :mod:`jfx.components._engine`) with
    ``add`` for ``add_batch``: ``add`` may mutate its accumulator; ``merge`` must not
    mutate its inputs and returns a new accumulator; merging the accumulators of split
    inputs equals one pass. A test checks it for the built-in metrics.
    """

    name: str = "metric"

    def create(self) -> Acc:
        raise NotImplementedError

    def add(self, acc: Acc, inputs: MetricInputs) -> Acc:
        raise NotImplementedError

    def merge(self, accs: list[Acc]) -> Acc:
        raise NotImplementedError

    def finish(self, acc: Acc) -> Out:
        raise NotImplementedError


# ----------------------------------------------------------------------------- score tables

def _truncate_scores(scores: np.ndarray, level: int) -> np.ndarray:
    """Truncate float64 scores toward zero to ``GRID_BITS[level - 1]`` significant bits.

    Monotone, idempotent and nested: truncating to a coarser level after a finer one
    equals truncating to the coarser one directly. Infinities and NaN are kept."""
    bits = np.ascontiguousarray(scores, dtype=np.float64).view(np.int64)
    mask = ~((np.int64(1) << np.int64(52 - GRID_BITS[level - 1])) - 1)
    return np.where(np.isfinite(scores), bits & mask, bits).view(np.float64)


@dataclass
class ScoreTable:
    """Distinct scores (ascending) with the positive and negative weight seen at each."""

    scores: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    level: int = 0  # 0: exact scores; else truncated to GRID_BITS[level - 1] bits

    @property
    def rounded(self) -> bool:
        return self.level > 0

    @classmethod
    def empty(cls) -> ScoreTable:
        z = np.zeros(0, dtype=np.float64)
        return cls(z, z.copy(), z.copy())

    @classmethod
    def of(cls, scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> ScoreTable:
        scores = np.asarray(scores, dtype=np.float64)
        positive = np.asarray(positive, dtype=bool)
        weights = np.asarray(weights, dtype=np.float64)
        uniq, inverse = np.unique(scores, return_inverse=True)
        pos = np.bincount(inverse, weights=np.where(positive, weights, 0.0), minlength=len(uniq))
        neg = np.bincount(inverse, weights=np.where(positive, 0.0, weights), minlength=len(uniq))
        return cls(uniq, pos, neg)

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def union(tables: Sequence[ScoreTable], max_scores: int = EXACT_MAX_SCORES) -> ScoreTable:
        """Merge tables (summing weights per score), on the finest grid level at or above
        theirs that holds at most ``max_scores`` scores."""
        tables = [t for t in tables if len(t)] or [ScoreTable.empty()]
        level = max(t.level for t in tables)
        scores = np.concatenate([t.scores for t in tables])
        pos = np.concatenate([t.pos for t in tables])
        neg = np.concatenate([t.neg for t in tables])
        if level:
            scores = _truncate_scores(scores, level)
        uniq, inverse = np.unique(scores, return_inverse=True)
        while len(uniq) > max_scores and level < len(GRID_BITS):
            level += 1
            uniq, coarser = np.unique(_truncate_scores(uniq, level), return_inverse=True)
            inverse = coarser[inverse]
        return ScoreTable(uniq, np.bincount(inverse, weights=pos, minlength=len(uniq)),
                          np.bincount(inverse, weights=neg, minlength=len(uniq)), level)

    def cumulative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds descending, true-positive weight, false-positive weight) at each,
        as scikit-learn's ``_binary_clf_curve`` computes them."""
        order = slice(None, None, -1)
        return self.scores[order], np.cumsum(self.pos[order]), np.cumsum(self.neg[order])


@dataclass
class ScoreCurve:
    """A growing :class:`ScoreTable`: batches are kept apart and unioned geometrically,
    so adding n rows in many batches costs O(n log n) overall."""

    max_scores: int = EXACT_MAX_SCORES
    table: ScoreTable = field(default_factory=ScoreTable.empty)
    pending: list[ScoreTable] = field(default_factory=list)
    pending_size: int = 0

    def add(self, scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> None:
        table = self.table
        if table.level and len(table):
            # on a grid already: most scores fall in a cell the table has, and are summed into it
            # in place (what a union would do); only the others wait for the next union
            scores = _truncate_scores(np.asarray(scores, dtype=np.float64), table.level)
            positive = np.asarray(positive, dtype=bool)
            weights = np.asarray(weights, dtype=np.float64)
            cell = np.minimum(np.searchsorted(table.scores, scores), len(table) - 1)
            hit = table.scores[cell] == scores
            np.add.at(table.pos, cell[hit & positive], weights[hit & positive])
            np.add.at(table.neg, cell[hit & ~positive], weights[hit & ~positive])
            scores, positive, weights = scores[~hit], positive[~hit], weights[~hit]
            if not len(scores):
                return
        part = ScoreTable.of(scores, positive, weights)
        self.pending.append(part)
        self.pending_size += len(part)
        if self.pending_size >= max(_CONSOLIDATE_MIN, len(self.table)):
            self.consolidate()

    def consolidate(self) -> ScoreTable:
        if self.pending:
            self.table = ScoreTable.union([self.table, *self.pending], self.max_scores)
            self.pending, self.pending_size = [], 0
        return self.table

    @staticmethod
    def merge(curves: Sequence[ScoreCurve]) -> ScoreCurve:
        limit = curves[0].max_scores
        table = ScoreTable.union([t for c in curves for t in (c.table, *c.pending)], limit)
        return ScoreCurve(limit, table)


def roc_auc(table: ScoreTable) -> float | None:
    """Area under the ROC curve (trapezoids, ties counted half), as ``roc_auc_score``;
    ``None`` without positive or without negative weight."""
    _, tps, fps = table.cumulative()
    if not len(tps) or tps[-1] <= 0 or fps[-1] <= 0:
        return None
    tpr = np.concatenate([[0.0], tps / tps[-1]])
    fpr = np.concatenate([[0.0], fps / fps[-1]])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def average_precision(table: ScoreTable) -> float | None:
    """PR AUC as ``average_precision_score``: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds
    (no interpolation); ``None`` without positive weight."""
    _, tps, fps = table.cumulative()
    if not len(tps) or tps[-1] <= 0:
        return None
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.ones_like(tps), where=predicted > 0)
    recall_steps = np.diff(np.concatenate([[0.0], tps])) / tps[-1]
    return float(np.sum(recall_steps * precision))


def _downsample(n: int, points: int) -> np.ndarray:
    if n <= points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, points)).astype(np.int64))


def _curves(table: ScoreTable, points: int) -> dict[str, Any]:
    """ROC and PR curve points (at most ``points`` each, endpoints kept)."""
    thresholds, tps, fps = table.cumulative()
    if not len(tps):
        return {"roc": None, "pr": None}
    roc = None
    if tps[-1] > 0 and fps[-1] > 0:
        tpr = np.concatenate([[0.0], tps / tps[-1]])
        fpr = np.concatenate([[0.0], fps / fps[-1]])
        thr = np.concatenate([[np.inf], thresholds])
        idx = _downsample(len(tpr), points)
        roc = {"fpr": _floats(fpr[idx]), "tpr": _floats(tpr[idx]), "thresholds": _floats(thr[idx])}
    pr = None
    if tps[-1] > 0:
        predicted = tps + fps
        precision = np.divide(tps, predicted, out=np.ones_like(tps), where=predicted > 0)
        recall = tps / tps[-1]
        idx = _downsample(len(recall), points)
        pr = {"precision": _floats(precision[idx]), "recall": _floats(recall[idx]),
              "thresholds": _floats(thresholds[idx])}
    return {"roc": roc, "pr": pr}


def _floats(values: np.ndarray) -> list[float | None]:
    return [_num(v) for v in values]


def _num(value: Any) -> float | None:
    """A JSON-safe float: ``None`` for NaN or infinity."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b != 0 else None


# ----------------------------------------------------------------------------- classification

@dataclass
class ClassificationAcc:
    count: np.ndarray  # (k, k) int64 confusion counts, rows actual, columns predicted
    weight: np.ndarray  # (k, k) float64 weighted confusion matrix
    log_loss: float = 0.0
    prob_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) Σ w·p[:, c]
    calibration: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (buckets, 3): Σw, Σw·p, Σw·y of the positive class
    curves: list[ScoreCurve] = field(default_factory=list)  # binary: [class 1]; else per class + micro
    weighted: bool = False
    # (classes, thresholds, 4): weighted tp, fp, tn, fn of "score > threshold" per fairness
    # threshold; binary: the positive class only, else each class one-vs-rest
    fairness: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 4)))


class ClassificationMetrics(MetricKernel[ClassificationAcc, dict[str, Any]]):
    """Classifier metrics from class-id labels and (n, k) probabilities.

    Binary (k = 2; the positive class is class id 1): ``accuracy``, ``precision``,
    ``recall``, ``f1``, ``auc`` (ROC), ``auc_pr`` (average precision), ``log_loss``,
    ``mean_label``, ``mean_prediction`` (of the positive class) and ``calibration``
    (mean prediction / mean label). Multi-class: ``accuracy``, ``log_loss``,
    ``micro_precision``/``micro_recall`` (equal to accuracy for single-label data),
    ``macro_precision``/``macro_recall`` (unweighted mean over the classes present in
    the labels or predictions, as scikit-learn), ``macro_auc``/``macro_auc_pr`` (mean of
    the one-vs-rest per-class values that are defined), ``micro_auc``/``micro_auc_pr``
    (one curve over every (row, class) pair), and ``per_class`` → class name →
    ``precision``, ``recall``, ``auc``, ``auc_pr``, ``mean_prediction``, ``mean_label``.
    Both: ``example_count``, ``weighted_example_count``, ``exact_curves``.

    With ``fairness_thresholds``, ``fairness`` holds TFMA's fairness-indicator rates at
    each threshold t, a row being predicted positive when its score is above t:
    ``false_positive_rate@t``, ``false_negative_rate@t``, ``positive_rate@t`` and
    ``precision@t`` (0 with nothing predicted positive, as ``precision`` above). A binary
    model has them for the positive class (class id 1); a multi-class model has them
    one-vs-rest per class: ``fairness`` → class name → rates.

    The predicted class is the argmax of the probabilities (the first on a tie); a
    precision with nothing predicted is 0, as scikit-learn's default. Log loss clips
    probabilities to [eps, 1 − eps] with eps of the prediction dtype, as scikit-learn.
    """

    name = "classification"

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *,
                 calibration_buckets: int = 10, curve_points: int = 101,
                 exact_max_scores: int = EXACT_MAX_SCORES, fairness_thresholds: Sequence[float] = ()) -> None:
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.k = int(num_classes)
        self.class_names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(self.k)]
        if len(self.class_names) != self.k:
            raise ValueError(f"{len(self.class_names)} class names for {self.k} classes")
        self.buckets = int(calibration_buckets)
        self.points = int(curve_points)
        self.max_scores = int(exact_max_scores)
        self.fairness_thresholds = np.asarray([float(t) for t in fairness_thresholds], dtype=np.float64)

    @property
    def binary(self) -> bool:
        return self.k == 2

    def create(self) -> ClassificationAcc:
        n_curves = 1 if self.binary else self.k + 1
        return ClassificationAcc(
            count=np.zeros((self.k, self.k), np.int64), weight=np.zeros((self.k, self.k)),
            prob_sum=np.zeros(self.k), calibration=np.zeros((self.buckets, 3)),
            curves=[ScoreCurve(self.max_scores) for _ in range(n_curves)],
            fairness=np.zeros((1 if self.binary else self.k, len(self.fairness_thresholds), 4)),
        )

    def add(self, acc: ClassificationAcc, inputs: MetricInputs) -> ClassificationAcc:
        y = np.asarray(inputs.labels, dtype=np.int64)
        p = np.asarray(inputs.predictions)
        if p.dtype not in (np.float32, np.float64):
            p = p.astype(np.float64)
        w = np.asarray(inputs.weights, dtype=np.float64)
        if not len(y):
            return acc
        if p.ndim != 2 or p.shape[1] != self.k:
            raise ValueError(f"expected probabilities of shape (n, {self.k}), got {p.shape}")
        acc.weighted = acc.weighted or bool(np.any(w != 1.0))
        pred = np.argmax(p, axis=1)
        cell = y * self.k + pred
        acc.count += np.bincount(cell, minlength=self.k * self.k).reshape(self.k, self.k)
        acc.weight += np.bincount(cell, weights=w, minlength=self.k * self.k).reshape(self.k, self.k)
        eps = np.finfo(p.dtype).eps
        p_true = np.clip(p[np.arange(len(y)), y], eps, 1 - eps).astype(np.float64)
        acc.log_loss += float(np.dot(w, -np.log(p_true)))
        p64 = p.astype(np.float64)
        acc.prob_sum += w @ p64
        if self.binary:
            score = p64[:, 1]
            positive = y == 1
            bucket = np.clip(np.floor(score * self.buckets).astype(np.int64), 0, self.buckets - 1)
            acc.calibration[:, 0] += np.bincount(bucket, weights=w, minlength=self.buckets)
            acc.calibration[:, 1] += np.bincount(bucket, weights=w * score, minlength=self.buckets)
            acc.calibration[:, 2] += np.bincount(bucket, weights=w * positive, minlength=self.buckets)
            acc.curves[0].add(score, positive, w)
        else:
            for c in range(self.k):
                acc.curves[c].add(p64[:, c], y == c, w)
            onehot = np.zeros_like(p64, dtype=bool)
            onehot[np.arange(len(y)), y] = True
            acc.curves[self.k].add(p64.reshape(-1), onehot.reshape(-1), np.repeat(w, self.k))
        if len(self.fairness_thresholds):
            for i, c in enumerate([1] if self.binary else range(self.k)):
                predicted = (p64[:, c, None] > self.fairness_thresholds[None, :]).astype(np.float64)
                wp = np.where(y == c, w, 0.0)
                wn = w - wp
                tp, fp = wp @ predicted, wn @ predicted
                acc.fairness[i] += np.stack([tp, fp, wn.sum() - fp, wp.sum() - tp], axis=1)
        return acc

    def merge(self, accs: list[ClassificationAcc]) -> ClassificationAcc:
        out = self.create()
        for a in accs:
            out.count += a.count
            out.weight += a.weight
            out.log_loss += a.log_loss
            out.prob_sum += a.prob_sum
            out.calibration += a.calibration
            out.fairness += a.fairness
            out.weighted = out.weighted or a.weighted
        out.curves = [ScoreCurve.merge([a.curves[i] for a in accs] or [ScoreCurve(self.max_scores)])
                      for i in range(len(out.curves))]
        return out

    def finish(self, acc: ClassificationAcc) -> dict[str, Any]:
        cm = acc.weight
        total = float(cm.sum())
        actual = cm.sum(axis=1)
        predicted = cm.sum(axis=0)
        tp = np.diag(cm)
        tables = [c.consolidate() for c in acc.curves]
        metrics: dict[str, Any] = {
            "example_count": int(acc.count.sum()),
            "weighted_example_count": total,
            "accuracy": _ratio(float(tp.sum()), total),
            "log_loss": _ratio(acc.log_loss, total),
        }
        precision = np.divide(tp, predicted, out=np.zeros(self.k), where=predicted != 0)
        recall = np.divide(tp, actual, out=np.zeros(self.k), where=actual != 0)
        plots: dict[str, Any] = {"confusion_matrix": {"labels": self.class_names,
                                                      "counts": acc.count.tolist()}}
        if acc.weighted:
            plots["confusion_matrix"]["weighted"] = cm.tolist()
        if self.binary:
            mean_label = _ratio(float(actual[1]), total)
            mean_pred = _ratio(float(acc.prob_sum[1]), total)
            p1, r1 = float(precision[1]), float(recall[1])
            metrics.update({
                "precision": p1 if total else None,
                "recall": r1 if total else None,
                "f1": (2 * p1 * r1 / (p1 + r1) if p1 + r1 > 0 else 0.0) if total else None,
                "auc": roc_auc(tables[0]),
                "auc_pr": average_precision(tables[0]),
                "mean_label": mean_label,
                "mean_prediction": mean_pred,
                "calibration": _ratio(mean_pred, mean_label) if mean_pred is not None and mean_label else None,
            })
            edges = np.linspace(0.0, 1.0, self.buckets + 1)
            plots["calibration"] = {"class": self.class_names[1], "buckets": [
                {"lower": float(edges[i]), "upper": float(edges[i + 1]), "weight": float(row[0]),
                 "mean_prediction": _ratio(row[1], row[0]), "mean_label": _ratio(row[2], row[0])}
                for i, row in enumerate(acc.calibration)]}
            curves = _curves(tables[0], self.points)
            plots["roc_curve"], plots["pr_curve"] = curves["roc"], curves["pr"]
        else:
            present = (acc.count.sum(axis=1) + acc.count.sum(axis=0)) > 0
            per_class = {}
            aucs, aps = [], []
            for c, name in enumerate(self.class_names):
                a, ap = roc_auc(tables[c]), average_precision(tables[c])
                aucs.append(a)
                aps.append(ap)
                per_class[name] = {"precision": float(precision[c]), "recall": float(recall[c]), "auc": a,
                                   "auc_pr": ap, "mean_prediction": _ratio(float(acc.prob_sum[c]), total),
                                   "mean_label": _ratio(float(actual[c]), total)}
            def defined(xs: list[Any]) -> list[Any]:
                return [x for x in xs if x is not None]

            metrics.update({
                "micro_precision": metrics["accuracy"],
                "micro_recall": metrics["accuracy"],
                "macro_precision": float(precision[present].mean()) if present.any() else None,
                "macro_recall": float(recall[present].mean()) if present.any() else None,
                "macro_auc": float(np.mean(defined(aucs))) if defined(aucs) else None,
                "macro_auc_pr": float(np.mean(defined(aps))) if defined(aps) else None,
                "micro_auc": roc_auc(tables[self.k]),
                "micro_auc_pr": average_precision(tables[self.k]),
                "per_class": per_class,
            })
            plots["roc_curve"], plots["pr_curve"] = {}, {}
            for c, name in enumerate(self.class_names):
                curves = _curves(tables[c], self.points)
                plots["roc_curve"][name], plots["pr_curve"][name] = curves["roc"], curves["pr"]
        if len(self.fairness_thresholds):
            rates = [self._fairness(counts) for counts in acc.fairness]
            metrics["fairness"] = rates[0] if self.binary else dict(zip(self.class_names, rates, strict=True))
        metrics["exact_curves"] = not any(t.rounded for t in tables)
        return {"metrics": metrics, "plots": plots}

    def _fairness(self, counts: np.ndarray) -> dict[str, float | None]:
        """The rates of one class from its (thresholds, 4) tp, fp, tn, fn."""
        out: dict[str, float | None] = {}
        for t, (tp, fp, tn, fn) in zip(self.fairness_thresholds, counts, strict=True):
            total = tp + fp + tn + fn
            at = f"@{t:g}"
            out["false_positive_rate" + at] = _ratio(fp, fp + tn)
            out["false_negative_rate" + at] = _ratio(fn, fn + tp)
            out["positive_rate" + at] = _ratio(tp + fp, total)
            out["precision" + at] = (_ratio(tp, tp + fp) or 0.0) if total else None
        return out


# ----------------------------------------------------------------------------- regression

@dataclass
class RegressionAcc:
    count: int = 0
    weight: float = 0.0
    sq: float = 0.0
    abs: float = 0.0
    label: float = 0.0
    pred: float = 0.0


class RegressionMetrics(MetricKernel[RegressionAcc, dict[str, Any]]):
    """Regressor metrics: ``mse``, ``rmse``, ``mae``, ``mean_label``, ``mean_prediction``,
    ``example_count``, ``weighted_example_count`` (weighted means, as scikit-learn)."""

    name = "regression"

    def create(self) -> RegressionAcc:
        return RegressionAcc()

    def add(self, acc: RegressionAcc, inputs: MetricInputs) -> RegressionAcc:
        y = np.asarray(inputs.labels, dtype=np.float64)
        if not len(y):
            return acc
        p = np.asarray(inputs.predictions, dtype=np.float64).reshape(len(y), -1)
        if p.shape[1] != 1:
            raise ValueError(f"a regressor's predictions must be one value per row, got shape {p.shape}")
        p = p[:, 0]
        w = np.asarray(inputs.weights, dtype=np.float64)
        err = p - y
        acc.count += len(y)
        acc.weight += float(w.sum())
        acc.sq += float(np.dot(w, err * err))
        acc.abs += float(np.dot(w, np.abs(err)))
        acc.label += float(np.dot(w, y))
        acc.pred += float(np.dot(w, p))
        return acc

    def merge(self, accs: list[RegressionAcc]) -> RegressionAcc:
        out = RegressionAcc()
        for a in accs:
            out.count += a.count
            out.weight += a.weight
            out.sq += a.sq
            out.abs += a.abs
            out.label += a.label
            out.pred += a.pred
        return out

    def finish(self, acc: RegressionAcc) -> dict[str, Any]:
        mse = _ratio(acc.sq, acc.weight)
        return {"metrics": {
            "example_count": acc.count,
            "weighted_example_count": acc.weight,
            "mse": mse,
            "rmse": math.sqrt(mse) if mse is not None else None,
            "mae": _ratio(acc.abs, acc.weight),
            "mean_label": _ratio(acc.label, acc.weight),
            "mean_prediction": _ratio(acc.pred, acc.weight),
        }, "plots": {}}


# ----------------------------------------------------------------------------- bootstrap

# P(K <= k) of K ~ Poisson(1), k = 0..19 (the rest of the mass, < 1e-19, is k = 20)
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(20)])
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective 64-bit hash (uint64 arrays, wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def poisson_counts(piece_index: int, rows: np.ndarray, seed: int, replicates: int) -> np.ndarray:
    """How often each row is drawn in each bootstrap replicate: (replicates, n) Poisson(1) counts.

    A row is named by ``(piece_index, row)`` (the engine's position of the row, see
    ``add_batch_at`` in :mod:`jfx.components._engine`); its count in replicate r is a hash
    of that name, ``seed`` and r mapped through Poisson(1)'s inverse CDF. So a row gets the
    same counts whichever worker, engine or batch reads it: the replicates, and the
    intervals, are the same on every run over the same data (TFMA's Poisson bootstrap
    draws from a worker-local generator instead, which is seeded but not reproducible on
    more than one worker).
    """
    rows = np.asarray(rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        name = _mix64((np.uint64(piece_index) << np.uint64(40)) ^ rows)
        base = _mix64(name ^ _mix64(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)))
        out = np.empty((replicates, len(rows)), dtype=np.int64)
        for r in range(replicates):
            h = _mix64(base + _GOLDEN * np.uint64(r + 1))
            uniform = (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
            out[r] = np.searchsorted(_POISSON_CDF, uniform, side="right")
    return out


@functools.lru_cache(maxsize=64)
def t_quantile(confidence_level: float, dof: int) -> float:
    """The t with P(|T| < t) = ``confidence_level`` for Student's t with ``dof`` (integer)
    degrees of freedom (the closed form of its CDF for integer dof, inverted by bisection)."""

    def central(t: float) -> float:  # P(|T| < t), Abramowitz & Stegun 26.7.3-4
        theta = math.atan(t / math.sqrt(dof))
        c2, s = math.cos(theta) ** 2, math.sin(theta)
        if dof % 2:
            term, total = math.cos(theta), 0.0
            for k in range(1, (dof - 1) // 2 + 1):
                total += term
                term *= c2 * (2 * k) / (2 * k + 1)
            return (2 / math.pi) * (theta + s * total) if dof > 1 else 2 * theta / math.pi
        term, total = 1.0, 0.0
        for k in range(1, dof // 2 + 1):
            total += term
            term *= c2 * (2 * k - 1) / (2 * k)
        return s * total

    lo, hi = 0.0, 1.0
    while central(hi) < confidence_level:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if central(mid) < confidence_level else (lo, mid)
    return (lo + hi) / 2


def scalar_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float | None]:
    """Every numeric metric by its threshold name (nested dicts joined with ``/``, e.g.
    ``per_class/Adelie/recall``); booleans are not metrics."""
    out: dict[str, float | None] = {}
    for k, v in metrics.items():
        if isinstance(v, Mapping):
            out.update(scalar_metrics(v, f"{prefix}{k}/"))
        elif v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))):
            out[prefix + k] = None if v is None else _num(v)
    return out


def confidence_interval(value: float | None, samples: Sequence[float | None], confidence_level: float,
                        num_samples: int) -> dict[str, float] | None:
    """TFMA's interval: ``value`` ± t · (the standard deviation of the replicates' values),
    t of Student's t with (replicates − 1) degrees of freedom. ``None`` when the value, or
    any replicate's value, is undefined (e.g. AUC of a replicate that drew one class)."""
    xs = [s for s in samples if s is not None]
    if value is None or len(xs) < num_samples or len(xs) < 2:
        return None
    se = float(np.std(np.asarray(xs, dtype=np.float64), ddof=1))
    half = t_quantile(confidence_level, len(xs) - 1) * se
    return {"lower": value - half, "upper": value + half, "std_error": se}
