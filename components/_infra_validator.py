"""InfraValidator: does the model load and answer in the real model server?

It starts ``jfx serve`` (``python -m jfx.core._serving``) on the model in a subprocess,
bound to a free port on 127.0.0.1, with the model laid out as the server expects
(``<tmp>/<name>/1/`` → a symlink to the artifact, a copy where symlinks are not
allowed). Once the server reports version 1 ``AVAILABLE`` (a bounded wait), it sends real
HTTP predict requests built from ``examples`` (rows of one split restricted to the model's
inputs; without examples, zero-valued rows made from the signature) and checks:

* ``loaded``: the version became AVAILABLE within ``timeout_s``;
* ``status``: every request answered HTTP 200;
* ``outputs``: the answers carry the signature's outputs with the expected shapes;
* ``finite``: every number is finite;
* ``consistent``: the answers equal the in-process predictions of ``jfx.core.load``
  (floats within rtol 1e-4 / atol 1e-5, integers exactly);
* ``latency``: the p99 of one-row requests is at most ``max_latency_ms``.

A Model recorded on an object store is served from the local copy the runner downloads
its inputs into (the fingerprint-keyed cache of :mod:`jfx._storage`); the report names
the recorded URI.

The server is always stopped (also on an error or a timeout). A model that fails a check
is not blessed — the node still completes, with the reasons (and, when the server failed,
the tail of its stderr) in ``infra_blessing.json`` and the properties.

Example:
    >>> infra = InfraValidator(model=trainer.outputs["model"], examples=gen.outputs["examples"],  # doctest: +SKIP
    ...                        request_spec={"split": "eval", "num_examples": 20, "max_latency_ms": 200})
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from jfx import _storage as storage
from jfx.components._examples import local_dir, split_files, split_names
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.pipelines._artifacts import Examples, InfraBlessing, Model
from jfx.pipelines._component import Input, Output, Parameter, component

__all__ = ["INFRA_BLESSING_FILE", "InfraValidator", "RequestSpec", "ServerProcess", "validate_model"]

INFRA_BLESSING_FILE = "infra_blessing.json"
SERVED_NAME = "model"
SERVED_VERSION = 1
RTOL, ATOL = 1e-4, 1e-5
STDERR_TAIL_CHARS = 3000
_SIGNATURE = "signature.json"

_SPEC_HELP = """\
Right:
  request_spec={"split": "eval", "num_examples": 10, "max_latency_ms": 1000, "timeout_s": 60}
  (every key optional; these are the defaults)"""


@dataclass(frozen=True)
class RequestSpec:
    """How InfraValidator queries the server (``request_spec``).

    Attributes:
        split: the examples split the request rows come from.
        num_examples: rows sent: one request per row (timed), then one request with all rows.
        max_latency_ms: the p99 latency of the one-row requests must not exceed this.
        timeout_s: the longest wait for the server to load the model, and for any answer.
    """

    split: str = "eval"
    num_examples: int = 10
    max_latency_ms: float = 1000.0
    timeout_s: float = 60.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> RequestSpec:
        """Checks and reads ``request_spec``.

        Raises:
            InvalidArgumentError: an unknown key or a bad value.
        """
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"split", "num_examples", "max_latency_ms", "timeout_s"})
        if unknown:
            raise InvalidArgumentError(f"request_spec has unknown key(s) {unknown}.\n{_SPEC_HELP}")
        spec = cls()
        split = raw.get("split", spec.split)
        if not isinstance(split, str) or not split:
            raise InvalidArgumentError(f"request_spec['split'] must be a split name, got {split!r}.\n{_SPEC_HELP}")
        n = raw.get("num_examples", spec.num_examples)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10_000:
            raise InvalidArgumentError(f"request_spec['num_examples'] must be an int from 1 to 10000, got {n!r}")
        values = {}
        for key in ("max_latency_ms", "timeout_s"):
            v = raw.get(key, getattr(spec, key))
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                raise InvalidArgumentError(f"request_spec[{key!r}] must be a positive number, got {v!r}")
            values[key] = float(v)
        return cls(split, n, values["max_latency_ms"], values["timeout_s"])


# ----------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``jfx serve`` on one model, in a subprocess on 127.0.0.1; use as a context manager.

    ``__exit__`` always stops the process (SIGTERM, then SIGKILL after 5 s) and removes
    the temporary model base path. ``pid`` stays readable afterwards (tests check that
    the process is gone).
    """

    def __init__(self, model_uri: str | Path, *, name: str = SERVED_NAME, version: int = SERVED_VERSION,
                 warmup_batch_sizes: tuple[int, ...] | None = None) -> None:
        self.model_uri = Path(model_uri).resolve()
        # None: the server's default warm-up (every padded batch size up to its max_batch_size)
        self.warmup_batch_sizes = tuple(warmup_batch_sizes) if warmup_batch_sizes else None
        self.name = name
        self.version = version
        self.port = 0
        self.pid: int | None = None
        self.returncode: int | None = None
        self.command: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._stderr_path: Path | None = None

    def __enter__(self) -> ServerProcess:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self.start()

    def start(self) -> ServerProcess:
        """Lays the model out under a temporary base path and starts the server on a free port."""
        if self._proc is not None:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="jfx-infra-"))
        try:
            base = self._tmp / self.name
            base.mkdir()
            target = base / str(self.version)
            try:
                target.symlink_to(self.model_uri, target_is_directory=True)
            except OSError:  # no symlinks here (e.g. Windows without the privilege): copy
                shutil.copytree(self.model_uri, target)
            self._stderr_path = self._tmp / "server.log"
            self.port = _free_port()
            self.command = [sys.executable, "-m", "jfx.core._serving", "serve", "--model_base_path", str(base),
                            "--model_name", self.name, "--host", "127.0.0.1", "--port", str(self.port),
                            "--poll_interval_s", "0"]
            if self.warmup_batch_sizes:
                self.command += ["--warmup_batch_sizes", ",".join(str(n) for n in self.warmup_batch_sizes)]
            env = dict(os.environ)
            env.setdefault("PYTHONUNBUFFERED", "1")
            env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share an accelerator with the caller
            env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            env["JFX_SERVE_PARENT_PID"] = str(os.getpid())  # jfx.core._serving: stop when this process dies
            with open(self._stderr_path, "wb") as log:
                self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=env, cwd=str(self._tmp))
            self.pid = self._proc.pid
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def exited(self) -> int | None:
        """The exit code if the process has ended, else ``None``."""
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> None:
        """Stops the server (idempotent) and removes the temporary folder once its log was read."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self.returncode = proc.returncode
            self._log_tail = self._read_log()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _read_log(self) -> str:
        try:
            data = self._stderr_path.read_bytes() if self._stderr_path else b""
        except OSError:
            return ""
        return data[-STDERR_TAIL_CHARS:].decode("utf-8", "replace")

    def log_tail(self) -> str:
        """The last characters of the server's stdout and stderr."""
        if self._proc is not None:
            return self._read_log()
        return getattr(self, "_log_tail", "")

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> tuple[int, Any, float]:
        """One HTTP request; returns ``(status, JSON answer or text, seconds)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            t0 = time.perf_counter()
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            elapsed = time.perf_counter() - t0
        finally:
            conn.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = raw.decode("utf-8", "replace")
        return resp.status, answer, elapsed

    def wait_available(self, timeout_s: float) -> tuple[bool, str]:
        """Waits until the version is AVAILABLE; returns ``(ok, why not)``."""
        deadline = time.monotonic() + timeout_s
        status_path = f"/v1/models/{self.name}"
        last = "no answer yet"
        while True:
            code = self.exited()
            if code is not None:
                return False, f"the model server exited with code {code} before the model was available"
            try:
                status, answer, _ = self.request("GET", status_path, timeout=max(0.5, min(5.0, timeout_s)))
            except (OSError, http.client.HTTPException) as err:
                last = f"{type(err).__name__}: {err}"
            else:
                versions = answer.get("model_version_status", []) if isinstance(answer, dict) else []
                mine = next((v for v in versions if str(v.get("version")) == str(self.version)), None)
                if mine is not None and mine.get("state") == "AVAILABLE":
                    return True, ""
                if mine is not None and mine.get("state") == "END":
                    error = (mine.get("status") or {}).get("error_message") or "unloaded"
                    return False, f"the model server could not load the model: {error}"
                if mine is None and status == 200:
                    # the server answers only after its first scan, and it polls no more: it never will
                    return False, (f"the model server found no version {self.version} (a version folder counts "
                                   f"once it has {_SIGNATURE}); it reported {versions}")
                last = f"HTTP {status}: {answer}"
            if time.monotonic() >= deadline:
                return False, f"the model was not available after {timeout_s:g}s (last status: {last})"
            time.sleep(0.02)


# ----------------------------------------------------------------------------- requests and checks


def _example_rows(examples: Examples, split: str, inputs: list[str], n: int) -> list[dict[str, Any]]:
    names = split_names(examples)
    if split not in names:
        raise DataValidationError(f"request_spec['split'] is {split!r}, but the examples have splits {names}; "
                                  f"pass request_spec={{'split': {names[0]!r}}} (or another of them)")
    rows: list[dict[str, Any]] = []
    for f in split_files(examples, split):
        pf = storage.open_parquet(f)  # streamed: only the first rows are read
        schema_names = pf.schema_arrow.names
        missing = [c for c in inputs if c not in schema_names]
        if missing:
            raise _NotServable(f"the examples ({f}) lack the model input column(s) {missing}; "
                               "the model cannot be queried with them")
        for batch in pf.iter_batches(batch_size=max(n - len(rows), 1), columns=inputs):
            rows.extend(batch.slice(0, n - len(rows)).to_pylist())
            if len(rows) >= n:
                break
        if len(rows) >= n:
            break
    if not rows:
        raise _NotServable(f"split {split!r} of the examples has no rows to send")
    return rows


def _synthetic_rows(signature: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    row = {}
    for name, spec in signature["inputs"].items():
        shape = [int(d) for d in spec.get("shape") or []]
        if spec["dtype"] == "string":
            vocab = (spec.get("encoder") or {}).get("vocabulary") or [""]
            value: Any = vocab[0]
        elif spec["dtype"] == "bool":
            value = False
        else:
            value = 0
        row[name] = np.full(shape, value, dtype=object).tolist() if shape else value
    return [dict(row) for _ in range(n)]


class _NotServable(Exception):  # noqa: N818 - a verdict, not an error: never leaves this module
    """A reason the model cannot be blessed (caught; becomes a reason)."""


def _answer_columns(answer: Any, outputs: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """TF Serving's ``{"predictions": [...]}`` back to output → array."""
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        raise _NotServable(f"the answer has no \"predictions\" list: {str(answer)[:300]}")
    preds = answer["predictions"]
    if len(preds) != n:
        raise _NotServable(f"the answer has {len(preds)} predictions for {n} instances")
    names = list(outputs)
    if len(names) == 1 and not (preds and isinstance(preds[0], dict)):
        cols = {names[0]: preds}
    else:
        bad = [p for p in preds if not isinstance(p, dict)]
        if bad:
            raise _NotServable(f"a prediction is not an object of outputs: {str(bad[0])[:200]}")
        keys = set().union(*(p.keys() for p in preds)) if preds else set()
        if keys != set(names):
            raise _NotServable(f"the answer has outputs {sorted(keys)}; the signature has {sorted(names)}")
        cols = {k: [p[k] for p in preds] for k in names}
    out = {}
    for k, values in cols.items():
        if outputs[k]["dtype"] == "string":  # a label output (``classes``)
            arr = np.asarray(values, dtype=object)
            if not all(isinstance(v, str) for v in arr.reshape(-1)):
                raise _NotServable(f"output {k!r} is not strings: {str(values)[:200]}")
        else:
            try:
                arr = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise _NotServable(f"output {k!r} is not numeric: {err}") from err
        want = (n, *[int(d) for d in outputs[k].get("shape") or []])
        if arr.shape != want:
            raise _NotServable(f"output {k!r} has shape {list(arr.shape)}; expected {list(want)}")
        out[k] = arr
    return out


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _compare(server: Mapping[str, np.ndarray], local: Mapping[str, np.ndarray],
             outputs: Mapping[str, Any]) -> list[str]:
    problems = []
    for k, got in server.items():
        if outputs[k]["dtype"] == "string":
            if not np.array_equal(got, np.asarray(local[k], dtype=object)):
                problems.append(f"output {k!r} differs from the in-process prediction")
            continue
        want = np.asarray(local[k], dtype=np.float64)
        integral = np.dtype(outputs[k]["dtype"]).kind in "iub"
        ok = np.array_equal(got, want) if integral else np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=False)
        if not ok:
            diff = float(np.nanmax(np.abs(got - want))) if got.shape == want.shape else float("nan")
            problems.append(f"output {k!r} differs from the in-process prediction (max abs diff {diff:.3g})")
    return problems


