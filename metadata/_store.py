"""``MetadataStore``: the ML Metadata model on SQLAlchemy Core, one implementation for all backends."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from jfx._config import resolve_metadata_url
from jfx.errors import AlreadyExistsError, InvalidArgumentError, JfxError, MetadataError, NotFoundError
from jfx.metadata import _lineage
from jfx.metadata._backend import (
    WRITE_OPTION,
    backend_of,
    create_engine,
    describe_db_error,
    insert_ignore,
    integrity_kind,
    is_transient,
    normalize_url,
    opening,
    shown_url,
)
from jfx.metadata._migrate import needs_upgrade, upgrade
from jfx.metadata._queries import (
    execution_artifacts,
    fetch,
    find_context,
    merge_context_properties,
    page,
    refuse_deleted,
    require_ids,
    save,
    split_ids,
)
from jfx.metadata._records import (
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
    coerce_enum,
)
from jfx.metadata._rows import (
    RUN_COLUMNS,
    RUN_SUMMARY,
    artifact_row,
    check_dict,
    check_id,
    check_ids,
    check_text,
    context_row,
    event_row,
    execution_row,
    missing,
    now,
    stamp_artifact,
    stamp_execution,
    to_artifact,
    to_context,
    to_event,
    to_execution,
    to_run_summary,
)
from jfx.metadata._schema import artifacts as artifacts_t
from jfx.metadata._schema import associations as associations_t
from jfx.metadata._schema import attributions as attributions_t
from jfx.metadata._schema import contexts as contexts_t
from jfx.metadata._schema import events as events_t
from jfx.metadata._schema import executions as executions_t

__all__ = ["MetadataStore"]

T = TypeVar("T")

_MAX_ATTEMPTS = 12
_FIRST_DELAY_S = 0.02
_MAX_DELAY_S = 1.0
_ARTIFACT_UPDATES = ("name", "uri", "state", "fingerprint", "properties", "update_time")
_EXECUTION_UPDATES = ("state", "error", "properties", "end_time", "cache_key", "parameters")
_CONTEXT_UPDATES = ("properties", *RUN_COLUMNS, RUN_SUMMARY)


def _runs_of(stmt: sa.Select, pipeline_name: str | None, include_deleted: bool) -> sa.Select:
    """``stmt`` on jfx_contexts limited to the runs (of one pipeline, if named; not deleted unless asked)."""
    stmt = stmt.where(contexts_t.c.type_name == PIPELINE_RUN)
    if not include_deleted:
        stmt = stmt.where(contexts_t.c.run_deleted_time.is_(None))
    if pipeline_name is not None:
        parent = contexts_t.alias("pipeline")
        stmt = stmt.join(parent, contexts_t.c.parent_id == parent.c.id).where(
            parent.c.type_name == PIPELINE, parent.c.name == pipeline_name
        )
    return stmt


class MetadataStore:
    """Artifacts, executions, contexts and events of pipeline runs, in a SQL database.

    One API over SQLite (the default, a file under ``$JFX_HOME``), PostgreSQL and
    MySQL/MariaDB. The schema is created or upgraded when the store is opened. Every
    method runs in its own transaction; transient lock errors are retried.

    Args:
        url: A SQLAlchemy URL (``sqlite:///path``, ``postgresql://...``, ``mysql://...``);
            ``None`` for ``$JFX_METADATA_URL`` or the default SQLite file.

    Raises:
        InvalidArgumentError: The URL is malformed or names an unsupported backend.
        MetadataError: The database cannot be reached or migrated.

    Example:
        >>> with MetadataStore("sqlite:////tmp/jfx-doc/metadata.sqlite") as store:  # doctest: +SKIP
        ...     [art_id] = store.put_artifacts([ArtifactRecord("Examples", "/data/ex")])
        ...     store.get_artifact(art_id).uri
        '/data/ex'
    """

    def __init__(self, url: str | None = None) -> None:
        self._url = normalize_url(resolve_metadata_url(url))
        self.backend: str = backend_of(self._url)
        try:
            self._engine = create_engine(self._url)
        except OSError as err:
            raise MetadataError(f"cannot create the metadata store {self.url}: {err}") from err
        # reads on PostgreSQL: autocommit, on the same pool (see _tx)
        self._read_engine: sa.Engine = (self._engine.execution_options(isolation_level="AUTOCOMMIT")
                                        if self.backend == "postgresql" else self._engine)
        self._pid = os.getpid()
        try:
            with opening(self._url):
                if needs_upgrade(self._engine):
                    self._tx(lambda conn: upgrade(self.backend, conn), write=True)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return shown_url(self._url)

    def close(self) -> None:
        """Close the store's database connections."""
        self._engine.dispose()

    def __enter__(self) -> MetadataStore:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.url!r})"

    # ---------------------------------------------------------------- artifacts

    def put_artifacts(self, artifacts: Sequence[ArtifactRecord]) -> list[int]:
        """Insert the artifacts without an id and update the others; sets ``.id`` on each.

        Updates change name, uri, state, fingerprint and properties.

        Raises:
            NotFoundError: An artifact's id does not exist.
            ArtifactDeletedError: An update would make an artifact that gc deleted live again.
        """
        stamp = now()
        records = list(artifacts)
        rows = [artifact_row(a, stamp) for a in records]
        updated = {r.id: row["state"] for r, row in zip(records, rows, strict=True) if r.id is not None}

        def write(conn: sa.Connection) -> list[int]:
            found = refuse_deleted(conn, updated, ())
            return save(conn, artifacts_t, records, rows, _ARTIFACT_UPDATES, known=found)

        ids = self._tx(write, write=True)
        for record, row, new_id in zip(records, rows, ids, strict=True):
            stamp_artifact(record, row, new_id)
        return ids

    def get_artifact(self, artifact_id: int) -> ArtifactRecord:
        """The artifact with this id. Raises NotFoundError."""
        return self._get_one(artifacts_t, artifact_id, to_artifact, "artifact")

    def get_artifacts(
        self,
        ids: Iterable[int] | None = None,
        *,
        type_name: str | None = None,
        uri: str | None = None,
        state: ArtifactState | str | None = None,
        options: ListOptions | None = None,
    ) -> list[ArtifactRecord]:
        """Artifacts matching all the filters given (all artifacts when none is)."""
        stmt = sa.select(artifacts_t)
        if ids is not None:
            stmt = stmt.where(artifacts_t.c.id.in_(check_ids(ids, "ids")))
        if type_name is not None:
            stmt = stmt.where(artifacts_t.c.type_name == type_name)
        if uri is not None:
            stmt = stmt.where(artifacts_t.c.uri == uri)
        if state is not None:
            stmt = stmt.where(artifacts_t.c.state == coerce_enum(ArtifactState, state, "state").value)
        return self._list(stmt, artifacts_t, options, to_artifact)

    def get_artifacts_by_type(self, type_name: str, options: ListOptions | None = None) -> list[ArtifactRecord]:
        """Artifacts of one type."""
        return self.get_artifacts(type_name=type_name, options=options)

    def get_artifacts_by_context(self, context_id: int, options: ListOptions | None = None) -> list[ArtifactRecord]:
        """Artifacts attributed to a context (inputs and outputs of its executions)."""
        stmt = (
            sa.select(artifacts_t)
            .join(attributions_t, attributions_t.c.artifact_id == artifacts_t.c.id)
            .where(attributions_t.c.context_id == context_id)
        )
        return self._list(stmt, artifacts_t, options, to_artifact)

    # --------------------------------------------------------------- executions

    def put_executions(self, executions: Sequence[ExecutionRecord]) -> list[int]:
        """Insert the executions without an id and update the others; sets ``.id`` on each.

        Updates change state, error, properties, end_time, cache_key and parameters.
        ``start_time`` defaults to now on insert; ``end_time`` to now once the state
        is terminal.

        Raises:
            NotFoundError: An execution's id does not exist.
        """
        stamp = now()
        records = list(executions)
        rows = [execution_row(e, stamp) for e in records]
        ids = self._tx(lambda conn: save(conn, executions_t, records, rows, _EXECUTION_UPDATES), write=True)
        for record, row, new_id in zip(records, rows, ids, strict=True):
            stamp_execution(record, row, new_id)
        return ids

    def get_execution(self, execution_id: int) -> ExecutionRecord:
        """The execution with this id. Raises NotFoundError."""
        return self._get_one(executions_t, execution_id, to_execution, "execution")

    def get_executions(
        self,
        ids: Iterable[int] | None = None,
        *,
        type_name: str | None = None,
        node_id: str | None = None,
        state: ExecutionState | str | Collection[ExecutionState | str] | None = None,
        cache_key: str | None = None,
        context_id: int | None = None,
        options: ListOptions | None = None,
    ) -> list[ExecutionRecord]:
        """Executions matching all the filters given; ``state`` may be one state or several.

        ``context_id`` keeps those associated with that context (e.g. one pipeline node's),
        in the same query: a check per execution (EXISTS), so that a node's newest
        executions are read newest first from an index and the walk stops at the limit,
        however many executions the context has.
        """
        stmt = sa.select(executions_t)
        if context_id is not None:
            stmt = stmt.where(sa.exists().where(
                associations_t.c.execution_id == executions_t.c.id,
                associations_t.c.context_id == check_id(context_id, "context_id")))
        if ids is not None:
            stmt = stmt.where(executions_t.c.id.in_(check_ids(ids, "ids")))
        if type_name is not None:
            stmt = stmt.where(executions_t.c.type_name == type_name)
        if node_id is not None:
            stmt = stmt.where(executions_t.c.node_id == node_id)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            values = [coerce_enum(ExecutionState, s, "state").value for s in states]
            stmt = stmt.where(executions_t.c.state.in_(values))
        if cache_key is not None:
            stmt = stmt.where(executions_t.c.cache_key == cache_key)
        return self._list(stmt, executions_t, options, to_execution)

    def get_executions_by_context(self, context_id: int, options: ListOptions | None = None) -> list[ExecutionRecord]:
        """Executions associated with a context."""
        stmt = (
            sa.select(executions_t)
            .join(associations_t, associations_t.c.execution_id == executions_t.c.id)
            .where(associations_t.c.context_id == context_id)
        )
        return self._list(stmt, executions_t, options, to_execution)

    def latest_executions(self, context_id: int, *, after_id: int | None = None) -> dict[str, ExecutionRecord]:
        """Node id → the latest (highest id) execution of that node in a context (a run), by id.

        Args:
            context_id: The context, usually a pipeline run's.
            after_id: Only executions with a higher id count (one attempt of a resumed run).

        One query, whatever the number of nodes and attempts.
        """
        wanted = check_id(context_id, "context_id")
        latest = (
            sa.select(sa.func.max(executions_t.c.id).label("id"))
            .join(associations_t, associations_t.c.execution_id == executions_t.c.id)
            .where(associations_t.c.context_id == wanted)
            .group_by(executions_t.c.node_id)
        )
        if after_id is not None:
            latest = latest.where(executions_t.c.id > check_id(after_id, "after_id"))
        stmt = sa.select(executions_t).where(executions_t.c.id.in_(latest.scalar_subquery())).order_by(executions_t.c.id)
        rows = self._tx(lambda conn: [to_execution(row) for row in conn.execute(stmt)], write=False)
        return {e.node_id: e for e in rows}

    # ----------------------------------------------------------------- contexts

    def put_contexts(self, contexts: Sequence[ContextRecord]) -> list[int]:
        """Insert the contexts without an id and replace the properties of the others.

        Raises:
            AlreadyExistsError: A new context has the (type_name, name) of an existing one.
            NotFoundError: An id or parent_id does not exist.
        """
        stamp = now()
        records = list(contexts)
        rows = [context_row(c, stamp) for c in records]

        def write(conn: sa.Connection) -> list[int]:
            require_ids(conn, contexts_t, [c.parent_id for c in records if c.parent_id is not None], "context")
            for record in records:
                if record.id is None and find_context(conn, record.type_name, record.name) is not None:
                    raise AlreadyExistsError(
                        f"context type_name={record.type_name!r} name={record.name!r} already exists; "
                        "use get_or_create_context() to reuse it"
                    )
            return save(conn, contexts_t, records, rows, _CONTEXT_UPDATES)

        ids = self._tx(write, write=True)
        for record, row, new_id in zip(records, rows, ids, strict=True):
            if record.id is None:
                record.create_time = row["create_time"]
            record.id = new_id
        return ids

    def get_or_create_context(
        self,
        type_name: str,
        name: str,
        *,
        properties: Mapping[str, Any] | None = None,
        parent_id: int | None = None,
    ) -> ContextRecord:
        """The context named (type_name, name), created with these values if missing.

        Safe when several processes race to create the same context: the losers
        read the winner's. An existing context is returned unchanged.
        """
        found = self.get_context_by_name(type_name, name)
        if found is not None:
            return found
        record = ContextRecord(type_name, name, parent_id=parent_id, properties=dict(properties or {}))
        try:
            self.put_contexts([record])
        except AlreadyExistsError:
            found = self.get_context_by_name(type_name, name)
            if found is None:
                raise
            return found
        return record

    def get_context(self, context_id: int) -> ContextRecord:
        """The context with this id. Raises NotFoundError."""
        return self._get_one(contexts_t, context_id, to_context, "context")

    def get_context_by_name(self, type_name: str, name: str) -> ContextRecord | None:
        """The context named (type_name, name), or ``None``."""
        return self._tx(lambda conn: find_context(conn, type_name, name), write=False)

    def get_contexts(
        self,
        type_name: str | None = None,
        *,
        parent_id: int | None = None,
        options: ListOptions | None = None,
    ) -> list[ContextRecord]:
        """Contexts of one type and/or with one parent (all contexts when neither is given)."""
        stmt = sa.select(contexts_t)
        if type_name is not None:
            stmt = stmt.where(contexts_t.c.type_name == type_name)
        if parent_id is not None:
            stmt = stmt.where(contexts_t.c.parent_id == parent_id)
        return self._list(stmt, contexts_t, options, to_context)

    def update_context_properties(self, context_id: int, properties: Mapping[str, Any]) -> ContextRecord:
        """Merge ``properties`` into a context's properties (one locked read-modify-write).

        Raises:
            NotFoundError: No context has this id.
        """
        check_dict(properties, "properties")
        return self._tx(lambda conn: merge_context_properties(conn, context_id, properties), write=True)

    def get_contexts_by_execution(self, execution_id: int) -> list[ContextRecord]:
        """The contexts an execution is associated with, by id."""
        stmt = (
            sa.select(contexts_t)
            .join(associations_t, associations_t.c.context_id == contexts_t.c.id)
            .where(associations_t.c.execution_id == execution_id)
        )
        return self._list(stmt, contexts_t, None, to_context)

    # ------------------------------------------------------------------- events

    def put_events(self, events: Sequence[Event]) -> None:
        """Record events; one identical to a recorded event is skipped.

        Raises:
            NotFoundError: An artifact or execution id does not exist.
        """
        stamp = now()
        rows = [event_row(e, stamp) for e in events]

        def write(conn: sa.Connection) -> None:
            require_ids(conn, artifacts_t, [r["artifact_id"] for r in rows], "artifact")
            require_ids(conn, executions_t, [r["execution_id"] for r in rows], "execution")
            if rows:
                conn.execute(insert_ignore(self.backend, events_t), rows)

        self._tx(write, write=True)

    def get_events_by_execution_ids(self, ids: Iterable[int]) -> list[Event]:
        """Events of these executions, by id."""
        wanted = check_ids(ids, "ids")
        return self._tx(lambda conn: fetch(conn, events_t, events_t.c.execution_id, wanted, to_event), write=False)

    def get_events_by_artifact_ids(self, ids: Iterable[int]) -> list[Event]:
        """Events of these artifacts, by id."""
        wanted = check_ids(ids, "ids")
        return self._tx(lambda conn: fetch(conn, events_t, events_t.c.artifact_id, wanted, to_event), write=False)

    # ---------------------------------------------------------- composite write

    def put_execution(
        self,
        execution: ExecutionRecord,
        *,
        contexts: Sequence[int] = (),
        inputs: Mapping[str, Sequence[int]] | None = None,
        outputs: Mapping[str, Sequence[ArtifactRecord]] | None = None,
    ) -> ExecutionRecord:
        """Record an execution with its inputs, outputs and contexts in one transaction.

        Inserts or updates the execution and the output artifacts, records an INPUT
        event per input artifact id and an OUTPUT event per output (``key`` = the
        input or output name, ``index`` = the position in its list), associates the
        execution with each context and attributes every input and output artifact to
        each context. Calling it again for the same execution (e.g. RUNNING with
        inputs, later COMPLETE with outputs) adds no duplicate rows. All or nothing.

        Args:
            execution: The execution; ``.id`` is set on return.
            contexts: Ids of the contexts (pipeline, run, node) it belongs to.
            inputs: Input artifact ids by input name.
            outputs: Output artifacts by output name; their ``.id`` is set on return.

        Returns:
            ``execution``, with id and times set.

        Raises:
            NotFoundError: A context, input artifact, output artifact or execution id
                does not exist (nothing is written).
            ArtifactDeletedError: An input or an already stored output was deleted by gc
                (nothing is written; a cache hit on it must run the node instead).

        Example:
            >>> run = store.get_or_create_context("pipeline_run", "r1")  # doctest: +SKIP
            >>> model = ArtifactRecord("Model", "/models/1")  # doctest: +SKIP
            >>> store.put_execution(ExecutionRecord("Trainer", "trainer", state="COMPLETE"),
            ...     contexts=[run.id], inputs={"examples": [1]}, outputs={"model": [model]})  # doctest: +SKIP
        """
        stamp = now()
        exec_row = execution_row(execution, stamp)
        context_ids = sorted(set(check_ids(contexts, "contexts")))
        input_ids = {check_text(k, "inputs key"): check_ids(v, f"inputs[{k!r}]") for k, v in (inputs or {}).items()}
        output_records = {check_text(k, "outputs key"): list(v) for k, v in (outputs or {}).items()}
        flat_outputs = [a for records in output_records.values() for a in records]
        output_rows = [artifact_row(a, stamp) for a in flat_outputs]
        backend = self.backend

        def write(conn: sa.Connection) -> tuple[int, list[int]]:
            require_ids(conn, contexts_t, context_ids, "context")
            found = refuse_deleted(conn, {a.id: row["state"] for a, row in zip(flat_outputs, output_rows, strict=True)
                                          if a.id is not None}, [i for ids in input_ids.values() for i in ids])
            [execution_id] = save(conn, executions_t, [execution], [exec_row], _EXECUTION_UPDATES)
            output_ids = save(conn, artifacts_t, flat_outputs, output_rows, _ARTIFACT_UPDATES, known=found)
            event_rows = [
                {"artifact_id": a_id, "execution_id": execution_id, "type": kind.value, "key": key, "idx": i, "time": stamp}
                for kind, ids_by_key in (
                    (EventType.INPUT, input_ids),
                    (EventType.OUTPUT, split_ids(output_ids, output_records)),
                )
                for key, ids in ids_by_key.items()
                for i, a_id in enumerate(ids)
            ]
            if event_rows:
                conn.execute(insert_ignore(backend, events_t), event_rows)
            if context_ids:
                conn.execute(
                    insert_ignore(backend, associations_t),
                    [{"context_id": c, "execution_id": execution_id} for c in context_ids],
                )
                touched = sorted({r["artifact_id"] for r in event_rows})
                if touched:
                    conn.execute(
                        insert_ignore(backend, attributions_t),
                        [{"context_id": c, "artifact_id": a} for c in context_ids for a in touched],
                    )
            return execution_id, output_ids

        execution_id, output_ids = self._tx(write, write=True)
        stamp_execution(execution, exec_row, execution_id)
        for record, row, new_id in zip(flat_outputs, output_rows, output_ids, strict=True):
            stamp_artifact(record, row, new_id)
        return execution

    # ------------------------------------------------------- launcher/UI queries

    def get_pipelines(self) -> list[ContextRecord]:
        """The pipeline contexts, by id."""
        return self.get_contexts(PIPELINE)

    def get_runs(self, pipeline_name: str | None = None, options: ListOptions | None = None, *,
                 include_deleted: bool = False) -> list[ContextRecord]:
        """Pipeline-run contexts (of one pipeline, if named), newest first unless ``options`` say otherwise.

        Runs that ``jfx gc`` deleted are left out unless ``include_deleted``.
        """
        stmt = _runs_of(sa.select(contexts_t), pipeline_name, include_deleted)
        options = options or ListOptions(order_by="create_time", descending=True)
        return self._list(stmt, contexts_t, options, to_context)

    def get_run_summaries(self, pipeline_name: str | None = None, options: ListOptions | None = None, *,
                          include_deleted: bool = False) -> list[ContextRecord]:
        """The runs :meth:`get_runs` finds, each with only the properties a run list shows.

        They are read from the run columns (state, times, and the summary of parameters,
        runner and attempts), never from the properties, which hold each run's whole IR.
        """
        columns = [contexts_t.c[name] for name in ("id", "type_name", "name", "parent_id", "create_time",
                                                    *RUN_COLUMNS, RUN_SUMMARY)]
        stmt = _runs_of(sa.select(*columns), pipeline_name, include_deleted)
        options = options or ListOptions(order_by="create_time", descending=True)
        return self._list(stmt, contexts_t, options, to_run_summary)

    def get_execution_artifacts(
        self, execution_id: int
    ) -> tuple[dict[str, list[ArtifactRecord]], dict[str, list[ArtifactRecord]]]:
        """(inputs by key, outputs by key) of an execution, each list in event index order.

        Raises:
            NotFoundError: No execution has this id.
        """

        def read(conn: sa.Connection):
            require_ids(conn, executions_t, [execution_id], "execution")
            return execution_artifacts(conn, execution_id)

        return self._tx(read, write=False)

    def get_node_outputs(self, run_context_id: int, node_id: str) -> dict[str, list[ArtifactRecord]] | None:
        """Outputs of the latest COMPLETE or CACHED execution of ``node_id`` in a run; ``None`` if none."""

        def read(conn: sa.Connection):
            stmt = (
                sa.select(executions_t.c.id)
                .join(associations_t, associations_t.c.execution_id == executions_t.c.id)
                .where(
                    associations_t.c.context_id == run_context_id,
                    executions_t.c.node_id == node_id,
                    executions_t.c.state.in_([ExecutionState.COMPLETE.value, ExecutionState.CACHED.value]),
                )
                .order_by(executions_t.c.id.desc())
                .limit(1)
            )
            execution_id = conn.execute(stmt).scalar()
            return None if execution_id is None else execution_artifacts(conn, execution_id)[1]

        return self._tx(read, write=False)

    def lineage(self, artifact_id: int, direction: str = "upstream", depth: int | None = None) -> LineageGraph:
        """The lineage graph around an artifact, walked by recursive SQL.

        Args:
            artifact_id: The artifact to start from.
            direction: ``"upstream"`` (what it was made from), ``"downstream"`` (what was
                made from it) or ``"both"``.
            depth: Execution steps to walk; ``0`` is the artifact alone, ``1`` adds the
                execution that produced it and that execution's inputs (upstream); ``None``
                walks to the end.

        Returns:
            The artifacts and executions reached, and the events between them.

        Raises:
            NotFoundError: No artifact has this id.
            InvalidArgumentError: A bad direction or a negative depth.

        Example:
            >>> store.lineage(model_id, "upstream", depth=1).execution_ids  # doctest: +SKIP
            {7}
        """
        if direction not in _lineage.DIRECTIONS:
            raise InvalidArgumentError(
                f"direction={direction!r} is not one of: {', '.join(_lineage.DIRECTIONS)}"
            )
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
            raise InvalidArgumentError(f"depth={depth!r}: expected None (unbounded) or an int >= 0")
        start = check_id(artifact_id, "artifact_id")

        def read(conn: sa.Connection) -> LineageGraph:
            require_ids(conn, artifacts_t, [start], "artifact")
            artifact_ids, execution_ids = set(), set()
            for upstream in {"upstream": (True,), "downstream": (False,), "both": (True, False)}[direction]:
                found_artifacts, found_executions = _lineage.walk(conn, start, upstream, depth)
                artifact_ids |= found_artifacts
                execution_ids |= found_executions
            edges = fetch(conn, events_t, events_t.c.execution_id, execution_ids, to_event)
            return LineageGraph(
                artifacts=fetch(conn, artifacts_t, artifacts_t.c.id, artifact_ids, to_artifact),
                executions=fetch(conn, executions_t, executions_t.c.id, execution_ids, to_execution),
                events=[e for e in edges if e.artifact_id in artifact_ids],
            )

        return self._tx(read, write=False)

    # ---------------------------------------------------------------- internals

    def _tx(self, fn: Callable[[sa.Connection], T], *, write: bool) -> T:
        """Run ``fn`` in one transaction, retrying transient lock errors with backoff.

        On PostgreSQL a read runs without BEGIN and COMMIT (autocommit): at its READ
        COMMITTED level each statement sees its own snapshot either way, so the
        transaction would only cost two round trips (psycopg switches to autocommit
        without one; PyMySQL would spend one each way). A connection found dead before
        COMMIT was sent (the server restarted, a proxy dropped it) is replaced and ``fn``
        run once more at once: nothing of it was committed.
        """
        if os.getpid() != self._pid:  # forked: never share the parent's pooled connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        engine = self._engine if write else self._read_engine
        delay = _FIRST_DELAY_S
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            committing = False
            try:
                with engine.connect() as conn:
                    conn.execution_options(**{WRITE_OPTION: write})
                    with conn.begin():
                        result = fn(conn)
                        committing = True
                    return result
            except sa.exc.DBAPIError as err:
                if err.connection_invalidated and not committing and attempt == 1:
                    continue
                transient = is_transient(self.backend, err)
                if transient and attempt < _MAX_ATTEMPTS:
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, _MAX_DELAY_S)
                    continue
                raise self._translate(err, transient) from err
            except sa.exc.StatementError as err:  # a value the driver could not bind
                raise InvalidArgumentError(f"cannot store a value: {err.orig}") from err
        raise AssertionError("unreachable")

    def _translate(self, err: sa.exc.DBAPIError, transient: bool) -> JfxError:
        said = describe_db_error(err, self._url)  # drivers may echo the DSN: masked
        if isinstance(err, sa.exc.IntegrityError):
            kind = integrity_kind(self.backend, err)
            if kind == "unique":
                return AlreadyExistsError(f"a record with the same unique key already exists: {said}")
            if kind == "foreign_key":
                return NotFoundError(f"a referenced record does not exist: {said}")
        if transient:
            return MetadataError(f"metadata store {self.url} stayed locked after {_MAX_ATTEMPTS} attempts: {said}")
        return MetadataError(f"metadata store {self.url}: {type(err.orig).__name__}: {said}")

    def _get_one(self, table: sa.Table, record_id: int, convert: Callable[[Any], T], what: str) -> T:
        wanted = check_id(record_id, f"{what}_id")
        rows = self._tx(lambda conn: conn.execute(sa.select(table).where(table.c.id == wanted)).all(), write=False)
        if not rows:
            raise NotFoundError(missing(what, [wanted]))
        return convert(rows[0])

    def _list(self, stmt: sa.Select, table: sa.Table, options: ListOptions | None, convert: Callable[[Any], T]) -> list[T]:
        stmt = page(stmt, table, options or ListOptions())
        return self._tx(lambda conn: [convert(row) for row in conn.execute(stmt)], write=False)
