"""ForEach expansion: a pipeline's node templates replaced by one copy per item.

A loop over a build-time list is expanded when the pipeline is built
(:func:`expand_loops`); a loop over an output value stays one template per node in the
IR, and a runner expands it with :func:`instantiate` once the loop's source node has run
(the items read by :func:`~jfx.orchestrators._launcher.read_loop_items`).

It builds on both halves of the DSL (nodes and channels from ``_component``, loops from
``_control``), so it lives above them and neither imports it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jfx.errors import InvalidPipelineError
from jfx.pipelines._component import PARAMETER_TYPES, Channel, Collected, Node, check_parameter_value
from jfx.pipelines._control import ForEach, LoopItem, OutputValue
from jfx.pipelines._ir import InputIR, NodeIR, ParamIR, PipelineIR

__all__ = ["expand_loops", "instantiate", "loop_groups", "loop_sources", "templates_of"]


def expand_loops(nodes: list[Node]) -> list[Node]:
    """The pipeline's nodes with each ForEach template replaced by its copies.

    The user's nodes are left as they were: every node is copied and rewired. A copy's
    inputs from templates of the same loop point at the same copy; an input wired with
    ``Collected`` gets every copy's channel; nodes that wait for a template (``.after``,
    an ExitHandler) wait for all its copies. A dynamic loop's templates stay one node
    each (they also wait for the loop's source node), and a ``Collected`` of one stays a
    ``Collected``: :func:`instantiate` makes the copies when the pipeline runs.
    """
    if not any(n.loop is not None or _has_collected(n) for n in nodes):
        return nodes
    copies: dict[int, list[Node]] = {}
    dynamic: set[int] = set()  # the templates of dynamic loops: one node each, made into copies at run time
    for t in nodes:
        loop = t.loop
        made = []
        if loop is not None and loop.dynamic:
            dynamic.add(id(t))
        for i, item in enumerate(loop.items if loop is not None and loop.items is not None else [None]):
            c = Node.__new__(Node)
            c.__dict__.update(t.__dict__)
            c.loop = None  # a dynamic template's is set below
            if id(t) in dynamic:
                for k, v in t.parameters.items():
                    if isinstance(v, LoopItem) and v.loop is not loop:
                        raise InvalidPipelineError(
                            f"node {t.id!r} parameter {k!r} uses the item of a ForEach the node is not in")
            elif loop is not None:
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
    # A dynamic loop's copied templates get a copy of the loop, over the copied source node: the
    # returned nodes refer only to each other (a pipeline built again from them expands alike).
    clones: dict[int, ForEach] = {}
    for t in nodes:
        if id(t) not in dynamic:
            continue
        loop = t.loop
        assert loop is not None and loop.source is not None
        producer = loop.source.channel.producer
        _check_source(t, producer, copies)
        clone = clones.get(id(loop))
        if clone is None:
            source = copies[id(producer)][0].outputs[loop.source.channel.key]
            clone = clones[id(loop)] = ForEach(OutputValue(source, loop.source.prop))
        [c] = copies[id(t)]
        c.loop = clone
        clone.nodes.append(c)
        c.parameters = {k: LoopItem(clone, v.path) if isinstance(v, LoopItem) else v for k, v in t.parameters.items()}

    def one(ch: Channel, source: Node, index: int, where: str) -> Channel:
        made = copies.get(id(ch.producer))
        if made is None:  # a node missing from the pipeline: the pipeline's checks report it
            return ch
        if len(made) == 1 and id(ch.producer) not in dynamic:
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
                    if id(value.channel.producer) in dynamic:  # the copies' channels are listed at run time
                        inputs[k] = Collected(made[0].outputs[value.channel.key])
                    else:
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
            if t.loop is not None and t.loop.source is not None:  # a dynamic template waits for its items
                after.append(copies[id(t.loop.source.channel.producer)][0])
            c.upstream_nodes = after
            c.condition_nodes = [copies.get(id(up), [up])[0] for up in t.condition_nodes]
            for cond in t.conditions:
                for ch in cond.refs:
                    if len(copies.get(id(ch.producer), ())) > 1 or id(ch.producer) in dynamic:
                        raise InvalidPipelineError(
                            f"node {t.id!r}: a jfx.If condition reads {ch.producer.id!r}, a node inside a ForEach")
    return [c for n in nodes for c in copies[id(n)]]


def _check_source(template: Node, producer: Node, copies: dict[int, list[Node]]) -> None:
    """A dynamic ForEach's source node: made outside every ForEach, and in the pipeline."""
    where = f"node {template.id!r} is in a jfx.ForEach over an output of {producer.id!r}"
    if producer.loop is not None:
        raise InvalidPipelineError(f"{where}, a node inside a ForEach: nested ForEach blocks are not supported")
    if id(producer) not in copies:
        raise InvalidPipelineError(f"{where}, which is not in the pipeline; add it to components=[...]")


def _has_collected(node: Node) -> bool:
    return any(isinstance(v, Collected) for v in node.inputs.values())


# --- dynamic loops, at run time ---------------------------------------------------------

def _key(source: dict[str, str]) -> tuple[str, str, str]:
    return source["producer"], source["key"], source["property"]


def loop_sources(ir: PipelineIR) -> list[dict[str, str]]:
    """The sources of the IR's dynamic loops not expanded yet, in node order (one per source)."""
    found: dict[tuple[str, str, str], dict[str, str]] = {}
    for n in ir.nodes:
        if n.loop is not None:
            found.setdefault(_key(n.loop), n.loop)
    return list(found.values())


def templates_of(ir: PipelineIR, source: dict[str, str]) -> list[NodeIR]:
    """The template nodes of the dynamic loops over ``source``."""
    return [n for n in ir.nodes if n.loop is not None and _key(n.loop) == _key(source)]


def loop_groups(ir: PipelineIR) -> list[list[NodeIR]]:
    """The IR's nodes in a topological order, in groups: a dynamic loop's templates are one
    group (in IR order) after every node any of them waits for; every other node is a group
    of its own. For runners that build each loop as one unit (a Beam stage chain, a
    Kubeflow ``ParallelFor``).

    Raises:
        InvalidPipelineError: a loop waits for a node that waits for the loop (a node
            after the loop that a template of the same loop reads).
    """
    group_of: dict[str, tuple[str, str, str]] = {n.id: _key(n.loop) for n in ir.nodes if n.loop is not None}
    members: dict[tuple[str, str, str], list[NodeIR]] = {}
    for n in ir.nodes:
        if n.loop is not None:
            members.setdefault(_key(n.loop), []).append(n)
    placed: set[str] = set()
    groups: list[list[NodeIR]] = []
    pending = [n for n in ir.nodes if n.loop is None or members[_key(n.loop)][0] is n]
    while pending:
        for n in pending:
            group = members[group_of[n.id]] if n.id in group_of else [n]
            ids = {m.id for m in group}
            if all(u in placed or u in ids for m in group for u in m.upstream):
                pending.remove(n)
                placed |= ids
                groups.append(group)
                break
        else:
            raise InvalidPipelineError(f"pipeline {ir.name!r}: the ForEach of {pending[0].id!r} waits for a node that "
                                       "waits for the loop; this runner cannot order it")
    return groups


def instantiate(ir: PipelineIR, source: dict[str, str], items: list[Any]) -> PipelineIR:
    """The IR with the templates of the loops over ``source`` replaced by one copy per item.

    Copy ``i`` of template ``t`` is the ordinary node ``t-i``: its item parameters hold
    ``items[i]`` (or the part of it their path names), and its inputs from (and waits for)
    templates of the same loop point at copy ``i``. A ``Collected`` input of a template
    lists every copy's output, in item order (none for an empty list); a node that waited
    for a template waits for all its copies and for the loop's source node.

    Raises:
        InvalidPipelineError: an item lacks a key a parameter reads, or has the wrong type;
            the message names the copy and the item.
    """
    templates = {n.id for n in templates_of(ir, source)}
    if not templates:
        return ir
    copy_ids = {t: [f"{t}-{i}" for i in range(len(items))] for t in templates}
    taken = {n.id for n in ir.nodes} - templates
    for t, ids in copy_ids.items():
        for cid in ids:
            if cid in taken:
                raise InvalidPipelineError(f"ForEach copy {cid!r} of node {t!r} has the id of another node; "
                                           f"give {t!r} another id with .with_id(...)")
    nodes: list[NodeIR] = []
    for n in ir.nodes:
        if n.id not in templates:
            nodes.append(_rewired(n, source, copy_ids))
            continue
        for i, item in enumerate(items):
            params: dict[str, ParamIR] = {}
            for k, p in n.parameters.items():
                if p.item is not None:
                    where = f"node {n.id}-{i} parameter {k!r} (ForEach item {i})"
                    value = _item_part(item, p.item, where)
                    assert p.type is not None  # checked when the IR was read
                    p = ParamIR(value=check_parameter_value(value, PARAMETER_TYPES[p.type], where))
                params[k] = p
            inputs = {k: None if v is None else replace(v, producer=f"{v.producer}-{i}") if v.producer in templates
                      else v for k, v in n.inputs.items()}
            upstream = tuple(f"{u}-{i}" if u in templates else u for u in n.upstream)
            nodes.append(replace(n, id=f"{n.id}-{i}", parameters=params, inputs=inputs, upstream=upstream, loop=None))
    return replace(ir, nodes=tuple(nodes))


def _rewired(node: NodeIR, source: dict[str, str], copy_ids: dict[str, list[str]]) -> NodeIR:
    """A node outside the loops over ``source``, wired to the copies instead of the templates."""
    if not any(u in copy_ids for u in node.upstream):
        return node
    inputs: dict[str, InputIR | None] = {}
    for k, v in node.inputs.items():
        if v is not None and v.collected and v.producer in copy_ids:
            v = replace(v, sources=tuple((c, v.key) for c in copy_ids[v.producer]))
        inputs[k] = v
    upstream: list[str] = []
    for u in node.upstream:
        for x in [*copy_ids[u], source["producer"]] if u in copy_ids else [u]:
            if x not in upstream:
                upstream.append(x)
    return replace(node, inputs=inputs, upstream=tuple(upstream))


def _item_part(item: Any, path: tuple[Any, ...], where: str) -> Any:
    value = item
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise InvalidPipelineError(
                f"{where}: item {item!r} has no {''.join(f'[{k!r}]' for k in path)}") from None
    return value
