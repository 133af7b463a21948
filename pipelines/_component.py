"""``@component``: a typed Python function becomes a pipeline component.

The function's signature is the whole spec. Each argument is annotated as one of:

* ``Input[T]`` — an artifact of type ``T`` produced upstream (``Optional[Input[T]]``
  or a ``None`` default makes it optional);
* ``Output[T]`` — an artifact this component writes (into ``artifact.uri``);
* ``Parameter[int | float | str | bool | dict | list]`` — a JSON value, defaults
  allowed. A bare ``int``/``float``/``str``/``bool``/``dict``/``list`` annotation
  means the same.

Calling the decorated function with keyword arguments does not run it: it creates
a :class:`Node` in a pipeline graph, whose ``outputs`` are typed :class:`Channel`\\ s.
The plain function stays reachable as ``component.fn`` for unit tests.

Example:
    >>> from jfx import component, Input, Output, Parameter
    >>> from jfx.types import Dataset, Metrics
    >>> @component
    ... def count_rows(table: Input[Dataset], report: Output[Metrics], limit: Parameter[int] = 10):
    ...     report.write_json({"limit": limit})
    >>> sorted(count_rows.spec.inputs), sorted(count_rows.spec.outputs), sorted(count_rows.spec.parameters)
    (['table'], ['report'], ['limit'])
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import types as _pytypes
import typing
from collections.abc import Iterator, Mapping
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, ParamSpec, TypeVar, Union, overload
from collections.abc import Callable

from jfx._version import __version__
from jfx.errors import InvalidPipelineError
from jfx.pipelines._artifacts import Artifact
from jfx.pipelines._control import Block, ForEach, LoopItem, OutputValue, ParameterRef, Predicate, register_node

__all__ = [
    "Input",
    "Output",
    "Parameter",
    "RuntimeParameter",
    "component",
    "resolver",
    "Component",
    "ComponentSpec",
    "InputSpec",
    "OutputSpec",
    "ParameterSpec",
    "Node",
    "NodeOptions",
    "Channel",
]

PARAMETER_TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "dict": dict,
    "list": list,
}
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class _Role:
    kind: str  # "input" | "output" | "parameter"


_INPUT, _OUTPUT, _PARAMETER = _Role("input"), _Role("output"), _Role("parameter")


def _artifact_class(kind: str, t: Any) -> type[Artifact]:
    if not (isinstance(t, type) and issubclass(t, Artifact)):
        raise TypeError(
            f"{kind}[...] takes an artifact type (a subclass of jfx.types.Artifact), got {t!r}. "
            f"Right: {kind}[Examples]. For a plain value use Parameter[int] (or str, float, ...)."
        )
    return t


if TYPE_CHECKING:
    # What a type checker sees: ``Input[Examples]`` is an ``Examples`` inside the function,
    # ``Parameter[int]`` an ``int``. At run time the classes below build the annotations.
    _T = TypeVar("_T")
    Input = Annotated[_T, "input"]
    Output = Annotated[_T, "output"]
    Parameter = Annotated[_T, "parameter"]
else:

    class Input:
        """``Input[T]``: an artifact of type ``T`` read by the component.

        ``Input[list[T]]`` takes several artifacts: the outputs of every copy of a
        :class:`jfx.ForEach` node, wired with ``jfx.Collected(node.outputs["x"])``.
        """

        def __class_getitem__(cls, t: Any) -> Any:
            if typing.get_origin(t) is list and len(typing.get_args(t)) == 1:
                return Annotated[list[_artifact_class("Input", typing.get_args(t)[0])], _INPUT]  # type: ignore[misc]
            return Annotated[_artifact_class("Input", t), _INPUT]


    class Output:
        """``Output[T]``: an artifact of type ``T`` written by the component."""

        def __class_getitem__(cls, t: Any) -> Any:
            return Annotated[_artifact_class("Output", t), _OUTPUT]


    class Parameter:
        """``Parameter[T]``: a JSON value (int, float, str, bool, dict or list)."""

        def __class_getitem__(cls, t: Any) -> Any:
            return Annotated[_parameter_type(t, "Parameter[...]"), _PARAMETER]


def _parameter_type(t: Any, where: str) -> type:
    base = typing.get_origin(t) or t
    if base in PARAMETER_TYPES.values():
        return base
    raise TypeError(
        f"{where} takes one of int, float, str, bool, dict, list; got {t!r}. "
        "Artifacts are passed with Input[T] / Output[T]."
    )


def parameter_type_name(t: type) -> str:
    return next(name for name, k in PARAMETER_TYPES.items() if k is t)


def check_parameter_value(value: Any, t: type, where: str) -> Any:
    """Validate (and lightly coerce: int → float) a parameter value; return it."""
    if value is None:
        return None
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = isinstance(value, t) and not (t is int and isinstance(value, bool))
    if not ok:
        raise InvalidPipelineError(
            f"{where} expects {t.__name__}, got {type(value).__name__} {value!r}"
        )
    if t in (dict, list):
        try:
            json.dumps(value)
        except (TypeError, ValueError) as err:
            raise InvalidPipelineError(f"{where} must be JSON-serialisable: {err}") from err
    return value


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: type[Artifact]
    optional: bool = False
    many: bool = False  # Input[list[T]]: a list of artifacts
    description: str = ""  # from the docstring's Args: section


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: type[Artifact]
    description: str = ""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: type
    default: Any = None
    has_default: bool = False
    description: str = ""


@dataclass(frozen=True)
class ComponentSpec:
    """What a component reads, writes and takes, derived from its signature.

    ``description`` is the docstring's summary (its first paragraph); each input, output
    and parameter carries its ``Args:`` entry, as kfp's components do.
    """

    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    parameters: dict[str, ParameterSpec]
    description: str = ""


# "name: text", "name (type): text", or "a, b: text" for arguments documented together
_ARG_LINE = re.compile(r"^(\s*)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Yields|Raises|Example|Examples|Note|Notes|Attributes)\s*:\s*$")


def docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's summary (first paragraph) and its ``Args:`` entries.

    Example:
        >>> summary, args = docstring_parts('''Scale a column.
        ...
        ...     Args:
        ...         data: the rows to read; one
        ...             Parquet file per split.
        ...         factor (float): what to multiply by.
        ...     ''')
        >>> summary, args["data"], args["factor"]
        ('Scale a column.', 'the rows to read; one Parquet file per split.', 'what to multiply by.')
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary_lines.append(line.strip())
    args: dict[str, str] = {}
    in_args, indent = False, None
    current: list[str] | None = None
    for line in lines:
        section = _SECTION.match(line)
        if section:
            in_args, indent, current = section.group(1) in ("Args", "Arguments", "Parameters"), None, None
            continue
        if not in_args or not line.strip():
            continue
        match = _ARG_LINE.match(line)
        depth = len(line) - len(line.lstrip())
        if match and (indent is None or depth == indent):
            indent, current = depth, [n.strip().lstrip("*") for n in match.group(2).split(",")]
            for n in current:
                args[n] = match.group(3).strip()
        elif current is not None and indent is not None and depth > indent:
            for n in current:
                args[n] = f"{args[n]} {line.strip()}".strip()
        elif indent is not None and depth < indent:
            in_args = False  # the section ended
    return " ".join(summary_lines), args


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin is Union or origin is _pytypes.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _spec_from_signature(fn: Callable[..., Any], name: str, skip_first: bool = False) -> ComponentSpec:
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as err:  # a NameError in a string annotation, typically
        raise InvalidPipelineError(f"component {name}: cannot resolve annotations: {err}") from err
    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, OutputSpec] = {}
    params: dict[str, ParameterSpec] = {}
    summary, docs = docstring_parts(fn.__doc__)
    arguments = list(inspect.signature(fn).parameters.values())
    for arg in arguments[1:] if skip_first else arguments:
        where = f"component {name}, argument {arg.name!r}"
        if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD, arg.POSITIONAL_ONLY):
            raise InvalidPipelineError(f"{where}: *args, **kwargs and positional-only arguments are not supported")
        if arg.name not in hints:
            raise InvalidPipelineError(
                f"{where} has no annotation; annotate it as Input[T], Output[T] or Parameter[T]"
            )
        hint, optional = _unwrap_optional(hints[arg.name])
        has_default = arg.default is not inspect.Parameter.empty
        role = _PARAMETER
        base = hint
        if typing.get_origin(hint) is Annotated:
            base, *meta = typing.get_args(hint)
            role = next((m for m in meta if isinstance(m, _Role)), _PARAMETER)
        if role is _INPUT:
            if has_default and arg.default is not None:
                raise InvalidPipelineError(f"{where}: an input's only allowed default is None")
            many = typing.get_origin(base) is list
            inputs[arg.name] = InputSpec(arg.name, typing.get_args(base)[0] if many else base,
                                         optional or has_default, many, docs.get(arg.name, ""))
        elif role is _OUTPUT:
            if optional or has_default:
                raise InvalidPipelineError(f"{where}: outputs cannot be optional or have a default")
            outputs[arg.name] = OutputSpec(arg.name, base, docs.get(arg.name, ""))
        else:
            try:
                ptype = _parameter_type(base, where)
            except TypeError as err:
                raise InvalidPipelineError(str(err)) from None
            default = arg.default if has_default else None
            if has_default:
                check_parameter_value(default, ptype, f"{where} default")
            params[arg.name] = ParameterSpec(arg.name, ptype, default, has_default or optional,
                                             docs.get(arg.name, ""))
    return ComponentSpec(inputs, outputs, params, summary)


def _code_version(fn: Callable[..., Any]) -> str:
    """A hash of the function's source and the jfx version (the cache's code key)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # defined in a REPL or by exec: hash the bytecode
        code = fn.__code__
        source = repr((code.co_code, code.co_consts, code.co_names))
    digest = hashlib.sha256(f"{__version__}\0{source}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True, eq=False)
class RuntimeParameter(ParameterRef):
    """A pipeline parameter whose value is chosen when the pipeline runs.

    Pass it as a component parameter; override it with ``jfx run ... --param name=value``.

    Example:
        >>> rows = RuntimeParameter("rows", int, default=100)
        >>> rows.name, rows.type.__name__, rows.default
        ('rows', 'int', 100)
    """

    name: str
    type: type = str
    default: Any = None  # None: the value must be given at run time

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.name):
            raise InvalidPipelineError(f"runtime parameter name {self.name!r} must be an identifier")
        if self.type not in PARAMETER_TYPES.values():
            raise InvalidPipelineError(
                f"runtime parameter {self.name!r}: type must be one of int, float, str, bool, dict, list"
            )
        if self.default is not None:
            object.__setattr__(
                self, "default",
                check_parameter_value(self.default, self.type, f"runtime parameter {self.name!r} default"),
            )

    # Comparing with a value builds a condition for ``jfx.If`` (``push == True``);
    # comparing two runtime parameters compares their declarations.
    def _key(self) -> tuple[Any, ...]:
        return (self.name, self.type, json.dumps(self.default, sort_keys=True))

    def __eq__(self, other: object) -> Any:
        if isinstance(other, RuntimeParameter):
            return self._key() == other._key()
        return Predicate.compare("==", self, other)

    def __ne__(self, other: object) -> Any:
        if isinstance(other, RuntimeParameter):
            return self._key() != other._key()
        return Predicate.compare("!=", self, other)

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True)
class NodeOptions:
    """How a node runs: caching, retries, timeout, and resources for schedulers."""

    cache: bool = True
    retries: int = 0
    backoff_s: float = 1.0
    timeout_s: float | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, "retries": self.retries, "backoff_s": self.backoff_s,
                "timeout_s": self.timeout_s, "resources": dict(self.resources)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> NodeOptions:
        doc = doc or {}
        return cls(bool(doc.get("cache", True)), int(doc.get("retries", 0)), float(doc.get("backoff_s", 1.0)),
                   doc.get("timeout_s"), dict(doc.get("resources") or {}))


