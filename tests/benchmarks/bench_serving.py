"""``jfx serve`` throughput and latency against calling the model in-process.

Two DNNClassifiers over 8 numeric features are exported with ``export_model`` into
``<tmp>/<model>/1`` and served by ``jfx serve`` in a subprocess (its own interpreter, as
in production), batching on and off:

* ``small``: 8 → 128 → 64 → 3 (a one-row call costs about what the penguin model's
  does: the HTTP request costs more than the model);
* ``wide``: 8 → 2048 → 2048 → 3 (4.2 M weights: a one-row call costs about 1 ms, so the
  model's compute per call matters, which is what batching is for).

The clients are ``concurrency`` keep-alive HTTP/1.1 connections over loopback, each with
one one-row ``{"instances": [...]}`` request in flight at a time (distinct inputs),
driven like wrk drives them: from one thread per client process (``--client-procs``)
with ``selectors``, requests encoded beforehand, so that the load generator, which
shares the machine's CPUs with the server, costs as little as it can.

The floor is the same one-row prediction made in-process on ``jfx.core.load(...)``.

Statistics: each req/s figure is one measurement (the requests it sent over its wall
time); p50 and p99 are percentiles of that measurement's per-request latencies (p50 is
their median). Each line says how many requests it measured.

Targets (a missed one exits 1):
  * server overhead at concurrency 1: p50(server) − p50(in-process) < 2 ms
  * batching at concurrency 64: requests/s ≥ 5 × requests/s without batching

    python tests/benchmarks/bench_serving.py [--models small,wide] [--requests 3000] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import Targets

FEATURES = [f"f{i}" for i in range(8)]
MODELS = {"small": (128, 64), "wide": (2048, 2048)}  # hidden units


def _row(i: int) -> dict[str, float]:
    return {f: ((i * 31 + k * 7) % 97) / 97.0 - 0.5 for k, f in enumerate(FEATURES)}


def describe(hidden: tuple[int, ...]) -> str:
    return f"DNNClassifier {len(FEATURES)} numeric → {' → '.join(map(str, hidden))} → 3"


def make_model(folder: Path, hidden: tuple[int, ...] = MODELS["small"]) -> Path:
    from flax import nnx
    from jfx.core import DNNClassifier, Numeric, TensorSpec, export_model

    model = DNNClassifier({f: Numeric() for f in FEATURES}, hidden_units=hidden, n_classes=3, rngs=nnx.Rngs(0))
    export_model(model, {f: TensorSpec("float32") for f in FEATURES}, folder / "1")
    return folder


def in_process(folder: Path, n: int) -> dict[str, float]:
    import numpy as np
    from jfx.core import load

    model = load(folder / "1")
    for b in (1, 64):
        model([_row(0)] * b)
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        model([_row(i)])
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    rows64 = [_row(i) for i in range(64)]
    t = time.perf_counter()
    reps = max(1, n // 64)
    for _ in range(reps):
        model(rows64)
    per_row = (time.perf_counter() - t) / (reps * 64)
    return {"rps": n / wall, "p50": float(np.percentile(lat, 50)) * 1e3, "p99": float(np.percentile(lat, 99)) * 1e3,
            "batch64_rows_per_s": 1 / per_row}


def start_server(folder: Path, batching: bool, max_batch_size: int, timeout_ms: float) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "jfx.core._serving", "--model_base_path", str(folder), "--model_name", "bench",
           "--port", "0", "--max_batch_size", str(max_batch_size), "--batch_timeout_ms", str(timeout_ms),
           "--poll_interval_s", "0"]
    if not batching:
        cmd.append("--no_batching")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)/v1/", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, int(m.group(1))


def _request(body: bytes) -> bytes:
    return (b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Conn:
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, port: int, requests: list[bytes]):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests = requests
        self.next = 0
        self.buf = b""
        self.sent_at = 0.0

    def send(self) -> None:
        self.buf = b""
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.requests[self.next])
        self.next += 1

    def receive(self) -> bool:
        """Reads what arrived; True once the whole response is in (its status checked)."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buf += chunk
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        lines = self.buf[:head_end].decode("latin-1").split("\r\n")
        length = next(int(v) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "content-length")
        if len(self.buf) < head_end + 4 + length:
            return False
        if lines[0].split()[1] != "200":
            raise RuntimeError(f"{lines[0]}: {self.buf[head_end + 4:][:200]!r}")
        return True


def _drive(port: int, per_conn: list[list[bytes]], queue: Any = None,
           go: Any = None) -> tuple[float, float, list, float]:
    """Sends each connection's requests one after another, all connections at once, from
    one thread (selectors: no per-connection threads competing for the interpreter).
    Returns (start, end, latencies in seconds, CPU seconds this client used)."""
    conns = [_Conn(port, reqs) for reqs in per_conn]
    for c in conns:  # connect and warm each connection
        c.send()
        while not c.receive():
            pass
        c.next = 0
    if queue is not None:
        queue.put("ready")
        go.wait()
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    lat: list[float] = []
    cpu = time.process_time()
    start = time.perf_counter()
    for c in conns:
        c.send()
    active = len(conns)
    while active:
        for key, _ in sel.select():
            c = key.data
            if c.receive():
                lat.append(time.perf_counter() - c.sent_at)
                if c.next < len(c.requests):
                    c.send()
                else:
                    sel.unregister(c.sock)
                    c.sock.close()
                    active -= 1
    return start, time.perf_counter(), lat, time.process_time() - cpu


