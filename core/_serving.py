"""``jfx serve``: model artifacts over HTTP in TensorFlow Serving's REST shape.

The model base path holds one folder per version, TensorFlow Serving's layout::

    <model_base_path>/1/signature.json ...    a jfx model artifact (see jfx.core.export)
    <model_base_path>/2/...

The base path may be an object-store URI (``s3://bucket/models/taxi``, ``gs://...``), as
with TensorFlow Serving: each poll is one listing of the prefix, a new complete version
is downloaded into the local cache (:func:`jfx._storage.localize`, keyed by the listing's
ETags, so a version is fetched once and a changed one again), then loaded and swapped in
as below; the version serving meanwhile keeps serving. A bad URI, bucket, endpoint or
credentials is one error at start.

A version folder counts once its ``signature.json`` exists (a pusher writes it last,
also on a store). A poller thread loads the
newest version it finds, warms it up (compiles the batch sizes it will see), and only
then makes it the default, in one assignment: requests already running finish on the
version they started with, and the old version stays loaded (``max_loaded_versions``)
so ``/versions/<old>`` still answers. A version that fails to load is reported in the
status with its error, and the version serving before it keeps serving.

Routes (all JSON; every error is ``{"error": "..."}`` with a 4xx status for a bad request);
each model route also takes ``/versions/<v>`` or ``/labels/<label>`` after the name:

    POST /v1/models/<name>:predict                     {"instances": [...]} or {"inputs": {...}}
    POST /v1/models/<name>:classify                    {"examples": [...], "context": {...}}
    POST /v1/models/<name>:regress                     {"examples": [...], "context": {...}}
    GET  /v1/models/<name>                             model_version_status
    GET  /v1/models/<name>/metadata                    the signature
    GET  /v1/openapi.json, /openapi.json              the OpenAPI 3 description
    GET  /monitoring/prometheus/metrics                Prometheus metrics (see jfx.core._monitoring)

With a request log (:class:`~jfx.core._request_log.RequestLogConfig`), sampled predict
requests and their predictions are written as Parquet shards in the model's raw feature
schema (see :mod:`jfx.core._request_log` for the shard contract), off the request path.

A classifier with label names (see :mod:`jfx.core._inference`) also answers ``classes``,
each row's predicted label. With ``grpc_port``, TF Serving's gRPC PredictionService and
ModelService are served beside (:mod:`jfx.core._grpc`), on the same versions and batches.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from jfx import _storage as storage
from jfx.core._batching import Batcher
from jfx.core._http import HttpFrontEnd
from jfx.core._export import LoadedModel, _bucket
from jfx.core._inference import CLASSIFIER, REGRESSOR, Head, head_of, output_specs
from jfx.core._monitoring import ServingMetrics
from jfx.core._request_log import RequestLogConfig, RequestLogger, raw_string_columns
from jfx.core._rest import (
    _SIGNATURE_NAME,
    HttpError,
    openapi_spec,
)
from jfx.errors import InvalidArgumentError, JfxError, NotFoundError

if TYPE_CHECKING:
    from jfx.core._grpc import GrpcFrontEnd

__all__ = ["ModelServer", "ServingConfig", "build_parser", "main", "openapi_spec", "serve"]

log = logging.getLogger("jfx.serve")

_SIGNATURE = "signature.json"
@dataclass(frozen=True)
class ServingConfig:
    """How a :class:`ModelServer` batches, polls and warms up.

    Attributes:
        enable_batching: merge rows of concurrent requests into one model call.
        max_batch_size: most rows in one batched model call.
        batch_timeout_ms: the longest a batch waits for more requests to join it (it
            waits only for the clients the previous batch just answered; a request
            reaching an idle model goes at once).
        poll_interval_s: how often the model base path is scanned for new versions
            (0 or less: only at start; call :meth:`ModelServer.poll` yourself).
        max_loaded_versions: versions kept loaded (the newest ones); older ones are
            unloaded and reported as ``END``.
        warmup_batch_sizes: batch sizes compiled before a version starts serving;
            default: every padded size up to ``max_batch_size`` when batching, else 1.
        header_timeout_s: the longest a request's head (request line and headers) may
            take to arrive, counted from the connection's accept for its first request
            and from the first byte for a later one; then the connection is answered
            408 and closed (a client that connects and sends nothing is just closed),
            so slow or silent clients cannot hold connections open.
        version_labels: version label → version number, for ``/labels/<label>`` routes and
            gRPC's ``model_spec.version_label`` (e.g. ``{"stable": 1, "canary": 2}``).
    """

    enable_batching: bool = True
    max_batch_size: int = 64
    batch_timeout_ms: float = 2.0
    poll_interval_s: float = 1.0
    max_loaded_versions: int = 2
    warmup_batch_sizes: tuple[int, ...] | None = None
    header_timeout_s: float = 20.0
    version_labels: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, version in self.version_labels.items():
            if not name or "/" in name or ":" in name or not isinstance(version, int) or version < 0:
                raise InvalidArgumentError(f"version label {name!r}={version!r}: a label is a name without '/' or "
                                           "':' and its version a whole number >= 0")
        if self.max_batch_size < 1:
            raise InvalidArgumentError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.batch_timeout_ms < 0:
            raise InvalidArgumentError(f"batch_timeout_ms must be >= 0, got {self.batch_timeout_ms}")
        if self.max_loaded_versions < 1:
            raise InvalidArgumentError(f"max_loaded_versions must be >= 1, got {self.max_loaded_versions}")
        if not self.header_timeout_s > 0:  # also refuses NaN
            raise InvalidArgumentError(f"header_timeout_s must be > 0 seconds, got {self.header_timeout_s}")

    def warmup_sizes(self) -> tuple[int, ...]:
        if self.warmup_batch_sizes is not None:
            return tuple(sorted({_bucket(int(n)) for n in self.warmup_batch_sizes if int(n) > 0}))
        if not self.enable_batching:
            return (1,)
        top = _bucket(self.max_batch_size)
        return tuple(1 << i for i in range(top.bit_length()))


# --------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------

class Servable:
    """One loaded, warmed-up model version (and its batcher, when batching is on)."""

    def __init__(self, version: int, model: LoadedModel, config: ServingConfig):
        self.version = version
        self.model = model
        self.head: Head = head_of(model)
        self.outputs = output_specs(model, self.head)  # what it answers: the model's outputs (+ classes)
        self.batcher: Batcher | None = None
        if config.enable_batching:
            self.batcher = Batcher(model.run_prepared, max_batch_size=config.max_batch_size,
                                   batch_timeout_ms=config.batch_timeout_ms)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


@dataclass
class VersionStatus:
    """A version's state as TensorFlow Serving reports it: LOADING, AVAILABLE or END."""

    version: int
    state: str
    error: str = ""
    # what was last tried: (mtime_ns, inode) of a local signature.json, a digest of a
    # version's listing on a store; None: try again at the next poll
    key: Any = None
    was_loaded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": "UNKNOWN" if self.error else "OK", "error_message": self.error}}


