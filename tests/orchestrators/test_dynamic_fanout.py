"""Dynamic fan-out: ``ForEach`` over a list an upstream node makes at run time, on the local and Beam runners."""

from __future__ import annotations

import jfx_flow as flow
import pytest

from jfx import Collected, ForEach, If, Pipeline, RuntimeParameter
from jfx.errors import InvalidPipelineError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.metadata._runs import get_run
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


def props(result, node, key="out"):
    return result.nodes[node].outputs[key][0].properties


def copies(n):
    return [f"{t}-{i}" for t in ("number", "picky", "scale") for i in range(n)]


def test_copies_are_made_per_item_and_collected_in_item_order(runner, where):
    p = flow.dynamic_fan_out(root=where[0], url=where[1])
    result = runner.run(p, parameters={"items": '[{"n": 3}, {"n": 1}, {"n": 2}, {"n": 5}]'})
    assert result.state == RunState.COMPLETE, states(result)
    assert list(result.nodes) == ["listing", *copies(4), "total"]
    assert props(result, "total")["values"] == [30, 10, 20, 50]
    assert [props(result, f"number-{i}")["value"] for i in range(4)] == [3, 1, 2, 5]
    with MetadataStore(where[1]) as store:  # the run's recorded IR lists the copies (runs show, the UI)
        recorded = get_run(store, result.run_id)
    assert [n["id"] for n in recorded.ir["nodes"]] == ["listing", *copies(4), "total"]

    # again: every copy comes from the cache; a changed item runs only its own copies
    again = runner.run(p, parameters={"items": '[{"n": 3}, {"n": 1}, {"n": 2}, {"n": 5}]'})
    assert set(states(again).values()) == {NodeState.CACHED}
    changed = runner.run(p, parameters={"items": '[{"n": 3}, {"n": 1}, {"n": 7}]'})
    assert changed.state == RunState.COMPLETE
    ran = {k for k, s in states(changed).items() if s == NodeState.COMPLETE}
    assert ran == {"listing", "number-2", "picky-2", "scale-2", "total"}
    assert props(changed, "total")["values"] == [30, 10, 70]


def test_an_empty_list_makes_no_copies_and_collected_gives_an_empty_list(runner, where):
    result = runner.run(flow.dynamic_fan_out(root=where[0], url=where[1]), parameters={"items": "[]"})
    assert result.state == RunState.COMPLETE, states(result)
    assert list(result.nodes) == ["listing", "total"]
    assert props(result, "total")["values"] == [] and props(result, "total")["count"] == 0


def test_a_value_that_is_not_a_list_fails_the_loop_with_its_source_and_type(runner, where):
    result = runner.run(flow.dynamic_fan_out(root=where[0], url=where[1]), parameters={"items": '{"n": 1}'})
    assert result.state == RunState.FAILED
    assert states(result) == {"listing": NodeState.COMPLETE, "number": NodeState.FAILED, "picky": NodeState.FAILED,
                              "scale": NodeState.FAILED, "total": NodeState.SKIPPED}
    error = result.nodes["number"].error
    assert error.startswith("ForEach over listing.outputs['out'].items: the value is dict") and "not a list" in error
    assert result.nodes["total"].error == "upstream node scale failed"
    with MetadataStore(where[1]) as store:
        failed = store.get_execution(result.nodes["scale"].execution_id)
        assert failed.state == ExecutionState.FAILED and failed.node_id == "scale"
        _, outputs = store.get_execution_artifacts(failed.id)
        assert outputs == {}  # nothing half-made
        assert get_run(store, result.run_id).state == RunState.FAILED


def test_an_item_without_the_key_a_parameter_reads_fails_the_loop_naming_the_copy(where):
    result = LocalDagRunner(progress=False).run(flow.dynamic_fan_out(root=where[0], url=where[1]),
                                                parameters={"items": '[{"n": 1}, {"m": 2}]'})
    assert result.state == RunState.FAILED
    assert result.nodes["number"].error == "node number-1 parameter 'value' (ForEach item 1): item {'m': 2} has no ['n']"


def test_resume_reruns_only_the_copies_that_did_not_complete(runner, where, tmp_path):
    block = tmp_path / "refuse"
    block.write_text("")
    p = flow.dynamic_fan_out(root=where[0], url=where[1], refuse_if=str(block))
    first = runner.run(p)
    assert first.state == RunState.FAILED
    assert first.nodes["picky-1"].state == NodeState.FAILED and "picky refuses 2" in first.nodes["picky-1"].error
    assert first.nodes["scale-0"].state == NodeState.COMPLETE and first.nodes["total"].state == NodeState.SKIPPED

    block.unlink()
    resumed = runner.run(p, resume_run_id=first.run_id)
    assert resumed.state == RunState.COMPLETE, states(resumed)
    assert resumed.nodes["scale-0"].cache_miss_reason == "completed in an earlier attempt of this run"
    assert resumed.nodes["picky-1"].state == NodeState.COMPLETE and resumed.nodes["picky-1"].execution_id != \
        first.nodes["picky-1"].execution_id
    assert props(resumed, "total")["values"] == [10, 20, 30]


def test_the_progress_display_shows_the_copies_in_place_of_the_templates(where, caplog):
    from jfx.orchestrators._progress import RichProgress

    caplog.set_level("INFO", logger="jfx.run")
    LocalDagRunner(progress="log").run(flow.dynamic_fan_out(root=where[0], url=where[1]),
                                       parameters={"items": '[{"n": 1}, {"n": 2}]'})
    assert "ForEach: number, picky, scale made into 6 node(s): number-0, number-1, picky-0" in caplog.text
    table = RichProgress()
    table._states = dict.fromkeys(["listing", "number", "picky", "total"], NodeState.PENDING)
    table.nodes_replaced(["number", "picky"], ["number-0", "picky-0"])
    assert list(table._states) == ["listing", "number-0", "picky-0", "total"]


