"""``jfx serve``'s gRPC API (TF Serving's PredictionService) against its REST API, same server.

One DNNClassifier over 8 numeric features (``small`` of bench_serving.py: a one-row call
costs about what the penguin model's does, so the protocol's cost shows) is served by one
``jfx serve --grpc_port 0`` subprocess, batching on: REST and gRPC answer from the same
versions and the same batches.

Clients, each in a spawned process, send one-row Predict requests, each client
``concurrency`` requests in flight at a time, encoded beforehand, their answers not
decoded (only their status checked), so that the load generator, which shares the
machine's CPUs with the server, costs as little as it can:

* REST: ``concurrency`` keep-alive HTTP/1.1 connections driven with ``selectors``
  (bench_serving.py's client), ``{"instances": [...]}``;
* gRPC: one HTTP/2 channel per client process with ``concurrency`` streams from
  ``grpc.aio`` tasks, a serialized ``PredictRequest`` with one float tensor per feature.

The gRPC runtime's own cost per call is shown by a third server measured the same way:
a bare ``grpc.aio`` server in the benchmark's process that answers every Predict with
its request, unread (``echo``): the most requests/s Python gRPC serves here with no work.

Statistics: each (protocol, concurrency) is measured ``--repeat`` times, REST and gRPC
alternating; the figure is the median requests/s of the repeats (``--stat best`` for the
best), each repeat's requests/s being its requests over its wall time. p50 is the median
request latency of the median repeat. The ratio is gRPC's figure over REST's.

Targets (a missed one exits 1):
  * what jfx adds to a gRPC call at concurrency 1: p50(gRPC) − p50(echo) < 2 ms (as
    bench_serving.py's server overhead target);
  * gRPC at concurrency 64 ≥ 0.1 × REST's requests/s: a floor that catches a gRPC front end
    gone wrong (calls serialised, a blocked loop). Python gRPC's own cost per call is about
    the REST front end's whole request or more, so gRPC is not expected to match REST.

    python tests/benchmarks/bench_grpc.py [--requests 2000] [--repeat 3] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import Targets, add_stat_argument, label, summarise
from bench_serving import FEATURES, MODELS, _cpu_seconds, _row, describe, load_test, make_model

_PREDICT = "/tensorflow.serving.PredictionService/Predict"


def start_server(folder: Path, max_batch_size: int, timeout_ms: float) -> tuple[subprocess.Popen, int, int]:
    cmd = [sys.executable, "-m", "jfx.core._serving", "--model_base_path", str(folder), "--model_name", "bench",
           "--port", "0", "--grpc_port", "0", "--max_batch_size", str(max_batch_size),
           "--batch_timeout_ms", str(timeout_ms), "--poll_interval_s", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)/v1/.*gRPC at \S+:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, int(m.group(1)), int(m.group(2))


def grpc_request(i: int) -> bytes:
    """A serialized PredictRequest of one row, as a TF Serving client sends it."""
    from jfx.core._tfs_proto import predict_pb2, types_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "bench"
    for name, value in _row(i).items():
        t = req.inputs[name]
        t.dtype = types_pb2.DT_FLOAT
        t.tensor_shape.dim.add(size=1)
        t.float_val.append(value)
    return req.SerializeToString()


def _grpc_client(port: int, per_conn: list[list[bytes]], queue: Any, go: Any) -> None:
    import asyncio

    import grpc

    async def run() -> tuple[float, float, list[float], float]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(_PREDICT)  # bytes in, bytes out: nothing decoded on the client

            async def worker(requests: list[bytes], lat: list[float]) -> None:
                for body in requests:
                    t = time.perf_counter()
                    await call(body, timeout=60)  # a failed call raises: the benchmark stops
                    lat.append(time.perf_counter() - t)

            await asyncio.gather(*(worker(reqs[:1], []) for reqs in per_conn))  # connect and warm up
            queue.put("ready")
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            lat: list[float] = []
            cpu = time.process_time()
            start = time.perf_counter()
            await asyncio.gather(*(worker(reqs, lat) for reqs in per_conn))
            return start, time.perf_counter(), lat, time.process_time() - cpu

    queue.put(asyncio.run(run()))


def grpc_load_test(port: int, concurrency: int, total: int, procs: int, server_pid: int) -> dict[str, float]:
    import numpy as np

    procs = max(1, min(procs, concurrency))
    per_conn = max(1, total // concurrency)
    conns = [[grpc_request(k * per_conn + i) for i in range(per_conn)] for k in range(concurrency)]
    shares = [conns[i::procs] for i in range(procs)]
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    ps = [ctx.Process(target=_grpc_client, args=(port, share, queue, go)) for share in shares]
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
    start, end = min(r[0] for r in results), max(r[1] for r in results)
    lat = np.array([x for r in results for x in r[2]])
    if len(lat) != concurrency * per_conn:
        raise RuntimeError(f"{concurrency * per_conn - len(lat)} gRPC requests did not finish")
    return {"rps": len(lat) / (end - start), "p50": float(np.percentile(lat, 50)) * 1e3, "n": len(lat),
            "server_cpu_us": (cpu1 - cpu0) / len(lat) * 1e6, "client_cpu_us": sum(r[3] for r in results) / len(lat) * 1e6}


class EchoServer:
    """A bare ``grpc.aio`` server answering Predict with its request (the gRPC runtime's floor)."""

    def __init__(self) -> None:
        import asyncio
        import threading

        import grpc

        async def echo(request: bytes, context: Any) -> bytes:
            return request

        async def start() -> tuple[Any, int]:
            server = grpc.aio.server()
            server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
                "tensorflow.serving.PredictionService", {"Predict": grpc.unary_unary_rpc_method_handler(echo)})])
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.server, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


