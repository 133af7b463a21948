"""Orchestration overhead of LocalDagRunner: what jfx costs per node, beyond the work.

Two shapes of no-op components, each run first on an empty store and then again fully
from cache, on both executors (threads, worker processes), with the default SQLite
store in a temporary directory:

* chain: 50 nodes, each consuming the previous one's output;
* fan-out: one source and 50 nodes consuming it (51 nodes);
* python work: 4 independent nodes each running ~0.3 s of pure-Python arithmetic
  (holding the GIL), where worker processes can use both cores and threads cannot.

Prints milliseconds per node (the median of ``--repeat`` runs, or the best with
``--stat best``) and the process/thread ratio measured in the same run. Targets: under
100 ms per node uncached, under 20 ms cached; a missed target exits 1.

    python tests/benchmarks/bench_orchestration.py [--nodes 50] [--repeat 3] [--stat median|best]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _bench import Targets, add_stat_argument, label, summarise

from jfx import Input, Output, Pipeline, component
from jfx.orchestrators import LocalDagRunner
from jfx.types import Dataset


@component
def noop(out: Output[Dataset], upstream: Input[Dataset] | None = None):
    """Does nothing; its (empty) output is all the runner has to publish."""


@component
def python_work(out: Output[Dataset], upstream: Input[Dataset] | None = None, loops: int = 2_000_000):
    """Pure-Python arithmetic: holds the GIL the whole time, like much user code."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    out.properties["total"] = total


def work(n: int, root: str, url: str) -> Pipeline:
    nodes = [python_work().with_id(f"w{i}") for i in range(n)]
    return Pipeline("bench-work", components=nodes, pipeline_root=root, metadata_url=url)


def chain(n: int, root: str, url: str) -> Pipeline:
    nodes = [noop().with_id("n0")]
    for i in range(1, n):
        nodes.append(noop(upstream=nodes[-1].outputs["out"]).with_id(f"n{i}"))
    return Pipeline("bench-chain", components=nodes, pipeline_root=root, metadata_url=url)


def fanout(n: int, root: str, url: str) -> Pipeline:
    source = noop().with_id("source")
    nodes = [noop(upstream=source.outputs["out"]).with_id(f"n{i}") for i in range(n)]
    return Pipeline("bench-fanout", components=[source, *nodes], pipeline_root=root, metadata_url=url)


def measure(shape, n: int, executor: str, repeat: int, stat: str = "median") -> tuple[float, float, int]:
    """ms/node of a first run and of a fully cached rerun (``stat`` of ``repeat``)."""
    first, cached = [], []
    runner = LocalDagRunner(executor=executor, progress=False)
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'md.sqlite'}"
            pipeline = shape(n, str(Path(tmp) / "root"), url)
            count = len(pipeline.nodes)
            t0 = time.perf_counter()
            result = runner.run(pipeline)
            first.append((time.perf_counter() - t0) / count)
            assert result.succeeded, result.nodes
            t0 = time.perf_counter()
            result = runner.run(pipeline)
            cached.append((time.perf_counter() - t0) / count)
            assert {o.state for o in result.nodes.values()} == {"cached"}, result.nodes
    return summarise(first, stat) * 1e3, summarise(cached, stat) * 1e3, count


def cold_run_seconds(executor: str, repeat: int, stat: str = "median") -> float:
    """Wall time of a whole `jfx run` of examples/hello in a new process (``stat`` of ``repeat``)."""
    import subprocess

    import jfx

    hello = Path(jfx.__file__).parent / "examples" / "hello" / "pipeline.py"
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JFX_HOME": tmp}
        env.pop("JFX_METADATA_URL", None)
        for i in range(repeat + 1):  # the first run also creates the store: not counted
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "jfx", "run", str(hello), "--no-cache", "--executor", executor,
                            "--progress", "none"], env=env, check=True, capture_output=True)
            if i:
                times.append(time.perf_counter() - t0)
    return summarise(times, stat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    stat = label(args.stat, args.repeat)
    print(f"orchestration overhead, ms per node ({stat}); SQLite store; {os.cpu_count()} CPUs")
    print(f"{'shape':<10} {'executor':<9} {'nodes':>5} {'first run':>10} {'cached':>8}")
    results = {}
    # warm the process pool once so its start-up is not charged to the first shape
    measure(chain, 2, "process", 1)
    for name, shape in (("chain", chain), ("fan-out", fanout)):
        for executor in ("thread", "process"):
            first, cached, count = measure(shape, args.nodes, executor, args.repeat, args.stat)
            results[name, executor] = (first, cached)
            print(f"{name:<10} {executor:<9} {count:>5} {first:>10.1f} {cached:>8.1f}")
    for executor in ("thread", "process"):
        first, _, count = measure(work, 4, executor, args.repeat, args.stat)
        results["python work", executor] = (first, 0.0)
        print(f"{'py-work':<10} {executor:<9} {count:>5} {first:>10.1f} {'-':>8}")
    for name in ("chain", "fan-out"):
        (tf, tc), (pf, pc) = results[name, "thread"], results[name, "process"]
        print(f"{name}: process/thread time ratio ({stat} each): first run {pf / tf:.2f}x, cached {pc / tc:.2f}x")
    tw, pw = results["python work", "thread"][0], results["python work", "process"][0]
    print(f"python work: process/thread time ratio ({stat} each): {pw / tw:.2f}x")
    cold = {ex: cold_run_seconds(ex, args.repeat, args.stat) for ex in ("thread", "process")}
    print(f"cold `jfx run examples/hello --no-cache` (a fresh process, pool start-up included; {stat}): "
          f"thread {cold['thread']:.2f} s, process {cold['process']:.2f} s, ratio {cold['process'] / cold['thread']:.2f}x")
    overhead = {k: v for k, v in results.items() if k[0] != "python work"}
    worst_first = max(v[0] for v in overhead.values())
    worst_cached = max(v[1] for v in overhead.values())
    targets = Targets()
    first_ok = targets.check("worst first run", worst_first, 100, "ms/node")
    cached_ok = targets.check("worst cached rerun", worst_cached, 20, "ms/node")
    print(f"worst ({stat}): {worst_first:.1f} ms/node first run (target < 100: {first_ok}), "
          f"{worst_cached:.1f} ms/node cached (target < 20: {cached_ok})")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