@pytest.mark.parametrize("on", ["local", "beam"])
def test_the_copies_run_at_the_same_time(where, tmp_path, on):
    # each copy waits until all three have started: a runner that ran them one by one would fail
    pipe = flow.dynamic_rendezvous(str(tmp_path), root=where[0], url=where[1])
    if on == "local":
        result = LocalDagRunner(3, progress=False).run(pipe)
    else:
        from jfx.orchestrators import BeamDagRunner

        result = BeamDagRunner(["--runner=DirectRunner", "--direct_running_mode=multi_threading",
                                "--direct_num_workers=3"], progress=False).run(pipe)
    assert result.state == RunState.COMPLETE, {k: o.error for k, o in result.nodes.items()}
    assert props(result, "total")["values"] == [0, 1, 2]


def test_the_process_executor_runs_the_copies(where):
    result = LocalDagRunner(2, executor="process", progress=False).run(flow.dynamic_fan_out(root=where[0], url=where[1]))
    assert result.state == RunState.COMPLETE, states(result)
    assert props(result, "total")["values"] == [10, 20, 30]


# --- refused when the pipeline is built -----------------------------------------------------

def _source():
    return flow.listing(items=RuntimeParameter("items", str, default="[1]"))


def test_the_ir_keeps_one_template_per_node_with_the_loop_source():
    ir = flow.dynamic_fan_out().to_ir()
    nodes = {n["id"]: n for n in ir["nodes"]}
    assert list(nodes) == ["listing", "number", "picky", "scale", "total"]
    assert nodes["number"]["loop"] == {"producer": "listing", "key": "out", "property": "items"}
    assert nodes["number"]["parameters"]["value"] == {"item": ["n"], "type": "int"}
    assert "listing" in nodes["number"]["upstream"]
    assert nodes["total"]["inputs"]["parts"]["collected"] is True and "loop" not in nodes["total"]


def test_nested_loops_are_refused():
    made = _source()
    with pytest.raises(InvalidPipelineError, match="nested ForEach"), ForEach(made.outputs["out"].items), ForEach([1, 2]):
        flow.number(value=1)
    made = _source()
    with pytest.raises(InvalidPipelineError, match="nested ForEach"), ForEach([1, 2]), ForEach(made.outputs["out"].items):
        flow.number(value=1)


def test_a_loop_over_an_output_of_a_node_inside_a_loop_is_refused():
    with ForEach([1, 2]) as item:
        inner = flow.listing(items="[1]").with_id("inner")
        _ = item
    with ForEach(inner.outputs["out"].items) as item:
        n = flow.number(value=item)
    with pytest.raises(InvalidPipelineError, match="inside a ForEach: nested ForEach"):
        Pipeline("nested", [inner, n])


def test_wiring_a_template_to_a_node_after_the_loop_needs_collected():
    made = _source()
    with ForEach(made.outputs["out"].items) as item:
        n = flow.number(value=item)
    after = flow.publish(x=n.outputs["out"])
    with pytest.raises(InvalidPipelineError, match=r"wire jfx.Collected\(number.outputs\['out'\]\)"):
        Pipeline("needs-collected", [made, n, after])


def test_collected_inside_its_own_loop_and_conditions_on_templates_are_refused():
    made = _source()
    with ForEach(made.outputs["out"].items) as item:
        n = flow.number(value=item)
        inside = flow.total(parts=Collected(n.outputs["out"]))
    with pytest.raises(InvalidPipelineError, match="not inside it"):
        Pipeline("collected-inside", [made, n, inside])
    made = _source()
    with ForEach(made.outputs["out"].items) as item:
        n = flow.number(value=item)
    with If(n.outputs["out"].value > 1):
        gated = flow.listing(items="[]").with_id("gated")
    with pytest.raises(InvalidPipelineError, match="condition reads 'number', a node inside a ForEach"):
        Pipeline("if-on-template", [made, n, gated])


def test_the_source_node_must_be_in_the_pipeline_and_items_an_output_value():
    made = _source()
    with ForEach(made.outputs["out"].items) as item:
        n = flow.number(value=item)
    with pytest.raises(InvalidPipelineError, match="over an output of 'listing', which is not in the pipeline"):
        Pipeline("no-source", [n])
    with pytest.raises(InvalidPipelineError, match="ForEach takes a list, or an output value"):
        ForEach(RuntimeParameter("xs", list, default=[1]))


def test_a_pipeline_built_again_from_another_ones_nodes_keeps_the_loop():
    first = flow.dynamic_fan_out()
    again = Pipeline(first.name, list(first.components))
    assert again.to_ir()["nodes"] == first.to_ir()["nodes"]


def test_resume_from_the_recorded_ir_as_jfx_run_resume_does(where, tmp_path):
    from jfx.pipelines import PipelineIR

    block = tmp_path / "refuse"
    block.write_text("")
    first = LocalDagRunner(progress=False).run(flow.dynamic_fan_out(root=where[0], url=where[1], refuse_if=str(block)))
    assert first.state == RunState.FAILED
    block.unlink()
    with MetadataStore(where[1]) as store:
        ir = PipelineIR.from_dict(get_run(store, first.run_id).ir)  # the copies, as the run made them
    resumed = LocalDagRunner(progress=False).run(ir, resume_run_id=first.run_id)
    assert resumed.state == RunState.COMPLETE
    assert {k for k, o in resumed.nodes.items() if o.cache_miss_reason != "completed in an earlier attempt of this run"} \
        == {"picky-1", "scale-1", "total"}
