"""Experiment tracking on MLflow: where runs go, and a small thread-safe run handle.

Every Trainer execution is one MLflow run. By default runs are tracked in
``<pipeline_root>/mlflow.sqlite`` with their artifacts under ``<pipeline_root>/mlartifacts``
(nothing to start, nothing to configure); ``$MLFLOW_TRACKING_URI`` sends them elsewhere
(another database, or a tracking server). The experiment is the pipeline's name.

With a pipeline root on an object store (``s3://bucket/root``, ``gs://...``) the run's
artifacts still go beside the pipeline's, under ``<root>/mlartifacts/<experiment>`` on
that store (MLflow's S3 artifact repository, through boto3: ``AWS_ENDPOINT_URL`` is
passed on as ``MLFLOW_S3_ENDPOINT_URL`` when only the former is set). The tracking
database cannot live on a store, so it defaults to a local SQLite file under
``$JFX_HOME/mlflow/<scheme>/<bucket>/<prefix>/mlflow.sqlite`` (one per root); set
``MLFLOW_TRACKING_URI`` to share runs between machines.

MLflow is imported only when a run starts (``import mlflow`` costs about 1–2 s, and a
fresh SQLite store's schema 1–3 s more). The Trainer drives its run from a helper
process (:class:`RemoteRun`), so that work runs on another core while the model trains
and the trainer's process never imports MLflow; :func:`start_run` drives one in-process
(:class:`TrackedRun`). MLflow's telemetry is switched off for every process jfx starts unless the user set
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

import contextlib
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jfx.errors import ComponentError, InvalidArgumentError

__all__ = [
    "ARTIFACTS_DIR",
    "TRACKING_DB",
    "RemoteRun",
    "TrackedRun",
    "artifact_env",
    "default_artifact_location",
    "default_tracking_uri",
    "flatten_params",
    "import_mlflow",
    "local_tracking_dir",
    "pass_on_s3_endpoint",
    "redact_uri",
    "start_run",
    "start_run_in_subprocess",
    "store_setup_lock",
]

TRACKING_DB = "mlflow.sqlite"
ARTIFACTS_DIR = "mlartifacts"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"

_MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value
_BATCH = 100  # MLflow's limit on params or tags per log_batch call
_KEY_BAD = re.compile(r"[^\w./\- :]")
_SETUP_LOCK = threading.RLock()  # creating a store's schema or an experiment: once at a time per process

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
    pass_on_s3_endpoint()
    try:
        import mlflow
    except ImportError as err:
        raise ComponentError(_INSTALL_HELP) from err
    return mlflow


def local_tracking_dir(pipeline_root: str | Path) -> Path:
    """The local folder of a pipeline root's default tracking database.

    The root itself for a local root; for an object-store root (where a SQLite file
    cannot live) ``$JFX_HOME/mlflow/<scheme>/<bucket>/<prefix>``.

    Example:
        >>> local_tracking_dir("s3://bucket/root").parts[-4:]
        ('mlflow', 's3', 'bucket', 'root')
    """
    from jfx import _storage as storage

    if not storage.is_remote(pipeline_root):
        return Path(pipeline_root).expanduser().resolve()
    from jfx._config import jfx_home

    scheme, rest = storage.check_uri(pipeline_root).split("://", 1)
    parts = [re.sub(r"[^\w.\-]", "_", p) for p in rest.split("/") if p and p not in (".", "..")]
    return jfx_home().joinpath("mlflow", scheme, *parts)


def default_tracking_uri(pipeline_root: str | Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<pipeline_root>/mlflow.sqlite``.

    For a pipeline root on an object store the database is local instead, under
    ``$JFX_HOME`` (see :func:`local_tracking_dir`): SQLite cannot live on a store.
    """
    raw = os.environ.get(TRACKING_ENV, "").strip()
    if raw:
        return raw
    root = local_tracking_dir(pipeline_root)
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / TRACKING_DB}"