def _warmup_inputs(model: LoadedModel, rows: int) -> dict[str, np.ndarray]:
    # id 0 is a valid encoded string (the first vocabulary entry or OOV bucket)
    return {n: np.zeros((rows, *s.shape), np.dtype(s.model_dtype)) for n, s in model.inputs.items()}


class VersionManager:
    """Finds, loads, warms up, swaps and unloads the versions under one model base path.

    ``latest`` is the servable answering requests without a version; it is replaced
    by one assignment once a newer version has loaded and warmed up.
    """

    def __init__(self, model_base_path: str | Path, model_name: str, config: ServingConfig,
                 metrics: ServingMetrics | None = None):
        self.metrics = metrics if metrics is not None else ServingMetrics()
        self.remote = storage.is_remote(model_base_path)
        self.base_path: str | Path = (storage.check_uri(model_base_path).rstrip("/") if self.remote
                                      else Path(model_base_path))
        self.model_name = model_name
        self.config = config
        self.latest: Servable | None = None
        self._loaded: dict[int, Servable] = {}
        self._status: dict[int, VersionStatus] = {}
        self._lock = threading.Lock()  # one poll at a time; readers never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading (request threads) ---------------------------------------------------------
    def get(self, version: int) -> Servable | None:
        return self._loaded.get(version)

    def status(self, version: int | None = None) -> list[VersionStatus]:
        items = sorted(self._status.values(), key=lambda s: -s.version)
        return [s for s in items if version is None or s.version == version]

    # -- polling ---------------------------------------------------------------------------
    def _scan(self) -> dict[int, tuple[str | Path, Any]]:
        if self.remote:
            return self._scan_store()
        found: dict[int, tuple[str | Path, Any]] = {}
        try:
            entries = list(os.scandir(self.base_path))
        except FileNotFoundError:
            return {}
        for entry in entries:
            if not entry.name.isdigit() or not entry.is_dir():
                continue
            sig = Path(entry.path) / _SIGNATURE
            try:
                st = sig.stat()
            except OSError:
                continue  # still being written: not a version yet
            found[int(entry.name)] = (Path(entry.path), (st.st_mtime_ns, st.st_ino))
        return found

    def _scan_store(self) -> dict[int, tuple[str | Path, Any]]:
        """One listing of the prefix: the complete versions, each keyed by a digest of its files."""
        groups: dict[int, list[storage.RemoteFile]] = {}
        try:
            files = storage.list_files(self.base_path)
        except FileNotFoundError:
            return {}
        for f in files:
            head, sep, _ = f.rel.partition("/")
            if sep and head.isdigit():
                groups.setdefault(int(head), []).append(f)
        found: dict[int, tuple[str | Path, Any]] = {}
        for version, group in groups.items():
            if not any(f.rel == f"{version}/{_SIGNATURE}" for f in group):
                continue  # still being uploaded (or abandoned): not a version yet
            digest = hashlib.sha256()
            for f in group:
                digest.update(f"{f.rel}\0{f.size}\0{f.checksum}\n".encode())
            found[version] = (storage.join(self.base_path, str(version)), digest.hexdigest()[:40])
        return found

    def poll(self) -> None:
        """Scans the base path once: loads a newer version, unloads removed and surplus ones."""
        with self._lock:
            found = self._scan()
            for v in list(self._status):
                if v not in found:
                    if v in self._loaded:
                        self._unload(v, "the version folder was removed")
                    elif not self._status[v].was_loaded:
                        del self._status[v]  # a failed or half-written folder that is gone now
            for v in sorted(found, reverse=True):
                if v in self._loaded:
                    break
                path, key = found[v]
                st = self._status.get(v)
                if st is not None and st.error and st.key == key:
                    continue  # failed before and unchanged since
                if self._load(v, path, key):
                    break
            newest = max(self._loaded, default=None)
            latest = self._loaded[newest] if newest is not None else None
            if latest is not self.latest:
                self.latest = latest  # the swap: one assignment, read once per request
                if latest is not None:
                    log.info("serving %s version %d", self.model_name, latest.version)
            for v in sorted(self._loaded, reverse=True)[self.config.max_loaded_versions:]:
                self._unload(v, "")

    def _load(self, version: int, path: str | Path, key: Any) -> bool:
        self._status[version] = VersionStatus(version, "LOADING", key=key)
        started = time.perf_counter()
        try:
            if self.remote:
                try:  # into the local cache; the version serving now keeps serving meanwhile
                    path = storage.localize(path, f"serve-{key}")
                except (OSError, JfxError):
                    key = None  # the store failed, not the version: try again at the next poll
                    raise
            model = LoadedModel(path)
            for rows in self.config.warmup_sizes():
                model.run_prepared(_warmup_inputs(model, rows))
            servable = Servable(version, model, self.config)
        except Exception as err:  # noqa: BLE001 - any failure is reported in the status; the old version keeps serving
            msg = f"{type(err).__name__}: {err}"
            log.warning("could not load %s version %d from %s: %s", self.model_name, version, path, msg)
            self._status[version] = VersionStatus(version, "END", msg, key)
            self.metrics.record_load_failure(self.model_name, version)
            return False
        self._loaded = {**self._loaded, version: servable}
        self._status[version] = VersionStatus(version, "AVAILABLE", key=key)
        seconds = time.perf_counter() - started
        self.metrics.record_load(self.model_name, version, seconds)
        log.info("loaded %s version %d in %.2fs", self.model_name, version, seconds)
        return True

    def _unload(self, version: int, why: str) -> None:
        servable = self._loaded[version]
        self._loaded = {v: s for v, s in self._loaded.items() if v != version}
        if self.latest is servable:
            newest = max(self._loaded, default=None)
            self.latest = self._loaded[newest] if newest is not None else None
        self._status[version] = VersionStatus(version, "END", why, was_loaded=True)
        servable.close()  # queued requests are answered first; late ones run inline
        self.metrics.forget_version(self.model_name, version)
        log.info("unloaded %s version %d%s", self.model_name, version, f" ({why})" if why else "")

    def start(self) -> None:
        """Loads what is there now, then polls in a daemon thread."""
        self.poll()
        if self.config.poll_interval_s > 0:
            self._thread = threading.Thread(target=self._poll_forever, name=f"jfx-poll-{self.model_name}", daemon=True)
            self._thread.start()

    def _poll_forever(self) -> None:
        while not self._stop.wait(self.config.poll_interval_s):
            try:
                self.poll()
            except (OSError, JfxError) as err:  # e.g. the store is unreachable for a while: one line a poll
                log.warning("polling %s failed: %s", self.base_path, err)
            except Exception:
                log.exception("polling %s failed", self.base_path)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for v in list(self._loaded):
                self._loaded[v].close()
            self._loaded = {}
            self.latest = None


