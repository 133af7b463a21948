"""The metadata store at a million executions: what the launcher, `jfx runs list` and the UI cost.

For each backend (SQLite; PostgreSQL at 127.0.0.1:5432 when reachable, in a database
created for the run and dropped after) two stores are generated in bulk by
``_big_store.py``: a baseline of 10,000 executions and one of ``--executions``
(default 1,000,000 = 50,000 hourly runs of a 20-node pipeline). On each it measures,
as the median of ``--repeat`` (after one warm-up):

* the launcher's cache lookup of a node (``find_cached`` of a key with no hit, and
  ``miss_reason``), and a cached node's whole overhead: the pipeline whose history the
  store holds, run for real by LocalDagRunner and then rerun fully from cache (ms/node);
* ``jfx runs list`` as the command line runs it (in-process: opening the store included,
  Python's start-up not);
* every UI API page's server time (``UIApp.handle`` in-process) and, with Playwright
  and /usr/bin/chromium, each UI page in headless Chromium;
* lineage of the newest run's last output back to the first node's (20 steps);
* ``reap_abandoned`` as a run does it at start.

Prints each figure at both sizes and their ratio (how the time grows with the store).
Targets at the large size: cache lookup and cached node <= 20 ms, runs list <= 1 s,
each API page <= 100 ms, each browser page <= 300 ms, lineage <= 50 ms. A miss exits 1.

    python tests/benchmarks/bench_store_scale.py [--executions 1000000] [--backend sqlite|postgresql|all]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from _big_store import PIPELINE, BigStore, build, chain
from _bench import Targets, median_ms
from bench_ui import browser_loads

from jfx import cli
from jfx.metadata import ListOptions, MetadataStore
from jfx.metadata._runs import list_runs
from jfx.metadata.ui import UIApp, UIServer
from jfx.orchestrators import LocalDagRunner, reap_abandoned
from jfx.orchestrators._cache import find_cached, miss_reason
from jfx.pipelines import PipelineIR

BASELINE = 10_000
PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/{db}"

TARGETS_MS = {"cache": 20.0, "cached node": 20.0, "runs list": 1000.0, "api": 100.0, "browser": 300.0,
              "lineage": 50.0, "reap": 1000.0}


@contextlib.contextmanager
def database(backend: str, tmp: Path, tag: str) -> Iterator[str]:
    """A new, empty database; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'{tag}.sqlite'}"
        return
    import psycopg

    name = f"jfx_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield PG_URL.format(db=name)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def api_pages(big: BigStore) -> dict[str, str]:
    run, other = big.run_ids[0], big.run_ids[1]
    e, a, shared = big.execution_id, big.last_output_id, big.shared_artifact_id
    return {
        "/api/pipelines": "/api/pipelines",
        "/api/runs": "/api/runs?limit=50&offset=0",
        "/api/runs (last page)": f"/api/runs?limit=50&offset={big.runs - 50}",
        "/api/runs?state=FAILED": "/api/runs?state=FAILED&limit=50",
        "/api/runs?pipeline=": f"/api/runs?pipeline={PIPELINE}&limit=50",
        "/api/runs?q=": f"/api/runs?q={run[-6:]}&limit=50",
        "/api/runs/{run}": f"/api/runs/{run}",
        "/api/runs/{run}/executions": f"/api/runs/{run}/executions?limit=100",
        "/api/executions/{id}": f"/api/executions/{e}",
        "/api/artifacts": "/api/artifacts?limit=50",
        "/api/artifacts?type=": "/api/artifacts?type=Dataset&limit=50",
        "/api/artifacts?name=": "/api/artifacts?name=n10.out&limit=50",
        "/api/artifacts/{id}": f"/api/artifacts/{a}",
        "/api/artifacts/{id} (reused)": f"/api/artifacts/{shared}",
        "/api/artifacts/{id}/view": f"/api/artifacts/{a}/view",
        "/api/lineage?artifact=": f"/api/lineage?artifact={a}&up=2&down=1",
        "/api/lineage?execution=": f"/api/lineage?execution={e}",
        "/api/compare?runs=": f"/api/compare?runs={run},{other}",
    }


def browser_pages(big: BigStore) -> dict[str, tuple[str, list[str], str]]:
    run, other, e, a = big.run_ids[0], big.run_ids[1], big.execution_id, big.last_output_id
    return {
        "page /runs": ("/runs", [], "tr.run-row"),
        "page /runs/{run}": (f"/runs/{run}", [], "#dag .node"),
        "page /executions/{id}": (f"/executions/{e}", [], ".execution"),
        "page /artifacts/{id}": (f"/artifacts/{a}", [], "#lineage .node"),
        "page /compare": (f"/compare?runs={run},{other}", [], "#artifact-diff"),
    }