class Channel:
    """A typed future: output ``key`` of node ``producer``, available once it ran.

    ``channel.<property>`` (e.g. ``evaluator.outputs["blessing"].blessed``) is that
    output artifact's property as a value for ``jfx.If`` conditions.
    """

    __slots__ = ("producer", "key", "type")

    def __init__(self, producer: Node, key: str, type: type[Artifact]) -> None:  # noqa: A002
        self.producer = producer
        self.key = key
        self.type = type

    def __getattr__(self, prop: str) -> OutputValue:
        if prop.startswith("_"):
            raise AttributeError(prop)
        return OutputValue(self, prop)

    def __repr__(self) -> str:
        return f"Channel({self.producer.id}.{self.key}: {self.type.TYPE_NAME})"


class _Outputs(Mapping[str, Channel]):
    """A node's output channels: ``node.outputs["data"]`` (or ``node.outputs.data``)."""

    def __init__(self, node: Node, channels: dict[str, Channel]) -> None:
        self._node = node
        self._channels = channels

    def __getitem__(self, key: str) -> Channel:
        try:
            return self._channels[key]
        except KeyError:
            raise KeyError(
                f"node {self._node.id!r} has no output {key!r}; its outputs are: "
                f"{', '.join(self._channels) or '(none)'}"
            ) from None

    def __getattr__(self, key: str) -> Channel:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError as err:
            raise AttributeError(err.args[0]) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)


