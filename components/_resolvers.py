"""Resolvers: nodes that pick existing artifacts from the metadata store at run time.

``LatestBlessedModel()`` gives the model an Evaluator of this pipeline blessed most
recently (the baseline a new model must beat); ``LatestArtifact(channel)`` the newest
artifact an output published in an earlier run; ``LatestPipelineArtifact(...)`` the newest
artifact a node of another pipeline published (a monitoring pipeline reading the training
pipeline's schema and statistics). When nothing qualifies, the output is empty and an
``Optional`` input wired to it receives ``None``.

Example:
    >>> from jfx.components import LatestBlessedModel
    >>> baseline = LatestBlessedModel(candidate=trainer.outputs["model"])   # doctest: +SKIP
    >>> evaluator = Evaluator(examples=..., model=trainer.outputs["model"],  # doctest: +SKIP
    ...                       baseline_model=baseline.outputs["baseline"])
"""

from __future__ import annotations

from typing import Any, Optional

from jfx import _storage as storage
from jfx.errors import InvalidPipelineError, NotFoundError
from jfx.metadata import PIPELINE, ArtifactRecord, ArtifactState, EventType, ExecutionState, ListOptions
from jfx.pipelines import Channel, Input, Output, Parameter, resolver
from jfx.pipelines._artifacts import Artifact, Model
from jfx.pipelines._pipeline import Node

__all__ = ["LatestBlessedModel", "LatestArtifact", "LatestPipelineArtifact"]

_SUCCESS = (ExecutionState.COMPLETE, ExecutionState.CACHED)


def _usable(record: ArtifactRecord) -> bool:
    return record.state == ArtifactState.LIVE and storage.exists(record.uri)


@resolver(name="LatestBlessedModel")
def LatestBlessedModel(ctx: Any, baseline: Output[Model], candidate: Optional[Input[Model]] = None,  # noqa: N802, UP045
                       blessing_key: Parameter[str] = "blessing",
                       model_key: Parameter[str] = "model") -> dict[str, ArtifactRecord | None]:
    """The model that the latest blessing (``properties["blessed"] is True``) of this pipeline judged.

    A blessing is an output named ``blessing_key`` (a ModelBlessing); the model it
    judged is the input named ``model_key`` of the execution that produced it. Given the
    ``candidate`` (the model about to be evaluated), blessings of that same model (same
    artifact or same content) are passed over: a model is never its own baseline, so
    rerunning an unchanged pipeline resolves the same baseline and stays cached.
    """
    store = ctx.store
    same = set() if candidate is None else {candidate.id}
    same_content = "" if candidate is None else candidate.fingerprint
    blessings = [
        a for a in store.get_artifacts_by_context(ctx.pipeline_context_id, ListOptions(order_by="id", descending=True))
        if a.type_name == "ModelBlessing" and a.properties.get("blessed") is True
    ]
    for blessing in blessings:
        producers = sorted(
            (e.execution_id for e in store.get_events_by_artifact_ids([blessing.id])
             if e.type == EventType.OUTPUT and e.key == blessing_key),
            reverse=True,
        )
        for execution_id in producers:
            if store.get_execution(execution_id).state not in _SUCCESS:
                continue
            for event in store.get_events_by_execution_ids([execution_id]):
                if event.type == EventType.INPUT and event.key == model_key:
                    judged = store.get_artifact(event.artifact_id)
                    if judged.id in same or (same_content and judged.fingerprint == same_content):
                        continue
                    if _usable(judged):
                        return {"baseline": judged}
    return {"baseline": None}


