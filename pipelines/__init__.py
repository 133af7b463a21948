"""The pipeline DSL: artifact types, ``@component``, ``Pipeline`` and the IR."""

from jfx.pipelines._component import (
    Channel,
    Collected,
    Component,
    ComponentSpec,
    ExitHandler,
    Input,
    InputSpec,
    Node,
    NodeOptions,
    Output,
    OutputSpec,
    Parameter,
    ParameterSpec,
    RuntimeParameter,
    component,
    resolver,
)
from jfx.pipelines._control import ForEach, If
from jfx.pipelines._context import ExecutionContext, check_cancelled, current_context
from jfx.pipelines._ir import (
    IR_VERSION,
    ComponentRef,
    NodeIR,
    PipelineIR,
    load_component,
    load_module_from_file,
)
from jfx.pipelines._loader import load_pipeline
from jfx.pipelines._pipeline import Pipeline

__all__ = [
    "Channel",
    "Collected",
    "Component",
    "ComponentRef",
    "ComponentSpec",
    "ExecutionContext",
    "ExitHandler",
    "ForEach",
    "IR_VERSION",
    "If",
    "Input",
    "InputSpec",
    "Node",
    "NodeOptions",
    "NodeIR",
    "Output",
    "OutputSpec",
    "Parameter",
    "ParameterSpec",
    "Pipeline",
    "PipelineIR",
    "RuntimeParameter",
    "check_cancelled",
    "component",
    "current_context",
    "load_component",
    "load_module_from_file",
    "load_pipeline",
    "resolver",
]
