"""Trainer: runs the user's ``run_fn`` on the examples, checks the exported model, tracks the run.

The user's module defines ``run_fn(ctx: TrainerContext)``. It builds datasets with
``ctx.train_dataset(...)`` / ``ctx.eval_dataset(...)``, builds and fits a model with
:mod:`jfx.core`, and exports it to ``ctx.model_dir`` (``ctx.export_model(model, data)``
composes the fitted transform in, so the exported model takes RAW features). It may
return the :class:`jfx.core.History` of ``fit`` (its per-epoch metrics are tracked), a
dict of final metrics, or nothing.

Every Trainer execution is one MLflow run (see :mod:`jfx.components._mlflow`): the
hyperparameters and train/eval args as params, per-epoch metrics, the model and the
run directory as artifacts, and ``jfx.*`` tags pointing at the jfx execution. The
Model and ModelRun artifacts point back with ``mlflow_run_id``, ``mlflow_tracking_uri``
and ``mlflow_experiment_id`` properties.

Example (``model.py``):

    from flax import nnx
    import optax
    from jfx.core import DNNClassifier, Numeric, fit

    def run_fn(ctx):
        train = ctx.train_dataset(batch_size=32, label="y")
        evals = ctx.eval_dataset(batch_size=64, label="y")
        model = DNNClassifier({"x": Numeric()}, hidden_units=(8,), n_classes=2, rngs=nnx.Rngs(0))
        history = fit(model, optax.adam(ctx.hyperparameters.get("learning_rate", 1e-2)),
                      "sparse_categorical_crossentropy", train, evals, epochs=ctx.train_args.num_epochs or 5)
        ctx.export_model(model, train)
        return history

and in the pipeline ``Trainer(examples=..., module_file="model.py", train_args={"num_epochs": 5})``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jfx.components._examples import ShardRef, localized, split_files, split_names
from jfx.components._mlflow import (
    RemoteRun,
    TrackedRun,
    default_artifact_location,
    default_tracking_uri,
    finite,
    start_run_in_subprocess,
)
from jfx.components._user_code import FunctionRef
from jfx.errors import ComponentError, DataValidationError, InvalidArgumentError
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._context import check_cancelled, current_context
from jfx.pipelines._artifacts import Examples, HyperParameters, Model, ModelRun, Schema, TransformGraph

__all__ = [
    "HISTORY_FILE",
    "HYPERPARAMETERS_FILE",
    "LOG_FILE",
    "DataContext",
    "EvalArgs",
    "FunctionRef",
    "TrainArgs",
    "Trainer",
    "TrainerContext",
    "read_hyperparameters",
    "serving_fn_for",
]

HYPERPARAMETERS_FILE = "hyperparameters.json"
HISTORY_FILE = "history.json"
LOG_FILE = "trainer.log"
_SIGNATURE_FILE = "signature.json"

_NO_EXPORT_HELP = """\
{ref} returned without exporting a model to ctx.model_dir ({path}: {problem}).
End run_fn by exporting the trained model there, e.g.

    ctx.export_model(model, train_data)          # composes ctx.transform in, when there is one

