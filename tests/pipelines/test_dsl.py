"""The DSL: component specs, node wiring, Pipeline checks and the IR."""

from __future__ import annotations

import json
from typing import Optional

import pytest

import jfx
from jfx import Input, Output, Parameter, Pipeline, RuntimeParameter, component
from jfx.errors import InvalidArgumentError, InvalidPipelineError
from jfx.pipelines import PipelineIR
from jfx.types import Artifact, Dataset, Examples, Metrics, Model


class Table(Dataset):
    """A user-declared subtype of Dataset."""


@component
def make_table(table: Output[Table], rows: Parameter[int] = 10, label: str = "x"):
    table.write_json({"rows": rows, "label": label})


@component
def make_model(model: Output[Model]):
    model.write_json({})


@component
def use_dataset(data: Input[Dataset], out: Output[Metrics], extra: Optional[Input[Examples]] = None,  # noqa: UP045 - the DSL reads Optional[...]
                scale: Parameter[float] = 1.0, opts: Parameter[dict] = None):
    out.write_json({"extra": extra is not None, "scale": scale})


@component
def needs_rows(data: Output[Dataset], rows: Parameter[int]):
    data.write_json(rows)


def test_spec_is_read_from_the_signature():
    spec = use_dataset.spec
    assert {k: (s.type, s.optional) for k, s in spec.inputs.items()} == {
        "data": (Dataset, False), "extra": (Examples, True)}
    assert {k: s.type for k, s in spec.outputs.items()} == {"out": Metrics}
    assert {k: (s.type, s.default, s.has_default) for k, s in spec.parameters.items()} == {
        "scale": (float, 1.0, True), "opts": (dict, None, True)}
    # a bare `str` annotation is a parameter too
    assert make_table.spec.parameters["label"].type is str


def test_plain_function_stays_callable(tmp_path):
    out = Metrics(tmp_path)
    use_dataset.fn(data=Dataset(tmp_path), out=out, scale=2.0)
    assert out.read_json() == {"extra": False, "scale": 2.0}


def test_calling_a_component_makes_a_node_with_typed_channels():
    node = make_table(rows=3)
    assert node.id == "make_table"
    assert node.parameters == {"rows": 3, "label": "x"}
    channel = node.outputs["table"]
    assert channel.type is Table and channel.key == "table" and channel.producer is node
    assert node.outputs.table is channel
    assert node.with_id("t2").id == "t2" and channel.producer.id == "t2"


def test_subtype_channel_feeds_a_base_type_input():
    node = use_dataset(data=make_table().outputs["table"])
    assert node.inputs["data"].type is Table


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_table(5), "by keyword"),
        (lambda: make_table(rowz=5), "unexpected argument(s) rowz"),
        (lambda: make_table(table=1), "outputs are not passed"),
        (lambda: make_table(rows="5"), "parameter 'rows' expects int, got str '5'"),
        (lambda: make_table(rows=True), "expects int, got bool"),
        (lambda: needs_rows(), "parameter 'rows' (int) is required"),
        (lambda: use_dataset(), "input 'data' (Dataset) is required but not wired"),
        (lambda: use_dataset(data=make_model().outputs["model"]),
         "expects Dataset but is wired to make_model.outputs['model'] of type Model"),
        (lambda: use_dataset(data=make_table()), "got the node 'make_table'; pass one of its outputs"),
        (lambda: use_dataset(data="path/to/data"), "expects a Dataset channel"),
        (lambda: use_dataset(data=make_table().outputs["table"], opts={"f": object()}), "JSON-serialisable"),
        (lambda: make_table(rows=RuntimeParameter("rows", str, "a")), "is int but runtime parameter 'rows' is str"),
    ],
)
def test_bad_calls_are_rejected_with_the_node_and_argument_named(call, message):
    with pytest.raises(InvalidPipelineError, match=None) as info:
        call()
    assert message in str(info.value)


def test_annotations_must_say_what_an_argument_is():
    with pytest.raises(InvalidPipelineError, match="argument 'x' has no annotation"):
        @component
        def no_annotation(x):
            pass

    with pytest.raises(TypeError, match="takes an artifact type"):
        Input[int]

    with pytest.raises(InvalidPipelineError, match="outputs cannot be optional"):
        @component
        def optional_output(x: Optional[Output[Dataset]] = None):  # noqa: UP045 - the DSL reads Optional[...]
            pass


def test_unknown_output_key_names_the_outputs():
    with pytest.raises(KeyError, match="has no output 'tabel'; its outputs are: table"):
        make_table().outputs["tabel"]


def test_pipeline_orders_nodes_from_the_wiring():
    a = make_table()
    b = use_dataset(data=a.outputs["table"])
    c = make_model().after(b)
    p = Pipeline("order", components=[c, b, a])
    assert [n.id for n in p.nodes] == ["make_table", "use_dataset", "make_model"]
    assert p.to_ir()["nodes"][2]["upstream"] == ["use_dataset"]


def test_duplicate_node_ids_are_rejected():
    with pytest.raises(InvalidPipelineError, match=r"two nodes have the id 'make_table'.*with_id"):
        Pipeline("dup", components=[make_table(), make_table()])


def test_channel_from_a_node_outside_the_pipeline_is_rejected():
    outside = make_table()
    inside = use_dataset(data=outside.outputs["table"])
    with pytest.raises(InvalidPipelineError,
                       match=r"node 'use_dataset' input 'data' is wired to make_table.outputs\['table'\], "
                             r"but node 'make_table' is not in pipeline 'p'"):
        Pipeline("p", components=[inside])


