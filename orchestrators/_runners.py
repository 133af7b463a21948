"""The runners by name: what ``jfx run --runner NAME`` looks up.

Each entry makes a :class:`~jfx.orchestrators._run.Runner` from one typed
:class:`RunnerOptions`, so the command line passes values, never its parsed arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jfx.errors import InvalidArgumentError
from jfx.orchestrators._run import Runner

__all__ = ["RUNNER_NAMES", "RunnerOptions", "make_runner"]


@dataclass(frozen=True)
class RunnerOptions:
    """What a runner is made with (each runner uses the options that apply to it).

    Attributes:
        metadata_url: overrides the pipeline's metadata URL.
        pipeline_root: overrides the pipeline's root for new runs.
        progress: ``"auto"``, ``"rich"``, ``"log"`` or ``False``.
        max_workers: nodes run at once (local runner; default: the CPU count).
        executor: ``"thread"`` or ``"process"`` (local runner).
        beam_args: Beam options: the DAG's and the data components' on the beam
            runner; only the data components' on the others (``None``: none given).
    """

    metadata_url: str | None = None
    pipeline_root: str | None = None
    progress: Any = "auto"
    max_workers: int | None = None
    executor: str = "thread"
    beam_args: tuple[str, ...] | None = None


def _local(options: RunnerOptions) -> Runner:
    from jfx.orchestrators._local import LocalDagRunner

    return LocalDagRunner(options.max_workers, executor=options.executor, metadata_url=options.metadata_url,
                          pipeline_root=options.pipeline_root, progress=options.progress)


def _beam(options: RunnerOptions) -> Runner:
    # imports Apache Beam (about a second): only when this runner is chosen
    from jfx.orchestrators._beam_runner import BeamDagRunner

    return BeamDagRunner(list(options.beam_args or ()), metadata_url=options.metadata_url,
                         pipeline_root=options.pipeline_root, progress=options.progress)


def _kfp_local(options: RunnerOptions) -> Runner:
    from jfx.orchestrators._kfp_cli import KfpLocalRunner

    return KfpLocalRunner(metadata_url=options.metadata_url, pipeline_root=options.pipeline_root)


# name -> (factory, whether the runner takes the Beam args itself)
_RUNNERS: dict[str, tuple[Callable[[RunnerOptions], Runner], bool]] = {
    "local": (_local, False),
    "beam": (_beam, True),
    "kfp-local": (_kfp_local, False),
}
RUNNER_NAMES = tuple(_RUNNERS)


def make_runner(name: str, options: RunnerOptions | None = None) -> tuple[Runner, bool]:
    """The runner called ``name``, made with ``options``.

    Returns:
        The runner, and whether it applies ``options.beam_args`` itself (else the
        caller sets them on the pipeline, for its data components).

    Raises:
        InvalidArgumentError: no runner has this name.

    Example:
        >>> runner, _ = make_runner("local", RunnerOptions(progress=False))
        >>> type(runner).__name__
        'LocalDagRunner'
    """
    if name not in _RUNNERS:
        raise InvalidArgumentError(f"no runner {name!r}; choose one of {', '.join(RUNNER_NAMES)}")
    factory, takes_beam_args = _RUNNERS[name]
    return factory(options or RunnerOptions()), takes_beam_args
