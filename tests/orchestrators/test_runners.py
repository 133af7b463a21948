"""One runner interface: every runner implements ``Runner.run``; ``jfx run`` looks runners up by name."""

from __future__ import annotations

import inspect
import subprocess
import sys

import jfx_testlib as lib
import pytest
from jfx.errors import InvalidArgumentError
from jfx.metadata import MetadataStore
from jfx.metadata._runs import RunState, get_run
from jfx.orchestrators import KubeflowDagRunner, LocalDagRunner
from jfx.orchestrators._run import Runner, RunSession
from jfx.orchestrators._runners import RUNNER_NAMES, RunnerOptions, make_runner

RUN_KEYWORDS = ["parameters", "enable_cache", "run_id", "resume_run_id", "from_nodes", "to_nodes", "from_run"]


def _keywords(method) -> list[str]:
    return [p.name for p in inspect.signature(method).parameters.values() if p.kind is p.KEYWORD_ONLY]


def test_every_runner_implements_the_runner_protocol():
    from jfx.orchestrators import BeamDagRunner

    runners = [LocalDagRunner(), BeamDagRunner(), KubeflowDagRunner("img", local=True)]
    for runner in runners:
        assert isinstance(runner, Runner), type(runner).__name__
        assert _keywords(runner.run)[:len(RUN_KEYWORDS)] == RUN_KEYWORDS, type(runner).__name__
    assert KubeflowDagRunner.run_local is KubeflowDagRunner.run  # the older name still works


def test_runners_are_looked_up_by_name_with_typed_options():
    assert RUNNER_NAMES == ("local", "beam", "kfp-local")
    local, takes_beam_args = make_runner("local", RunnerOptions(max_workers=3, executor="process", progress=False))
    assert isinstance(local, LocalDagRunner) and (local.max_workers, local.executor) == (3, "process")
    assert not takes_beam_args
    beam, takes_beam_args = make_runner("beam", RunnerOptions(beam_args=("--runner=DirectRunner",)))
    assert beam.beam_pipeline_args == ["--runner=DirectRunner"] and takes_beam_args
    kfp, _ = make_runner("kfp-local", RunnerOptions(pipeline_root="/tmp/r"))
    assert isinstance(kfp, Runner)
    with pytest.raises(InvalidArgumentError, match="no runner 'spark'; choose one of local, beam, kfp-local"):
        make_runner("spark")


def test_kfp_local_refuses_resume_before_it_starts_anything(tmp_path):
    runner, _ = make_runner("kfp-local", RunnerOptions(metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}"))
    with pytest.raises(InvalidArgumentError, match="--resume runs on the local and beam runners"):
        runner.run(lib.chain(str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}", "x"),
                   resume_run_id="some-run")


def test_kubeflow_runner_refuses_resume_and_starts_no_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    runner = KubeflowDagRunner("img", local=True, metadata_url=url, pipeline_root=str(tmp_path / "root"))
    with pytest.raises(InvalidArgumentError, match="the kfp-local runner cannot resume a run"):
        runner.run(lib.chain(str(tmp_path / "root"), url, "x"), resume_run_id="some-run")
    with MetadataStore(url) as store:
        assert store.get_runs() == []


def test_a_session_records_start_and_end_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    ir = lib.chain(str(tmp_path / "root"), url, str(tmp_path / "marker")).compile()
    with RunSession.open(ir, runner="custom", progress=False, run_id="chain-custom") as session:
        assert session.outcomes == {} and session.selected is None
        assert session.record().state == RunState.RUNNING and session.record().runner == "custom"
        result = session.finish(RunState.CANCELLED)
    assert (result.run_id, result.state, result.nodes) == ("chain-custom", RunState.CANCELLED, {})
    with MetadataStore(url) as store:
        record = get_run(store, "chain-custom")
    assert record.state == RunState.CANCELLED and record.end_time is not None


def test_core_and_orchestrators_do_not_import_the_command_line():
    code = ("import argparse, sys\n"
            "from jfx.core import _serving\n"
            "import jfx.orchestrators, jfx.orchestrators._kfp_cli, jfx.orchestrators._runners\n"
            "_serving.build_parser(argparse.ArgumentParser().add_subparsers())\n"
            "print('jfx.cli' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
