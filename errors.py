"""The jfx error hierarchy.

Every error jfx raises on purpose derives from :class:`JfxError`, so callers can
catch one type. Backend errors (SQLAlchemy, the file system) are translated at the
boundary with ``raise ... from err`` so the original stays in the traceback.
"""

from __future__ import annotations

__all__ = [
    "JfxError",
    "InvalidPipelineError",
    "PipelineFileError",
    "InvalidArgumentError",
    "NotFoundError",
    "ArtifactDeletedError",
    "AlreadyExistsError",
    "MetadataError",
    "ComponentError",
    "ComponentTimeoutError",
    "DataValidationError",
    "RunInterruptedError",
    "HaltPipeline",
]


class JfxError(Exception):
    """Base class of every error jfx raises on purpose."""


class InvalidPipelineError(JfxError):
    """A pipeline or component definition is wrong (wiring, types, ids, cycles)."""


class PipelineFileError(InvalidPipelineError):
    """A pipeline file (or a component's file) could not be loaded.

    Its code has a syntax error, or raised while it ran (an import that fails, a
    wrong wiring, any exception). The message starts ``file:line[:column]:`` at the
    user's code, and the original exception is chained (``__cause__``).

    Attributes:
        path: The file that failed (for a syntax error, the file with the error).
        line: Its line number, or ``None`` when no line of it ran.
        column: The column of a syntax error, else ``None``.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message)
        self.path, self.line, self.column = path, line, column


class InvalidArgumentError(JfxError, ValueError):
    """A value given to jfx (a parameter, a URL, a CLI flag) is not acceptable."""


class NotFoundError(JfxError, LookupError):
    """A requested record (artifact, execution, context, run) does not exist."""


class ArtifactDeletedError(NotFoundError):
    """An artifact was deleted by ``jfx gc``: its record stays, its files are gone."""


class AlreadyExistsError(JfxError):
    """A record with the same unique name already exists."""


class MetadataError(JfxError):
    """The metadata store could not complete an operation (after retries)."""


class ComponentError(JfxError):
    """A component's own code raised; the node's execution is marked FAILED."""


class ComponentTimeoutError(ComponentError, TimeoutError):
    """A component ran longer than its node's ``with_timeout`` allows."""


class DataValidationError(JfxError):
    """Data does not match what was expected (schema, expectations, file format)."""


class RunInterruptedError(JfxError):
    """A run was interrupted (Ctrl-C or a signal) and its running nodes cancelled."""


class HaltPipeline(JfxError):  # noqa: N818 - a signal to stop, not an error; public name
    """Raised by a component, after writing its outputs, to stop what depends on it.

    Unlike any other exception, the outputs are published and the execution is
    recorded COMPLETE (with the reason); the nodes downstream of it are skipped and
    the run ends FAILED. ExampleValidator raises it when it finds anomalies
    (``halt_on_anomalies=True``). The message is shown to the user as the reason.
    """


def unknown_keys_message(what: str, unknown: list[str], known: list[str] | tuple[str, ...]) -> str:
    """``"<what> has unknown key(s) [...] (did you mean ...?); known keys: [...]"``.

    Example:
        >>> unknown_keys_message("eval_config", ["slicing_spec"], ["label_key", "slicing_specs"])
        "eval_config has unknown key(s) ['slicing_spec'] (did you mean 'slicing_specs'?); known keys: ['label_key', 'slicing_specs']"
    """
    import difflib

    hints = [repr(m[0]) for u in unknown if (m := difflib.get_close_matches(u, list(known), n=1))]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return f"{what} has unknown key(s) {sorted(unknown)}{hint}; known keys: {list(known)}"