class Node:
    """One use of a component in a pipeline: its parameters and wired inputs."""

    def __init__(self, component: Component, parameters: dict[str, Any], inputs: dict[str, Channel | None],
                 output_types: dict[str, type[Artifact]] | None = None) -> None:
        self.component = component
        self.id = component.name
        self.parameters = parameters
        self.inputs = inputs
        narrowed = output_types or {}
        self.outputs = _Outputs(
            self, {k: Channel(self, k, narrowed.get(k, s.type)) for k, s in component.spec.outputs.items()}
        )
        self.upstream_nodes: list[Node] = []
        self.options = NodeOptions()
        self.conditions: list[Predicate] = []  # from enclosing jfx.If blocks
        self.condition_nodes: list[Node] = []  # the nodes whose outputs those conditions read
        self.loop: ForEach | None = None  # the jfx.ForEach this node is a template of
        self.trigger = "all_success"  # "all_done" for an ExitHandler's node
        register_node(self)

    def with_id(self, node_id: str) -> Node:
        """Give this node an id of its own (default: the component's name)."""
        if not isinstance(node_id, str) or not _NODE_ID_RE.match(node_id):
            raise InvalidPipelineError(
                f"node id {node_id!r} is not valid: use letters, digits, '_', '-', '.', at most 128 characters"
            )
        self.id = node_id
        return self

    def with_cache(self, enabled: bool = True) -> Node:
        """``with_cache(False)``: always run this node, even when an identical execution exists."""
        self.options = dataclasses.replace(self.options, cache=bool(enabled))
        return self

    def with_retry(self, retries: int, backoff_s: float = 1.0) -> Node:
        """Run the component again up to ``retries`` times when it raises.

        Attempt ``k`` (from 1) waits ``backoff_s * 2**(k-1)`` seconds first. Each attempt is
        its own execution in the metadata store.
        """
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidPipelineError(f"node {self.id!r}: with_retry(retries) takes an int >= 0, got {retries!r}")
        if not isinstance(backoff_s, (int, float)) or backoff_s < 0:
            raise InvalidPipelineError(f"node {self.id!r}: with_retry(backoff_s) takes seconds >= 0, got {backoff_s!r}")
        self.options = dataclasses.replace(self.options, retries=retries, backoff_s=float(backoff_s))
        return self

    def with_timeout(self, seconds: float | None) -> Node:
        """Fail the node if its component runs longer than ``seconds`` (``None``: no limit).

        The execution is marked FAILED and nothing is published; on the local runner
        the component's thread is abandoned, not killed.
        """
        if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0):
            raise InvalidPipelineError(f"node {self.id!r}: with_timeout takes seconds > 0 or None, got {seconds!r}")
        self.options = dataclasses.replace(self.options, timeout_s=None if seconds is None else float(seconds))
        return self

    def with_resources(self, *, cpu: float | str | None = None, memory: str | None = None,
                       gpu: int | None = None, accelerator: str | None = None,
                       node_selector: dict[str, str] | None = None,
                       tolerations: list[dict[str, Any]] | None = None) -> Node:
        """What the node needs where a scheduler places it (Kubeflow): CPUs, memory ("4Gi"), GPUs.

        Args:
            cpu: CPU request and limit (``2``, ``"500m"``).
            memory: memory request and limit (``"4Gi"``).
            gpu: how many accelerators.
            accelerator: the accelerator's Kubernetes resource name for this node
                (``"nvidia.com/gpu"``, ``"amd.com/gpu"``); default: the compiler's.
            node_selector: node labels the pod must run on
                (``{"cloud.google.com/gke-accelerator": "nvidia-l4"}``).
            tolerations: taints the pod tolerates, as Kubernetes writes them
                (``[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]``).

        The local runner records them in the IR and does not enforce them.
        """
        where = f"node {self.id!r}: with_resources"
        if gpu is not None and (not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 0):
            raise InvalidPipelineError(f"{where}(gpu) takes an int >= 0, got {gpu!r}")
        if accelerator is not None and (not isinstance(accelerator, str) or not accelerator.strip()):
            raise InvalidPipelineError(f"{where}(accelerator) takes a resource name such as 'nvidia.com/gpu', "
                                       f"got {accelerator!r}")
        if node_selector is not None and not (isinstance(node_selector, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in node_selector.items())):
            raise InvalidPipelineError(f"{where}(node_selector) takes a dict of label → value strings, "
                                       f"got {node_selector!r}")
        allowed = {"key", "operator", "value", "effect", "toleration_seconds"}
        for t in tolerations or []:
            if not isinstance(t, dict) or set(t) - allowed:
                raise InvalidPipelineError(f"{where}(tolerations): each is a dict of {sorted(allowed)}, got {t!r}")
            if t.get("operator", "Equal") not in ("Equal", "Exists"):
                raise InvalidPipelineError(f"{where}(tolerations): operator is 'Equal' or 'Exists', got {t!r}")
            if t.get("effect") not in (None, "NoExecute", "NoSchedule", "PreferNoSchedule"):
                raise InvalidPipelineError(f"{where}(tolerations): effect is NoExecute, NoSchedule or "
                                           f"PreferNoSchedule, got {t!r}")
        resources = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("gpu", gpu), ("accelerator", accelerator),
                                       ("node_selector", dict(node_selector) if node_selector else None),
                                       ("tolerations", [dict(t) for t in tolerations] if tolerations else None))
                     if v is not None}
        self.options = dataclasses.replace(self.options, resources=resources)
        return self

    def after(self, *nodes: Node) -> Node:
        """Run this node only after ``nodes``, with no data passed between them."""
        for other in nodes:
            if not isinstance(other, Node):
                raise InvalidPipelineError(f"node {self.id!r}: .after() takes nodes, got {other!r}")
            self.upstream_nodes.append(other)
        return self

    def dependencies(self) -> list[Node]:
        """Every node this one waits for: its inputs' producers, the nodes its conditions
        read, then ``.after()`` nodes."""
        seen: dict[int, Node] = {}
        for value in self.inputs.values():
            for ch in input_channels(value):
                seen.setdefault(id(ch.producer), ch.producer)
        for n in self.condition_nodes:
            seen.setdefault(id(n), n)
        for n in self.upstream_nodes:
            seen.setdefault(id(n), n)
        return list(seen.values())

    def __repr__(self) -> str:
        return f"Node({self.id!r}, component={self.component.name!r})"


