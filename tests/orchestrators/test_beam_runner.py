"""BeamDagRunner: the DAG as a Beam pipeline on the DirectRunner and on Dask."""

from __future__ import annotations

import jfx_testlib as lib
import pytest
from jfx_requires import importorskip

from jfx import Pipeline
from jfx.metadata import PIPELINE_RUN, ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner, NodeState, RunState
from jfx.orchestrators._beam_runner import BeamDagRunner, _outcome_from_store
from jfx.orchestrators._launcher import RunInfo

DIRECT = ["--runner=DirectRunner"]
MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
DASK_RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"


@pytest.fixture(scope="module")
def dask_address():
    distributed = importorskip("distributed", hint="pip install 'dask[distributed]'")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(params=["in_memory", "multi_processing", "dask"])
def beam_args(request):
    if request.param == "in_memory":
        return DIRECT
    if request.param == "multi_processing":
        return MULTI
    return [DASK_RUNNER, f"--dask_client_address={request.getfixturevalue('dask_address')}"]


@pytest.fixture
def env(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ok")
    return tmp_path, f"sqlite:///{tmp_path / 'md.sqlite'}", str(marker)


def states(result):
    return {k: o.state for k, o in result.nodes.items()}


def fingerprints(result):
    return {(node, key): [a.fingerprint for a in arts]
            for node, o in result.nodes.items() for key, arts in o.outputs.items()}


def failing(root, url, marker):
    """make_numbers -> total -> fail_unless -> gate -> maybe_extra (after gate), plus an independent whoami."""
    nums = lib.make_numbers()
    tot = lib.total(numbers=nums.outputs["numbers"])
    chk = lib.fail_unless(result=tot.outputs["result"], marker=marker)
    gate = lib.gate(result=chk.outputs["checked"])
    after = lib.maybe_extra().after(gate)
    return Pipeline("failing", components=[nums, tot, chk, gate, after, lib.whoami()], pipeline_root=str(root),
                    metadata_url=url)


def halting(root, url, limit):
    nums = lib.make_numbers(rows=10)
    tot = lib.total(numbers=nums.outputs["numbers"])
    gate = lib.gate(result=tot.outputs["result"], limit=limit)
    after = lib.maybe_extra(extra=nums.outputs["numbers"]).after(gate)
    return Pipeline("halt", components=[nums, tot, gate, after], pipeline_root=str(root), metadata_url=url)


def test_same_artifacts_as_the_local_runner_and_cache_hits(env, beam_args):
    tmp, url, marker = env
    local = LocalDagRunner(progress=False).run(lib.chain(str(tmp / "local"), f"sqlite:///{tmp / 'local.sqlite'}",
                                                         marker))
    runner = BeamDagRunner(beam_args, progress=False)
    first = runner.run(lib.chain(str(tmp / "beam"), url, marker), parameters={"rows": 3})
    assert first.state == RunState.COMPLETE and first.succeeded
    assert states(first) == {n: NodeState.COMPLETE for n in local.nodes}
    assert fingerprints(first) == fingerprints(local) and all(fingerprints(first).values())
    assert lib.read(first.nodes["total"].outputs["result"][0].uri) == {"total": 3}
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, first.run_id)
        assert run_ctx.properties["state"] == "COMPLETE" and run_ctx.properties["runner"] == "beam"
        assert run_ctx.properties["ir"]["pipeline"]["beam_pipeline_args"] == beam_args
        executions = {e.node_id: e for e in store.get_executions_by_context(run_ctx.id)}
        assert {n: e.id for n, e in executions.items()} == {n: o.execution_id for n, o in first.nodes.items()}
        assert {e.state for e in executions.values()} == {ExecutionState.COMPLETE}
    second = runner.run(lib.chain(str(tmp / "beam"), url, marker))
    assert second.state == RunState.COMPLETE
    assert set(states(second).values()) == {NodeState.CACHED}
    assert {n: o.cached_from for n, o in second.nodes.items()} == {n: o.execution_id for n, o in first.nodes.items()}


def test_a_failed_node_skips_its_downstream(env, beam_args):
    tmp, url, _ = env
    result = BeamDagRunner(beam_args, progress=False).run(failing(tmp, url, str(tmp / "missing")))
    assert result.state == RunState.FAILED
    assert states(result) == {"make_numbers": "complete", "total": "complete", "fail_unless": "failed",
                              "gate": "skipped", "maybe_extra": "skipped", "whoami": "complete"}
    failed = result.nodes["fail_unless"]
    assert failed.error.startswith("RuntimeError: marker file") and "Traceback" in failed.traceback
    assert result.nodes["gate"].error == "upstream node fail_unless failed"
    assert result.nodes["maybe_extra"].error == "upstream node gate skipped"
    assert result.nodes["gate"].execution_id is None
    # the nodes' Beam args: the runner's, given to the data components inside
    assert lib.read(result.nodes["whoami"].outputs["out"][0].uri)["beam"] == beam_args
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, result.run_id)
        assert run_ctx.properties["state"] == "FAILED"
        assert run_ctx.properties["node_states"]["maybe_extra"] == "skipped"
        executions = store.get_executions_by_context(run_ctx.id)
        assert sorted(e.node_id for e in executions) == ["fail_unless", "make_numbers", "total", "whoami"]
        assert store.get_execution(failed.execution_id).state == ExecutionState.FAILED
    assert not list((tmp / "failing" / "fail_unless").glob(".staging-*"))


