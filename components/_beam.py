"""Beam options for the data components: which args apply, and a runner always named.

A data component runs on Beam when it is given ``beam_pipeline_args`` or the pipeline
sets them (``Pipeline(beam_pipeline_args=[...])``); otherwise it uses the in-process
engine. jfx always names the runner (DirectRunner unless the args say otherwise): left
unnamed, Beam may try to download its Prism runner, which fails without a network.
"""

from __future__ import annotations

import logging
from typing import Any

from jfx.pipelines._context import current_context

__all__ = ["resolve_beam_args", "beam_options", "DEFAULT_RUNNER_ARGS"]

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
