"""Control flow in the DSL: ``If``, ``ForEach``, ``ExitHandler`` and ``Collected``.

Every runner gets control flow from the IR alone, and the launcher does the deciding,
so a condition means the same on the local runner, on Beam and in a Kubeflow pod:

* ``with If(predicate):`` — the nodes made inside carry the predicate in their IR
  ``condition``. The launcher evaluates it when the node is due: false means the node
  is recorded SKIPPED (so are the nodes downstream of it), and the run still
  succeeds. A predicate compares a runtime parameter or a small output value (an
  output artifact's property, e.g. ``evaluator.outputs["blessing"].blessed``) with a
  constant; ``&``, ``|`` and ``~`` combine predicates. A node under a condition on an
  output waits for that output's node.
* ``with ForEach(items) as item:`` — the nodes made inside are a template, expanded
  when the pipeline is built into one copy per item (ids ``<id>-0``, ``<id>-1``, ...).
  ``item`` (or ``item["key"]`` for dict items) stands for the item in parameters.
  Downstream of the loop, ``Collected(node.outputs["x"])`` feeds every copy's output to
  an ``Input[list[T]]`` (the fan-in). Items known when the pipeline is built are a
  list of JSON values.
* ``with ForEach(node.outputs["x"].items) as item:`` — a dynamic fan-out (kfp's
  ``ParallelFor`` over a task output): the items are an output value whose value when
  the pipeline runs must be a JSON list. The nodes inside stay one template each in the
  IR (``loop`` names the source; an ``item`` parameter is ``{"item": [path], "type": T}``);
  once ``node`` has run, the runner makes the copies ``<id>-0``, ``<id>-1``, ... as
  ordinary nodes (so the cache, retries, ``jfx runs show`` and the UI see them, and a
  copy's cache key holds its item), and ``Collected`` gets their outputs in item order.
  An empty list makes no copies (``Collected`` gives ``[]``, as kfp does); a value that
  is not a list fails the loop's nodes with a message naming the node, output, property
  and the value's type, and the nodes after the loop are skipped. Resuming a run reruns
  only the copies that did not complete. A partial run (``--from``/``--to``) takes a
  dynamic loop whole: it can start at a template (the loop runs again), not after the
  loop (the templates have no outputs of their own to reuse). Loops do not nest (static
  or dynamic), the source node must be made outside every loop, and an ``If`` cannot
  read a copy's output.
  See :mod:`jfx.orchestrators._loops` (local and Beam runners) and the Kubeflow backend.
* ``with ExitHandler(node):`` — ``node`` runs after every node made inside the block,
  whatever happened to them (failed, skipped); it reads their states from
  ``current_context().upstream_states`` (and why from ``upstream_reasons``). Its IR
  ``trigger`` is ``"all_done"``. ``jfx.components.Notifier`` is such a node.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from jfx.errors import InvalidPipelineError

if TYPE_CHECKING:
    from jfx.pipelines._component import Channel, Node

__all__ = ["Block", "ForEach", "If", "LoopItem", "OutputValue", "ParameterRef", "Predicate", "condition_refs",
           "describe_condition", "evaluate_condition", "loop_items", "register_node"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


# --- predicates -------------------------------------------------------------------------

def _operand(value: Any) -> dict[str, Any]:
    """The IR of one side of a comparison."""
    if isinstance(value, ParameterRef):
        return {"param": value.name}
    if isinstance(value, OutputValue):
        return {"output": {"producer": value.channel.producer.id, "key": value.channel.key,
                           "property": value.prop}}
    if isinstance(value, (Predicate, LoopItem)):
        raise InvalidPipelineError(f"a condition cannot compare {value!r}; compare a parameter or output value "
                                   "with a constant")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise InvalidPipelineError(f"a condition compares with JSON values, got {value!r}") from None
    return {"value": value}


class Predicate:
    """A condition for :class:`If`: built by comparing a parameter or output value.

    Combine with ``&`` (and), ``|`` (or) and ``~`` (not). It has no truth value of its
    own: it is decided when the pipeline runs.
    """

    __slots__ = ("op", "args", "refs", "params")

    def __init__(self, op: str, args: tuple[Any, ...], refs: tuple[Any, ...], params: tuple[Any, ...]) -> None:
        self.op, self.args, self.refs, self.params = op, args, refs, params

    @staticmethod
    def compare(op: str, left: Any, right: Any) -> Predicate:
        refs = tuple(v.channel for v in (left, right) if isinstance(v, OutputValue))
        params = tuple(v for v in (left, right) if isinstance(v, ParameterRef))
        return Predicate(op, (_operand(left), _operand(right)), refs, params)

    @staticmethod
    def truthy(value: Any) -> Predicate:
        if isinstance(value, Predicate):
            return value
        return Predicate.compare("==", value, True) if _is_ref(value) else _bad_condition(value)

    def __and__(self, other: Any) -> Predicate:
        other = Predicate.truthy(other)
        return Predicate("and", (self, other), self.refs + other.refs, self.params + other.params)

    def __or__(self, other: Any) -> Predicate:
        other = Predicate.truthy(other)
        return Predicate("or", (self, other), self.refs + other.refs, self.params + other.params)

    def __invert__(self) -> Predicate:
        return Predicate("not", (self,), self.refs, self.params)

    def __bool__(self) -> bool:
        raise TypeError("a jfx condition is decided when the pipeline runs; use it in `with jfx.If(...):`, "
                        "and combine conditions with &, | and ~ (not `and`, `or`, `not`)")

    def to_ir(self) -> dict[str, Any]:
        if self.op in ("and", "or"):
            return {"op": self.op, "args": [a.to_ir() for a in self.args]}
        if self.op == "not":
            return {"op": "not", "args": [self.args[0].to_ir()]}
        return {"op": self.op, "args": list(self.args)}

    def __repr__(self) -> str:
        return f"Predicate({describe_condition(self.to_ir())})"


def _is_ref(value: Any) -> bool:
    return isinstance(value, (ParameterRef, OutputValue))


def _bad_condition(value: Any) -> Predicate:
    raise InvalidPipelineError(
        f"jfx.If takes a condition on a runtime parameter or an output value (e.g. "
        f"evaluator.outputs['blessing'].blessed, or rows > 10), got {value!r}"
    )


class Comparable:
    """Comparison operators that build predicates (mixed into parameters and output values)."""

    __slots__ = ()

    def __eq__(self, other: object) -> Any:
        return Predicate.compare("==", self, other)

    def __ne__(self, other: object) -> Any:
        return Predicate.compare("!=", self, other)

    def __lt__(self, other: Any) -> Predicate:
        return Predicate.compare("<", self, other)

    def __le__(self, other: Any) -> Predicate:
        return Predicate.compare("<=", self, other)

    def __gt__(self, other: Any) -> Predicate:
        return Predicate.compare(">", self, other)

    def __ge__(self, other: Any) -> Predicate:
        return Predicate.compare(">=", self, other)

    def __invert__(self) -> Predicate:
        return ~Predicate.truthy(self)

    def __and__(self, other: Any) -> Predicate:
        return Predicate.truthy(self) & other

    def __or__(self, other: Any) -> Predicate:
        return Predicate.truthy(self) | other

    __hash__ = object.__hash__


class ParameterRef(Comparable):
    """A value named by a runtime parameter: the base of :class:`jfx.RuntimeParameter`.

    Conditions refer to it by ``name``; it lives here so that conditions need not know
    the component module (which builds on this one).
    """

    name: str


class OutputValue(Comparable):
    """A property of an output artifact, read when the pipeline runs: ``channel.blessed``."""

    __slots__ = ("channel", "prop")

    def __init__(self, channel: Channel, prop: str) -> None:
        self.channel, self.prop = channel, prop

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} is known only when the pipeline runs; use it in `with jfx.If(...):`")

    def __repr__(self) -> str:
        return f"{self.channel.producer.id}.outputs[{self.channel.key!r}].{self.prop}"


def describe_condition(cond: dict[str, Any]) -> str:
    """A readable form of a condition's IR, e.g. ``Evaluator.blessing.blessed == True``."""
    op, args = cond["op"], cond["args"]
    if op in ("and", "or"):
        return "(" + f" {op} ".join(describe_condition(a) for a in args) + ")"
    if op == "not":
        return f"not {describe_condition(args[0])}"

    def side(a: dict[str, Any]) -> str:
        if "param" in a:
            return f"param {a['param']}"
        if "output" in a:
            o = a["output"]
            return f"{o['producer']}.{o['key']}.{o['property']}"
        return json.dumps(a["value"])

    return f"{side(args[0])} {op} {side(args[1])}"


