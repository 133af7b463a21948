"""Dynamic ForEach loops at run time: a loop's copies are made once its source node has run.

A loop over an output value (``jfx.ForEach(node.outputs["x"].items)``) is one template
per node in the IR. When the loop's source node succeeded, :func:`expand_ready` reads the
items from its output in the metadata store and replaces the templates with one ordinary
node per item (``<id>-0``, ``<id>-1``, ...; see :func:`~jfx.pipelines._expand.instantiate`):
the runner then schedules, caches, retries and reports them as any other node, and the
run's recorded IR lists them. A value that is not a list fails every template of the loop
(a FAILED execution each, naming the source and the value's type), so the nodes after the
loop are skipped; an empty list makes no copies, and a ``Collected`` input gets ``[]``.
"""

from __future__ import annotations

from jfx.errors import InvalidPipelineError
from jfx.metadata import MetadataStore
from jfx.metadata._runs import record_ir
from jfx.orchestrators._launcher import NodeLaunch, NodeOutcome, RunInfo, read_loop_items
from jfx.orchestrators._run import done_earlier
from jfx.pipelines import PipelineIR
from jfx.pipelines._expand import instantiate, loop_sources, templates_of

__all__ = ["expand_ready"]


def expand_ready(store: MetadataStore, ir: PipelineIR, run: RunInfo,
                 outcomes: dict[str, NodeOutcome]) -> tuple[PipelineIR, dict[str, NodeOutcome]]:
    """Expand every dynamic loop whose source node succeeded (in ``outcomes``).

    Returns:
        The IR (the same object if nothing was expanded), and the outcomes of nodes
        decided here: a failed loop's templates, and the copies that completed in an
        earlier attempt of a resumed run. The expanded IR is recorded on the run.
    """
    decided: dict[str, NodeOutcome] = {}
    expanded = False
    for source in loop_sources(ir):
        producer = outcomes.get(source["producer"])
        templates = templates_of(ir, source)
        if producer is None or not producer.succeeded or all(t.id in outcomes for t in templates):
            continue  # not run yet, or it failed or was skipped (then its templates are skipped as usual)
        before = {n.id for n in ir.nodes}
        try:
            ir = instantiate(ir, source, read_loop_items(store, run, source))
        except InvalidPipelineError as err:
            for t in templates:
                decided[t.id] = NodeLaunch(store, ir, t, run).fail(err, message=str(err))
            continue
        expanded = True
        decided.update(done_earlier(store, run, [n.id for n in ir.nodes if n.id not in before]))
    if expanded:
        record_ir(store, run.run_context_id, ir.to_dict())
    return ir, decided
