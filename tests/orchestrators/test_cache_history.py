"""The cache against a node's history: the newest usable execution is reused, the newest explains a miss."""

from __future__ import annotations

import jfx_testlib as lib
import pytest
from jfx.orchestrators import LocalDagRunner, NodeState

RUNNER = LocalDagRunner(progress=False)


@pytest.fixture
def env(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ok")
    return str(tmp_path / "artifacts"), f"sqlite:///{tmp_path / 'md.sqlite'}", str(marker)


def test_the_newest_of_several_usable_executions_is_reused(env):
    RUNNER.run(lib.chain(*env))
    newer = RUNNER.run(lib.chain(*env), enable_cache=False)
    again = RUNNER.run(lib.chain(*env))
    assert {o.state for o in again.nodes.values()} == {NodeState.CACHED}
    assert {k: o.cached_from for k, o in again.nodes.items()} == {k: o.execution_id for k, o in newer.nodes.items()}


def test_a_miss_is_explained_against_the_newest_earlier_execution(env):
    for rows in (3, 4):
        RUNNER.run(lib.chain(*env), parameters={"rows": rows})
    changed = RUNNER.run(lib.chain(*env), parameters={"rows": 5})
    assert changed.nodes["make_numbers"].cache_miss_reason == "new parameter value: rows 4 -> 5"


def test_a_lowered_parameter_is_a_change_too(env):
    RUNNER.run(lib.chain(*env), parameters={"rows": 5})
    lowered = RUNNER.run(lib.chain(*env), parameters={"rows": 2})
    assert lowered.nodes["make_numbers"].cache_miss_reason == "new parameter value: rows 5 -> 2"
    assert lowered.nodes["total"].cache_miss_reason == "changed upstream artifact: numbers"


def test_every_changed_upstream_artifact_is_named_whichever_way_it_changed(env):
    RUNNER.run(lib.chain(*env), parameters={"rows": 1})
    for rows in range(2, 8):
        changed = RUNNER.run(lib.chain(*env), parameters={"rows": rows})
        assert changed.nodes["total"].cache_miss_reason == "changed upstream artifact: numbers", rows