def default_artifact_location(pipeline_root: str | Path, experiment: str, tracking_uri: str | None = None) -> str | None:
    """Where a new experiment keeps run artifacts: ``<pipeline_root>/mlartifacts/<experiment>``
    for a database-backed store; ``None`` (the server's choice) for a tracking server.

    On an object-store root that is a URI on the store (``s3://bucket/root/mlartifacts/<experiment>``).

    Example:
        >>> default_artifact_location("s3://bucket/root", "penguin pipeline")
        's3://bucket/root/mlartifacts/penguin_pipeline'
    """
    from jfx import _storage as storage

    scheme = urlsplit(tracking_uri).scheme if tracking_uri else "sqlite"
    if scheme in ("http", "https", "databricks"):
        return None
    safe = re.sub(r"[^\w.\-]", "_", experiment) or "default"
    if storage.is_remote(pipeline_root):
        return storage.join(pipeline_root, ARTIFACTS_DIR, safe)
    return (Path(pipeline_root).expanduser().resolve() / ARTIFACTS_DIR / safe).as_uri()


S3_ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"


def artifact_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``MLFLOW_S3_ENDPOINT_URL`` taken from ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL`` when only those are set (MLflow's S3 artifact repository reads its own).

    Example:
        >>> artifact_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})["MLFLOW_S3_ENDPOINT_URL"]
        'http://127.0.0.1:9000'
    """
    out = dict(env)
    endpoint = out.get("AWS_ENDPOINT_URL_S3") or out.get("AWS_ENDPOINT_URL")
    if endpoint and not out.get(S3_ENDPOINT_ENV):
        out[S3_ENDPOINT_ENV] = endpoint
    return out


_PASSED_ON: str | None = None  # the MLFLOW_S3_ENDPOINT_URL this process set itself


def pass_on_s3_endpoint() -> None:
    """In this process, :func:`artifact_env` applied to ``os.environ`` (for in-process runs).

    A value this process set earlier follows ``AWS_ENDPOINT_URL`` when that changes; one
    the user set is left alone.
    """
    global _PASSED_ON
    current = os.environ.get(S3_ENDPOINT_ENV)
    if current and current != _PASSED_ON:
        return  # the user's own
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        os.environ[S3_ENDPOINT_ENV] = _PASSED_ON = endpoint
    elif current:
        del os.environ[S3_ENDPOINT_ENV]
        _PASSED_ON = None


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

    def log_jfx_model(self, model_dir: str | Path, artifact_path: str = "model") -> None:
        """Logs a jfx model folder as an MLflow Model (``python_function`` flavor, signature,
        input example; see :mod:`jfx.components._mlflow_model`) under ``artifact_path``."""
        from jfx.components._mlflow_model import log_jfx_model

        with self._lock:
            log_jfx_model(self._client, self.run_id, model_dir, artifact_path)

    def finish(self, failed: bool = False) -> None:
        """Ends the run as FINISHED (or FAILED); later calls do nothing."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def _setup_lock_file(uri: str) -> Path | None:
    """The file whose lock guards the first opening of the store at ``uri`` (``None``: no file).

    A SQLite store's lock lies beside its database, so every process that sees the file
    sees the lock; another database's is per machine, in the temporary folder. A tracking
    server creates its own schema, and a file store has none.
    """
    scheme = urlsplit(uri).scheme.lower().split("+")[0]
    if scheme == "sqlite":
        import sqlalchemy as sa

        database = sa.engine.make_url(uri).database
        if not database or database == ":memory:":
            return None
        return Path(database).expanduser().resolve().with_name(Path(database).name + ".lock")
    if scheme in ("", "file", "http", "https", "databricks") or len(scheme) == 1:  # 1: a Windows drive letter
        return None
    return Path(tempfile.gettempdir()) / f"jfx-mlflow-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"