# --------------------------------------------------------------------------------------
# The HTTP server
# --------------------------------------------------------------------------------------

class ModelServer:
    """Serves the versions under ``model_base_path`` as model ``model_name`` over HTTP.

    Args:
        model_base_path: the folder of numbered version folders, or such a prefix on an
            object store (``s3://bucket/models/taxi``).
        model_name: the name in the URLs (``/v1/models/<model_name>``).
        host, port: where to listen (port 0: any free port; see :attr:`port`).
        config: batching, polling and warm-up (:class:`ServingConfig`).
        grpc_port: also serve TF Serving's gRPC API on ``host`` at this port (0: any free
            port; see :attr:`grpc_port`); None: no gRPC. Needs the ``grpc`` extra.
        request_log: log sampled requests and their predictions as Parquet shards
            (:class:`~jfx.core._request_log.RequestLogConfig`); its folder or store is
            checked when the server starts.

    Attributes:
        metrics: the server's :class:`~jfx.core._monitoring.ServingMetrics`, served at
            ``/monitoring/prometheus/metrics``; other front ends record their requests there.

    Example:
        >>> with ModelServer("/models/taxi", "taxi", port=0) as server:  # doctest: +SKIP
        ...     print(server.url)  # POST f"{server.url}/v1/models/taxi:predict"
        http://127.0.0.1:40123
    """

    def __init__(self, model_base_path: str | Path, model_name: str, *, host: str = "127.0.0.1",
                 port: int = 8501, config: ServingConfig | None = None, grpc_port: int | None = None,
                 request_log: RequestLogConfig | None = None):
        if not model_name or "/" in model_name or ":" in model_name:
            raise InvalidArgumentError(f"model_name {model_name!r} must be non-empty, without '/' or ':'")
        self.model_base_path: str | Path
        if storage.is_remote(model_base_path):
            # one listing proves the endpoint, the credentials and the bucket (one line if not);
            # the prefix itself may still be empty: versions are picked up once pushed
            self.model_base_path = storage.check_root(model_base_path).rstrip("/")
        else:
            self.model_base_path = Path(model_base_path)
            if not self.model_base_path.is_dir():
                raise NotFoundError(f"model base path {self.model_base_path} is not a folder; it should hold "
                                    f"version folders such as {self.model_base_path}/1/signature.json")
        self.model_name = model_name
        self.config = config or ServingConfig()
        self.metrics = ServingMetrics()
        self.versions = VersionManager(self.model_base_path, model_name, self.config, self.metrics)
        self.request_log_config = request_log
        self.request_log: RequestLogger | None = None
        self.openapi = openapi_spec(model_name)
        self._host, self._port = host, port
        self._grpc_port = grpc_port
        self._http: HttpFrontEnd | None = None
        self._grpc: GrpcFrontEnd | None = None

    # -- answers ---------------------------------------------------------------------------
    def _labelled(self, label: str) -> str:
        version = self.config.version_labels.get(label)
        if version is None:
            known = ", ".join(f"{k}={v}" for k, v in sorted(self.config.version_labels.items())) or "none"
            raise HttpError(404, f"model {self.model_name!r} has no version label {label!r}; its labels: {known} "
                            "(jfx serve --version_labels LABEL=VERSION,...)")
        return str(version)

    def servable(self, version: str | None, label: str | None = None) -> Servable:
        """The version a request names (by number or label; the newest when neither).

        Raises:
            HttpError: 404 for an unknown model version or label, 503 when none has loaded.
        """
        if label is not None:
            version = self._labelled(label)
        if version is None:
            servable = self.versions.latest
            if servable is None:
                raise HttpError(503, f"no version of model {self.model_name!r} is available yet "
                                f"(under {self.model_base_path}); see GET /v1/models/{self.model_name}",
                                {"Retry-After": "1"})
            return servable
        if not version.isdigit():
            raise HttpError(404, f"version {version!r} of model {self.model_name!r} is not a number")
        servable = self.versions.get(int(version))
        if servable is None:
            st = self.versions.status(int(version))
            why = f" (it is {st[0].state}{': ' + st[0].error if st[0].error else ''})" if st else ""
            loaded = sorted(s.version for s in self.versions.status() if s.state == "AVAILABLE")
            raise HttpError(404, f"version {version} of model {self.model_name!r} is not loaded{why}; "
                            f"loaded versions: {loaded}")
        return servable

    def status_json(self, version: str | None, label: str | None = None) -> dict[str, Any]:
        if label is not None:
            version = self._labelled(label)
        if version is not None:
            items = self.versions.status(int(version)) if version.isdigit() else []
            if not items:
                raise HttpError(404, f"model {self.model_name!r} has no version {version!r}")
        else:
            items = self.versions.status()
        return {"model_version_status": [s.to_json() for s in items]}

    def metadata_json(self, servable: Servable) -> dict[str, Any]:
        model = servable.model
        inputs = {n: {"dtype": s.dtype, "shape": [-1, *s.shape], **({"encoder": s.encoder} if s.encoder else {})}
                  for n, s in model.inputs.items()}
        outputs = {n: {"dtype": o["dtype"], "shape": [-1, *o["shape"]]} for n, o in servable.outputs.items()}
        return {
            "model_spec": {"name": self.model_name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": {_SIGNATURE_NAME: {
                "inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}}}},
        }

    def log_request(self, servable: Servable, arrays: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
                    rows: int, body: bytes | None = None,
                    raw: Callable[[], Mapping[str, list[Any]]] | None = None) -> None:
        """Hands an answered predict request to the request log, if it is sampled (never blocks).

        Args:
            servable: the version that answered.
            arrays: the inputs as :meth:`LoadedModel.prepare` made them.
            outputs: the model's outputs for them.
            rows: how many rows.
            body: a REST request's body, for the string features as sent; or
            raw: returns them (feature → list of values), for another front end. Either is
                read later, on the log's writer thread, and only when the model has string inputs.
        """
        request_log = self.request_log
        if request_log is None or not request_log.sample():
            return
        model = servable.model
        if raw is None and body is not None and any(s.dtype == "string" for s in model.inputs.values()):
            def raw() -> dict[str, list[Any]]:
                return raw_string_columns(body, model)
        request_log.submit(servable.version, model, arrays, outputs, rows, raw)

    def require(self, servable: Servable, api: str) -> None:
        """Refuses classify on a version that is not a classifier, and regress on one that is not a regressor.

        Raises:
            HttpError: 400, naming the model, its version and what it is.
        """
        wanted = {"classify": CLASSIFIER, "regress": REGRESSOR}[api]
        if servable.head.kind != wanted:
            other = {"classify": ":regress or :predict", "regress": ":classify or :predict"}[api]
            if servable.head.kind not in (CLASSIFIER, REGRESSOR):
                other = ":predict"
            raise HttpError(400, f"model {self.model_name!r} version {servable.version} is "
                            f"{servable.head.describe(servable.outputs)}, not a {wanted}, so it cannot {api}; "
                            f"use {other}")

    # -- life cycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._http.port if self._http else self._port

    @property
    def grpc_port(self) -> int | None:
        """The gRPC port (the one bound, once started), or None without gRPC."""
        return self._grpc.port if self._grpc else self._grpc_port

    @property
    def url(self) -> str:
        return f"http://{self.grpc_address.rpartition(':')[0]}:{self.port}"

    @property
    def grpc_address(self) -> str:
        """``host:port`` of the gRPC server, as a gRPC channel takes it."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"{host}:{self.grpc_port}"

    def start(self) -> ModelServer:
        """Loads the newest version, starts polling and serves in a background thread.

        Raises:
            StorageError: the request log's folder or store cannot be used.
        """
        if self.request_log_config is not None and self.request_log is None:
            self.request_log = RequestLogger(self.request_log_config, self.model_name, self.metrics)
        try:
            self.versions.start()
            self._http = HttpFrontEnd(self, self._host, self._port)
            if self._grpc_port is not None:
                try:
                    from jfx.core._grpc import GrpcFrontEnd
                except ImportError as err:
                    raise InvalidArgumentError(f"gRPC (--grpc_port) needs the grpc extra: pip install 'jfx[grpc]' "
                                               f"(grpcio and protobuf): {err}") from err
                self._grpc = GrpcFrontEnd(self, self._http, self._host, self._grpc_port)
        except BaseException:
            self.close()
            raise
        return self

    def poll(self) -> None:
        """Scans for new versions now (the poller does this every ``poll_interval_s``)."""
        self.versions.poll()

    def close(self) -> None:
        """Stops serving; the request log's open shard is published first."""
        if self._grpc is not None:
            self._grpc.close()
            self._grpc = None
        if self._http is not None:
            self._http.close()
            self._http = None
        self._close_request_log()
        self.versions.close()

    def _close_request_log(self) -> None:
        if self.request_log is not None:
            self.request_log.close()
            self.request_log = None

    def wait(self) -> None:
        """Blocks until :meth:`close` (or Ctrl-C)."""
        while self._http is not None and self._http.is_alive():
            self._http.join(0.5)

    def __enter__(self) -> ModelServer:  # noqa: PYI034
        if self._http is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(model_base_path: str | Path, model_name: str, host: str = "127.0.0.1", port: int = 8501, *,
          enable_batching: bool = True, max_batch_size: int = 64, batch_timeout_ms: float = 2.0,
          poll_interval_s: float = 1.0, max_loaded_versions: int = 2,
          warmup_batch_sizes: Sequence[int] | None = None, header_timeout_s: float = 20.0,
          request_log: str | None = None, request_log_sample_rate: float = 1.0,
          request_log_max_rows: int = 100_000, request_log_rotate_s: float = 300.0,
          grpc_port: int | None = None, version_labels: Mapping[str, int] | None = None) -> int:
    """Serves a model until interrupted (what ``jfx serve`` runs). Returns the exit code.

    Prints one line with the URL (and the gRPC address, with ``grpc_port``) once the first
    version (if any) has loaded. With ``request_log`` (a folder or ``s3://bucket/prefix``),
    sampled requests are logged as Parquet shards there (see
    :class:`~jfx.core._request_log.RequestLogConfig`).
    """
    config = ServingConfig(enable_batching=enable_batching, max_batch_size=max_batch_size,
                           batch_timeout_ms=batch_timeout_ms, poll_interval_s=poll_interval_s,
                           max_loaded_versions=max_loaded_versions,
                           warmup_batch_sizes=tuple(warmup_batch_sizes) if warmup_batch_sizes else None,
                           header_timeout_s=header_timeout_s, version_labels=dict(version_labels or {}))
    log_config = None
    if request_log is not None:
        log_config = RequestLogConfig(request_log, sample_rate=request_log_sample_rate,
                                      max_rows=request_log_max_rows, rotate_s=request_log_rotate_s)
    server = ModelServer(model_base_path, model_name, host=host, port=port, config=config, request_log=log_config,
                         grpc_port=grpc_port)
    previous = _stop_on_sigterm()  # before the URL is printed: a client may stop it as soon as it reads it
    try:
        server.start()
        latest = server.versions.latest
        grpc_at = f"; gRPC at {server.grpc_address}" if server.grpc_port is not None else ""
        print(f"jfx serve: model {model_name!r} "
              f"{'version ' + str(latest.version) if latest else '(no version loaded yet)'} "
              f"at {server.url}/v1/models/{model_name}{grpc_at}", flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:  # a second SIGTERM stops at once
            signal.signal(signal.SIGTERM, previous)
        server.close()  # publishes the request log's open shard
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> Any:
    """SIGTERM (``docker stop``, Kubernetes, a parent's death) stops the server as Ctrl-C does,
    closing it cleanly; returns the handler it replaced (``None`` off the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


def build_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``serve`` subcommand to an ``add_subparsers()`` object; returns its parser.

    The flags live in :mod:`jfx.core._serve_flags` so that ``jfx --help`` does not import JAX.
    """
    from jfx.core._serve_flags import add_serve_parser

    return add_serve_parser(subparsers)


# Set by a process that starts a server for itself (InfraValidator): the server stops when
# that process dies, even by SIGKILL, instead of outliving it.
PARENT_PID_ENV = "JFX_SERVE_PARENT_PID"


def _die_with_parent() -> None:
    """On Linux, ask for SIGTERM when the process named in PARENT_PID_ENV dies (prctl)."""
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != expected:  # the parent died before prctl took effect
        raise SystemExit(f"jfx serve: the process that started it ({expected}) has exited")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jfx.core._serving serve --model_base_path DIR --model_name NAME``
    (``serve`` may be left out)."""
    _die_with_parent()
    parser = argparse.ArgumentParser(prog="jfx")
    build_parser(parser.add_subparsers(dest="command"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "serve":
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("jfx").addHandler(handler)
    logging.getLogger("jfx").setLevel(logging.INFO)
    try:
        from jfx.core._serve_flags import serve_options

        return serve(**serve_options(args))
    except JfxError as err:
        print(f"jfx: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