def validate_model(model_uri: str | Path, rows_from: Any, spec: RequestSpec) -> dict[str, Any]:
    """Runs the whole check against a server subprocess; returns the report.

    Args:
        model_uri: the model artifact folder.
        rows_from: an ``Examples`` artifact, or ``None`` (zero-valued rows from the signature).
        spec: the request spec.

    Returns:
        ``{"blessed", "reasons", "checks", "latency_ms", "load_s", "requests", "server"}``
        (the content of ``infra_blessing.json``).
    """
    from jfx.core import load
    from jfx.core._inference import head_of, output_specs

    checks: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []

    def check(name: str, passed: bool, detail: str = "", **extra: Any) -> bool:
        checks[name] = {"passed": bool(passed), "detail": detail, **extra}
        if not passed:
            reasons.append(f"{name}: {detail}")
        return passed

    report: dict[str, Any] = {"request_spec": asdict(spec), "checks": checks, "reasons": reasons,
                              "latency_ms": None, "load_s": None, "requests": 0,
                              "rows_from": "examples" if rows_from is not None else "signature"}
    signature: dict[str, Any] | None = None
    local_model = None
    prepared: tuple[list[dict[str, Any]], dict[str, Any]] | _NotServable | None = None
    servers: list[ServerProcess] = []
    try:
        for attempt in range(3):  # a retry only when the free port was taken before the server bound it
            # warm up only the batch sizes the checks send: one row, then all rows at once
            server = ServerProcess(model_uri, warmup_batch_sizes=(1, spec.num_examples))
            servers.append(server)
            server.start()
            t0 = time.perf_counter()
            if attempt == 0:  # the in-process model loads while the server starts
                try:
                    signature = json.loads((Path(model_uri) / _SIGNATURE).read_text(encoding="utf-8"))
                    local_model = load(model_uri)
                except Exception as err:  # noqa: BLE001 - an unloadable model is a verdict, not a crash
                    check("loads_in_process", False, f"jfx.core.load failed: {type(err).__name__}: {err}")
                else:
                    check("loads_in_process", True)
                    try:  # and computes the answers to expect (compiling its batch sizes)
                        prepared = _request_rows(local_model, signature, rows_from, spec)
                    except _NotServable as err:
                        prepared = err
            ok, why = server.wait_available(spec.timeout_s)
            report["load_s"] = round(time.perf_counter() - t0, 3)
            if ok or server.exited() is None or "Address already in use" not in server.log_tail():
                break
            server.stop()
        if check("loaded", ok, why) and local_model is not None and signature is not None:
            if isinstance(prepared, _NotServable):
                raise prepared
            assert prepared is not None  # prepared whenever there is a local model
            # the outputs the server answers: the signature's, and a labelled classifier's ``classes``
            answered = {**signature, "outputs": output_specs(local_model, head_of(local_model))}
            _query(server, answered, *prepared, spec, check, report)
    except _NotServable as err:
        check("requests", False, str(err))
    finally:
        for started in servers:
            started.stop()
    report["server"] = {"command": server.command, "pid": server.pid, "returncode": server.returncode}
    if checks.get("loaded", {}).get("passed") is False or checks.get("status", {}).get("passed") is False:
        report["server"]["log_tail"] = server.log_tail()
        reasons.append(f"server log (tail):\n{server.log_tail().strip()[-1500:]}")
    report["blessed"] = not reasons
    return report


