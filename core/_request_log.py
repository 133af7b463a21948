"""Request logging for ``jfx serve``: sampled requests and their predictions as Parquet shards.

The shard contract (the skew and drift checks read exactly this)::

    <PATH>/requests-<UTC time YYYYmmddTHHMMSSffffff>-<pid>-<seq>.parquet

``PATH`` is a local folder or an object-store prefix (``s3://bucket/prefix``). The time is
when the shard's first row was logged, ``pid`` the server's process id and ``seq`` the
shard's number in that process (0, 1, ...). Columns, one row per request row:

* the model's raw input features, named and typed as its input signature says (see
  :func:`request_log_schema`): what clients sent (strings as strings, not encoded ids;
  a missing value is null), so ExampleGen reads the folder as it reads training data;
* ``_jfx_time`` (``timestamp[us, tz=UTC]``): when the request was answered;
* ``_jfx_model_version`` (``int64``): the version that answered;
* ``_jfx_prediction`` (``string``): that row's outputs as JSON, as the REST answer's
  ``predictions`` gives a row (an object of outputs, or the bare value of a one-output
  model; a non-finite number is null), whichever format the request used.

Nothing else. A shard becomes visible whole: locally it is written under a hidden name
(``.requests-....parquet.tmp``, which readers skip) and renamed; on a store it is written to
a local file, then uploaded as one object. A shard closes at ``max_rows`` rows, after
``rotate_s`` seconds, when the model's signature changes (a new version with other inputs)
and when the server closes. Shards without rows are never written.

The request path never waits for the log: it decides the sample (one random draw), then
appends a reference to the request's arrays to a queue bounded in rows, or, when the
queue is full, drops the entry and counts it. A writer thread turns entries into Arrow
batches and shards. A shard that cannot be written (a full disk, a store that refuses)
is dropped, counted and logged (one line per problem and minute); requests go on.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jfx import _storage as storage
from jfx.core._export import INT_INPUTS_KEY, TensorSpec
from jfx.errors import InvalidArgumentError

if TYPE_CHECKING:
    from jfx.core._export import LoadedModel
    from jfx.core._monitoring import ServingMetrics

__all__ = ["META_COLUMNS", "RequestLogConfig", "RequestLogger", "raw_string_columns", "request_log_schema",
           "shard_name"]

log = logging.getLogger("jfx.serve")

#: The log's own columns, after the features.
META_COLUMNS: dict[str, pa.DataType] = {
    "_jfx_time": pa.timestamp("us", tz="UTC"),
    "_jfx_model_version": pa.int64(),
    "_jfx_prediction": pa.string(),
}

_ARROW = {"float32": pa.float32(), "float16": pa.float16(), "bfloat16": pa.float32(), "int32": pa.int32(),
          "int8": pa.int8(), "uint8": pa.uint8(), "bool": pa.bool_(), "string": pa.string()}
_REPORT_EVERY_S = 60.0
# the writer wakes this often (or when the queue is half full): many requests per Arrow batch,
# and no wake-up call on the request path
_WRITE_EVERY_S = 0.1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _feature_type(spec: TensorSpec) -> pa.DataType:
    # a boolean column that the model reads as a 0/1 float is logged as the booleans sent;
    # Arrow has no bfloat16: float32 holds its every value
    t = pa.bool_() if spec.source_type == "bool" else _ARROW[spec.dtype]
    for width in reversed(spec.shape):
        t = pa.list_(t, int(width))
    return t


def request_log_schema(inputs: Mapping[str, TensorSpec], int_inputs: Collection[str] = ()) -> pa.Schema:
    """The columns of a model's request log shards: its inputs, then :data:`META_COLUMNS`.

    A feature's type follows its signature: ``float32``/``float16`` → float32/float16 (a
    missing value is null), ``bfloat16`` → float32, ``int32``/``int8``/``uint8`` and ``bool``
    as they are, ``string`` → string (the raw text, not the encoded id), a float column read
    from booleans (``source_type="bool"``) → bool, and a vector feature of shape ``(k,)`` a
    fixed-size list of ``k`` such values. A float input named in ``int_inputs`` (an int
    column of the training data; the model's ``signature.json`` metadata ``int_inputs``) is
    int64, as ExampleGen read it: a value that is not a whole number is written as null and
    counted (``..._request_log_values_not_whole_total``).

    Example:
        >>> request_log_schema({"x": TensorSpec("float32"), "city": TensorSpec("string", encoder={"hash_buckets": 4})})
        x: float
        city: string
        _jfx_time: timestamp[us, tz=UTC]
        _jfx_model_version: int64
        _jfx_prediction: string
    """
    fields = [pa.field(name, pa.int64() if name in int_inputs and spec.dtype in _WHOLE_FROM and not spec.shape
                       else _feature_type(spec)) for name, spec in inputs.items()]
    return pa.schema(fields + [pa.field(n, t) for n, t in META_COLUMNS.items()])


def shard_name(opened: datetime, pid: int, seq: int) -> str:
    """``requests-<UTC YYYYmmddTHHMMSSffffff>-<pid>-<seq>.parquet``.

    Example:
        >>> shard_name(datetime(2026, 12, 6, 1, 2, 3, 45, tzinfo=timezone.utc), 77, 3)
        'requests-20261206T010203000045-77-3.parquet'
    """
    return f"requests-{opened.astimezone(timezone.utc):%Y%m%dT%H%M%S%f}-{pid}-{seq}.parquet"


@dataclass(frozen=True)
class RequestLogConfig:
    """Where and how much :class:`RequestLogger` logs.

    Attributes:
        path: a local folder (created) or an object-store prefix (``s3://bucket/prefix``).
        sample_rate: the share of requests logged, in (0, 1]; each request is drawn at random.
        max_rows: a shard closes once it holds this many rows.
        rotate_s: a shard closes this many seconds after its first row, whatever its size.
        seed: seeds the sampling draws (``None``: unpredictable).
        queue_rows: the most rows waiting for the writer; a request beyond it is not logged
            (counted as ``queue_full``), so a slow sink costs memory up to here, never time.
        row_group_rows: rows per Parquet row group (buffered in memory until written).
    """

    path: str
    sample_rate: float = 1.0
    max_rows: int = 100_000
    rotate_s: float = 300.0
    seed: int | None = None
    queue_rows: int = 100_000
    row_group_rows: int = 16_384

    def __post_init__(self) -> None:
        if not str(self.path).strip():
            raise InvalidArgumentError("request_log: give a folder or an object-store prefix (s3://bucket/prefix)")
        storage.check_uri(self.path)  # an unknown scheme is refused here, by name
        if not 0 < self.sample_rate <= 1:  # also refuses NaN
            raise InvalidArgumentError(f"request_log_sample_rate must be in (0, 1], got {self.sample_rate}")
        if self.max_rows < 1:
            raise InvalidArgumentError(f"request_log_max_rows must be >= 1, got {self.max_rows}")
        if not self.rotate_s > 0:
            raise InvalidArgumentError(f"request_log_rotate_s must be > 0 seconds, got {self.rotate_s}")
        if self.queue_rows < 1 or self.row_group_rows < 1:
            raise InvalidArgumentError(f"queue_rows and row_group_rows must be >= 1, got {self.queue_rows}, "
                                       f"{self.row_group_rows}")


class _Entry(NamedTuple):
    time_us: int
    version: int
    inputs: Mapping[str, TensorSpec]
    arrays: Mapping[str, np.ndarray]  # prepared by the model (numbers; string ids are not used)
    outputs: Mapping[str, np.ndarray]
    rows: int
    raw: Callable[[], Mapping[str, list[Any]]] | None  # the string features as sent, read on the writer
    int_inputs: tuple[str, ...] = ()  # inputs that are int columns of the training data


def raw_string_columns(body: bytes, model: LoadedModel) -> dict[str, list[Any]]:
    """The string features of a predict body that :func:`jfx.core._rest.parse_predict_body`
    accepted, as sent (called on the log's writer thread, never on the request path)."""
    names = [n for n, s in model.inputs.items() if s.dtype == "string"]
    doc = json.loads(body)
    only = next(iter(model.inputs)) if len(model.inputs) == 1 else None
    if "instances" in doc:
        rows = doc["instances"]
        if only is not None:  # a one-input model takes bare values
            rows = [r if isinstance(r, dict) else {only: r} for r in rows]
        return {n: [r[n] for r in rows] for n in names}
    data = doc["inputs"]
    if only is not None and not isinstance(data, dict):
        data = {only: data}
    return {n: list(data[n]) for n in names}


_WHOLE_FROM = ("float32", "float16", "bfloat16")


def _whole_numbers(values: np.ndarray) -> tuple[pa.Array, int]:
    """Floats as int64 (NaN: null); a value that is not a whole number is null too. Returns
    the column and how many values were not whole."""
    flat = values.reshape(-1).astype(np.float64)
    missing = np.isnan(flat)
    whole = ~missing & (np.floor(flat) == flat) & (np.abs(flat) < 2.0 ** 63)
    bad = int((~missing & ~whole).sum())
    return pa.array(np.where(whole, flat, 0).astype(np.int64), type=pa.int64(), mask=~whole), bad


def _feature_array(spec: TensorSpec, values: Any, t: pa.DataType, on_not_whole: Callable[[int], None] | None = None,
                   ) -> pa.Array:
    """One feature's column for the log, from the prepared array (or the raw strings)."""
    if spec.dtype == "string":
        return pa.array(values, type=t)
    arr = np.asarray(values)
    if pa.types.is_int64(t) and spec.dtype in _WHOLE_FROM:  # an int column of the training data
        column, bad = _whole_numbers(arr)
        if bad and on_not_whole is not None:
            on_not_whole(bad)
        return column
    if spec.source_type == "bool":  # 0/1 floats, NaN for null
        flat = arr.reshape(-1)
        leaf: pa.Array = pa.array(flat == 1, type=pa.bool_(), mask=np.isnan(flat))
    else:
        if spec.dtype == "bfloat16":
            arr = arr.astype(np.float32)
        # a float feature's NaN is a null the client sent (JSON has no NaN)
        leaf = pa.array(arr.reshape(-1), type=_ARROW[spec.dtype], from_pandas=arr.dtype.kind == "f")
    for width in reversed(spec.shape):
        leaf = pa.FixedSizeListArray.from_arrays(leaf, int(width))
    return leaf


_ENCODE = json.JSONEncoder(allow_nan=False).encode


def _predictions(entries: list[_Entry]) -> list[str]:
    """Each row's outputs as JSON, as a row of the REST answer's ``predictions`` gives them
    (see :func:`jfx.core._rest.format_predictions`): the bare value of a one-output model,
    else an object in the model's output order; a non-finite number is null."""
    from jfx.core._rest import _json_values

    names = list(entries[0].outputs)
    cols = [_json_values(np.concatenate([e.outputs[n] for e in entries])) for n in names]
    if len(cols) == 1:
        return [_ENCODE(v) for v in cols[0]]
    return [_ENCODE(dict(zip(names, values, strict=True))) for values in zip(*cols, strict=True)]


def _batch(entries: list[_Entry], schema: pa.Schema, on_not_whole: Callable[[int], None] | None = None,
           ) -> pa.RecordBatch:
    """One Arrow batch of entries that share a signature."""
    inputs = entries[0].inputs
    columns: list[pa.Array] = []
    for name, spec in inputs.items():
        t = schema.field(name).type
        if spec.dtype == "string":
            values: list[Any] = []
            for e in entries:
                assert e.raw is not None
                values.extend(e.raw()[name])
            columns.append(_feature_array(spec, values, t))
        else:
            columns.append(_feature_array(spec, np.concatenate([e.arrays[name] for e in entries]), t, on_not_whole))
    counts = np.array([e.rows for e in entries])
    columns.append(pa.array(np.repeat(np.array([e.time_us for e in entries], np.int64), counts),
                            type=META_COLUMNS["_jfx_time"]))
    columns.append(pa.array(np.repeat(np.array([e.version for e in entries], np.int64), counts), pa.int64()))
    columns.append(pa.array(_predictions(entries), pa.string()))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _RawCache:
    """Reads an entry's raw strings once, though several features ask for them."""

    def __init__(self, read: Callable[[], Mapping[str, list[Any]]]):
        self._read = read
        self._value: Mapping[str, list[Any]] | None = None

    def __call__(self) -> Mapping[str, list[Any]]:
        if self._value is None:
            self._value = self._read()
        return self._value


class RequestLogger:
    """Logs sampled requests of one model as Parquet shards (see the module docstring).

    Args:
        config: where and how much.
        model_name: for the metrics' ``model`` label and the log lines.
        metrics: where rows, shards, drops and write errors are counted.

    Raises:
        StorageError: the folder cannot be created, or the store's bucket or credentials
            are refused (checked once, at start).
    """

    def __init__(self, config: RequestLogConfig, model_name: str, metrics: ServingMetrics):
        self.config = config
        self.model_name = model_name
        self.metrics = metrics
        self.remote = storage.is_remote(config.path)
        if self.remote:  # one listing proves the endpoint, the credentials and the bucket
            self.path = storage.check_root(config.path).rstrip("/")
        else:
            self.path = str(Path(storage.check_uri(config.path)).expanduser())
            try:
                Path(self.path).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise storage.StorageError(f"request log {self.path}: cannot create the folder "
                                           f"({err.strerror or err})") from err
        self._random = random.Random(config.seed)
        self._pending: list[_Entry] = []
        self._queued_rows = 0
        self._flushes: list[threading.Event] = []
        self._lock = threading.Lock()  # held to append to or swap the pending lists, nothing more
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._seq = 0
        self._staging = Path(tempfile.mkdtemp(prefix="jfx-request-log-")) if self.remote else None
        # the open shard (the writer thread's alone)
        self._inputs: Mapping[str, TensorSpec] | None = None
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._final = ""
        self._opened_at = 0.0
        self._opened_wall = datetime.now(timezone.utc)
        self._rows = 0  # rows in the open shard (written or buffered)
        self._entries = 0  # requests with rows in it
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._last_report: tuple[str, float] = ("", 0.0)
        self._thread = threading.Thread(target=self._run, name=f"jfx-request-log-{model_name}", daemon=True)
        self._thread.start()

    # -- the request path ------------------------------------------------------------------
    def sample(self) -> bool:
        """Whether to log the next request (one draw; always true at rate 1)."""
        return self.config.sample_rate >= 1 or self._random.random() < self.config.sample_rate

    def submit(self, version: int, model: LoadedModel, arrays: Mapping[str, np.ndarray],
               outputs: Mapping[str, np.ndarray], rows: int,
               raw: Callable[[], Mapping[str, list[Any]]] | None = None) -> bool:
        """Queues one answered request's rows; never blocks. Returns whether it was queued.

        Args:
            version: the version that answered.
            model: its model (its input signature types the columns).
            arrays: the prepared inputs (as :meth:`LoadedModel.prepare` made them).
            outputs: the model's outputs for these rows.
            rows: how many rows.
            raw: returns the string features as sent (feature → list of values); needed
                when the model has string inputs. Called later, on the writer thread.
        """
        if rows <= 0:
            return False
        if raw is None and any(s.dtype == "string" for s in model.inputs.values()):
            raise InvalidArgumentError("the model has string inputs: give raw=, the strings as sent")
        entry = _Entry(time.time_ns() // 1000, int(version), model.inputs, arrays, outputs, rows,
                       _RawCache(raw) if raw is not None else None,
                       tuple((model.metadata or {}).get(INT_INPUTS_KEY) or ()))
        with self._lock:
            queued = self._queued_rows + rows <= self.config.queue_rows and not self._stop.is_set()
            if queued:
                self._pending.append(entry)
                self._queued_rows += rows
            hurry = self._queued_rows * 2 > self.config.queue_rows
        if not queued:
            self.metrics.log_dropped.labels(self.model_name, "queue_full").inc()
            return False
        if hurry:  # else the writer comes within _WRITE_EVERY_S
            self._wake.set()
        return True

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = _WRITE_EVERY_S
            if self._rows:
                timeout = max(0.0, min(timeout, self._opened_at + self.config.rotate_s - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()
            with self._lock:
                taken, self._pending, self._queued_rows = self._pending, [], 0
                flushes, self._flushes = self._flushes, []
                # submit() reads the flag under this lock too: once it is seen here, nothing more comes
                stopping = self._stop.is_set()
            if taken:
                self._write(taken)
            if self._rows and (flushes or stopping or time.monotonic() - self._opened_at >= self.config.rotate_s):
                self._publish()
            for done in flushes:
                done.set()
            if stopping:
                return

    def _write(self, entries: list[_Entry]) -> None:
        start = 0
        while start < len(entries):
            inputs = entries[start].inputs  # a run of entries with one signature
            end = start + 1
            while end < len(entries) and entries[end].inputs is inputs:
                end += 1
            group, start = entries[start:end], end
            if self._inputs is not None and self._inputs is not inputs and self._inputs != inputs:
                self._publish()  # a version with other inputs: its rows go to a shard of their own schema
                self._discard()
            try:
                if self._inputs is None:
                    ints = group[0].int_inputs
                    self._inputs, self._schema = inputs, request_log_schema(inputs, ints)
                assert self._schema is not None
                batch = _batch(group, self._schema, self._not_whole)
            except Exception as err:  # noqa: BLE001 - these requests are not logged; reported and counted
                self.metrics.log_dropped.labels(self.model_name, "write_error").inc(len(group))
                self._report(f"request log: {len(group)} request(s) could not be converted: "
                             f"{type(err).__name__}: {err}")
                continue
            try:
                self._add(batch, len(group))
            except Exception as err:  # noqa: BLE001 - the log must never stop the server
                self._fail(err)

    def _add(self, batch: pa.RecordBatch, entries: int) -> None:
        """Appends rows to the open shard, publishing it at ``max_rows`` (a request may span two)."""
        offset = 0
        while offset < batch.num_rows:
            if not self._rows:  # a new shard, named after its first row's time
                self._opened_at = time.monotonic()
                first_us = batch.column(batch.schema.get_field_index("_jfx_time"))[offset].value
                self._opened_wall = _EPOCH + timedelta(microseconds=first_us)
            part = batch.slice(offset, self.config.max_rows - self._rows)
            offset += part.num_rows
            self._buffer.append(part)
            self._buffered += part.num_rows
            self._rows += part.num_rows
            self._entries += entries
            entries = 0
            if self._buffered >= self.config.row_group_rows:
                self._write_row_group()
            if self._rows >= self.config.max_rows:
                self._close_shard()

    def _write_row_group(self) -> None:
        """Writes the buffered rows as one row group of the open shard (opening it first)."""
        assert self._schema is not None
        if self._writer is None:
            name = shard_name(self._opened_wall, self._pid, self._seq)
            self._seq += 1
            if self.remote:
                assert self._staging is not None
                self._tmp, self._final = self._staging / name, storage.join(self.path, name)
            else:
                folder = Path(self.path)
                folder.mkdir(parents=True, exist_ok=True)  # again: it may have been removed meanwhile
                self._tmp, self._final = folder / f".{name}.tmp", str(folder / name)
            self._writer = pq.ParquetWriter(str(self._tmp), self._schema)
        table = pa.Table.from_batches(self._buffer, schema=self._schema)
        self._buffer, self._buffered = [], 0
        self._writer.write_table(table)

    def _close_shard(self) -> None:
        """Publishes the open shard: the rest of its rows, then a rename or one upload."""
        if not self._rows:
            return
        rows = self._rows
        self._write_row_group()
        assert self._writer is not None and self._tmp is not None
        self._writer.close()
        self._writer = None
        if self.remote:
            storage.write_bytes(self._final, self._tmp.read_bytes())
            self._tmp.unlink()
        else:
            os.replace(self._tmp, self._final)
        self._tmp = None
        self._rows = self._entries = 0  # the next shard goes on with the same schema
        self.metrics.log_rows.labels(self.model_name).inc(rows)
        self.metrics.log_shards.labels(self.model_name).inc()

    def _publish(self) -> None:
        try:
            self._close_shard()
        except Exception as err:  # noqa: BLE001 - the log must never stop the server
            self._fail(err)

    def _discard(self) -> None:
        """Forgets the open shard (removing a half-written file)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the shard is dropped; its error was reported
                pass
            self._writer = None
        if self._tmp is not None:
            try:
                self._tmp.unlink(missing_ok=True)
            except OSError:
                pass
            self._tmp = None
        self._buffer, self._buffered = [], 0
        self._rows = self._entries = 0
        self._inputs = self._schema = None

    def _fail(self, err: BaseException) -> None:
        """The open shard could not be written: its requests count as dropped; the problem is reported."""
        lost = self._entries
        self._discard()
        self.metrics.log_write_errors.labels(self.model_name).inc()
        if lost:
            self.metrics.log_dropped.labels(self.model_name, "write_error").inc(lost)
        detail = str(err).splitlines()[0][:300] if str(err).strip() else ""
        self._report(f"request log: a shard under {self.path} could not be written, {lost} request(s) lost: "
                     f"{type(err).__name__}: {detail}")

    def _not_whole(self, count: int) -> None:
        self.metrics.log_not_whole.labels(self.model_name).inc(count)
        self._report(f"request log: {count} value(s) of int columns were not whole numbers; logged as null")

    def _report(self, message: str) -> None:
        """Logs a problem when it appears, then at most once a minute while it lasts."""
        last, when = self._last_report
        now = time.monotonic()
        if message != last or now - when >= _REPORT_EVERY_S:
            log.warning("%s", message)
            self._last_report = (message, now)

    # -- life cycle ------------------------------------------------------------------------
    def flush(self, timeout: float = 60.0) -> bool:
        """Publishes what was submitted so far as a shard; returns once the writer has (or at timeout)."""
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Writes what is queued, publishes the open shard and stops the writer."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("request log: the writer did not finish within %.0f s; queued requests are lost", timeout)
        elif self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
