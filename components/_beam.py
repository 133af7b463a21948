"""Beam options for the data components: which args apply, and a runner always named.

A data component runs on Beam when it is given ``beam_pipeline_args`` or the pipeline
sets them (``Pipeline(beam_pipeline_args=[...])``); otherwise it uses the in-process
engine. jfx always names the runner (DirectRunner unless the args say otherwise): left
unnamed, Beam may try to download its Prism runner, which fails without a network.

Workers and the driver share no filesystem. Beam workers (a Dask cluster, Flink, Spark,
Dataflow) may run on other machines, so nothing a worker writes to its own disk reaches
the driver, and a local path of the driver (a component's staging directory, the local
cache of its inputs) does not exist on a worker. So:

* workers read their input through :mod:`jfx._storage`: a piece of an ``Examples``
  artifact on an object store is read from the store, byte ranges of one Parquet row
  group at a time (:mod:`jfx.components._engine_beam`);
* what workers hand back to the driver (merged accumulators, a node's outcome) is written
  through :mod:`jfx._storage` into a :func:`results_folder`: under ``--temp_location``
  when the args give one (a local path or an ``s3://``/``gs://`` URI), else, inside a
  node whose pipeline root is on an object store, under that execution's staging prefix
  ``<root>/<pipeline>/<node>/.staging-<execution id>/`` (removed when the execution
  ends, and by the reaping of a dead one), else in a local temporary folder (the
  in-process and local multi-process runners);
* output files a worker makes (ExampleGen's Parquet shards) are written into a
  worker-local temporary folder and sent through the results folder
  (:func:`worker_output`); the driver copies them into the component's local staging
  directory (:func:`receive_files`), which publishing uploads; workers never write
  into a path of the driver's. A run
  whose results did not all come back fails, naming the folder, rather than computing
  on a part of the data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jfx import _storage as storage
from jfx.errors import ComponentError, DataValidationError
from jfx.pipelines._context import current_context


def quiet_beam_import() -> None:
    """Import Apache Beam without its GCP client's "apitools not found" warning.

    That module calls ``logging.warning`` on the root logger, which also installs a
    handler on it (``logging.basicConfig``) and so doubles every log line a program
    prints afterwards. Call this before ``import apache_beam``.
    """
    import sys

    if "apache_beam.io.gcp.internal.clients.bigquery" in sys.modules:
        return
    root = logging.getLogger()
    guard = logging.NullHandler()  # a handler present: no basicConfig

    def drop(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")

    root.addHandler(guard)
    root.addFilter(drop)
    try:
        import apache_beam.io.gcp.internal.clients.bigquery  # noqa: F401
    except ImportError:
        pass
    finally:
        root.removeFilter(drop)
        root.removeHandler(guard)

__all__ = ["resolve_beam_args", "beam_options", "results_folder", "write_result", "read_results", "worker_output",
           "receive_files", "write_report", "read_reports", "worker_error", "worker_errors",
           "quiet_beam_import", "DEFAULT_RUNNER_ARGS"]

_LOG = logging.getLogger(__name__)
_FILES = "files"  # under a results folder: the output files workers sent

DEFAULT_RUNNER_ARGS = ("--runner=DirectRunner",)


def resolve_beam_args(explicit: list[str] | None) -> list[str] | None:
    """The component's own args if given, else the running pipeline's, else ``None``."""
    if explicit is not None:
        return [str(a) for a in explicit]
    ctx = current_context()
    if ctx is not None and ctx.beam_pipeline_args is not None:
        return list(ctx.beam_pipeline_args)
    return None


def beam_options(args: list[str]) -> Any:
    """``PipelineOptions`` for ``args``, with ``--runner=DirectRunner`` added if no runner is named."""
    from apache_beam.options.pipeline_options import PipelineOptions

    named = any(a == "--runner" or a.startswith("--runner=") for a in args)
    # Beam's optional GCP clients log a warning at import on every run; it is noise here.
    logging.getLogger("apache_beam.io.gcp").setLevel(logging.ERROR)
    return PipelineOptions([*args] if named else [*DEFAULT_RUNNER_ARGS, *args])


def _scratch_root(options: Any) -> tuple[str | None, bool]:
    """Where workers may write results: ``(location, remote)``; ``None``: a local temp folder."""
    temp_root = options.get_all_options().get("temp_location")
    if temp_root:
        return str(temp_root), storage.is_remote(str(temp_root))
    ctx = current_context()
    if ctx is not None and ctx.pipeline_root and storage.is_remote(ctx.pipeline_root):
        stage = storage.join(ctx.pipeline_root, ctx.pipeline_name, ctx.node_id, f".staging-{ctx.execution_id}")
        return stage, True
    return None, False


@contextlib.contextmanager
def results_folder(options: Any, prefix: str, root: str | None = None) -> Iterator[str]:
    """A folder (a path or an object-store URI) where Beam workers leave results for the driver.

    Under ``--temp_location`` when the options give one, else under ``root`` when given,
    else (inside a component whose pipeline root is on an object store) under the
    execution's staging prefix, else a local temporary directory. Write and read it with
    :func:`write_result` and :func:`read_results`; it is removed afterwards.
    """
    base, _ = _scratch_root(options)
    if base is None and root is not None:
        base = root
    local = base is None
    name = f"{prefix}{uuid.uuid4().hex}"
    folder = tempfile.mkdtemp(prefix=prefix) if base is None else storage.join(base, name)
    try:
        yield folder
    finally:
        if local:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            try:
                storage.remove(folder)
            except Exception as err:  # noqa: BLE001 - a leftover temp folder is worth a log line, not a failure
                _LOG.warning("could not delete Beam temp folder %s: %s", folder, err)


def write_result(folder: str, data: bytes) -> None:
    """On a worker: leave ``data`` for the driver in ``folder`` (a new file, written whole)."""
    storage.write_bytes(storage.join(folder, f"{uuid.uuid4().hex}.pkl"), data)


def read_results(folder: str) -> list[bytes]:
    """On the driver: every result the workers left in ``folder`` (none if it does not exist)."""
    try:
        found = storage.list_files(folder)
    except FileNotFoundError:
        return []
    return [storage.read_bytes(f.uri) for f in found if f.rel.endswith(".pkl")]


@contextlib.contextmanager
def worker_output(folder: str) -> Iterator[Path]:
    """On a worker: a local temporary folder whose files are sent to ``folder`` when the block ends.

    The worker writes output files there as it would into the component's output; they
    reach the driver through ``folder`` (see :func:`receive_files`), never through a
    path of the driver's. Relative paths are kept: give each worker its own file names.
    """
    local = Path(tempfile.mkdtemp(prefix="jfx-worker-"))
    try:
        yield local
        if any(p.is_file() for p in local.rglob("*")):
            storage.upload_dir(local, storage.join(folder, _FILES))
    finally:
        shutil.rmtree(local, ignore_errors=True)


def receive_files(folder: str, local: str | Path) -> None:
    """On the driver: copy every file the workers sent to ``folder`` into the local folder ``local``."""
    sent = storage.join(folder, _FILES)
    if storage.exists(sent):
        storage.download_dir(sent, local)


def write_report(folder: str, name: str, report: dict[str, Any]) -> None:
    """On a worker: leave a JSON report named ``name`` for the driver (after its files are sent)."""
    storage.write_bytes(storage.join(folder, f"{name}.json"), json.dumps(report).encode("utf-8"))


def read_reports(folder: str) -> list[dict[str, Any]]:
    """On the driver: the reports the workers left in ``folder``."""
    try:
        found = storage.list_files(folder)
    except FileNotFoundError:
        return []
    return [json.loads(storage.read_bytes(f.uri)) for f in found if "/" not in f.rel and f.rel.endswith(".json")]


# What runners say when a worker process died under them (killed, out of memory): the
# DirectRunner's data plane, and dask.distributed after a worker is lost too often.
_LOST_WORKER = ("Channel closed prematurely", "KilledWorker")


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Around a Beam run: a DataValidationError raised on a worker surfaces as itself, and a
    worker process that died is said to have died (ComponentError), not as the runner's
    channel error."""
    try:
        yield
    except DataValidationError:
        raise
    except Exception as err:  # Beam wraps a worker's exception in its own; keep ours visible
        found = worker_error(err)
        if found is not None:
            raise found from err
        lost = _lost_worker(err)
        if lost is not None:
            raise ComponentError(f"a Beam worker process exited before its work was done (killed, or out of "
                                 f"memory?); the runner said: {lost}") from err
        raise


def _lost_worker(err: BaseException) -> str | None:
    """The runner's line about a worker process that died, if ``err`` (or what it wraps) is one."""
    for cause in _chain(err):
        said = f"{type(cause).__name__}: {cause}"
        for marker in _LOST_WORKER:
            if marker in said:
                return next(line.strip() for line in said.splitlines() if marker in line)
    return None


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it wraps (causes, else contexts), each once."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def worker_error(err: BaseException) -> DataValidationError | None:
    """The DataValidationError a Beam worker raised, out of the exception Beam wraps it in.

    In-process runners keep it as a cause; remote ones only as text in the message.
    """
    for cause in _chain(err):
        if isinstance(cause, DataValidationError):
            return DataValidationError(str(cause))
    marker = "DataValidationError"
    lines = [ln for ln in str(err).splitlines() if marker in ln]
    if lines:
        return DataValidationError(lines[-1].split(f"{marker}: ", 1)[-1].strip())
    return None