@contextlib.contextmanager
def store_setup_lock(*uris: str | None) -> Iterator[None]:
    """Held while a client first opens the stores at ``uris`` (and creates an experiment).

    Opening a new database-backed store creates its schema: MLflow runs its whole
    migration history. Two processes doing that at once on one empty database both
    migrate, and all but one fail (alembic errors), as do concurrent first runs of a
    pipeline whose Trainers each start a tracking process. So the first opening is
    serialised: across this process's threads by a lock, and across processes by an
    exclusive ``flock`` on a lock file (see :func:`_setup_lock_file`). Once the schema
    exists, opening it again only reads it.

    Example:
        >>> with store_setup_lock("sqlite:////tmp/root/mlflow.sqlite"):   # doctest: +SKIP
        ...     client = MlflowClient(tracking_uri="sqlite:////tmp/root/mlflow.sqlite")
        ...     client.search_experiments(max_results=1)   # creates the schema if it is new
    """
    paths = sorted({p for p in (_setup_lock_file(u) for u in uris if u) if p is not None})
    with _SETUP_LOCK, contextlib.ExitStack() as held:
        for path in paths:  # in one order everywhere, so two processes never wait on each other
            held.enter_context(_file_lock(path))
        yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: only this process's threads are serialised
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file is closed, even by a kill
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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

    try:
        with store_setup_lock(tracking_uri):  # the first client on a new database creates its schema
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


