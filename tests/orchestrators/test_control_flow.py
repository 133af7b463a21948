"""If, ForEach/Collected, ExitHandler and partial runs: the same outcomes on the local and Beam runners."""

from __future__ import annotations

import jfx_flow as flow
import pytest

from jfx.metadata import ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner, NodeState, RunState


@pytest.fixture(params=["local", "beam"])
def runner(request):
    if request.param == "local":
        return LocalDagRunner(progress=False)
    from jfx.orchestrators import BeamDagRunner

    return BeamDagRunner(["--runner=DirectRunner"], progress=False)


@pytest.fixture
def where(tmp_path):
    return str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"


def states(result):
    return {k: o.state for k, o in result.nodes.items()}


def value(result, node, key="out"):
    return result.nodes[node].outputs[key][0].properties["value"]


def test_for_each_fans_out_and_collected_fans_in(runner, where):
    result = runner.run(flow.fan_out(root=where[0], url=where[1]))
    assert result.state == RunState.COMPLETE
    assert list(result.nodes) == ["number", "scale-0", "scale-1", "scale-2", "total", "judge", "publish"]
    assert [value(result, f"scale-{i}") for i in range(3)] == [2, 4, 6]
    assert value(result, "total") == 12
    assert result.nodes["total"].outputs["out"][0].properties["count"] == 3
    assert result.nodes["publish"].state == NodeState.COMPLETE  # 12 >= 10: the If on judge's output holds

    again = runner.run(flow.fan_out(root=where[0], url=where[1]))
    assert set(states(again).values()) == {NodeState.CACHED}


def test_false_condition_on_an_output_skips_the_node_and_the_run_still_succeeds(runner, where):
    result = runner.run(flow.fan_out(root=where[0], url=where[1]), parameters={"threshold": 100})
    assert result.state == RunState.COMPLETE
    pub = result.nodes["publish"]
    assert pub.state == NodeState.SKIPPED and pub.by_condition
    assert "Judge" not in pub.error and "judge.verdict.passed == true is false" in pub.error
    store = MetadataStore(where[1])
    try:
        recorded = store.get_execution(pub.execution_id)
        assert recorded.state == ExecutionState.SKIPPED
        assert recorded.properties["skip_reason"] == pub.error
    finally:
        store.close()


@pytest.mark.parametrize("push", [True, False])
def test_condition_on_a_parameter_and_its_negation(runner, where, push):
    result = runner.run(flow.gated(root=where[0], url=where[1]), parameters={"push": push})
    assert result.state == RunState.COMPLETE
    ran, skipped = (["publish", "scaled"], ["other"]) if push else (["other"], ["publish", "scaled"])
    for node in ran:
        assert result.nodes[node].state == NodeState.COMPLETE, node
    for node in skipped:
        assert result.nodes[node].state == NodeState.SKIPPED and result.nodes[node].by_condition, node
    if push:
        assert value(result, "scaled") == 50
    else:
        # scaled is downstream of the skipped publish: skipped too, and said why
        assert result.nodes["scaled"].error == "upstream node publish skipped"


def test_exit_handler_runs_after_a_failure_and_sees_every_state(runner, where):
    result = runner.run(flow.exit_handled(root=where[0], url=where[1]))
    assert result.state == RunState.FAILED
    assert states(result) == {"number": NodeState.COMPLETE, "explode": NodeState.FAILED,
                              "publish": NodeState.SKIPPED, "report": NodeState.COMPLETE}
    assert not result.nodes["publish"].by_condition
    seen = result.nodes["report"].outputs["out"][0].properties["states"]
    assert seen == {"explode": "failed", "number": "complete", "publish": "skipped"}

    ok = runner.run(flow.exit_handled(root=where[0], url=where[1]), parameters={"fail": False})
    assert ok.state == RunState.COMPLETE
    assert ok.nodes["report"].outputs["out"][0].properties["states"] == {
        "explode": "complete", "number": "cached", "publish": "complete"}

    again = runner.run(flow.exit_handled(root=where[0], url=where[1]), parameters={"fail": False})
    assert again.nodes["explode"].state == NodeState.CACHED
    assert again.nodes["report"].state == NodeState.COMPLETE  # never replayed from the cache
    assert again.nodes["report"].cache_miss_reason == "an exit handler runs on every run"


