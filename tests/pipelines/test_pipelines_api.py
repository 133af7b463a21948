"""Pins the public surface of jfx.pipelines so an accidental change shows up.
"""

from __future__ import annotations

from jfx_api import assert_public_surface

import jfx.pipelines

EXPECTED = {
    "Channel", "Collected", "Component", "ComponentRef", "ComponentSpec", "ExecutionContext", "ExitHandler",
    "ForEach", "IR_VERSION", "If", "Input", "InputSpec", "Node", "NodeIR", "NodeOptions", "Output",
    "OutputSpec", "Parameter", "ParameterSpec", "Pipeline", "PipelineIR", "RuntimeParameter", "component",
    "current_context", "load_component", "load_module_from_file", "load_pipeline", "resolver", "check_cancelled"
}


def test_public_api_is_pinned_and_every_name_resolves():
    assert_public_surface(jfx.pipelines, EXPECTED)