# --- blocks and fan-in that take nodes and channels (the rest of the DSL's control flow is in _control)

class ExitHandler(Block):
    """``with jfx.ExitHandler(node):`` — ``node`` runs once every node made inside is done.

    It runs whatever happened to them (complete, failed, skipped), on every run (the
    cache never replays it), and its component
    reads their states from ``jfx.current_context().upstream_states``. A run whose block
    failed stays FAILED even when the exit node succeeds.
    """

    def __init__(self, exit_node: Node) -> None:
        if not isinstance(exit_node, Node):
            raise InvalidPipelineError(f"ExitHandler takes a node (a called component), got {exit_node!r}")
        self.exit_node = exit_node
        self.nodes: list[Node] = []
        exit_node.trigger = "all_done"

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if exc[0] is None and not self.nodes:
            raise InvalidPipelineError(f"ExitHandler({self.exit_node.id!r}) block made no nodes")
        self.exit_node.after(*self.nodes)

    def attach(self, node: Node) -> None:
        if self.exit_node is node:
            raise InvalidPipelineError(f"node {node.id!r} cannot be inside its own ExitHandler")
        self.nodes.append(node)


class Collected:
    """``Collected(node.outputs["x"])``: every ForEach copy's output, for an ``Input[list[T]]``."""

    __slots__ = ("channel",)

    def __init__(self, channel: Channel) -> None:
        if not isinstance(channel, Channel):
            raise InvalidPipelineError(f"Collected takes an output channel, got {channel!r}")
        self.channel = channel

    @property
    def type(self) -> Any:
        return self.channel.type

    def __repr__(self) -> str:
        return f"Collected({self.channel!r})"



