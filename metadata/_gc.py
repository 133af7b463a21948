"""Retention (``jfx gc``): delete old runs and the artifacts only they use, lineage-aware and crash-safe.

A :class:`RetentionPolicy` selects runs (older than an age, beyond the newest N of each
pipeline, or by id). The artifacts those runs *made* (an artifact's maker is the first
execution that recorded it as an output; a cache hit or a resolver that re-records it
later is a user) are deleted, except — unless ``force`` — one that:

* an execution outside the deleted runs reads or re-records (a kept run's cache hit,
  partial-run reuse or resolver: cache hits reuse artifacts across runs);
* an execution in state RUNNING reads;
* a pushed or blessed model depends on: a LIVE artifact whose properties say
  ``pushed: true`` (the Pusher's PushedModel) or ``blessed: true`` (a ModelBlessing or
  InfraBlessing); every input of the execution that pushed (the model and its
  blessings); and the ``model`` input of the execution that blessed. The chain stops at
  the model: a jfx model artifact carries its fitted transform and signature, so it
  serves and re-evaluates without the examples, statistics or transform graph it was
  trained from, which are the bulk of a pipeline root and go with their runs.

Whatever ``force`` says, gc never deletes a RUNNING run, the data an ``Importer`` registered,
nor files outside the deleting run's pipeline root (it only removes what jfx wrote).

The logs the launcher captured for the deleted runs' executions (``<root>/<pipeline>/.logs/``,
one file per execution) go with them, once their artifacts' files are gone; a log an
execution outside the deleted runs shares is kept.

Nothing is removed from the database. The order makes a crash harmless: one transaction
marks the runs deleted and their artifacts DELETING (with when and why), locking the
artifact rows and checking the rules again under the lock; only after it commits are
files removed, each artifact then marked DELETED. A gc killed in between leaves
DELETING artifacts, whose records already say they are gone (the cache and resolvers
use LIVE artifacts only, and the store refuses to revive them); every gc run first
finishes those. No artifact is ever recorded LIVE whose files are gone.

Example:
    >>> with MetadataStore(url) as store:  # doctest: +SKIP
    ...     report = collect_garbage(store, RetentionPolicy(older_than=parse_age("30d")), dry_run=True)
    >>> report.bytes_freed  # doctest: +SKIP
    1048576
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from jfx import _storage as storage
from jfx._config import gc_pause_after
from jfx.errors import InvalidArgumentError, NotFoundError
from jfx.metadata._executions_info import LOG_URI_KEY
from jfx.metadata._queries import chunks, merge_context_properties
from jfx.metadata._records import (
    PIPELINE,
    PIPELINE_RUN,
    ArtifactRecord,
    ArtifactState,
    EventType,
    ExecutionState,
    ListOptions,
)
from jfx.metadata._rows import now, to_artifact
from jfx.metadata._runs import deletion_properties
from jfx.metadata._schema import artifacts as artifacts_t
from jfx.metadata._schema import associations as associations_t
from jfx.metadata._schema import contexts as contexts_t
from jfx.metadata._schema import events as events_t
from jfx.metadata._schema import executions as executions_t
from jfx.metadata._store import MetadataStore

__all__ = ["RetentionPolicy", "GcReport", "GcRun", "GcArtifact", "KeptArtifact", "SkippedRun", "collect_garbage",
           "parse_age"]

_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_AGE_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_REASON_MAX = 255


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``: a whole number and a unit, ``m`` (minutes), ``h``, ``d`` or ``w`` (weeks).

    Example:
        >>> parse_age("36h")
        datetime.timedelta(days=1, seconds=43200)

    Raises:
        InvalidArgumentError: Not a number and one of the units.
    """
    m = _AGE_RE.match(str(text))
    if m is None or int(m.group(1)) == 0:
        raise InvalidArgumentError(f"age {text!r}: expected a positive whole number and a unit, m, h, d or w "
                                   "(e.g. 30d, 12h, 2w)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _show_age(age: timedelta) -> str:
    for unit in ("w", "d", "h", "m"):
        if age % _UNITS[unit] == timedelta(0):
            return f"{age // _UNITS[unit]}{unit}"
    return str(age)


@dataclass(frozen=True)
class RetentionPolicy:
    """Which runs gc deletes.

    Args:
        older_than: Runs that started longer ago than this.
        keep_last: Runs beyond the newest ``keep_last`` of each pipeline (running runs count).
            With ``older_than`` too, a run goes only if both select it.
        run_ids: These runs (not combined with the two above).
        pipeline: Only runs of this pipeline.
        force: Delete artifacts even where a kept run, a running execution or a pushed or
            blessed model still depends on them.

    Raises:
        InvalidArgumentError: Nothing selects runs, ``run_ids`` is combined with an age or a
            count, or a value is out of range.
    """

    older_than: timedelta | None = None
    keep_last: int | None = None
    run_ids: tuple[str, ...] = ()
    pipeline: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_ids", tuple(self.run_ids))
        if self.run_ids and (self.older_than is not None or self.keep_last is not None):
            raise InvalidArgumentError("give runs by id (--run) or by age/count (--older-than, --keep-last), not both")
        if not self.run_ids and self.older_than is None and self.keep_last is None:
            raise InvalidArgumentError("select the runs to delete: --older-than AGE, --keep-last N or --run RUN_ID")
        if self.keep_last is not None and (isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int)
                                           or self.keep_last < 0):
            raise InvalidArgumentError(f"keep_last={self.keep_last!r}: expected a whole number >= 0")
        if self.older_than is not None and (not isinstance(self.older_than, timedelta)
                                            or self.older_than <= timedelta(0)):
            raise InvalidArgumentError(f"older_than={self.older_than!r}: expected a positive timedelta")
        if any(not isinstance(r, str) or not r for r in self.run_ids):
            raise InvalidArgumentError(f"run_ids={self.run_ids!r}: expected run ids (non-empty strings)")

    def describe(self) -> str:
        """Why a run this policy selects goes, e.g. ``older than 30d``."""
        if self.run_ids:
            return "named for deletion"
        parts = []
        if self.older_than is not None:
            parts.append(f"older than {_show_age(self.older_than)}")
        if self.keep_last is not None:
            parts.append(f"not among the newest {self.keep_last} of its pipeline")
        return " and ".join(parts)


