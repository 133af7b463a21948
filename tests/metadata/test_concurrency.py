"""Eight processes write to one fresh store at once: nothing lost, no errors, on every backend."""

from __future__ import annotations

import multiprocessing
import runpy
from pathlib import Path

from jfx.metadata import NODE, PIPELINE, PIPELINE_RUN, ExecutionState, MetadataStore

WORKERS = 8
COUNT = 10  # executions per worker
WORKER_FILE = str(Path(__file__).with_name("_concurrency_worker.py"))


def test_concurrent_writers_on_a_fresh_store(store_url):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    processes = [
        ctx.Process(
            target=runpy.run_path,
            args=(WORKER_FILE,),
            kwargs={
                "init_globals": {
                    "WORKER_ARGS": {"url": store_url, "worker": w, "count": COUNT, "barrier": barrier}
                },
                "run_name": "jfx_concurrency_worker",
            },
        )
        for w in range(WORKERS)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=180)
    for p in processes:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in processes] == [0] * WORKERS

    with MetadataStore(store_url) as store:
        [pipe] = store.get_pipelines()
        [run] = store.get_runs("shared")
        assert pipe.name == "shared" and run.parent_id == pipe.id
        assert sorted(c.name for c in store.get_contexts(NODE)) == sorted(f"w{w}" for w in range(WORKERS))
        assert len(store.get_contexts()) == WORKERS + 2

        executions = store.get_executions()
        assert len(executions) == WORKERS * COUNT
        assert {e.state for e in executions} == {ExecutionState.COMPLETE}
        assert len(store.get_artifacts()) == WORKERS * (COUNT + 1)
        events = store.get_events_by_execution_ids([e.id for e in executions])
        assert len(events) == WORKERS * COUNT * 3  # two inputs, one output each
        assert len(store.get_executions_by_context(run.id)) == WORKERS * COUNT
        assert len(store.get_artifacts_by_context(pipe.id)) == WORKERS * (COUNT + 1)

        # Every worker's key survived the concurrent read-modify-writes of one context.
        last_outputs = store.get_context(run.id).properties
        assert sorted(last_outputs) == sorted(f"w{w}" for w in range(WORKERS))
        for w in range(WORKERS):
            chain = store.lineage(last_outputs[f"w{w}"], "upstream")
            assert len(chain.executions) == COUNT and len(chain.artifacts) == COUNT + 1
            assert {e.node_id for e in chain.executions} == {f"w{w}"}
            assert store.get_node_outputs(run.id, f"w{w}")["out"][0].id == last_outputs[f"w{w}"]
        assert run.type_name == PIPELINE_RUN and pipe.type_name == PIPELINE
