"""The model server's Prometheus metrics (``GET /monitoring/prometheus/metrics``, TF Serving's path).

Each :class:`~jfx.core._serving.ModelServer` holds one :class:`ServingMetrics` (``server.metrics``)
with a registry of its own, so several servers in one process (tests, a process serving
two models) count apart. Every front end (HTTP, gRPC) records its requests with
:meth:`ServingMetrics.record_request`; the batching queue, the version loader and the
request log record the rest. Recording is cheap: a dictionary lookup of the label
values' metric children, then prometheus-client's own increment (a lock held for one
addition); nothing blocks on a scrape.

What is exported (``model``: the served name; ``version``: the version that answered,
empty when none was resolved; ``api``: predict, classify, regress, metadata, status,
openapi, metrics, or none for a path that matches no route; ``status``: the HTTP code, or
a gRPC code's name):

    jfx_serving_requests_total{model,version,api,status}                 counter
    jfx_serving_request_latency_seconds{model,version,api,status}        histogram
    jfx_serving_batch_size{model,version}                                histogram (rows per batched model call)
    jfx_serving_queue_seconds{model,version}                             histogram (a request's wait for its batch)
    jfx_serving_model_load_seconds{model,version}                        gauge (load and warm-up of a loaded version)
    jfx_serving_model_load_failures_total{model,version}                 counter
    jfx_serving_request_log_rows_total{model}                            counter (rows in published shards)
    jfx_serving_request_log_shards_total{model}                          counter
    jfx_serving_request_log_dropped_total{model,reason}                  counter (requests not logged:
                                                                         queue_full, write_error)
    jfx_serving_request_log_write_errors_total{model}                    counter (shards that failed)
    jfx_serving_request_log_values_not_whole_total{model}                counter (values of int columns
                                                                         that were not whole: logged null)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_QUEUE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def _version_label(version: int | str | None) -> str:
    return "" if version is None else str(version)


class ServingMetrics:
    """The metrics of one model server, in a registry of its own.

    Args:
        registry: where to register them (default: a new :class:`CollectorRegistry`;
            give ``prometheus_client.REGISTRY`` to export them with the process's others).

    Example:
        >>> m = ServingMetrics()
        >>> m.record_request("taxi", 3, "predict", 200, 0.004)
        >>> b"jfx_serving_requests_total" in m.exposition()[0]
        True
    """

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        request_labels = ("model", "version", "api", "status")
        self.requests = Counter("jfx_serving_requests", "Requests answered, by model, version, API and status",
                                request_labels, registry=r)
        self.latency = Histogram("jfx_serving_request_latency_seconds",
                                 "Time from a request's arrival (whole) to its answer", request_labels,
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("jfx_serving_batch_size", "Rows per batched model call", ("model", "version"),
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.queue_time = Histogram("jfx_serving_queue_seconds",
                                    "Time a request waited in the batching queue before its batch ran",
                                    ("model", "version"), buckets=_QUEUE_BUCKETS, registry=r)
        self.load_seconds = Gauge("jfx_serving_model_load_seconds",
                                  "Seconds a loaded version took to load and warm up", ("model", "version"),
                                  registry=r)
        self.load_failures = Counter("jfx_serving_model_load_failures", "Versions that failed to load",
                                     ("model", "version"), registry=r)
        self.log_rows = Counter("jfx_serving_request_log_rows", "Rows written to published request log shards",
                                ("model",), registry=r)
        self.log_shards = Counter("jfx_serving_request_log_shards", "Request log shards published", ("model",),
                                  registry=r)
        self.log_dropped = Counter("jfx_serving_request_log_dropped",
                                   "Sampled requests not logged (queue_full: the writer lags behind; "
                                   "write_error: their shard could not be written)", ("model", "reason"),
                                   registry=r)
        self.log_write_errors = Counter("jfx_serving_request_log_write_errors",
                                        "Request log shards that could not be written", ("model",), registry=r)
        self.log_not_whole = Counter("jfx_serving_request_log_values_not_whole",
                                     "Values sent for an int column of the training data that were not whole "
                                     "numbers (logged as null)", ("model",), registry=r)
        # label values -> (counter child, histogram child): one dict lookup per request
        self._request_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._batch_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    # -- the request path (any thread; no lock of our own) ---------------------------------
    def record_request(self, model: str, version: int | None, api: str, status: int | str, seconds: float) -> None:
        """Counts one answered request and its latency.

        Args:
            model: the served model's name (not a name a client made up: labels stay few).
            version: the version that answered, or ``None`` when none was resolved.
            api: ``"predict"``, ``"classify"``, ``"regress"``, ``"metadata"``, ``"status"``, ...
            status: the HTTP status code, or a gRPC status code's name (``"OK"``, ``"NOT_FOUND"``).
            seconds: from the request's arrival to its answer.
        """
        key = (model, _version_label(version), api, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def record_batch(self, model: str, version: int, rows: int, waits: list[float]) -> None:
        """One batched model call of ``rows`` rows; ``waits``: each of its requests' queue time."""
        key = (model, _version_label(version))
        children = self._batch_children.get(key)
        if children is None:
            children = self._batch_children[key] = (self.batch_size.labels(*key), self.queue_time.labels(*key))
        children[0].observe(rows)
        for w in waits:
            children[1].observe(w)

    # -- versions (the poller thread) ------------------------------------------------------
    def record_load(self, model: str, version: int, seconds: float) -> None:
        self.load_seconds.labels(model, _version_label(version)).set(seconds)

    def record_load_failure(self, model: str, version: int) -> None:
        self.load_failures.labels(model, _version_label(version)).inc()

    def forget_version(self, model: str, version: int) -> None:
        """Drops an unloaded version's load time (its request counts stay: they are history)."""
        try:
            self.load_seconds.remove(model, _version_label(version))
        except KeyError:
            pass

    # -- scraping --------------------------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE
