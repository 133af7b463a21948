"""ForEach expansion: a pipeline's node templates replaced by one copy per item.

It builds on both halves of the DSL (nodes and channels from ``_component``, loops from
``_control``), so it lives above them and neither imports it.
"""

from __future__ import annotations

from typing import Any

from jfx.errors import InvalidPipelineError
from jfx.pipelines._component import Channel, Collected, Node, check_parameter_value
from jfx.pipelines._control import LoopItem

__all__ = ["expand_loops"]


def expand_loops(nodes: list[Node]) -> list[Node]:
    """The pipeline's nodes with each ForEach template replaced by its copies.

    The user's nodes are left as they were: every node is copied and rewired. A copy's
    inputs from templates of the same loop point at the same copy; an input wired with
    ``Collected`` gets every copy's channel; nodes that wait for a template (``.after``,
    an ExitHandler) wait for all its copies.
    """
    if not any(n.loop is not None or _has_collected(n) for n in nodes):
        return nodes
    copies: dict[int, list[Node]] = {}
    for t in nodes:
        loop = t.loop
        made = []
        for i, item in enumerate(loop.items if loop is not None else [None]):
            c = Node.__new__(Node)
            c.__dict__.update(t.__dict__)
            c.loop = None
            if loop is not None:
                c.id = f"{t.id}-{i}"
                c.parameters = {}
                for k, v in t.parameters.items():
                    if isinstance(v, LoopItem):
                        if v.loop is not loop:
                            raise InvalidPipelineError(
                                f"node {t.id!r} parameter {k!r} uses the item of a ForEach the node is not in")
                        v = check_parameter_value(v.resolve(item), t.component.spec.parameters[k].type,
                                                  f"node {c.id!r} parameter {k!r} (ForEach item {i})")
                    c.parameters[k] = v
            c.outputs = type(t.outputs)(c, {k: Channel(c, k, ch.type) for k, ch in t.outputs.items()})
            made.append(c)
        copies[id(t)] = made
    for n in nodes:
        if any(isinstance(v, LoopItem) for v in n.parameters.values()) and n.loop is None:
            raise InvalidPipelineError(f"node {n.id!r} uses a ForEach item but was made outside the ForEach block")

    def one(ch: Channel, source: Node, index: int, where: str) -> Channel:
        made = copies.get(id(ch.producer))
        if made is None:  # a node missing from the pipeline: the pipeline's checks report it
            return ch
        if len(made) == 1:
            return made[0].outputs[ch.key]
        if source.loop is None or ch.producer.loop is not source.loop:
            raise InvalidPipelineError(
                f"{where} is wired to {ch.producer.id}.outputs[{ch.key!r}], a node inside a jfx.ForEach; "
                f"wire jfx.Collected({ch.producer.id}.outputs[{ch.key!r}]) to an Input[list[...]] instead"
            )
        return made[index].outputs[ch.key]

    for t in nodes:
        for i, c in enumerate(copies[id(t)]):
            inputs: dict[str, Any] = {}
            for k, value in t.inputs.items():
                where = f"node {c.id!r} input {k!r}"
                if isinstance(value, Collected):
                    if t.loop is not None and value.channel.producer.loop is t.loop:
                        raise InvalidPipelineError(f"{where}: jfx.Collected is for nodes after the ForEach, "
                                                   "not inside it")
                    made = copies.get(id(value.channel.producer), [value.channel.producer])
                    inputs[k] = [m.outputs[value.channel.key] for m in made]
                elif isinstance(value, (list, tuple)):
                    inputs[k] = [one(ch, t, i, where) for ch in value]
                else:
                    inputs[k] = None if value is None else one(value, t, i, where)
            c.inputs = inputs
            after: list[Node] = []
            for up in t.upstream_nodes:
                made = copies.get(id(up), [up])
                same_loop = t.loop is not None and up.loop is t.loop
                after.extend([made[i]] if same_loop else made)
            c.upstream_nodes = after
            c.condition_nodes = [copies.get(id(up), [up])[0] for up in t.condition_nodes]
            for cond in t.conditions:
                for ch in cond.refs:
                    if len(copies.get(id(ch.producer), ())) > 1:
                        raise InvalidPipelineError(
                            f"node {t.id!r}: a jfx.If condition reads {ch.producer.id!r}, a node inside a ForEach")
    return [c for n in nodes for c in copies[id(n)]]


def _has_collected(node: Node) -> bool:
    return any(isinstance(v, Collected) for v in node.inputs.values())
