"""Interactive runs in a notebook: one component at a time, drawn with the web UI's viewers.

``InteractiveContext`` runs a node (and, from the cache, the nodes it needs) against a
metadata store, exactly as ``jfx run`` does: the same launcher, caching and lineage, so
what a notebook made shows up in ``jfx ui`` and is reused by a later ``jfx run`` of the
same pipeline. Everything it returns draws itself as rich HTML (``_repr_html_``) with the
UI's own viewers: statistics (two splits side by side), schema, anomalies, evaluation per
slice with the blessing, the model's signature and training curves, the run's DAG and
lineage graphs. Each output is self-contained (no server, no network, no CDN) and long
tables are paged.

Example::

    from jfx.components import ExampleGen, StatisticsGen
    from jfx.notebook import InteractiveContext

    context = InteractiveContext("penguin-notebook")
    example_gen = ExampleGen(input_base="data/")
    context.run(example_gen)                      # the run: DAG, states, outputs
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    context.run(statistics_gen)                   # ExampleGen comes from the cache
    context.show(statistics_gen.outputs["statistics"])   # the statistics viewer
    context.lineage(statistics_gen.outputs["statistics"])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jfx._config import default_pipeline_root, resolve_metadata_url
from jfx.errors import InvalidArgumentError
from jfx.metadata import ArtifactRecord, MetadataStore
from jfx.pipelines import Pipeline
from jfx.pipelines._component import Channel, Node

__all__ = ["InteractiveContext", "NotebookRun", "ArtifactView", "LineageView", "RunsView"]


class _Html:
    """Something a notebook draws with the UI's viewers (``_repr_html_``)."""

    def __init__(self, metadata_url: str, title: str) -> None:
        self._metadata_url = metadata_url
        self._title = title

    @contextmanager
    def _store(self) -> Iterator[MetadataStore]:
        store = MetadataStore(self._metadata_url)
        try:
            yield store
        finally:
            store.close()

    def _items(self, store: MetadataStore) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        from jfx.metadata.ui._common import ApiError
        from jfx.metadata.ui._notebook import render_html

        try:
            with self._store() as store:
                items = self._items(store)
        except ApiError as err:
            items = [{"kind": "error", "data": {"message": str(err)}}]
        return render_html(items, title=self._title)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._title}>"


def _query(**params: Any) -> Any:
    from jfx.metadata.ui._common import Query

    return Query({k: [str(v)] for k, v in params.items()})


def _artifact_item(store: MetadataStore, artifact_id: int, title: str = "") -> dict[str, Any]:
    from jfx.metadata.ui._viewers import view_json

    return {"kind": "artifact", "title": title, "data": view_json(store, str(artifact_id), _query())}


class ArtifactView(_Html):
    """One artifact, drawn with its typed viewer (statistics, schema, evaluation, model, ...)."""

    def __init__(self, metadata_url: str, record: ArtifactRecord) -> None:
        super().__init__(metadata_url, f"{record.type_name} #{record.id}")
        self.record = record

    @property
    def uri(self) -> str:
        return self.record.uri

    @property
    def properties(self) -> dict[str, Any]:
        return self.record.properties

    def _items(self, store: MetadataStore) -> list[dict[str, Any]]:
        assert self.record.id is not None
        return [_artifact_item(store, self.record.id)]


class LineageView(_Html):
    """The lineage graph around an artifact: what made it (``up`` steps) and what read it (``down``)."""

    def __init__(self, metadata_url: str, artifact_id: int, up: int | str = 2, down: int | str = 1) -> None:
        super().__init__(metadata_url, f"lineage of artifact #{artifact_id}")
        self.artifact_id, self.up, self.down = artifact_id, up, down

    def _items(self, store: MetadataStore) -> list[dict[str, Any]]:
        from jfx.metadata.ui._artifact import lineage_json

        data = lineage_json(store, _query(artifact=self.artifact_id, up=self.up, down=self.down))
        return [{"kind": "lineage", "title": self._title, "data": data}]


class RunsView(_Html):
    """The runs of a pipeline, newest first (paged)."""

    def __init__(self, metadata_url: str, pipeline_name: str, limit: int = 200) -> None:
        super().__init__(metadata_url, f"runs of {pipeline_name}")
        self.pipeline_name, self.limit = pipeline_name, limit

    def _items(self, store: MetadataStore) -> list[dict[str, Any]]:
        from jfx.metadata.ui._runs import runs_json

        return [{"kind": "runs", "title": self._title,
                 "data": runs_json(store, _query(pipeline=self.pipeline_name, limit=self.limit))}]


class NotebookRun(_Html):
    """What ``InteractiveContext.run`` did: the run's DAG and states, and the outputs of the
    node it was asked to run, each with its viewer.

    ``run.outputs["statistics"]`` is an :class:`ArtifactView` (the first artifact of that
    output); ``run.result`` the runner's :class:`~jfx.orchestrators.RunResult`.
    """

    def __init__(self, metadata_url: str, result: Any, node_id: str) -> None:
        super().__init__(metadata_url, f"{node_id} in run {result.run_id}")
        self.result = result
        self.node_id = node_id
        outcome = result.nodes.get(node_id)
        self.state = str(outcome.state) if outcome is not None else "missing"
        self.error = outcome.error if outcome is not None else None
        self.outputs: dict[str, ArtifactView] = {
            key: ArtifactView(metadata_url, records[0])
            for key, records in (outcome.outputs.items() if outcome is not None else ()) if records
        }

    def _items(self, store: MetadataStore) -> list[dict[str, Any]]:
        from jfx.metadata.ui._run import run_json

        items = [{"kind": "run", "title": self._title, "data": run_json(store, self.result.run_id, _query())}]
        for key, view in self.outputs.items():
            assert view.record.id is not None
            items.append(_artifact_item(store, view.record.id, title=f"{self.node_id}.outputs[{key!r}]"))
        return items


