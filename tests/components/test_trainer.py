"""Trainer: run_fn in a real pipeline (ExampleGen → Trainer), failures, caching, MLflow tracking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from jfx import Output, Parameter, Pipeline, component
from jfx.components._example_gen import ExampleGen
from jfx.components._trainer import (
    HISTORY_FILE,
    LOG_FILE,
    EvalArgs,
    FunctionRef,
    TrainArgs,
    Trainer,
    read_hyperparameters,
)
from jfx.errors import ComponentError, InvalidArgumentError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner
from jfx.types import HyperParameters, Model

RUNNER = LocalDagRunner(progress=False)

# A run_fn module; {body} is replaced per test. Tiny model, few steps.
MODULE = textwrap.dedent('''\
    import optax
    from flax import nnx
    from jfx.core import Categorical, DNNClassifier, Numeric, fit

    ENCODERS = {{"c": {{"vocabulary": ["a", "b", "c"], "oov_buckets": 1}}}}


    def run_fn(ctx):
        {body}
        train = ctx.train_dataset(batch_size=32, label="y", encoders=ENCODERS)
        evals = ctx.eval_dataset(batch_size=64, label="y", encoders=ENCODERS)
        lr = ctx.hyperparameters.get("learning_rate", 0.05)
        ctx.log_params({{"hidden": 8}})
        model = DNNClassifier({{"x1": Numeric(), "x2": Numeric(), "c": Categorical(4)}}, hidden_units=(8,),
                              n_classes=2, rngs=nnx.Rngs(0))
        history = fit(model, optax.adam(lr), "sparse_categorical_crossentropy", train, evals,
                      epochs=ctx.train_args.num_epochs or 2, progress=False)
        ctx.log_metrics({{"custom": 1.5}}, step=7)
        {export}
        return history
''')


def write_module(path: Path, body: str = "pass", export: str = "ctx.export_model(model, train)") -> Path:
    path.write_text(MODULE.format(body=body, export=export), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One pipeline root (so one MLflow tracking store, created once), one metadata store, one CSV."""
    base = tmp_path_factory.mktemp("trainer")
    rng = np.random.default_rng(0)
    n = 300
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], size=n)
    y = ((x1 + x2 + (c == "a")) > 0.5).astype(int)
    data = base / "data"
    data.mkdir()
    rows = "".join(f"{a:.4f},{b:.4f},{s},{t}\n" for a, b, s, t in zip(x1, x2, c, y, strict=True))
    (data / "data.csv").write_text("x1,x2,c,y\n" + rows, encoding="utf-8")
    return {"base": base, "data": str(data), "root": str(base / "root"),
            "url": f"sqlite:///{base / 'metadata.sqlite'}"}


def trainer_pipeline(env, name: str, *extra, **trainer_args) -> Pipeline:
    examples = ExampleGen(input_base=env["data"], splits={"train": 3, "eval": 1})
    trainer = Trainer(examples=examples.outputs["examples"], **trainer_args)
    return Pipeline(name, components=[examples, *extra, trainer], pipeline_root=env["root"], metadata_url=env["url"])


def mlflow_client(env):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{Path(env['root']).resolve() / 'mlflow.sqlite'}")


@pytest.fixture(scope="module")
def trained(env):
    """One successful run, shared by the tests that inspect its outputs."""
    module = write_module(env["base"] / "model_ok.py")
    result = RUNNER.run(trainer_pipeline(env, "trainer-ok", module_file=str(module),
                                         train_args={"num_epochs": 3}))
    assert result.state == "COMPLETE", result.nodes["Trainer"].traceback
    return result


# ------------------------------------------------------------------- a successful run