@pytest.mark.parametrize("args", [DIRECT, "dask"], ids=["in_memory", "dask"])
def test_a_halting_node_stops_its_downstream(tmp_path, args, request):
    if args == "dask":
        args = [DASK_RUNNER, f"--dask_client_address={request.getfixturevalue('dask_address')}"]
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    runner = BeamDagRunner(args, progress=False)
    result = runner.run(halting(tmp_path, url, limit=10))
    assert result.state == RunState.FAILED
    assert states(result) == {"make_numbers": "complete", "total": "complete", "gate": "complete",
                              "maybe_extra": "skipped"}
    assert result.nodes["gate"].halted.startswith("total 45 is over the limit 10")
    assert result.nodes["maybe_extra"].error == "upstream node gate halted the pipeline"
    assert lib.read(result.nodes["gate"].outputs["verdict"][0].uri) == {"total": 45, "ok": False}
    again = runner.run(halting(tmp_path, url, limit=10))
    assert states(again)["gate"] == "cached" and states(again)["maybe_extra"] == "skipped"
    passing = runner.run(halting(tmp_path, url, limit=100))
    assert passing.state == RunState.COMPLETE and states(passing)["maybe_extra"] == "complete"


def test_independent_nodes_run_at_the_same_time_on_dask(tmp_path, dask_address):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    nodes = [lib.sleep_then_write(seconds=1.5, tag="a").with_id("a"),
             lib.sleep_then_write(seconds=1.5, tag="b").with_id("b")]
    pipeline = Pipeline("parallel", components=nodes, pipeline_root=str(tmp_path), metadata_url=url)
    result = BeamDagRunner([DASK_RUNNER, f"--dask_client_address={dask_address}"], progress=False).run(pipeline)
    assert result.state == RunState.COMPLETE
    a, b = (lib.read(result.nodes[n].outputs["out"][0].uri) for n in "ab")
    assert a["start"] < b["end"] and b["start"] < a["end"], "the two nodes overlapped in time"


def test_pipeline_args_win_resume_and_outcomes_from_the_store(env):
    tmp, url, _ = env
    pipeline = Pipeline("own", components=[lib.whoami()], pipeline_root=str(tmp), metadata_url=url,
                        beam_pipeline_args=["--runner=DirectRunner", "--direct_num_workers=1"])
    result = BeamDagRunner(DIRECT, progress=False).run(pipeline)
    assert lib.read(result.nodes["whoami"].outputs["out"][0].uri)["beam"] == ["--runner=DirectRunner",
                                                                               "--direct_num_workers=1"]
    runner = BeamDagRunner(DIRECT, progress=False)
    broken = runner.run(failing(tmp, url, str(tmp / "later")))
    assert states(broken)["gate"] == "skipped"
    (tmp / "later").write_text("ok")
    resumed = runner.run(failing(tmp, url, str(tmp / "later")), resume_run_id=broken.run_id)
    assert resumed.run_id == broken.run_id and resumed.state == RunState.COMPLETE
    assert resumed.nodes["total"].outputs == broken.nodes["total"].outputs, "kept from the first attempt"
    assert {states(resumed)[n] for n in ("fail_unless", "gate", "maybe_extra")} == {NodeState.COMPLETE}
    # the fallback when a worker's outcome file does not come back: rebuilt from its execution
    with MetadataStore(url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, resumed.run_id)
        run = RunInfo("failing", resumed.run_id, run_ctx.parent_id, run_ctx.id, str(tmp), True)
        for node_id in ("fail_unless", "gate"):
            rebuilt, real = _outcome_from_store(store, run, node_id, 0), resumed.nodes[node_id]
            assert (rebuilt.state, rebuilt.execution_id, rebuilt.outputs, rebuilt.halted) == \
                   (real.state, real.execution_id, real.outputs, real.halted)
        assert _outcome_from_store(store, run, "fail_unless", 0).state == NodeState.COMPLETE, "the latest attempt"
        assert _outcome_from_store(store, run, "fail_unless", real.execution_id) is None, "none after the watermark"


def test_a_beam_failure_fails_the_nodes_it_did_not_report(env, monkeypatch):
    import apache_beam as beam

    tmp, url, marker = env

    def broken_run(self, *args, **kwargs):
        raise RuntimeError("the cluster went away")

    monkeypatch.setattr(beam.Pipeline, "run", broken_run)
    result = BeamDagRunner(DIRECT, progress=False).run(lib.chain(str(tmp), url, marker))
    assert result.state == RunState.FAILED
    assert states(result) == {"make_numbers": "failed", "total": "skipped", "fail_unless": "skipped",
                              "maybe_extra": "failed"}
    assert result.nodes["make_numbers"].error == \
        "the Beam pipeline reported no outcome for this node: RuntimeError: the cluster went away"
    with MetadataStore(url) as store:
        assert store.get_context_by_name(PIPELINE_RUN, result.run_id).properties["state"] == "FAILED"


def test_importing_beam_leaves_the_root_logger_alone():
    """Beam's GCP client warns on the root logger at import, which would also configure it."""
    import subprocess
    import sys

    code = ("import logging, jfx.orchestrators._beam_runner, jfx.components._engine_beam; "
            "print(len(logging.getLogger().handlers))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "0"
    assert "apitools" not in proc.stderr