@dataclass(frozen=True)
class GcRun:
    """A run gc deletes (or would)."""

    run_id: str
    pipeline: str | None
    state: str
    start_time: datetime | None


@dataclass(frozen=True)
class SkippedRun:
    """A run the policy selected that gc does not delete, and why."""

    run_id: str
    why: str


@dataclass(frozen=True)
class GcArtifact:
    """An artifact gc deletes (or would): its files' total size when they could be listed."""

    id: int
    type_name: str
    uri: str
    run_id: str | None
    size_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class KeptArtifact:
    """An artifact of a deleted run that gc keeps, and why."""

    id: int
    type_name: str
    uri: str
    why: str


@dataclass
class GcReport:
    """What one gc did (or, with ``dry_run``, would do).

    ``artifacts`` are those of the runs deleted now; ``finished`` those an interrupted gc
    had marked deleted and this one removed the files of; ``logs`` the execution logs of the
    deleted runs removed (or that would be), ``log_bytes`` their size; ``errors`` the
    artifacts whose files could not be removed (they stay DELETING, for the next gc) and
    the logs that could not be.
    """

    dry_run: bool
    policy: str
    runs: list[GcRun] = field(default_factory=list)
    skipped_runs: list[SkippedRun] = field(default_factory=list)
    artifacts: list[GcArtifact] = field(default_factory=list)
    kept: list[KeptArtifact] = field(default_factory=list)
    finished: list[GcArtifact] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    log_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """The bytes of the artifacts and logs removed (or that would be), of those whose size is known."""
        return sum(a.size_bytes or 0 for a in (*self.artifacts, *self.finished)) + self.log_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (times as ISO 8601)."""
        out = asdict(self)
        for run in out["runs"]:
            run["start_time"] = run["start_time"].isoformat(timespec="milliseconds") if run["start_time"] else None
        out["bytes_freed"] = self.bytes_freed
        return out


# ----------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Run:
    context_id: int
    run_id: str
    pipeline: str | None
    state: str
    start_time: datetime | None
    root: str | None


@dataclass
class _Plan:
    runs: list[_Run]
    skipped: list[SkippedRun]
    delete: list[tuple[ArtifactRecord, _Run]]
    kept: list[KeptArtifact]
    logs: list[str] = field(default_factory=list)


def _run_rows(conn: sa.Connection, policy: RetentionPolicy, at: datetime) -> list[sa.Row]:
    parent = contexts_t.alias("pipeline")
    c = contexts_t.c
    stmt = (sa.select(c.id, c.name, c.parent_id, c.create_time, c.run_state, c.run_start_time, c.run_deleted_time,
                      parent.c.name.label("pipeline"), c.properties["pipeline_root"].as_string().label("root"))
            .select_from(contexts_t.outerjoin(parent, c.parent_id == parent.c.id))
            .where(c.type_name == PIPELINE_RUN))
    if policy.pipeline is not None:
        stmt = stmt.where(parent.c.name == policy.pipeline)
    if policy.run_ids:
        return [row for chunk in _text_chunks(policy.run_ids) for row in conn.execute(stmt.where(c.name.in_(chunk)))]
    stmt = stmt.where(c.run_deleted_time.is_(None)).order_by(c.parent_id, c.create_time.desc(), c.id.desc())
    if policy.keep_last is None and policy.older_than is not None:  # by age alone: only the old runs are read
        cutoff = at - policy.older_than
        stmt = stmt.where(sa.or_(c.run_start_time < cutoff, sa.and_(c.run_start_time.is_(None), c.create_time < cutoff)))
    return list(conn.execute(stmt))


def _text_chunks(values: Iterable[str], size: int = 500) -> Iterable[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), size):
        yield ordered[start:start + size]


def _select_runs(conn: sa.Connection, policy: RetentionPolicy, at: datetime) -> tuple[list[_Run], list[SkippedRun]]:
    if policy.pipeline is not None:
        known = conn.execute(sa.select(contexts_t.c.id).where(contexts_t.c.type_name == PIPELINE,
                                                               contexts_t.c.name == policy.pipeline)).first()
        if known is None:
            raise NotFoundError(f"no pipeline {policy.pipeline!r} in the metadata store")
    rows = _run_rows(conn, policy, at)
    chosen: list[sa.Row] = []
    skipped: list[SkippedRun] = []
    if policy.run_ids:
        found = {row.name for row in rows}
        missing = [r for r in policy.run_ids if r not in found]
        if missing:
            of = f" of pipeline {policy.pipeline!r}" if policy.pipeline is not None else ""
            raise NotFoundError(f"no run{'s' if len(missing) > 1 else ''}{of} {', '.join(map(repr, missing))} "
                                "in the metadata store")
        for row in rows:
            if row.run_deleted_time is not None:
                skipped.append(SkippedRun(row.name, f"already deleted on {row.run_deleted_time:%Y-%m-%d %H:%M UTC}"))
            else:
                chosen.append(row)
    else:
        cutoff = at - policy.older_than if policy.older_than is not None else None
        rank: dict[Any, int] = {}
        for row in rows:  # newest first within each pipeline
            position = rank[row.parent_id] = rank.get(row.parent_id, -1) + 1
            if policy.keep_last is not None and position < policy.keep_last:
                continue
            started = row.run_start_time or row.create_time
            if cutoff is not None and started is not None and started >= cutoff:
                continue
            chosen.append(row)
    runs = []
    for row in chosen:
        if row.run_state == "RUNNING":
            skipped.append(SkippedRun(row.name, "still running (a run whose process died is marked ABANDONED by "
                                                "the next jfx run on its host)"))
            continue
        runs.append(_Run(row.id, row.name, row.pipeline, row.run_state, row.run_start_time or row.create_time,
                         row.root or None))
    return runs, skipped


def _pairs(conn: sa.Connection, stmt_for: Callable[[list[int]], sa.Select], ids: Iterable[int]) -> list[sa.Row]:
    return [row for chunk in chunks(ids) for row in conn.execute(stmt_for(chunk))]


def _under_root(uri: str, root: str | None) -> bool:
    """Whether ``uri`` lies strictly inside the pipeline root ``root`` (what jfx wrote)."""
    if not root:
        return False
    try:
        target, base = storage.check_uri(uri), storage.check_uri(root)
        remote = storage.is_remote(target)
        if remote != storage.is_remote(base):
            return False
    except InvalidArgumentError:
        return False
    if remote:
        return target.startswith(base.rstrip("/") + "/")
    target = os.path.normpath(os.path.abspath(os.path.expanduser(target)))
    base = os.path.normpath(os.path.abspath(os.path.expanduser(base)))
    return target.startswith(base.rstrip(os.sep) + os.sep)


def _verdict(a: ArtifactRecord) -> str | None:
    """``"pushed"`` or ``"blessed"`` for a live artifact that says so, else ``None``."""
    if a.state != ArtifactState.LIVE:
        return None
    if a.properties.get("pushed") is True:
        return "pushed"
    if a.properties.get("blessed") is True:
        return "blessed"
    return None


def _plan(conn: sa.Connection, policy: RetentionPolicy, at: datetime, *, lock: bool) -> _Plan:
    """Select the runs and split their artifacts into deleted and kept; ``lock``: for the marking transaction."""
    runs, skipped = _select_runs(conn, policy, at)
    if lock and runs:  # a run resumed since it was read is running again: it stays
        states: dict[int, str] = {row.id: row.run_state for row in _pairs(
            conn, lambda ids: sa.select(contexts_t.c.id, contexts_t.c.run_state).where(contexts_t.c.id.in_(ids))
            .order_by(contexts_t.c.id).with_for_update(), [r.context_id for r in runs])}
        for r in [r for r in runs if states.get(r.context_id) == "RUNNING"]:
            runs.remove(r)
            skipped.append(SkippedRun(r.run_id, "still running"))
    by_ctx = {r.context_id: r for r in runs}
    run_of: dict[int, _Run] = {}  # execution id -> deleted run
    for e_id, c_id in _pairs(conn, lambda ids: sa.select(associations_t.c.execution_id, associations_t.c.context_id)
                             .where(associations_t.c.context_id.in_(ids)), by_ctx):
        run_of[e_id] = by_ctx[c_id]
    # an execution also associated with a run that stays is not the deleted runs' alone
    run_names: dict[int, str] = {}
    for e_id, c_id, name in _pairs(conn, lambda ids: sa.select(associations_t.c.execution_id, contexts_t.c.id,
                                                                 contexts_t.c.name)
                                   .join(contexts_t, contexts_t.c.id == associations_t.c.context_id)
                                   .where(associations_t.c.execution_id.in_(ids),
                                          contexts_t.c.type_name == PIPELINE_RUN), run_of):
        if c_id not in by_ctx:
            run_of.pop(e_id, None)
            run_names[e_id] = name
    logs = _logs(conn, run_of)
    made = {a_id for (a_id,) in _pairs(conn, lambda ids: sa.select(events_t.c.artifact_id).where(
        events_t.c.execution_id.in_(ids), events_t.c.type == EventType.OUTPUT.value), run_of)}

    def artifact_rows(ids: list[int]) -> sa.Select:
        stmt = sa.select(artifacts_t).where(artifacts_t.c.id.in_(ids)).order_by(artifacts_t.c.id)
        return stmt.with_for_update() if lock else stmt

    candidates = {a.stored_id: a for a in map(to_artifact, _pairs(conn, artifact_rows, made)) if not a.state.deleted}
    # read after the rows are locked: a cache hit that committed first is seen here
    events = _pairs(conn, lambda ids: sa.select(events_t.c.artifact_id, events_t.c.execution_id, events_t.c.type,
                                                events_t.c.key).where(events_t.c.artifact_id.in_(ids)), candidates)
    exec_ids = {e.execution_id for e in events}
    exec_state: dict[int, str] = {row.id: row.state for row in _pairs(
        conn, lambda ids: sa.select(executions_t.c.id, executions_t.c.state).where(executions_t.c.id.in_(ids)),
        exec_ids)}
    outside = exec_ids - set(run_of)
    for e_id, _c_id, name in _pairs(conn, lambda ids: sa.select(associations_t.c.execution_id, contexts_t.c.id,
                                                                  contexts_t.c.name)
                                    .join(contexts_t, contexts_t.c.id == associations_t.c.context_id)
                                    .where(associations_t.c.execution_id.in_(ids),
                                           contexts_t.c.type_name == PIPELINE_RUN), outside):
        run_names.setdefault(e_id, name)

    maker: dict[int, int] = {}
    for ev in events:
        if ev.type == EventType.OUTPUT.value:
            maker[ev.artifact_id] = min(maker.get(ev.artifact_id, ev.execution_id), ev.execution_id)
    why: dict[int, str] = {}
    for a_id in candidates:
        if maker.get(a_id) not in run_of:
            why[a_id] = "made by a run that stays"  # re-recorded by a deleted run (a cache hit, a resolver)
    if not policy.force:
        readers: dict[int, set[int]] = {}
        for ev in events:
            if ev.artifact_id in why:
                continue
            if ev.execution_id not in run_of:
                user = run_names.get(ev.execution_id)
                why[ev.artifact_id] = (f"used by run {user} (execution {ev.execution_id})" if user
                                       else f"used by execution {ev.execution_id}, outside the deleted runs")
            elif ev.type == EventType.INPUT.value and exec_state.get(ev.execution_id) == ExecutionState.RUNNING.value:
                why[ev.artifact_id] = f"read by running execution {ev.execution_id}"
            elif ev.type == EventType.INPUT.value:
                readers.setdefault(ev.execution_id, set()).add(ev.artifact_id)
        for a_id, a in candidates.items():
            verdict = _verdict(a)
            if verdict is not None and a_id not in why:
                why[a_id] = f"a {verdict} {'model' if verdict == 'pushed' else 'verdict'} (properties {verdict}: true)"
        _protect_models(conn, candidates, events, readers, why)
    plan_delete = []
    kept = []
    for a_id, a in sorted(candidates.items()):
        run = run_of.get(maker.get(a_id, -1))
        if a.properties.get("imported") is True:  # whatever force says: the data is not jfx's
            why[a_id] = "registered by an Importer: data made outside the pipeline, which gc never removes"
        if a_id not in why and (run is None or not _under_root(a.uri, run.root)):
            root = run.root if run is not None else None
            why[a_id] = (f"outside the pipeline root {root} (gc removes only what jfx wrote there)" if root
                         else "its run recorded no pipeline root")
        if a_id in why:
            kept.append(KeptArtifact(a_id, a.type_name, a.uri, why[a_id]))
        else:
            assert run is not None
            plan_delete.append((a, run))
    return _Plan(runs, skipped, plan_delete, kept, logs)


def _logs(conn: sa.Connection, run_of: dict[int, _Run]) -> list[str]:
    """The captured logs of the executions only the deleted runs hold, that lie in their run's root."""
    log_uri = executions_t.c.properties[LOG_URI_KEY].as_string()
    found = []
    for e_id, uri in _pairs(conn, lambda ids: sa.select(executions_t.c.id, log_uri).where(
            executions_t.c.id.in_(ids), log_uri.is_not(None)).order_by(executions_t.c.id), run_of):
        # only what the launcher wrote: <root>/<pipeline>/.logs/<node>/<execution id>.log
        if uri and _under_root(uri, run_of[e_id].root) and f"{e_id}.log" == storage.basename(uri) \
                and "/.logs/" in uri.replace(os.sep, "/"):
            found.append(uri)
    return found


