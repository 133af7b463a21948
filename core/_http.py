"""The model server's HTTP/1.1 front end: one asyncio event loop for every connection.

Each connection is an :class:`asyncio.Protocol` that parses requests out of its buffer
(request line, headers, a ``Content-Length`` or chunked body) and answers them in order
on a kept-alive connection. Status, metadata and OpenAPI answers are made on the loop.
A predict request is parsed and checked on the loop too (a bad one is answered 400 at
once, and never reaches a batch); then

* with batching on, its rows join the servable's queue. One model thread runs one batch
  at a time: the queued requests (in arrival order, up to ``max_batch_size`` rows) go to
  it as one model call; requests that arrive while it runs wait for the next. A request
  arriving at an idle model goes at once; after a batch, the next one waits (at most
  ``batch_timeout_ms``) for the clients that batch just answered, who are about to send
  again;
* with batching off, it runs on a pool of model threads, one model call per request.

No thread per connection: the loop does all the HTTP for every client, so a busy server
spends its interpreter time on requests, not on switching between threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np
from jfx.core._inference import add_labels, classify_results, regress_results
from jfx.core._rest import (
    ROUTES,
    HttpError,
    _empty_outputs,
    format_classify,
    format_predictions,
    format_regress,
    parse_examples_body,
    parse_predict_body,
)

if TYPE_CHECKING:
    from jfx.core._batching import Batcher
    from jfx.core._serving import ModelServer, Servable

__all__ = ["HttpFrontEnd", "MAX_BODY_BYTES"]

log = logging.getLogger("jfx.serve")

MAX_BODY_BYTES = 64 << 20
MAX_LINE = 65536
MAX_HEADERS = 100
IDLE_TIMEOUT_S = 300.0  # a keep-alive connection with no request for this long is closed
_SWEEP_S = 10.0  # at most this long between sweeps (shorter when the header timeout is)
_DIGITS = re.compile(r"[0-9]+")  # RFC 9110 §8.6: Content-Length = 1*DIGIT
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_STATUS_LINES = {int(s): f"HTTP/1.1 {int(s)} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus}


class _BadRequest(Exception):  # noqa: N818 - answered 400; never leaves this module
    """An HTTP-level error: answered, then the connection is closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Request:
    __slots__ = ("method", "target", "version", "headers", "body", "started", "model", "api", "model_version")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str], body: bytes):
        self.method, self.target, self.version, self.headers, self.body = method, target, version, headers, body
        # for the metrics: when it arrived whole, and what dispatch found out about it
        self.started = time.perf_counter()
        self.model, self.api = "", "none"
        self.model_version: int | None = None


class RawBody:
    """An answer that is not JSON (the Prometheus metrics' text)."""

    __slots__ = ("data", "content_type")

    def __init__(self, data: bytes, content_type: str):
        self.data, self.content_type = data, content_type


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.split(b"\r\n")
    request_line = lines[0].decode("latin-1")
    if len(lines[0]) > MAX_LINE:
        raise _BadRequest(414, "the request line is too long")
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, f"bad request line {request_line[:100]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431, f"more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise _BadRequest(400, f"bad header line {raw[:100]!r}")
        key = name.strip().lower()
        # a repeated field is one comma-separated list (RFC 9110 §5.3), so that two
        # Content-Length lines are seen, and compared, rather than the last one winning
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return parts[0], parts[1], parts[2], headers


def _body_length(headers: Mapping[str, str]) -> int | None:
    """The body's framing (RFC 9112 §6.3): ``None`` for chunked, else its byte count.

    Raises:
        _BadRequest: 400 when the framing is ambiguous (a length and chunked, lengths
            that differ, a length that is not digits, chunked not last), 501 for a
            transfer coding other than chunked, 413 for a body over MAX_BODY_BYTES.
    """
    te, length = headers.get("transfer-encoding"), headers.get("content-length")
    if te is not None:
        if length is not None:
            raise _BadRequest(400, "the request has both Content-Length and Transfer-Encoding; send one "
                                   "(RFC 9112 §6.3)")
        codings = [c.strip().lower() for c in te.split(",")]
        if codings[-1] != "chunked":
            raise _BadRequest(400, f"Transfer-Encoding {te!r} does not end with chunked, so the body has no "
                                   "length (RFC 9112 §6.3)")
        if len(codings) > 1:
            raise _BadRequest(501, f"Transfer-Encoding {te!r}: only chunked is supported")
        return None
    if length is None:
        return 0
    values = [v.strip() for v in length.split(",")]
    if not all(_DIGITS.fullmatch(v) for v in values):
        raise _BadRequest(400, f"Content-Length {length!r} is not a number of bytes")
    if len({int(v) for v in values}) > 1:
        raise _BadRequest(400, f"the request has conflicting Content-Length values {length!r} (RFC 9112 §6.3)")
    n = int(values[0])
    if n > MAX_BODY_BYTES:
        raise _BadRequest(413, f"the body has {n} bytes; at most {MAX_BODY_BYTES} are accepted")
    return n


