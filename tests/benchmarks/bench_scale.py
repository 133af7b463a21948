"""Benchmark: the data path at scale, from the synthetic taxi CSV (1M and 10M rows by default).

    python tests/benchmarks/bench_scale.py [--sizes 1000000,10000000] [--repeat 1] [--stat median|best] [--keep]

Per size: generates the CSV in chunks (the generator is kept, not the data), then runs
ExampleGen → StatisticsGen → SchemaGen, each step in its own process, and prints its wall
time, rows/s and peak memory (RSS of the step's process tree). Then the ratios the scale
targets are about, and exit 1 on a miss:

- peak memory at the largest size at most 1.5 GB, and within 1.3x of the 1M-row peak;
- ExampleGen + StatisticsGen together at least 1M rows/s end to end from CSV, at every size;
- time per row of those two at the largest size within 1.3x of the size before (linear).

A size whose CSV would not fit in half the free disk is skipped, saying so. Generated data
is deleted afterwards unless ``--keep``. Each figure is the median of ``--repeat`` runs of
the steps (``--stat best`` for the best); the default is one run per size, since a 10M-row
run takes minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pcsv

from _bench import Targets, add_stat_argument, label, summarise

from jfx.examples.taxi.generate import generate

CSV_BYTES_PER_ROW = 143  # measured on the taxi generator's CSV
PEAK_LIMIT_MB = 1536
PEAK_RATIO = 1.3
RATE_TARGET = 1_000_000
LINEAR_RATIO = 1.3
STEPS = ("ExampleGen", "StatisticsGen", "SchemaGen")

_STEP = r"""
import json, resource, sys, time
from pathlib import Path
from jfx.types import Examples, ExampleStatistics, Schema
step, data, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
start = time.perf_counter()
if step == "ExampleGen":
    from jfx.components._example_gen import ExampleGen
    (work / "ex").mkdir(parents=True)
    ex = Examples(work / "ex")
    ExampleGen.fn(examples=ex, input_base=data)
    (work / "ex.json").write_text(json.dumps(ex.properties))
elif step == "StatisticsGen":
    from jfx.components._statistics_gen import StatisticsGen
    (work / "st").mkdir()
    st = ExampleStatistics(work / "st")
    StatisticsGen.fn(examples=Examples(work / "ex", properties=json.loads((work / "ex.json").read_text())),
                     statistics=st)
    (work / "st.json").write_text(json.dumps(st.properties))
else:
    from jfx.components._schema_gen import SchemaGen
    (work / "schema").mkdir()
    SchemaGen.fn(statistics=ExampleStatistics(work / "st", properties=json.loads((work / "st.json").read_text())),
                 schema=Schema(work / "schema"))
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def make_csv(rows: int, folder: Path, chunk: int = 1_000_000) -> Path:
    """The taxi table of ``rows`` rows as one CSV, written ``chunk`` rows at a time (seed = chunk index)."""
    folder.mkdir(parents=True)
    path = folder / "taxi.csv"
    writer = None
    for i, start in enumerate(range(0, rows, chunk)):
        table = generate(min(chunk, rows - start), seed=i)
        if writer is None:
            writer = pcsv.CSVWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="comma-separated row counts (default 1M and 10M; add 100000000 if the disk allows)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the steps per size (default: 1)")
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    how = label(args.stat, args.repeat)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    root = Path(tempfile.mkdtemp(prefix="jfx-bench-scale-"))
    results: dict[int, dict[str, tuple[float, int]]] = {}
    try:
        for n in sizes:
            free = shutil.disk_usage(root).free
            need = n * CSV_BYTES_PER_ROW * 2  # the CSV and the Parquet examples, with room
            if need > free // 2:
                print(f"{n:,} rows: skipped; needs about {need / 1e9:.1f} GB of disk, {free / 1e9:.1f} GB free")
                continue
            start = time.perf_counter()
            data = make_csv(n, root / f"data-{n}")
            print(f"{n:,} rows: CSV of {data.stat().st_size / 1e6:.0f} MB generated in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            runs: dict[str, list[tuple[float, int]]] = {step: [] for step in STEPS}
            for r in range(args.repeat):
                work = root / f"work-{n}-{r}"
                work.mkdir()
                for step in STEPS:
                    runs[step].append(run_isolated(step, data.parent, work))
                shutil.rmtree(work)
            results[n] = {}
            for step in STEPS:
                seconds = summarise([t for t, _ in runs[step]], args.stat)
                peak = int(summarise([float(p) for _, p in runs[step]], args.stat))
                results[n][step] = (seconds, peak)
                print(f"  {step:<14} {seconds:7.1f} s  {n / seconds:>12,.0f} rows/s  peak {peak:>6,} MB  ({how})",
                      flush=True)
            shutil.rmtree(data.parent)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return report(results, how)


def run_isolated(step: str, data: Path, work: Path) -> tuple[float, int]:
    """Runs the step through a small parent process so that its RUSAGE_CHILDREN peak is the step's alone."""
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-c', sys.argv[1], *sys.argv[2:]], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "out = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None\n"
        "print(json.dumps({'out': out, 'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
        "sys.exit(done.returncode)\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, _STEP, step, str(data), str(work)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{step} failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return got["out"]["seconds"], got["peak_kb"] >> 10


def report(results: dict[int, dict[str, tuple[float, int]]], how: str) -> int:
    targets = Targets()
    if not results:
        print("no size ran")
        return 1
    sizes = sorted(results)
    peak = {n: max(p for _, p in results[n].values()) for n in sizes}
    eg_sg = {n: results[n]["ExampleGen"][0] + results[n]["StatisticsGen"][0] for n in sizes}
    largest = sizes[-1]
    print(f"peak memory at {largest:,} rows: {peak[largest]:,} MB ({how}) "
          f"[{targets.check('peak memory', peak[largest], PEAK_LIMIT_MB + 1e-9, 'MB')}: <= {PEAK_LIMIT_MB} MB]")
    if sizes[0] != largest:
        ratio = peak[largest] / peak[sizes[0]]
        print(f"peak at {largest:,} / peak at {sizes[0]:,}: {ratio:.2f}x "
              f"[{targets.check('peak ratio', ratio, PEAK_RATIO + 1e-9, 'x')}: <= {PEAK_RATIO}x]")
    for n in sizes:
        rate = n / eg_sg[n]
        print(f"ExampleGen + StatisticsGen at {n:,} rows: {rate:,.0f} rows/s "
              f"[{targets.check(f'ExampleGen+StatisticsGen rows/s at {n:,}', rate, RATE_TARGET, 'rows/s', at_least=True)}"
              f": >= {RATE_TARGET:,}]")
    if len(sizes) > 1:
        before = sizes[-2]
        ratio = (eg_sg[largest] / largest) / (eg_sg[before] / before)
        print(f"time per row at {largest:,} / at {before:,}: {ratio:.2f}x "
              f"[{targets.check('time per row ratio', ratio, LINEAR_RATIO + 1e-9, 'x')}: <= {LINEAR_RATIO}x]")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
