"""Benchmark: the data path at scale, from the synthetic taxi CSV (1M and 10M rows by default).

    python tests/benchmarks/bench_scale.py [--sizes 1000000,10000000] [--repeat 1] [--stat median|best]
                                           [--train-steps 100] [--keep]

Sizes: ``--sizes``, else ``JFX_BENCH_SCALE_SIZES`` (comma-separated row counts), else 1M and
10M. 100M rows (a 14 GB CSV, about half an hour on 2 CPUs) runs only when asked:
``JFX_BENCH_SCALE_100M=1`` adds it to the sizes (or name it in ``--sizes``).

Per size: generates the CSV in chunks (the generator is kept, not the data), then runs
ExampleGen → StatisticsGen → SchemaGen → Transform (z-scores and vocabularies) → Trainer (a
small DNN, ``--train-steps`` steps: its input pipeline and export at that size, not a
full epoch) → Evaluator (the trained model over the whole eval split), each step in its own
process, and prints its wall time, rows/s, peak memory (RSS of the step's process tree) and
CPU seconds (which other work on the machine moves less than wall time).
The baseline, in the same run and also in a process of its own: pyarrow's streaming CSV
parse of the same file (``pyarrow.csv.open_csv``, every batch read, nothing kept), which
ExampleGen's time is printed against. Then how each step's time per row and peak memory
grow from one size to the next, and the ratios the scale targets are about, with exit 1 on
a miss:

- peak memory of every step at the largest size at most 1.5 GB, and within 1.3x of the
  smallest size's peak;
- ExampleGen + StatisticsGen together at least 1M rows/s end to end from CSV, at every size;
- time per row of those two at the largest size within 1.3x of the size before (linear).

Then, at the largest size (``--no-faults`` skips it), the faults through a real ``jfx run``
of a one-node pipeline: a good run, then the same CSV with a malformed row appended near its
end (10 good rows follow it), which must fail naming the file and line, publish nothing
(no LIVE artifact, no output or staging folder) and peak at no more than 1.1x the good
run's memory; then Ctrl-C once ExampleGen has written a row group, which must stop the run
within 5 s, mark it CANCELLED and remove the staging folder.

It also prints the CPU seconds ExampleGen and StatisticsGen took per 1M rows, and the rate
those CPU seconds allow on this machine's CPUs if every CPU were busy the whole time: no
scheduling of the same work can beat it, so where it is below 1M rows/s the machine is too
small for that target; and the rate the CPU would allow if ExampleGen's work beyond
pyarrow's parse were free (the parse's CPU seconds plus StatisticsGen's). A second baseline, pyarrow's own streaming
conversion of the file to one Parquet file (the parse, then ``ParquetWriter`` with its
defaults), is what ExampleGen's time and CPU are compared with besides the parse.

A size whose data (the CSV, the examples and the transformed examples) would take more than
80% of the free disk is skipped, saying so. Generated data
is deleted afterwards unless ``--keep``. Each figure is the median of ``--repeat`` runs of
the steps (``--stat best`` for the best); the default is one run per size, since a 10M-row
run takes minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pcsv

from _bench import Targets, add_stat_argument, label, summarise

from jfx.examples.taxi.generate import generate
from jfx.metadata import ArtifactState, ExecutionState, MetadataStore

CSV_BYTES_PER_ROW = 143  # measured on the taxi generator's CSV
PARQUET_BYTES_PER_ROW = 130  # the examples, the transformed examples, with room
PEAK_LIMIT_MB = 1536
PEAK_RATIO = 1.3
RATE_TARGET = 1_000_000
LINEAR_RATIO = 1.3
DEFAULT_SIZES = "1000000,10000000"
SIZES_ENV = "JFX_BENCH_SCALE_SIZES"
OPT_IN_ENV = "JFX_BENCH_SCALE_100M"
HUNDRED_MILLION = 100_000_000
BASELINE = "pyarrow CSV parse"
CONVERSION = "pyarrow CSV to Parquet"  # the parse and a plain Parquet write, for comparison
BASELINES = (BASELINE, CONVERSION)
FAULT_PEAK_RATIO = 1.1  # a failing run holds no more memory than a good one (with room for noise)
STOP_SECONDS = 5.0  # Ctrl-C stops ExampleGen within this
STEPS = ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Evaluator")

_MODULE = '''
import jax.numpy as jnp
import optax
from flax import nnx
from jfx.components import transform as jt
from jfx.core import Categorical, DNNClassifier, Numeric, fit, vocab_size

NUMERIC = ["trip_miles", "trip_seconds", "fare"]
CATEGORICAL = ["company", "payment_type"]


def preprocessing_fn(inputs):
    out = {name: jnp.nan_to_num(jt.scale_to_z_score(inputs[name]), nan=0.0) for name in NUMERIC}
    for name in CATEGORICAL:
        out[name] = jt.compute_and_apply_vocabulary(inputs[name], top_k=100, num_oov_buckets=1)
    out["big_tipper"] = inputs["big_tipper"]
    return out


def run_fn(ctx):
    spec = {name: Numeric() for name in NUMERIC}
    for name in CATEGORICAL:
        spec[name] = Categorical(vocab_size(ctx.transform.encoders[name]))
    model = nnx.jit(lambda: DNNClassifier(spec, hidden_units=(32, 16), n_classes=2, rngs=nnx.Rngs(0)))()
    train = ctx.train_dataset(batch_size=256, features=NUMERIC + CATEGORICAL, label="big_tipper")
    history = fit(model, optax.adam(0.01), "sparse_categorical_crossentropy", train,
                  steps=ctx.train_args.num_steps, progress=False)
    ctx.export_model(model, train)
    return history
'''

_STEP = r"""
import json, sys, time
from pathlib import Path
from jfx.types import (Examples, ExampleStatistics, Model, ModelBlessing, ModelEvaluation, ModelRun, Schema,
                       TransformGraph)