def input_channels(value: Any) -> list[Channel]:
    """The channels an input is wired to: none, one, or several (``Collected``, a list)."""
    if value is None:
        return []
    if isinstance(value, Collected):
        return [value.channel]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def check_wiring(node: Node, name: str, spec: InputSpec, value: Any) -> None:
    """Raise InvalidPipelineError if ``value`` cannot feed input ``spec`` of ``node``."""
    where = f"node {node.id!r} input {name!r}"
    if isinstance(value, Collected) and not spec.many:
        raise InvalidPipelineError(
            f"{where} takes one {spec.type.TYPE_NAME}; jfx.Collected(...) feeds an Input[list[{spec.type.TYPE_NAME}]]"
        )
    if spec.many and value is not None:
        channels = input_channels(value)
        if not channels and not spec.optional:
            raise InvalidPipelineError(f"{where} got an empty list of channels")
        for ch in channels:
            check_wiring(node, name, dataclasses.replace(spec, many=False), ch)
        return
    if value is None:
        if not spec.optional:
            raise InvalidPipelineError(
                f"{where} ({spec.type.TYPE_NAME}) is required but not wired; pass "
                f"{name}=<some node>.outputs[...] when calling {node.component.name}(...)"
            )
        return
    if isinstance(value, Node):
        raise InvalidPipelineError(
            f"{where} got the node {value.id!r}; pass one of its outputs, e.g. "
            f"{name}={value.id}.outputs[{next(iter(value.outputs), 'key')!r}]"
        )
    if not isinstance(value, Channel):
        raise InvalidPipelineError(
            f"{where} expects a {spec.type.TYPE_NAME} channel (another node's output), got {value!r}"
        )
    if spec.type.TYPE_NAME not in value.type.type_path():
        raise InvalidPipelineError(
            f"{where} expects {spec.type.TYPE_NAME} but is wired to "
            f"{value.producer.id}.outputs[{value.key!r}] of type {value.type.TYPE_NAME}; "
            f"wire it to an output of type {spec.type.TYPE_NAME} (or a subtype)"
        )