def test_trainer_exports_a_loadable_model_with_metrics_and_links(env, trained):
    outcome = trained.nodes["Trainer"]
    [model] = outcome.outputs["model"]
    [run] = outcome.outputs["model_run"]
    props = model.properties
    assert props["val_accuracy"] > 0.7 and props["val_loss"] > 0 and "val_auc" in props
    assert props["train_loss"] > 0 and props["metrics_epoch"] == 2  # no early stopping: the last epoch
    assert sorted(props["inputs"]) == ["c", "x1", "x2"]
    assert props["outputs"] == ["class_ids", "logits", "probabilities"]
    assert props["with_transform"] is False
    assert props["mlflow_run_id"] == run.properties["mlflow_run_id"]
    assert props["mlflow_tracking_uri"].endswith("root/mlflow.sqlite")
    assert run.properties["epochs"] == 3 and run.properties["steps"] > 0
    history = json.loads((Path(run.uri) / HISTORY_FILE).read_text())
    assert len(history["history"]["val_accuracy"]) == 3 and history["final_metrics"]["val_accuracy"] == props["val_accuracy"]
    assert "epoch 2:" in (Path(run.uri) / LOG_FILE).read_text()

    from jfx.core import load

    loaded = load(model.uri)  # raw rows, strings included
    out = loaded([{"x1": 2.0, "x2": 2.0, "c": "a"}, {"x1": -2.0, "x2": -2.0, "c": "zzz"}])
    assert out["class_ids"].tolist() == [1, 0]


