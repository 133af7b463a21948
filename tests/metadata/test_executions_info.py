"""ExecutionInfo: the one reader and writer of what jfx records about an execution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import jfx
from jfx.metadata import ExecutionRecord, ExecutionState
from jfx.metadata._executions_info import ExecutionInfo, NodeState, node_state_of

PACKAGE = Path(jfx.__file__).parent


def test_info_round_trips_through_properties_and_keeps_what_it_does_not_know():
    info = ExecutionInfo(pipeline="p", run_id="r", pid=7, host="h", cache_miss_reason="no earlier run",
                         cache_material={"parameters": {"rows": 3}}, halted="anomalies", attempt=2,
                         log_uri="/root/p/.logs/gen/3.log", extra={"custom": [1, 2]})
    props = info.to_properties()
    assert props["attempt"] == 2 and props["custom"] == [1, 2] and "by_condition" not in props
    assert ExecutionInfo.from_properties(props) == info
    # what a first attempt leaves out reads back as its default
    assert ExecutionInfo.from_properties({"run_id": "r"}) == ExecutionInfo(run_id="r")
    assert ExecutionInfo.from_properties({"attempt": "x"}).attempt == 1


def test_a_reused_execution_names_its_source_and_reads_as_reused():
    e = ExecutionRecord("C", "gen", id=9, state=ExecutionState.CACHED,
                        properties=ExecutionInfo(reused_from=4, reused_from_run="run-1").to_properties())
    info = ExecutionInfo.from_record(e)
    assert info.source_execution == 4 and info.is_reused
    assert info.node_state(e) == NodeState.REUSED
    assert ExecutionInfo(cached_from=3).source_execution == 3


@pytest.mark.parametrize("state, run_over, expected", [
    (ExecutionState.COMPLETE, False, "complete"),
    (ExecutionState.CACHED, False, "cached"),
    (ExecutionState.FAILED, False, "failed"),
    (ExecutionState.ABANDONED, False, "abandoned"),
    (ExecutionState.CANCELLED, False, "cancelled"),
    (ExecutionState.SKIPPED, False, "skipped"),
    (ExecutionState.NEW, False, "pending"),
    (ExecutionState.RUNNING, False, "running"),
    (ExecutionState.RUNNING, True, "failed"),
    (ExecutionState.NEW, True, "failed"),
])
def test_one_mapping_from_execution_state_to_node_state(state, run_over, expected):
    node = node_state_of(state, run_over=run_over)
    assert node == expected and f"{node}" == expected and str(node) == expected
    assert node.failed == (expected in ("failed", "abandoned", "cancelled"))
    assert node.succeeded == (expected in ("complete", "cached"))


def test_the_error_line_is_the_message_else_the_tracebacks_last_line():
    e = ExecutionRecord("C", "gen", error="Traceback ...\n  File x\nValueError: bad\n")
    assert ExecutionInfo.from_record(e).error_line(e) == "ValueError: bad"
    assert ExecutionInfo(error_message="boom").error_line(e) == "boom"
    assert ExecutionInfo().error_line(ExecutionRecord("C", "gen")) is None


# The keys ExecutionInfo owns: outside jfx.metadata, none is read or written by its string.
_KEYS = ("error_message", "skip_reason", "halted", "by_condition", "cached_from", "cache_miss_reason",
         "cache_material", "log_uri", "attempt", "reused_from", "reused_from_run")
_ALTERNATIVES = "|".join(_KEYS)
_READ = re.compile(r"""properties(?:\.get\(|\[)\s*["'](""" + _ALTERNATIVES + r""")["']""")
_WRITE = re.compile(r"""["'](""" + _ALTERNATIVES + r""")["']\s*:""")


def test_no_module_outside_metadata_reads_or_writes_execution_properties_by_key():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("metadata/_executions_info.py", "tests/", ".venv/", "build/", "core/", "components/")):
            continue  # core and components write their own JSON documents (serving status, reports)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _READ.search(line) or ("properties" in line and _WRITE.search(line)):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_the_log_uri_key_that_sql_queries_read_is_the_field_execution_info_writes():
    from jfx.metadata._executions_info import LOG_URI_KEY

    assert ExecutionInfo(log_uri="/root/p/.logs/n/7.log").to_properties() == {LOG_URI_KEY: "/root/p/.logs/n/7.log"}