def test_partial_run_reuses_upstream_outputs(runner, where):
    first = runner.run(flow.fan_out(root=where[0], url=where[1]))
    assert first.state == RunState.COMPLETE
    part = runner.run(flow.fan_out(root=where[0], url=where[1]), from_nodes=["total"], to_nodes=["judge"],
                      enable_cache=False)
    assert part.state == RunState.COMPLETE
    assert part.nodes["total"].state == NodeState.COMPLETE  # ran again (cache off)
    assert part.nodes["judge"].state == NodeState.COMPLETE
    assert part.nodes["scale-1"].state == NodeState.REUSED  # not run: taken from the first run
    assert part.nodes["scale-1"].reused_from_run == first.run_id
    assert part.nodes["scale-1"].outputs["out"][0].id == first.nodes["scale-1"].outputs["out"][0].id
    assert part.nodes["publish"].state == NodeState.SKIPPED
    assert value(part, "total") == 12


def test_a_condition_on_a_missing_property_fails_the_node_naming_it(runner, where):
    from jfx import If, Pipeline

    base = flow.number(value=1)
    with If(base.outputs["out"].colour == "red"):
        pub = flow.publish(x=base.outputs["out"])
    result = runner.run(Pipeline("flow-missing", [base, pub], pipeline_root=where[0], metadata_url=where[1]))
    assert result.state == RunState.FAILED
    assert result.nodes["publish"].state == NodeState.FAILED
    assert "number.outputs['out'].colour: the artifact has no property 'colour'; its properties: value" in \
        result.nodes["publish"].error


def test_beam_runner_reports_progress_while_it_runs(where):
    from jfx.orchestrators import BeamDagRunner, Progress

    class Recorder(Progress):
        def __init__(self):
            self.events = []

        def node_started(self, node_id):
            self.events.append(("start", node_id))

        def node_finished(self, outcome):
            self.events.append(("end", outcome.node_id, outcome.state))

    rec = Recorder()
    result = BeamDagRunner(["--runner=DirectRunner"], progress=rec).run(
        flow.gated(root=where[0], url=where[1]), parameters={"push": False})
    assert result.state == RunState.COMPLETE
    ends = [e for e in rec.events if e[0] == "end"]
    assert sorted(e[1] for e in ends) == sorted(result.nodes)  # each node reported once
    assert ("end", "publish", NodeState.SKIPPED) in ends
    order = [e[1] for e in rec.events]
    # a node starts only after its upstream node ended: the events follow the DAG
    assert order.index("number") < order.index("other")
    assert rec.events.index(("start", "other")) > rec.events.index(("end", "number", NodeState.COMPLETE))


def test_beam_runner_reports_a_finished_node_before_the_beam_pipeline_ends(where):
    """Live, not at the end: the first node's end is reported while a slow node still runs."""
    import time

    import jfx_testlib as lib

    from jfx import Pipeline
    from jfx.orchestrators import BeamDagRunner, Progress

    class Clock(Progress):
        def __init__(self):
            self.ended = {}

        def node_finished(self, outcome):
            self.ended[outcome.node_id] = time.monotonic()

    clock = Clock()
    first = flow.number(value=1)
    slow = lib.sleep_then_write(seconds=2.0).after(first)
    BeamDagRunner(["--runner=DirectRunner"], progress=clock).run(
        Pipeline("flow-live", [first, slow], pipeline_root=where[0], metadata_url=where[1]))
    returned = time.monotonic()
    assert returned - clock.ended["number"] > 1.0  # seen while sleep_then_write was sleeping
    assert returned - clock.ended["sleep_then_write"] < 1.0
