"""Benchmark: ExampleGen on Beam over one large CSV, the file in parts across workers vs whole.

    python tests/benchmarks/bench_beam_example_gen.py [--rows 2000000] [--workers 2] [--repeat 3]
                                                      [--stat median|best]

One taxi CSV of ``--rows`` rows, converted by ExampleGen three ways, interleaved, each in a
process of its own: Beam's DirectRunner with ``--workers`` worker processes, the file cut
into parts of whole records (64 MiB, ``JFX_BEAM_PART_BYTES``; the default for a file this
size gives about one part per 64 MiB) that the workers convert side by side; the same
runner with the file as one element (parts as large as the file: what a single file cost
before it was cut); and the in-process engine, for reference. Prints wall seconds and
rows/s for each, the ratio of the whole-file time to the parts time, and how many worker
processes converted parts (ExampleGen logs it).

Targets: all three write the same rows per split, and with 2 or more workers the parts are
converted by at least 2 worker processes (before, one worker converted a file alone). The
speed ratio has no target: on a machine with no more CPUs than workers, the in-process
engine and a single Beam worker already keep the CPUs busy (the parse, the splitting and
the Parquet encoding run on threads of their own), so parts gain time only where there
are more CPUs than one worker uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.csv as pcsv

from _bench import Targets, add_stat_argument, label, summarise

from jfx.examples.taxi.generate import generate

PART_BYTES = 16 << 20  # 2M rows (about 290 MB) in about 18 parts

_STEP = r"""
import json, logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.WARNING, format="%(message)s")
logging.getLogger("jfx.components._example_gen").setLevel(logging.INFO)
from jfx.components._example_gen import ExampleGen
from jfx.types import Examples
data, out, args = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
out.mkdir(parents=True)
ex = Examples(out)
start = time.perf_counter()
ExampleGen.fn(examples=ex, input_base=data, beam_pipeline_args=args)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": ex.properties["row_counts"]}))
"""


def run_step(data: Path, out: Path, beam_args: list[str] | None, part_bytes: int) -> tuple[float, dict, int]:
    env = {**os.environ, "JFX_BEAM_PART_BYTES": str(part_bytes)}
    done = subprocess.run([sys.executable, "-c", _STEP, str(data), str(out), json.dumps(beam_args)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"ExampleGen failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(out)
    workers = re.search(r"by (\d+) Beam worker process", done.stderr)
    return got["seconds"], got["rows"], int(workers.group(1)) if workers else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    how = label(args.stat, args.repeat)
    root = Path(tempfile.mkdtemp(prefix="jfx-bench-beam-eg-"))
    try:
        data = root / "data"
        data.mkdir()
        pcsv.write_csv(generate(args.rows, seed=0), data / "taxi.csv")
        size = (data / "taxi.csv").stat().st_size
        beam = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={args.workers}"]
        ways = {
            f"Beam, {args.workers} workers, the file in parts": (beam, PART_BYTES),
            f"Beam, {args.workers} workers, the file whole": (beam, size + 1),
            "in-process engine": (None, PART_BYTES),
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        rows: dict[str, dict] = {}
        workers: dict[str, int] = {}
        for r in range(args.repeat):
            for name, (beam_args, part_bytes) in ways.items():
                seconds, rows[name], used = run_step(data, root / f"out-{r}", beam_args, part_bytes)
                times[name].append(seconds)
                workers[name] = min(workers.get(name, used), used)
        print(f"ExampleGen over one CSV of {args.rows:,} rows ({size / 1e6:.0f} MB; parts of "
              f"{PART_BYTES >> 20} MiB, about {-(-size // PART_BYTES)}):")
        found = {name: summarise(t, args.stat) for name, t in times.items()}
        for name, seconds in found.items():
            print(f"  {name:<40} {seconds:7.2f} s  {args.rows / seconds:>11,.0f} rows/s  ({how})")
        targets = Targets()
        same = len({json.dumps(r, sort_keys=True) for r in rows.values()}) == 1
        print(f"the same rows per split all three ways: {same} "
              f"[{targets.check('same rows', float(same), 1.0, '', at_least=True)}]")
        parts_name = f"Beam, {args.workers} workers, the file in parts"
        ratio = found[f"Beam, {args.workers} workers, the file whole"] / found[parts_name]
        print(f"parts / whole file, rows/s: {ratio:.2f}x ({how}; no target on a machine with "
              f"{os.cpu_count()} CPUs, see the docstring)")
        spread = workers[parts_name]
        if args.workers >= 2:
            print(f"worker processes that converted parts (fewest over the runs): {spread} "
                  f"[{targets.check('workers with parts', spread, 2, 'workers', at_least=True)}: >= 2]")
        return targets.exit_code()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