def condition_refs(cond: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """The (producer, key, property) output values a condition reads."""
    if not cond:
        return []
    if cond["op"] in ("and", "or", "not"):
        return [r for a in cond["args"] for r in condition_refs(a)]
    return [(a["output"]["producer"], a["output"]["key"], a["output"]["property"])
            for a in cond["args"] if "output" in a]


def condition_params(cond: dict[str, Any] | None) -> list[str]:
    if not cond:
        return []
    if cond["op"] in ("and", "or", "not"):
        return [p for a in cond["args"] for p in condition_params(a)]
    return [a["param"] for a in cond["args"] if "param" in a]


def check_condition(cond: Any, where: str) -> None:
    """Raise InvalidPipelineError if ``cond`` is not a well-formed condition IR."""
    if not isinstance(cond, dict) or "op" not in cond or not isinstance(cond.get("args"), list):
        raise InvalidPipelineError(f"{where}: malformed condition {cond!r}")
    op, args = cond["op"], cond["args"]
    if op in ("and", "or", "not"):
        if not args or (op == "not" and len(args) != 1):
            raise InvalidPipelineError(f"{where}: condition {op!r} has the wrong number of arguments")
        for a in args:
            check_condition(a, where)
        return
    if op not in _OPS or len(args) != 2:
        raise InvalidPipelineError(f"{where}: unknown condition operator {op!r} (or not two operands)")
    for a in args:
        if not isinstance(a, dict) or not ({"param", "output", "value"} & set(a)):
            raise InvalidPipelineError(f"{where}: malformed condition operand {a!r}")
        if "output" in a and not {"producer", "key", "property"} <= set(a["output"]):
            raise InvalidPipelineError(f"{where}: condition operand {a!r} needs producer, key and property")


class MissingValue(LookupError):  # noqa: N818 - a lookup that found nothing; public name
    """An output value a condition reads does not exist (its node did not produce it)."""


def evaluate_condition(cond: dict[str, Any], params: dict[str, Any],
                       output_value: Callable[[str, str, str], Any]) -> bool:
    """Decide a condition: ``output_value(producer, key, property)`` reads an output's property.

    Raises:
        MissingValue: from ``output_value`` when the artifact or property is missing.
    """
    op, args = cond["op"], cond["args"]
    if op == "and":
        return all(evaluate_condition(a, params, output_value) for a in args)
    if op == "or":
        return any(evaluate_condition(a, params, output_value) for a in args)
    if op == "not":
        return not evaluate_condition(args[0], params, output_value)

    def value(a: dict[str, Any]) -> Any:
        if "param" in a:
            return params[a["param"]]
        if "output" in a:
            o = a["output"]
            return output_value(o["producer"], o["key"], o["property"])
        return a["value"]

    left, right = value(args[0]), value(args[1])
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        raise InvalidPipelineError(
            f"condition {describe_condition(cond)}: cannot compare {left!r} with {right!r}"
        ) from None


# --- blocks -----------------------------------------------------------------------------

# The open blocks, outermost first: per thread and per asyncio task, so pipelines built
# at the same time (a test's threads, a server's requests) never see each other's blocks.
_BLOCKS: ContextVar[tuple[Block, ...]] = ContextVar("jfx_dsl_blocks", default=())


def active_blocks() -> tuple[Block, ...]:
    """The control-flow blocks open in this context, outermost first."""
    return _BLOCKS.get()


class Block:
    """A ``with`` block of the DSL; every node made inside is handed to :meth:`attach`."""

    def __enter__(self) -> Any:
        _BLOCKS.set((*_BLOCKS.get(), self))
        return self

    def __exit__(self, *exc: object) -> None:
        blocks = _BLOCKS.get()
        if not blocks or blocks[-1] is not self:
            raise InvalidPipelineError("control-flow blocks must be closed in the order they were opened")
        _BLOCKS.set(blocks[:-1])

    def attach(self, node: Node) -> None:
        """Take a node made inside this block."""


class If(Block):
    """``with jfx.If(condition):`` — the nodes made inside run only when it holds.

    Args:
        condition: a comparison of a :class:`jfx.RuntimeParameter` or of an output value
            (``node.outputs["blessing"].blessed``) with a constant, or such a value alone
            (true when it equals ``True``); combine with ``&``, ``|``, ``~``.

    Example:
        >>> from jfx import RuntimeParameter
        >>> push = RuntimeParameter("push", bool, default=True)
        >>> with If(push == True) as block:  # noqa: E712
        ...     pass
        >>> block.condition.to_ir()
        {'op': '==', 'args': [{'param': 'push'}, {'value': True}]}
    """

    def __init__(self, condition: Any) -> None:
        self.condition = Predicate.truthy(condition)

    def attach(self, node: Node) -> None:
        node.conditions.append(self.condition)
        node.condition_nodes.extend(ch.producer for ch in self.condition.refs)


class LoopItem:
    """Stands for the current item of a :class:`ForEach` in a node's parameters."""

    __slots__ = ("loop", "path")

    def __init__(self, loop: ForEach, path: tuple[Any, ...] = ()) -> None:
        self.loop, self.path = loop, path

    def __getitem__(self, key: Any) -> LoopItem:
        return LoopItem(self.loop, (*self.path, key))

    def resolve(self, item: Any) -> Any:
        value = item
        for key in self.path:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise InvalidPipelineError(
                    f"ForEach item {item!r} has no {''.join(f'[{k!r}]' for k in self.path)}"
                ) from None
        return value

    def __repr__(self) -> str:
        return "item" + "".join(f"[{k!r}]" for k in self.path)


class ForEach(Block):
    """``with jfx.ForEach(items) as item:`` — one copy of the nodes made inside per item.

    The copies get the ids ``<id>-0``, ``<id>-1``, ...; pass ``item`` (or ``item["k"]``)
    as a parameter value. Fan in with :class:`Collected` on an ``Input[list[T]]``.

    Args:
        items: a non-empty list of JSON values (numbers, strings, dicts ...), known
            when the pipeline is built; or an output value
            (``node.outputs["x"].prop``) whose value when the pipeline runs is a JSON
            list: the copies are then made once ``node`` has run.
    """

    def __init__(self, items: list[Any] | OutputValue) -> None:
        self.source: OutputValue | None = None
        self.items: list[Any] | None = None
        self.nodes: list[Node] = []
        if isinstance(items, OutputValue):
            self.source = items
            return
        if isinstance(items, (ParameterRef, LoopItem, Predicate)):
            raise InvalidPipelineError(
                f"ForEach takes a list, or an output value such as node.outputs['x'].items; got {items!r}")
        if not isinstance(items, (list, tuple)) or not items:
            raise InvalidPipelineError(f"ForEach takes a non-empty list of items, got {items!r}")
        try:
            json.dumps(list(items))
        except (TypeError, ValueError) as err:
            raise InvalidPipelineError(f"ForEach items must be JSON values: {err}") from None
        self.items = list(items)

    @property
    def dynamic(self) -> bool:
        """Whether the items come from an output value, known only when the pipeline runs."""
        return self.source is not None

    def source_ir(self) -> dict[str, str] | None:
        """The IR of a dynamic loop's source: ``{"producer", "key", "property"}``."""
        if self.source is None:
            return None
        return {"producer": self.source.channel.producer.id, "key": self.source.channel.key,
                "property": self.source.prop}

    def __enter__(self) -> LoopItem:
        super().__enter__()
        return LoopItem(self)

    def attach(self, node: Node) -> None:
        if node.loop is not None and node.loop is not self:
            raise InvalidPipelineError(f"node {node.id!r}: nested ForEach blocks are not supported")
        node.loop = self
        self.nodes.append(node)


def loop_items(value: Any, source: dict[str, str]) -> list[Any]:
    """The items of a dynamic ForEach, from its source's value; raise if it is not a list."""
    if not isinstance(value, list):
        raise InvalidPipelineError(
            f"ForEach over {source['producer']}.outputs[{source['key']!r}].{source['property']}: the value is "
            f"{type(value).__name__} ({json.dumps(value, default=str)[:80]}), not a list"
        )
    return value


def register_node(node: Node) -> None:
    """Called for every new node: each open block (condition, loop, exit handler) takes it."""
    for block in active_blocks():
        block.attach(node)