class _Connection(asyncio.Protocol):
    """One client connection: parse, answer in order, keep alive."""

    def __init__(self, front: HttpFrontEnd):
        self.front = front
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a request of this connection is being answered
        self.closing = False
        self.eof = False  # the client half-closed: answer what it sent, then close
        self.last_active = front.loop.time()
        # when the head now awaited began to be awaited (None: none is): from the accept
        # for the first request, from its first byte for a later one; see HttpFrontEnd._sweep
        self.head_since: float | None = self.last_active
        self._continued = False  # 100 Continue sent for the request now arriving

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.front.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def eof_received(self) -> bool:
        # a client may half-close (shutdown(SHUT_WR)) after its last request: keep the
        # transport open for writing, answer what is buffered, then close (see _next)
        self.eof = True
        if not self.busy:
            self._next()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.front.connections.discard(self)

    # -- parsing ---------------------------------------------------------------------------
    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        """Answer the next complete request in the buffer, if there is one."""
        while not self.busy and not self.closing and self.buf:
            try:
                request = self._take_request()
            except _BadRequest as err:
                self._respond(err.status, {"error": err.message}, close=True)
                self.front.app.metrics.record_request("", None, "none", err.status, 0.0)
                return
            if request is None:
                break
            self.last_active = self.front.loop.time()
            self.head_since = None
            self.busy = True
            self.front.dispatch(self, request)
        if self.busy or self.closing:
            return
        if self.eof:  # nothing more will come: what is left can never be a whole request
            if self.buf:
                self._respond(400, {"error": "the client closed its side of the connection before the request "
                                             f"was complete ({len(self.buf)} bytes of it arrived)"}, close=True)
            else:
                self._close()
        elif self.buf and self.head_since is None and b"\r\n\r\n" not in self.buf:
            self.head_since = self.front.loop.time()  # the first bytes of the next head

    def _take_request(self) -> _Request | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_LINE * 4:
                raise _BadRequest(431, "the request head is too large")
            return None
        method, target, version, headers = _parse_head(bytes(buf[:end]))
        self.head_since = None  # the head is whole; its body may take longer
        start = end + 4
        n = _body_length(headers)
        if headers.get("expect", "").lower() == "100-continue" and not self._continued:
            self._continued = True
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if n is None:
            parsed = self._chunked(start)
            if parsed is None:
                return None
            body, consumed = parsed
        else:
            if len(buf) < start + n:
                return None
            body, consumed = bytes(buf[start:start + n]), start + n
        del buf[:consumed]
        self._continued = False
        return _Request(method, target, version, headers, body)

    def _chunked(self, pos: int) -> tuple[bytes, int] | None:
        buf, total = self.buf, 0
        parts: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            digits = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):  # int(..., 16) would also take "0x1f", "+1f" and "1_f"
                raise _BadRequest(400, f"a malformed chunk size {digits[:20]!r} in the chunked body")
            size = int(digits, 16)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(413, f"the body has more than {MAX_BODY_BYTES} bytes")
            pos = eol + 2
            if size == 0:
                while True:  # trailers, up to the empty line
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        return None
                    line, pos = buf[pos:eol], eol + 2
                    if not line.strip():
                        return b"".join(parts), pos
            if len(buf) < pos + size + 2:
                return None
            parts.append(bytes(buf[pos:pos + size]))
            pos += size + 2

    # -- answering -------------------------------------------------------------------------
    def _respond(self, status: int, payload: Any, headers: Mapping[str, str] | None = None, *,
                 close: bool = False, version: str = "HTTP/1.1") -> None:
        if self.transport is None or self.transport.is_closing():
            self.closing = True
            return
        content_type = b"application/json"
        try:
            if isinstance(payload, RawBody):
                body, content_type = payload.data, payload.content_type.encode("latin-1")
            else:
                body = json.dumps(payload, allow_nan=False).encode()  # RFC 8259: no NaN, no Infinity
        except ValueError as err:  # a bug upstream (answers null their non-finite outputs)
            log.error("an answer with status %d is not RFC 8259 JSON: %s", status, err)
            status, close = 500, True
            body = json.dumps({"error": f"internal error: the answer is not valid JSON: {err}"}).encode()
        head = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n".encode("latin-1"),
                b"Server: jfx-serve\r\nContent-Type: ", content_type, b"\r\nContent-Length: ",
                str(len(body)).encode(), b"\r\n"]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}\r\n".encode("latin-1"))
        if close:
            head.append(b"Connection: close\r\n")
        elif version == "HTTP/1.0":
            head.append(b"Connection: keep-alive\r\n")
        head.append(b"\r\n")
        head.append(body)
        self.transport.write(b"".join(head))
        if close:
            self.closing = True
            self.transport.close()

    def finish(self, request: _Request, status: int, payload: Any, headers: Mapping[str, str] | None = None,
               *, close: bool = False) -> None:
        """Answer ``request`` and go on with the next one in the buffer."""
        conn = request.headers.get("connection", "").lower()
        close = close or conn == "close" or (request.version == "HTTP/1.0" and conn != "keep-alive")
        self._respond(status, payload, headers, close=close, version=request.version)
        self.front.app.metrics.record_request(request.model, request.model_version, request.api, status,
                                              time.perf_counter() - request.started)
        self.busy = False
        if not self.closing:
            self._next()


