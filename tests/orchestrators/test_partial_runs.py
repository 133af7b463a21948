"""Partial runs (--from/--to): the nodes left out are reused from ONE earlier run, never a halted one.

The same rule on the local and Beam runners (here) and on kfp.local (test_kubeflow_local.py).
"""

from __future__ import annotations

import re

import jfx_partial as flow
import pytest
from jfx.errors import InvalidArgumentError, NotFoundError
from jfx.metadata import PIPELINE_RUN, MetadataStore
from jfx.orchestrators import LocalDagRunner, NodeState, RunState

REUSED = ["ingest", "validate", "fit"]


@pytest.fixture(params=["local", "beam"])
def runner(request):
    if request.param == "local":
        return LocalDagRunner(progress=False)
    from jfx.orchestrators import BeamDagRunner

    return BeamDagRunner(["--runner=DirectRunner"], progress=False)


@pytest.fixture
def env(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("Adelie Gentoo Chinstrap Adelie")
    bad.write_text("Adelie Penguinzilla")
    return flow.penguinish(str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}"), good, bad


def outputs(result, nodes=REUSED):
    return {n: [a.id for arts in result.nodes[n].outputs.values() for a in arts] for n in nodes}


def partial(runner, pipeline, data, **kwargs):
    return runner.run(pipeline, parameters={"data": str(data)}, from_nodes=["train"], to_nodes=["evaluate"], **kwargs)


def test_reused_nodes_all_come_from_one_run_that_no_validator_halted(runner, env):
    pipeline, good, bad = env
    first = runner.run(pipeline, parameters={"data": str(good)})
    assert first.state == RunState.COMPLETE
    rejected = runner.run(pipeline, parameters={"data": str(bad)})
    assert rejected.nodes["validate"].halted and rejected.nodes["fit"].state == NodeState.SKIPPED

    part = partial(runner, pipeline, good)
    assert part.state == RunState.COMPLETE, {k: o.error for k, o in part.nodes.items()}
    assert {n: part.nodes[n].state for n in REUSED} == dict.fromkeys(REUSED, NodeState.REUSED)
    assert {n: part.nodes[n].reused_from_run for n in REUSED} == dict.fromkeys(REUSED, first.run_id)
    assert outputs(part) == outputs(first)
    assert part.nodes["evaluate"].succeeded  # the same inputs as in the first run: a cache hit

    # the same parameters, new data behind them: that run halts, and is passed over too
    good.write_text("Gentoo Penguinzilla")
    halted = runner.run(pipeline, parameters={"data": str(good)})
    assert halted.nodes["ingest"].state == NodeState.COMPLETE and halted.nodes["validate"].halted
    again = partial(runner, pipeline, good, enable_cache=False)
    assert again.state == RunState.COMPLETE, {k: o.error for k, o in again.nodes.items()}
    # the newest source is the partial run above (all of it from the first run), not the halted one
    assert {again.nodes[n].reused_from_run for n in REUSED} == {part.run_id}
    assert outputs(again) == outputs(first)


def test_from_run_chooses_the_run_and_the_default_is_the_newest(runner, env):
    pipeline, good, _ = env
    first = runner.run(pipeline, parameters={"data": str(good)})
    second = runner.run(pipeline, parameters={"data": str(good)}, enable_cache=False)
    assert outputs(first) != outputs(second)

    newest = partial(runner, pipeline, good)
    assert {newest.nodes[n].reused_from_run for n in REUSED} == {second.run_id}
    assert outputs(newest) == outputs(second)
    chosen = partial(runner, pipeline, good, from_run=first.run_id)
    assert chosen.state == RunState.COMPLETE
    assert {chosen.nodes[n].reused_from_run for n in REUSED} == {first.run_id}
    assert outputs(chosen) == outputs(first)
    # a partial run is a run like any other: its reused outputs can be reused again
    later = partial(runner, pipeline, good)
    assert {later.nodes[n].reused_from_run for n in REUSED} == {chosen.run_id}
    assert outputs(later) == outputs(first)


def other_pipeline_run(tmp_path, url, name):
    import jfx_testlib as lib

    marker = tmp_path / "marker"
    marker.write_text("ok")
    done = LocalDagRunner(progress=False).run(lib.chain(str(tmp_path / name), url, str(marker), name=name))
    assert done.state == RunState.COMPLETE
    return done


def test_no_usable_run_refuses_naming_the_node_and_starts_no_run(runner, env, tmp_path):
    pipeline, good, bad = env
    before = other_pipeline_run(tmp_path, pipeline.metadata_url, "before")
    # the refusal names the values of the parameters the reused nodes read, which an earlier run must share
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(
            f"partial run: node 'ingest' has no usable output: no earlier run of pipeline 'penguinish' "
            f"with the same data={str(good)!r}; run the whole pipeline first, or include ingest in the run") + "$"):
        partial(runner, pipeline, good)

    rejected = runner.run(pipeline, parameters={"data": str(bad)})
    with pytest.raises(InvalidArgumentError) as err:
        partial(runner, pipeline, bad)
    message = str(err.value)
    assert "\n" not in message
    assert f"node 'validate' has no usable output: it halted the pipeline in run {rejected.run_id}" in message
    with pytest.raises(InvalidArgumentError, match=f"node 'validate' has no usable output in run {rejected.run_id}: "
                                                   "it halted the pipeline"):
        partial(runner, pipeline, good, from_run=rejected.run_id)
    with pytest.raises(NotFoundError, match="no run 'nope' of pipeline 'penguinish'"):
        partial(runner, pipeline, good, from_run="nope")
    # a run that exists, but of another pipeline in the same store (made before or after this one), is no
    # run of this one
    for other in (before, other_pipeline_run(tmp_path, pipeline.metadata_url, "after")):
        with pytest.raises(NotFoundError, match=f"no run '{other.run_id}' of pipeline 'penguinish'"):
            partial(runner, pipeline, good, from_run=other.run_id)
    with pytest.raises(InvalidArgumentError, match="from_run needs from_nodes or to_nodes"):
        runner.run(pipeline, parameters={"data": str(good)}, from_run=rejected.run_id)
    # with several unusable runs, the refusal names the newest of them
    rejected_again = runner.run(pipeline, parameters={"data": str(bad)})
    with pytest.raises(InvalidArgumentError, match=f"it halted the pipeline in run {rejected_again.run_id}, "
                                                   "the newest earlier run"):
        partial(runner, pipeline, bad)
    with MetadataStore(pipeline.metadata_url) as store:
        assert sorted(r.name for r in store.get_runs("penguinish")) == sorted([rejected.run_id, rejected_again.run_id]), \
            "a refused run is not started"


