"""Benchmark of `jfx gc`: deleting runs costs about what recording them did.

A SQLite store gets ``--runs`` runs of a 5-node chain through the store's own API (one
``put_execution`` per node, an output folder of 1 KiB per artifact under a local root;
every third run reuses the first run's outputs of its first two nodes through cache hits,
as real reruns do). The baseline, measured in the same run, is that recording: ms per run.
Then ``collect_garbage`` with ``keep_last`` keeps the newest tenth of the runs: a dry run
(planning and sizing every artifact) and the real one (marking, removing the folders,
marking DELETED), each as ms per deleted run and as a ratio to the recording. The work is
repeated on fresh copies of the store and the root (``--repeat``): the median of the repeats
(``--stat best`` for the best).
Target: the real gc costs under 3 recordings per run.

    .venv/bin/python tests/benchmarks/bench_gc.py [--runs 200] [--repeat 3] [--stat best]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _bench import Targets, add_stat_argument, label, summarise

from jfx.metadata import (
    NODE,
    PIPELINE,
    ArtifactRecord,
    ExecutionRecord,
    ExecutionState,
    MetadataStore,
    RetentionPolicy,
    collect_garbage,
)
from jfx.metadata._runs import RunRecord, RunState, create_run

NODES = ("gen", "stats", "schema", "train", "eval")
TARGET_RATIO = 3.0


def record(url: str, root: Path, runs: int) -> float:
    """Record the history; returns the seconds it took (the files are written outside the timing)."""
    spent = 0.0
    with MetadataStore(url) as store:
        pipeline = store.get_or_create_context(PIPELINE, "bench")
        node_ctx = {n: store.get_or_create_context(NODE, f"bench.{n}", parent_id=pipeline.id).stored_id for n in NODES}
        first: dict[str, ArtifactRecord] = {}
        serial = 0
        for r in range(runs):
            folders = []
            for n in NODES:
                serial += 1
                folder = root / "bench" / n / "out" / str(serial)
                folder.mkdir(parents=True)
                (folder / "data.bin").write_bytes(b"x" * 1024)
                folders.append(folder)
            t0 = time.perf_counter()
            run = create_run(store, "bench", RunRecord(f"bench-{r:05d}", state=RunState.COMPLETE,
                                                       pipeline_root=str(root)))
            previous: ArtifactRecord | None = None
            for i, n in enumerate(NODES):
                contexts = [pipeline.stored_id, run.context_id, node_ctx[n]]
                inputs = {"data": [previous.stored_id]} if previous is not None else {}
                if r and r % 3 == 0 and i < 2:  # a cache hit re-records the first run's output
                    store.put_execution(ExecutionRecord(n, n, state=ExecutionState.CACHED), contexts=contexts,
                                        inputs=inputs, outputs={"out": [first[n]]})
                    previous = first[n]
                    continue
                out = ArtifactRecord("Dataset", str(folders[i]), name=f"{n}.out", fingerprint=f"{n}-{r}")
                store.put_execution(ExecutionRecord(n, n, state=ExecutionState.COMPLETE), contexts=contexts,
                                    inputs=inputs, outputs={"out": [out]})
                first.setdefault(n, out)
                previous = out
            spent += time.perf_counter() - t0
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    add_stat_argument(parser)
    args = parser.parse_args()
    keep = max(1, args.runs // 10)
    deleted_runs = args.runs - keep
    policy = RetentionPolicy(keep_last=keep)
    rec, dry, real = [], [], []
    artifacts = freed = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for i in range(args.repeat):
            work = base / f"try-{i}"
            url = f"sqlite:///{work / 'md.sqlite'}"
            rec.append(record(url, work / "root", args.runs) * 1000 / args.runs)
            with MetadataStore(url) as store:
                t0 = time.perf_counter()
                plan = collect_garbage(store, policy, dry_run=True)
                dry.append((time.perf_counter() - t0) * 1000 / deleted_runs)
                t0 = time.perf_counter()
                done = collect_garbage(store, policy)
                real.append((time.perf_counter() - t0) * 1000 / deleted_runs)
            assert len(done.runs) == deleted_runs and not done.errors, done.errors
            assert {a.id for a in plan.artifacts} == {a.id for a in done.artifacts}
            artifacts, freed = len(done.artifacts), done.bytes_freed
            shutil.rmtree(work)
    stat = args.stat
    r, d, g = summarise(rec, stat), summarise(dry, stat), summarise(real, stat)
    print(f"jfx gc on a SQLite store of {args.runs} runs x {len(NODES)} nodes, keeping the newest {keep} "
          f"({label(stat, args.repeat)}); {deleted_runs} runs, {artifacts} artifacts, {freed} bytes deleted")
    print(f"  recording a run (baseline)   {r:8.2f} ms/run")
    print(f"  gc --dry-run                 {d:8.2f} ms per deleted run  ({d / r:.2f}x the recording)")
    print(f"  gc                           {g:8.2f} ms per deleted run  ({g / r:.2f}x the recording)")
    targets = Targets()
    verdict = targets.check("gc per deleted run / recording per run", g / r, TARGET_RATIO, "x")
    print(f"gc / recording: {g / r:.2f}x (target < {TARGET_RATIO:g}: {verdict})")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