class _Queue:
    """The requests waiting for a servable's next batch (batching on; used on the loop only).

    When the model thread is free, a request that arrives goes at once (a lone client
    never waits). When a batch ends with fewer rows queued than a full batch, the clients
    it just answered are about to send again: the next batch waits for them, until it
    holds as many rows as were queued plus the requests just answered (at most
    ``max_batch_size``), or ``batch_timeout_ms`` has passed.
    """

    def __init__(self, front: HttpFrontEnd, batcher: Batcher, version: int):
        self.front, self.batcher, self.version = front, batcher, version
        # (columns, rows, done, when queued)
        self.waiting: deque[tuple[Mapping[str, np.ndarray], int, Callable[[Any, BaseException | None], None],
                                  float]] = deque()
        self.rows = 0
        self.running = False
        self.target = 0  # rows to wait for before the next batch (0: go at once)
        self.timer: asyncio.Handle | None = None

    def add(self, columns: Mapping[str, np.ndarray], rows: int,
            done: Callable[[Any, BaseException | None], None]) -> None:
        self.waiting.append((columns, rows, done, time.perf_counter()))
        self.rows += rows
        if self.running:
            return
        if self.timer is None:
            # after this turn of the loop: requests that arrived together go together
            self.timer = self.front.loop.call_soon(self._flush)
        elif self.rows >= self.target:
            self.timer.cancel()
            self.timer = self.front.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.timer = None
        if self.running or not self.waiting:
            return
        front, batcher = self.front, self.batcher
        self.target = 0
        taken = [self.waiting.popleft()]
        total = taken[0][1]
        while self.waiting and total + self.waiting[0][1] <= batcher.max_batch_size:
            taken.append(self.waiting.popleft())
            total += taken[-1][1]
        self.rows -= total
        self.running = True
        now = time.perf_counter()
        front.app.metrics.record_batch(front.app.model_name, self.version, total, [now - t[3] for t in taken])
        future = front.model_pool.submit(batcher.run_batch, [t[0] for t in taken], [t[1] for t in taken])
        future.add_done_callback(lambda f: front.loop.call_soon_threadsafe(self._done, taken, f))

    def _done(self, taken: list[Any], future: Future) -> None:
        self.running = False
        try:
            results = future.result()
        except BaseException as err:  # noqa: BLE001 - every request of the batch gets it
            for _, _, done, _ in taken:
                done(None, err)
        else:
            for (_, _, done, _), result in zip(taken, results, strict=True):
                done(result, None)
        batcher = self.batcher
        expected = min(batcher.max_batch_size, self.rows + len(taken))
        if self.waiting and self.rows < expected and batcher.timeout_s > 0:
            self.target = expected
            self.timer = self.front.loop.call_later(batcher.timeout_s, self._flush)
        elif self.waiting:
            self._flush()
        else:
            # nothing queued: the next request goes at once, unless the clients just
            # answered come back within the timeout together
            self.target = 0


