"""Per-node options: with_cache, with_retry, with_timeout, with_resources."""

from __future__ import annotations

import json

import jfx_testlib as lib
import pytest

from jfx import Pipeline
from jfx.errors import InvalidPipelineError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner
from jfx.pipelines import PipelineIR



@pytest.fixture(params=["local", "beam"])
def runner(request):
    """The options are the launcher's: every runner honours them."""
    if request.param == "local":
        return LocalDagRunner(progress=False)
    from jfx.orchestrators import BeamDagRunner

    return BeamDagRunner(["--runner=DirectRunner"], progress=False)


def pipeline(tmp_path, *nodes, name="opts"):
    return Pipeline(name, components=list(nodes), pipeline_root=str(tmp_path / "root"),
                    metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


def test_retry_runs_again_until_the_component_succeeds(tmp_path, runner):
    node = lib.flaky(counter=str(tmp_path / "calls"), failures=2).with_retry(2, backoff_s=0.0)
    result = runner.run(pipeline(tmp_path, node))
    outcome = result.nodes["flaky"]
    assert outcome.state == "complete" and lib.read(outcome.outputs["out"][0].uri) == {"calls": 3}
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        attempts = [e.state for e in store.get_executions(node_id="flaky")]
    assert attempts == [ExecutionState.FAILED, ExecutionState.FAILED, ExecutionState.COMPLETE]


def test_retries_run_out(tmp_path, runner):
    node = lib.flaky(counter=str(tmp_path / "calls"), failures=5).with_retry(1, backoff_s=0.0)
    outcome = runner.run(pipeline(tmp_path, node)).nodes["flaky"]
    assert outcome.state == "failed"
    assert outcome.error == "ConnectionError: transient failure 2 (attempt 2)"
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        assert len(store.get_executions(node_id="flaky")) == 2, "one retry: exactly two attempts"
    assert (tmp_path / "calls").read_text() == "2", "the component was called twice, no more"


def test_a_timed_out_component_fails_and_publishes_nothing(tmp_path, runner):
    slow = lib.sleep_then_write(seconds=30.0).with_timeout(0.5)
    after = lib.make_numbers().after(slow)
    result = runner.run(pipeline(tmp_path, slow, after))
    assert result.nodes["sleep_then_write"].state == "failed"
    assert result.nodes["sleep_then_write"].error == "ComponentTimeoutError: node 'sleep_then_write' timed out after 0.5 s"
    assert result.nodes["make_numbers"].state == "skipped"
    assert not (tmp_path / "root" / "opts" / "sleep_then_write" / "out").exists()


def test_with_cache_false_always_runs_that_node(tmp_path, runner):
    def build():
        nums = lib.make_numbers(rows=3)
        return pipeline(tmp_path, nums, lib.total(numbers=nums.outputs["numbers"]).with_cache(False))

    runner.run(build())
    again = runner.run(build())
    assert again.nodes["make_numbers"].state == "cached"
    assert again.nodes["total"].state == "complete"
    assert again.nodes["total"].cache_miss_reason == "cache disabled for this node"


def test_options_travel_in_the_ir_and_are_checked():
    node = lib.make_numbers().with_resources(cpu=2, memory="4Gi", gpu=1).with_retry(3, 0.5).with_timeout(60)
    ir = PipelineIR.from_dict(Pipeline("ir", components=[node.with_cache(False)]).to_ir())
    options = ir.node("make_numbers").options
    assert (options.cache, options.retries, options.backoff_s, options.timeout_s) == (False, 3, 0.5, 60.0)
    assert options.resources == {"cpu": 2, "memory": "4Gi", "gpu": 1}
    with pytest.raises(InvalidPipelineError, match="with_retry\\(retries\\) takes an int >= 0"):
        lib.make_numbers().with_retry(-1)
    with pytest.raises(InvalidPipelineError, match="with_timeout takes seconds > 0"):
        lib.make_numbers().with_timeout(0)


def test_retries_wait_the_backoff_doubling_each_time_and_stop_at_the_first_success(tmp_path, monkeypatch):
    import time
    import types

    import jfx.orchestrators._launcher as launcher

    waits: list[float] = []
    # the launcher's own clock: its sleeps are recorded, not slept (no other module's sleep changes)
    monkeypatch.setattr(launcher, "time", types.SimpleNamespace(sleep=waits.append, perf_counter=time.perf_counter))
    node = lib.flaky(counter=str(tmp_path / "calls"), failures=3).with_retry(4, backoff_s=0.5)
    outcome = LocalDagRunner(progress=False).run(pipeline(tmp_path, node)).nodes["flaky"]
    assert outcome.state == "complete"
    assert waits == [0.5, 1.0, 2.0], "0.5 s, then twice as long before each later attempt"
    assert (tmp_path / "calls").read_text() == "4", "no attempt after the one that succeeded"


def test_every_attempt_is_shown_by_runs_show_and_the_ui(tmp_path, capsys):
    from jfx.cli import main
    from jfx.metadata.ui._common import Query
    from jfx.metadata.ui._run import execution_json

    node = lib.flaky(counter=str(tmp_path / "calls"), failures=2).with_retry(2, backoff_s=0.0)
    result = LocalDagRunner(progress=False).run(pipeline(tmp_path, node))
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    assert main(["runs", "show", result.run_id, "--metadata-url", url]) == 0
    text = capsys.readouterr().out
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("attempt ")]
    assert len(lines) == 3
    assert lines[0].startswith("attempt 1: execution") and "FAILED" in lines[0] and "transient failure 1" in lines[0]
    assert "transient failure 2 (attempt 2)" in lines[1]
    assert lines[2].startswith("attempt 3:") and "COMPLETE" in lines[2]
    assert main(["runs", "show", result.run_id, "--metadata-url", url, "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["nodes"]
    assert [(t["attempt"], t["state"]) for t in entry["attempts"]] == [(1, "FAILED"), (2, "FAILED"), (3, "COMPLETE")]
    with MetadataStore(url) as store:
        shown = execution_json(store, str(result.nodes["flaky"].execution_id), Query({}))
    assert [(t["attempt"], t["node_state"]) for t in shown["attempts"]] == [(1, "failed"), (2, "failed"), (3, "complete")]
    assert shown["attempts"][0]["error_message"].startswith("ConnectionError: transient failure 1")
