"""MLflow tracking from a helper process (RemoteRun): what it logs, its errors, and that the
caller never imports MLflow."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from jfx.components._mlflow import RemoteRun, default_artifact_location, default_tracking_uri
from jfx.errors import ComponentError, InvalidArgumentError


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return root, default_tracking_uri(root)


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_a_remote_run_logs_params_metrics_tags_and_artifacts(store, tmp_path):
    root, uri = store
    (tmp_path / "model.txt").write_text("weights")
    run = RemoteRun(uri, "exp", run_name="Trainer-7", tags={"jfx.node_id": "Trainer", "none": None},
                    artifact_location=default_artifact_location(root, "exp", uri))
    run.log_params({"lr": 0.1, "train_args": {"num_epochs": 3}})
    run.log_metrics({"loss": 0.5}, step=0)
    run.log_metrics({"loss": 0.25}, step=1)
    run.set_tags({"jfx.extra": "yes"})
    run.log_artifacts(tmp_path, "model")
    run.finish()
    assert run.finished and run._proc is None  # the process ended with the run

    got = client(uri).get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "Trainer-7"
    assert got.info.experiment_id == run.experiment_id
    assert got.data.params == {"lr": "0.1", "train_args.num_epochs": "3"}
    assert got.data.tags["jfx.node_id"] == "Trainer" and got.data.tags["jfx.extra"] == "yes"
    assert "none" not in got.data.tags
    history = client(uri).get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25)]
    assert [f.path for f in client(uri).list_artifacts(run.run_id, "model")] == ["model/model.txt"]
    run.finish(failed=True)  # a second finish changes nothing
    assert client(uri).get_run(run.run_id).info.status == "FINISHED"


def test_values_mlflow_refuses_are_an_invalid_argument_and_the_run_can_fail(store):
    _, uri = store
    run = RemoteRun(uri, "exp")
    try:
        run.log_params({"lr": 0.1})
        with pytest.raises(InvalidArgumentError, match=f"MLflow run {run.run_id} refused the values"):
            run.log_params({"lr": 0.2})  # a param cannot change value
        with pytest.raises(InvalidArgumentError, match="metric 'loss' must be a number"):
            run.log_metrics({"loss": "high"})
    finally:
        run.finish(failed=True)
    assert client(uri).get_run(run.run_id).info.status == "FAILED"


def test_a_store_that_cannot_be_opened_is_reported_when_the_run_is_used(tmp_path):
    run = RemoteRun("bogus-scheme://nowhere", "exp")
    with pytest.raises(ComponentError, match="cannot start an MLflow run in experiment 'exp' at bogus-scheme://nowhere"):
        run.log_params({"lr": 0.1})
    with pytest.raises(ComponentError, match="cannot start an MLflow run"):
        _ = run.run_id
    run.set_tags({"a": "b"})  # nothing to tag or end: no error
    run.finish(failed=True)
    assert run._proc is None


def test_the_caller_never_imports_mlflow(store):
    _, uri = store
    script = textwrap.dedent(f"""
        import sys
        from jfx.components._mlflow import RemoteRun
        run = RemoteRun({uri!r}, "exp")
        run.log_metrics({{"accuracy": 0.9}}, step=3)
        run.finish()
        assert "mlflow" not in sys.modules, sorted(m for m in sys.modules if m.startswith("mlflow"))
        print(run.run_id)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    assert client(uri).get_run(run_id).data.metrics == {"accuracy": 0.9}