@resolver(name="LatestArtifact")
def _latest_artifact(ctx: Any, artifact: Output[Artifact], producer: Parameter[str] = "",
                     key: Parameter[str] = "", pipeline: Parameter[str] = "",
                     required: Parameter[bool] = False) -> dict[str, ArtifactRecord | None]:
    store = ctx.store
    if pipeline and pipeline != ctx.pipeline_name:
        context = store.get_context_by_name(PIPELINE, pipeline)
        if context is None:  # that pipeline never ran against this store: nothing to resolve
            return _nothing(required, pipeline, producer, key)
        context_id = context.id
    else:
        context_id = ctx.pipeline_context_id
    # the newest successful executions of the node in that pipeline, newest first, from an index
    done = store.get_executions(node_id=producer, state=list(_SUCCESS), context_id=context_id,
                                options=ListOptions(order_by="id", descending=True, limit=50))
    for execution in done:
        assert execution.id is not None
        _, outputs = store.get_execution_artifacts(execution.id)
        for record in outputs.get(key, []):
            if _usable(record):
                return {"artifact": record}
    return _nothing(required, pipeline or ctx.pipeline_name, producer, key)


def _nothing(required: bool, pipeline: str, producer: str, key: str) -> dict[str, ArtifactRecord | None]:
    if required:
        raise NotFoundError(f"no successful run of pipeline {pipeline!r} in this metadata store has published "
                            f"output {key!r} of node {producer!r}; run that pipeline first (against the same "
                            "metadata store)")
    return {"artifact": None}


def LatestArtifact(channel: Channel) -> Node:  # noqa: N802 - reads like the node it makes
    """A node whose output ``artifact`` is the newest artifact ``channel``'s output published.

    It does not wait for ``channel``'s node: run in the same pipeline, it sees the
    artifacts of earlier runs (or of this run, if that node already finished).
    Give the producer its final id (``.with_id``) before calling this.
    """
    if not isinstance(channel, Channel):
        raise InvalidPipelineError(f"LatestArtifact takes a channel (node.outputs[...]), got {channel!r}")
    node = _latest_artifact(producer=channel.producer.id, key=channel.key, _output_types={"artifact": channel.type})
    return node.with_id(f"latest_{channel.producer.id}_{channel.key}")


def LatestPipelineArtifact(pipeline: str, producer: str, key: str,  # noqa: N802 - reads like the node it makes
                           artifact_type: type[Artifact], *, required: bool = True) -> Node:
    """A node whose output ``artifact`` is the newest artifact that node ``producer`` of
    pipeline ``pipeline`` published as output ``key`` (in the same metadata store).

    For a pipeline that builds on another's results: a monitoring pipeline validating
    request logs against the training pipeline's schema and statistics. Runs that failed
    are passed over; an artifact whose files are gone is skipped. Nothing published yet:
    the node fails saying so (``required=False``: the output is empty, and an
    ``Optional`` input wired to it receives ``None``).

    Args:
        pipeline: the other pipeline's name (``Pipeline(name, ...)``).
        producer: the id of its node (``"SchemaGen"``, or the id given by ``.with_id``).
        key: the node's output key (``"schema"``).
        artifact_type: the output's type (``Schema``), so the graph is checked as usual.
        required: fail when there is nothing to resolve (default).

    Example:
        >>> from jfx.types import Schema
        >>> node = LatestPipelineArtifact("penguin", "SchemaGen", "schema", Schema)
        >>> node.id
        'latest_penguin_SchemaGen_schema'
    """
    for name, value in (("pipeline", pipeline), ("producer", producer), ("key", key)):
        if not isinstance(value, str) or not value:
            raise InvalidPipelineError(f"LatestPipelineArtifact: {name} must be a non-empty string, got {value!r}")
    if not (isinstance(artifact_type, type) and issubclass(artifact_type, Artifact)):
        raise InvalidPipelineError(f"LatestPipelineArtifact: artifact_type must be an artifact type such as "
                                   f"jfx.types.Schema, got {artifact_type!r}")
    node = _latest_artifact(producer=producer, key=key, pipeline=pipeline, required=bool(required),
                            _output_types={"artifact": artifact_type})
    return node.with_id(f"latest_{pipeline}_{producer}_{key}")
