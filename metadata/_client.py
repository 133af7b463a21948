"""``Client``: a small read-only view of pipelines, runs, nodes and artifacts in the metadata store.

Example:
    >>> from jfx.metadata import Client
    >>> client = Client("sqlite:////tmp/jfx-doc/metadata.sqlite")            # doctest: +SKIP
    >>> run = client.runs("taxi")[0]                                          # doctest: +SKIP
    >>> model = run.nodes["Trainer"].outputs["model"]                         # doctest: +SKIP
    >>> model.lineage("upstream", depth=1).artifact_ids                       # doctest: +SKIP
    {3, 5, 9}
    >>> run.nodes["StatisticsGen"].outputs["statistics"].read().head()        # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any

from jfx import _storage as storage

from jfx.errors import ArtifactDeletedError, DataValidationError, InvalidArgumentError, NotFoundError
from jfx.metadata._executions_info import ExecutionInfo
from jfx.metadata._records import (
    PIPELINE_RUN,
    ArtifactRecord,
    ContextRecord,
    ExecutionRecord,
    ExecutionState,
    LineageGraph,
)
from jfx.metadata._runs import RunRecord, RunState
from jfx.metadata._store import MetadataStore
from jfx.pipelines._layouts import BLESSING_FILE, METRICS_FILE, SCHEMA_FILE, VALUE_FILE

__all__ = ["ArtifactView", "Client", "NodeView", "RunView"]

# Columns of the DataFrame that ``ArtifactView.read()`` gives for ExampleStatistics.
STATISTICS_COLUMNS = ("split", "column", "type", "count", "missing", "min", "max", "mean", "std",
                      "zeros", "unique", "avg_length")


class _Views(Mapping):
    """A read-only, ordered mapping of views, with a short repr."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise KeyError(f"{key!r} (known: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self._items.items()) + "}"


def parse_time(value: Any) -> datetime | None:
    """An ISO time from the store's properties (``None`` if missing or unreadable)."""
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


class Client:
    """Read-only access to the pipelines, runs, nodes and artifacts of a metadata store.

    Args:
        url: The metadata store URL; ``None`` for ``$JFX_METADATA_URL`` or the default
            SQLite file (as :class:`MetadataStore`).

    Example:
        >>> with Client("sqlite:////tmp/jfx-doc/metadata.sqlite") as client:   # doctest: +SKIP
        ...     client.pipelines()
        ['taxi']
    """

    def __init__(self, url: str | None = None) -> None:
        self.store = MetadataStore(url)

    @property
    def url(self) -> str:
        """The store URL, password masked."""
        return self.store.url

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()

    def __enter__(self) -> Client:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def pipelines(self) -> list[str]:
        """The names of the pipelines that have run, oldest first."""
        return [c.name for c in self.store.get_pipelines()]

    def runs(self, pipeline: str | None = None) -> list[RunView]:
        """The runs (of one pipeline, if named), newest first; runs ``jfx gc`` deleted are left out.

        Example:
            >>> [r.id for r in client.runs("chain")]        # doctest: +SKIP
            ['chain-20240101-120000-a1b2c3']
        """
        names: dict[int | None, str] = {}
        if pipeline is not None:
            names = {c.stored_id: c.name for c in self.store.get_pipelines() if c.name == pipeline}
        return [RunView(self.store, ctx, names.get(ctx.parent_id)) for ctx in self.store.get_runs(pipeline)]

    def run(self, run_id: str) -> RunView:
        """The run with this id.

        Raises:
            NotFoundError: No run has this id.
        """
        ctx = self.store.get_context_by_name(PIPELINE_RUN, run_id)
        if ctx is None:
            raise NotFoundError(f"no run {run_id!r} in the metadata store {self.url}")
        return RunView(self.store, ctx)

    def artifact(self, artifact_id: int) -> ArtifactView:
        """The artifact with this id. Raises NotFoundError."""
        return ArtifactView(self.store, self.store.get_artifact(artifact_id))


