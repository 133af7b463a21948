"""The jfx metadata store: artifacts, executions, contexts and lineage (the ML Metadata model).

Example:
    >>> from jfx.metadata import ArtifactRecord, MetadataStore
    >>> with MetadataStore("sqlite:////tmp/jfx-doc/metadata.sqlite") as store:  # doctest: +SKIP
    ...     [art_id] = store.put_artifacts([ArtifactRecord("Examples", "/data/examples")])
    ...     store.lineage(art_id).artifact_ids == {art_id}
    True
"""

from jfx.metadata._records import (
    NODE,
    PIPELINE,
    PIPELINE_RUN,
    ArtifactRecord,
    ArtifactState,
    ContextRecord,
    Event,
    EventType,
    ExecutionRecord,
    ExecutionState,
    LineageGraph,
    ListOptions,
)
from jfx.metadata._client import ArtifactView, Client, NodeView, RunView
from jfx.metadata._store import MetadataStore
from jfx.metadata._gc import GcReport, RetentionPolicy, collect_garbage, parse_age

__all__ = [
    "MetadataStore",
    "Client",
    "RunView",
    "NodeView",
    "ArtifactView",
    "ArtifactRecord",
    "ExecutionRecord",
    "ContextRecord",
    "Event",
    "LineageGraph",
    "ListOptions",
    "ExecutionState",
    "ArtifactState",
    "EventType",
    "PIPELINE",
    "PIPELINE_RUN",
    "NODE",
    "RetentionPolicy",
    "GcReport",
    "collect_garbage",
    "parse_age",
]
