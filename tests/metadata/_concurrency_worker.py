"""One writer process of test_concurrency (run with runpy in a spawned process).

Not a test module: pytest's importlib mode makes test modules unimportable in a child
process, so the child runs this file by path.
"""

from __future__ import annotations

from jfx.metadata import (
    NODE,
    PIPELINE,
    PIPELINE_RUN,
    ArtifactRecord,
    ExecutionRecord,
    ExecutionState,
    MetadataStore,
)


def record_executions(url: str, worker: int, count: int, barrier) -> None:
    """Open the (maybe unmigrated) store at the same moment as the others and record a chain."""
    barrier.wait(timeout=120)
    with MetadataStore(url) as store:
        pipe = store.get_or_create_context(PIPELINE, "shared")
        run = store.get_or_create_context(PIPELINE_RUN, "shared-run", parent_id=pipe.id)
        node = store.get_or_create_context(NODE, f"w{worker}", parent_id=run.id)
        contexts = [pipe.id, run.id, node.id]
        src = ArtifactRecord("Examples", f"/w{worker}/src")
        store.put_artifacts([src])
        prev = src
        for i in range(count):
            execution = ExecutionRecord("Step", f"w{worker}", state=ExecutionState.RUNNING, parameters={"i": i})
            inputs = {"prev": [prev.id], "src": [src.id]}
            store.put_execution(execution, contexts=contexts, inputs=inputs)
            out = ArtifactRecord("X", f"/w{worker}/{i}")
            execution.state = ExecutionState.COMPLETE
            store.put_execution(execution, contexts=contexts, inputs=inputs, outputs={"out": [out]})
            prev = out
        store.update_context_properties(run.id, {f"w{worker}": prev.id})


if "WORKER_ARGS" in globals():
    record_executions(**WORKER_ARGS)  # noqa: F821 - given by runpy.run_path(init_globals=...)