class InteractiveContext:
    """Runs nodes one at a time from a notebook, against a metadata store (see the module docstring).

    Args:
        pipeline_name: the pipeline the runs belong to (one name for the whole notebook).
        pipeline_root: where outputs go (default: ``$JFX_HOME/artifacts``; may be ``s3://...``).
        metadata_url: the store (default: ``$JFX_METADATA_URL`` or ``$JFX_HOME/metadata.sqlite``).
        enable_cache: reuse identical executions, as ``jfx run`` does.
        beam_pipeline_args: run the data components on Beam, as a pipeline would.
    """

    def __init__(self, pipeline_name: str = "interactive", pipeline_root: str | Path | None = None,
                 metadata_url: str | None = None, *, enable_cache: bool = True,
                 beam_pipeline_args: list[str] | None = None) -> None:
        self.pipeline_name = pipeline_name
        self.pipeline_root = str(pipeline_root) if pipeline_root is not None else str(default_pipeline_root())
        self.metadata_url = resolve_metadata_url(metadata_url)
        self.enable_cache = enable_cache
        self.beam_pipeline_args = beam_pipeline_args
        self._runs: dict[str, Any] = {}  # node id → the last RunResult that ran it
        Pipeline(pipeline_name, components=[])  # the name is checked now, not at the first run

    def _closure(self, node: Node) -> list[Node]:
        seen: dict[int, Node] = {}

        def visit(n: Node) -> None:
            if id(n) in seen:
                return
            seen[id(n)] = n
            for dep in n.dependencies():
                visit(dep)

        visit(node)
        return list(seen.values())

    def pipeline(self, *nodes: Node) -> Pipeline:
        """The pipeline of ``nodes`` and every node they need (what :meth:`run` runs)."""
        members: dict[int, Node] = {}
        for node in nodes:
            for n in self._closure(node):
                members[id(n)] = n
        return Pipeline(self.pipeline_name, components=list(members.values()), pipeline_root=self.pipeline_root,
                        metadata_url=self.metadata_url, enable_cache=self.enable_cache,
                        beam_pipeline_args=self.beam_pipeline_args)

    def run(self, node: Node, *, enable_cache: bool | None = None,
            parameters: Mapping[str, Any] | None = None) -> NotebookRun:
        """Run ``node``; the nodes upstream of it run too, from the cache when they ran before.

        Returns a :class:`NotebookRun` that draws the run and the node's outputs.
        """
        from jfx.orchestrators import LocalDagRunner

        if not isinstance(node, Node):
            raise InvalidArgumentError(f"InteractiveContext.run takes a node (a called component), got {node!r}")
        pipeline = self.pipeline(node)
        cache = self.enable_cache if enable_cache is None else enable_cache
        result = LocalDagRunner(progress=False).run(pipeline, enable_cache=cache, parameters=dict(parameters or {}))
        self._runs[node.id] = result
        return NotebookRun(self.metadata_url, result, node.id)

    def _record(self, item: Channel | ArtifactRecord | ArtifactView | int) -> ArtifactRecord:
        if isinstance(item, ArtifactView):
            return item.record
        if isinstance(item, ArtifactRecord):
            return item
        if isinstance(item, int) and not isinstance(item, bool):
            with MetadataStore(self.metadata_url) as store:
                return store.get_artifact(item)
        if isinstance(item, Channel):
            result = self._runs.get(item.producer.id)
            outcome = result.nodes.get(item.producer.id) if result is not None else None
            records = outcome.outputs.get(item.key) if outcome is not None else None
            if not records:
                raise InvalidArgumentError(f"{item.producer.id}.outputs[{item.key!r}] has no artifact in this "
                                           f"notebook yet: run the node first, context.run({item.producer.id})")
            return records[0]
        raise InvalidArgumentError(f"show/lineage take a node's output channel, an artifact or its id; got {item!r}")

    def show(self, item: Channel | ArtifactRecord | ArtifactView | int) -> ArtifactView:
        """The viewer of an artifact: a node's output channel (its latest artifact here), a record or an id."""
        return ArtifactView(self.metadata_url, self._record(item))

    def lineage(self, item: Channel | ArtifactRecord | ArtifactView | int, up: int | str = 2,
                down: int | str = 1) -> LineageView:
        """The lineage graph around an artifact (``up``/``down`` execution steps; ``"all"``: to the end)."""
        record = self._record(item)
        assert record.id is not None
        return LineageView(self.metadata_url, record.id, up, down)

    def runs(self, limit: int = 200) -> RunsView:
        """This notebook's pipeline's runs, newest first."""
        return RunsView(self.metadata_url, self.pipeline_name, limit)
