"""Each execution's log file: what its component printed and logged, kept apart per node."""

from __future__ import annotations

import sys
from pathlib import Path

import jfx_flow as flow
import pytest

from jfx import Pipeline
from jfx.metadata import MetadataStore
from jfx.orchestrators import LocalDagRunner


@pytest.fixture(params=["local", "beam"])
def runner(request):
    if request.param == "local":
        return LocalDagRunner(progress=False, max_workers=4)
    from jfx.orchestrators import BeamDagRunner

    return BeamDagRunner(["--runner=DirectRunner"], progress=False)


def log_of(url, execution_id) -> str:
    with MetadataStore(url) as store:
        uri = store.get_execution(execution_id).properties["log_uri"]
    return Path(uri).read_text()


def test_each_node_gets_its_own_log_of_prints_and_log_records(tmp_path, runner):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    nodes = [flow.chatty(text=f"node{i}").with_id(f"chatty{i}") for i in range(4)]
    result = runner.run(Pipeline("logs", nodes, pipeline_root=str(tmp_path / "root"), metadata_url=url))
    assert result.succeeded
    for i in range(4):
        text = log_of(url, result.nodes[f"chatty{i}"].execution_id)
        assert f"printed node{i}\n" in text and f"to stderr node{i}\n" in text
        assert f"WARNING jfx_flow: logged node{i}" in text
        assert all(f"node{j}" not in text for j in range(4) if j != i)  # nothing from the other nodes
    assert type(sys.stdout).__name__ != "_Tee" and type(sys.stderr).__name__ != "_Tee"  # put back


def test_a_failed_execution_keeps_its_log(tmp_path):
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    node = flow.chatty(text="doomed", fail=True)
    result = LocalDagRunner(progress=False).run(Pipeline("logs", [node], pipeline_root=str(tmp_path / "root"),
                                                         metadata_url=url))
    outcome = result.nodes["chatty"]
    assert outcome.state == "failed" and "chatty doomed failed" in outcome.error
    assert "printed doomed" in log_of(url, outcome.execution_id)
