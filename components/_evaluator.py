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
      "slicing_specs": [[], ["island"], ["island", "sex"]],   # [] = overall (always computed)
      "thresholds": {"accuracy": {"lower_bound": 0.9, "upper_bound": 1.0,
                                  "change": {"higher_is_better": true, "absolute": 0.0, "relative": 0.0}}},
      "custom_metrics": ["my_pkg.metrics:make_metric", "/path/metrics.py:make_metric"],
      "batch_size": 16384, "calibration_buckets": 10, "curve_points": 101,
      "exact_max_scores": 1000000
    }

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
import importlib.util
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
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
    "METRICS_FILE",
    "PLOTS_FILE",
    "EvalConfig",
    "EvalKernel",
    "Evaluator",
    "ModelSpec",
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
                "curve_points", "exact_max_scores")
_CUSTOM_METRICS_HELP = (
    "a custom metric is 'module.path:factory' or '/path/to/file.py:factory', where factory() returns an "
    "object with create(), add(acc, inputs), merge(accs) and finish(acc) (see jfx.components._eval_metrics)"
)


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class EvalConfig:
    """The parsed ``eval_config`` (see the module docstring)."""

    label_key: str
    prediction_key: str | None = None
    model_type: str = "auto"
    label_vocabulary: tuple | None = None
    example_weight_key: str | None = None
    splits: tuple[str, ...] = ("eval",)
    slicing_specs: tuple[tuple[str, ...], ...] = ((),)
    thresholds: tuple[Threshold, ...] = ()
    custom_metrics: tuple[str, ...] = ()
    batch_size: int = 16_384
    calibration_buckets: int = 10
    curve_points: int = 101
    exact_max_scores: int = EXACT_MAX_SCORES

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
        specs = config.get("slicing_specs")
        specs = [[]] if specs is None else specs
        if not isinstance(specs, list) or not all(isinstance(s, list) and all(isinstance(c, str) for c in s)
                                                  for s in specs):
            raise InvalidArgumentError(
                f"eval_config['slicing_specs'] must be a list of column lists, e.g. [[], ['island']]; got {specs!r}")
        slicing = [()] + [tuple(s) for s in specs if s]
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
        return cls(
            label_key=label, prediction_key=config.get("prediction_key"), model_type=model_type,
            label_vocabulary=tuple(vocab) if vocab is not None else None,
            example_weight_key=config.get("example_weight_key"), splits=tuple(str(s) for s in splits),
            slicing_specs=tuple(dict.fromkeys(slicing)),
            thresholds=tuple(Threshold.parse(str(m), s) for m, s in thresholds.items()),
            custom_metrics=tuple(custom), **ints,
        )


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


# The evaluation's accumulator: model name → slice → [built-in metrics' state, *custom metrics' states].
EvalAcc = dict[str, dict[SliceKey, list[Any]]]


