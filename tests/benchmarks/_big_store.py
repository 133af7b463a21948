"""A metadata store with a long history, written in bulk: N executions of a 20-node pipeline.

The history is what the launcher would have recorded for ``runs`` hourly runs of the
pipeline :func:`chain` (20 no-op nodes, each consuming the previous one's output): a
``pipeline`` context, one ``node`` context per node, one ``pipeline_run`` context per run
(its properties as :func:`~jfx.metadata._runs.create_run` and ``finish_run`` write them,
the whole IR included), and per node and run an execution (properties as the launcher
records them: run id, pid, host, cache material, miss reason or cache source, log path),
its output artifact, its INPUT/OUTPUT events, its associations with the pipeline, run
and node contexts, and the attributions of its artifacts to them. Every third run reuses
the previous run's outputs of its first five nodes through cache hits; one run in fifty
fails at its last node.

Rows go in through SQLAlchemy Core ``insert()`` executemany, ``runs_per_tx`` runs per
transaction, with ids chosen here (no RETURNING round trips); the schema is created by
opening a :class:`MetadataStore` first, and PostgreSQL's id sequences are moved past the
ids written, so the store takes new records afterwards like any other.

    python tests/benchmarks/_big_store.py --url sqlite:////tmp/big.sqlite --executions 100000
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from jfx import Input, Output, Pipeline, component
from jfx.metadata import MetadataStore
from jfx.metadata._backend import normalize_url
from jfx.metadata._rows import run_columns
from jfx.metadata._runs import RunRecord, RunState
from jfx.metadata._schema import artifacts, associations, attributions, contexts, events, executions
from jfx.types import Dataset

PIPELINE = "bench-scale"
NODES = 20
T0 = datetime(2022, 1, 1, tzinfo=timezone.utc)
HOST = "bench-host"


@component
def noop(out: Output[Dataset], upstream: Input[Dataset] | None = None):
    """Does nothing; its (empty) output is all the runner has to publish."""


def chain(root: str, url: str, nodes: int = NODES) -> Pipeline:
    """The pipeline whose history is generated: ``nodes`` no-op nodes in a chain."""
    steps = [noop().with_id("n00")]
    for i in range(1, nodes):
        steps.append(noop(upstream=steps[-1].outputs["out"]).with_id(f"n{i:02d}"))
    return Pipeline(PIPELINE, components=steps, pipeline_root=root, metadata_url=url)


@dataclass
class BigStore:
    """What was written, and ids the benchmark measures on."""

    url: str
    runs: int
    executions: int
    artifacts: int
    events: int
    seconds: float
    run_ids: list[str]            # the newest few runs, newest first
    execution_id: int             # an execution of the newest run
    last_output_id: int           # the last node's output in the newest run (20 steps from the first)
    shared_artifact_id: int       # a first-node output reused by a cache hit
    node_ctx_ids: dict[str, int]


def _key(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def build(url: str, root: Path, executions_wanted: int = 1_000_000, nodes: int = NODES,
          runs_per_tx: int = 2500, progress: bool = True) -> BigStore:
    """Write the history into the (empty) store at ``url``; ``root`` is the runs' pipeline root."""
    t_start = time.perf_counter()
    runs = max(2, executions_wanted // nodes)
    MetadataStore(url).close()  # creates the schema through the migrations
    ir = chain(str(root), url, nodes).to_ir()
    node_ids = [n["id"] for n in ir["nodes"]]
    engine = sa.create_engine(normalize_url(url))
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _fast(dbapi_conn, _record):  # a bulk load that a crash may lose: the file is rebuilt anyway
            dbapi_conn.execute("PRAGMA synchronous = OFF")

    node_ctx = {n: 2 + i for i, n in enumerate(node_ids)}
    with engine.begin() as conn:
        conn.execute(sa.insert(contexts), [
            {"id": 1, "type_name": "pipeline", "name": PIPELINE, "parent_id": None, "properties": {},
             "create_time": T0},
            *({"id": cid, "type_name": "node", "name": f"{PIPELINE}.{n}", "parent_id": 1, "properties": {},
               "create_time": T0} for n, cid in node_ctx.items())])
    next_ctx, next_art, n_events = 2 + nodes, 1, 0
    previous: dict[str, tuple[int, int, str]] = {}  # node -> (execution id, artifact id, fingerprint) of the last run that ran it
    newest: dict[str, Any] = {}
    shared = None
    rows: dict[sa.Table, list[dict[str, Any]]] = {}

    def flush() -> None:
        with engine.begin() as conn:
            for table in (contexts, artifacts, executions, events, associations, attributions):
                if rows.get(table):
                    conn.execute(sa.insert(table), rows[table])
        rows.clear()

    for r in range(runs):
        start = T0 + timedelta(hours=r)
        run_ctx, next_ctx = next_ctx, next_ctx + 1
        run_id = f"{PIPELINE}-{start:%Y%m%d-%H%M%S}-{r:06x}"
        failed = r % 50 == 7
        node_states = {n: "complete" for n in node_ids}
        prev_art: tuple[int, str] | None = None
        made_here: set[int] = set()
        for i, n in enumerate(node_ids):
            e_id = r * nodes + i + 1
            t = start + timedelta(seconds=2 * i)
            cached = r % 3 == 0 and i < 5 and n in previous
            material = {"component": "noop", "code_version": "sha256:" + _key("noop")[:16], "parameters": {},
                        "inputs": {"upstream": prev_art[1] if prev_art else None}, "outputs": {"out": "Dataset"}}
            props: dict[str, Any] = {"pipeline": PIPELINE, "run_id": run_id, "pid": 1000 + r % 30000, "host": HOST,
                                     "code_version": material["code_version"], "cache_material": material,
                                     "log_uri": f"{root}/{PIPELINE}/.logs/{n}/{e_id}.log"}
            state = "COMPLETE"
            error = ""
            if cached:
                state = "CACHED"
                src_exec, out, fp = previous[n]
                props["cached_from"] = src_exec
                node_states[n] = "cached"
                if shared is None:
                    shared = out
            else:
                props["cache_miss_reason"] = "changed upstream artifact: upstream" if i else "changed external input"
                if failed and i == nodes - 1:
                    state, error = "FAILED", "Traceback (most recent call last):\n  ...\nValueError: bad input\n"
                    props["error_message"] = "ValueError: bad input"
                    node_states[n] = "failed"
                else:
                    out, next_art = next_art, next_art + 1
                    fp = _key("fp", out)
                    made_here.add(out)
                    rows.setdefault(artifacts, []).append({
                        "id": out, "type_name": "Dataset", "uri": f"{root}/{PIPELINE}/{n}/out/{e_id}",
                        "name": f"{n}.out", "state": "LIVE", "fingerprint": fp,
                        "properties": {"rows": 1000 + r, "producer": n}, "create_time": t, "update_time": t})
                    previous[n] = (e_id, out, fp)
            rows.setdefault(executions, []).append({
                "id": e_id, "type_name": "noop", "node_id": n, "state": state, "parameters": {},
                "cache_key": _key(n, "cached" if cached else r), "error": error, "properties": props,
                "start_time": t, "end_time": t + timedelta(seconds=1)})
            touched = []
            if prev_art is not None:
                rows.setdefault(events, []).append({"artifact_id": prev_art[0], "execution_id": e_id, "type": "INPUT",
                                                    "key": "upstream", "idx": 0, "time": t})
                touched.append(prev_art[0])
            if state != "FAILED":
                rows.setdefault(events, []).append({"artifact_id": out, "execution_id": e_id, "type": "OUTPUT",
                                                    "key": "out", "idx": 0, "time": t})
                touched.append(out)
            n_events += len(touched)
            for c in (1, run_ctx, node_ctx[n]):
                rows.setdefault(associations, []).append({"context_id": c, "execution_id": e_id})
            # the launcher attributes every input and output to each context, once per pair: a
            # reused artifact is already attributed to the pipeline and (by the run that made it)
            # to the node's context
            for a in touched:
                rows.setdefault(attributions, []).append({"context_id": run_ctx, "artifact_id": a})
                if a in made_here:
                    rows.setdefault(attributions, []).append({"context_id": node_ctx[n], "artifact_id": a})
            if state != "FAILED" and not cached:
                rows.setdefault(attributions, []).append({"context_id": 1, "artifact_id": out})
            prev_art = (out, fp)
            if r == runs - 1:
                newest.setdefault("execution_id", e_id)
                newest["last_output_id"] = out
        end = start + timedelta(seconds=2 * nodes)
        record = RunRecord(run_id, state=RunState.FAILED if failed else RunState.COMPLETE, start_time=start,
                           end_time=end, parameters={"rows": 100 + r % 7}, pipeline_root=str(root), ir=ir,
                           host=HOST, pid=1000 + r % 30000, runner="local", node_states=node_states)
        rows.setdefault(contexts, []).append({"id": run_ctx, "type_name": "pipeline_run", "name": run_id,
                                              "parent_id": 1, "properties": record.to_properties(),
                                              "create_time": start,
                                              **run_columns("pipeline_run", record.to_properties())})
        # a node's input is the previous node's output, attributed to the run already: one row per pair
        if (r + 1) % runs_per_tx == 0 or r == runs - 1:
            attr = rows.get(attributions, [])
            rows[attributions] = list({(d["context_id"], d["artifact_id"]): d for d in attr}.values())
            flush()
            if progress:
                print(f"  {(r + 1) * nodes:,} executions written ({time.perf_counter() - t_start:.0f} s)",
                      file=sys.stderr, flush=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in (contexts, artifacts, executions, events):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                     f"(SELECT MAX(id) FROM {table.name}))"))
        # What autovacuum does to a table after inserts (PostgreSQL 13 and later), which a store
        # written over months has had and one written in minutes may not have had yet: the
        # visibility map that lets the run lists read their indexes alone, and the planner's
        # statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    run_names = [f"{PIPELINE}-{T0 + timedelta(hours=r):%Y%m%d-%H%M%S}-{r:06x}" for r in range(runs - 1, max(-1, runs - 6), -1)]
    assert shared is not None
    return BigStore(url=url, runs=runs, executions=runs * nodes, artifacts=next_art - 1, events=n_events,
                    seconds=time.perf_counter() - t_start, run_ids=run_names, execution_id=newest["execution_id"],
                    last_output_id=newest["last_output_id"], shared_artifact_id=shared, node_ctx_ids=node_ctx)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="an empty database (a new SQLite file, or a new PostgreSQL database)")
    ap.add_argument("--root", default="/tmp/jfx-big-store-root", help="the runs' pipeline root (nothing is written there)")
    ap.add_argument("--executions", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    made = build(args.url, Path(args.root), args.executions)
    print(f"{made.executions:,} executions, {made.artifacts:,} artifacts, {made.events:,} events, {made.runs:,} runs "
          f"in {made.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
