"""What the request log and the metrics cost ``jfx serve``: throughput with every request logged
against the same server without a log, measured in the same run.

The ``small`` DNNClassifier of bench_serving.py (8 numeric features) is served by ``jfx serve``
in a subprocess with batching on, in three modes taken in turn (interleaved, ``--repeat``
rounds): without a request log, with ``--request_log`` at sample rate 1 (every request logged:
the worst case), and at 0.1. Each is driven by the same keep-alive selectors clients as
bench_serving.py at concurrency 1 and 64.
Every server exports the Prometheus metrics (they cannot be turned off), so the baseline
includes them; after each logged run, the server's metrics are scraped to report the rows
written and the entries dropped (a full queue drops, it never waits).

Statistics: a measurement's req/s is its requests over its wall time; each figure printed is
the median (or best, ``--stat best``) of the ``--repeat`` rounds' measurements, and each ratio
is of two such figures from the same run.

Targets (a missed one exits 1), at concurrency 64: requests/s with 1 request in 10 logged
≥ 0.85 × requests/s without a log; with every request logged ≥ 0.5 ×.

    python tests/benchmarks/bench_request_log.py [--requests 3000] [--repeat 3] [--client-procs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from _bench import Targets, add_stat_argument, label, summarise
from bench_serving import load_test, make_model


def start(folder: Path, log: Path | None, rate: float) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "jfx.core._serving", "--model_base_path", str(folder), "--model_name", "bench",
           "--port", "0", "--max_batch_size", "64", "--poll_interval_s", "0"]
    if log is not None:
        cmd += ["--request_log", str(log), "--request_log_sample_rate", str(rate)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r":(\d+)/v1/", proc.stdout.readline())
    if not m:
        proc.kill()
        raise RuntimeError("the server did not start")
    return proc, int(m.group(1))


def scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/monitoring/prometheus/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


MODES = (("no log", 0.0), ("log rate 1", 1.0), ("log rate 0.1", 0.1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="requests per measurement at concurrency 1 "
                                                               "(twice as many at 64)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, each measuring every mode once")
    ap.add_argument("--client-procs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    add_stat_argument(ap)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {args.requests} requests per measurement at concurrency 1, "
          f"{2 * args.requests} at 64; {args.repeat} rounds")
    rps: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    logged: dict[str, list[tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp) / "small")
        for round_ in range(args.repeat):
            for mode, rate in MODES:
                log = None if rate == 0 else Path(tmp) / f"log-{rate}-{round_}"
                proc, port = start(folder, log, rate)
                try:
                    for c in (1, 64):
                        total = args.requests if c == 1 else 2 * args.requests
                        r = load_test(port, c, total, 1 if c == 1 else args.client_procs, proc.pid)
                        rps.setdefault((mode, c), []).append(r["rps"])
                        cpu.setdefault((mode, c), []).append(r["server_cpu_us"])
                    dropped = scrape(port, "jfx_serving_request_log_dropped_total") if log is not None else 0.0
                finally:
                    proc.terminate()
                    proc.wait(60)
                if log is not None:
                    import pyarrow.parquet as pq

                    rows = sum(pq.read_metadata(p).num_rows for p in log.glob("requests-*.parquet"))
                    logged.setdefault(mode, []).append((rows, dropped))
    how = label(args.stat, args.repeat)
    fig = {k: summarise(v, args.stat, higher_is_better=True) for k, v in rps.items()}
    for (mode, c), value in fig.items():
        print(f"  {mode:12s} concurrency {c:2d}: {value:8.0f} req/s   server CPU µs/request "
              f"{summarise(cpu[(mode, c)], args.stat):5.0f}   ({how})")
    for mode, counts in logged.items():
        print(f"  {mode:12s} rows logged per round {[r for r, _ in counts]}, entries dropped "
              f"{[int(d) for _, d in counts]}")
    for c in (1, 64):
        for mode in ("log rate 1", "log rate 0.1"):
            print(f"req/s {mode} / no log, concurrency {c}: {fig[(mode, c)] / fig[('no log', c)]:.2f}×")
    targets = Targets()
    for mode, limit in (("log rate 0.1", 0.85), ("log rate 1", 0.5)):
        ratio = fig[(mode, 64)] / fig[("no log", 64)]
        verdict = targets.check(f"throughput with {mode}, concurrency 64", ratio, limit, "x", at_least=True)
        print(f"{mode}, concurrency 64: {ratio:.2f}× the throughput without a log  → target ≥ {limit}×: {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