step, data, work, module, steps = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
examples = lambda name: Examples(work / name, properties=json.loads((work / f"{name}.json").read_text()))
start = time.perf_counter()
if step == "pyarrow CSV parse":
    import pyarrow.csv as pcsv
    with pcsv.open_csv(Path(data) / "taxi.csv", parse_options=pcsv.ParseOptions(newlines_in_values=True)) as reader:
        for _ in reader:
            pass
elif step == "pyarrow CSV to Parquet":
    import pyarrow.csv as pcsv, pyarrow.parquet as pq
    with pcsv.open_csv(Path(data) / "taxi.csv", parse_options=pcsv.ParseOptions(newlines_in_values=True)) as reader:
        with pq.ParquetWriter(work / "plain.parquet", reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    (work / "plain.parquet").unlink()
elif step == "ExampleGen":
    from jfx.components._example_gen import ExampleGen
    (work / "ex").mkdir(parents=True)
    ex = Examples(work / "ex")
    ExampleGen.fn(examples=ex, input_base=data)
    (work / "ex.json").write_text(json.dumps(ex.properties))
elif step == "StatisticsGen":
    from jfx.components._statistics_gen import StatisticsGen
    (work / "st").mkdir()
    st = ExampleStatistics(work / "st")
    StatisticsGen.fn(examples=examples("ex"), statistics=st)
    (work / "st.json").write_text(json.dumps(st.properties))
elif step == "SchemaGen":
    from jfx.components._schema_gen import SchemaGen
    (work / "schema").mkdir()
    SchemaGen.fn(statistics=ExampleStatistics(work / "st", properties=json.loads((work / "st.json").read_text())),
                 schema=Schema(work / "schema"))
elif step == "Transform":
    from jfx.components._transform import Transform
    (work / "tx").mkdir(); (work / "tg").mkdir()
    tx = Examples(work / "tx")
    Transform.fn(examples=examples("ex"), schema=Schema(work / "schema"), transformed_examples=tx,
                 transform_graph=TransformGraph(work / "tg"), module_file=module)
    (work / "tx.json").write_text(json.dumps(tx.properties))
elif step == "Trainer":
    from jfx.components._trainer import Trainer
    (work / "model").mkdir(); (work / "run").mkdir()
    Trainer.fn(examples=examples("tx"), model=Model(work / "model"), model_run=ModelRun(work / "run"),
               transform_graph=TransformGraph(work / "tg"), module_file=module, train_args={"num_steps": steps})
else:
    from jfx.components._evaluator import Evaluator
    (work / "ev").mkdir(); (work / "bl").mkdir()
    Evaluator.fn(examples=examples("ex"), model=Model(work / "model", id=1), evaluation=ModelEvaluation(work / "ev"),
                 blessing=ModelBlessing(work / "bl"),
                 eval_config={"label_key": "big_tipper", "slicing_specs": [[], ["payment_type"]]})
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


def sizes_from(flag: str | None, env: dict[str, str]) -> list[int]:
    """The row counts to run: ``--sizes``, else ``JFX_BENCH_SCALE_SIZES``, else 1M and 10M;
    100M added when ``JFX_BENCH_SCALE_100M`` is set to anything but ``""``/``0``."""
    text = flag or env.get(SIZES_ENV) or DEFAULT_SIZES
    sizes = {int(s) for s in text.split(",") if s.strip()}
    if env.get(OPT_IN_ENV, "") not in ("", "0"):
        sizes.add(HUNDRED_MILLION)
    return sorted(sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=None,
                        help=f"comma-separated row counts (default: ${SIZES_ENV}, else {DEFAULT_SIZES}; "
                             f"${OPT_IN_ENV}=1 adds 100M)")
    parser.add_argument("--train-steps", type=int, default=100, help="the Trainer's optimiser steps (default 100)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--no-faults", action="store_true",
                        help="skip the bad-row and Ctrl-C runs at the largest size")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the steps per size (default: 1)")
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    how = label(args.stat, args.repeat)
    sizes = sizes_from(args.sizes, dict(os.environ))
    root = Path(tempfile.mkdtemp(prefix="jfx-bench-scale-"))
    module = root / "taxi_module.py"
    module.write_text(_MODULE)
    env = {**os.environ, "JFX_HOME": str(root / "home")}  # the Trainer's MLflow store
    results: dict[int, dict[str, tuple[float, int]]] = {}
    cpus: dict[int, dict[str, float]] = {}
    faults: dict[str, Any] | None = None
    try:
        for n in sizes:
            free = shutil.disk_usage(root).free
            need = n * (CSV_BYTES_PER_ROW + 2 * PARQUET_BYTES_PER_ROW)
            if need > free * 0.8:  # a fifth of the free disk stays free for everything else
                print(f"{n:,} rows: skipped; needs about {need / 1e9:.1f} GB of disk, {free / 1e9:.1f} GB free")
                continue
            start = time.perf_counter()
            data = make_csv(n, root / f"data-{n}")
            print(f"{n:,} rows: CSV of {data.stat().st_size / 1e6:.0f} MB generated in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            runs: dict[str, list[tuple[float, int, float]]] = {step: [] for step in (*BASELINES, *STEPS)}
            for r in range(args.repeat):
                work = root / f"work-{n}-{r}"
                work.mkdir()
                for step in (*BASELINES, *STEPS):
                    runs[step].append(run_isolated(step, data.parent, work, module, args.train_steps, env))
                shutil.rmtree(work)
            results[n] = {}
            for step in (*BASELINES, *STEPS):
                seconds = summarise([t for t, _, _ in runs[step]], args.stat)
                peak = int(summarise([float(p) for _, p, _ in runs[step]], args.stat))
                cpu = summarise([c for _, _, c in runs[step]], args.stat)
                results[n][step] = (seconds, peak)
                cpus.setdefault(n, {})[step] = cpu
                rate = (f"{args.train_steps:>7} steps  " if step == "Trainer"
                        else f"{n / seconds:>12,.0f} rows/s")
                print(f"  {step:<22} {seconds:7.1f} s  {rate}  peak {peak:>6,} MB  cpu {cpu:7.1f} s  ({how})",
                      flush=True)
            if not args.no_faults and n == max(sizes):
                faults = fault_runs(data, n, root / f"faults-{n}", env)
            shutil.rmtree(data.parent)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    for n, by_step in cpus.items():  # CPU seconds: less moved than wall time by other work on the machine
        print(f"ExampleGen / {BASELINE} in CPU seconds at {n:,} rows: "
              f"{by_step['ExampleGen'] / by_step[BASELINE]:.2f}x ({how})")
    return report(results, how, cpus, faults)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_isolated(step: str, data: Path, work: Path, module: Path, train_steps: int,
                 env: dict[str, str]) -> tuple[float, int, float]:
    """Runs the step through a small parent process so that its RUSAGE_CHILDREN peak is the
    step's alone; returns its wall seconds, peak MB and CPU seconds (imports included)."""
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-c', sys.argv[1], *sys.argv[2:]], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "out = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'out': out, 'peak_kb': usage.ru_maxrss, 'cpu': usage.ru_utime + usage.ru_stime}))\n"
        "sys.exit(done.returncode)\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, _STEP, step, str(data), str(work), str(module),
                           str(train_steps)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{step} failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return got["out"]["seconds"], got["peak_kb"] >> 10, got["cpu"]


def report(results: dict[int, dict[str, tuple[float, int]]], how: str,
           cpus: dict[int, dict[str, float]] | None = None, faults: dict[str, Any] | None = None) -> int:
    targets = Targets()
    if not results:
        print("no size ran")
        return 1
    sizes = sorted(results)
    for n in sizes:
        ratio = results[n]["ExampleGen"][0] / results[n][BASELINE][0]
        print(f"ExampleGen / {BASELINE} of the same CSV at {n:,} rows: {ratio:.2f}x ({how}; the parse alone, "
              "in the same run, is the floor)")
    for before, after in itertools.pairwise(sizes):
        print(f"growth from {before:,} to {after:,} rows (time per row, peak memory):")
        for step in STEPS:
            (t0, p0), (t1, p1) = results[before][step], results[after][step]
            per_row = (t1 / after) / (t0 / before)
            print(f"  {step:<22} time per row {per_row:5.2f}x  peak {p1 / p0:5.2f}x"
                  + ("  (fixed steps: time per row falls as rows grow)" if step == "Trainer" else ""))
    peak = {n: max(p for step, (_, p) in results[n].items() if step not in BASELINES) for n in sizes}
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
    cores = usable_cpus()
    for n, by_step in sorted((cpus or {}).items()):
        # CPU seconds bound the rate whatever the threads do: the CPUs can give at most
        # ``cores`` CPU seconds per second, imports and interpreter start included.
        work = by_step["ExampleGen"] + by_step["StatisticsGen"]
        print(f"ExampleGen + StatisticsGen CPU at {n:,} rows: {work * 1e6 / n:.2f} CPU-s per 1M rows "
              f"(imports included; the parse alone {by_step[BASELINE] * 1e6 / n:.2f}); with all {cores} CPUs busy throughout, "
              f"at most {n * cores / work:,.0f} rows/s ({how})")
        # ExampleGen parses the whole CSV with pyarrow whatever else it does: were its splitting,
        # hashing, Parquet encoding and fingerprint free, the parse and StatisticsGen as it is
        # would still bound the pair's rate.
        floor = by_step[BASELINE] + by_step["StatisticsGen"]
        print(f"  with ExampleGen's work beyond the parse free: the parse ({by_step[BASELINE] * 1e6 / n:.2f} CPU-s per "
              f"1M rows) + StatisticsGen ({by_step['StatisticsGen'] * 1e6 / n:.2f}) = {floor * 1e6 / n:.2f}: at most "
              f"{n * cores / floor:,.0f} rows/s on {cores} CPUs; ExampleGen / pyarrow's own CSV to Parquet "
              f"conversion: {by_step['ExampleGen'] / by_step[CONVERSION]:.2f}x in CPU")
    if len(sizes) > 1:
        before = sizes[-2]
        ratio = (eg_sg[largest] / largest) / (eg_sg[before] / before)
        print(f"time per row at {largest:,} / at {before:,}: {ratio:.2f}x "
              f"[{targets.check('time per row ratio', ratio, LINEAR_RATIO + 1e-9, 'x')}: <= {LINEAR_RATIO}x]")
    if faults is not None:
        n = faults["rows"]
        ratio = faults["bad_peak"] / faults["good_peak"]
        print(f"a malformed row near the end of {n:,} rows: failed after {faults['bad_seconds']:.1f} s "
              f"(a good run: {faults['good_seconds']:.1f} s); named {faults['expected']!r} "
              f"[{targets.check('bad row named', float(faults['named']), 1.0, '', at_least=True)}]; "
              f"published nothing [{targets.check('bad row published nothing', float(faults['clean']), 1.0, '', at_least=True)}]; "
              f"peak {faults['bad_peak']:,} MB, {ratio:.2f}x a good run's {faults['good_peak']:,} MB "
              f"[{targets.check('bad row peak ratio', ratio, FAULT_PEAK_RATIO + 1e-9, 'x')}: <= {FAULT_PEAK_RATIO}x]")
        print(f"Ctrl-C in ExampleGen at {n:,} rows: stopped {faults['stop_seconds']:.2f} s after it "
              f"[{targets.check('Ctrl-C stop seconds', faults['stop_seconds'], STOP_SECONDS, 's')}: < {STOP_SECONDS:g} s]; "
              f"run CANCELLED, staging removed, nothing published "
              f"[{targets.check('Ctrl-C left nothing', float(faults['cancelled_clean']), 1.0, '', at_least=True)}]")
    return targets.exit_code()


_FAULT_PIPELINE = """
from jfx import Pipeline
from jfx.components import ExampleGen

pipeline = Pipeline("scale", components=[ExampleGen(input_base={data!r})], pipeline_root={root!r},
                    metadata_url={url!r})
"""

# `jfx` as the console script runs it, taking SIGINT as Ctrl-C even where the shell that
# started the benchmark ignores it.
_JFX = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import runpy, sys\nsys.argv[0] = 'jfx'\nrunpy.run_module('jfx', run_name='__main__')\n")
# `jfx run` (_JFX, the pipeline), then its peak RSS (the largest process of its tree).
_JFX_RUN = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-c", sys.argv[1], "run", sys.argv[2], "--progress", "log"],
                      capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "out": done.stdout + done.stderr, "peak_kb": usage.ru_maxrss}))
