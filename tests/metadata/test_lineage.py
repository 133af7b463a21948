"""Lineage walks (recursive SQL) on a small hand-built graph and on a long chain."""

from __future__ import annotations

import json

import pytest

from jfx.errors import InvalidArgumentError, NotFoundError
from jfx.metadata import ArtifactRecord, Event, EventType, ExecutionRecord, ExecutionState, MetadataStore


def _graph(store: MetadataStore) -> tuple[dict[str, int], dict[str, int]]:
    """Build the test graph; returns (artifact ids by name, execution ids by name).

    a -E1-> b -E2-> c;  E0 (no inputs) -> d;  c, d -E3-> f  (fan-in);
    b -E4-> g, b -E5-> h, g, h -E6-> i  (diamond);  i -E7-> (nothing);  z -E8-> z  (cycle).
    """
    art: dict[str, ArtifactRecord] = {"a": ArtifactRecord("Examples", "/a"), "z": ArtifactRecord("X", "/z")}
    store.put_artifacts([art["a"], art["z"]])
    ex: dict[str, int] = {}

    def run(name: str, inputs: str, outputs: str) -> None:
        new = {o: ArtifactRecord("X", f"/{o}") for o in outputs if o not in art}
        art.update(new)
        record = ExecutionRecord("C", name, state=ExecutionState.COMPLETE)
        store.put_execution(
            record,
            inputs={f"in{k}": [art[i].id] for k, i in enumerate(inputs)},
            outputs={f"out{k}": [art[o]] for k, o in enumerate(outputs)},
        )
        ex[name] = record.id

    for name, inputs, outputs in [
        ("E0", "", "d"),
        ("E1", "a", "b"),
        ("E2", "b", "c"),
        ("E3", "cd", "f"),
        ("E4", "b", "g"),
        ("E5", "b", "h"),
        ("E6", "gh", "i"),
        ("E7", "i", ""),
        ("E8", "z", "z"),
    ]:
        run(name, inputs, outputs)
    return {k: v.id for k, v in art.items()}, ex


CASES = [
    # (start, direction, depth, artifacts, executions)
    ("c", "upstream", 0, "c", ""),
    ("c", "upstream", 1, "cb", "E2"),
    ("c", "upstream", 2, "cba", "E2 E1"),
    ("c", "upstream", None, "cba", "E2 E1"),
    ("f", "upstream", 1, "fcd", "E3"),
    ("f", "upstream", 2, "fcdb", "E3 E2 E0"),
    ("f", "upstream", None, "fcdba", "E3 E2 E0 E1"),
    ("i", "upstream", 1, "igh", "E6"),
    ("i", "upstream", 2, "ighb", "E6 E4 E5"),
    ("i", "upstream", None, "ighba", "E6 E4 E5 E1"),
    ("d", "upstream", None, "d", "E0"),
    ("a", "upstream", None, "a", ""),
    ("b", "downstream", 0, "b", ""),
    ("b", "downstream", 1, "bcgh", "E2 E4 E5"),
    ("b", "downstream", 2, "bcghfi", "E2 E4 E5 E3 E6"),
    ("b", "downstream", None, "bcghfi", "E2 E4 E5 E3 E6 E7"),
    ("a", "downstream", 1, "ab", "E1"),
    ("a", "downstream", None, "abcghfi", "E1 E2 E4 E5 E3 E6 E7"),
    ("i", "downstream", 1, "i", "E7"),
    ("d", "downstream", None, "df", "E3"),
    ("c", "both", 0, "c", ""),
    ("c", "both", 1, "bcf", "E2 E3"),
    ("c", "both", None, "abcf", "E1 E2 E3"),  # a union of two walks: not d, a co-input
    ("z", "upstream", None, "z", "E8"),
    ("z", "both", 3, "z", "E8"),
]


@pytest.fixture(scope="module")
def graph(module_store):
    return module_store, *_graph(module_store)


@pytest.mark.parametrize("start, direction, depth, want_artifacts, want_executions", CASES)
def test_lineage_reaches_exactly(graph, start, direction, depth, want_artifacts, want_executions):
    store, arts, exs = graph
    result = store.lineage(arts[start], direction, depth)
    assert result.artifact_ids == {arts[a] for a in want_artifacts}
    assert result.execution_ids == {exs[e] for e in want_executions.split()}
    # Events: exactly the recorded edges between the returned nodes.
    all_events = store.get_events_by_execution_ids(list(exs.values()))
    expected = {
        (e.artifact_id, e.execution_id, e.type)
        for e in all_events
        if e.artifact_id in result.artifact_ids and e.execution_id in result.execution_ids
    }
    assert {(e.artifact_id, e.execution_id, e.type) for e in result.events} == expected
    assert len(result.events) == len(expected)


def test_lineage_edges_and_records(graph):
    store, arts, exs = graph
    result = store.lineage(arts["c"], "upstream", 1)
    assert sorted((e.artifact_id, e.execution_id, e.type, e.key) for e in result.events) == sorted(
        [(arts["b"], exs["E2"], EventType.INPUT, "in0"), (arts["c"], exs["E2"], EventType.OUTPUT, "out0")]
    )
    assert [a.uri for a in result.artifacts] == ["/b", "/c"]
    assert [e.node_id for e in result.executions] == ["E2"]
    payload = json.loads(json.dumps(result.to_dict()))
    assert {a["id"] for a in payload["artifacts"]} == {arts["b"], arts["c"]}
    assert payload["events"][0]["type"] in ("INPUT", "OUTPUT")


def test_lineage_errors_name_the_argument(graph):
    store, arts, _ = graph
    with pytest.raises(NotFoundError, match="artifact id 999999 does not exist"):
        store.lineage(999999)
    with pytest.raises(InvalidArgumentError, match="direction='sideways'"):
        store.lineage(arts["a"], "sideways")
    with pytest.raises(InvalidArgumentError, match="depth=-1"):
        store.lineage(arts["a"], depth=-1)
    with pytest.raises(InvalidArgumentError, match="artifact_id='1'"):
        store.lineage("1")


CHAIN = 2000


def test_lineage_on_a_long_chain(store):
    """a0 -E1-> a1 -E2-> ... a1999: recursion must reach both ends, in one walk per direction."""
    arts = [ArtifactRecord("X", f"/chain/{i}") for i in range(CHAIN)]
    store.put_artifacts(arts)
    execs = [ExecutionRecord("Step", f"step{i}", state="COMPLETE") for i in range(1, CHAIN)]
    store.put_executions(execs)
    events = []
    for i, ex in enumerate(execs, start=1):
        events.append(Event(arts[i - 1].id, ex.id, EventType.INPUT, "in"))
        events.append(Event(arts[i].id, ex.id, EventType.OUTPUT, "out"))
    store.put_events(events)

    up = store.lineage(arts[-1].id)
    assert up.artifact_ids == {a.id for a in arts}
    assert up.execution_ids == {e.id for e in execs}
    assert len(up.events) == 2 * (CHAIN - 1)

    down = store.lineage(arts[0].id, "downstream")
    assert down.artifact_ids == up.artifact_ids and down.execution_ids == up.execution_ids

    near = store.lineage(arts[1000].id, "both", depth=10)
    assert near.artifact_ids == {a.id for a in arts[990:1011]}
    assert near.execution_ids == {e.id for e in execs[990:1010]}
