"""``Pipeline``: a checked DAG of nodes that compiles to the IR.

Example:
    >>> from jfx import Pipeline, component, Output
    >>> from jfx.types import Dataset
    >>> @component
    ... def make(data: Output[Dataset]):
    ...     data.write_json([1, 2, 3])
    >>> p = Pipeline("demo", components=[make()])
    >>> [n["id"] for n in p.to_ir()["nodes"]]
    ['make']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jfx import _storage as storage
from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.pipelines._component import (
    Collected,
    Component,
    InputSpec,
    Node,
    RuntimeParameter,
    check_parameter_value,
    check_wiring,
    input_channels,
    parameter_type_name,
)
from jfx.pipelines._control import LoopItem
from jfx.pipelines._expand import expand_loops
from jfx.pipelines._ir import ComponentRef, InputIR, NodeIR, OutputIR, ParamIR, PipelineIR, RuntimeParamIR

__all__ = ["Pipeline"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class Pipeline:
    """A named DAG of component nodes, checked when it is built.

    Args:
        name: the pipeline's name (letters, digits, ``_ - .``); it names the output
            folder and groups runs in the metadata store.
        components: the nodes, in any order; the DAG comes from their wiring.
        pipeline_root: where outputs are written (default ``$JFX_HOME/artifacts``).
        metadata_url: the metadata database URL (default ``$JFX_METADATA_URL``, else
            ``sqlite:///$JFX_HOME/metadata.sqlite``).
        enable_cache: reuse outputs of an identical earlier execution.
        parameters: values for the pipeline's runtime parameters, overriding their
            defaults (``jfx run --param`` overrides these in turn).
        beam_pipeline_args: run the data components' work on Apache Beam with these
            options (e.g. ``["--runner=DirectRunner"]``); ``None`` uses their in-process
            engine. A component's own ``beam_pipeline_args`` parameter takes precedence.

    Raises:
        InvalidPipelineError: a cycle, a type mismatch, an unwired required input,
            duplicate node ids, or a channel from a node that is not in the pipeline.
            The message names the node and the input.
    """

    def __init__(
        self,
        name: str,
        components: list[Node],
        pipeline_root: str | Path | None = None,
        metadata_url: str | None = None,
        enable_cache: bool = True,
        parameters: dict[str, Any] | None = None,
        beam_pipeline_args: list[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InvalidPipelineError(
                f"pipeline name {name!r} is not valid: use letters, digits, '_', '-', '.' (at most 128)"
            )
        self.name = name
        # an unknown scheme (``gcs3://``) is an error here, never a local folder named after it
        self.pipeline_root = storage.check_uri(pipeline_root) if pipeline_root is not None else None
        self.metadata_url = metadata_url
        self.enable_cache = bool(enable_cache)
        if beam_pipeline_args is not None and not (
            isinstance(beam_pipeline_args, (list, tuple)) and all(isinstance(a, str) for a in beam_pipeline_args)
        ):
            raise InvalidPipelineError(
                f"pipeline {name!r}: beam_pipeline_args must be a list of strings, e.g. ['--runner=DirectRunner']"
            )
        self.beam_pipeline_args = list(beam_pipeline_args) if beam_pipeline_args is not None else None
        self.components = list(components)
        self._check_items()
        self.components = expand_loops(self.components)
        self._check_nodes()
        self.nodes = self._topological_order()
        self.runtime_parameters = self._collect_runtime_parameters(parameters or {})

    def _check_items(self) -> None:
        for item in self.components:
            if isinstance(item, Component):
                raise InvalidPipelineError(
                    f"pipeline {self.name!r}: components=[...] got the component {item.name} itself; "
                    f"call it to make a node: {item.name}(...)"
                )
            if not isinstance(item, Node):
                raise InvalidPipelineError(
                    f"pipeline {self.name!r}: components=[...] takes nodes made by calling components, got {item!r}"
                )

    def _check_nodes(self) -> None:
        by_id: dict[str, Node] = {}
        for item in self.components:
            if item.id in by_id:
                other = by_id[item.id]
                if other is item:
                    raise InvalidPipelineError(f"pipeline {self.name!r}: node {item.id!r} is listed twice")
                raise InvalidPipelineError(
                    f"pipeline {self.name!r}: two nodes have the id {item.id!r} (components "
                    f"{other.component.name} and {item.component.name}); give one its own id with "
                    f".with_id('{item.id}_2')"
                )
            by_id[item.id] = item
        members = {id(n) for n in self.components}
        for node in self.components:
            self._check_parameters(node)
            for iname, ispec in node.component.spec.inputs.items():
                value = node.inputs.get(iname)
                check_wiring(node, iname, ispec, value)
                for channel in input_channels(value):
                    if id(channel.producer) not in members:
                        raise InvalidPipelineError(
                            f"node {node.id!r} input {iname!r} is wired to {channel.producer.id}.outputs"
                            f"[{channel.key!r}], but node {channel.producer.id!r} is not in pipeline "
                            f"{self.name!r}; add it to components=[...]"
                        )
            for up in node.condition_nodes:
                if id(up) not in members:
                    raise InvalidPipelineError(
                        f"node {node.id!r} has a jfx.If condition on an output of {up.id!r}, which is not in "
                        f"pipeline {self.name!r}; add it to components=[...]"
                    )
            for up in node.upstream_nodes:
                if id(up) not in members:
                    raise InvalidPipelineError(
                        f"node {node.id!r} runs .after({up.id!r}), but {up.id!r} is not in pipeline {self.name!r}"
                    )

    def _check_parameters(self, node: Node) -> None:
        """Run the component's parameter checks (``@component(checks=...)``) on the values given."""
        for pname, check in node.component.checks.items():
            value = node.parameters.get(pname)
            if value is None or isinstance(value, RuntimeParameter):
                continue
            try:
                check(value)
            except (InvalidArgumentError, ValueError, TypeError) as err:
                raise InvalidPipelineError(f"pipeline {self.name!r}: node {node.id!r} parameter {pname!r}: {err}") from None

    def _topological_order(self) -> list[Node]:
        # Depth-first search; a back edge is a cycle, reported as the path around it.
        order: list[Node] = []
        state: dict[int, int] = {}  # 1 = on the current path, 2 = done
        path: list[Node] = []

        def visit(node: Node) -> None:
            state[id(node)] = 1
            path.append(node)
            for dep in node.dependencies():
                s = state.get(id(dep))
                if s == 1:
                    cycle = [*path[path.index(dep):], dep]
                    raise InvalidPipelineError(
                        f"pipeline {self.name!r} has a cycle: {' -> '.join(n.id for n in reversed(cycle))}; "
                        "a node cannot depend on its own output"
                    )
                if s is None:
                    visit(dep)
            path.pop()
            state[id(node)] = 2
            order.append(node)

        for node in self.components:
            if id(node) not in state:
                visit(node)
        return order

    def _collect_runtime_parameters(self, values: dict[str, Any]) -> dict[str, RuntimeParameter]:
        found: dict[str, RuntimeParameter] = {}
        for node in self.nodes:
            in_conditions = [p for cond in node.conditions for p in cond.params]
            for value in [*node.parameters.values(), *in_conditions]:
                if isinstance(value, RuntimeParameter):
                    seen = found.setdefault(value.name, value)
                    if seen != value:
                        raise InvalidPipelineError(
                            f"runtime parameter {value.name!r} is declared twice with different "
                            f"type or default ({seen} vs {value}); declare it once and reuse it"
                        )
        unknown = set(values) - set(found)
        if unknown:
            raise InvalidPipelineError(
                f"pipeline {self.name!r}: parameters={{...}} names {', '.join(sorted(unknown))}, which no "
                f"node uses; runtime parameters: {', '.join(found) or '(none)'}"
            )
        for name, value in values.items():
            rp = found[name]
            found[name] = RuntimeParameter(
                name, rp.type, check_parameter_value(value, rp.type, f"pipeline parameter {name!r}")
            )
        return found

    def to_ir(self) -> dict[str, Any]:
        """The IR document (a JSON-serialisable dict) every orchestrator consumes."""
        return self.compile().to_dict()

    def compile(self) -> PipelineIR:
        """The IR as frozen dataclasses (what :meth:`from_ir` returns for a document)."""
        nodes = []
        for node in self.nodes:
            spec = node.component.spec
            nodes.append(
                NodeIR(
                    id=node.id,
                    component=ComponentRef.of(node.component),
                    parameters={k: _param_ir(node, k, v) for k, v in node.parameters.items()},
                    inputs={k: _input_ir(spec.inputs[k], ch) for k, ch in node.inputs.items()},
                    outputs={k: OutputIR(ch.type.TYPE_NAME, ch.type.type_path()) for k, ch in node.outputs.items()},
                    upstream=tuple(dep.id for dep in node.dependencies()),
                    options=node.options,
                    condition=_condition_ir(node),
                    trigger=node.trigger,
                    loop=node.loop.source_ir() if node.loop is not None else None,
                )
            )
        params = {
            k: RuntimeParamIR(k, parameter_type_name(rp.type), rp.default, rp.default is None)
            for k, rp in self.runtime_parameters.items()
        }
        beam = tuple(self.beam_pipeline_args) if self.beam_pipeline_args is not None else None
        return PipelineIR(self.name, self.pipeline_root, self.metadata_url, self.enable_cache, params, tuple(nodes),
                          beam)

    @staticmethod
    def from_ir(doc: dict[str, Any]) -> PipelineIR:
        """Rebuild what a runner needs from an IR document (see :class:`PipelineIR`)."""
        return PipelineIR.from_dict(doc)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, nodes={[n.id for n in self.nodes]})"


