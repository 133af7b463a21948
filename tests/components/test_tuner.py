"""Tuner: random and bayesian (TPE) search, parallel trials, the HyperParameters artifact, a Trainer consuming it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from jfx import Pipeline
from jfx.components._example_gen import ExampleGen
from jfx.components._trainer import HYPERPARAMETERS_FILE, Trainer
from jfx.components._tuner import TRIALS_FILE, TuneArgs, Tuner, TunerSpec, _score
from jfx.core import History
from jfx.errors import ComponentError, InvalidArgumentError
from jfx.orchestrators import LocalDagRunner

RUNNER = LocalDagRunner(progress=False)

MODULE = textwrap.dedent('''\
    import threading
    import time

    import optax
    from flax import nnx
    from jfx.components._tuner import TunerSpec
    from jfx.core import DNNClassifier, Numeric, fit

    THREADS = set()


    def tuner_fn(ctx):
        def search_space(trial):
            return {"learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
                    "hidden": trial.suggest_categorical("hidden", [4, 8]), "fixed": "yes"}

        def objective(hp, ctx):
            THREADS.add(threading.get_ident())
            {objective}

        return TunerSpec(search_space, objective)


    def fit_one(hp, ctx, steps):
        train = ctx.train_dataset(batch_size=32, label="y")
        evals = ctx.eval_dataset(batch_size=64, label="y")
        model = DNNClassifier({"x1": Numeric(), "x2": Numeric()}, hidden_units=(hp["hidden"],), n_classes=2,
                              rngs=nnx.Rngs(0))
        return model, train, fit(model, optax.adam(hp["learning_rate"]), "sparse_categorical_crossentropy",
                                 train, evals, steps=steps, progress=False)


    def run_fn(ctx):
        assert ctx.hyperparameters["fixed"] == "yes", ctx.hyperparameters
        model, train, history = fit_one(ctx.hyperparameters, ctx, 5)
        ctx.export_model(model, train)
        return history
''')

TRAIN = "return fit_one(hp, ctx, 5)[2]"
# Cheap objective for the search-mechanics tests: no training, a known optimum near lr 0.03.
CHEAP = "time.sleep(0.05); return {'score': -abs(hp['learning_rate'] - 0.03), 'other': 1.0}"


def write_module(path: Path, objective: str) -> Path:
    path.write_text(MODULE.replace("{objective}", objective), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("tuner")
    rng = np.random.default_rng(1)
    n = 240
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 - x2 > 0).astype(int)
    data = base / "data"
    data.mkdir()
    (data / "data.csv").write_text("x1,x2,y\n" + "".join(f"{a:.4f},{b:.4f},{t}\n" for a, b, t in zip(x1, x2, y, strict=True)))
    return {"base": base, "data": str(data), "root": str(base / "root"), "url": f"sqlite:///{base / 'md.sqlite'}"}


def run_tuner(env, name: str, module: Path, tune_args: dict, with_trainer: bool = False):
    examples = ExampleGen(input_base=env["data"], splits={"train": 3, "eval": 1})
    tuner = Tuner(examples=examples.outputs["examples"], module_file=str(module), tune_args=tune_args)
    nodes = [examples, tuner]
    if with_trainer:
        nodes.append(Trainer(examples=examples.outputs["examples"], module_file=str(module),
                             hyperparameters=tuner.outputs["best_hyperparameters"]))
    return RUNNER.run(Pipeline(name, components=nodes, pipeline_root=env["root"], metadata_url=env["url"]))


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_search_writes_the_best_hyperparameters_and_every_trial(env, algorithm):
    module = write_module(env["base"] / f"cheap_{algorithm}.py", CHEAP)
    result = run_tuner(env, f"tune-{algorithm}", module, {"num_trials": 12, "algorithm": algorithm,
                                                          "metric": "score", "seed": 3})
    outcome = result.nodes["Tuner"]
    assert outcome.state == "complete", outcome.traceback
    [art] = outcome.outputs["best_hyperparameters"]
    best = json.loads((Path(art.uri) / HYPERPARAMETERS_FILE).read_text())
    trials = json.loads((Path(art.uri) / TRIALS_FILE).read_text())["trials"]
    assert len(trials) == 12 and all(t["state"] == "COMPLETE" for t in trials)
    top = max(trials, key=lambda t: t["value"])
    assert best == top["hyperparameters"] and best["fixed"] == "yes"
    props = art.properties
    assert props["best_value"] == top["value"] and props["best_trial"] == top["number"]
    assert props["algorithm"] == algorithm and props["num_trials"] == 12 and props["completed_trials"] == 12
    assert props["hyperparameters"] == best
    assert abs(best["learning_rate"] - 0.03) < 0.03
    # the search is one MLflow run with a child run per trial
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{Path(env['root']).resolve() / 'mlflow.sqlite'}")
    parent = client.get_run(props["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["jfx.node_id"] == "Tuner"
    assert parent.data.metrics["best_score"] == pytest.approx(top["value"])
    children = client.search_runs([props["mlflow_experiment_id"]],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 12


def test_bayesian_search_is_reproducible_with_one_thread(env):
    module = write_module(env["base"] / "cheap_repro.py", CHEAP)
    runs = []
    for i in range(2):
        result = run_tuner(env, f"tune-repro-{i}", module, {"num_trials": 8, "algorithm": "bayesian",
                                                            "metric": "score", "seed": 7})
        [art] = result.nodes["Tuner"].outputs["best_hyperparameters"]
        runs.append([t["hyperparameters"] for t in
                     json.loads((Path(art.uri) / TRIALS_FILE).read_text())["trials"]])
    assert runs[0] == runs[1]


def test_parallel_trials_train_on_several_threads_and_a_trainer_takes_the_best(env):
    module = write_module(env["base"] / "train.py", TRAIN)
    result = run_tuner(env, "tune-train", module, {"num_trials": 4, "parallel_trials": 2}, with_trainer=True)
    assert result.state == "COMPLETE", {k: o.error for k, o in result.nodes.items()}
    [art] = result.nodes["Tuner"].outputs["best_hyperparameters"]
    trials = json.loads((Path(art.uri) / TRIALS_FILE).read_text())["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    assert art.properties["metric"] == "val_accuracy" and 0.0 <= art.properties["best_value"] <= 1.0
    [model] = result.nodes["Trainer"].outputs["model"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{Path(env['root']).resolve() / 'mlflow.sqlite'}")
    params = client.get_run(model.properties["mlflow_run_id"]).data.params
    best = json.loads((Path(art.uri) / HYPERPARAMETERS_FILE).read_text())
    assert params["learning_rate"] == str(best["learning_rate"]) and params["hidden"] == str(best["hidden"])
    # two trials really ran at once: the module saw two objective threads
    import sys

    [mod] = [m for n, m in sys.modules.items() if n.startswith("_jfx_user_train_")]
    assert len(mod.THREADS) == 2


def test_failing_trials_are_recorded_and_all_failing_fails_the_node(env):
    flaky = write_module(env["base"] / "flaky.py",
                         "if hp['hidden'] == 4: raise RuntimeError('diverged')\n        return 0.5")
    result = run_tuner(env, "tune-flaky", flaky, {"num_trials": 6, "seed": 0})
    assert result.nodes["Tuner"].state == "complete", result.nodes["Tuner"].error
    [art] = result.nodes["Tuner"].outputs["best_hyperparameters"]
    trials = json.loads((Path(art.uri) / TRIALS_FILE).read_text())["trials"]
    failed = [t for t in trials if t["state"] == "FAIL"]
    assert failed and all(t["error"].endswith("RuntimeError: diverged") for t in failed)
    assert art.properties["failed_trials"] == len(failed)

    broken = write_module(env["base"] / "broken.py", "raise RuntimeError('always')")
    result = run_tuner(env, "tune-broken", broken, {"num_trials": 2})
    outcome = result.nodes["Tuner"]
    assert outcome.state == "failed" and not outcome.outputs
    assert "no trial of tuner_fn in" in outcome.error and str(broken) in outcome.error
    assert "RuntimeError: always" in outcome.error


def test_scores_and_arguments():
    args = TuneArgs.from_dict({"metric": "val_loss", "direction": "minimize"})
    h = History({"val_loss": [0.5, 0.2, 0.3]}, [0, 1, 2])
    assert _score(h, args, "f") == 0.2
    assert _score(History({"val_loss": [0.5, 0.2]}, [0, 1]), TuneArgs.from_dict({"metric": "val_loss"}), "f") == 0.5
    assert _score({"val_loss": 1.5}, args, "f") == 1.5 and _score(3, args, "f") == 3.0
    with pytest.raises(ComponentError, match="without 'val_loss'"):
        _score({"loss": 1.0}, args, "f")
    with pytest.raises(InvalidArgumentError, match="algorithm"):
        TuneArgs.from_dict({"algorithm": "grid"})
    with pytest.raises(InvalidArgumentError, match="unknown keys"):
        TuneArgs.from_dict({"trials": 3})
    with pytest.raises(InvalidArgumentError, match="parallel_trials"):
        TuneArgs.from_dict({"parallel_trials": 0})
    assert TunerSpec(lambda t: {}, lambda h, c: 0.0).search_space(None) == {}
