"""Evaluator: a model's metrics over the eval data, overall and per slice, and a blessing.

One pass over the eval split(s) runs the candidate model (and the baseline, when given)
on each RecordBatch, maps the labels to class ids, slices the rows and folds them into
the metric kernels of :mod:`jfx.components._eval_metrics`. The whole pass is one engine
kernel (:class:`EvalKernel`), so it runs in-process or on Beam like StatisticsGen.

``eval_config`` (every key optional except ``label_key``)::

    {
      "label_key": "species",                 # the label column
      "prediction_key": "probabilities",      # model output (default: probabilities, else predictions)
      "model_type": "auto",                   # or "classification" / "regression"
      "label_vocabulary": ["Adelie", ...],    # default: the model's metadata["label_vocabulary"]
      "example_weight_key": null,             # a weight column
      "splits": ["eval"],                     # evaluated together, as one data set
      "slicing_specs": [[], ["island"], ["island", "sex"],    # [] = overall (always computed)
                        [{"column": "bill_length_mm", "quantiles": 4}],          # numeric buckets
                        [{"column": "body_mass_g", "boundaries": [3500, 4500]}, "sex"]],
      "thresholds": {"accuracy": {"lower_bound": 0.9, "upper_bound": 1.0, "on": "value",
                                  "change": {"higher_is_better": true, "absolute": 0.0, "relative": 0.0}}},
      "confidence_intervals": {"num_bootstrap_samples": 20, "confidence_level": 0.95, "seed": 0},
      "fairness": {"thresholds": [0.25, 0.5, 0.75]},
      "custom_metrics": ["my_pkg.metrics:make_metric", "/path/metrics.py:make_metric"],
      "batch_size": 16384, "calibration_buckets": 10, "curve_points": 101,
      "exact_max_scores": 262144
    }

A slicing spec lists columns; a column given as ``{"column", "quantiles": k}`` or
``{"column", "boundaries": [b1, ...]}`` is sliced by numeric bucket (``[39.2, 44.5)``,
the first ``(-inf, b1)``, the last ``[bk, inf)``; a missing value is its own slice)
instead of by value. Quantile boundaries come from a first pass over the eval data:
NumPy's default (linear) quantiles of the column, exact up to ``exact_max_scores``
distinct values (then on the fixed nested grids of :mod:`jfx.components._eval_metrics`),
so they are the same on every engine; equal boundaries merge into one. A dict on its
own is a one-column spec.

``confidence_intervals`` adds, per slice and model, an interval for every metric from a
Poisson bootstrap (``num_bootstrap_samples`` replicates, each row drawn Poisson(1)
times; see :func:`jfx.components._eval_metrics.poisson_counts` for why it is the same on
every engine): ``value ± t · std_error``, as TFMA. A threshold's ``"on"`` is ``"value"``
(default), ``"interval"`` (``lower_bound`` checks the interval's lower end,
``upper_bound`` its upper end: the whole interval must lie within the bounds),
``"ci_lower"`` or ``"ci_upper"`` (both bounds check that end).

``fairness`` adds TFMA's fairness-indicator rates at each decision threshold per slice
(see :class:`~jfx.components._eval_metrics.ClassificationMetrics`) and, under
``fairness_gap``, each rate minus its overall value.

See docs/artifacts.md ("ModelEvaluation and ModelBlessing") for the outputs.

Example:
    >>> evaluator = Evaluator(examples=gen.outputs["examples"], model=trainer.outputs["model"],  # doctest: +SKIP
    ...                       baseline_model=LatestBlessedModel(candidate=model).outputs["baseline"],
    ...                       eval_config={"label_key": "species", "slicing_specs": [[], ["island"]],
    ...                                    "thresholds": {"accuracy": {"lower_bound": 0.9}}})
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import importlib.util
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jfx.components._beam import resolve_beam_args
from jfx.components._engine import ENGINE_BEAM, ENGINE_IN_PROCESS, run_kernel
from jfx.components._eval_metrics import (
    EXACT_MAX_SCORES,
    ClassificationMetrics,
    MetricInputs,
    RegressionMetrics,
    ScoreTable,
    confidence_interval,
    poisson_counts,
    scalar_metrics,
)
from jfx import _storage as storage
from jfx.components._examples import split_files, split_names
from jfx.components._thresholds import Threshold, check_thresholds
from jfx.errors import DataValidationError, InvalidArgumentError, unknown_keys_message
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._layouts import BLESSING_FILE, METRICS_FILE
from jfx.pipelines._artifacts import Examples, Model, ModelBlessing, ModelEvaluation

__all__ = [
    "BLESSING_FILE",
    "Bucketing",
    "ConfidenceIntervals",
    "METRICS_FILE",
    "PLOTS_FILE",
    "EvalConfig",
    "EvalKernel",
    "Evaluator",
    "ModelSpec",
    "QuantileKernel",
    "Threshold",
    "check_thresholds",
    "load_custom_metric",
    "load_model",
    "model_features",
]

PLOTS_FILE = "plots.json"
CLASSIFICATION = "classification"
REGRESSION = "regression"
_CONFIG_KEYS = ("label_key", "prediction_key", "model_type", "label_vocabulary", "example_weight_key", "splits",
                "slicing_specs", "thresholds", "custom_metrics", "batch_size", "calibration_buckets",
                "curve_points", "exact_max_scores", "confidence_intervals", "fairness")
_CI_KEYS = ("method", "num_bootstrap_samples", "confidence_level", "seed")
_BUCKET_KEYS = ("column", "quantiles", "boundaries")
_CUSTOM_METRICS_HELP = (
    "a custom metric is 'module.path:factory' or '/path/to/file.py:factory', where factory() returns an "
    "object with create(), add(acc, inputs), merge(accs) and finish(acc) (see jfx.components._eval_metrics)"
)


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Bucketing:
    """A numeric slicing column: by quantile buckets (``quantiles``, resolved into
    ``boundaries`` by a first pass) or by explicit ``boundaries``."""

    column: str
    quantiles: int | None = None
    boundaries: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, spec: Mapping[str, Any], where: str) -> Bucketing:
        unknown = sorted(set(spec) - set(_BUCKET_KEYS))
        if unknown:
            raise InvalidArgumentError(unknown_keys_message(where, unknown, _BUCKET_KEYS))
        column = spec.get("column")
        if not isinstance(column, str) or not column:
            raise InvalidArgumentError(f"{where} needs 'column', the numeric column to bucket; got {dict(spec)!r}")
        quantiles, boundaries = spec.get("quantiles"), spec.get("boundaries")
        if (quantiles is None) == (boundaries is None):
            raise InvalidArgumentError(f"{where} needs exactly one of 'quantiles' (a number of buckets) or "
                                       f"'boundaries' (a sorted list of numbers); got {dict(spec)!r}")
        if quantiles is not None:
            if isinstance(quantiles, bool) or not isinstance(quantiles, int) or quantiles < 2:
                raise InvalidArgumentError(f"{where}['quantiles'] must be an integer >= 2, got {quantiles!r}")
            return cls(column, quantiles=quantiles)
        if (not isinstance(boundaries, list) or not boundaries
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                           for b in boundaries)
                or any(a >= b for a, b in itertools.pairwise(boundaries))):
            raise InvalidArgumentError(f"{where}['boundaries'] must be a non-empty, strictly increasing list of "
                                       f"finite numbers, got {boundaries!r}")
        return cls(column, boundaries=tuple(float(b) for b in boundaries))

    def labels(self) -> list[str]:
        """The bucket names, lowest first: ``(-inf, b1)``, ``[b1, b2)``, ..., ``[bk, inf)``."""
        edges = list(self.boundaries or ())
        if not edges:
            return ["(-inf, inf)"]
        lows = ["(-inf"] + [f"[{b:.6g}" for b in edges]
        highs = [f"{b:.6g})" for b in edges] + ["inf)"]
        return [f"{lo}, {hi}" for lo, hi in zip(lows, highs, strict=True)]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column, "boundaries": list(self.boundaries or ())}
        if self.quantiles is not None:
            out["quantiles"] = self.quantiles
        return out


SliceColumn = str | Bucketing


def column_name(column: SliceColumn) -> str:
    return column.column if isinstance(column, Bucketing) else column


@dataclass(frozen=True)
class ConfidenceIntervals:
    """``eval_config["confidence_intervals"]``: a Poisson bootstrap (TFMA's POISSON_BOOTSTRAP)."""

    num_bootstrap_samples: int = 20
    confidence_level: float = 0.95
    seed: int = 0
    method: str = "poisson_bootstrap"

    @classmethod
    def parse(cls, spec: Any) -> ConfidenceIntervals | None:
        where = "eval_config['confidence_intervals']"
        if spec is None or spec is False:
            return None
        if spec is True:
            return cls()
        if not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"{where} must be true or a dict like {{'num_bootstrap_samples': 20, "
                                       f"'confidence_level': 0.95, 'seed': 0}}, got {spec!r}")
        unknown = sorted(set(spec) - set(_CI_KEYS))
        if unknown:
            raise InvalidArgumentError(unknown_keys_message(where, unknown, _CI_KEYS))
        method = spec.get("method", "poisson_bootstrap")
        if method != "poisson_bootstrap":
            raise InvalidArgumentError(f"{where}['method'] is {method!r}; the method is 'poisson_bootstrap'")
        n = spec.get("num_bootstrap_samples", 20)
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise InvalidArgumentError(f"{where}['num_bootstrap_samples'] must be an integer >= 2, got {n!r}")
        level = spec.get("confidence_level", 0.95)
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise InvalidArgumentError(f"{where}['confidence_level'] must be a number in (0, 1), got {level!r}")
        seed = spec.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError(f"{where}['seed'] must be an integer, got {seed!r}")
        return cls(n, float(level), seed)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "num_bootstrap_samples": self.num_bootstrap_samples,
                "confidence_level": self.confidence_level, "seed": self.seed}


