"""Experiment tracking on MLflow: where runs go, and a small thread-safe run handle.

Every Trainer execution is one MLflow run. By default runs are tracked in
``<pipeline_root>/mlflow.sqlite`` with their artifacts under ``<pipeline_root>/mlartifacts``
(nothing to start, nothing to configure); ``$MLFLOW_TRACKING_URI`` sends them elsewhere
(another database, or a tracking server). The experiment is the pipeline's name.

MLflow is imported only when a run starts (``import mlflow`` costs about 2 s), and
MLflow's telemetry is switched off for every process jfx starts unless the user set
``MLFLOW_DISABLE_TELEMETRY`` themselves. Runs are driven through ``MlflowClient`` with
explicit run ids, never through MLflow's thread-local "active run", so nodes running on
threads of one process never mix their runs.

Example:
    >>> run = start_run(default_tracking_uri("/tmp/root"), "penguin",
    ...                 artifact_location=default_artifact_location("/tmp/root", "penguin"),
    ...                 tags={"jfx.node_id": "Trainer"})        # doctest: +SKIP
    >>> run.log_params({"learning_rate": 0.01}); run.log_metrics({"loss": 0.3}, step=0)  # doctest: +SKIP
    >>> run.finish()                                            # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jfx.errors import ComponentError, InvalidArgumentError

__all__ = [
    "ARTIFACTS_DIR",
    "TRACKING_DB",
    "PendingRun",
    "TrackedRun",
    "default_artifact_location",
    "default_tracking_uri",
    "flatten_params",
    "import_mlflow",
    "redact_uri",
    "start_run",
    "start_run_in_background",
]

TRACKING_DB = "mlflow.sqlite"
ARTIFACTS_DIR = "mlartifacts"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"

_MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value
_BATCH = 100  # MLflow's limit on params or tags per log_batch call
_KEY_BAD = re.compile(r"[^\w./\- :]")
_SETUP_LOCK = threading.Lock()  # creating a store's schema or an experiment: once at a time per process

_INSTALL_HELP = (
    "the Trainer tracks every run with MLflow, which is not installed. Install it with "
    "pip install 'mlflow-skinny>=3.0,<4' (or the full 'mlflow' package)"
)


def import_mlflow() -> Any:
    """Imports ``mlflow`` with telemetry off (unless the user set ``MLFLOW_DISABLE_TELEMETRY``).

    Raises:
        ComponentError: MLflow is not installed (the message says what to install).
    """
    os.environ.setdefault(TELEMETRY_ENV, "true")
    try:
        import mlflow
    except ImportError as err:
        raise ComponentError(_INSTALL_HELP) from err
    return mlflow


def default_tracking_uri(pipeline_root: str | Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<pipeline_root>/mlflow.sqlite``."""
    raw = os.environ.get(TRACKING_ENV, "").strip()
    if raw:
        return raw
    root = Path(pipeline_root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / TRACKING_DB}"