_P = ParamSpec("_P")
_R = TypeVar("_R")


class Component(Generic[_P, _R]):
    """A component: a typed function plus its spec. Call it to make a :class:`Node`.

    Generic in the function's signature, so ``component.fn`` keeps it for editors and
    type checkers (unit tests call ``fn`` with artifacts and values). Calling the
    component itself wires a node: inputs are channels, outputs are not passed.
    """

    def __init__(
        self,
        fn: Callable[_P, _R],
        name: str | None = None,
        external_fingerprint: Callable[[dict[str, Any]], str] | None = None,
        kind: str = "component",
        streaming: bool = False,
        checks: Mapping[str, Callable[[Any], object]] | None = None,
    ) -> None:
        self.fn = fn
        self.external_fingerprint = external_fingerprint
        self.streaming = streaming
        self.checks = dict(checks or {})
        self.kind = kind
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__qualname__ = fn.__qualname__
        self.name = name or fn.__name__
        if not _NODE_ID_RE.match(self.name):
            raise InvalidPipelineError(f"component name {self.name!r} is not a valid node id")
        self.spec = _spec_from_signature(fn, self.name, skip_first=kind == "resolver")
        self.code_version = _code_version(fn)

    def __call__(self, *args: Any, _output_types: dict[str, type[Artifact]] | None = None, **kwargs: Any) -> Node:
        if args:
            raise InvalidPipelineError(
                f"component {self.name}: pass inputs and parameters by keyword, e.g. "
                f"{self.name}({', '.join(f'{k}=...' for k in list(self.spec.inputs) + list(self.spec.parameters))})"
            )
        spec = self.spec
        unknown = set(kwargs) - set(spec.inputs) - set(spec.parameters)
        if unknown:
            hint = " (outputs are not passed: the runner provides them)" if unknown & set(spec.outputs) else ""
            raise InvalidPipelineError(
                f"component {self.name} got unexpected argument(s) {', '.join(sorted(unknown))}{hint}; "
                f"inputs: {', '.join(spec.inputs) or '(none)'}; parameters: {', '.join(spec.parameters) or '(none)'}"
            )
        params: dict[str, Any] = {}
        for pname, pspec in spec.parameters.items():
            where = f"component {self.name} parameter {pname!r}"
            if pname not in kwargs:
                if not pspec.has_default:
                    raise InvalidPipelineError(f"{where} ({pspec.type.__name__}) is required and has no default")
                params[pname] = pspec.default
                continue
            value = kwargs[pname]
            if isinstance(value, LoopItem):
                params[pname] = value  # checked when the ForEach is expanded
            elif isinstance(value, RuntimeParameter):
                if value.type is not pspec.type and not (pspec.type is float and value.type is int):
                    raise InvalidPipelineError(
                        f"{where} is {pspec.type.__name__} but runtime parameter {value.name!r} is {value.type.__name__}"
                    )
                params[pname] = value
            else:
                params[pname] = check_parameter_value(value, pspec.type, where)
        node = Node(self, params, {}, _output_types)
        for iname, ispec in spec.inputs.items():
            value = kwargs.get(iname)
            check_wiring(node, iname, ispec, value)
            node.inputs[iname] = value
        return node

    def __repr__(self) -> str:
        return f"<component {self.name}>"


