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

from typing import Any

from jfx.errors import InvalidPipelineError
from jfx.metadata import MetadataStore
from jfx.metadata._runs import record_ir
from jfx.orchestrators._launcher import NodeLaunch, NodeOutcome, RunInfo, read_loop_items
from jfx.orchestrators._run import done_earlier
from jfx.pipelines import PipelineIR
from jfx.pipelines._expand import instantiate, loop_sources, templates_of

__all__ = ["expand_loop", "expand_ready", "expand_recorded"]


def expand_ready(store: MetadataStore, ir: PipelineIR, run: RunInfo, outcomes: dict[str, NodeOutcome], *,
                 record: bool = True) -> tuple[PipelineIR, dict[str, NodeOutcome]]:
    """Expand every dynamic loop whose source node succeeded (in ``outcomes``).

    Args:
        record: record what is decided here (the default, for the process that schedules
            the run); ``False`` only rebuilds the expanded IR, e.g. in a Beam worker that
            launches one copy: a loop whose items are not a list is then left as it is.

    Returns:
        The IR (the same object if nothing was expanded), and the outcomes of nodes
        decided here: a failed loop's templates (each recorded FAILED), and the copies
        that completed in an earlier attempt of a resumed run. The expanded IR is
        recorded on the run.
    """
    decided: dict[str, NodeOutcome] = {}
    expanded = False
    for source in loop_sources(ir):
        ir, found, copied = expand_loop(store, ir, run, source, outcomes, record=record)
        decided.update(found)
        expanded = expanded or copied is not None
    if expanded and record:
        record_ir(store, run.run_context_id, ir.to_dict())
    return ir, decided


def expand_loop(store: MetadataStore, ir: PipelineIR, run: RunInfo, source: dict[str, str],
                outcomes: dict[str, NodeOutcome], *,
                record: bool = True) -> tuple[PipelineIR, dict[str, NodeOutcome], list[Any] | None]:
    """Expand the loops over ``source`` if its node succeeded (see :func:`expand_ready`).

    Returns:
        The IR, the outcomes decided here, and the items (``None`` when the loops were
        not expanded).
    """
    producer = outcomes.get(source["producer"])
    templates = templates_of(ir, source)
    if producer is None or not producer.succeeded or not templates or all(t.id in outcomes for t in templates):
        return ir, {}, None  # not run yet, or it failed or was skipped (then its templates are skipped as usual)
    before = {n.id for n in ir.nodes}
    try:
        items = read_loop_items(store, run, source)
        ir = instantiate(ir, source, items)
    except InvalidPipelineError as err:
        if not record:
            return ir, {}, None
        return ir, {t.id: NodeLaunch(store, ir, t, run).fail(err, message=str(err)) for t in templates}, None
    return ir, done_earlier(store, run, [n.id for n in ir.nodes if n.id not in before]) if record else {}, items


def expand_recorded(store: MetadataStore, ir: PipelineIR, run: RunInfo) -> PipelineIR:
    """The IR with every dynamic loop whose source node has outputs in this run expanded.

    For a process that sees only the store (a Kubeflow task): a loop whose source made no
    output (it failed, was skipped or has not run) or whose value is not a list is left as
    it is.
    """
    for source in loop_sources(ir):
        if store.get_node_outputs(run.run_context_id, source["producer"]) is None:
            continue
        try:
            ir = instantiate(ir, source, read_loop_items(store, run, source))
        except InvalidPipelineError:
            continue
    return ir
