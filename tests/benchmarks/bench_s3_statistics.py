"""Benchmark: StatisticsGen over an Examples artifact on S3 (streamed) vs the same on local disk.

    python tests/benchmarks/bench_s3_statistics.py [--rows 1000000] [--repeat 5] [--stat median|best]

Makes a ``--rows`` Examples artifact (ExampleGen over the synthetic taxi table: train and
eval splits), uploads it to a local S3 server this script starts (moto, on 127.0.0.1),
and runs StatisticsGen over each copy: rows/s of each, and the S3 rate as a share of the
local one. StatisticsGen streams its Examples from the store (``streaming=True``), so the
S3 figure includes every byte's trip through the S3 API. The median of ``--repeat`` runs
each, local and S3 in turns (``--stat best`` for the best), after one warm-up run; a
missed target exits 1.

Target: S3 at least 0.7x the local rows/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _bench import Targets, add_stat_argument, label, summarise

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "resources"))

RATIO_TARGET = 0.7


def timed_pair(repeat: int, stat: str, first, second) -> tuple[float, float]:
    """Seconds of ``first()`` and ``second()``: ``stat`` (median or best) of ``repeat`` runs
    of each, taken in turns, after one warm-up run of each."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, out in zip((first, second), times, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return summarise(times[0], stat), summarise(times[1], stat)


def start_server(workdir: Path):
    """The test suite's moto S3 server; its missing-dependency skips become one line and exit 1."""
    from jfx_s3 import S3Server

    try:
        return S3Server(workdir)
    except BaseException as err:  # pytest's skip/fail outcomes are BaseExceptions
        if isinstance(err, KeyboardInterrupt):
            raise
        raise SystemExit(f"cannot start the S3 test server: {err}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    n = args.rows
    with tempfile.TemporaryDirectory(prefix="jfx-bench-s3-stats-") as tmp:
        server = start_server(Path(tmp) / "moto")
        try:
            os.environ.update(server.env())
            return run(args, n, Path(tmp), f"s3://{server.bucket()}/bench")
        finally:
            server.stop()


def run(args: argparse.Namespace, n: int, tmp: Path, root: str) -> int:
    from jfx import _storage as storage
    from jfx.components._example_gen import ExampleGen
    from jfx.components._statistics_gen import StatisticsGen
    from jfx.examples.taxi.generate import generate, write
    from jfx.types import Examples, ExampleStatistics

    os.environ["JFX_CACHE_DIR"] = str(tmp / "cache")
    table = generate(n, seed=0)
    write(table, tmp / "input", "parquet")
    examples = Examples(tmp / "examples")
    Path(examples.uri).mkdir()
    ExampleGen.fn(examples=examples, input_base=str(tmp / "input"), format="parquet")
    remote_uri = storage.join(root, "examples")
    start = time.perf_counter()
    storage.upload_dir(examples.uri, remote_uri)
    uploaded = time.perf_counter() - start
    size = sum(f.size for f in storage.list_files(remote_uri))
    remote = Examples(remote_uri, properties=examples.properties)
    print(f"Examples: {n:,} taxi rows, {table.num_columns} columns, splits {examples.properties['row_counts']}, "
          f"{size / 1e6:.1f} MB of Parquet (uploaded to the local S3 server in {uploaded:.2f}s); "
          f"{os.cpu_count()} CPUs")

    results: dict[str, dict] = {}

    def statistics(name: str, source: Examples) -> None:
        out = tmp / f"stats-{name}-{time.perf_counter_ns()}"
        out.mkdir()
        stats = ExampleStatistics(out)
        StatisticsGen.fn(examples=source, statistics=stats)
        results[name] = dict(stats.properties["num_rows"])

    # the two runs alternate, so that a shared machine's changing load falls on both alike
    t_local, t_s3 = timed_pair(args.repeat, args.stat, lambda: statistics("local", examples),
                               lambda: statistics("s3", remote))
    if results["local"] != results["s3"] or sum(results["s3"].values()) != n:
        print(f"the two copies gave different row counts: {results}")
        return 1
    if list((tmp / "cache").glob("artifacts/*")):
        print("the S3 Examples were copied into the local cache instead of streamed")
        return 1
    how = label(args.stat, args.repeat)
    ratio = t_local / t_s3
    width = 44
    print()
    for name, seconds in (("StatisticsGen, Examples on local disk", t_local),
                          ("StatisticsGen, Examples on S3 (streamed)", t_s3)):
        print(f"  {name:<{width}}  {seconds:7.3f} s  {n / seconds:>13,.0f} rows/s   ({how})")
    print()
    targets = Targets()
    ok = targets.check("S3 / local rows/s", ratio, RATIO_TARGET, "x", at_least=True)
    print(f"  S3 / local rows/s: {ratio:.2f}x ({how} each)   target >= {RATIO_TARGET}x   {ok}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