class RunView:
    """One pipeline run: its state, times, parameters and nodes.

    Example:
        >>> run = client.run("chain-20240101-120000-a1b2c3")     # doctest: +SKIP
        >>> run.state, list(run.nodes)                            # doctest: +SKIP
        ('COMPLETE', ['make_numbers', 'total'])
    """

    def __init__(self, store: MetadataStore, context: ContextRecord, pipeline: str | None = None) -> None:
        self._store = store
        self.context = context
        self._pipeline = pipeline
        self.record = RunRecord.from_context(context, pipeline)

    @property
    def id(self) -> str:
        """The run id (the run context's name)."""
        return self.context.name

    @cached_property
    def pipeline(self) -> str:
        """The pipeline's name."""
        if self._pipeline is None:
            if self.context.parent_id is None:
                return ""
            self._pipeline = self._store.get_context(self.context.parent_id).name
        return self._pipeline

    @property
    def state(self) -> RunState:
        """``RUNNING``, ``COMPLETE``, ``FAILED``, ``CANCELLED`` or ``ABANDONED`` (a ``str``)."""
        return self.record.state

    @property
    def start_time(self) -> datetime | None:
        return self.record.start_time

    @property
    def end_time(self) -> datetime | None:
        """When the run finished; ``None`` while it runs."""
        return self.record.end_time

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's resolved runtime parameters."""
        return dict(self.record.parameters)

    @cached_property
    def nodes(self) -> Mapping[str, NodeView]:
        """Node id → :class:`NodeView` of its latest execution in this run, in IR order.

        Nodes without an execution in the run are left out.
        """
        assert self.context.id is not None
        latest = self._store.latest_executions(self.context.id)
        order = [n for n in self.record.node_order if n in latest]
        order += sorted((n for n in latest if n not in order), key=lambda n: latest[n].id or 0)
        return _Views({n: NodeView(self._store, latest[n]) for n in order})

    def __repr__(self) -> str:
        return f"RunView(id={self.id!r}, pipeline={self.pipeline!r}, state={self.state.value!r})"


class NodeView:
    """One node of a run: its latest execution there, with its input and output artifacts.

    Example:
        >>> node = run.nodes["total"]                     # doctest: +SKIP
        >>> node.state, node.outputs["result"].uri        # doctest: +SKIP
        (<ExecutionState.COMPLETE: 'COMPLETE'>, '/root/chain/total/result/2')
    """

    def __init__(self, store: MetadataStore, execution: ExecutionRecord) -> None:
        self._store = store
        self.execution = execution

    @property
    def id(self) -> str:
        """The node id."""
        return self.execution.node_id

    @property
    def execution_id(self) -> int:
        assert self.execution.id is not None
        return self.execution.id

    @property
    def state(self) -> ExecutionState:
        return self.execution.state

    @property
    def error(self) -> str | None:
        """The failure message; ``None`` when it did not fail."""
        return self.execution.error or None

    @property
    def cache_miss_reason(self) -> str | None:
        """Why the node ran instead of reusing cached outputs; ``None`` when not recorded."""
        return ExecutionInfo.from_record(self.execution).cache_miss_reason

    @cached_property
    def _artifacts(self) -> tuple[Mapping[str, ArtifactView], Mapping[str, ArtifactView]]:
        inputs, outputs = self._store.get_execution_artifacts(self.execution_id)

        def first(by_key: dict[str, list[ArtifactRecord]]) -> Mapping[str, ArtifactView]:
            return _Views({k: ArtifactView(self._store, arts[0]) for k, arts in by_key.items() if arts})

        return first(inputs), first(outputs)

    @property
    def inputs(self) -> Mapping[str, ArtifactView]:
        """Input key → the artifact read (the first one, when a key holds several)."""
        return self._artifacts[0]

    @property
    def outputs(self) -> Mapping[str, ArtifactView]:
        """Output key → the artifact written (the first one, when a key holds several)."""
        return self._artifacts[1]

    def __repr__(self) -> str:
        return f"NodeView(id={self.id!r}, state={self.state.value!r}, execution_id={self.execution.id})"


