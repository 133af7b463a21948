"""Resolvers: LatestBlessedModel and LatestArtifact pick artifacts of earlier runs."""

from __future__ import annotations

import jfx_testlib as lib
import pytest

from jfx import Pipeline
from jfx.components import LatestArtifact, LatestBlessedModel, LatestPipelineArtifact
from jfx.errors import InvalidPipelineError
from jfx.metadata import MetadataStore
from jfx.types import Dataset
from jfx.orchestrators import LocalDagRunner

RUNNER = LocalDagRunner(progress=False)


def blessing_pipeline(tmp_path, quality):
    model = lib.train_model(quality=quality)
    baseline = LatestBlessedModel()
    # as an Evaluator does (it consumes the baseline), judge only after resolving the baseline
    blessing = lib.bless(model=model.outputs["model"]).after(baseline)
    report = lib.compare(model=model.outputs["model"], baseline=baseline.outputs["baseline"]).after(blessing)
    return Pipeline("bless", components=[model, blessing, baseline, report], pipeline_root=str(tmp_path / "root"),
                    metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


def test_latest_blessed_model_is_optional_then_follows_blessings(tmp_path):
    first = RUNNER.run(blessing_pipeline(tmp_path, quality=0.9))
    assert first.nodes["LatestBlessedModel"].outputs == {}
    assert lib.read(first.nodes["compare"].outputs["report"][0].uri)["baseline"] is None

    second = RUNNER.run(blessing_pipeline(tmp_path, quality=0.95))  # run 1's model was blessed
    assert lib.read(second.nodes["compare"].outputs["report"][0].uri)["baseline"] == 0.9

    third = RUNNER.run(blessing_pipeline(tmp_path, quality=0.1))  # run 2's model was blessed too
    assert lib.read(third.nodes["compare"].outputs["report"][0].uri)["baseline"] == 0.95

    fourth = RUNNER.run(blessing_pipeline(tmp_path, quality=0.92))  # run 3's model was NOT blessed
    assert lib.read(fourth.nodes["compare"].outputs["report"][0].uri)["baseline"] == 0.95
    assert fourth.nodes["LatestBlessedModel"].state == "complete", "resolvers never come from the cache"
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        execution = store.get_execution(fourth.nodes["LatestBlessedModel"].execution_id)
        model_id = execution.properties["resolved"]["baseline"]
        assert store.get_artifact(model_id).properties["quality"] == 0.95
        # the resolved artifact is recorded as the resolver's output: lineage goes through it
        assert model_id in store.lineage(fourth.nodes["compare"].outputs["report"][0].id, "upstream").artifact_ids


def test_latest_artifact_gives_the_previous_runs_output(tmp_path):
    def build(rows):
        nums = lib.make_numbers(rows=rows)
        previous = LatestArtifact(nums.outputs["numbers"])
        return Pipeline("latest", components=[previous, lib.total(numbers=previous.outputs["artifact"])],
                        pipeline_root=str(tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}"), nums

    empty, _ = build(3)
    result = RUNNER.run(empty)
    assert result.nodes["total"].state == "failed"  # a required input with nothing resolved
    assert "has no successful output 'artifact'" in result.nodes["total"].error
    producer = lib.make_numbers(rows=4)
    RUNNER.run(Pipeline("latest", components=[producer], pipeline_root=str(tmp_path / "root"),
                        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}"))
    pipeline, _ = build(3)
    result = RUNNER.run(pipeline)
    assert lib.read(result.nodes["total"].outputs["result"][0].uri) == {"total": 6}


def test_latest_pipeline_artifact_reads_another_pipelines_newest_output(tmp_path):
    store = {"pipeline_root": str(tmp_path / "root"), "metadata_url": f"sqlite:///{tmp_path / 'md.sqlite'}"}

    def monitor(**required):
        latest = LatestPipelineArtifact("training", "make_numbers", "numbers", Dataset, **required)
        return Pipeline("monitor", components=[latest, lib.total(numbers=latest.outputs["artifact"])], **store)

    first = RUNNER.run(monitor())  # the training pipeline never ran: nothing to resolve
    resolver = first.nodes["latest_training_make_numbers_numbers"]
    assert resolver.state == "failed" and first.nodes["total"].state != "complete"
    assert "no successful run of pipeline 'training' in this metadata store has published output " \
        "'numbers' of node 'make_numbers'; run that pipeline first" in resolver.error
    optional = RUNNER.run(monitor(required=False))
    assert optional.nodes["latest_training_make_numbers_numbers"].outputs == {}
    for rows in (3, 5):
        RUNNER.run(Pipeline("training", components=[lib.make_numbers(rows=rows)], **store))
    # a node of the same id in another pipeline is not the training pipeline's
    RUNNER.run(Pipeline("other", components=[lib.make_numbers(rows=100)], **store))
    result = RUNNER.run(monitor())
    assert lib.read(result.nodes["total"].outputs["result"][0].uri) == {"total": 10}  # rows=5, the newest
    with pytest.raises(InvalidPipelineError, match="artifact_type must be an artifact type"):
        LatestPipelineArtifact("training", "make_numbers", "numbers", dict)  # type: ignore[arg-type]
    with pytest.raises(InvalidPipelineError, match="pipeline must be a non-empty string"):
        LatestPipelineArtifact("", "make_numbers", "numbers", Dataset)


def test_latest_artifact_takes_the_channel_type_and_rejects_non_channels():
    nums = lib.make_numbers()
    node = LatestArtifact(nums.outputs["numbers"])
    assert node.outputs["artifact"].type is nums.outputs["numbers"].type
    assert node.id == "latest_make_numbers_numbers"
    with pytest.raises(InvalidPipelineError, match="takes a channel"):
        LatestArtifact(nums)


def test_a_candidate_is_never_its_own_baseline_so_unchanged_reruns_stay_cached(tmp_path):
    def build(quality):
        model = lib.train_model(quality=quality)
        baseline = LatestBlessedModel(candidate=model.outputs["model"])
        blessing = lib.bless(model=model.outputs["model"]).after(baseline)
        report = lib.compare(model=model.outputs["model"], baseline=baseline.outputs["baseline"]).after(blessing)
        return Pipeline("own", components=[model, baseline, blessing, report], pipeline_root=str(tmp_path / "root"),
                        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")

    RUNNER.run(build(0.9))
    again = RUNNER.run(build(0.9))  # the same model: its own blessing is passed over
    assert again.nodes["LatestBlessedModel"].outputs == {}
    assert {k: o.state for k, o in again.nodes.items() if k != "LatestBlessedModel"} == {
        "train_model": "cached", "bless": "cached", "compare": "cached"}
    newer = RUNNER.run(build(0.95))  # a new model: the last blessed one is its baseline
    assert lib.read(newer.nodes["compare"].outputs["report"][0].uri)["baseline"] == 0.9