def _request_rows(local_model: Any, signature: dict[str, Any], rows_from: Any,
                  spec: RequestSpec) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The request rows and the in-process model's outputs for them."""
    inputs = list(signature["inputs"])
    if rows_from is not None:
        rows = _example_rows(rows_from, spec.split, inputs, spec.num_examples)
    else:
        rows = _synthetic_rows(signature, spec.num_examples)
    from jfx.core._inference import add_labels, head_of

    try:
        # what the server answers: the model's outputs, and a labelled classifier's ``classes``
        expected = dict(add_labels(head_of(local_model), local_model(rows)))
    except Exception as err:  # the rows do not fit the model
        raise _NotServable(f"the in-process model rejects the request rows: {type(err).__name__}: {err}") from err
    return rows, expected


def _query(server: ServerProcess, signature: dict[str, Any], rows: list[dict[str, Any]], expected: dict[str, Any],
           spec: RequestSpec, check: Any, report: dict[str, Any]) -> None:
    outputs = signature["outputs"]
    path = f"/v1/models/{server.name}:predict"
    latencies: list[float] = []
    answers: list[tuple[list[int], Any]] = []
    failures: list[str] = []
    for i, row in enumerate(rows):  # one row per request: the latency a single client sees
        try:
            status, answer, seconds = server.request("POST", path, {"instances": [row]}, timeout=spec.timeout_s)
        except (OSError, http.client.HTTPException) as err:
            failures.append(f"request {i}: {type(err).__name__}: {err}")
            break
        report["requests"] += 1
        latencies.append(seconds * 1000.0)
        if status != 200:
            failures.append(f"request {i}: HTTP {status}: {str(answer)[:300]}")
        else:
            answers.append(([i], answer))
    if not failures:  # all rows in one request: batching on the server's side
        try:
            status, answer, _ = server.request("POST", path, {"instances": rows}, timeout=spec.timeout_s)
            report["requests"] += 1
            if status != 200:
                failures.append(f"the {len(rows)}-row request: HTTP {status}: {str(answer)[:300]}")
            else:
                answers.append((list(range(len(rows))), answer))
        except (OSError, http.client.HTTPException) as err:
            failures.append(f"the {len(rows)}-row request: {type(err).__name__}: {err}")
    if latencies:
        report["latency_ms"] = {"p50": round(_percentile(latencies, 50), 3),
                                "p99": round(_percentile(latencies, 99), 3),
                                "max": round(max(latencies), 3), "mean": round(float(np.mean(latencies)), 3),
                                "count": len(latencies)}
    if not check("status", not failures, "; ".join(failures[:3])):
        return
    shape_problems: list[str] = []
    finite_problems: list[str] = []
    consistency: list[str] = []
    for idx, answer in answers:
        try:
            cols = _answer_columns(answer, outputs, len(idx))
        except _NotServable as err:
            shape_problems.append(str(err))
            continue
        for k, arr in cols.items():
            if arr.dtype != object and not np.all(np.isfinite(arr)):
                finite_problems.append(f"output {k!r} has non-finite values for rows {idx[:5]}")
        consistency.extend(_compare(cols, {k: np.asarray(v)[idx] for k, v in expected.items()}, outputs))
    check("outputs", not shape_problems, "; ".join(dict.fromkeys(shape_problems)))
    check("finite", not finite_problems, "; ".join(dict.fromkeys(finite_problems)))
    check("consistent", not consistency, "; ".join(dict.fromkeys(consistency)))
    p99 = report["latency_ms"]["p99"]
    check("latency", p99 <= spec.max_latency_ms,
          "" if p99 <= spec.max_latency_ms else f"p99 {p99:.1f} ms is above max_latency_ms {spec.max_latency_ms:g}",
          p50_ms=report["latency_ms"]["p50"], p99_ms=p99)