def _parse_fairness(spec: Any) -> tuple[float, ...]:
    where = "eval_config['fairness']"
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(f"{where} must be a dict like {{'thresholds': [0.25, 0.5, 0.75]}}, got {spec!r}")
    unknown = sorted(set(spec) - {"thresholds"})
    if unknown:
        raise InvalidArgumentError(unknown_keys_message(where, unknown, ("thresholds",)))
    thresholds = spec.get("thresholds", [0.5])
    if (not isinstance(thresholds, list) or not thresholds
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in thresholds)):
        raise InvalidArgumentError(f"{where}['thresholds'] must be a non-empty list of decision thresholds in "
                                   f"[0, 1], got {thresholds!r}")
    return tuple(sorted({float(t) for t in thresholds}))


def _parse_slicing(specs: Any) -> tuple[tuple[SliceColumn, ...], ...]:
    where = "eval_config['slicing_specs']"
    help_ = ("a list of slicing specs, each a list of columns, a column being a name or a numeric bucketing "
             "like {'column': 'x', 'quantiles': 4} or {'column': 'x', 'boundaries': [0, 10]}, e.g. "
             "[[], ['island'], [{'column': 'bill_length_mm', 'quantiles': 4}]]")
    if specs is None:
        return ((),)
    if not isinstance(specs, list):
        raise InvalidArgumentError(f"{where} must be {help_}; got {specs!r}")
    out: list[tuple[SliceColumn, ...]] = [()]
    for i, spec in enumerate(specs):
        if isinstance(spec, Mapping):
            spec = [spec]
        if not isinstance(spec, list):
            raise InvalidArgumentError(f"{where}[{i}] is {spec!r}; {where} must be {help_}")
        columns: list[SliceColumn] = []
        for j, column in enumerate(spec):
            if isinstance(column, str) and column:
                columns.append(column)
            elif isinstance(column, Mapping):
                columns.append(Bucketing.parse(column, f"{where}[{i}][{j}]"))
            else:
                raise InvalidArgumentError(f"{where}[{i}][{j}] is {column!r}; {where} must be {help_}")
        names = [column_name(c) for c in columns]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"{where}[{i}] names a column twice: {names}")
        if columns:
            out.append(tuple(columns))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class EvalConfig:
    """The parsed ``eval_config`` (see the module docstring)."""

    label_key: str
    prediction_key: str | None = None
    model_type: str = "auto"
    label_vocabulary: tuple | None = None
    example_weight_key: str | None = None
    splits: tuple[str, ...] = ("eval",)
    slicing_specs: tuple[tuple[SliceColumn, ...], ...] = ((),)
    thresholds: tuple[Threshold, ...] = ()
    custom_metrics: tuple[str, ...] = ()
    batch_size: int = 16_384
    calibration_buckets: int = 10
    curve_points: int = 101
    exact_max_scores: int = EXACT_MAX_SCORES
    confidence_intervals: ConfidenceIntervals | None = None
    fairness_thresholds: tuple[float, ...] = ()

    @classmethod
    def parse(cls, config: Mapping[str, Any] | None) -> EvalConfig:
        """Validate a user's ``eval_config`` dict.

        Raises:
            InvalidArgumentError: an unknown key, a wrong type, or no ``label_key``.
        """
        config = dict(config or {})
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise InvalidArgumentError(unknown_keys_message("eval_config", unknown, _CONFIG_KEYS))
        label = config.get("label_key")
        if not isinstance(label, str) or not label:
            raise InvalidArgumentError(
                "eval_config needs 'label_key', the label column, e.g. Evaluator(..., eval_config="
                "{'label_key': 'species'})")
        model_type = config.get("model_type") or "auto"
        if model_type not in ("auto", CLASSIFICATION, REGRESSION):
            raise InvalidArgumentError(f"eval_config['model_type'] is {model_type!r}; expected auto, "
                                       "classification or regression")
        splits = config.get("splits") or ["eval"]
        slicing = _parse_slicing(config.get("slicing_specs"))
        intervals = ConfidenceIntervals.parse(config.get("confidence_intervals"))
        fairness = _parse_fairness(config.get("fairness"))
        thresholds = config.get("thresholds") or {}
        if not isinstance(thresholds, Mapping):
            raise InvalidArgumentError(f"eval_config['thresholds'] must be a dict metric -> bounds, got {thresholds!r}")
        custom = config.get("custom_metrics") or []
        if not isinstance(custom, list) or not all(isinstance(c, str) and ":" in c for c in custom):
            raise InvalidArgumentError(f"eval_config['custom_metrics'] is {custom!r}; {_CUSTOM_METRICS_HELP}")
        vocab = config.get("label_vocabulary")
        ints = {}
        for key, default in (("batch_size", 16_384), ("calibration_buckets", 10), ("curve_points", 101),
                             ("exact_max_scores", EXACT_MAX_SCORES)):
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise InvalidArgumentError(f"eval_config[{key!r}] must be an integer >= 2, got {value!r}")
            ints[key] = value
        parsed = tuple(Threshold.parse(str(m), s) for m, s in thresholds.items())
        for t in parsed:
            if t.on != "value" and intervals is None:
                raise InvalidArgumentError(
                    f"eval_config['thresholds'][{t.metric!r}] checks the confidence interval (on={t.on!r}), but "
                    "eval_config has no 'confidence_intervals'; add e.g. {'num_bootstrap_samples': 20}")
        return cls(
            label_key=label, prediction_key=config.get("prediction_key"), model_type=model_type,
            label_vocabulary=tuple(vocab) if vocab is not None else None,
            example_weight_key=config.get("example_weight_key"), splits=tuple(str(s) for s in splits),
            slicing_specs=slicing, thresholds=parsed, custom_metrics=tuple(custom), **ints,
            confidence_intervals=intervals, fairness_thresholds=fairness,
        )

    @property
    def slicing_columns(self) -> list[str]:
        """Every column the slicing specs read."""
        return list(dict.fromkeys(column_name(c) for spec in self.slicing_specs for c in spec))

    @property
    def quantile_columns(self) -> list[str]:
        """The columns bucketed by quantiles, whose boundaries a first pass computes."""
        return list(dict.fromkeys(c.column for spec in self.slicing_specs for c in spec
                                  if isinstance(c, Bucketing) and c.quantiles is not None))

    def with_boundaries(self, boundaries: Mapping[str, tuple[float, ...]]) -> EvalConfig:
        """The config with quantile bucketings resolved to ``boundaries`` (column → edges)."""
        specs = tuple(tuple(replace(c, boundaries=tuple(boundaries[c.column]))
                            if isinstance(c, Bucketing) and c.quantiles is not None else c for c in spec)
                      for spec in self.slicing_specs)
        return replace(self, slicing_specs=specs)


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate, with everything resolved from its signature."""

    path: str  # where the model is recorded: a folder, or an object-store URI read through a local copy
    prediction_key: str
    model_type: str
    num_classes: int = 0
    vocabulary: tuple | None = None
    fingerprint: str = ""  # keys the local copy of a model on a store (on the driver and on each Beam worker)

    @property
    def class_names(self) -> list[str]:
        if self.vocabulary is not None:
            return [str(v) for v in self.vocabulary]
        return [str(i) for i in range(self.num_classes)]


# ----------------------------------------------------------------------------- models and features

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()
_MODELS_MAX = 8


def load_model(path: str | Path, fingerprint: str = "") -> Any:
    """``jfx.core.load(path)``, cached per process (model artifacts never change).

    ``path`` may be an object-store URI: the model is loaded from a local copy (see
    :func:`jfx._storage.localize`), made once per machine, so Beam workers that share no
    filesystem with the driver each read it from the store.
    """
    key = str(storage.localize(str(path), fingerprint).resolve())
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from jfx.core import load

            model = load(key)
            if len(_MODELS) >= _MODELS_MAX:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[key] = model
        return model


def _column_array(column: pa.Array | pa.ChunkedArray, string: bool) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    t = column.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        rows = column.to_pylist()
        return np.asarray([[np.nan if v is None else v for v in (r or [])] for r in rows],
                          dtype=object if string else np.float64)
    if string:
        return column.to_numpy(zero_copy_only=False)
    if column.null_count or pa.types.is_boolean(t):
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return column.to_numpy(zero_copy_only=False)
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return column.to_numpy(zero_copy_only=False)


def model_features(model: Any, batch: pa.RecordBatch, where: str = "the examples") -> dict[str, np.ndarray]:
    """The model's input columns of ``batch`` as arrays (nulls as NaN / None).

    Raises:
        DataValidationError: a column the model reads is not in the batch (named).
    """
    names = batch.schema.names
    missing = [n for n in model.inputs if n not in names]
    if missing:
        raise DataValidationError(
            f"the model reads column(s) {missing}, which {where} do not have (columns: {names}); "
            "evaluate on the raw examples the model's signature expects")
    return {n: _column_array(batch.column(names.index(n)), spec.dtype == "string")
            for n, spec in model.inputs.items()}


def resolve_model(path: str, config: EvalConfig, role: str = "model", fingerprint: str = "") -> ModelSpec:
    """Decide prediction key, model type and classes of one model from its signature.

    Raises:
        InvalidArgumentError: the prediction output is not there, or its shape does not
            fit the model type.
    """
    model = load_model(path, fingerprint)
    outputs = model.outputs
    key = config.prediction_key
    if key is None:
        if config.model_type != REGRESSION and "probabilities" in outputs:
            key = "probabilities"
        elif config.model_type != CLASSIFICATION and "predictions" in outputs:
            key = "predictions"
        else:
            raise InvalidArgumentError(
                f"the {role} ({path}) has outputs {sorted(outputs)} but neither 'probabilities' nor 'predictions'; "
                "set eval_config['prediction_key'] to the output to evaluate")
    if key not in outputs:
        raise InvalidArgumentError(f"eval_config['prediction_key'] is {key!r}, but the {role} ({path}) has outputs "
                                   f"{sorted(outputs)}")
    shape = list(outputs[key]["shape"])
    vocab = config.label_vocabulary
    if vocab is None and model.metadata.get("label_vocabulary") is not None:
        vocab = tuple(model.metadata["label_vocabulary"])
    model_type = config.model_type
    if model_type == "auto":
        model_type = CLASSIFICATION if (key.startswith("probabilit") or vocab is not None
                                        or (len(shape) == 1 and shape[0] >= 2)) else REGRESSION
    if model_type == REGRESSION:
        if shape not in ([], [1]):
            raise InvalidArgumentError(f"output {key!r} of the {role} has shape {shape}; a regressor's prediction "
                                       "must be one value per row (shape [] or [1])")
        return ModelSpec(str(path), key, REGRESSION, fingerprint=fingerprint)
    if shape in ([], [1]):
        k = 2
    elif len(shape) == 1:
        k = shape[0]
    else:
        raise InvalidArgumentError(f"output {key!r} of the {role} has shape {shape}; expected class probabilities "
                                   "of shape [k] (or [] / [1] for a binary classifier)")
    if vocab is not None and len(vocab) != k:
        raise InvalidArgumentError(f"the label vocabulary has {len(vocab)} values {list(vocab)}, but output {key!r} "
                                   f"of the {role} has {k} classes")
    return ModelSpec(str(path), key, CLASSIFICATION, k, vocab, fingerprint=fingerprint)


# ----------------------------------------------------------------------------- custom metrics

_CUSTOM: dict[str, Any] = {}


def load_custom_metric(spec: str) -> Any:
    """The metric object of ``'module.path:factory'`` or ``'/path/file.py:factory'``.

    ``factory`` is called with no arguments (or used as is when it already has
    ``create``/``add``/``merge``/``finish``); the metric's name is its ``name``
    attribute, else the factory's name.

    Raises:
        InvalidArgumentError: the module, file or name cannot be found, or the object
            lacks the four functions.
    """
    if spec in _CUSTOM:
        return _CUSTOM[spec]
    where, _, attr = spec.rpartition(":")
    try:
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise InvalidArgumentError(f"custom metric {spec!r}: no such file {where}")
            name = "jfx_custom_metric_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise InvalidArgumentError(f"custom metric {spec!r}: {where} cannot be loaded as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as err:
        raise InvalidArgumentError(f"custom metric {spec!r}: cannot import {where} ({err}); {_CUSTOM_METRICS_HELP}") from err
    factory = getattr(module, attr, None)
    if factory is None:
        raise InvalidArgumentError(f"custom metric {spec!r}: {where} has no {attr!r}; {_CUSTOM_METRICS_HELP}")
    metric = factory if all(hasattr(factory, f) for f in ("create", "add", "merge", "finish")) else factory()
    if not all(callable(getattr(metric, f, None)) for f in ("create", "add", "merge", "finish")):
        raise InvalidArgumentError(f"custom metric {spec!r} gave {metric!r}; {_CUSTOM_METRICS_HELP}")
    if not getattr(metric, "name", None):
        metric.name = attr
    _CUSTOM[spec] = metric
    return metric


def _custom_fingerprint(params: dict[str, Any]) -> str:
    """The bytes of custom metric files: an edited metric file misses the cache."""
    config = params.get("eval_config") or {}
    digest = hashlib.sha256()
    for spec in config.get("custom_metrics") or []:
        where = str(spec).rpartition(":")[0]
        if where.endswith(".py") and Path(where).is_file():
            digest.update(Path(where).read_bytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the kernel

SliceKey = tuple  # ((column, value), ...); () is the overall slice


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def slice_name(key: SliceKey) -> str:
    """``"Overall"`` or ``"island=Biscoe, sex=male"``."""
    return ", ".join(f"{c}={v}" for c, v in key) if key else "Overall"


# The evaluation's accumulator: model name → slice → [built-in metrics' state, *custom metrics'
# states] and, with confidence intervals, one more item: that list for each bootstrap replicate.
EvalAcc = dict[str, dict[SliceKey, list[Any]]]


class EvalKernel:
    """The engine kernel of one evaluation: models × slices × metrics per RecordBatch.

    Picklable by value (paths and names only); models and custom metrics are loaded
    once per process when first needed. With confidence intervals each slice also folds
    every bootstrap replicate: the rows repeated as often as :func:`poisson_counts` draws
    them for the row's engine position (``add_batch_at``), so the replicates are the same
    whatever the engine, worker count or batch size.
    """

    def __init__(self, models: Mapping[str, ModelSpec], config: EvalConfig) -> None:
        self.models = dict(models)
        self.config = config

    @property
    def replicates(self) -> int:
        ci = self.config.confidence_intervals
        return ci.num_bootstrap_samples if ci is not None else 0

    # The metric kernels are rebuilt from the config (cheap) rather than pickled.
    def _builtin(self, spec: ModelSpec) -> Any:
        if spec.model_type == REGRESSION:
            return RegressionMetrics()
        return ClassificationMetrics(spec.num_classes, spec.class_names,
                                     calibration_buckets=self.config.calibration_buckets,
                                     curve_points=self.config.curve_points,
                                     exact_max_scores=self.config.exact_max_scores,
                                     fairness_thresholds=self.config.fairness_thresholds)

    def _custom(self) -> list[Any]:
        return [load_custom_metric(s) for s in self.config.custom_metrics]

    def create(self) -> EvalAcc:
        return {name: {} for name in self.models}

    def _slice_acc(self, builtin: Any, custom: list[Any]) -> list[Any]:
        state = [builtin.create(), *(m.create() for m in custom)]
        if self.replicates:
            state.append([[builtin.create(), *(m.create() for m in custom)] for _ in range(self.replicates)])
        return state

    def add_batch(self, acc: EvalAcc, batch: pa.RecordBatch) -> EvalAcc:
        """Fold one batch (without confidence intervals: the bootstrap needs row positions)."""
        if self.replicates:
            raise InvalidArgumentError("the bootstrap of eval_config['confidence_intervals'] needs each row's "
                                       "position: run the kernel with jfx.components._engine.run_kernel "
                                       "(add_batch_at)")
        return self.add_batch_at(acc, batch, 0, 0)

    def add_batch_at(self, acc: EvalAcc, batch: pa.RecordBatch, piece_index: int, first_row: int) -> EvalAcc:
        if batch.num_rows == 0:
            return acc
        config = self.config
        names = batch.schema.names
        needed = [config.label_key, *([config.example_weight_key] if config.example_weight_key else []),
                  *config.slicing_columns]
        for column in needed:
            if column not in names:
                raise DataValidationError(f"the eval examples have no column {column!r} (named in eval_config); "
                                          f"columns: {names}")
        weights = self._weights(batch)
        groups = [(key, rows) for spec in config.slicing_specs for key, rows in self._slices(batch, spec)]
        custom = self._custom()
        counts = None
        if self.replicates:
            ci = config.confidence_intervals
            assert ci is not None
            counts = poisson_counts(piece_index, first_row + np.arange(batch.num_rows), ci.seed, self.replicates)
        kept = len(custom) + 1
        for name, spec in self.models.items():
            model = load_model(spec.path, spec.fingerprint)
            outputs = model(model_features(model, batch, "the eval examples"))
            predictions = np.asarray(outputs[spec.prediction_key])
            labels = self._labels(batch, spec)
            if spec.model_type == CLASSIFICATION and (predictions.ndim == 1 or predictions.shape[1] == 1):
                p = predictions.reshape(-1)
                predictions = np.stack([1 - p, p], axis=1)
            builtin = self._builtin(spec)
            kernels = [builtin, *custom]
            slices = acc[name]
            everything = MetricInputs(labels, predictions, weights, outputs, batch)

            for key, rows in groups:
                state = slices.get(key)
                if state is None:
                    state = slices[key] = self._slice_acc(builtin, custom)
                inputs = _inputs(everything, rows)
                for i, kernel in enumerate(kernels):
                    state[i] = kernel.add(state[i], inputs)
                if counts is None:
                    continue
                at = np.arange(batch.num_rows) if rows is None else rows
                for r, replicate in enumerate(state[kept]):
                    drawn = np.repeat(at, counts[r][at])
                    if not len(drawn):
                        continue
                    sample = _inputs(everything, drawn, bool(custom))
                    for i, kernel in enumerate(kernels):
                        replicate[i] = kernel.add(replicate[i], sample)
        return acc

    def merge(self, accs: list[EvalAcc]) -> EvalAcc:
        out = self.create()
        custom = self._custom()
        for name, spec in self.models.items():
            builtin = self._builtin(spec)
            kernels = [builtin, *custom]
            keys = list(dict.fromkeys(k for a in accs for k in a.get(name, {})))
            for key in keys:
                parts = [a[name][key] for a in accs if key in a.get(name, {})]
                merged = [kernels[i].merge([p[i] for p in parts]) for i in range(len(kernels))]
                if self.replicates:
                    merged.append([[kernels[i].merge([p[-1][r][i] for p in parts]) for i in range(len(kernels))]
                                   for r in range(self.replicates)])
                out[name][key] = merged
        return out

    def _metrics(self, builtin: Any, custom: list[Any], state: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(metrics, plots) of one slice's (or replicate's) states."""
        done = builtin.finish(state[0])
        metrics = dict(done["metrics"])
        for metric, value in zip(custom, state[1:len(custom) + 1], strict=True):
            value = metric.finish(value)
            if isinstance(value, Mapping):
                metrics.update({f"{metric.name}/{k}": _metric_value(v) for k, v in value.items()})
            else:
                metrics[metric.name] = _metric_value(value)
        return metrics, done["plots"]

    def finish(self, acc: EvalAcc) -> dict[str, list[dict[str, Any]]]:
        """Model name → slices (overall first, then per spec, values sorted), each
        ``{"slice": {...}, "slice_name", "metrics", "plots"}`` and, with confidence
        intervals, ``"intervals"``: metric name (``/``-joined) → ``{"lower", "upper",
        "std_error"}`` or ``None``."""
        custom = self._custom()
        ci = self.config.confidence_intervals
        result = {}
        for name, spec in self.models.items():
            builtin = self._builtin(spec)
            slices = dict(acc.get(name, {}))
            slices.setdefault((), self._slice_acc(builtin, custom))
            keys = sorted(slices, key=self._order)
            done = {key: self._metrics(builtin, custom, slices[key]) for key in keys}
            samples = {key: [self._metrics(builtin, custom, rep)[0] for rep in slices[key][-1]]
                       for key in keys} if self.replicates else {}
            if self.config.fairness_thresholds:
                overall = done[()][0].get("fairness")
                for key in keys:
                    done[key][0]["fairness_gap"] = _gap(done[key][0].get("fairness"), overall)
                    for r, sample in enumerate(samples.get(key, [])):
                        sample["fairness_gap"] = _gap(sample.get("fairness"), samples[()][r].get("fairness"))
            out = []
            for key in keys:
                metrics, plots = done[key]
                entry = {"slice": {c: v for c, v in key}, "slice_name": slice_name(key), "metrics": metrics,
                         "plots": plots}
                if ci is not None:
                    flat = [scalar_metrics(m) for m in samples[key]]
                    entry["intervals"] = {
                        metric: confidence_interval(value, [f.get(metric) for f in flat], ci.confidence_level,
                                                    ci.num_bootstrap_samples)
                        for metric, value in scalar_metrics(metrics).items()}
                out.append(entry)
            result[name] = out
        return result

    def _order(self, key: SliceKey) -> tuple:
        columns = tuple(c for c, _ in key)
        names = [tuple(column_name(c) for c in spec) for spec in self.config.slicing_specs]
        spec_index = names.index(columns) if columns in names else 1 << 30
        spec = self.config.slicing_specs[spec_index] if spec_index < len(names) else ()
        order = []
        for i, (_, v) in enumerate(key):
            column = spec[i] if i < len(spec) else None
            if isinstance(column, Bucketing) and v in column.labels():
                order.append((False, "bucket", column.labels().index(v)))
            else:
                order.append((v is None, type(v).__name__, v))
        return (spec_index, order)

    def _weights(self, batch: pa.RecordBatch) -> np.ndarray:
        key = self.config.example_weight_key
        if key is None:
            return np.ones(batch.num_rows)
        column = batch.column(batch.schema.names.index(key))
        if column.null_count:
            raise DataValidationError(f"the weight column {key!r} has {column.null_count} missing value(s)")
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)

    def _labels(self, batch: pa.RecordBatch, spec: ModelSpec) -> np.ndarray:
        key = self.config.label_key
        column = batch.column(batch.schema.names.index(key))
        if column.null_count:
            raise DataValidationError(f"the label column {key!r} has {column.null_count} missing value(s); "
                                      "drop or fill those rows before evaluating")
        if spec.model_type == REGRESSION:
            try:
                return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            except pa.ArrowInvalid as err:
                raise DataValidationError(f"the label column {key!r} ({column.type}) is not numeric; a regressor "
                                          "needs numeric labels") from err
        if spec.vocabulary is not None:
            encoded = column.dictionary_encode() if not pa.types.is_dictionary(column.type) else column
            lookup = {v: i for i, v in enumerate(spec.vocabulary)}
            lookup.update({str(v): i for i, v in enumerate(spec.vocabulary) if isinstance(v, str)})
            ids = []
            for value in encoded.dictionary.to_pylist():
                if value not in lookup:
                    raise DataValidationError(
                        f"label {value!r} in column {key!r} is not in the label vocabulary {list(spec.vocabulary)}; "
                        "fix the data or give eval_config['label_vocabulary']")
                ids.append(lookup[value])
            return np.asarray(ids, dtype=np.int64)[encoded.indices.to_numpy(zero_copy_only=False)]
        t = column.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            raise DataValidationError(
                f"the label column {key!r} holds strings but the model has no label_vocabulary in its metadata; "
                "give eval_config['label_vocabulary'] (class id order)")
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        bad = (values != np.round(values)) | (values < 0) | (values >= spec.num_classes)
        if bad.any():
            raise DataValidationError(
                f"label {values[bad][0]!r} in column {key!r} is not a class id 0..{spec.num_classes - 1} of the "
                "model; give eval_config['label_vocabulary'] to map label values to class ids")
        return values.astype(np.int64)

    @staticmethod
    def _slices(batch: pa.RecordBatch, columns: tuple[SliceColumn, ...]):
        """(slice key, row indices or None for all rows) for one slicing spec."""
        if not columns:
            yield (), None
            return
        names = batch.schema.names
        codes = np.zeros(batch.num_rows, dtype=np.int64)
        dictionaries: list[list[Any]] = []
        for c in columns:
            values: list[Any]
            column = batch.column(names.index(column_name(c)))
            if isinstance(c, Bucketing):
                values, idx = _bucket_codes(column, c)
            else:
                encoded = column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
                values = encoded.dictionary.to_pylist()
                idx = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False).astype(np.int64)
            dictionaries.append([*values, None])
            codes = codes * (len(values) + 1) + idx
        uniq, inverse = np.unique(codes, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]
        for code, rows in zip(uniq, np.split(order, bounds), strict=True):
            parts = []
            for dictionary in reversed(dictionaries):
                code, i = divmod(int(code), len(dictionary))
                parts.append(dictionary[i])
            yield (tuple((column_name(c), _json_value(v)) for c, v in zip(columns, reversed(parts), strict=True)),
                   rows)