def test_a_validator_halting_downstream_of_reused_nodes_rules_the_run_out(runner, env):
    pipeline, good, _ = env
    first = runner.run(pipeline, parameters={"data": str(good)})
    good.write_text("Penguinzilla")
    runner.run(pipeline, parameters={"data": str(good)})  # ingest completes, validate halts
    # from validate on, only ingest is reused: the run where validate rejected its output is not a source
    part = runner.run(pipeline, parameters={"data": str(good)}, from_nodes=["validate"], to_nodes=["validate"])
    assert part.nodes["ingest"].reused_from_run == first.run_id
    assert part.state == RunState.COMPLETE and not part.nodes["validate"].halted


def test_every_kubeflow_task_of_a_run_reuses_the_run_its_first_task_chose(env):
    from jfx.orchestrators.entrypoint import outcomes_from_store, run_node

    pipeline, good, _ = env
    local = LocalDagRunner(progress=False)
    ir, data = pipeline.compile(), {"data": str(good)}
    first = local.run(pipeline, parameters=data)
    task = {"ir": ir, "run_id": "penguinish-kfp-1", "metadata_url": pipeline.metadata_url, "parameters": data,
            "from_nodes": ["train"], "to_nodes": ["evaluate"]}
    assert run_node(node_id="ingest", **task).reused_from_run == first.run_id
    newer = local.run(pipeline, parameters=data, enable_cache=False)  # ends while the Kubeflow run goes on
    assert run_node(node_id="validate", **task).reused_from_run == first.run_id
    assert run_node(node_id="fit", **task).reused_from_run == first.run_id
    assert run_node(node_id="train", **task).succeeded
    with MetadataStore(pipeline.metadata_url) as store:
        from jfx.orchestrators.entrypoint import join_run

        run = join_run(store, ir, "penguinish-kfp-1", runner="kubeflow", parameters=data)
        rebuilt = outcomes_from_store(store, ir, run, ir.select(["train"], ["evaluate"]))
    assert {n: (rebuilt[n].state, rebuilt[n].reused_from_run) for n in REUSED} == \
        dict.fromkeys(REUSED, (NodeState.REUSED, first.run_id))
    assert newer.run_id != first.run_id


