"""Beam options for the data components: which args apply, and a runner always named.

A data component runs on Beam when it is given ``beam_pipeline_args`` or the pipeline
sets them (``Pipeline(beam_pipeline_args=[...])``); otherwise it uses the in-process
engine. jfx always names the runner (DirectRunner unless the args say otherwise): left
unnamed, Beam may try to download its Prism runner, which fails without a network.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

from jfx.errors import DataValidationError

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

__all__ = ["resolve_beam_args", "beam_options", "results_folder", "worker_error", "worker_errors",
           "quiet_beam_import", "DEFAULT_RUNNER_ARGS"]

_LOG = logging.getLogger(__name__)

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


@contextlib.contextmanager
def results_folder(options: Any, prefix: str) -> Iterator[str]:
    """A folder where Beam workers leave results for the driver, removed afterwards.

    Under ``--temp_location`` when the options give one (a location remote workers can
    reach), else a local temporary directory (enough for the local runners).
    """
    from apache_beam.io.filesystems import FileSystems

    temp_root = options.get_all_options().get("temp_location")
    local = temp_root is None
    folder = tempfile.mkdtemp(prefix=prefix) if local else FileSystems.join(temp_root, f"{prefix}{uuid.uuid4().hex}")
    try:
        yield folder
    finally:
        if local:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            try:
                FileSystems.delete([folder])
            except Exception as err:  # noqa: BLE001 - a leftover temp folder is worth a log line, not a failure
                _LOG.warning("could not delete Beam temp folder %s: %s", folder, err)


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Around a Beam run: a DataValidationError raised on a worker surfaces as itself."""
    try:
        yield
    except DataValidationError:
        raise
    except Exception as err:  # Beam wraps a worker's exception in its own; keep ours visible
        found = worker_error(err)
        if found is not None:
            raise found from err
        raise


def worker_error(err: BaseException) -> DataValidationError | None:
    """The DataValidationError a Beam worker raised, out of the exception Beam wraps it in.

    In-process runners keep it as a cause; remote ones only as text in the message.
    """
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, DataValidationError):
            return DataValidationError(str(cause))
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    marker = "DataValidationError"
    lines = [ln for ln in str(err).splitlines() if marker in ln]
    if lines:
        return DataValidationError(lines[-1].split(f"{marker}: ", 1)[-1].strip())
    return None
