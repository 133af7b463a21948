"""jfx: declarative ML pipelines in Python with a compiled JAX core.

Define components as typed functions, wire them into a :class:`Pipeline`, and run it
with :class:`jfx.orchestrators.LocalDagRunner` or ``jfx run pipeline.py``. Every
execution and artifact is recorded, with lineage, in the metadata store
(:mod:`jfx.metadata`).

Example:
    >>> import jfx
    >>> from jfx.types import Dataset
    >>> @jfx.component
    ... def make(data: jfx.Output[Dataset], rows: jfx.Parameter[int] = 3):
    ...     data.write_json(list(range(rows)))
    >>> jfx.Pipeline("demo", components=[make(rows=5)]).to_ir()["nodes"][0]["parameters"]
    {'rows': {'value': 5}}
"""

import sys as _sys

from jfx import errors
from jfx._version import __version__
from jfx.pipelines import (
    Channel,
    Collected,
    Component,
    ExitHandler,
    ForEach,
    If,
    Input,
    Node,
    Output,
    Parameter,
    Pipeline,
    RuntimeParameter,
    check_cancelled,
    component,
    current_context,
)
from jfx.pipelines import _artifacts as types

# `jfx.types` is the artifact-type module. It lives in pipelines/ because a root
# module named `types.py` would shadow the standard library's `types` for any
# process started in the repository root.
_sys.modules[__name__ + ".types"] = types

__all__ = [
    "Channel",
    "Collected",
    "Component",
    "ExitHandler",
    "ForEach",
    "If",
    "Input",
    "Node",
    "Output",
    "Parameter",
    "Pipeline",
    "RuntimeParameter",
    "__version__",
    "check_cancelled",
    "component",
    "current_context",
    "errors",
    "types",
]