class HttpFrontEnd:
    """Serves a :class:`ModelServer`'s routes on an asyncio loop in a background thread."""

    def __init__(self, app: ModelServer, host: str, port: int):
        self.app = app
        self.header_timeout_s = float(app.config.header_timeout_s)
        self._sweep_s = min(_SWEEP_S, self.header_timeout_s / 2)
        self.loop = asyncio.new_event_loop()
        workers = max(4, os.cpu_count() or 1)
        self.model_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jfx-serve-model")
        # one queue per loaded version; it goes when the version is unloaded and dropped
        self._queues: weakref.WeakKeyDictionary[Servable, _Queue] = weakref.WeakKeyDictionary()
        self.connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, name="jfx-serve-http", daemon=True)
        self._ready = threading.Event()
        # set when the loop has ended. Waiting on it, not on Thread.join: a join that a signal
        # interrupts (Ctrl-C, SIGTERM) marks the thread as ended while it still runs (CPython 3.11)
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._host, self._port = host, port
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._server = self.loop.run_until_complete(self.loop.create_server(
                lambda: _Connection(self), self._host, self._port, backlog=1024, reuse_address=True))
        except BaseException as err:  # noqa: BLE001 - raised in the starting thread
            self._error = err
            self._finished.set()
            self._ready.set()
            return
        self._ready.set()
        self.loop.call_later(self._sweep_s, self._sweep)
        try:
            self.loop.run_forever()
        finally:
            try:
                self._server.close()
                self.loop.run_until_complete(self._server.wait_closed())
                self.loop.close()
            finally:
                self._finished.set()

    def _sweep(self) -> None:
        """Close the connections that hold resources for nothing (one sweep, not a timer per request).

        A head awaited for over ``header_timeout_s`` (a client that connected and sent
        nothing, or sends its head too slowly) is answered 408, or just closed when not
        a byte of it came; a kept-alive connection idle for IDLE_TIMEOUT_S is closed.
        """
        now = self.loop.time()
        for conn in list(self.connections):
            if conn.busy or conn.closing:
                continue
            # the server answers and closes its own connections (SLF001)
            if conn.head_since is not None and now - conn.head_since > self.header_timeout_s:
                if conn.buf:
                    why = f"the request head did not arrive within {self.header_timeout_s:g} s (header_timeout_s)"
                    conn._respond(408, {"error": why}, close=True)  # noqa: SLF001
                else:
                    conn._close()  # noqa: SLF001
            elif conn.last_active < now - IDLE_TIMEOUT_S:
                conn._close()  # noqa: SLF001
        self.loop.call_later(self._sweep_s, self._sweep)

    def is_alive(self) -> bool:
        return not self._finished.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._finished.wait(timeout)

    def close(self) -> None:
        """Stops the loop; returns once it has answered what it was answering and ended."""
        if not self._finished.is_set():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._finished.wait(10)
        self.model_pool.shutdown(wait=False, cancel_futures=True)

    # -- routing ---------------------------------------------------------------------------
    def dispatch(self, conn: _Connection, request: _Request) -> None:
        app = self.app
        try:
            path = request.target.split("?", 1)[0]
            for template, regex, methods in ROUTES:  # noqa: B007 - template and methods are read after the loop
                m = regex.fullmatch(path)
                if m:
                    break
            else:
                raise HttpError(404, f"no route {path!r}; see /v1/openapi.json for the routes")
            handler = methods.get(request.method)
            if handler is None:
                allow = ", ".join(methods)
                raise HttpError(405, f"{template} takes {allow}, not {request.method}", {"Allow": allow})
            request.api = handler
            groups = m.groupdict()
            if handler == "openapi":
                conn.finish(request, 200, app.openapi)
                return
            if handler == "metrics":
                conn.finish(request, 200, RawBody(*app.metrics.exposition()))
                return
            name = unquote(groups["name"])
            if name != app.model_name:
                raise HttpError(404, f"no model named {name!r}; this server serves {app.model_name!r}")
            request.model = name
            version, label = groups.get("version"), groups.get("label")
            if handler == "status":
                conn.finish(request, 200, app.status_json(version, None if label is None else unquote(label)))
                return
            servable = app.servable(version, None if label is None else unquote(label))
            request.model_version = servable.version
            if handler == "metadata":
                conn.finish(request, 200, app.metadata_json(servable))
                return
            answer: Callable[[Mapping[str, np.ndarray]], Any]
            head = servable.head
            if handler == "predict":
                kind, arrays, n = parse_predict_body(request.body, servable.model)

                def answer(outputs: Mapping[str, np.ndarray]) -> Any:
                    return format_predictions(kind, add_labels(head, outputs), n)
            else:
                app.require(servable, handler)
                arrays, n = parse_examples_body(request.body, servable.model)
                if handler == "classify":
                    def answer(outputs: Mapping[str, np.ndarray]) -> Any:
                        return format_classify(classify_results(head, outputs))
                else:
                    def answer(outputs: Mapping[str, np.ndarray]) -> Any:
                        return format_regress(regress_results(outputs))
            if n == 0:
                conn.finish(request, 200, answer(_empty_outputs(servable.model)))
                return
            self._predict(conn, request, servable, arrays, n, answer)
        except HttpError as err:
            conn.finish(request, err.status, {"error": err.message}, err.headers)
        except Exception as err:  # answered 500, logged
            log.exception("%s %s failed", request.method, request.target)
            conn.finish(request, 500, {"error": f"internal error: {type(err).__name__}: {err}"}, close=True)

    def _predict(self, conn: _Connection, request: _Request, servable: Servable, arrays: Mapping[str, np.ndarray],
                 n: int, answer: Callable[[Mapping[str, np.ndarray]], Any]) -> None:
        def done(outputs: Any, err: BaseException | None) -> None:
            if err is not None:
                if isinstance(err, HttpError):
                    conn.finish(request, err.status, {"error": err.message}, err.headers)
                    return
                log.error("%s %s failed: %s: %s", request.method, request.target, type(err).__name__, err)
                conn.finish(request, 500, {"error": f"internal error: {type(err).__name__}: {err}"}, close=True)
                return
            try:
                payload = answer(outputs)
            except Exception as exc:
                log.exception("formatting the answer failed")
                conn.finish(request, 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}, close=True)
                return
            if request.api == "predict":  # the request log holds predict bodies' rows
                try:  # queued (never waited for) before the answer goes: a client that has it finds it logged
                    self.app.log_request(servable, arrays, outputs, n, request.body)
                except Exception:  # the log is never the request's problem
                    log.exception("logging a request failed")
            conn.finish(request, 200, payload)

        self.submit(servable, arrays, n, done)

    def submit(self, servable: Servable, arrays: Mapping[str, np.ndarray], n: int,
               done: Callable[[Any, BaseException | None], None]) -> None:
        """Runs ``n`` prepared rows on ``servable`` (in its next batch, with batching on);
        ``done(outputs, error)`` is called on the loop. Call on the loop: the REST and gRPC
        front ends both send their rows here, so their requests share batches."""
        if servable.batcher is not None:
            queue = self._queues.get(servable)
            if queue is None:
                queue = self._queues[servable] = _Queue(self, servable.batcher, servable.version)
            queue.add(arrays, n, done)
            return

        def deliver(f: Future) -> None:
            err = f.exception()
            if err is not None:
                done(None, err)
            else:
                done(f.result(), None)

        future = self.model_pool.submit(servable.model.run_prepared, arrays)
        future.add_done_callback(lambda f: self.loop.call_soon_threadsafe(deliver, f))

    async def run(self, servable: Servable, arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """:meth:`submit` for a coroutine on the loop (the gRPC front end): the outputs of ``n`` rows."""
        result: asyncio.Future[dict[str, np.ndarray]] = self.loop.create_future()

        def done(outputs: Any, err: BaseException | None) -> None:
            if result.done():
                return  # the call was cancelled meanwhile
            if err is not None:
                result.set_exception(err)
            else:
                result.set_result(outputs)

        self.submit(servable, arrays, n, done)
        return await result