def test_a_resumed_partial_run_keeps_the_run_it_reuses(tmp_path):
    import jfx_testlib as lib

    marker = tmp_path / "marker"
    marker.write_text("ok")
    pipeline = lib.chain(str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}", str(marker))
    local = LocalDagRunner(progress=False)
    first = local.run(pipeline)
    marker.unlink()
    part = local.run(pipeline, from_nodes=["fail_unless"], enable_cache=False)
    assert part.nodes["fail_unless"].state == NodeState.FAILED
    assert {part.nodes[n].reused_from_run for n in ("make_numbers", "total")} == {first.run_id}
    local.run(pipeline, enable_cache=False)  # a newer source, which the resumed run must not switch to
    marker.write_text("ok")
    resumed = local.run(pipeline, from_nodes=["fail_unless"], resume_run_id=part.run_id, enable_cache=False)
    assert resumed.state == RunState.COMPLETE
    assert resumed.nodes["fail_unless"].state == NodeState.COMPLETE
    assert resumed.nodes["total"].outputs["result"][0].id == first.nodes["total"].outputs["result"][0].id
    assert {resumed.nodes[n].state for n in ("make_numbers", "total")} == {NodeState.REUSED}
    assert {resumed.nodes[n].reused_from_run for n in ("make_numbers", "total")} == {first.run_id}
    with MetadataStore(pipeline.metadata_url) as store:
        run_ctx = store.get_context_by_name(PIPELINE_RUN, part.run_id)
    assert run_ctx.properties["partial"]["reused_from_run"] == first.run_id


def test_a_run_is_never_chosen_as_its_own_source(env):
    from jfx.orchestrators._partial import choose_source

    pipeline, good, _ = env
    local = LocalDagRunner(progress=False)
    first = local.run(pipeline, parameters={"data": str(good)})
    second = local.run(pipeline, parameters={"data": str(good)}, enable_cache=False)
    ir = pipeline.compile()
    selected = ir.select(["train"], ["evaluate"])
    params = ir.resolve_parameters({"data": str(good)})
    with MetadataStore(pipeline.metadata_url) as store:
        assert choose_source(store, ir, selected, params).run_id == second.run_id
        # e.g. a resumed partial run, whose own reused nodes are live: it is passed over
        excluded = "".join(second.run_id)  # an equal string, not the same object
        assert choose_source(store, ir, selected, params, exclude_run=excluded).run_id == first.run_id


def test_a_refusal_names_no_parameters_when_the_reused_nodes_read_none(tmp_path):
    import jfx_testlib as lib
    from jfx import Pipeline

    nums = lib.make_numbers(rows=3, note="")
    tot = lib.total(numbers=nums.outputs["numbers"])
    pipeline = Pipeline("fixed", components=[nums, tot], pipeline_root=str(tmp_path / "root"),
                        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")
    with pytest.raises(InvalidArgumentError) as err:
        LocalDagRunner(progress=False).run(pipeline, from_nodes=["total"])
    assert str(err.value) == ("partial run: node 'make_numbers' has no usable output: no earlier run of pipeline "
                              "'fixed'; run the whole pipeline first, or include make_numbers in the run")


def test_a_run_still_going_is_not_a_source(env):
    from jfx.orchestrators.entrypoint import run_node

    pipeline, good, _ = env
    local = LocalDagRunner(progress=False)
    data = {"data": str(good)}
    first = local.run(pipeline, parameters=data)
    # a newer run (a Kubeflow one, task by task) has made the reused nodes' outputs but has not ended:
    # a node after them may yet halt it
    task = {"ir": pipeline.compile(), "run_id": "penguinish-going", "metadata_url": pipeline.metadata_url,
            "parameters": data, "enable_cache": False}
    for node_id in REUSED:
        assert run_node(node_id=node_id, **task).succeeded
    part = partial(local, pipeline, good)
    assert part.state == RunState.COMPLETE
    assert {part.nodes[n].reused_from_run for n in REUSED} == {first.run_id}


def test_the_source_is_found_past_a_page_of_newer_runs_that_do_not_match(tmp_path):
    import jfx_testlib as lib

    marker = tmp_path / "marker"
    marker.write_text("ok")
    pipeline = lib.chain(str(tmp_path / "root"), f"sqlite:///{tmp_path / 'md.sqlite'}", str(marker))
    local = LocalDagRunner(progress=False)
    first = local.run(pipeline, parameters={"rows": 3})
    for _ in range(21):  # newer runs, with another value of a parameter the reused nodes read
        assert local.run(pipeline, parameters={"rows": 4}).state == RunState.COMPLETE
    part = local.run(pipeline, parameters={"rows": 3}, from_nodes=["fail_unless"])
    assert part.state == RunState.COMPLETE
    assert {part.nodes[n].reused_from_run for n in ("make_numbers", "total")} == {first.run_id}