def check_answers(port: int, grpc_port: int) -> None:
    """The two protocols give the same answer for the same row (a benchmark of wrong answers measures nothing)."""
    import urllib.request

    import grpc
    import numpy as np
    from jfx.core._tfs_proto import predict_pb2

    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/bench:predict",
                                 data=json.dumps({"instances": [_row(3)]}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        want = json.loads(resp.read())["predictions"][0]["probabilities"]
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        got = predict_pb2.PredictResponse.FromString(channel.unary_unary(_PREDICT)(grpc_request(3), timeout=30))
    if not np.allclose(list(got.outputs["probabilities"].float_val), want, atol=1e-6):
        raise RuntimeError(f"gRPC and REST disagree: {list(got.outputs['probabilities'].float_val)} vs {want}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="requests per measurement (twice that at 64)")
    ap.add_argument("--repeat", type=int, default=3, help="measurements per protocol and concurrency")
    ap.add_argument("--client-procs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-timeout-ms", type=float, default=2.0)
    add_stat_argument(ap)
    args = ap.parse_args()

    print(f"machine: {os.cpu_count()} CPUs; model: {describe(MODELS['small'])} ({len(FEATURES)} float inputs); "
          f"batching on, max_batch_size {args.max_batch_size}, batch_timeout_ms {args.batch_timeout_ms:g}")
    ratios: dict[int, tuple[float, float]] = {}
    added = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp) / "small", MODELS["small"])
        proc, port, grpc_port = start_server(folder, args.max_batch_size, args.batch_timeout_ms)
        echo = EchoServer()
        try:
            check_answers(port, grpc_port)
            for c in (1, 64):
                total = args.requests if c == 1 else args.requests * 2
                procs = 1 if c == 1 else args.client_procs
                runs: dict[str, list[dict[str, float]]] = {"REST": [], "gRPC": [], "echo": []}
                for _ in range(args.repeat):  # alternating, so that drift hits all alike
                    runs["REST"].append(load_test(port, c, total, procs, proc.pid))
                    runs["gRPC"].append(grpc_load_test(grpc_port, c, total, procs, proc.pid))
                    runs["echo"].append(grpc_load_test(echo.port, c, total, procs, os.getpid()))
                figures = {}
                for name, rs in runs.items():
                    rps = summarise([r["rps"] for r in rs], args.stat, higher_is_better=True)
                    mid = min(rs, key=lambda r: abs(r["rps"] - rps))
                    figures[name] = rps
                    print(f"  {name:4s} concurrency {c:2d}: {rps:8.0f} req/s (= rows/s, 1 row each)   "
                          f"p50 {mid['p50']:6.3f} ms   CPU µs/request: server {mid['server_cpu_us']:4.0f}, clients "
                          f"{mid['client_cpu_us']:4.0f}   ({label(args.stat, len(rs))} measurements of {mid['n']} "
                          f"requests)")
                ratios[c] = (figures["gRPC"] / figures["REST"], figures["gRPC"] / figures["echo"])
                print(f"  gRPC / REST at concurrency {c}: {ratios[c][0]:.2f}×   gRPC / echo: {ratios[c][1]:.2f}×")
                if c == 1:
                    p50 = {name: summarise([r["p50"] for r in rs], args.stat) for name, rs in runs.items()}
                    added = p50["gRPC"] - p50["echo"]
                    print(f"  p50 at concurrency 1 ({label(args.stat, args.repeat)}): gRPC {p50['gRPC']:.3f} ms, "
                          f"echo {p50['echo']:.3f} ms, REST {p50['REST']:.3f} ms")
        finally:
            echo.close()
            proc.terminate()
            proc.wait(10)
    targets = Targets()
    verdict = targets.check("what jfx adds to a gRPC call at concurrency 1 (p50 − p50 of echo)", added, 2.0, "ms")
    print(f"what jfx adds to a gRPC call at concurrency 1, p50(gRPC) − p50(echo): {added:.3f} ms  → target < 2 ms: "
          f"{verdict}")
    verdict = targets.check("gRPC / REST requests/s at concurrency 64", ratios[64][0], 0.1, "x", at_least=True)
    print(f"gRPC / REST requests/s at concurrency 64: {ratios[64][0]:.2f}×  → target ≥ 0.1×: {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