def _protect_models(conn: sa.Connection, candidates: dict[int, ArtifactRecord], events: list[sa.Row],
                    readers: dict[int, set[int]], why: dict[int, str]) -> None:
    """Keep what a live pushed or blessed verdict was made from (see the module's docstring)."""
    if not readers:
        return
    verdicts: dict[int, tuple[str, int]] = {}  # execution -> (verdict, the verdict artifact's id)

    def outputs_of(ids: list[int]) -> sa.Select:
        return (sa.select(events_t.c.execution_id, artifacts_t)
                .join(artifacts_t, artifacts_t.c.id == events_t.c.artifact_id)
                .where(events_t.c.execution_id.in_(ids), events_t.c.type == EventType.OUTPUT.value))

    for row in _pairs(conn, outputs_of, readers):
        verdict = _verdict(to_artifact(row))
        if verdict is not None and verdicts.get(row.execution_id, ("",))[0] != "pushed":
            verdicts[row.execution_id] = (verdict, row.id)
    keys = {(ev.artifact_id, ev.execution_id): ev.key for ev in events if ev.type == EventType.INPUT.value}
    for e_id, (verdict, verdict_id) in verdicts.items():
        for a_id in readers.get(e_id, ()):
            if a_id in why:
                continue
            if verdict == "pushed":
                why[a_id] = f"an input of pushed model artifact {verdict_id}"
            elif keys.get((a_id, e_id)) == "model":
                why[a_id] = f"the model blessed by artifact {verdict_id}"