class ArtifactView:
    """One artifact: its record, its lineage and a typed reader of its content.

    Example:
        >>> model = run.nodes["Trainer"].outputs["model"]           # doctest: +SKIP
        >>> model.lineage("upstream", depth=1).execution_ids        # doctest: +SKIP
        {7}
        >>> run.nodes["Evaluator"].outputs["evaluation"].read()["slices"]   # doctest: +SKIP
    """

    def __init__(self, store: MetadataStore, record: ArtifactRecord) -> None:
        self._store = store
        self.record = record

    @property
    def id(self) -> int:
        assert self.record.id is not None
        return self.record.id

    @property
    def type_name(self) -> str:
        return self.record.type_name

    @property
    def uri(self) -> str:
        return self.record.uri

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.record.properties)

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    def lineage(self, direction: str = "upstream", depth: int | None = None) -> LineageGraph:
        """The lineage graph around this artifact (see :meth:`MetadataStore.lineage`)."""
        return self._store.lineage(self.id, direction, depth)

    def read(self) -> Any:
        """The artifact's content, by type.

        - ``ExampleStatistics``: a pandas DataFrame, one row per split × column, with
          ``count``, ``missing``, ``min``, ``max``, ``mean``, ``std``, ``zeros``,
          ``unique``, ``avg_length`` (NaN where a column has no such statistic).
        - ``Schema``: the ``schema.json`` dict.
        - ``ModelEvaluation``: the ``metrics.json`` dict.
        - ``ModelBlessing``: the ``blessing.json`` dict.
        - anything else with a ``value.json`` (or one of those types written by a custom
          component as ``value.json`` only): that JSON value.

        Raises:
            InvalidArgumentError: The type has no reader (and no ``value.json``).
            DataValidationError: The file is missing or is not valid JSON.
            ArtifactDeletedError: ``jfx gc`` deleted the artifact (its files are gone).
        """
        if self.record.state.deleted:
            raise ArtifactDeletedError(f"artifact {self.id} ({self.type_name} {self.uri}) was "
                                       f"{self.record.deleted_note()}; its files are gone")
        if self.type_name == "ExampleStatistics":
            return self._read_statistics()
        files = {"Schema": SCHEMA_FILE, "ModelEvaluation": METRICS_FILE, "ModelBlessing": BLESSING_FILE}
        typed = files.get(self.type_name)
        if typed is not None and (storage.exists(storage.join(self.uri, typed))
                                  or not storage.exists(storage.join(self.uri, VALUE_FILE))):
            return self._read_json(typed)
        if storage.exists(storage.join(self.uri, VALUE_FILE)):  # also e.g. a blessing written by a custom component
            return self._read_json(VALUE_FILE)
        raise InvalidArgumentError(
            f"artifact {self.id} of type {self.type_name!r} has no reader: read() knows ExampleStatistics, "
            f"Schema, ModelEvaluation, ModelBlessing and artifacts with a value.json; read {self.uri} directly"
        )

    def _read_json(self, name: str) -> Any:
        path = storage.join(self.uri, name)
        try:
            return json.loads(storage.read_text(path))
        except FileNotFoundError:
            raise DataValidationError(f"{self.type_name} artifact {self.id}: {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise DataValidationError(f"{self.type_name} artifact {self.id}: {path} is not valid JSON ({err})") from err

    def _read_statistics(self) -> Any:
        import pandas as pd
        from jfx.pipelines._layouts import load_statistics

        rows = []
        for split, doc in load_statistics(self.record).items():
            for column, col in (doc.get("columns") or {}).items():
                numeric = col.get("numeric") or {}
                string = col.get("string") or {}
                rows.append({
                    "split": split, "column": column, "type": col.get("type"),
                    "count": col.get("count"), "missing": col.get("missing"),
                    "min": numeric.get("min"), "max": numeric.get("max"), "mean": numeric.get("mean"),
                    "std": numeric.get("std"), "zeros": numeric.get("zeros"),
                    "unique": string.get("unique"), "avg_length": string.get("avg_length"),
                })
        return pd.DataFrame(rows, columns=list(STATISTICS_COLUMNS))

    def __repr__(self) -> str:
        return f"ArtifactView(id={self.record.id}, type_name={self.type_name!r}, uri={self.uri!r})"
