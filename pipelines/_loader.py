"""Load a pipeline from a Python file (what ``jfx run FILE`` does)."""

from __future__ import annotations

from pathlib import Path

from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.pipelines._file_errors import file_error
from jfx.pipelines._ir import load_module_from_file
from jfx.pipelines._pipeline import Pipeline

__all__ = ["load_pipeline"]


def load_pipeline(path: str | Path) -> Pipeline:
    """Import ``path`` and return the pipeline it defines.

    The file defines either a module-level ``pipeline`` (a :class:`Pipeline`) or a
    ``create_pipeline()`` function that returns one. Code under
    ``if __name__ == "__main__":`` does not run. The file is executed afresh on every
    call, so an edited component takes effect (and misses the cache).

    Raises:
        InvalidArgumentError: No such file, or not a ``.py`` file.
        PipelineFileError: The file (or ``create_pipeline()``) has a syntax error or
            raised; the message names the user's file and line, the error is chained.
        InvalidPipelineError: The file defines no pipeline.
    """
    path = Path(path)
    if path.suffix != ".py":
        raise InvalidArgumentError(f"{path}: a pipeline file is a Python file (.py)")
    module = load_module_from_file(path, reload=True)
    candidate = getattr(module, "pipeline", None)
    if candidate is None and callable(getattr(module, "create_pipeline", None)):
        try:
            candidate = module.create_pipeline()
        except Exception as err:  # the user's code, told at its line as an error while importing is
            raise file_error(path, err) from err
    if candidate is None:
        raise InvalidPipelineError(
            f"{path}: defines neither `pipeline` nor `create_pipeline()`; add e.g. "
            "`pipeline = Pipeline('name', components=[...])`"
        )
    if not isinstance(candidate, Pipeline):
        raise InvalidPipelineError(f"{path}: `pipeline` is a {type(candidate).__name__}, not a jfx.Pipeline")
    return candidate
