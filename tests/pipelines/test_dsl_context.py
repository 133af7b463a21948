"""The DSL's open blocks belong to the code that opened them, and its modules import in one direction."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import jfx_flow as flow
from jfx import If, RuntimeParameter
from jfx.pipelines import _component, _control


def test_blocks_opened_by_concurrent_tasks_stay_apart():
    # Two pipelines built at once in one thread (asyncio tasks, as in an async server): each
    # task's node must get its own condition only.
    push = RuntimeParameter("push", bool, default=True)
    gate = RuntimeParameter("gate", bool, default=True)

    async def build(param: RuntimeParameter, started: asyncio.Event, other: asyncio.Event):
        with If(param == True):  # noqa: E712 - builds a condition
            started.set()
            await other.wait()  # the other task opens its block now
            node = flow.number()
        return node

    async def both():
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(build(push, a, b), build(gate, b, a))

    first, second = asyncio.run(both())
    assert [c.to_ir()["args"][0] for c in first.conditions] == [{"param": "push"}]
    assert [c.to_ir()["args"][0] for c in second.conditions] == [{"param": "gate"}]


def _imports_of(module) -> tuple[set[str], set[str]]:
    """(modules imported at run time at the top, modules imported inside functions)."""
    tree = ast.parse(Path(module.__file__).read_text())
    top, nested = set(), set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested |= {n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module}
    return top, nested


def test_control_flow_does_not_import_the_component_module():
    top, nested = _imports_of(_control)
    assert "jfx.pipelines._component" not in top | nested  # only for type annotations
    top, nested = _imports_of(_component)
    assert "jfx.pipelines._control" in top and "jfx.pipelines._control" not in nested