def _inputs(everything: MetricInputs, rows: np.ndarray | None, features: bool = True) -> MetricInputs:
    """The metric inputs of some rows of a batch (all of them for ``None``; rows may repeat)."""
    if rows is None:
        return everything
    assert everything.weights is not None
    return MetricInputs(everything.labels[rows], everything.predictions[rows], everything.weights[rows],
                        {k: np.asarray(v)[rows] for k, v in everything.outputs.items()},
                        everything.features.take(pa.array(rows)) if features else None)


def _numeric(column: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values.

    Raises:
        DataValidationError: the column is not numeric (named).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise DataValidationError(f"the slicing column {name!r} is {t}, not numeric: only numeric columns can be "
                                  "bucketed by 'quantiles' or 'boundaries' in eval_config['slicing_specs']")
    return pc.cast(column, pa.float64()).fill_null(math.nan).to_numpy(zero_copy_only=False)


def _bucket_codes(column: pa.Array | pa.ChunkedArray, bucketing: Bucketing) -> tuple[list[str], np.ndarray]:
    """(bucket labels, each row's bucket index; len(labels) for a missing value)."""
    values = _numeric(column, bucketing.column)
    labels = bucketing.labels()
    idx = np.searchsorted(np.asarray(bucketing.boundaries or (), dtype=np.float64), values, side="right")
    return labels, np.where(np.isnan(values), len(labels), idx).astype(np.int64)


def _gap(rates: Any, overall: Any) -> Any:
    """``rates`` minus ``overall``, leaf by leaf (``None`` where either is undefined)."""
    if isinstance(rates, Mapping):
        return {k: _gap(v, overall.get(k) if isinstance(overall, Mapping) else None) for k, v in rates.items()}
    if rates is None or overall is None:
        return None
    return float(rates) - float(overall)


class QuantileKernel:
    """The first pass of quantile bucketing: a :class:`ScoreTable` of each column's values
    (value → count; union on merge, so any partitioning gives the same table), and from it
    NumPy's default (linear) quantiles at 1/k, ..., (k−1)/k."""

    def __init__(self, quantiles: Mapping[str, int], max_values: int = EXACT_MAX_SCORES) -> None:
        self.quantiles = dict(quantiles)
        self.max_values = max_values

    @property
    def read_columns(self) -> list[str]:
        return list(self.quantiles)

    def create(self) -> dict[str, ScoreTable]:
        return {c: ScoreTable.empty() for c in self.quantiles}

    def add_batch(self, acc: dict[str, ScoreTable], batch: pa.RecordBatch) -> dict[str, ScoreTable]:
        names = batch.schema.names
        for c in self.quantiles:
            if c not in names:
                raise DataValidationError(f"the eval examples have no column {c!r} (bucketed in "
                                          f"eval_config['slicing_specs']); columns: {names}")
            values = _numeric(batch.column(names.index(c)), c)
            values = values[~np.isnan(values)]
            if len(values):
                ones = np.ones(len(values))
                acc[c] = ScoreTable.union([acc[c], ScoreTable.of(values, ones.astype(bool), ones)], self.max_values)
        return acc

    def merge(self, accs: list[dict[str, ScoreTable]]) -> dict[str, ScoreTable]:
        return {c: ScoreTable.union([a[c] for a in accs], self.max_values) for c in self.quantiles}

    def finish(self, acc: dict[str, ScoreTable]) -> dict[str, tuple[float, ...]]:
        return {c: quantile_boundaries(acc[c], k) for c, k in self.quantiles.items()}


def quantile_boundaries(table: ScoreTable, k: int) -> tuple[float, ...]:
    """The distinct values of ``np.quantile(values, [1/k, ..., (k-1)/k])`` (linear method)
    from a value → count table."""
    n = float(table.pos.sum())
    if n <= 0:
        return ()
    ends = np.cumsum(table.pos)  # the order statistics 0..ends[i]-1 hold value i

    def order_stat(j: int) -> float:
        return float(table.scores[np.searchsorted(ends, j, side="right")])

    out = []
    for q in range(1, k):
        h = (n - 1) * q / k
        lo = math.floor(h)
        a, b = order_stat(lo), order_stat(min(lo + 1, int(n) - 1))
        t = h - lo  # NumPy's lerp, exact at both ends
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return tuple(dict.fromkeys(out))


def _metric_value(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- the component

def _artifact_ref(artifact: Any) -> dict[str, Any] | None:
    if artifact is None:
        return None
    return {"id": artifact.id, "uri": str(artifact.uri)}


@component(external_fingerprint=_custom_fingerprint, streaming=True, checks={"eval_config": EvalConfig.parse})
def Evaluator(  # noqa: N802 - components are named like the TFX components they mirror
    examples: Input[Examples],
    model: Input[Model],
    evaluation: Output[ModelEvaluation],
    blessing: Output[ModelBlessing],
    baseline_model: Input[Model] | None = None,
    eval_config: Parameter[dict] | None = None,
    beam_pipeline_args: Parameter[list] | None = None,
):
    """Evaluate ``model`` (and ``baseline_model``) on the eval split(s); bless it or not.

    Args:
        examples: raw examples (Parquet per split) holding the model's input columns,
            the label and any slicing columns.
        model: the candidate model artifact (``jfx.core.export`` layout).
        evaluation: receives ``metrics.json`` and ``plots.json``; properties: headline
            overall metrics of the candidate, ``model_type``, ``splits``, ``engine``,
            ``num_slices``.
        blessing: receives ``blessing.json``; properties ``blessed``, ``reasons``,
            ``model_id``, ``model_uri``, ``baseline_model_id``.
        baseline_model: optional; evaluated on the same rows; change thresholds compare
            against it (without it they are skipped, and the reasons say so).
        eval_config: see the module docstring; ``label_key`` is required.
        beam_pipeline_args: run on Beam with these options (default: the pipeline's,
            else in-process).

    Raises:
        InvalidArgumentError: a bad ``eval_config``, or a threshold on an unknown metric.
        DataValidationError: a split, the label, weight, slicing or model input column
            is missing (named), or a label is not in the label vocabulary.
    """
    config = EvalConfig.parse(eval_config)
    names = split_names(examples)
    unknown = [s for s in config.splits if s not in names]
    if unknown:
        raise DataValidationError(f"eval_config['splits'] names {unknown}, but the examples have splits {names}")
    files = [str(p) for s in config.splits for p in split_files(examples, s)]
    columns = storage.open_parquet(files[0]).schema_arrow.names
    needed = {"label column (eval_config['label_key'])": [config.label_key],
              "weight column (eval_config['example_weight_key'])": [config.example_weight_key]
              if config.example_weight_key else [],
              "slicing column (eval_config['slicing_specs'])": config.slicing_columns}
    for what, cols in needed.items():
        missing = [c for c in cols if c not in columns]
        if missing:
            raise DataValidationError(f"the {what} {missing[0]!r} is not in the examples (splits {list(config.splits)}"
                                      f"; columns: {columns})")
    # the examples stream from where they are recorded; the models are read from local
    # copies, made where they are used (on Beam, by each worker from the recorded URI)
    models = {"candidate": resolve_model(model.stored_uri, config, "model", model.fingerprint)}
    if baseline_model is not None:
        models["baseline"] = resolve_model(baseline_model.stored_uri, config, "baseline model",
                                           baseline_model.fingerprint)
        cand, base = models["candidate"], models["baseline"]
        if (cand.model_type, cand.num_classes) != (base.model_type, base.num_classes):
            raise InvalidArgumentError(
                f"the baseline model is a {base.model_type} ({base.num_classes or '-'} classes) but the candidate "
                f"is a {cand.model_type} ({cand.num_classes or '-'} classes); they cannot be compared")
    for name, spec in models.items():
        inputs = load_model(spec.path, spec.fingerprint).inputs
        missing = [c for c in inputs if c not in columns]
        if missing:
            raise DataValidationError(f"the {name} model reads column {missing[0]!r}, which the examples do not have "
                                      f"(columns: {columns})")
    for metric_ref in config.custom_metrics:
        load_custom_metric(metric_ref)  # fail before the pass, with the message naming the spec
    read = None
    if not config.custom_metrics:  # custom metrics may read any column
        read = list(dict.fromkeys([c for s in models.values() for c in load_model(s.path, s.fingerprint).inputs]
                                  + [c for cols in needed.values() for c in cols]))
    if config.fairness_thresholds and any(m.model_type != CLASSIFICATION for m in models.values()):
        raise InvalidArgumentError("eval_config['fairness'] needs a classifier (rates at decision thresholds), "
                                   "but the model is a regressor")
    args = resolve_beam_args(beam_pipeline_args)
    if config.quantile_columns:  # a first pass: the quantile boundaries, the same on every engine
        quantiles = {c.column: c.quantiles for spec in config.slicing_specs for c in spec
                     if isinstance(c, Bucketing) and c.quantiles is not None}
        config = config.with_boundaries(run_kernel(QuantileKernel(quantiles, config.exact_max_scores), files,
                                                   beam_pipeline_args=args, batch_size=config.batch_size))
    kernel = EvalKernel(models, config)
    results = run_kernel(kernel, files, beam_pipeline_args=args, columns=read, batch_size=config.batch_size)

    cand = models["candidate"]
    overall = results["candidate"][0]["metrics"]
    base_overall = results["baseline"][0]["metrics"] if "baseline" in results else None
    slices = []
    plots = []
    for entry in results["candidate"]:
        base_entry = next((b for b in results.get("baseline", []) if b["slice"] == entry["slice"]), None)
        slices.append({"slice": entry["slice"], "slice_name": entry["slice_name"], "candidate": entry["metrics"],
                       "baseline": base_entry["metrics"] if base_entry else None})
        if config.confidence_intervals is not None:
            slices[-1]["intervals"] = {"candidate": entry["intervals"],
                                       "baseline": base_entry["intervals"] if base_entry else None}
        plots.append({"slice": entry["slice"], "slice_name": entry["slice_name"], "candidate": entry["plots"],
                      "baseline": base_entry["plots"] if base_entry else None})
    header = {
        "version": 1, "model_type": cand.model_type, "label_key": config.label_key,
        "prediction_key": cand.prediction_key, "classes": cand.class_names if cand.num_classes else None,
        "splits": list(config.splits),
        "slicing_specs": [[c.to_json() if isinstance(c, Bucketing) else c for c in s] for s in config.slicing_specs],
        "confidence_intervals": config.confidence_intervals.to_json() if config.confidence_intervals else None,
        "fairness_thresholds": list(config.fairness_thresholds) or None,
        "models": {"candidate": _artifact_ref(model), "baseline": _artifact_ref(baseline_model)},
    }
    Path(evaluation.uri, METRICS_FILE).write_text(json.dumps({**header, "slices": slices}, indent=1, allow_nan=False))
    Path(evaluation.uri, PLOTS_FILE).write_text(json.dumps({**header, "slices": plots}, allow_nan=False))
    for k, v in overall.items():
        if (isinstance(v, (int, float)) or v is None) and "/" not in k and k != "exact_curves":
            evaluation.properties[k] = v
    evaluation.properties.update({"model_type": cand.model_type, "splits": list(config.splits),
                                  "engine": ENGINE_IN_PROCESS if args is None else ENGINE_BEAM,
                                  "num_slices": len(slices)})

    checks = check_thresholds(config.thresholds, overall, base_overall, results["candidate"][0].get("intervals"))
    blessed = all(c["passed"] is not False for c in checks)
    reasons = [c["reason"] for c in checks] or ["no thresholds configured: blessed"]
    doc = {"blessed": blessed, "reasons": reasons, "checks": checks, "model": _artifact_ref(model),
           "baseline_model": _artifact_ref(baseline_model), "evaluation_metrics": METRICS_FILE}
    Path(blessing.uri, BLESSING_FILE).write_text(json.dumps(doc, indent=1, default=_metric_value))
    blessing.properties.update({"blessed": blessed, "reasons": reasons,
                                "model_id": model.id, "model_uri": str(model.uri),
                                "baseline_model_id": baseline_model.id if baseline_model is not None else None})