@overload
def component(
    fn: Callable[_P, _R],
    *,
    name: str | None = None,
    external_fingerprint: Callable[[dict[str, Any]], str] | None = None,
    streaming: bool = False,
    checks: Mapping[str, Callable[[Any], object]] | None = None,
) -> Component[_P, _R]: ...


@overload
def component(
    fn: None = None,
    *,
    name: str | None = None,
    external_fingerprint: Callable[[dict[str, Any]], str] | None = None,
    streaming: bool = False,
    checks: Mapping[str, Callable[[Any], object]] | None = None,
) -> Callable[[Callable[_P, _R]], Component[_P, _R]]: ...


def component(
    fn: Callable[_P, _R] | None = None,
    *,
    name: str | None = None,
    external_fingerprint: Callable[[dict[str, Any]], str] | None = None,
    streaming: bool = False,
    checks: Mapping[str, Callable[[Any], object]] | None = None,
) -> Component[_P, _R] | Callable[[Callable[_P, _R]], Component[_P, _R]]:
    """Turn a typed function into a :class:`Component` (see the module docstring).

    Args:
        fn: the function; its annotations are the spec.
        name: the component's name (default: the function's name); also the default
            node id.
        external_fingerprint: for a component that reads data from outside the
            pipeline (files, tables): a function of the node's parameter values that
            returns a hash of that data. It becomes part of the cache key, so changed
            external data misses the cache. ExampleGen hashes its input files this way.
        streaming: the component reads its input artifacts where they are recorded,
            which may be an object store (``s3://...``), through ``jfx``'s storage layer
            (Arrow datasets take its filesystems). By default an input recorded on an
            object store is copied into a local cache first, so ``open(inp.uri ...)``
            works unchanged. Outputs are local directories either way.
        checks: parameter name → a function that checks a value given for it (a
            dict-shaped config, say) and raises ``InvalidArgumentError`` (or
            ``ValueError``/``TypeError``) naming the bad key. Building a
            :class:`~jfx.Pipeline` runs them, so a typo fails before any node runs,
            with the node's id in the message. A runtime parameter's value is not
            known then: the component sees it when it runs.

    Returns:
        A :class:`Component`; ``component.fn`` is the undecorated function, with its
        type. The docstring's summary and ``Args:`` entries become the spec's
        descriptions.

    Raises:
        InvalidPipelineError: an argument lacks an annotation, or an annotation is
            not an Input, Output or Parameter type.
    """
    if fn is None:
        def decorate(f: Callable[_P, _R]) -> Component[_P, _R]:
            return Component(f, name, external_fingerprint, streaming=streaming, checks=checks)

        return decorate
    return Component(fn, name, external_fingerprint, streaming=streaming, checks=checks)


def resolver(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Turn a function into a resolver: a node that picks existing artifacts from the store.

    The function takes a :class:`jfx.orchestrators.ResolverContext` first, then its
    typed parameters, its ``Input[T]`` arguments as metadata records
    (:class:`jfx.metadata.ArtifactRecord`, or ``None``), and ``Output[T]`` arguments that
    declare what it resolves (they receive ``None``), and returns ``{output key: ArtifactRecord or None}``. It writes no files: its outputs
    are artifacts that already exist, or nothing (an ``Optional`` input downstream then
    receives ``None``). Resolvers run on every run; the cache never replays them.

    Example:
        >>> from jfx.types import Model
        >>> @resolver
        ... def NoModel(ctx, model: Output[Model]):
        ...     return {"model": None}
        >>> NoModel.kind, list(NoModel.spec.outputs)
        ('resolver', ['model'])
    """
    if fn is None:
        return lambda f: Component(f, name, kind="resolver")
    return Component(fn, name, kind="resolver")
