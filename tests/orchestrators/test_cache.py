"""The launcher's cache: what makes a hit, and what a miss says about itself."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import jfx_testlib as lib
import pytest
from jfx import Pipeline
from jfx.metadata import ArtifactState, ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner, NodeState
from jfx.types import Dataset, Model

RUNNER = LocalDagRunner(progress=False)


@pytest.fixture
def env(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ok")
    return tmp_path / "artifacts", f"sqlite:///{tmp_path / 'md.sqlite'}", marker


def states(result):
    return {k: o.state for k, o in result.nodes.items()}


@pytest.mark.parametrize("removed", ["folder", "file"])
def test_a_hit_whose_output_folder_was_deleted_reruns_and_says_why(env, removed):
    root, url, marker = env
    first = RUNNER.run(lib.chain(str(root), url, str(marker)))
    [old] = first.nodes["total"].outputs["result"]
    if removed == "folder":
        shutil.rmtree(old.uri)
    else:  # the folder is replaced by a file: still no usable output
        shutil.rmtree(old.uri)
        Path(old.uri).write_text("not a folder")
    second = RUNNER.run(lib.chain(str(root), url, str(marker)))
    assert states(second)["make_numbers"] == NodeState.CACHED
    total = second.nodes["total"]
    assert total.state == NodeState.COMPLETE, "a deleted output must not be reused"
    assert total.cache_miss_reason == "earlier outputs no longer available"
    [new] = total.outputs["result"]
    assert new.id != old.id and Path(new.uri).is_dir()
    assert lib.read(new.uri) == {"total": 3}
    with MetadataStore(url) as store:
        assert store.get_execution(total.execution_id).state == ExecutionState.COMPLETE
    # the rerun published the same content, so what it feeds still hits the cache, on the new output
    third = RUNNER.run(lib.chain(str(root), url, str(marker)))
    assert set(states(third).values()) == {NodeState.CACHED}
    assert third.nodes["total"].cached_from == total.execution_id


def test_an_earlier_execution_with_its_outputs_is_used_when_the_newer_ones_are_gone(env):
    root, url, marker = env
    first = RUNNER.run(lib.chain(str(root), url, str(marker)))
    second = RUNNER.run(lib.chain(str(root), url, str(marker)), enable_cache=False)
    shutil.rmtree(second.nodes["total"].outputs["result"][0].uri)
    third = RUNNER.run(lib.chain(str(root), url, str(marker)))
    assert third.nodes["total"].state == NodeState.CACHED
    assert third.nodes["total"].cached_from == first.nodes["total"].execution_id


def _typed(tmp_path: Path, out_type: type) -> Pipeline:
    node = lib.any_artifact(_output_types={"out": out_type})
    return Pipeline("typed", components=[node], pipeline_root=str(tmp_path / "a"),
                    metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


def test_the_output_types_are_part_of_the_cache_key(tmp_path):
    first = RUNNER.run(_typed(tmp_path, Dataset))
    assert RUNNER.run(_typed(tmp_path, Dataset)).nodes["any_artifact"].state == NodeState.CACHED
    # same code, parameters and inputs; only the declared output type differs
    other = RUNNER.run(_typed(tmp_path, Model)).nodes["any_artifact"]
    assert other.state == NodeState.COMPLETE, "an output of another type must not come from the cache"
    assert other.cache_miss_reason == "changed output types"
    assert other.outputs["out"][0].id != first.nodes["any_artifact"].outputs["out"][0].id


@pytest.mark.parametrize("state", [ArtifactState.DELETED, ArtifactState.PENDING, ArtifactState.ABANDONED])
def test_an_output_that_is_not_live_is_not_reused(env, state):
    root, url, marker = env
    first = RUNNER.run(lib.chain(str(root), url, str(marker)))
    [old] = first.nodes["total"].outputs["result"]
    with MetadataStore(url) as store:
        store.put_artifacts([replace(store.get_artifact(old.id), state=state)])  # its folder is still there
    total = RUNNER.run(lib.chain(str(root), url, str(marker))).nodes["total"]
    assert total.state == NodeState.COMPLETE and total.cache_miss_reason == "earlier outputs no longer available"


def test_a_pipeline_reuses_its_own_executions_not_another_pipelines_with_the_same_node(env):
    root, url, marker = env
    mine = RUNNER.run(lib.chain(str(root), url, str(marker), name="mine"))
    RUNNER.run(lib.chain(str(root), url, str(marker), name="theirs"))  # newer, same node ids and keys
    again = RUNNER.run(lib.chain(str(root), url, str(marker), name="mine"))
    assert set(states(again).values()) == {NodeState.CACHED}
    assert {k: o.cached_from for k, o in again.nodes.items()} == {k: o.execution_id for k, o in mine.nodes.items()}
    # and a miss is explained against this pipeline's own history
    changed = RUNNER.run(lib.chain(str(root), url, str(marker), name="mine"), parameters={"rows": 4})
    assert changed.nodes["make_numbers"].cache_miss_reason == "new parameter value: rows 3 -> 4"


def test_the_miss_reason_names_only_what_changed(tmp_path):
    data = tmp_path / "input.txt"
    data.write_text("v1")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"

    def build():
        return Pipeline("ext", components=[lib.read_file(path=str(data))], pipeline_root=str(tmp_path / "a"),
                        metadata_url=url)

    [out] = RUNNER.run(build()).nodes["read_file"].outputs["out"]
    shutil.rmtree(out.uri)  # only the output went: the external input is the same text, read again
    again = RUNNER.run(build()).nodes["read_file"]
    assert again.state == NodeState.COMPLETE
    assert again.cache_miss_reason == "earlier outputs no longer available"


def test_an_input_or_parameter_added_to_a_component_is_named_in_its_miss_reason(tmp_path):
    import textwrap

    from jfx.pipelines import load_pipeline

    source = textwrap.dedent('''
        from jfx import Input, Output, Pipeline, component
        from jfx.types import Dataset, Metrics

        @component
        def produce(data: Output[Dataset]):
            data.write_json([1, 2, 3])

        @component
        def consume(data: Input[Dataset], out: Output[Metrics]):
            out.write_json(sum(data.read_json()))

        p = produce()
        pipeline = Pipeline("grow", components=[p, consume(data=p.outputs["data"])],
                            pipeline_root=ROOT, metadata_url=URL)
    ''').replace("ROOT", repr(str(tmp_path / "a"))).replace("URL", repr(f"sqlite:///{tmp_path / 'md.sqlite'}"))
    grown = (source.replace("def consume(data: Input[Dataset], out: Output[Metrics]",
                            "def consume(data: Input[Dataset], extra: Input[Dataset], out: Output[Metrics], "
                            "scale: Parameter[int] = 2")
             .replace("from jfx import Input,", "from jfx import Parameter, Input,")
             .replace('consume(data=p.outputs["data"])', 'consume(data=p.outputs["data"], extra=p.outputs["data"])'))
    file = tmp_path / "grow_pipeline.py"
    file.write_text(source)
    RUNNER.run(load_pipeline(file))
    file.write_text(grown)
    consume = RUNNER.run(load_pipeline(file)).nodes["consume"]
    assert consume.state == NodeState.COMPLETE
    assert consume.cache_miss_reason == ("changed component source; new parameter value: scale None -> 2; "
                                         "changed upstream artifact: extra")


def test_an_exit_handlers_recorded_cache_material_holds_the_upstream_states_it_saw(tmp_path):
    import jfx_flow as flow
    from jfx.metadata._executions_info import ExecutionInfo

    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    result = RUNNER.run(flow.exit_handled(root=str(tmp_path / "root"), url=url))
    with MetadataStore(url) as store:  # the material is what the UI shows under an execution's "cache"
        material = {k: ExecutionInfo.from_record(store.get_execution(o.execution_id)).cache_material
                    for k, o in result.nodes.items() if k in ("report", "number")}
    assert material["report"]["upstream_states"] == {"explode": "failed", "number": "complete", "publish": "skipped"}
    assert "upstream_states" not in material["number"]