# ----------------------------------------------------------------------- doing it


def _size(uri: str) -> tuple[int | None, str | None]:
    """The total bytes under ``uri`` (0 if nothing is there), or ``None`` and why it could not be listed."""
    try:
        if not storage.exists(uri):
            return 0, None
        return sum(f.size for f in storage.list_files(uri)), None
    except FileNotFoundError:
        return 0, None
    except OSError as err:
        return None, str(err)


def _mark(conn: sa.Connection, plan: _Plan, policy: RetentionPolicy, at: datetime) -> None:
    reason = policy.describe()
    by_run: dict[str, list[int]] = {}
    for a, run in plan.delete:
        by_run.setdefault(run.run_id, []).append(a.stored_id)
    for run_id, ids in by_run.items():
        text = f"run {run_id} {reason}"[:_REASON_MAX]
        for chunk in chunks(ids):
            conn.execute(sa.update(artifacts_t).where(artifacts_t.c.id.in_(chunk))
                         .values(state=ArtifactState.DELETING.value, deleted_time=at, delete_reason=text,
                                 update_time=at))
    for run in plan.runs:
        merge_context_properties(conn, run.context_id, deletion_properties(at, f"gc: {reason}"))


def _mark_deleted(conn: sa.Connection, *, artifact_id: int) -> None:
    conn.execute(sa.update(artifacts_t).where(artifacts_t.c.id == artifact_id,
                                              artifacts_t.c.state == ArtifactState.DELETING.value)
                 .values(state=ArtifactState.DELETED.value, update_time=now()))


