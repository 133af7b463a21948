"""Benchmark: the statistics kernel on the synthetic taxi table, both engines, vs a baseline.

    python tests/benchmarks/bench_statistics.py [--rows 1000000] [--repeat 3]

Prints rows/s for the in-process engine (Parquet and CSV, parsing included) and for Beam's
DirectRunner (Parquet), and compares the in-process engine with a baseline: one plain
pyarrow.compute pass (count, min, max, mean) over the numeric columns read from the same
Parquet file. Best of ``--repeat`` runs each, after one warm-up run.

Targets: in-process within 3x of the baseline's time while computing every statistic;
from CSV at least 450,000 rows/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jfx.components._engine import run_kernel
from jfx.components._statistics import StatisticsKernel
from jfx.examples.taxi.generate import generate, write

RATIO_TARGET = 3.0
CSV_TARGET = 450_000


def best_of(repeat: int, fn) -> float:
    fn()  # warm-up: imports, page cache, pyarrow's thread pools
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def baseline(path: Path, numeric: list[str]) -> dict:
    table = pq.read_table(path, columns=numeric)
    out = {}
    for name in numeric:
        column = table.column(name)
        out[name] = (pc.count(column).as_py(), pc.min_max(column).as_py(), pc.mean(column).as_py())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-beam", action="store_true", help="skip the Beam DirectRunner measurement")
    args = parser.parse_args(argv)
    n = args.rows
    with tempfile.TemporaryDirectory(prefix="jfx-bench-stats-") as tmp:
        start = time.perf_counter()
        table = generate(n, seed=0)
        generated = time.perf_counter() - start
        parquet, csv = write(table, tmp, "both")
        numeric = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
        print(f"taxi table: {n:,} rows, {table.num_columns} columns ({len(numeric)} int/float), "
              f"generated in {generated:.2f}s; {os.cpu_count()} CPUs")

        kernel = StatisticsKernel()
        t_base = best_of(args.repeat, lambda: baseline(parquet, numeric))
        t_inproc = best_of(args.repeat, lambda: run_kernel(kernel, [parquet]))
        t_csv = best_of(args.repeat, lambda: run_kernel(kernel, [csv]))
        t_beam = None
        if not args.no_beam:
            t_beam = best_of(max(1, args.repeat - 1),
                             lambda: run_kernel(kernel, [parquet], beam_pipeline_args=["--runner=DirectRunner"]))

    ratio = t_inproc / t_base
    rows = [
        ("baseline: pyarrow.compute count/min/max/mean, numeric columns", t_base),
        ("in-process engine, Parquet, all statistics", t_inproc),
        ("in-process engine, CSV (parsing included)", t_csv),
    ]
    if t_beam is not None:
        rows.append(("Beam DirectRunner (in memory), Parquet", t_beam))
    width = max(len(name) for name, _ in rows)
    print()
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:7.3f} s  {n / seconds:>13,.0f} rows/s")
    print()
    ok_ratio = ratio <= RATIO_TARGET
    ok_csv = n / t_csv >= CSV_TARGET
    print(f"  in-process / baseline time: {ratio:.2f}x   target <= {RATIO_TARGET:.0f}x   "
          f"{'MET' if ok_ratio else 'MISSED'}")
    print(f"  CSV in-process: {n / t_csv:,.0f} rows/s   target >= {CSV_TARGET:,} rows/s   "
          f"{'MET' if ok_csv else 'MISSED'}")
    return 0 if ok_ratio and ok_csv else 1


if __name__ == "__main__":
    raise SystemExit(main())
