"""The MLflow tracking store on a fresh pipeline root, created by several processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jfx
from jfx.components._mlflow import RemoteRun, default_artifact_location, default_tracking_uri


def test_helper_processes_starting_runs_at_once_on_a_fresh_root_all_succeed(tmp_path):
    # the Trainers of concurrent first runs: one helper process each, one new store
    root = tmp_path / "root"
    uri = default_tracking_uri(root)
    runs = [RemoteRun(uri, "penguin", run_name=f"Trainer-{i}", artifact_location=default_artifact_location(root, "penguin"))
            for i in range(3)]
    errors = []
    for i, run in enumerate(runs):
        try:
            run.log_metrics({"loss": 1.0 / (i + 1)}, step=0)
            run.finish()
        except Exception as err:  # noqa: BLE001 - all of them are reported below
            errors.append(f"{type(err).__name__}: {err}")
            run.close()
    assert errors == []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([runs[0].experiment_id])
    assert sorted(r.info.run_name for r in found) == ["Trainer-0", "Trainer-1", "Trainer-2"]
    assert {r.info.status for r in found} == {"FINISHED"}


IN_PROCESS = textwrap.dedent('''
    import sys
    from jfx.components._mlflow import start_run
    run = start_run(sys.argv[1], "penguin", run_name=sys.argv[2])
    run.log_metrics({"loss": 0.5}, step=0)
    run.finish()
''')


def test_processes_tracking_in_process_at_once_on_a_fresh_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.sqlite'}"
    env = {**os.environ, "PYTHONPATH": str(Path(jfx.__file__).parent.parent), "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, "-c", IN_PROCESS, uri, f"run-{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [exp] = [e for e in client.search_experiments() if e.name == "penguin"]
    assert sorted(r.info.run_name for r in client.search_runs([exp.experiment_id])) == ["run-0", "run-1"]
