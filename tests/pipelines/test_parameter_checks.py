"""Dict-shaped component parameters are checked when the pipeline is built, naming the node and key."""

from __future__ import annotations

import pytest

from jfx import Pipeline, RuntimeParameter
from jfx.components import BulkInferrer, Evaluator, ExampleGen, InfraValidator, Pusher, Trainer
from jfx.errors import InvalidPipelineError
from jfx.pipelines import Output, Parameter, component
from jfx.types import Metrics


def pipeline(**evaluator_kw) -> Pipeline:
    examples = ExampleGen(input_base="/data")
    trainer = Trainer(examples=examples.outputs["examples"], module_file="/code/model.py")
    evaluator = Evaluator(examples=examples.outputs["examples"], model=trainer.outputs["model"],
                          **evaluator_kw).with_id("evaluate_candidate")
    return Pipeline("checked", components=[examples, trainer, evaluator])


def test_a_typo_in_eval_config_fails_the_build_naming_the_node_the_key_and_the_fix():
    with pytest.raises(InvalidPipelineError) as err:
        pipeline(eval_config={"label_key": "species", "slicing_spec": [["island"]]})
    message = str(err.value)
    assert "node 'evaluate_candidate' parameter 'eval_config'" in message
    assert "['slicing_spec']" in message and "did you mean 'slicing_specs'?" in message
    with pytest.raises(InvalidPipelineError, match="needs 'label_key'"):
        pipeline(eval_config={"slicing_specs": [[]]})
    assert pipeline(eval_config={"label_key": "species", "slicing_specs": [[], ["island"]]}).nodes


@pytest.mark.parametrize(("make", "message"), [
    (lambda ex, model: ExampleGen(input_base="/data", splits={"train": 2, "eval": -1}), "weight must be a positive"),
    (lambda ex, model: BulkInferrer(examples=ex, model=model, data_spec={"batchsize": 8}),
     "did you mean 'batch_size'"),
    (lambda ex, model: InfraValidator(examples=ex, model=model, request_spec={"num_examples": 0}),
     "num_examples"),
    (lambda ex, model: Pusher(model=model, push_destination={"filesystm": {}}), "unknown destination"),
])
def test_every_standard_dict_parameter_is_checked_at_build(make, message):
    examples = ExampleGen(input_base="/data")
    trainer = Trainer(examples=examples.outputs["examples"], module_file="/code/model.py")
    node = make(examples.outputs["examples"], trainer.outputs["model"])
    with pytest.raises(InvalidPipelineError, match=message) as err:
        Pipeline("checked", components=[examples, trainer, node] if node.id != "ExampleGen" else [node])
    assert f"node {node.id!r} parameter" in str(err.value)


def test_user_components_declare_checks_and_runtime_values_wait_for_the_run():
    def check_limits(value: dict) -> None:
        if set(value) - {"low", "high"}:
            raise ValueError(f"limits takes 'low' and 'high', got {sorted(value)}")

    @component(checks={"limits": check_limits})
    def bounded(out: Output[Metrics], limits: Parameter[dict] | None = None):
        out.write_json(limits)

    with pytest.raises(InvalidPipelineError, match=r"node 'bounded' parameter 'limits': limits takes 'low' and 'high'"):
        Pipeline("user", components=[bounded(limits={"lo": 1})])
    assert Pipeline("user", components=[bounded(limits={"low": 1})]).nodes
    assert Pipeline("user", components=[bounded(limits=RuntimeParameter("limits", dict, default={"x": 1}))]).nodes
