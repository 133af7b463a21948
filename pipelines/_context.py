"""What a running component may ask about the execution it is part of."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExecutionContext", "check_cancelled", "current_context"]


@dataclass(frozen=True)
class ExecutionContext:
    """The run, node and settings of the component now running (see :func:`current_context`).

    Attributes:
        beam_pipeline_args: the pipeline's ``beam_pipeline_args`` (``None``: the data
            components use their in-process engine).
        metadata_url: the metadata store's URL (any password masked), for links to it.
        upstream_states: for an ``ExitHandler``'s node, each upstream node's state in
            this run (``complete``, ``cached``, ``failed``, ``skipped``, ...); else ``None``.
        upstream_reasons: for an ``ExitHandler``'s node, why each upstream node that did
            not simply succeed ended as it did: a failed node's one-line error, a skipped
            node's reason, a halting node's report (``halted: ...``); else ``None``.
        cancel: set when the run is cancelled (Ctrl-C) while the component runs on a
            node thread; :meth:`check_cancelled` reads it.
    """

    pipeline_name: str
    run_id: str
    node_id: str
    execution_id: int
    pipeline_root: str
    beam_pipeline_args: tuple[str, ...] | None = None
    metadata_url: str = ""
    upstream_states: dict[str, str] | None = None
    on_temporary: Callable[[str | Path], None] | None = field(default=None, repr=False, compare=False)
    upstream_reasons: dict[str, str] | None = None
    cancel: threading.Event | None = field(default=None, repr=False, compare=False)

    def check_cancelled(self) -> None:
        """Raise ``KeyboardInterrupt`` if the run was cancelled since the component started.

        Ctrl-C reaches the runner's main thread, not the node's thread that runs the
        component: a long component calls this between pieces of its work (ExampleGen
        does per block), so that it stops there, its staging output is removed after it
        stopped writing, and the run ends within a few seconds.
        """
        if self.cancel is not None and self.cancel.is_set():
            raise KeyboardInterrupt("run cancelled")

    def register_temporary(self, path: str | Path) -> None:
        """Say, before making it, that ``path`` (outside the outputs) is this execution's scratch.

        The component still removes it itself; but if its process is killed first, the
        next start of any run on this metadata store removes it. Register only a path
        no one else creates (give it a random part). It may be an object-store URI
        (``s3://...``), whose prefix is then removed. Nothing happens outside a runner.

        Example:
            >>> tmp = Path("/srv/models/taxi") / f".tmp-push-{uuid.uuid4().hex}"   # doctest: +SKIP
            >>> current_context().register_temporary(tmp); shutil.copytree(model.uri, tmp)  # doctest: +SKIP
        """
        if self.on_temporary is not None:
            self.on_temporary(path)


_CURRENT: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar("jfx_execution", default=None)


def current_context() -> ExecutionContext | None:
    """The context of the component running in this thread, or ``None`` outside a run.

    Example:
        >>> current_context() is None   # not inside a component
        True
    """
    return _CURRENT.get()


def check_cancelled() -> None:
    """:meth:`ExecutionContext.check_cancelled` of the running component (nothing outside a run).

    Example:
        >>> check_cancelled()   # not inside a component: never cancelled
    """
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.check_cancelled()


def set_context(ctx: ExecutionContext | None) -> contextvars.Token[ExecutionContext | None]:
    return _CURRENT.set(ctx)


def reset_context(token: contextvars.Token[ExecutionContext | None]) -> None:
    _CURRENT.reset(token)