def _finish(store: MetadataStore, report: GcReport, fresh: set[int], pause_after: int | None) -> None:
    """Remove the files of every DELETING artifact (this gc's and any an earlier one left), then mark it DELETED."""
    pending = store.get_artifacts(state=ArtifactState.DELETING, options=ListOptions(order_by="id"))
    origin: dict[int, str | None] = {a.id: a.run_id for a in report.artifacts}
    done: dict[int, GcArtifact] = {}
    removed = 0
    for a in pending:
        size, error = _size(a.uri)
        try:
            storage.remove(a.uri)
            if storage.exists(a.uri):
                raise OSError("files remain after removing it")
        except OSError as err:
            report.errors.append(f"artifact {a.id} ({a.uri}): could not remove its files: {err}; it stays "
                                 "DELETING and the next jfx gc tries again")
            done[a.stored_id] = GcArtifact(a.stored_id, a.type_name, a.uri, origin.get(a.stored_id), size, str(err))
            continue
        removed += 1
        if pause_after is not None and removed >= pause_after:
            print(f"jfx gc: paused after removing the files of {removed} artifact(s) (JFX_GC_PAUSE_AFTER)",
                  file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
        store._tx(functools.partial(_mark_deleted, artifact_id=a.stored_id), write=True)  # noqa: SLF001
        done[a.stored_id] = GcArtifact(a.stored_id, a.type_name, a.uri, origin.get(a.stored_id), size, error)
    report.artifacts = [done.get(a.id, a) for a in report.artifacts]
    report.finished = [x for i, x in done.items() if i not in fresh]
    removed_logs = []
    for uri in report.logs:
        size = _file_size(uri)
        if size is None:  # gone already
            continue
        try:
            storage.remove(uri)
        except OSError as err:
            report.errors.append(f"log {uri}: could not remove it: {err}")
            continue
        removed_logs.append(uri)
        report.log_bytes += size
    report.logs = removed_logs


def _file_size(uri: str) -> int | None:
    try:
        return storage.file_size(uri)
    except OSError:
        return None


def _report(plan: _Plan, policy: RetentionPolicy, dry_run: bool) -> GcReport:
    return GcReport(
        dry_run=dry_run, policy=policy.describe(),
        runs=[GcRun(r.run_id, r.pipeline, r.state, r.start_time) for r in plan.runs],
        skipped_runs=plan.skipped,
        artifacts=[GcArtifact(a.stored_id, a.type_name, a.uri, run.run_id) for a, run in plan.delete],
        kept=plan.kept,
        logs=list(plan.logs),
    )


def collect_garbage(store: MetadataStore, policy: RetentionPolicy, *, dry_run: bool = False,
                    at: datetime | None = None) -> GcReport:
    """Delete the runs ``policy`` selects and the artifacts only they use (see the module's docstring).

    Args:
        store: The metadata store.
        policy: Which runs go, and whether to ``force``.
        dry_run: Only say what would go, with the bytes it would free (sizes from the
            storage layer: local disk or the object store); change nothing.
        at: The time ages are measured from (default: now).

    Returns:
        The runs and artifacts deleted, those kept and why, and the bytes freed.

    Raises:
        NotFoundError: ``--run`` names a run, or ``--pipeline`` a pipeline, that is not there.
        MetadataError: The store failed (nothing was marked, or the marking is complete).
    """
    at = at or now()
    if dry_run:
        plan = store._tx(lambda conn: _plan(conn, policy, at, lock=False), write=False)  # noqa: SLF001
        report = _report(plan, policy, dry_run=True)
        report.artifacts = [GcArtifact(a.id, a.type_name, a.uri, a.run_id, *_size(a.uri)) for a in report.artifacts]
        left = store.get_artifacts(state=ArtifactState.DELETING, options=ListOptions(order_by="id"))
        report.finished = [GcArtifact(a.stored_id, a.type_name, a.uri, None, *_size(a.uri)) for a in left]
        sizes = {uri: _file_size(uri) for uri in report.logs}
        report.logs = [uri for uri, size in sizes.items() if size is not None]
        report.log_bytes = sum(size or 0 for size in sizes.values())
        return report
    pause_after = gc_pause_after()

    def mark(conn: sa.Connection) -> _Plan:
        plan = _plan(conn, policy, at, lock=True)
        _mark(conn, plan, policy, at)
        return plan

    plan = store._tx(mark, write=True)  # noqa: SLF001 - the store's own package
    report = _report(plan, policy, dry_run=False)
    _finish(store, report, {a.id for a in report.artifacts}, pause_after)
    return report
