"""``jfx serve`` throughput and latency against calling the model in-process.

A DNNClassifier (8 numeric features → 128 → 64 → 3 classes) is exported with
``export_model`` into ``<tmp>/<model>/1`` and served by ``jfx serve`` in a subprocess
(its own interpreter, as in production), batching on and off. Client threads (spread
over ``--client-procs`` processes), each with one keep-alive ``http.client`` connection,
send one-row ``{"instances": [...]}`` requests with distinct inputs over loopback.

The floor is the same one-row prediction made in-process on ``jfx.core.load(...)``.

Targets:
  * server overhead at concurrency 1: p50(server) − p50(in-process) < 2 ms
  * batching at concurrency 64: requests/s ≥ 5 × requests/s without batching

    python tests/benchmarks/bench_serving.py [--requests 3000] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FEATURES = [f"f{i}" for i in range(8)]


def _row(i: int) -> dict[str, float]:
    return {f: ((i * 31 + k * 7) % 97) / 97.0 - 0.5 for k, f in enumerate(FEATURES)}


def make_model(folder: Path) -> Path:
    from flax import nnx
    from jfx.core import DNNClassifier, Numeric, TensorSpec, export_model

    model = DNNClassifier({f: Numeric() for f in FEATURES}, hidden_units=(128, 64), n_classes=3, rngs=nnx.Rngs(0))
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


def _client(port: int, n: int, offset: int, out: list, barrier: threading.Barrier | None) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    bodies = [json.dumps({"instances": [_row(offset + i)]}).encode() for i in range(n)]
    conn.request("POST", "/v1/models/bench:predict", bodies[0], headers)  # connect + warm
    conn.getresponse().read()
    if barrier is not None:
        barrier.wait()
    lat = []
    for body in bodies:
        t = time.perf_counter()
        conn.request("POST", "/v1/models/bench:predict", body, headers)
        resp = conn.getresponse()
        data = resp.read()
        lat.append(time.perf_counter() - t)
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
    conn.close()
    out.append(lat)


def _client_proc(port: int, threads: int, per_thread: int, proc_index: int, queue: mp.Queue, go: mp.Event) -> None:
    results: list = []
    ready = threading.Barrier(threads + 1)
    workers = [threading.Thread(target=_client, args=(port, per_thread, (proc_index * threads + t) * per_thread,
                                                      results, ready)) for t in range(threads)]
    for w in workers:
        w.start()
    queue.put("ready")
    go.wait()
    ready.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    queue.put((start, time.perf_counter(), [x for lat in results for x in lat]))


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
    threads = concurrency // procs
    per_thread = max(1, total // concurrency)
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    ps = [ctx.Process(target=_client_proc, args=(port, threads, per_thread, i, queue, go)) for i in range(procs)]
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
            "server_cpu_us": (cpu1 - cpu0) / len(lat) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    ap.add_argument("--client-procs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-timeout-ms", type=float, default=2.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp) / "bench")
        floor = in_process(folder, args.requests)
        print(f"machine: {os.cpu_count()} CPUs; model: DNNClassifier 8 numeric → 128 → 64 → 3")
        print(f"in-process (LoadedModel, 1 row):   {floor['rps']:8.0f} req/s   p50 {floor['p50']:6.3f} ms   "
              f"p99 {floor['p99']:6.3f} ms   (batch of 64: {floor['batch64_rows_per_s']:.0f} rows/s)")
        figures = {}
        for batching in (True, False):
            proc, port = start_server(folder, batching, args.max_batch_size, args.batch_timeout_ms)
            try:
                for c in (1, 64):
                    total = args.requests if c == 1 else args.requests * 2
                    r = load_test(port, c, total, 1 if c == 1 else args.client_procs, proc.pid)
                    figures[(batching, c)] = r
                    print(f"server batching={'on ' if batching else 'off'} concurrency {c:2d}: {r['rps']:8.0f} req/s   "
                          f"p50 {r['p50']:6.3f} ms   p99 {r['p99']:6.3f} ms   "
                          f"server CPU {r['server_cpu_us']:4.0f} µs/request   ({r['n']} requests)")
            finally:
                proc.terminate()
                proc.wait(10)
        overhead = {b: figures[(b, 1)]["p50"] - floor["p50"] for b in (True, False)}
        speedup = figures[(True, 64)]["rps"] / figures[(False, 64)]["rps"]
        ok1 = max(overhead.values()) < 2.0
        ok2 = speedup >= 5.0
        print(f"server overhead at concurrency 1 (p50 server − p50 in-process): batching on {overhead[True]:.3f} ms, "
              f"off {overhead[False]:.3f} ms  → target < 2 ms: {'MET' if ok1 else 'NOT MET'}")
        print(f"batching speed-up at concurrency 64: {speedup:.1f}×  → target ≥ 5×: {'MET' if ok2 else 'NOT MET'}")


if __name__ == "__main__":
    main()
