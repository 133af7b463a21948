"""The MLflow tracking process: one MLflow run driven over a pipe (see :class:`RemoteRun`).

Importing MLflow (≈1 s of pure Python) and creating a fresh SQLite tracking store (its
whole migration history, 1–3 s) would otherwise compete with training for the trainer
process's interpreter lock. This module runs as ``python -m jfx.components._mlflow_worker``:
it reads one JSON line with the run to start (tracking URI, experiment, run name, tags,
artifact location; on stdin, so a password in the URI never shows in ``ps``), starts the
run and answers ``{"ok": true, "run_id": ..., "experiment_id": ...}``, then executes one
JSON command per line until stdin closes:

    {"op": "log_batch", "params": [[k, v], ...], "metrics": [[k, v, ts_ms, step], ...], "tags": [[k, v], ...]}
    {"op": "log_artifacts", "local_dir": "...", "artifact_path": "..." | null}
    {"op": "terminate", "status": "FINISHED" | "FAILED"}

Each command is answered by one line, ``{"ok": true}`` or ``{"ok": false, "kind": ...,
"error": ...}`` with ``kind`` ``"mlflow"`` (MLflow refused the request), ``"import"``
(MLflow is not installed) or ``"error"`` (anything else). The protocol uses a private
copy of the original stdout; anything printed by libraries goes to stderr.

:class:`RemoteRun` (in :mod:`jfx.components._mlflow`) is the caller's side.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from typing import Any, TextIO


def _error(err: BaseException) -> dict[str, Any]:
    kind = "error"
    if isinstance(err, ImportError):
        kind = "import"
    else:
        try:
            from mlflow.exceptions import MlflowException
        except ImportError:
            pass
        else:
            if isinstance(err, MlflowException):
                return {"ok": False, "kind": "mlflow", "error": err.message}
    return {"ok": False, "kind": kind, "error": f"{type(err).__name__}: {err}"}


def _start(config: dict[str, Any]) -> tuple[Any, str, str]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    from jfx.components._mlflow import _experiment_id, store_setup_lock

    # helpers of concurrent runs may be the first to open a new store at the same moment
    with store_setup_lock(config["tracking_uri"]):
        client = MlflowClient(tracking_uri=config["tracking_uri"])
        experiment_id = _experiment_id(client, config["experiment"], config.get("artifact_location"))
    run = client.create_run(experiment_id, run_name=config.get("run_name"), tags=config.get("tags") or {})
    return client, run.info.run_id, experiment_id


def _execute(client: Any, run_id: str, cmd: dict[str, Any]) -> None:
    op = cmd.get("op")
    if op == "log_batch":
        from mlflow.entities import Metric, Param, RunTag

        client.log_batch(run_id,
                         metrics=[Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in cmd.get("metrics", [])],
                         params=[Param(k, v) for k, v in cmd.get("params", [])],
                         tags=[RunTag(k, v) for k, v in cmd.get("tags", [])])
    elif op == "log_artifacts":
        client.log_artifacts(run_id, cmd["local_dir"], cmd.get("artifact_path"))
    elif op == "log_jfx_model":
        from jfx.components._mlflow_model import log_jfx_model

        log_jfx_model(client, run_id, cmd["model_dir"], cmd.get("artifact_path") or "model")
    elif op == "terminate":
        client.set_terminated(run_id, cmd.get("status", "FINISHED"))
    else:
        raise ValueError(f"unknown command {op!r}")


def _import_quietly(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the command that needs it reports the error
        pass


def serve(commands: TextIO, replies: TextIO) -> int:
    """Starts the run described by the first line of ``commands``, then executes the rest."""

    def reply(doc: dict[str, Any]) -> None:
        replies.write(json.dumps(doc) + "\n")
        replies.flush()

    line = commands.readline()
    if not line:
        return 0
    try:
        client, run_id, experiment_id = _start(json.loads(line))
    except BaseException as err:  # noqa: BLE001 - reported to the caller, which raises it
        reply(_error(err))
        return 1
    reply({"ok": True, "run_id": run_id, "experiment_id": experiment_id})
    # the run's model is logged as an MLflow Model when training ends; import what that
    # needs (mlflow.pyfunc, pandas: ≈1–2 s) now, while the caller trains
    threading.Thread(target=_import_quietly, args=("jfx.components._mlflow_model",), daemon=True).start()
    for line in commands:
        if not line.strip():
            continue
        try:
            _execute(client, run_id, json.loads(line))
        except Exception as err:  # noqa: BLE001 - reported to the caller, which raises it
            reply(_error(err))
        else:
            reply({"ok": True})
    return 0


def main() -> int:
    # the protocol owns the original stdout; prints from libraries go to stderr instead
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with replies:
        return serve(sys.stdin, replies)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # every command was carried out and answered before stdin closed; skip tearing down
    # MLflow's modules (≈0.5 s the caller would wait for)
    os._exit(code)