def test_the_logged_model_is_an_mlflow_model_that_pyfunc_runs(env, trained, monkeypatch):
    import mlflow
    import pandas as pd

    from jfx.core import load

    [model] = trained.nodes["Trainer"].outputs["model"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{Path(env['root']).resolve() / 'mlflow.sqlite'}")
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{model.properties['mlflow_run_id']}/model")
    schema = pyfunc.metadata.get_input_schema()
    assert {c.name: c.type.name for c in schema.inputs} == {"x1": "double", "x2": "double", "c": "string"}
    assert pyfunc.metadata.saved_input_example_info["type"] == "dataframe"
    df = pd.DataFrame({"x1": [2.0, -2.0, 0.1], "x2": [2.0, -2.0, None], "c": ["a", "zzz", None]})
    got = pyfunc.predict(df)
    want = load(model.uri)([{"x1": 2.0, "x2": 2.0, "c": "a"}, {"x1": -2.0, "x2": -2.0, "c": "zzz"},
                            {"x1": 0.1, "x2": None, "c": None}])
    assert got["class_ids"].tolist() == want["class_ids"].tolist() == [1, 0, want["class_ids"][2]]
    np.testing.assert_allclose(np.stack(got["probabilities"]), want["probabilities"], rtol=1e-6)


def test_the_mlflow_hint_of_the_ui_runs_on_this_install(env, trained):
    from jfx.metadata.ui._viewers import mlflow_link

    [model] = trained.nodes["Trainer"].outputs["model"]
    hint = mlflow_link(model.properties, None)["command"]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads(proc.stdout)
    assert run["info"]["run_id"] == model.properties["mlflow_run_id"] and run["info"]["status"] == "FINISHED"
    assert run["data"]["params"]["hidden"] == "8"


def test_the_mlflow_run_holds_params_metrics_tags_and_artifacts(env, trained):
    outcome = trained.nodes["Trainer"]
    [model] = outcome.outputs["model"]
    client = mlflow_client(env)
    run = client.get_run(model.properties["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == model.properties["mlflow_experiment_id"]
    assert client.get_experiment(run.info.experiment_id).name == "trainer-ok"
    assert run.data.params["train_args.num_epochs"] == "3" and run.data.params["hidden"] == "8"
    assert run.data.params["eval_args.splits"] == "['eval']"
    tags = run.data.tags
    assert tags["jfx.pipeline"] == "trainer-ok" and tags["jfx.node_id"] == "Trainer"
    assert tags["jfx.run_id"] == trained.run_id and tags["jfx.execution_id"] == str(outcome.execution_id)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0, 1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [0, 1, 2]
    assert client.get_metric_history(run.info.run_id, "custom")[0].step == 7
    assert run.data.metrics["final_val_accuracy"] == pytest.approx(model.properties["val_accuracy"])
    assert run.data.tags["jfx.metrics_epoch"] == "2"
    model_files = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/MLmodel", "model/input_example.json", "model/artifacts"} <= model_files
    jfx_files = {f.path for f in client.list_artifacts(run.info.run_id, "model/artifacts/jfx_model")}
    assert jfx_files == {f"model/artifacts/jfx_model/{n}" for n in ("signature.json", "model.stablehlo", "weights.npz")}
    assert "run/history.json" in {f.path for f in client.list_artifacts(run.info.run_id, "run")}
    # artifacts live under <pipeline_root>/mlartifacts
    assert Path(env["root"]).resolve().as_uri() + "/mlartifacts/" in run.info.artifact_uri


# A run_fn whose learning rate overshoots: val_loss gets worse after a few epochs, early
# stopping restores the best epoch's weights, and those are what is exported.
OVERSHOOT = textwrap.dedent('''\
    import optax
    from flax import nnx
    from jfx.core import Categorical, DNNClassifier, EarlyStopping, Numeric, fit

    ENCODERS = {"c": {"vocabulary": ["a", "b", "c"], "oov_buckets": 1}}


    def run_fn(ctx):
        train = ctx.train_dataset(batch_size=16, label="y", encoders=ENCODERS)
        evals = ctx.eval_dataset(batch_size=64, label="y", encoders=ENCODERS)
        model = DNNClassifier({"x1": Numeric(), "x2": Numeric(), "c": Categorical(4)}, hidden_units=(32,),
                              n_classes=2, rngs=nnx.Rngs(0))
        history = fit(model, optax.adam(0.3), "sparse_categorical_crossentropy", train, evals, epochs=20,
                      progress=False, early_stopping=EarlyStopping("val_loss", patience=2))
        ctx.export_model(model, train)
        return history
''')


def test_the_model_records_the_metrics_of_the_exported_weights(env):
    from jfx.components import Evaluator

    module = env["base"] / "model_overshoot.py"
    module.write_text(OVERSHOOT, encoding="utf-8")
    examples = ExampleGen(input_base=env["data"], splits={"train": 3, "eval": 1})
    trainer = Trainer(examples=examples.outputs["examples"], module_file=str(module))
    evaluator = Evaluator(examples=examples.outputs["examples"], model=trainer.outputs["model"],
                          eval_config={"label_key": "y"})
    result = RUNNER.run(Pipeline("trainer-best-epoch", components=[examples, trainer, evaluator],
                                 pipeline_root=env["root"], metadata_url=env["url"]))
    assert result.state == "COMPLETE", {k: o.error for k, o in result.nodes.items()}
    [model] = result.nodes["Trainer"].outputs["model"]
    [run] = result.nodes["Trainer"].outputs["model_run"]
    history = json.loads((Path(run.uri) / HISTORY_FILE).read_text())
    best, val_loss = history["best_epoch"], history["history"]["val_loss"]
    # the case at hand: the exported (best) epoch is not the last one, and differs from it
    assert history["stopped_early"] and best < history["epochs"][-1] and val_loss[best] != val_loss[-1]

    props = model.properties
    assert props["metrics_epoch"] == best and history["weights_epoch"] == best
    assert "accuracy" not in props and "loss" not in props  # named for their split, not bare
    assert props["val_loss"] == pytest.approx(val_loss[best])
    assert props["train_loss"] == pytest.approx(history["history"]["loss"][best])
    # what the Evaluator measures on the exported model over the same eval rows
    [evaluation] = result.nodes["Evaluator"].outputs["evaluation"]
    measured = json.loads((Path(evaluation.uri) / "metrics.json").read_text())["slices"][0]["candidate"]
    assert props["val_accuracy"] == pytest.approx(measured["accuracy"], abs=1e-6)
    assert props["val_loss"] == pytest.approx(measured["log_loss"], rel=1e-4)

    mlrun = mlflow_client(env).get_run(props["mlflow_run_id"])
    for name in ("val_loss", "val_accuracy", "val_auc", "train_loss", "train_accuracy"):
        assert mlrun.data.metrics[f"final_{name}"] == pytest.approx(props[name]), name
    assert mlrun.data.tags["jfx.metrics_epoch"] == str(best)
    assert run.properties["final_metrics"] == {k: props[k] for k in run.properties["final_metrics"]}


def test_editing_the_module_file_misses_the_cache(env):
    module = write_module(env["base"] / "model_cache.py")
    pipeline = lambda: trainer_pipeline(env, "trainer-cache", module_file=str(module),  # noqa: E731
                                        train_args={"num_epochs": 1})
    first = RUNNER.run(pipeline())
    assert first.nodes["Trainer"].state == "complete", first.nodes["Trainer"].error
    again = RUNNER.run(pipeline())
    assert again.nodes["Trainer"].state == "cached"
    write_module(module, body="x = 1  # edited")
    edited = RUNNER.run(pipeline())
    assert edited.nodes["Trainer"].state == "complete"
    assert "changed external input" in edited.nodes["Trainer"].cache_miss_reason


# ------------------------------------------------------------------------ failures


@pytest.mark.parametrize("case", ["missing", "raises", "no_export", "import_error", "no_function"])
def test_a_broken_run_fn_fails_the_node_naming_the_module_and_publishes_nothing(env, case):
    module = env["base"] / f"model_{case}.py"
    if case == "raises":
        write_module(module, body="raise ValueError('bad hyperparameters')")
    elif case == "no_export":
        write_module(module, export="pass")
    elif case == "import_error":
        module.write_text("import no_such_package_xyz\n")
    elif case == "no_function":
        module.write_text("def train(ctx):\n    pass\n")
    name = f"trainer-{case.replace('_', '-')}"
    result = RUNNER.run(trainer_pipeline(env, name, module_file=str(module), train_args={"num_epochs": 1}))
    outcome = result.nodes["Trainer"]
    assert result.state == "FAILED" and outcome.state == "failed"
    assert str(module) in outcome.error
    expected = {"missing": "cannot be read", "raises": "ValueError: bad hyperparameters",
                "no_export": "without exporting a model", "import_error": "No module named",
                "no_function": "defines no function 'run_fn'"}[case]
    assert expected in outcome.error
    store = MetadataStore(env["url"])
    [execution] = [e for e in store.get_executions(node_id="Trainer") if e.id == outcome.execution_id]
    assert execution.state == ExecutionState.FAILED
    assert not outcome.outputs
    trainer_dir = Path(env["root"]) / name / "Trainer"
    assert not [p for p in trainer_dir.rglob("*") if p.is_file()] if trainer_dir.exists() else True
    if case in ("raises", "no_export"):  # the MLflow run exists, marked FAILED, with the error
        client = mlflow_client(env)
        exp = client.get_experiment_by_name(name)
        [run] = client.search_runs([exp.experiment_id])
        assert run.info.status == "FAILED" and str(module) in run.data.tags["jfx.error"]
        assert run.data.tags["jfx.execution_id"] == str(outcome.execution_id)


def test_arguments_are_checked():
    assert TrainArgs.from_dict({"splits": "train", "num_steps": 5}) == TrainArgs(("train",), None, 5)
    assert EvalArgs.from_dict({"splits": ["a", "b"]}).splits == ("a", "b")
    with pytest.raises(InvalidArgumentError, match=r"unknown keys \['epochs'\].*custom_config"):
        TrainArgs.from_dict({"epochs": 3})
    with pytest.raises(InvalidArgumentError, match="positive int"):
        TrainArgs.from_dict({"num_epochs": 0})
    with pytest.raises(InvalidArgumentError, match="module_file"):
        FunctionRef.parse(None, None, default="run_fn", param="run_fn")
    with pytest.raises(InvalidArgumentError, match="function name"):
        FunctionRef.parse("m.py", "pkg.mod:fn", default="run_fn", param="run_fn")
    ref = FunctionRef.parse(None, "some/file.py:train", default="run_fn", param="run_fn")
    assert ref.is_file and ref.function == "train" and ref.module.endswith("some/file.py")
    ref = FunctionRef.parse(None, "json:dumps", default="run_fn", param="run_fn")
    assert not ref.is_file and ref.load() is json.dumps and ref.source_path().name == "__init__.py"


def test_a_missing_split_is_named(env):
    module = write_module(env["base"] / "model_split.py")
    result = RUNNER.run(trainer_pipeline(env, "trainer-split", run_fn=f"{module}:run_fn",
                                         eval_args={"splits": ["test"]}))
    assert "eval_args names splits ['test'], but the examples have splits ['train', 'eval']" in \
        result.nodes["Trainer"].error


# ---------------------------------------------------------------- hyperparameters


@component
def fixed_hyperparameters(hyperparameters: Output[HyperParameters], learning_rate: Parameter[float] = 0.1):
    hyperparameters.write_json({"learning_rate": learning_rate}, "hyperparameters.json")


def test_hyperparameters_reach_run_fn_and_mlflow(env):
    module = write_module(env["base"] / "model_hp.py",
                          body="assert ctx.hyperparameters == {'learning_rate': 0.02}, ctx.hyperparameters")
    hp = fixed_hyperparameters(learning_rate=0.02)
    examples = ExampleGen(input_base=env["data"], splits={"train": 3, "eval": 1})
    trainer = Trainer(examples=examples.outputs["examples"], hyperparameters=hp.outputs["hyperparameters"],
                      module_file=str(module), train_args={"num_steps": 3})
    result = RUNNER.run(Pipeline("trainer-hp", components=[hp, examples, trainer], pipeline_root=env["root"],
                                 metadata_url=env["url"]))
    assert result.nodes["Trainer"].state == "complete", result.nodes["Trainer"].error
    [model] = result.nodes["Trainer"].outputs["model"]
    run = mlflow_client(env).get_run(model.properties["mlflow_run_id"])
    assert run.data.params["learning_rate"] == "0.02"
    assert run.data.tags["jfx.hyperparameters_artifact_id"] == str(result.nodes["fixed_hyperparameters"]
                                                                   .outputs["hyperparameters"][0].id)


def test_read_hyperparameters_rejects_a_non_object(tmp_path):
    (tmp_path / "hyperparameters.json").write_text("[1, 2]")
    with pytest.raises(Exception, match="expected a JSON object"):
        read_hyperparameters(tmp_path)


# ----------------------------------------------------------- outside a pipeline, fresh process


def test_the_plain_function_runs_outside_a_pipeline(env, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{Path(env['root']).resolve() / 'mlflow.sqlite'}")
    from jfx.types import Examples, ModelRun

    [examples] = trained.nodes["ExampleGen"].outputs["examples"]
    module = write_module(env["base"] / "model_plain.py")
    model, run = Model(tmp_path / "model"), ModelRun(tmp_path / "run")
    Path(model.uri).mkdir()
    Path(run.uri).mkdir()
    Trainer.fn(examples=Examples(examples.uri, properties=examples.properties), model=model, model_run=run,
               module_file=str(module), train_args={"num_steps": 2})
    mlrun = mlflow_client(env).get_run(model.properties["mlflow_run_id"])
    assert mlrun.data.tags["jfx.run_fn"] == f"run_fn in {module}"
    assert "jfx.execution_id" not in mlrun.data.tags
    assert mlflow_client(env).get_experiment(mlrun.info.experiment_id).name == "jfx"


# ------------------------------------------------- the penguin example, with Transform


@pytest.fixture(scope="module")
def penguin(env):
    """ExampleGen → StatisticsGen → SchemaGen → Transform → Trainer on the real penguins CSV."""
    import jfx.examples.penguin.pipeline as penguin_pipeline
    from jfx.components import SchemaGen, StatisticsGen
    from jfx.components._transform import Transform

    folder = Path(penguin_pipeline.__file__).parent
    examples = ExampleGen(input_base=penguin_pipeline.penguins_dir(), input_pattern="penguins.csv",
                          splits={"train": 2, "eval": 1})
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    transform = Transform(examples=examples.outputs["examples"], schema=schema.outputs["schema"],
                          module_file=str(folder / "preprocessing.py"))
    trainer = Trainer(examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"], schema=schema.outputs["schema"],
                      module_file=str(folder / "model.py"))
    result = RUNNER.run(Pipeline("penguin-trainer", components=[examples, statistics, schema, transform, trainer],
                                 pipeline_root=env["root"], metadata_url=env["url"]))
    assert result.state == "COMPLETE", {k: o.error for k, o in result.nodes.items()}
    return result


def test_penguin_model_reaches_95_percent_eval_accuracy(penguin):
    [model] = penguin.nodes["Trainer"].outputs["model"]
    assert model.properties["val_accuracy"] >= 0.95
    assert model.properties["with_transform"] is True
    assert sorted(model.properties["inputs"]) == sorted(
        ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"])


def test_the_penguin_model_predicts_raw_rows_in_a_fresh_process(penguin):
    import csv

    import palmerpenguins

    [model] = penguin.nodes["Trainer"].outputs["model"]
    with open(Path(palmerpenguins.__file__).parent / "data" / "penguins.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    raw = [{**{k: (float(r[k]) if r[k] not in ("", "NA") else None) for k in numeric},
            "island": r["island"], "sex": r["sex"] if r["sex"] not in ("", "NA") else None} for r in rows]
    species = [r["species"] for r in rows]
    code = textwrap.dedent("""\
        import json, sys
        from jfx.core import load
        rows = json.load(sys.stdin)
        print(json.dumps(load(sys.argv[1])(rows)["class_ids"].tolist()))
    """)
    out = subprocess.run([sys.executable, "-c", code, model.uri], check=False, input=json.dumps(raw),
                         capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    [graph] = penguin.nodes["Transform"].outputs["transform_graph"]
    vocabulary = json.loads((Path(graph.uri) / "transform.json").read_text())["inputs"]["species"]["encoder"]["vocabulary"]
    predicted = [vocabulary[i] for i in ids]
    assert np.mean([p == s for p, s in zip(predicted, species, strict=True)]) >= 0.95  # all 344 rows, train and eval


def test_component_errors_are_component_errors(tmp_path):
    ref = FunctionRef.parse(str(tmp_path / "nope.py"), None, default="run_fn", param="run_fn")
    with pytest.raises(ComponentError, match=r"nope.py cannot be read"):
        ref.fingerprint()


# ------------------------------------------------------------------------ workers


def test_workers_train_one_model_over_two_processes(env):
    module = write_module(env["base"] / "model_workers.py",
                          body="assert ctx.num_processes == 2, ctx.num_processes")
    result = RUNNER.run(trainer_pipeline(env, "trainer-workers", module_file=str(module),
                                         train_args={"num_epochs": 2}, workers=2))
    outcome = result.nodes["Trainer"]
    assert result.state == "COMPLETE", outcome.traceback
    model = outcome.outputs["model"][0]
    run = outcome.outputs["model_run"][0]
    assert run.properties["workers"] == 2 and run.properties["epochs"] == 2
    assert 0.0 <= model.properties["val_accuracy"] <= 1.0 and model.properties["with_transform"] is False
    from jfx.core import load

    assert set(load(model.uri).outputs) >= {"probabilities"}
    logs = sorted(p.name for p in Path(run.uri).glob("worker-*.log"))
    assert logs == ["worker-0.log", "worker-1.log"]
    # what run_fn logged in process 0 reached the MLflow run
    client = mlflow_client(env)
    mlrun = client.get_run(model.properties["mlflow_run_id"])
    assert mlrun.data.metrics["custom"] == 1.5 and mlrun.data.params["hidden"] == "8"


def test_a_crashed_worker_fails_the_node_and_leaves_no_process(env):
    pids = env["base"] / "worker-pids"
    pids.mkdir(exist_ok=True)
    body = (f"import os; open(f'{pids}/{{ctx.process_id}}', 'w').write(str(os.getpid()))\n"
            "    if ctx.process_id == 1: raise ValueError('worker one cannot go on')")
    module = write_module(env["base"] / "model_crash.py", body=body)
    result = RUNNER.run(trainer_pipeline(env, "trainer-crash", module_file=str(module),
                                         train_args={"num_epochs": 50}, workers=2))
    outcome = result.nodes["Trainer"]
    assert result.state == "FAILED" and outcome.state == "failed"
    assert "Trainer worker 1 of 2 failed" in outcome.error and "worker one cannot go on" in outcome.error
    assert str(module) in outcome.error
    for f in pids.iterdir():  # both workers are gone (process 0 was waiting for process 1)
        with pytest.raises(ProcessLookupError):
            os.kill(int(f.read_text()), 0)


# A run_fn whose training would take minutes (over 100,000 steps); Ctrl-C comes after its fifth step.
INTERRUPTED = textwrap.dedent('''\
    import _thread
    from pathlib import Path

    import optax
    from flax import nnx
    from jfx.core import Callback, Categorical, DNNClassifier, Numeric, fit

    ENCODERS = {"c": {"vocabulary": ["a", "b", "c"], "oov_buckets": 1}}


    class CtrlCAtStep5(Callback):
        def __init__(self, log):
            self.log = log

        def on_step_end(self, step):
            with open(self.log, "a") as f:
                f.write(f"{step}\\n")
            if step == 5:
                _thread.interrupt_main()  # as Ctrl-C: KeyboardInterrupt in the main thread


    def run_fn(ctx):
        train = ctx.train_dataset(batch_size=4, label="y", encoders=ENCODERS)
        model = DNNClassifier({"x1": Numeric(), "x2": Numeric(), "c": Categorical(4)}, hidden_units=(8,), n_classes=2,
                              rngs=nnx.Rngs(0))
        fit(model, optax.adam(0.01), "sparse_categorical_crossentropy", train, epochs=2_000, progress=False,
            callbacks=[CtrlCAtStep5(ctx.custom_config["log"])])
        ctx.export_model(model, train)
''')


def test_ctrl_c_stops_training_at_the_next_step_and_cancels_the_trainer(env):
    import signal
    import time

    from jfx.errors import RunInterruptedError

    module = env["base"] / "model_interrupted.py"
    module.write_text(INTERRUPTED, encoding="utf-8")
    log = env["base"] / "steps.log"
    pipeline = trainer_pipeline(env, "trainer-interrupted", module_file=str(module), custom_config={"log": str(log)})
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # SIGINT as Ctrl-C, whatever was inherited
    try:
        with pytest.raises(RunInterruptedError):
            RUNNER.run(pipeline)
    finally:
        signal.signal(signal.SIGINT, previous)
    steps = [int(s) for s in log.read_text().split()]
    time.sleep(0.5)  # training still going would have logged more steps by now
    assert steps == [int(s) for s in log.read_text().split()]
    # stopped at its next step once the runner saw Ctrl-C, not at the end of training
    assert steps[:5] == [1, 2, 3, 4, 5] and len(steps) < 10_000, len(steps)
    with MetadataStore(env["url"]) as store:
        [execution] = [e for e in store.get_executions(node_id="Trainer")
                       if e.properties.get("pipeline") == "trainer-interrupted"]
        assert execution.state == ExecutionState.CANCELLED
    trainer_dir = Path(env["root"]) / "trainer-interrupted" / "Trainer"
    assert not trainer_dir.exists() or not [p for p in trainer_dir.rglob("*") if p.is_file()]