or, by hand, jfx.core.export_model(model, jfx.core.signature_from_dataset(train_data), ctx.model_dir)."""


# ----------------------------------------------------------------------- user code


def call_user_fn(ref: FunctionRef, fn: Callable[..., Any], *args: Any) -> Any:
    """Calls a user function; any exception becomes a ComponentError naming the function and file.

    Every :func:`jfx.core.fit` it runs checks for a cancelled run (Ctrl-C) after each step.
    """
    from jfx.core._train import between_steps

    try:
        with between_steps(check_cancelled):
            return fn(*args)
    except Exception as err:
        raise ComponentError(f"{ref.describe()} raised {type(err).__name__}: {err}") from err


# ------------------------------------------------------------------------ arguments


def _int_or_none(doc: Mapping[str, Any], key: str, where: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{where}[{key!r}] must be a positive int or None, got {value!r}")
    return value


def _splits(doc: Mapping[str, Any], default: tuple[str, ...], where: str) -> tuple[str, ...]:
    value = doc.get("splits", list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(s, str) for s in value):
        raise InvalidArgumentError(f"{where}['splits'] must be a non-empty list of split names, got {value!r}")
    return tuple(value)


def _check_keys(doc: Any, allowed: Sequence[str], where: str) -> Mapping[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise InvalidArgumentError(f"{where} must be a dict, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise InvalidArgumentError(f"{where} has unknown keys {unknown}; allowed: {list(allowed)}. "
                                   "Put anything else in custom_config")
    return doc


@dataclass(frozen=True)
class TrainArgs:
    """The Trainer's ``train_args``: which splits to train on and for how long.

    ``num_epochs`` / ``num_steps`` are what ``run_fn`` should pass to ``fit(epochs=...,
    steps=...)``; ``None`` leaves the choice to ``run_fn``.

    Example:
        >>> TrainArgs.from_dict({"num_epochs": 3})
        TrainArgs(splits=('train',), num_epochs=3, num_steps=None)
    """

    splits: tuple[str, ...] = ("train",)
    num_epochs: int | None = None
    num_steps: int | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None, where: str = "train_args") -> TrainArgs:
        doc = _check_keys(doc, ("splits", "num_epochs", "num_steps"), where)
        return cls(_splits(doc, ("train",), where), _int_or_none(doc, "num_epochs", where),
                   _int_or_none(doc, "num_steps", where))

    def to_json(self) -> dict[str, Any]:
        return {"splits": list(self.splits), "num_epochs": self.num_epochs, "num_steps": self.num_steps}


@dataclass(frozen=True)
class EvalArgs:
    """The Trainer's ``eval_args``: the splits to evaluate on, and an optional step cap.

    Example:
        >>> EvalArgs.from_dict(None)
        EvalArgs(splits=('eval',), num_steps=None)
    """

    splits: tuple[str, ...] = ("eval",)
    num_steps: int | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None, where: str = "eval_args") -> EvalArgs:
        doc = _check_keys(doc, ("splits", "num_steps"), where)
        return cls(_splits(doc, ("eval",), where), _int_or_none(doc, "num_steps", where))

    def to_json(self) -> dict[str, Any]:
        return {"splits": list(self.splits), "num_steps": self.num_steps}


def read_hyperparameters(artifact: HyperParameters | str | Path) -> dict[str, Any]:
    """The values in a HyperParameters artifact's ``hyperparameters.json``.

    Raises:
        DataValidationError: the file is missing or is not a JSON object.
    """
    uri: Any = getattr(artifact, "uri", artifact)  # an artifact, or its folder
    path = Path(uri) / HYPERPARAMETERS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataValidationError(f"{path}: cannot read the hyperparameters ({err.strerror or err})") from err
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise DataValidationError(f"{path}: expected a JSON object of name → value, got {type(doc).__name__}")
    return doc


def _files(examples: Examples, splits: Sequence[str], where: str) -> tuple[ShardRef, ...]:
    names = split_names(examples)
    unknown = [s for s in splits if s not in names]
    if unknown:
        raise DataValidationError(f"{where} names splits {unknown}, but the examples have splits {names}")
    return tuple(f for s in splits for f in split_files(examples, s))


def _schema_doc(schema: Schema | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    from jfx.components._schema import load_schema, schema_to_dict

    return schema_to_dict(load_schema(schema))


def _load_transform(transform_graph: TransformGraph | None) -> Any:
    if transform_graph is None:
        return None
    from jfx.components._transform_graph import load_transform

    return load_transform(transform_graph)


# ------------------------------------------------------------------------ export


def serving_fn_for(model: Any, head: str | None = None) -> tuple[Callable[[Any, dict], dict], Any]:
    """An NNX module as ``(serving_fn(params, features) -> outputs, params)`` for
    :func:`jfx.core.export` or ``export_with_transform``; the outputs are those of
    :func:`jfx.core.export_model` for the same ``head``."""
    from jfx.core._export import model_serving_fn

    return model_serving_fn(model, head)


# ----------------------------------------------------------------------- the context


@dataclass(frozen=True)
class DataContext:
    """The data a user function sees (the part shared by :class:`TrainerContext` and the
    Tuner's context).

    Attributes:
        examples: the Examples artifact (Transform's ``transformed_examples`` when the
            pipeline has a Transform).
        train_files, eval_files: the Parquet shards of the training and eval splits
            (paths; URIs such as ``s3://...`` when the pipeline root is on an object
            store, which ``train_dataset``/``eval_dataset`` stream from).
        transform: the fitted transform (``load_transform(transform_graph)``: ``.apply``,
            ``.serving_fn``, ``.constants``, ``.encoders``, ``.input_specs``,
            ``.output_specs``), or ``None`` without a ``transform_graph`` input.
        transform_graph: the TransformGraph artifact, or ``None``.
        schema: the schema document (``schema.json`` as a dict), or ``None``.
        custom_config: the ``custom_config`` parameter, else ``{}``.
    """

    examples: Examples
    train_files: tuple[ShardRef, ...]
    eval_files: tuple[ShardRef, ...]
    transform: Any
    transform_graph: TransformGraph | None
    schema: dict[str, Any] | None
    custom_config: dict[str, Any]

    def train_dataset(self, batch_size: int = 32, *, features: Sequence[str] | None = None,
                      label: str | None = None, shuffle_buffer: int | None = 10_000, seed: int = 0,
                      **kwargs: Any) -> Any:
        """A shuffled :class:`jfx.core.Dataset` over the training splits.

        Args:
            batch_size: rows per batch.
            features: feature columns (None: every column but the label).
            label: the label column.
            shuffle_buffer, seed: as in :class:`jfx.core.Dataset`.
            **kwargs: any other :meth:`jfx.core.Dataset.from_parquet` argument
                (``remainder``, ``weight``, ``encoders``, ``prefetch``).
        """
        from jfx.core import Dataset

        return Dataset.from_parquet(list(self.train_files), features, label, batch_size=batch_size,
                                    shuffle_buffer=shuffle_buffer, seed=seed, **kwargs)

    def eval_dataset(self, batch_size: int = 256, *, features: Sequence[str] | None = None,
                     label: str | None = None, shuffle_buffer: int | None = 0, remainder: str = "pad",
                     **kwargs: Any) -> Any:
        """A :class:`jfx.core.Dataset` over the eval splits: in order, the last batch
        padded with zero-weight rows so every row counts once."""
        from jfx.core import Dataset

        return Dataset.from_parquet(list(self.eval_files), features, label, batch_size=batch_size,
                                    shuffle_buffer=shuffle_buffer, remainder=remainder, **kwargs)


@dataclass(frozen=True)
class TrainerContext(DataContext):
    """What ``run_fn(ctx)`` gets from the Trainer: the data of :class:`DataContext`, and

    Attributes:
        hyperparameters: the HyperParameters artifact's values, else ``{}``.
        train_args, eval_args: :class:`TrainArgs`, :class:`EvalArgs`.
        model_dir: export the trained model here (the Model artifact's directory).
        run_dir: the ModelRun artifact's directory, for logs and curves of your own.
        logger: a logger writing to ``run_dir/trainer.log`` (and to the usual handlers).
        run_fn: which function runs, e.g. ``"run_fn in /path/model.py"``.
        pipeline_name, run_id, node_id, execution_id: the jfx execution (``None``
            when the Trainer function is called outside a pipeline).
        mlflow_run_id, mlflow_experiment_id, mlflow_tracking_uri: the MLflow run (the
            Trainer starts it while ``run_fn`` begins; reading an id waits until it exists;
            None in the processes of a training with ``workers``).
        process_id, num_processes: this process's place when the Trainer runs ``run_fn``
            in ``workers`` processes (0 and 1 otherwise). Every process runs ``run_fn``;
            ``fit`` trains them together; :meth:`export_model` and
            :meth:`log_metrics`/:meth:`log_params` act in process 0 only.
    """

    hyperparameters: dict[str, Any]
    train_args: TrainArgs
    eval_args: EvalArgs
    model_dir: Path
    run_dir: Path
    logger: logging.Logger
    run_fn: str
    pipeline_name: str | None = None
    run_id: str | None = None
    node_id: str | None = None
    execution_id: int | None = None
    process_id: int = 0
    num_processes: int = 1
    _tracker: TrackedRun | RemoteRun | _ChiefLog | None = field(default=None, repr=False, compare=False)
    _exported: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def mlflow_run_id(self) -> str | None:
        return getattr(self._tracker, "run_id", None)

    @property
    def mlflow_experiment_id(self) -> str | None:
        return getattr(self._tracker, "experiment_id", None)

    @property
    def mlflow_tracking_uri(self) -> str | None:
        return getattr(self._tracker, "tracking_uri", None)

    @property
    def is_chief(self) -> bool:
        """Whether this is process 0 (always, without ``workers``)."""
        return self.process_id == 0

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Logs metric values to the MLflow run at ``step`` (e.g. the epoch)."""
        if self._tracker is not None:
            self._tracker.log_metrics(metrics, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logs parameters to the MLflow run (nested dicts become dotted keys)."""
        if self._tracker is not None:
            self._tracker.log_params(params)

    def export_model(self, model: Any, data: Any, *, head: str | None = None,
                     platforms: Sequence[str] | None = None, metadata: dict[str, Any] | None = None) -> Path:
        """Exports a trained NNX module to :attr:`model_dir`.

        With a transform, the exported artifact is the transform composed with the model
        (``export_with_transform``): it takes the RAW columns the model's features are
        computed from. Without one it takes the features of ``data`` as they are.

        Args:
            model: the trained ``nnx.Module``.
            data: the training :class:`jfx.core.Dataset` (its features are the model's inputs).
            head: ``"classifier"``, ``"regressor"`` or ``"logits"`` (default from the model).
            platforms: lowering platforms (default: cpu plus the current backend).
            metadata: kept with the model (``LoadedModel.metadata``). When the label is a
                transform output computed from one vocabulary-encoded column (e.g.
                ``compute_and_apply_vocabulary(inputs["species"])``), its vocabulary is
                added as ``label_vocabulary``, which the Evaluator uses to map raw labels
                to class ids.

        Returns:
            :attr:`model_dir`.

        With ``workers``, only process 0 exports (every process holds the same trained
        weights); in the others this returns :attr:`model_dir` and writes nothing.
        """
        if not self.is_chief:
            return self.model_dir
        from jfx.core import export_model, signature_from_dataset

        metadata = {**self._label_metadata(data), **(metadata or {})}
        if self.transform is None:
            path = export_model(model, signature_from_dataset(data), self.model_dir, head=head,
                                platforms=platforms, metadata=metadata)
        else:
            from jfx.components._transform_graph import export_with_transform

            serving_fn, params = serving_fn_for(model, head)
            features = [c.name for c in data.layout.columns]
            path = export_with_transform(self.transform, serving_fn, params, self.model_dir, features=features,
                                         platforms=platforms, metadata=metadata)
        self._exported["with_transform"] = self.transform is not None
        return path

    def _label_metadata(self, data: Any) -> dict[str, Any]:
        """``{"label_vocabulary": [...]}`` when the label is one vocabulary-encoded raw column."""
        label = getattr(data.layout, "label", None)
        if self.transform is None or label is None:
            return {}
        sources = self.transform.output_inputs.get(label) or []
        encoder = self.transform.encoders.get(sources[0]) if len(sources) == 1 else None
        if encoder and "vocabulary" in encoder:
            return {"label_key": sources[0], "label_vocabulary": list(encoder["vocabulary"])}
        return {}


# ------------------------------------------------------------------------ workers


class _ChiefLog:
    """What ``ctx.log_metrics``/``ctx.log_params`` do in process 0 of ``workers``: lines
    of a JSON file that the Trainer replays into its MLflow run."""

    def __init__(self, path: Path):
        self.path = path

    def _write(self, doc: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_json_safe(doc)) + "\n")

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._write({"metrics": {k: float(v) for k, v in metrics.items()}, "step": step})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._write({"params": dict(params)})


_WORKER_SPEC = "worker-spec.json"
_WORKER_RESULT = "worker-result.json"
_WORKER_LOGGED = "worker-logged.jsonl"


def worker_spec(ctx: TrainerContext, module_file: str | None, run_fn: str | None) -> dict[str, Any]:
    """What a worker process needs to rebuild ``ctx`` (JSON)."""
    return {
        "module_file": module_file, "run_fn": run_fn,
        "examples": {"uri": ctx.examples.uri, "properties": ctx.examples.properties},
        "train_files": [str(f) for f in ctx.train_files], "eval_files": [str(f) for f in ctx.eval_files],
        "transform_graph": None if ctx.transform_graph is None else ctx.transform_graph.uri,
        "schema": ctx.schema, "custom_config": ctx.custom_config, "hyperparameters": ctx.hyperparameters,
        "train_args": ctx.train_args.to_json(), "eval_args": ctx.eval_args.to_json(),
        "model_dir": str(ctx.model_dir), "run_dir": str(ctx.run_dir), "run_fn_name": ctx.run_fn,
        "pipeline_name": ctx.pipeline_name, "run_id": ctx.run_id, "node_id": ctx.node_id,
        "execution_id": ctx.execution_id,
    }


def _run_workers(ctx: TrainerContext, workers: int, module_file: str | None, run_fn: str | None,
                 tracked: Any, logger: logging.Logger) -> Any:
    """Runs ``run_fn`` in ``workers`` processes training together; returns process 0's result."""
    import sys
    import tempfile

    from jfx.core import History
    from jfx.core._launch import WorkerFailedError, run_processes

    from jfx.orchestrators._jaxjob import LAUNCHER_ENV, run_jaxjob

    on_kubernetes = os.environ.get(LAUNCHER_ENV) == "jaxjob"
    # A JAXJob's pods see the pipeline root's volume, where the outputs are staged: the
    # workers' folder goes there too (and is removed before the outputs are published).
    with tempfile.TemporaryDirectory(prefix=".jfx-workers-", dir=ctx.run_dir if on_kubernetes else None) as tmp:
        work = Path(tmp)
        (work / _WORKER_SPEC).write_text(json.dumps(_json_safe(worker_spec(ctx, module_file, run_fn))),
                                         encoding="utf-8")
        if on_kubernetes:
            logger.info("running %d workers as a JAXJob", workers)
            run_jaxjob(work, workers, node_id=ctx.node_id)
        else:
            logger.info("starting %d worker processes", workers)
            try:
                run_processes(lambda i: [sys.executable, "-m", "jfx.components._trainer_worker", str(work)],
                              workers, log_dir=ctx.run_dir, what="Trainer worker", log_prefix="worker",
                              check=check_cancelled)
            except WorkerFailedError as err:
                raise ComponentError(f"{ctx.run_fn}: {err}") from err
        logged = work / _WORKER_LOGGED
        if logged.is_file():
            for line in logged.read_text(encoding="utf-8").splitlines():
                doc = json.loads(line)
                if "metrics" in doc:
                    tracked.log_metrics(doc["metrics"], doc["step"])
                else:
                    tracked.log_params(doc["params"])
        result = json.loads((work / _WORKER_RESULT).read_text(encoding="utf-8"))
    ctx._exported.update(result["exported"])  # noqa: SLF001 - the context this module made
    if result["history"] is not None:
        return History(**result["history"])
    return result["metrics"]


# ------------------------------------------------------------------------ the component


def _trainer_fingerprint(params: Mapping[str, Any]) -> str:
    return FunctionRef.parse(params.get("module_file"), params.get("run_fn"), default="run_fn",
                             param="run_fn").fingerprint()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _run_logger(run_dir: Path, name: str) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, handler


def _check_export(model_dir: Path, ref: FunctionRef) -> Any:
    from jfx.core import load

    signature = model_dir / _SIGNATURE_FILE
    if not signature.is_file():
        raise ComponentError(_NO_EXPORT_HELP.format(ref=ref.describe(), path=model_dir,
                                                    problem=f"no {_SIGNATURE_FILE}"))
    try:
        return load(model_dir)
    except Exception as err:
        raise ComponentError(_NO_EXPORT_HELP.format(ref=ref.describe(), path=model_dir,
                                                    problem=f"jfx.core.load failed: {type(err).__name__}: {err}")
                             ) from err


def _log_params_quietly(tracked: Any, hparams: Mapping[str, Any], targs: TrainArgs, eargs: EvalArgs) -> None:
    """Logs the params of a failed run when they are not logged yet (errors ignored)."""
    try:
        tracked.log_params(hparams)
        tracked.log_params({"train_args": targs.to_json(), "eval_args": eargs.to_json()})
    except Exception:  # noqa: BLE001 - the run's own error is what is reported
        pass


def _history_of(result: Any, ref: FunctionRef) -> tuple[Any, dict[str, float]]:
    """(History or None, final metrics given explicitly) from what run_fn returned."""
    from jfx.core import History

    if result is None:
        return None, {}
    if isinstance(result, History):
        return result, {}
    if isinstance(result, Mapping):
        return None, finite(result)
    raise ComponentError(f"{ref.describe()} returned a {type(result).__name__}; return the History of "
                         "jfx.core.fit, a dict of final metrics, or nothing")


@component(external_fingerprint=_trainer_fingerprint, streaming=True)
def Trainer(  # noqa: N802 - components are named like the TFX components they mirror
    examples: Input[Examples],
    model: Output[Model],
    model_run: Output[ModelRun],
    transform_graph: Input[TransformGraph] | None = None,
    schema: Input[Schema] | None = None,
    hyperparameters: Input[HyperParameters] | None = None,
    module_file: Parameter[str] | None = None,
    run_fn: Parameter[str] | None = None,
    train_args: Parameter[dict] | None = None,
    eval_args: Parameter[dict] | None = None,
    custom_config: Parameter[dict] | None = None,
    workers: Parameter[int] | None = None,
):
    """Train a model with the user's ``run_fn(ctx)`` and track the run in MLflow.

    Args:
        examples: the training data (Transform's ``transformed_examples`` when there is
            a Transform).
        model: receives the exported model (``signature.json``, ``model.stablehlo``,
            ``weights.npz``); properties: the metrics of the exported weights, named
            for the split they were measured on (``val_loss``, ``val_accuracy``, ...,
            and ``train_loss``, ... for the training epoch's running means), from epoch
            ``metrics_epoch`` (the best one when early stopping restored its weights);
            ``inputs``, ``outputs``, ``with_transform``, ``mlflow_run_id``,
            ``mlflow_experiment_id``, ``mlflow_tracking_uri``. The MLflow run logs the
            same metrics as ``final_<name>`` and tags ``jfx.metrics_epoch``.
        model_run: receives ``history.json`` (per-epoch metrics) and ``trainer.log``;
            properties: the MLflow ids, ``epochs``, ``steps``, ``duration_s``,
            ``final_metrics``, ``metrics_epoch``.
        transform_graph: the fitted transform; ``ctx.transform`` loads it.
        schema: its ``schema.json`` becomes ``ctx.schema``.
        hyperparameters: e.g. a Tuner's ``best_hyperparameters``; ``ctx.hyperparameters``.
        module_file: a Python file defining ``run_fn`` (or the function named by ``run_fn``).
            Its bytes are part of the cache key: editing it reruns the Trainer.
        run_fn: with ``module_file``, the function's name (default ``run_fn``); without,
            ``"package.module:function"`` or ``"path/file.py:function"``.
        train_args: ``{"splits": ["train"], "num_epochs": int, "num_steps": int}``.
        eval_args: ``{"splits": ["eval"], "num_steps": int}``.
        custom_config: any JSON dict, handed to ``run_fn`` as ``ctx.custom_config``.
        workers: train in this many processes, data parallel (``jax.distributed``): the
            Trainer starts and supervises them, each runs ``run_fn`` with its
            ``ctx.process_id``, and ``jfx.core.fit`` shards the data and all-reduces the
            gradients (see :func:`jfx.core.fit`'s ``distributed``). A failed process
            stops the others and fails the execution with its error; their output is
            kept as ``worker-<i>.log`` in the ModelRun. On Kubeflow the processes are
            the pods of a JAXJob (see docs/kubeflow.md). None or 1: ``run_fn`` runs in
            the Trainer's own process.

    Raises:
        ComponentError: the module cannot be imported, ``run_fn`` raises, or it exported
            no loadable model to ``ctx.model_dir`` (the message names the module file).
        InvalidArgumentError: bad ``train_args`` / ``eval_args``.
        DataValidationError: a split named in the args does not exist.
    """
    ref = FunctionRef.parse(module_file, run_fn, default="run_fn", param="run_fn")
    # the examples stream from where they are recorded; the small inputs are local copies
    transform_graph = None if transform_graph is None else localized(transform_graph)
    schema = None if schema is None else localized(schema)
    hyperparameters = None if hyperparameters is None else localized(hyperparameters)
    targs = TrainArgs.from_dict(train_args)
    eargs = EvalArgs.from_dict(eval_args)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidArgumentError(f"workers must be a positive int or None, got {workers!r}")
    train_files = _files(examples, targs.splits, "train_args")
    eval_files = _files(examples, eargs.splits, "eval_args")
    exec_ctx = current_context()
    if exec_ctx is not None:
        root, experiment = exec_ctx.pipeline_root, exec_ctx.pipeline_name
    else:
        from jfx._config import default_pipeline_root

        root, experiment = str(default_pipeline_root()), "jfx"
    tracking_uri = default_tracking_uri(root)
    hparams = read_hyperparameters(hyperparameters) if hyperparameters is not None else {}
    custom = dict(custom_config or {})

    tags: dict[str, Any] = {
        "jfx.run_fn": ref.describe(),
        "jfx.component": "Trainer",
    }
    if exec_ctx is not None:
        tags.update({
            "jfx.pipeline": exec_ctx.pipeline_name,
            "jfx.run_id": exec_ctx.run_id,
            "jfx.node_id": exec_ctx.node_id,
            "jfx.execution_id": exec_ctx.execution_id,
            "jfx.pipeline_root": exec_ctx.pipeline_root,
            "jfx.metadata_url": getattr(exec_ctx, "metadata_url", None),
        })
    if hyperparameters is not None and hyperparameters.id is not None:
        tags["jfx.hyperparameters_artifact_id"] = hyperparameters.id
    run_name = (f"{exec_ctx.node_id}-{exec_ctx.execution_id}" if exec_ctx is not None else "Trainer")
    # MLflow costs seconds (its import; a new SQLite store's schema): a helper process
    # starts the run on another core while the user module and the transform load and
    # run_fn trains; it is waited for when something is logged to it
    tracked = start_run_in_subprocess(tracking_uri, experiment, run_name=run_name, tags=tags,
                                      artifact_location=default_artifact_location(root, experiment, tracking_uri))
    model_dir, run_dir = Path(model.uri), Path(model_run.uri)
    logger, handler = _run_logger(run_dir, f"jfx.trainer.{uuid.uuid4().hex}")
    t0 = time.perf_counter()
    try:
        fn = ref.load()
        # with workers, each process loads the transform itself
        transform = _load_transform(transform_graph) if (workers or 1) == 1 else None
        schema_doc = _schema_doc(schema)
        ctx = TrainerContext(
            examples=examples, train_files=train_files, eval_files=eval_files, transform=transform,
            transform_graph=transform_graph, schema=schema_doc, hyperparameters=dict(hparams),
            custom_config=custom, train_args=targs, eval_args=eargs, model_dir=model_dir, run_dir=run_dir,
            logger=logger, run_fn=ref.describe(),
            pipeline_name=getattr(exec_ctx, "pipeline_name", None), run_id=getattr(exec_ctx, "run_id", None),
            node_id=getattr(exec_ctx, "node_id", None), execution_id=getattr(exec_ctx, "execution_id", None),
            _tracker=tracked,
        )
        logger.info("calling %s (MLflow run at %s)", ref.describe(), tracked.tracking_uri)
        if (workers or 1) > 1:
            result = _run_workers(ctx, workers or 1, module_file, run_fn, tracked, logger)
        else:
            result = call_user_fn(ref, fn, ctx)
        history, explicit = _history_of(result, ref)
        duration = time.perf_counter() - t0
        loaded = _check_export(model_dir, ref)
        t1 = time.perf_counter()
        tracked.log_params(hparams)
        tracked.log_params({"train_args": targs.to_json(), "eval_args": eargs.to_json()})
        logger.info("%s returned after %.2fs; MLflow run %s at %s (waited %.2fs for it)", ref.describe(), duration,
                    tracked.run_id, tracked.tracking_uri, time.perf_counter() - t1)

        final: dict[str, float] = {}
        metrics_epoch = epochs = steps = None
        if history is not None:
            for i, epoch in enumerate(history.epochs):
                values = {k: v[i] for k, v in history.history.items() if i < len(v)}
                tracked.log_metrics(values, step=epoch)
                logger.info("epoch %d: %s", epoch, "  ".join(f"{k}={v:.4g}" for k, v in values.items()))
            # the metrics of the weights run_fn exported (the best epoch's when early
            # stopping restored them), not the last epoch's
            final = history.final_metrics()
            metrics_epoch = history.weights_epoch
            epochs, steps = len(history.epochs), history.step
        final.update(explicit)
        final = finite(final)
        if final:
            tracked.log_metrics({f"final_{k}": v for k, v in final.items()}, step=steps or 0)
        if metrics_epoch is not None:
            tracked.set_tags({"jfx.metrics_epoch": metrics_epoch})
        history_doc = {"run_fn": ref.describe(), **(history.to_json() if history is not None else {}),
                       "final_metrics": final}
        (run_dir / HISTORY_FILE).write_text(json.dumps(_json_safe(history_doc), indent=1), encoding="utf-8")
        logger.info("exported model: inputs %s, outputs %s; metrics of epoch %s: %s", sorted(loaded.inputs),
                    sorted(loaded.outputs), metrics_epoch, final)

        links = {"mlflow_run_id": tracked.run_id, "mlflow_experiment_id": tracked.experiment_id,
                 "mlflow_tracking_uri": tracked.tracking_uri}
        reserved = {"inputs", "outputs", "with_transform", "metrics_epoch", "run_fn", *links}
        model.properties.update({k: v for k, v in final.items() if k not in reserved})
        model.properties.update({
            "inputs": list(loaded.inputs),
            "outputs": list(loaded.outputs),
            # known when run_fn exported through ctx.export_model; None when it exported by hand
            "with_transform": ctx._exported.get("with_transform", False if transform_graph is None else None),  # noqa: SLF001 - the context this module made
            "metrics_epoch": metrics_epoch,
            "run_fn": ref.describe(),
            **links,
        })
        model_run.properties.update({
            **links,
            "epochs": epochs,
            "steps": steps,
            "duration_s": round(duration, 3),
            "workers": workers or 1,
            "final_metrics": final,
            "metrics_epoch": metrics_epoch,
            "run_fn": ref.describe(),
        })
        handler.flush()
        tracked.log_jfx_model(model_dir, "model")  # an MLflow Model: mlflow.pyfunc.load_model runs it
        tracked.log_artifacts(run_dir, "run")
        tracked.finish()
    except BaseException as err:
        try:
            logger.error("failed: %s: %s", type(err).__name__, err)
            _log_params_quietly(tracked, hparams, targs, eargs)
            tracked.set_tags({"jfx.error": f"{type(err).__name__}: {err}"})
        finally:
            tracked.finish(failed=True)
        raise
    finally:
        tracked.close()
        logger.removeHandler(handler)
        handler.close()