class RemoteRun:
    """One MLflow run driven by a helper process (``python -m jfx.components._mlflow_worker``).

    The same methods and attributes as :class:`TrackedRun`. The process starts at once
    and imports MLflow, opens (or creates) the store and starts the run on its own
    core, so none of that competes with the caller's interpreter; the caller never
    imports MLflow. ``run_id`` / ``experiment_id`` and every method wait for the run to
    exist; an error starting it is raised there (:class:`ComponentError`). :meth:`finish`
    and :meth:`set_tags` do nothing when the run could not be started. :meth:`close`
    (also called by :meth:`finish`) ends the process. Safe to share between threads.
    """

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str | None = None,
                 tags: Mapping[str, Any] | None = None, artifact_location: str | None = None) -> None:
        import tempfile

        self.tracking_uri = redact_uri(tracking_uri)
        self._raw_uri = tracking_uri
        self._experiment = experiment
        self._lock = threading.Lock()
        self._started: TrackedRun | None = None  # only its ids are used
        self._start_error: ComponentError | None = None
        self.finished = False
        env = artifact_env(os.environ)
        env.setdefault(TELEMETRY_ENV, "true")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the worker's life; closed in close()
        config = {"tracking_uri": tracking_uri, "experiment": experiment, "run_name": run_name,
                  "tags": {str(k): str(v) for k, v in (tags or {}).items() if v is not None},
                  "artifact_location": artifact_location}
        try:
            self._proc: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, "-m", "jfx.components._mlflow_worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._stderr, env=env, text=True, encoding="utf-8")
            assert self._proc.stdin is not None  # a pipe
            self._proc.stdin.write(json.dumps(config) + "\n")
            self._proc.stdin.flush()
        except OSError as err:
            self._proc = None
            self._start_error = self._cannot_start(f"the tracking process could not start: {err}")

    # -- the process -----------------------------------------------------------------------
    def _cannot_start(self, why: str) -> ComponentError:
        return ComponentError(
            f"cannot start an MLflow run in experiment {self._experiment!r} at {self.tracking_uri}: {why}. "
            f"Set MLFLOW_TRACKING_URI to a reachable store, or unset it to track into "
            f"<pipeline_root>/{TRACKING_DB}")

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 2000))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _read_reply(self) -> dict[str, Any]:
        line = self._proc.stdout.readline() if self._proc is not None and self._proc.stdout is not None else ""
        if not line:
            code = self._proc.wait() if self._proc is not None else None
            tail = self._stderr_tail()
            raise ComponentError(f"the MLflow tracking process exited (code {code})"
                                 + (f"; its last output:\n{tail}" if tail else ""))
        return json.loads(line)

    def _run(self) -> TrackedRun:
        """The started run's ids (waits for the process to start it)."""
        with self._lock:
            return self._run_locked()

    def _run_locked(self) -> TrackedRun:
        if self._started is not None:
            return self._started
        if self._start_error is None:
            try:
                reply = self._read_reply()
            except ComponentError as err:
                self._start_error = self._cannot_start(str(err))
            else:
                if reply.get("ok"):
                    self._started = TrackedRun(None, reply["run_id"], reply["experiment_id"], self._raw_uri)
                    return self._started
                if reply.get("kind") == "import":
                    self._start_error = ComponentError(_INSTALL_HELP)
                else:
                    self._start_error = self._cannot_start(reply.get("error", "unknown error"))
            self._close_locked()
        raise self._start_error

    def _call(self, cmd: dict[str, Any]) -> None:
        with self._lock:
            run = self._run_locked()
            if self._proc is None or self._proc.stdin is None:
                raise ComponentError(f"MLflow run {run.run_id} is closed")
            try:
                self._proc.stdin.write(json.dumps(cmd) + "\n")
                self._proc.stdin.flush()
            except (OSError, ValueError):
                pass  # the reply read below reports the exit
            reply = self._read_reply()
        if not reply.get("ok"):
            if reply.get("kind") == "mlflow":
                raise InvalidArgumentError(f"MLflow run {run.run_id} refused the values: {reply['error']}")
            raise ComponentError(f"MLflow run {run.run_id}: {cmd['op']} failed: {reply.get('error')}")

    def _close_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None  # pipes
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        self._stderr.close()

    def close(self) -> None:
        """Ends the tracking process (the run is left as it is); later calls do nothing."""
        with self._lock:
            self._close_locked()

    # -- TrackedRun's interface ------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self._run().run_id

    @property
    def experiment_id(self) -> str:
        return self._run().experiment_id

    def _batch(self, **items: list[list[Any]]) -> None:
        for key, values in items.items():
            for i in range(0, len(values), _BATCH):
                self._call({"op": "log_batch", key: values[i:i + _BATCH]})

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """As :meth:`TrackedRun.log_params`."""
        self._batch(params=[[k, v] for k, v in flatten_params(params, prefix).items()])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """As :meth:`TrackedRun.log_metrics`."""
        now = int(time.time() * 1000)
        self._batch(metrics=[[_key(k), _metric_value(k, v), now, int(step or 0)] for k, v in metrics.items()])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """As :meth:`TrackedRun.set_tags` (nothing when the run could not be started)."""
        if self._started_or_none() is not None:
            self._batch(tags=[[_key(k), str(v)[:5000]] for k, v in tags.items() if v is not None])

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """As :meth:`TrackedRun.log_artifacts`."""
        self._call({"op": "log_artifacts", "local_dir": str(local_dir), "artifact_path": artifact_path})

    def log_jfx_model(self, model_dir: str | Path, artifact_path: str = "model") -> None:
        """As :meth:`TrackedRun.log_jfx_model` (built in the helper process)."""
        self._call({"op": "log_jfx_model", "model_dir": str(model_dir), "artifact_path": artifact_path})

    def _started_or_none(self) -> TrackedRun | None:
        try:
            return self._run()
        except ComponentError:
            return None

    def finish(self, failed: bool = False) -> None:
        """Ends the run as FINISHED (or FAILED) and the process; later calls do nothing."""
        try:
            if not self.finished and self._started_or_none() is not None:
                self.finished = True
                self._call({"op": "terminate", "status": "FAILED" if failed else "FINISHED"})
        finally:
            self.close()


def start_run_in_subprocess(tracking_uri: str, experiment: str, *, run_name: str | None = None,
                            tags: Mapping[str, Any] | None = None,
                            artifact_location: str | None = None) -> RemoteRun:
    """:func:`start_run` in a helper process; returns at once (see :class:`RemoteRun`)."""
    return RemoteRun(tracking_uri, experiment, run_name=run_name, tags=tags, artifact_location=artifact_location)


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