"""


def _fault_pipeline(folder: Path, data: Path) -> tuple[Path, str, Path]:
    """A one-node pipeline over ``data`` (a folder) in ``folder``: its file, store URL and node folder."""
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'md.sqlite'}"
    pipeline = folder / "pipeline.py"
    pipeline.write_text(_FAULT_PIPELINE.format(data=str(data), root=str(folder / "root"), url=url))
    return pipeline, url, folder / "root" / "scale" / "ExampleGen"


def _measured_run(pipeline: Path, env: dict[str, str]) -> tuple[int, str, int, float]:
    """``jfx run`` of ``pipeline``: exit code, output, peak MB and wall seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _JFX_RUN, _JFX, str(pipeline)], capture_output=True, text=True,
                          env=env, cwd=pipeline.parent)
    seconds = time.perf_counter() - start
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return got["rc"], got["out"], got["peak_kb"] >> 10, seconds


def _nothing_published(url: str, node_dir: Path) -> bool:
    with MetadataStore(url) as store:
        live = [a for a in store.get_artifacts() if a.state == ArtifactState.LIVE]
    return not live and not (node_dir / "examples").exists() and not list(node_dir.glob(".staging-*"))


def fault_runs(csv: Path, rows: int, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """The bad-row and Ctrl-C runs on ``csv`` (which gains a malformed row near its end)."""
    good_pipeline, _, _ = _fault_pipeline(folder / "good", csv.parent)
    rc, out, good_peak, good_seconds = _measured_run(good_pipeline, env)
    if rc != 0:
        sys.exit(f"a good jfx run of ExampleGen failed:\n{out[-3000:]}")
    shutil.rmtree(folder / "good")
    with csv.open("rb") as fh:  # the file's last ten records, repeated after the bad one
        fh.seek(max(fh.seek(0, os.SEEK_END) - (64 << 10), 0))
        tail = fh.read().splitlines(keepends=True)[-10:]
    with csv.open("ab") as fh:
        fh.write(b"1,2\n" + b"".join(tail))
    expected = f"taxi.csv: line {rows + 2}: expected 18 fields, got 2"
    bad_pipeline, url, node_dir = _fault_pipeline(folder / "bad", csv.parent)
    rc, out, bad_peak, bad_seconds = _measured_run(bad_pipeline, env)
    found = {"rows": rows, "good_peak": good_peak, "good_seconds": good_seconds, "bad_peak": bad_peak,
             "bad_seconds": bad_seconds, "expected": expected, "named": rc != 0 and expected in out,
             "clean": rc != 0 and _nothing_published(url, node_dir)}
    if not found["named"]:
        print(f"the bad-row run (exit {rc}) did not say {expected!r}:\n{out[-2000:]}")

    pipeline, url, node_dir = _fault_pipeline(folder / "ctrl-c", csv.parent)
    proc = subprocess.Popen([sys.executable, "-c", _JFX, "run", str(pipeline), "--progress", "log"],
                            cwd=pipeline.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not list(node_dir.glob(".staging-*/**/part-*.parquet")):  # a row group written
            if proc.poll() is not None:
                sys.exit(f"jfx run ended before ExampleGen wrote a row group:\n{proc.communicate()[0][-3000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        out, _ = proc.communicate(timeout=600)
        found["stop_seconds"] = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with MetadataStore(url) as store:
        states = [e.state for e in store.get_executions()]
    found["cancelled_clean"] = (proc.returncode != 0 and states == [ExecutionState.CANCELLED]
                                and _nothing_published(url, node_dir))
    if not found["cancelled_clean"]:
        print(f"after Ctrl-C (exit {proc.returncode}, executions {states}):\n{out[-2000:]}")
    shutil.rmtree(folder)
    return found


if __name__ == "__main__":
    sys.exit(main())