def test_cycles_are_rejected_with_the_path():
    a = make_table()
    b = use_dataset(data=a.outputs["table"])
    a.after(b)
    with pytest.raises(InvalidPipelineError, match=r"has a cycle: .*make_table -> use_dataset -> make_table|"
                                                   "has a cycle: .*use_dataset -> make_table -> use_dataset"):
        Pipeline("cyc", components=[a, b])


def test_rewired_inputs_are_checked_again_at_construction():
    b = use_dataset(data=make_table().outputs["table"])
    b.inputs["data"] = None
    with pytest.raises(InvalidPipelineError, match=r"node 'use_dataset' input 'data' .* required but not wired"):
        Pipeline("p", components=[b])
    m = make_model()
    b.inputs["data"] = m.outputs["model"]
    with pytest.raises(InvalidPipelineError, match="node 'use_dataset' input 'data' expects Dataset"):
        Pipeline("p", components=[m, b])


def test_components_must_be_called_and_names_must_be_valid():
    with pytest.raises(InvalidPipelineError, match=r"call it to make a node: make_table\(\.\.\.\)"):
        Pipeline("p", components=[make_table])
    with pytest.raises(InvalidPipelineError, match="pipeline name 'bad name'"):
        Pipeline("bad name", components=[make_table()])
    with pytest.raises(InvalidPipelineError, match="node id 'a/b'"):
        make_table().with_id("a/b")


def test_ir_is_json_and_round_trips():
    rows = RuntimeParameter("rows", int, default=7)
    a = make_table(rows=rows)
    b = use_dataset(data=a.outputs["table"], scale=2)
    doc = Pipeline("rt", components=[a, b], pipeline_root="/tmp/root", enable_cache=False).to_ir()
    doc2 = json.loads(json.dumps(doc))
    ir = Pipeline.from_ir(doc2)
    assert isinstance(ir, PipelineIR)
    assert ir.to_dict() == doc
    assert ir.name == "rt" and ir.pipeline_root == "/tmp/root" and ir.enable_cache is False
    node = ir.node("use_dataset")
    assert node.inputs["data"].producer == "make_table" and node.inputs["data"].type == "Dataset"
    assert node.inputs["extra"] is None
    assert node.outputs["out"].type_path == ("Metrics", "Artifact")
    assert ir.node("make_table").outputs["table"].type_path == ("Table", "Dataset", "Artifact")
    assert node.resolve_parameters({"rows": 1})["scale"] == 2.0


def test_ir_rejects_unknown_versions_and_malformed_documents():
    doc = Pipeline("v", components=[make_table()]).to_ir()
    with pytest.raises(InvalidPipelineError, match="IR version 99 is not supported"):
        PipelineIR.from_dict({**doc, "ir_version": 99})
    broken = json.loads(json.dumps(doc))
    del broken["nodes"][0]["component"]
    with pytest.raises(InvalidPipelineError, match="malformed IR"):
        PipelineIR.from_dict(broken)


def test_runtime_parameters_resolve_with_overrides():
    a = make_table(rows=RuntimeParameter("rows", int, default=7), label=RuntimeParameter("label", str))
    p = Pipeline("params", components=[a], parameters={"rows": 9})
    ir = p.compile()
    with pytest.raises(InvalidArgumentError, match=r"'label' .* has no default; give it with --param label=VALUE"):
        ir.resolve_parameters({})
    assert ir.resolve_parameters({"label": "y"}) == {"rows": 9, "label": "y"}
    assert ir.resolve_parameters({"label": "y", "rows": "12"})["rows"] == 12
    with pytest.raises(InvalidArgumentError, match="parameter 'rows' expects int, got 'many'"):
        ir.resolve_parameters({"label": "y", "rows": "many"})
    with pytest.raises(InvalidArgumentError, match=r"has no parameter.* nope; its parameters: rows, label"):
        ir.resolve_parameters({"nope": "1"})
    with pytest.raises(InvalidPipelineError, match="names nope, which no node uses"):
        Pipeline("params", components=[make_table()], parameters={"nope": 1})


def test_artifact_types_and_json_helpers(tmp_path):
    assert Table.TYPE_NAME == "Table" and Table.type_path() == ("Table", "Dataset", "Artifact")
    art = Table(tmp_path / "t", properties={"n": 1})
    art.write_json({"a": [1, 2]}, "x.json")
    assert art.read_json("x.json") == {"a": [1, 2]} and art.type_name == "Table"
    names = {"Artifact", "Dataset", "Examples", "ExampleStatistics", "Schema", "ExampleAnomalies",
             "TransformGraph", "Model", "ModelEvaluation", "ModelBlessing", "InfraBlessing", "PushedModel",
             "HyperParameters", "InferenceResult", "Metrics", "ModelRun"}
    assert set(jfx.types.__all__) == names
    assert all(issubclass(getattr(jfx.types, n), Artifact) for n in names)


def test_public_api_is_pinned():
    assert sorted(jfx.__all__) == sorted([
        "Channel", "Collected", "Component", "ExitHandler", "ForEach", "If", "Input", "Node", "Output",
        "Parameter", "Pipeline", "RuntimeParameter", "__version__", "check_cancelled", "component", "current_context",
        "errors", "types",
    ])
    import jfx.types as types_module

    assert types_module is jfx.types