def _param_ir(node: Node, name: str, value: Any) -> ParamIR:
    if isinstance(value, RuntimeParameter):
        return ParamIR(runtime=value.name)
    if isinstance(value, LoopItem):  # a dynamic ForEach's item: a static one was replaced when expanded
        return ParamIR(item=value.path, type=parameter_type_name(node.component.spec.parameters[name].type))
    return ParamIR(value=value)


def _input_ir(spec: InputSpec, value: Any) -> InputIR | None:
    if value is None:
        return None
    if isinstance(value, Collected):  # of a dynamic ForEach's template: its copies are known at run time
        ch = value.channel
        return InputIR(ch.producer.id, ch.key, spec.type.TYPE_NAME, spec.optional, collected=True)
    if spec.many:
        sources = tuple((ch.producer.id, ch.key) for ch in input_channels(value))
        return InputIR(sources[0][0], sources[0][1], spec.type.TYPE_NAME, spec.optional, sources=sources)
    return InputIR(value.producer.id, value.key, spec.type.TYPE_NAME, spec.optional)


def _condition_ir(node: Node) -> dict[str, Any] | None:
    """The node's condition: the AND of the jfx.If blocks it was made in."""
    if not node.conditions:
        return None
    if len(node.conditions) == 1:
        return node.conditions[0].to_ir()
    return {"op": "and", "args": [c.to_ir() for c in node.conditions]}
