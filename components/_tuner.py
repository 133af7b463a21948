"""Tuner: hyperparameter search with Optuna over the user's search space and objective.

The user's module defines ``tuner_fn(ctx: TunerContext) -> TunerSpec``:

* ``TunerSpec.search_space(trial) -> dict``: draws one candidate with Optuna's
  ``trial.suggest_float / suggest_int / suggest_categorical``; the returned dict (it may
  hold fixed values too) is the candidate's hyperparameters;
* ``TunerSpec.objective(hyperparameters, ctx) -> float | dict | History``: trains and
  scores one candidate. A dict is read at ``tune_args["metric"]``; a
  :class:`jfx.core.History` at its best epoch of that metric.

Trials run on ``parallel_trials`` threads (compiled JAX steps release the GIL). The best
candidate's dict is written to ``<uri>/hyperparameters.json``, which a Trainer takes as
its ``hyperparameters`` input (``ctx.hyperparameters``); every trial is listed in
``<uri>/trials.json``. The search is one MLflow run with a child run per trial.

Example (``model.py``):

    from jfx.components._tuner import TunerSpec

    def tuner_fn(ctx):
        def search_space(trial):
            return {"learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
                    "hidden": trial.suggest_categorical("hidden", [8, 16])}

        def objective(hp, ctx):
            train, evals = ctx.train_dataset(label="y"), ctx.eval_dataset(label="y")
            model = DNNClassifier(spec, hidden_units=(hp["hidden"],), rngs=nnx.Rngs(0))
            return fit(model, optax.adam(hp["learning_rate"]), "sparse_categorical_crossentropy",
                       train, evals, epochs=3)          # scored by its best val_accuracy

        return TunerSpec(search_space, objective)

and in the pipeline ``Tuner(examples=..., module_file="model.py", tune_args={"num_trials": 20,
"algorithm": "bayesian", "parallel_trials": 2})``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jfx.components._mlflow import (
    default_artifact_location,
    default_tracking_uri,
    finite,
    start_run,
)
from jfx.components._trainer import (
    HYPERPARAMETERS_FILE,
    DataContext,
    FunctionRef,
    _check_keys,
    _files,
    _json_safe,
    _load_transform,
    _schema_doc,
    _splits,
    call_user_fn,
)
from jfx.components._examples import localized
from jfx.errors import ComponentError, InvalidArgumentError
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._context import current_context
from jfx.pipelines._artifacts import Examples, HyperParameters, Schema, TransformGraph

__all__ = ["ALGORITHMS", "TRIALS_FILE", "TuneArgs", "Tuner", "TunerContext", "TunerSpec"]

TRIALS_FILE = "trials.json"
ALGORITHMS = ("random", "bayesian")
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class TunerSpec:
    """What ``tuner_fn`` returns: how to draw a candidate and how to score it.

    Attributes:
        search_space: ``(optuna.Trial) -> dict`` of hyperparameters.
        objective: ``(hyperparameters, TunerContext) -> float | dict | History``.
    """

    search_space: Callable[[Any], Mapping[str, Any]]
    objective: Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class TuneArgs:
    """The Tuner's ``tune_args``.

    Attributes:
        num_trials: candidates to try.
        algorithm: ``"random"`` (Optuna's RandomSampler) or ``"bayesian"`` (TPE).
        parallel_trials: trials run at the same time, on threads.
        direction: ``"maximize"`` or ``"minimize"`` the metric.
        metric: the key read from an objective's dict or History (e.g. ``val_accuracy``).
        seed: the sampler's seed (with ``parallel_trials > 1`` the order trials finish
            in, and so TPE's choices, may vary from run to run).
        timeout_s: stop starting new trials after this many seconds (None: no limit).
        train_splits, eval_splits: the splits ``ctx.train_dataset`` / ``ctx.eval_dataset`` read.

    Example:
        >>> TuneArgs.from_dict({"num_trials": 4, "algorithm": "bayesian"}).algorithm
        'bayesian'
    """

    num_trials: int = 10
    algorithm: str = "random"
    parallel_trials: int = 1
    direction: str = "maximize"
    metric: str = "val_accuracy"
    seed: int = 0
    timeout_s: float | None = None
    train_splits: tuple[str, ...] = ("train",)
    eval_splits: tuple[str, ...] = ("eval",)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> TuneArgs:
        where = "tune_args"
        doc = _check_keys(doc, ("num_trials", "algorithm", "parallel_trials", "direction", "metric", "seed",
                                "timeout_s", "train_splits", "eval_splits"), where)
        out = cls(
            num_trials=doc.get("num_trials", 10),
            algorithm=doc.get("algorithm", "random"),
            parallel_trials=doc.get("parallel_trials", 1),
            direction=doc.get("direction", "maximize"),
            metric=doc.get("metric", "val_accuracy"),
            seed=doc.get("seed", 0),
            timeout_s=doc.get("timeout_s"),
            train_splits=_splits({"splits": doc.get("train_splits", ["train"])}, ("train",), where),
            eval_splits=_splits({"splits": doc.get("eval_splits", ["eval"])}, ("eval",), where),
        )
        for key in ("num_trials", "parallel_trials"):
            v = getattr(out, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(f"{where}[{key!r}] must be a positive int, got {v!r}")
        if isinstance(out.seed, bool) or not isinstance(out.seed, int):
            raise InvalidArgumentError(f"{where}['seed'] must be an int, got {out.seed!r}")
        if out.algorithm not in ALGORITHMS:
            raise InvalidArgumentError(f"{where}['algorithm'] must be one of {ALGORITHMS}, got {out.algorithm!r}")
        if out.direction not in DIRECTIONS:
            raise InvalidArgumentError(f"{where}['direction'] must be one of {DIRECTIONS}, got {out.direction!r}")
        if not isinstance(out.metric, str) or not out.metric:
            raise InvalidArgumentError(f"{where}['metric'] must be a metric name, got {out.metric!r}")
        if out.timeout_s is not None and (not isinstance(out.timeout_s, (int, float)) or out.timeout_s <= 0):
            raise InvalidArgumentError(f"{where}['timeout_s'] must be a positive number, got {out.timeout_s!r}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"num_trials": self.num_trials, "algorithm": self.algorithm, "parallel_trials": self.parallel_trials,
                "direction": self.direction, "metric": self.metric, "seed": self.seed, "timeout_s": self.timeout_s,
                "train_splits": list(self.train_splits), "eval_splits": list(self.eval_splits)}


@dataclass(frozen=True)
class TunerContext(DataContext):
    """What ``tuner_fn(ctx)`` and each ``objective(hyperparameters, ctx)`` get: the data
    of :class:`~jfx.components._trainer.DataContext` (``train_dataset``, ``eval_dataset``,
    ``transform``, ``schema``, ``custom_config``) and

    Attributes:
        tune_args: the :class:`TuneArgs`.
        tuner_fn: which function defined the search, e.g. ``"tuner_fn in /path/model.py"``.
    """

    tune_args: TuneArgs
    tuner_fn: str


def _score(result: Any, args: TuneArgs, where: str) -> float:
    from jfx.core import History

    if isinstance(result, History):
        values = [v for v in result.history.get(args.metric, []) if math.isfinite(v)]
        if args.metric not in result.history:
            raise ComponentError(f"{where} returned a History without {args.metric!r} (it has "
                                 f"{sorted(result.history)}); set tune_args['metric'] to one of them")
        if not values:
            return float("nan")
        return max(values) if args.direction == "maximize" else min(values)
    if isinstance(result, Mapping):
        if args.metric not in result:
            raise ComponentError(f"{where} returned metrics {sorted(result)} without {args.metric!r}; "
                                 "set tune_args['metric'] to one of them")
        result = result[args.metric]
    try:
        return float(result)
    except (TypeError, ValueError):
        raise ComponentError(f"{where} returned {type(result).__name__}; return a number, a dict of metrics "
                             "or the History of jfx.core.fit") from None


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise ComponentError("the Tuner searches with Optuna, which is not installed; "
                             "pip install 'optuna>=3.4,<6'") from err
    return optuna


def _sampler(args: TuneArgs) -> Any:
    optuna = _import_optuna()

    if args.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=args.seed)
    # TPE models the results so far; the first few trials are random to seed it.
    return optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=max(2, min(10, args.num_trials // 3)))


def _tuner_fingerprint(params: Mapping[str, Any]) -> str:
    return FunctionRef.parse(params.get("module_file"), params.get("tuner_fn"), default="tuner_fn",
                             param="tuner_fn").fingerprint()


@component(external_fingerprint=_tuner_fingerprint, streaming=True)
def Tuner(  # noqa: N802 - components are named like the TFX components they mirror
    examples: Input[Examples],
    best_hyperparameters: Output[HyperParameters],
    transform_graph: Input[TransformGraph] | None = None,
    schema: Input[Schema] | None = None,
    module_file: Parameter[str] | None = None,
    tuner_fn: Parameter[str] | None = None,
    tune_args: Parameter[dict] | None = None,
    custom_config: Parameter[dict] | None = None,
):
    """Search hyperparameters with Optuna; write the best to ``hyperparameters.json``.

    Args:
        examples: the data (Transform's ``transformed_examples`` with a Transform).
        best_hyperparameters: receives ``hyperparameters.json`` (the best candidate's
            dict) and ``trials.json`` (every trial: number, state, hyperparameters, value,
            seconds, error); properties ``best_value``, ``best_trial``, ``metric``,
            ``direction``, ``algorithm``, ``num_trials``, ``completed_trials``,
            ``failed_trials``, ``hyperparameters``, and the MLflow run's ids.
        transform_graph: the fitted transform, as ``ctx.transform``.
        schema: as ``ctx.schema``.
        module_file: a Python file defining ``tuner_fn`` (its bytes are in the cache key).
        tuner_fn: with ``module_file``, the function's name (default ``tuner_fn``);
            without, ``"package.module:function"`` or ``"path/file.py:function"``.
        tune_args: see :class:`TuneArgs`.
        custom_config: any JSON dict, as ``ctx.custom_config``.

    Raises:
        ComponentError: the module cannot be imported, ``tuner_fn`` fails or returns no
            :class:`TunerSpec`, or no trial completed (the first trial error is shown).
    """
    optuna = _import_optuna()
    ref = FunctionRef.parse(module_file, tuner_fn, default="tuner_fn", param="tuner_fn")
    args = TuneArgs.from_dict(tune_args)
    # the examples stream from where they are recorded; the small inputs are local copies
    transform_graph = None if transform_graph is None else localized(transform_graph)
    schema = None if schema is None else localized(schema)
    ctx = TunerContext(
        examples=examples, train_files=_files(examples, args.train_splits, "tune_args['train_splits']"),
        eval_files=_files(examples, args.eval_splits, "tune_args['eval_splits']"),
        transform=_load_transform(transform_graph), transform_graph=transform_graph, schema=_schema_doc(schema),
        custom_config=dict(custom_config or {}), tune_args=args, tuner_fn=ref.describe(),
    )
    spec = call_user_fn(ref, ref.load(), ctx)
    if not isinstance(spec, TunerSpec):
        raise ComponentError(f"{ref.describe()} returned {type(spec).__name__}; return "
                             "TunerSpec(search_space=fn(trial) -> dict, objective=fn(hyperparameters, ctx) -> float)")

    exec_ctx = current_context()
    if exec_ctx is not None:
        root, experiment = exec_ctx.pipeline_root, exec_ctx.pipeline_name
        tags = {"jfx.pipeline": exec_ctx.pipeline_name, "jfx.run_id": exec_ctx.run_id,
                "jfx.node_id": exec_ctx.node_id, "jfx.execution_id": exec_ctx.execution_id,
                "jfx.metadata_url": getattr(exec_ctx, "metadata_url", None)}
    else:
        from jfx._config import default_pipeline_root

        root, experiment, tags = str(default_pipeline_root()), "jfx", {}
    tags.update({"jfx.component": "Tuner", "jfx.tuner_fn": ref.describe()})
    tracking_uri = default_tracking_uri(root)
    location = default_artifact_location(root, experiment, tracking_uri)
    parent = start_run(tracking_uri, experiment, run_name=f"{getattr(exec_ctx, 'node_id', 'Tuner')}-"
                       f"{getattr(exec_ctx, 'execution_id', 'direct')}", tags=tags, artifact_location=location)
    records: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()

    def run_trial(trial: Any) -> float:
        t0 = time.perf_counter()
        record: dict[str, Any] = {"number": trial.number, "state": "RUNNING"}
        with lock:
            records[trial.number] = record
        where = f"objective of {ref.describe()}"
        try:
            hparams = dict(call_user_fn(ref, spec.search_space, trial))
            json.dumps(hparams)
            record["hyperparameters"] = hparams
            trial.set_user_attr("hyperparameters", hparams)
            value = _score(call_user_fn(ref, spec.objective, hparams, ctx), args, where)
        except Exception as err:
            record.update(state="FAIL", error=f"{type(err).__name__}: {err}", seconds=round(time.perf_counter() - t0, 3))
            raise
        record.update(value=value, seconds=round(time.perf_counter() - t0, 3),
                      state="COMPLETE" if math.isfinite(value) else "FAIL")
        if not math.isfinite(value):
            record["error"] = f"the objective's {args.metric} is {value}"
        child = start_run(tracking_uri, experiment, run_name=f"trial-{trial.number}",
                          tags={**tags, "mlflow.parentRunId": parent.run_id, "jfx.trial": trial.number})
        try:
            child.log_params(record.get("hyperparameters", {}))
            child.log_metrics(finite({args.metric: value}))
        finally:
            child.finish(failed=not math.isfinite(value))
        return value

    try:
        parent.log_params({"tune_args": args.to_json()})
        study = optuna.create_study(direction=args.direction, sampler=_sampler(args))
        study.optimize(run_trial, n_trials=args.num_trials, n_jobs=args.parallel_trials,
                       timeout=args.timeout_s, catch=(Exception,), gc_after_trial=False)
        trials = [records[n] for n in sorted(records)]
        completed = [t for t in trials if t["state"] == "COMPLETE"]
        if not completed:
            first = next((t.get("error") for t in trials if t.get("error")), "no trial ran")
            raise ComponentError(f"no trial of {ref.describe()} completed ({len(trials)} tried); "
                                 f"the first error: {first}")
        pick = max if args.direction == "maximize" else min
        best = pick(completed, key=lambda t: t["value"])
        for t in trials:
            parent.log_metrics(finite({args.metric: t.get("value", float("nan"))}), step=t["number"])
        parent.log_metrics({f"best_{args.metric}": best["value"]})
        parent.log_params({f"best.{k}": v for k, v in best["hyperparameters"].items()})

        best_hyperparameters.write_json(best["hyperparameters"], HYPERPARAMETERS_FILE)
        best_hyperparameters.write_json(_json_safe({"metric": args.metric, "direction": args.direction,
                                                    "trials": trials}), TRIALS_FILE)
        best_hyperparameters.properties.update({
            "best_value": best["value"],
            "best_trial": best["number"],
            "metric": args.metric,
            "direction": args.direction,
            "algorithm": args.algorithm,
            "num_trials": len(trials),
            "completed_trials": len(completed),
            "failed_trials": len(trials) - len(completed),
            "hyperparameters": _json_safe(best["hyperparameters"]),
            "mlflow_run_id": parent.run_id,
            "mlflow_experiment_id": parent.experiment_id,
            "mlflow_tracking_uri": parent.tracking_uri,
        })
        parent.finish()
    except BaseException as err:
        try:
            parent.set_tags({"jfx.error": f"{type(err).__name__}: {err}"})
        finally:
            parent.finish(failed=True)
        raise
