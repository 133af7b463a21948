"""Pins the public surface of jfx.pipelines so an accidental change shows up.
"""

from __future__ import annotations

import jfx.pipelines

EXPECTED = {
    "Channel", "Collected", "Component", "ComponentRef", "ComponentSpec", "ExecutionContext", "ExitHandler",
    "ForEach", "IR_VERSION", "If", "Input", "InputSpec", "Node", "NodeIR", "NodeOptions", "Output",
    "OutputSpec", "Parameter", "ParameterSpec", "Pipeline", "PipelineIR", "RuntimeParameter", "component",
    "current_context", "load_component", "load_module_from_file", "load_pipeline", "resolver",
}


def test_public_api_is_pinned():
    assert set(jfx.pipelines.__all__) == EXPECTED
    assert len(jfx.pipelines.__all__) == len(EXPECTED), "a name is listed twice"


def test_every_public_name_resolves_and_star_import_gives_exactly_them():
    for name in EXPECTED:
        assert getattr(jfx.pipelines, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from jfx.pipelines import *", namespace)  # noqa: S102 - what a user's star import sees
    assert set(namespace) - {"__builtins__"} == EXPECTED
