"""The control-flow DSL: what If, ForEach, Collected and ExitHandler put in the IR, and the errors."""

from __future__ import annotations

import jfx_flow as flow
import pytest

from jfx import Collected, ExitHandler, ForEach, If, Pipeline, RuntimeParameter
from jfx.errors import InvalidPipelineError
from jfx.pipelines import PipelineIR


def nodes(ir_doc):
    return {n["id"]: n for n in ir_doc["nodes"]}


def test_for_each_expands_into_numbered_copies_with_item_values():
    doc = flow.fan_out().to_ir()
    by_id = nodes(doc)
    assert [by_id[f"scale-{i}"]["parameters"]["factor"] for i in range(3)] == [{"value": 1}, {"value": 2}, {"value": 3}]
    assert all(by_id[f"scale-{i}"]["inputs"]["x"]["producer"] == "number" for i in range(3))
    parts = by_id["total"]["inputs"]["parts"]
    assert parts["sources"] == [["scale-0", "out"], ["scale-1", "out"], ["scale-2", "out"]]
    assert by_id["total"]["upstream"] == ["scale-0", "scale-1", "scale-2"]


def test_if_on_an_output_value_is_a_condition_and_a_dependency():
    by_id = nodes(flow.fan_out().to_ir())
    assert by_id["publish"]["condition"] == {
        "op": "==", "args": [{"output": {"producer": "judge", "key": "verdict", "property": "passed"}},
                             {"value": True}]}
    assert set(by_id["publish"]["upstream"]) == {"total", "judge"}
    assert by_id["judge"]["condition"] is None


def test_parameter_conditions_nest_and_negate():
    by_id = nodes(flow.gated().to_ir())
    assert by_id["publish"]["condition"] == {"op": "==", "args": [{"param": "push"}, {"value": True}]}
    assert by_id["other"]["condition"] == {
        "op": "not", "args": [{"op": "==", "args": [{"param": "push"}, {"value": True}]}]}
    doc = flow.gated().to_ir()
    assert doc["parameters"]["push"] == {"type": "bool", "default": True, "required": False}

    n = RuntimeParameter("n", int, default=3)
    with If(n > 2), If(n <= 5):
        inner = flow.number(value=1)
    cond = nodes(Pipeline("p", [inner]).to_ir())["number"]["condition"]
    assert cond == {"op": "and", "args": [{"op": ">", "args": [{"param": "n"}, {"value": 2}]},
                                          {"op": "<=", "args": [{"param": "n"}, {"value": 5}]}]}


def test_exit_handler_node_waits_for_the_block_whatever_happens():
    by_id = nodes(flow.exit_handled().to_ir())
    assert by_id["report"]["trigger"] == "all_done"
    assert set(by_id["report"]["upstream"]) == {"number", "explode", "publish"}
    assert by_id["explode"]["trigger"] == "all_success"


def test_ir_round_trips():
    for make in (flow.fan_out, flow.gated, flow.exit_handled):
        doc = make().to_ir()
        assert PipelineIR.from_dict(doc).to_dict() == doc


def test_building_the_pipeline_twice_leaves_the_user_nodes_alone():
    base = flow.number(value=2)
    with ForEach([1, 2]) as item:
        scaled = flow.scale(x=base.outputs["out"], factor=item)
    tot = flow.total(parts=Collected(scaled.outputs["out"]))
    first = Pipeline("a", [base, scaled, tot]).to_ir()
    second = Pipeline("a", [base, scaled, tot]).to_ir()
    assert first == second
    assert [n["id"] for n in first["nodes"]] == ["number", "scale-0", "scale-1", "total"]


def test_a_loop_output_used_outside_without_collected_is_refused():
    base = flow.number()
    with ForEach([1, 2]) as item:
        scaled = flow.scale(x=base.outputs["out"], factor=item)
    pub = flow.publish(x=scaled.outputs["out"])
    with pytest.raises(InvalidPipelineError, match=r"node 'publish' input 'x' .*inside a jfx.ForEach.*Collected"):
        Pipeline("p", [base, scaled, pub])


def test_collected_needs_a_list_input():
    base = flow.number()
    with pytest.raises(InvalidPipelineError, match=r"input 'x' takes one Metrics.*Input\[list\[Metrics\]\]"):
        flow.publish(x=Collected(base.outputs["out"]))


def test_a_loop_item_of_the_wrong_type_names_the_copy():
    base = flow.number()
    with ForEach([1, "two"]) as item:
        scaled = flow.scale(x=base.outputs["out"], factor=item)
    with pytest.raises(InvalidPipelineError, match=r"node 'scale-1' parameter 'factor' \(ForEach item 1\) expects int"):
        Pipeline("p", [base, scaled])


def test_conditions_have_no_truth_value():
    push = RuntimeParameter("push", bool, default=True)
    with pytest.raises(TypeError, match="decided when the pipeline runs"):
        bool(push == True)  # noqa: E712
    with pytest.raises(TypeError, match="known only when the pipeline runs"):
        bool(flow.number().outputs["out"].value)


def test_bad_blocks_are_refused():
    with pytest.raises(InvalidPipelineError, match="non-empty list"):
        ForEach([])
    with pytest.raises(InvalidPipelineError, match="condition on a runtime parameter or an output value"):
        If(3)
    notify = flow.report()
    with pytest.raises(InvalidPipelineError, match="block made no nodes"), ExitHandler(notify):
        pass


def test_malformed_conditions_in_an_ir_document_are_named():
    doc = flow.gated().to_ir()
    by_id = nodes(doc)
    by_id["publish"]["condition"] = {"op": "~=", "args": [{"param": "push"}, {"value": 1}]}
    with pytest.raises(InvalidPipelineError, match=r"IR node 'publish': unknown condition operator '~='"):
        PipelineIR.from_dict(doc)
    by_id["publish"]["condition"] = {"op": "==", "args": [{"param": "nope"}, {"value": 1}]}
    with pytest.raises(InvalidPipelineError, match="unknown runtime parameter 'nope'"):
        PipelineIR.from_dict(doc)
