"""jfx.metadata.Client: read-only views of runs, nodes and artifacts, and typed artifact readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jfx_testlib as lib
import pytest
from jfx import Pipeline
from jfx.components._statistics_gen import StatisticsGen
from jfx.errors import DataValidationError, InvalidArgumentError, NotFoundError
from jfx.metadata import ArtifactRecord, ExecutionState, MetadataStore
from jfx.metadata._client import ArtifactView, Client, NodeView, RunView
from jfx.orchestrators import LocalDagRunner, RunState

RUNNER = LocalDagRunner(progress=False)


@pytest.fixture
def env(tmp_path):
    root, url, marker = tmp_path / "root", f"sqlite:///{tmp_path / 'md.sqlite'}", tmp_path / "marker"
    marker.write_text("ok")
    return root, url, marker


def test_runs_nodes_outputs_and_lineage(env):
    root, url, marker = env
    first = RUNNER.run(lib.chain(str(root), url, str(marker)), parameters={"rows": 4})
    second = RUNNER.run(lib.chain(str(root), url, str(marker), name="other"))
    assert first.state == second.state == RunState.COMPLETE
    with Client(url) as client:
        assert client.pipelines() == ["chain", "other"]
        assert [r.id for r in client.runs()] == [second.run_id, first.run_id]  # newest first
        [run] = client.runs("chain")
        assert isinstance(run, RunView) and run.id == first.run_id and run.pipeline == "chain"
        assert client.runs("missing") == []
        assert run.state == "COMPLETE" and run.parameters == {"rows": 4, "note": ""}
        assert run.start_time is not None and run.end_time is not None and run.start_time <= run.end_time
        assert client.run(second.run_id).pipeline == "other"

        assert list(run.nodes) == ["make_numbers", "total", "fail_unless", "maybe_extra"]  # IR order
        total = run.nodes["total"]
        assert isinstance(total, NodeView)
        assert total.state == ExecutionState.COMPLETE and total.error is None
        assert total.execution_id == first.nodes["total"].execution_id
        assert total.cache_miss_reason  # the first run misses the cache, and says why
        numbers = run.nodes["make_numbers"].outputs["numbers"]
        assert total.inputs["numbers"].id == numbers.id
        result = total.outputs["result"]
        assert isinstance(result, ArtifactView) and result.type_name == "Metrics"
        assert result.id == first.nodes["total"].outputs["result"][0].id
        assert Path(result.uri).is_dir() and result.fingerprint and result.properties == {"total": 6}
        assert result.read() == {"total": 6}  # a Metrics value.json
        with pytest.raises(InvalidArgumentError, match="'Dataset' has no reader"):
            numbers.read()  # it wrote numbers.json, not value.json

        checked = run.nodes["fail_unless"].outputs["checked"]
        graph = checked.lineage()
        assert graph.artifact_ids == {checked.id, result.id, numbers.id}
        assert {e.node_id for e in graph.executions} == {"make_numbers", "total", "fail_unless"}
        assert checked.lineage("upstream", depth=1).artifact_ids == {checked.id, result.id}
        assert numbers.lineage("downstream").artifact_ids == {numbers.id, result.id, checked.id}
        json.dumps(graph.to_dict())
        with pytest.raises(InvalidArgumentError):
            checked.lineage("sideways")

        assert "RunView(" in repr(run) and first.run_id in repr(run)
        assert repr(total) == f"NodeView(id='total', state='COMPLETE', execution_id={total.execution_id})"
        assert "ArtifactView(" in repr(result) and "'Metrics'" in repr(result)
        assert "'total': NodeView(" in repr(run.nodes)
        with pytest.raises(KeyError, match="make_numbers"):
            run.nodes["nope"]


def test_failed_node_and_latest_execution_after_resume(env):
    root, url, marker = env
    marker.unlink()
    failed = RUNNER.run(lib.chain(str(root), url, str(marker)))
    assert failed.state == RunState.FAILED
    with Client(url) as client:
        node = client.run(failed.run_id).nodes["fail_unless"]
        assert node.state == ExecutionState.FAILED and "marker file" in node.error
        assert node.outputs == {} and list(node.inputs) == ["result"]
        failed_id = node.execution_id
    marker.write_text("ok")
    resumed = RUNNER.run(lib.chain(str(root), url, str(marker)), resume_run_id=failed.run_id)
    assert resumed.state == RunState.COMPLETE
    with Client(url) as client:
        run = client.run(failed.run_id)
        assert run.state == "COMPLETE"
        node = run.nodes["fail_unless"]
        assert node.execution_id > failed_id and node.state == ExecutionState.COMPLETE
        assert node.outputs["checked"].read() == {"total": 3}


def test_unknown_run_and_artifact(env):
    _, url, _ = env
    with Client(url) as client:
        assert client.pipelines() == [] and client.runs() == []
        with pytest.raises(NotFoundError, match="no-such-run"):
            client.run("no-such-run")
        with pytest.raises(NotFoundError):
            client.artifact(12345)
        assert repr(client).startswith("Client('sqlite:///")


def test_statistics_read_as_a_dataframe(tmp_path):
    examples = lib.make_eval_examples(rows=50)
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    pipeline = Pipeline("stats", components=[examples, statistics], pipeline_root=str(tmp_path / "root"),
                        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")
    result = RUNNER.run(pipeline)
    assert result.state == RunState.COMPLETE, result.nodes["StatisticsGen"].error
    with Client(f"sqlite:///{tmp_path / 'md.sqlite'}") as client:
        art = client.runs("stats")[0].nodes["StatisticsGen"].outputs["statistics"]
        assert art.type_name == "ExampleStatistics"
        frame = art.read()
    assert list(frame.columns[:5]) == ["split", "column", "type", "count", "missing"]
    assert {"min", "max", "mean", "std", "unique"} <= set(frame.columns)
    assert set(frame["split"]) == {"train", "eval"}
    assert len(frame) == 2 * 6  # two splits x six columns
    table = lib.eval_table(50, 0)
    x = frame[(frame["split"] == "train") & (frame["column"] == "x")].iloc[0]
    assert x["count"] == 50 and x["missing"] == 0
    assert x["min"] == pytest.approx(min(table.column("x").to_pylist()))
    assert x["max"] == pytest.approx(max(table.column("x").to_pylist()))
    assert x["mean"] == pytest.approx(sum(table.column("x").to_pylist()) / 50)
    sex = frame[(frame["split"] == "train") & (frame["column"] == "sex")].iloc[0]
    assert sex["count"] + sex["missing"] == 50 and sex["unique"] == 2


def _register(url: str, type_name: str, uri: Path) -> int:
    with MetadataStore(url) as store:
        [art_id] = store.put_artifacts([ArtifactRecord(type_name, str(uri))])
    return art_id


def test_typed_readers_of_hand_written_artifacts(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    stats = tmp_path / "stats"
    (stats / "Split-train").mkdir(parents=True)
    doc = {"split": "train", "num_rows": 3, "columns": {
        "a": {"type": "int", "count": 3, "missing": 0,
              "numeric": {"min": 1, "max": 3, "mean": 2.0, "std": 0.8, "zeros": 0}},
        "s": {"type": "string", "count": 2, "missing": 1,
              "string": {"unique": 2, "top_values": [], "avg_length": 1.5}}}}
    (stats / "Split-train" / "statistics.json").write_text(json.dumps(doc))
    schema, evaluation, blessing, model, opaque = (tmp_path / n for n in ("schema", "eval", "bless", "model", "x"))
    for folder in (schema, evaluation, blessing, model, opaque):
        folder.mkdir()
    (schema / "schema.json").write_text(json.dumps({"version": 1, "columns": {"a": {"type": "int"}}}))
    (evaluation / "metrics.json").write_text(json.dumps({"slices": [{"slice": "", "metrics": {"accuracy": 0.9}}]}))
    (blessing / "blessing.json").write_text(json.dumps({"blessed": True, "reasons": []}))
    (model / "value.json").write_text(json.dumps({"quality": 0.5}))
    ids = {t: _register(url, t, uri) for t, uri in [("ExampleStatistics", stats), ("Schema", schema),
                                                     ("ModelEvaluation", evaluation), ("ModelBlessing", blessing),
                                                     ("Model", model), ("Opaque", opaque)]}
    missing_id = _register(url, "Schema", tmp_path / "nowhere")
    with Client(url) as client:
        frame = client.artifact(ids["ExampleStatistics"]).read()
        a = frame.to_dict("records")[0]
        assert math.isnan(a.pop("unique")) and math.isnan(a.pop("avg_length"))
        assert a == {"split": "train", "column": "a", "type": "int", "count": 3, "missing": 0, "min": 1, "max": 3,
                     "mean": 2.0, "std": 0.8, "zeros": 0}
        s = frame.iloc[1]
        assert s["column"] == "s" and s["unique"] == 2 and s["avg_length"] == 1.5 and s["missing"] == 1
        assert client.artifact(ids["Schema"]).read() == {"version": 1, "columns": {"a": {"type": "int"}}}
        assert client.artifact(ids["ModelEvaluation"]).read()["slices"][0]["metrics"] == {"accuracy": 0.9}
        assert client.artifact(ids["ModelBlessing"]).read() == {"blessed": True, "reasons": []}
        assert client.artifact(ids["Model"]).read() == {"quality": 0.5}
        with pytest.raises(InvalidArgumentError, match="'Opaque' has no reader"):
            client.artifact(ids["Opaque"]).read()
        with pytest.raises(DataValidationError, match=r"schema.json"):
            client.artifact(missing_id).read()
