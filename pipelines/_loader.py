"""Load a pipeline from a Python file (what ``jfx run FILE`` does)."""

from __future__ import annotations

from pathlib import Path

from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.pipelines._ir import load_module_from_file
from jfx.pipelines._pipeline import Pipeline

__all__ = ["load_pipeline"]


def load_pipeline(path: str | Path) -> Pipeline:
    """Import ``path`` and return the pipeline it defines.

    The file defines either a module-level ``pipeline`` (a :class:`Pipeline`) or a
    ``create_pipeline()`` function that returns one. Code under
    ``if __name__ == "__main__":`` does not run. The file is executed afresh on every
    call, so an edited component takes effect (and misses the cache).
    """
    path = Path(path)
    if path.suffix != ".py":
        raise InvalidArgumentError(f"{path}: a pipeline file is a Python file (.py)")
    module = load_module_from_file(path, reload=True)
    candidate = getattr(module, "pipeline", None)
    if candidate is None and callable(getattr(module, "create_pipeline", None)):
        candidate = module.create_pipeline()
    if candidate is None:
        raise InvalidPipelineError(
            f"{path}: defines neither `pipeline` nor `create_pipeline()`; add e.g. "
            "`pipeline = Pipeline('name', components=[...])`"
        )
    if not isinstance(candidate, Pipeline):
        raise InvalidPipelineError(f"{path}: `pipeline` is a {type(candidate).__name__}, not a jfx.Pipeline")
    return candidate
