"""Which nodes a partial run runs: ``--from`` (repeatable) downstream, ``--to`` (repeatable) upstream.

The DAG::

    a -> b -> c -> d        x -> y
    a -> e
"""

from __future__ import annotations

import jfx_flow as flow
import pytest
from jfx import Pipeline
from jfx.cli import main as jfx_main
from jfx.orchestrators import LocalDagRunner, NodeState, RunState

RUNNER = LocalDagRunner(progress=False)


def build(root: str, url: str) -> Pipeline:
    return flow.two_chains(root, url)


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sel")
    return build(str(tmp / "root"), f"sqlite:///{tmp / 'md.sqlite'}").compile()


@pytest.mark.parametrize("from_nodes,to_nodes,expected", [
    (["b", "e"], [], {"b", "c", "d", "e"}),  # several --from: the union of their downstreams
    (["c", "x"], [], {"c", "d", "x", "y"}),  # ... also across unconnected parts
    (["b", "c"], [], {"b", "c", "d"}),  # one inside the other's downstream
    ([], ["d"], {"a", "b", "c", "d"}),  # --to: every ancestor, not only the direct parent
    ([], ["d", "y"], {"a", "b", "c", "d", "x", "y"}),
    (["b"], ["d"], {"b", "c", "d"}),
    (["a"], ["c", "e"], {"a", "b", "c", "e"}),
    (["c", "e"], ["d"], {"c", "d"}),  # e is not upstream of d
    (["y"], ["d"], set()),
    ([], [], {"a", "b", "c", "d", "e", "x", "y"}),
])
def test_select(ir, from_nodes, to_nodes, expected):
    assert ir.select(from_nodes, to_nodes) == expected


def _value(outcome) -> int:
    return outcome.outputs["out"][0].properties["value"]


def test_a_run_from_two_nodes_runs_both_downstreams_and_reuses_what_they_need(tmp_path):
    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    full = RUNNER.run(build(root, url))
    assert full.state == RunState.COMPLETE
    part = RUNNER.run(build(root, url), from_nodes=["c", "e"], enable_cache=False)
    assert part.state == RunState.COMPLETE
    assert {k: o.state for k, o in part.nodes.items()} == {
        "a": NodeState.REUSED, "b": NodeState.REUSED,
        "c": NodeState.COMPLETE, "d": NodeState.COMPLETE, "e": NodeState.COMPLETE,
        "x": NodeState.SKIPPED, "y": NodeState.SKIPPED,
    }
    assert part.nodes["b"].cached_from == full.nodes["b"].execution_id
    assert _value(part.nodes["d"]) == 1 * 2 * 3 * 5 and _value(part.nodes["e"]) == 7


def test_a_run_to_a_grandchild_runs_its_every_ancestor(tmp_path):
    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    part = RUNNER.run(build(root, url), to_nodes=["d"])
    assert part.state == RunState.COMPLETE
    assert {k for k, o in part.nodes.items() if o.state == NodeState.COMPLETE} == {"a", "b", "c", "d"}
    assert {k for k, o in part.nodes.items() if o.state == NodeState.SKIPPED} == {"e", "x", "y"}
    assert _value(part.nodes["d"]) == 30


def test_repeated_from_and_to_on_the_command_line(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("JFX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JFX_METADATA_URL", raising=False)
    root, url = str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"
    file = tmp_path / "sel_pipeline.py"
    file.write_text(f"import sys\nsys.path.insert(0, {str(flow.__file__).rsplit('/', 1)[0]!r})\n"
                    f"import jfx_flow\npipeline = jfx_flow.two_chains({root!r}, {url!r})\n")
    assert jfx_main(["run", str(file), "--progress", "log"]) == 0
    caplog.clear()
    assert jfx_main(["run", str(file), "--progress", "log", "--no-cache",
                     "--from", "b", "--from", "x", "--to", "d", "--to", "y"]) == 0
    out = caplog.text
    ran = {n for n in "abcdexy" if f" {n}: complete in " in out}
    assert ran == {"b", "c", "d", "x", "y"}, out