def default_artifact_location(pipeline_root: str | Path, experiment: str, tracking_uri: str | None = None) -> str | None:
    """Where a new experiment keeps run artifacts: ``<pipeline_root>/mlartifacts/<experiment>``
    for a database-backed store; ``None`` (the server's choice) for a tracking server."""
    scheme = urlsplit(tracking_uri).scheme if tracking_uri else "sqlite"
    if scheme in ("http", "https", "databricks"):
        return None
    safe = re.sub(r"[^\w.\-]", "_", experiment) or "default"
    return (Path(pipeline_root).expanduser().resolve() / ARTIFACTS_DIR / safe).as_uri()


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (it is stored in artifact properties)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _key(name: Any) -> str:
    key = _KEY_BAD.sub("_", str(name))[:250]
    if not key:
        raise InvalidArgumentError(f"an MLflow key cannot be empty (got {name!r})")
    return key


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts flattened to ``"a.b"`` keys, values as strings (lists as JSON-ish text).

    Example:
        >>> flatten_params({"lr": 0.1, "train_args": {"num_epochs": 3}})
        {'lr': '0.1', 'train_args.num_epochs': '3'}
    """
    out: dict[str, str] = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, f"{name}."))
        else:
            text = str(v)
            out[_key(name)] = text if len(text) <= _MAX_PARAM_VALUE else text[: _MAX_PARAM_VALUE - 3] + "..."
    return out


def _metric_value(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"metric {name!r} must be a number, got {value!r}") from None


class TrackedRun:
    """One MLflow run, driven by run id through ``MlflowClient`` (safe to share between threads).

    Attributes:
        run_id, experiment_id: MLflow's ids.
        tracking_uri: where the run is tracked (with any password redacted).
    """

    def __init__(self, client: Any, run_id: str, experiment_id: str, tracking_uri: str) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = redact_uri(tracking_uri)
        self.finished = False

    def _batch(self, **kwargs: Any) -> None:
        from mlflow.exceptions import MlflowException

        try:
            with self._lock:
                self._client.log_batch(self.run_id, **kwargs)
        except MlflowException as err:
            raise InvalidArgumentError(f"MLflow run {self.run_id} refused the values: {err.message}") from err

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """Logs parameters (nested dicts flattened to dotted keys). A key once logged
        cannot be logged again with a different value (MLflow's rule)."""
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten_params(params, prefix).items()]
        for i in range(0, len(items), _BATCH):
            self._batch(params=items[i:i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Logs metric values at ``step`` (default 0)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(_key(k), _metric_value(k, v), now, int(step or 0)) for k, v in metrics.items()]
        for i in range(0, len(items), _BATCH):
            self._batch(metrics=items[i:i + _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(_key(k), str(v)[:5000]) for k, v in tags.items() if v is not None]
        for i in range(0, len(items), _BATCH):
            self._batch(tags=items[i:i + _BATCH])

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copies a directory's files into the run's artifacts (under ``artifact_path``)."""
        with self._lock:
            self._client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def finish(self, failed: bool = False) -> None:
        """Ends the run as FINISHED (or FAILED); later calls do nothing."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


_STORE_INIT = """\
import sys
from mlflow.tracking import MlflowClient
MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)
"""
_PREPARING: dict[str, subprocess.Popen[bytes]] = {}  # sqlite URI -> the process creating its schema


def _sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.startswith("sqlite:///:memory:"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path else None


def prepare_store_in_background(tracking_uri: str) -> None:
    """Creates a new SQLite tracking store's schema in a subprocess, on another core.

    MLflow builds a fresh SQLite store by running its whole migration history (seconds
    of Python); a caller that will start a run soon (the Trainer, before it trains)
    calls this first and :func:`start_run` waits for the process. It does nothing for
    other stores or when the file exists; any failure is left to :func:`start_run`,
    which creates the schema itself (MLflow locks the creation across processes).
    """
    path = _sqlite_path(tracking_uri)
    if path is None or path.exists():
        return
    with _SETUP_LOCK:
        if tracking_uri in _PREPARING:
            return
        env = dict(os.environ)
        env.setdefault(TELEMETRY_ENV, "true")
        try:
            _PREPARING[tracking_uri] = subprocess.Popen(
                [sys.executable, "-c", _STORE_INIT, tracking_uri], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        except OSError:
            pass


def _wait_for_store(tracking_uri: str) -> None:
    proc = _PREPARING.pop(tracking_uri, None)
    if proc is not None:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_run(tracking_uri: str, experiment: str, *, run_name: str | None = None,
              tags: Mapping[str, Any] | None = None, artifact_location: str | None = None) -> TrackedRun:
    """Starts an MLflow run in ``experiment`` (created when missing).

    Args:
        tracking_uri: an MLflow tracking URI (``sqlite:///...``, ``http://...``).
        experiment: the experiment name.
        run_name: the run's display name.
        tags: tags set on the run (``None`` values are left out).
        artifact_location: for a new experiment, where its artifacts go.

    Raises:
        ComponentError: MLflow is not installed, or the store cannot be opened.
    """
    import_mlflow()
    from mlflow.tracking import MlflowClient

    _wait_for_store(tracking_uri)
    try:
        with _SETUP_LOCK:  # the first client on a new SQLite file creates its schema
            client = MlflowClient(tracking_uri=tracking_uri)
            experiment_id = _experiment_id(client, experiment, artifact_location)
        run = client.create_run(experiment_id, run_name=run_name,
                                tags={str(k): str(v) for k, v in (tags or {}).items() if v is not None})
    except ComponentError:
        raise
    except Exception as err:
        raise ComponentError(
            f"cannot start an MLflow run in experiment {experiment!r} at {redact_uri(tracking_uri)}: "
            f"{type(err).__name__}: {err}. Set MLFLOW_TRACKING_URI to a reachable store, or unset it to "
            f"track into <pipeline_root>/{TRACKING_DB}"
        ) from err
    return TrackedRun(client, run.info.run_id, experiment_id, tracking_uri)


class PendingRun:
    """A :class:`TrackedRun` being started on a background thread (:func:`start_run_in_background`).

    Importing MLflow and creating a fresh tracking store take seconds; this lets the
    caller (the Trainer) train meanwhile. Every method and the ``run_id`` /
    ``experiment_id`` attributes wait for the run to exist, then act on it; an error
    starting the run is raised there. :meth:`finish` and :meth:`set_tags` do nothing
    when the run could not be started (there is nothing to end or tag).
    """

    def __init__(self, tracking_uri: str, experiment: str, **kwargs: Any) -> None:
        self.tracking_uri = redact_uri(tracking_uri)
        self._future: Future[TrackedRun] = Future()

        def target() -> None:
            try:
                self._future.set_result(start_run(tracking_uri, experiment, **kwargs))
            except BaseException as err:  # noqa: BLE001 - re-raised by result()
                self._future.set_exception(err)

        threading.Thread(target=target, name="jfx-mlflow-start", daemon=True).start()

    def result(self) -> TrackedRun:
        """The started run (waits for it).

        Raises:
            ComponentError: MLflow is not installed, or the store cannot be opened.
        """
        return self._future.result()

    def _started(self) -> TrackedRun | None:
        try:
            return self._future.result()
        except Exception:  # noqa: BLE001 - reported by result()
            return None

    @property
    def run_id(self) -> str:
        return self.result().run_id

    @property
    def experiment_id(self) -> str:
        return self.result().experiment_id

    @property
    def finished(self) -> bool:
        run = self._started()
        return run is None or run.finished

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        self.result().log_params(params, prefix)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.result().log_metrics(metrics, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        run = self._started()
        if run is not None:
            run.set_tags(tags)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.result().log_artifacts(local_dir, artifact_path)

    def finish(self, failed: bool = False) -> None:
        run = self._started()
        if run is not None:
            run.finish(failed)


def start_run_in_background(tracking_uri: str, experiment: str, *, run_name: str | None = None,
                            tags: Mapping[str, Any] | None = None,
                            artifact_location: str | None = None) -> PendingRun:
    """:func:`start_run` on a background thread; the returned :class:`PendingRun` waits
    for it on first use."""
    return PendingRun(tracking_uri, experiment, run_name=run_name, tags=dict(tags or {}),
                      artifact_location=artifact_location)


def finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are finite numbers (artifact properties must be strict JSON)."""
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out