def measure(big: BigStore, repeat: int, root: Path, browser: bool) -> dict[str, float]:
    """Every figure (ms) on one store."""
    found: dict[str, float] = {}
    ir = PipelineIR.from_dict(chain(str(root), big.url).to_ir())
    node = next(n for n in ir.nodes if n.id == "n10")
    node_ctx = big.node_ctx_ids["n10"]
    with MetadataStore(big.url) as store:
        found["cache lookup (find_cached, a miss)"] = median_ms(lambda: find_cached(store, node, node_ctx, "0" * 64), repeat)
        before = store.get_executions(node_id="n10", context_id=node_ctx,
                                      options=ListOptions(limit=1, order_by="id", descending=True))[0]
        material = {**before.properties["cache_material"], "parameters": {"changed": 1}}
        found["cache lookup (miss_reason)"] = median_ms(lambda: miss_reason(store, node, node_ctx, material), repeat)
        found["lineage (20 steps up)"] = median_ms(lambda: store.lineage(big.last_output_id, "upstream"), repeat)
        found["reap_abandoned"] = median_ms(lambda: reap_abandoned(store), repeat)
        found["list_runs (50 newest)"] = median_ms(
            lambda: list_runs(store, options=ListOptions(limit=50, order_by="id", descending=True)), repeat)

        def runs_list() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli.main(["runs", "list", "--metadata-url", big.url]) == 0

        found["jfx runs list"] = median_ms(runs_list, repeat)
        app = UIApp(store)
        for name, target in api_pages(big).items():
            def call(target: str = target) -> None:
                response = app.handle("GET", target, {})
                assert response.status == 200, (target, response.status, response.body[:300])
            found[name] = median_ms(call, repeat)
    # the pipeline this history is of, run for real, then rerun from cache
    runner = LocalDagRunner(executor="thread", progress=False)
    pipeline = chain(str(root), big.url)
    t0 = time.perf_counter()
    result = runner.run(pipeline)
    assert result.succeeded, result.nodes
    found["first run (ms/node)"] = (time.perf_counter() - t0) * 1000 / len(pipeline.nodes)

    def cached_run() -> None:
        rerun = runner.run(pipeline)
        assert {o.state for o in rerun.nodes.values()} == {"cached"}, rerun.nodes

    found["cached node (ms/node)"] = median_ms(cached_run, repeat) / len(pipeline.nodes)
    if browser:
        from bench_ui import browser_times

        with UIServer(big.url, port=0) as ui, contextlib.redirect_stdout(io.StringIO()) as said:
            found.update(browser_times(ui.url.rstrip("/"), browser_pages(big), repeat))
        if said.getvalue().strip():
            print(said.getvalue().strip())
    return found


def target_of(name: str) -> float | None:
    if name.startswith("cache lookup"):
        return TARGETS_MS["cache"]
    if name.startswith("cached node"):
        return TARGETS_MS["cached node"]
    if name == "jfx runs list":
        return TARGETS_MS["runs list"]
    if name.startswith("/api"):
        return TARGETS_MS["api"]
    if name.startswith("page "):
        return TARGETS_MS["browser"]
    if name.startswith("lineage"):
        return TARGETS_MS["lineage"]
    if name == "reap_abandoned":
        return TARGETS_MS["reap"]
    return None


def pg_reachable() -> str | None:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=5).close()
    except Exception as err:  # noqa: BLE001 - any reason is printed, and the backend skipped
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executions", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium page times")
    args = ap.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    targets = Targets()
    for backend in backends:
        if backend == "postgresql":
            why = pg_reachable()
            if why:
                print(f"\npostgresql: skipped, {PG_ADMIN} is not reachable ({why})")
                continue
        figures: dict[int, dict[str, float]] = {}
        with tempfile.TemporaryDirectory(prefix="jfx-store-scale-") as tmp:
            for size in (BASELINE, args.executions):
                with database(backend, Path(tmp), f"s{size}") as url:
                    root = Path(tmp, f"root{size}")
                    big = build(url, root, size, progress=size > BASELINE)
                    print(f"{backend}: {big.executions:,} executions, {big.artifacts:,} artifacts, {big.events:,} "
                          f"events, {big.runs:,} runs, written in {big.seconds:.1f} s", flush=True)
                    figures[size] = measure(big, args.repeat, root, browser=not args.no_browser)
                    if backend == "sqlite":
                        size_mb = Path(url.removeprefix("sqlite:///")).stat().st_size / 2**20
                        print(f"{backend}: store file {size_mb:,.0f} MiB", flush=True)
        small, large = figures[BASELINE], figures[args.executions]
        print(f"\n{backend}: milliseconds, median of {args.repeat} after a warm-up "
              f"(browser: median of {browser_loads(args.repeat)})")
        print(f"{'measure':<40}{f'{BASELINE:,}':>12}{f'{args.executions:,}':>12}{'ratio':>8}{'target':>9}  ")
        for name, value in large.items():
            base = small.get(name)
            limit = target_of(name)
            verdict = targets.check(f"{backend} {name}", value, limit, "ms") if limit is not None else ""
            ratio = f"{value / base:.2f}x" if base else "-"
            print(f"{name:<40}{base if base is not None else float('nan'):>12.1f}{value:>12.1f}{ratio:>8}"
                  f"{(f'{limit:g}' if limit is not None else '-'):>9}  {verdict}")
        if args.no_browser or not any(k.startswith("page ") for k in large):
            print("(browser page times: not measured)")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