# ----------------------------------------------------------------------------- the component


@component(streaming=True, checks={"request_spec": RequestSpec.from_dict})
def InfraValidator(  # noqa: N802 - components are named like the TFX components they mirror
    model: Input[Model],
    infra_blessing: Output[InfraBlessing],
    examples: Optional[Input[Examples]] = None,  # noqa: UP045 - the DSL reads Optional[...]
    request_spec: Parameter[dict] | None = None,
):
    """Serve ``model`` with the real model server in a subprocess and bless it if it answers well.

    Args:
        model: an exported jfx model.
        infra_blessing: receives ``infra_blessing.json`` (the checks, latencies, request
            count, server command and exit code; the server's log tail when it failed);
            properties ``blessed`` (bool), ``reasons`` (list of str), ``model_id``,
            ``latency_p50_ms``, ``latency_p99_ms``, ``load_s``.
        examples: optional; request rows come from ``request_spec["split"]`` (only the
            model's input columns). Without it, zero-valued rows made from the signature.
        request_spec: ``{"split": "eval", "num_examples": 10, "max_latency_ms": 1000,
            "timeout_s": 60}`` (the defaults; every key optional).

    Raises:
        InvalidArgumentError: a bad ``request_spec``.
        DataValidationError: ``examples`` has no such split (the message lists them).
    """
    spec = RequestSpec.from_dict(request_spec)
    if examples is not None:
        names = split_names(examples)
        if spec.split not in names:  # a wiring mistake, not a verdict on the model: fail before serving
            raise DataValidationError(
                f"request_spec['split'] is {spec.split!r}, but the examples have splits {names}; "
                f"pass request_spec={{'split': {names[0]!r}}} (or another of them)")
    # the examples stream (a few rows are read); the server loads a local copy of the model
    report = validate_model(str(local_dir(model)), examples, spec)
    report["model_uri"] = model.stored_uri  # the recorded URI (an s3:// one), not the local copy served
    report["model_id"] = model.id
    infra_blessing.write_json(report, INFRA_BLESSING_FILE)
    latency = report.get("latency_ms") or {}
    infra_blessing.properties.update({
        "blessed": report["blessed"],
        "reasons": report["reasons"],
        "model_id": model.id,
        "latency_p50_ms": latency.get("p50"),
        "latency_p99_ms": latency.get("p99"),
        "load_s": report["load_s"],
    })