class EvalKernel:
    """The engine kernel of one evaluation: models × slices × metrics per RecordBatch.

    Picklable by value (paths and names only); models and custom metrics are loaded
    once per process when first needed.
    """

    def __init__(self, models: Mapping[str, ModelSpec], config: EvalConfig) -> None:
        self.models = dict(models)
        self.config = config

    # The metric kernels are rebuilt from the config (cheap) rather than pickled.
    def _builtin(self, spec: ModelSpec) -> Any:
        if spec.model_type == REGRESSION:
            return RegressionMetrics()
        return ClassificationMetrics(spec.num_classes, spec.class_names,
                                     calibration_buckets=self.config.calibration_buckets,
                                     curve_points=self.config.curve_points,
                                     exact_max_scores=self.config.exact_max_scores)

    def _custom(self) -> list[Any]:
        return [load_custom_metric(s) for s in self.config.custom_metrics]

    def create(self) -> EvalAcc:
        return {name: {} for name in self.models}

    def _slice_acc(self, builtin: Any, custom: list[Any]) -> list[Any]:
        return [builtin.create(), *(m.create() for m in custom)]

    def add_batch(self, acc: EvalAcc, batch: pa.RecordBatch) -> EvalAcc:
        if batch.num_rows == 0:
            return acc
        config = self.config
        names = batch.schema.names
        needed = [config.label_key, *([config.example_weight_key] if config.example_weight_key else []),
                  *(c for spec in config.slicing_specs for c in spec)]
        for column in needed:
            if column not in names:
                raise DataValidationError(f"the eval examples have no column {column!r} (named in eval_config); "
                                          f"columns: {names}")
        weights = self._weights(batch)
        groups = [(key, rows) for spec in config.slicing_specs for key, rows in self._slices(batch, spec)]
        custom = self._custom()
        for name, spec in self.models.items():
            model = load_model(spec.path, spec.fingerprint)
            outputs = model(model_features(model, batch, "the eval examples"))
            predictions = np.asarray(outputs[spec.prediction_key])
            labels = self._labels(batch, spec)
            if spec.model_type == CLASSIFICATION and (predictions.ndim == 1 or predictions.shape[1] == 1):
                p = predictions.reshape(-1)
                predictions = np.stack([1 - p, p], axis=1)
            builtin = self._builtin(spec)
            slices = acc[name]
            for key, rows in groups:
                state = slices.get(key)
                if state is None:
                    state = slices[key] = self._slice_acc(builtin, custom)
                everything = rows is None
                inputs = MetricInputs(
                    labels if everything else labels[rows], predictions if everything else predictions[rows],
                    weights if everything else weights[rows],
                    outputs if everything else {k: v[rows] for k, v in outputs.items()},
                    batch if everything else batch.take(pa.array(rows)),
                )
                state[0] = builtin.add(state[0], inputs)
                for i, metric in enumerate(custom, start=1):
                    state[i] = metric.add(state[i], inputs)
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
                out[name][key] = [kernels[i].merge([p[i] for p in parts]) for i in range(len(kernels))]
        return out

    def finish(self, acc: EvalAcc) -> dict[str, list[dict[str, Any]]]:
        """Model name → slices (overall first, then per spec, values sorted), each
        ``{"slice": {...}, "slice_name", "metrics", "plots"}``."""
        custom = self._custom()
        result = {}
        for name, spec in self.models.items():
            builtin = self._builtin(spec)
            slices = dict(acc.get(name, {}))
            slices.setdefault((), self._slice_acc(builtin, custom))
            out = []
            for key in sorted(slices, key=self._order):
                state = slices[key]
                done = builtin.finish(state[0])
                metrics = dict(done["metrics"])
                for metric, value in zip(custom, state[1:], strict=True):
                    value = metric.finish(value)
                    if isinstance(value, Mapping):
                        metrics.update({f"{metric.name}/{k}": _metric_value(v) for k, v in value.items()})
                    else:
                        metrics[metric.name] = _metric_value(value)
                out.append({"slice": {c: v for c, v in key}, "slice_name": slice_name(key),
                            "metrics": metrics, "plots": done["plots"]})
            result[name] = out
        return result

    def _order(self, key: SliceKey) -> tuple:
        columns = tuple(c for c, _ in key)
        spec_index = self.config.slicing_specs.index(columns) if columns in self.config.slicing_specs else 1 << 30
        return (spec_index, [(v is None, type(v).__name__, v) for _, v in key])

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
    def _slices(batch: pa.RecordBatch, columns: tuple[str, ...]):
        """(slice key, row indices or None for all rows) for one slicing spec."""
        if not columns:
            yield (), None
            return
        names = batch.schema.names
        codes = np.zeros(batch.num_rows, dtype=np.int64)
        dictionaries = []
        for c in columns:
            column = batch.column(names.index(c))
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
            for values in reversed(dictionaries):
                code, i = divmod(int(code), len(values))
                parts.append(values[i])
            yield tuple((c, _json_value(v)) for c, v in zip(columns, reversed(parts), strict=True)), rows


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
              "slicing column (eval_config['slicing_specs'])": [c for s in config.slicing_specs for c in s]}
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
    args = resolve_beam_args(beam_pipeline_args)
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
        plots.append({"slice": entry["slice"], "slice_name": entry["slice_name"], "candidate": entry["plots"],
                      "baseline": base_entry["plots"] if base_entry else None})
    header = {
        "version": 1, "model_type": cand.model_type, "label_key": config.label_key,
        "prediction_key": cand.prediction_key, "classes": cand.class_names if cand.num_classes else None,
        "splits": list(config.splits), "slicing_specs": [list(s) for s in config.slicing_specs],
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

    checks = check_thresholds(config.thresholds, overall, base_overall)
    blessed = all(c["passed"] is not False for c in checks)
    reasons = [c["reason"] for c in checks] or ["no thresholds configured: blessed"]
    doc = {"blessed": blessed, "reasons": reasons, "checks": checks, "model": _artifact_ref(model),
           "baseline_model": _artifact_ref(baseline_model), "evaluation_metrics": METRICS_FILE}
    Path(blessing.uri, BLESSING_FILE).write_text(json.dumps(doc, indent=1, default=_metric_value))
    blessing.properties.update({"blessed": blessed, "reasons": reasons,
                                "model_id": model.id, "model_uri": str(model.uri),
                                "baseline_model_id": baseline_model.id if baseline_model is not None else None})