def _client_proc(port: int, per_conn: list[list[bytes]], queue: mp.Queue, go: mp.Event) -> None:
    queue.put(_drive(port, per_conn, queue, go))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def load_test(port: int, concurrency: int, total: int, procs: int, server_pid: int) -> dict[str, float]:
    import numpy as np

    procs = max(1, min(procs, concurrency))
    per_conn = max(1, total // concurrency)
    conns = [[_request(json.dumps({"instances": [_row(k * per_conn + i)]}).encode()) for i in range(per_conn)]
             for k in range(concurrency)]
    shares = [conns[i::procs] for i in range(procs)]
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    ps = [ctx.Process(target=_client_proc, args=(port, share, queue, go)) for share in shares]
    for p in ps:
        p.start()
    for _ in ps:
        queue.get()
    cpu0 = _cpu_seconds(server_pid)
    go.set()
    results = [queue.get() for _ in ps]
    cpu1 = _cpu_seconds(server_pid)
    for p in ps:
        p.join()
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    lat = np.array([x for r in results for x in r[2]])
    return {"rps": len(lat) / (end - start), "p50": float(np.percentile(lat, 50)) * 1e3,
            "p99": float(np.percentile(lat, 99)) * 1e3, "n": len(lat),
            "server_cpu_us": (cpu1 - cpu0) / len(lat) * 1e6,
            "client_cpu_us": sum(r[3] for r in results) / len(lat) * 1e6}


def bench_model(name: str, args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """Prints one model's figures; returns (worst overhead at concurrency 1 in ms, batching speed-up at 64)."""
    hidden = MODELS[name]
    folder = make_model(Path(tmp) / name, hidden)
    floor = in_process(folder, args.requests)
    print(f"model {name!r}: {describe(hidden)}")
    print(f"  in-process (LoadedModel, 1 row):   {floor['rps']:8.0f} req/s   p50 {floor['p50']:6.3f} ms   "
          f"p99 {floor['p99']:6.3f} ms   (batch of 64: {floor['batch64_rows_per_s']:.0f} rows/s)   "
          f"(1 measurement of {args.requests} calls)")
    figures = {}
    for batching in (True, False):
        proc, port = start_server(folder, batching, args.max_batch_size, args.batch_timeout_ms)
        try:
            for c in (1, 64):
                total = args.requests if c == 1 else args.requests * 2
                r = load_test(port, c, total, 1 if c == 1 else args.client_procs, proc.pid)
                figures[(batching, c)] = r
                print(f"  server batching={'on ' if batching else 'off'} concurrency {c:2d}: {r['rps']:8.0f} req/s   "
                      f"p50 {r['p50']:6.3f} ms   p99 {r['p99']:6.3f} ms   "
                      f"CPU µs/request: server {r['server_cpu_us']:4.0f}, clients {r['client_cpu_us']:3.0f}   "
                      f"(1 measurement of {r['n']} requests)")
        finally:
            proc.terminate()
            proc.wait(10)
    overhead = {b: figures[(b, 1)]["p50"] - floor["p50"] for b in (True, False)}
    speedup = figures[(True, 64)]["rps"] / figures[(False, 64)]["rps"]
    print(f"  server overhead at concurrency 1 (median latency server − median in-process): batching on "
          f"{overhead[True]:.3f} ms, off {overhead[False]:.3f} ms")
    print(f"  batching speed-up at concurrency 64: {speedup:.1f}× (ratio of the two measurements' req/s)")
    return max(overhead.values()), speedup


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="small,wide", help=f"comma-separated, of {sorted(MODELS)}")
    ap.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    ap.add_argument("--client-procs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-timeout-ms", type=float, default=2.0)
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        ap.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")

    print(f"machine: {os.cpu_count()} CPUs; max_batch_size {args.max_batch_size}, "
          f"batch_timeout_ms {args.batch_timeout_ms:g}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results[name] = bench_model(name, args, Path(tmp))
    targets = Targets()
    overhead = max(o for o, _ in results.values())
    print(f"server overhead at concurrency 1 (p50 − p50), worst of {names}: {overhead:.3f} ms  → target < 2 ms: "
          f"{targets.check('server overhead at concurrency 1', overhead, 2.0, 'ms')}")
    for name, (_, speedup) in results.items():
        verdict = targets.check(f"batching speed-up at concurrency 64, {name}", speedup, 5.0, "x", at_least=True)
        print(f"batching speed-up at concurrency 64, {name} model ({describe(MODELS[name])}): {speedup:.1f}×"
              f"  → target ≥ 5×: {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
