"""The Transform component in real pipelines, and the transform inside an exported model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jfx
import numpy as np
import pyarrow.parquet as pq
import pytest
from jfx import Pipeline
from jfx.components import ExampleGen, SchemaGen, StatisticsGen, Transform
from jfx.components._examples import split_files
from jfx.components.transform import export_with_transform, load_transform
from jfx.orchestrators import LocalDagRunner, RunState
from jfx.types import Examples

RUNNER = LocalDagRunner(progress=False)
PENGUIN_PREPROCESSING = Path(jfx.__file__).parent / "examples" / "penguin" / "preprocessing.py"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def penguins_dir(tmp_path: Path) -> Path:
    import palmerpenguins

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    shutil.copy(Path(palmerpenguins.__file__).parent / "data" / "penguins.csv", data / "penguins.csv")
    return data


def transform_pipeline(tmp_path: Path, module_file: Path, **transform_args) -> Pipeline:
    examples = ExampleGen(input_base=str(penguins_dir(tmp_path)), input_pattern="penguins.csv",
                          splits={"train": 2, "eval": 1})
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    transform = Transform(examples=examples.outputs["examples"], schema=schema.outputs["schema"],
                          module_file=str(module_file), **transform_args)
    return Pipeline("transform", components=[examples, statistics, schema, transform],
                    pipeline_root=str(tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


@pytest.fixture(scope="module")
def penguin_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("transform")
    module_file = tmp_path / "preprocessing.py"
    shutil.copy(PENGUIN_PREPROCESSING, module_file)
    result = RUNNER.run(transform_pipeline(tmp_path, module_file))
    return tmp_path, result


def read_split(uri: str, split: str) -> dict[str, np.ndarray]:
    table = pq.ParquetDataset(split_files(Examples(uri), split)).read()
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def test_penguin_transform_in_a_pipeline(penguin_run):
    _, result = penguin_run
    assert result.state == RunState.COMPLETE, result.nodes["Transform"].error
    [examples] = result.nodes["ExampleGen"].outputs["examples"]
    [out] = result.nodes["Transform"].outputs["transformed_examples"]
    [graph] = result.nodes["Transform"].outputs["transform_graph"]
    assert out.properties["splits"] == ["train", "eval"]
    assert out.properties["row_counts"] == examples.properties["row_counts"]
    assert out.properties["columns"] == {**{f: "float" for f in FEATURES}, "island": "int", "sex": "int",
                                         "species": "int"}
    assert graph.properties["analyze_splits"] == ["train"] and graph.properties["engine"] == "in-process"
    assert graph.properties["passes"] == 1 and len(graph.properties["analyzers"]) == 7

    transform = load_transform(graph.uri)
    assert transform.encoders["species"]["vocabulary"][0] == "Adelie"  # the most frequent species
    assert sorted(transform.encoders["island"]["vocabulary"]) == ["Biscoe", "Dream", "Torgersen"]
    train = read_split(out.uri, "train")
    for f in FEATURES:  # z-scored on train, NaN -> 0: mean 0, std close to 1
        assert abs(train[f].mean()) < 1e-5 and 0.95 < train[f].std() <= 1.0001
        assert train[f].dtype == np.float64 and not np.isnan(train[f]).any()
    raw_train = read_split(examples.uri, "train")
    assert (train["sex"] == 2).sum() == sum(v is None for v in raw_train["sex"])  # missing sex -> OOV id
    # The pipeline's output is exactly the loaded transform applied to the raw split.
    raw_eval = read_split(examples.uri, "eval")
    eval_out = read_split(out.uri, "eval")
    applied = transform.apply(raw_eval)
    for name, values in applied.items():
        np.testing.assert_array_equal(eval_out[name], values.astype(eval_out[name].dtype))


SUBPROCESS = """
import json, sys
import numpy as np
import pyarrow.parquet as pq
import jfx.core
model = jfx.core.load(sys.argv[1])
rows = pq.ParquetDataset(json.loads(sys.argv[2])).read().to_pylist()
out = model(rows)
np.savez(sys.argv[3], **out)
"""


def test_pipeline_and_exported_model_agree_bit_for_bit(penguin_run):
    tmp_path, result = penguin_run
    [examples] = result.nodes["ExampleGen"].outputs["examples"]
    [out] = result.nodes["Transform"].outputs["transformed_examples"]
    [graph] = result.nodes["Transform"].outputs["transform_graph"]
    model_dir = tmp_path / "model"
    export_with_transform(load_transform(graph), lambda params, features: dict(features), {}, model_dir)
    signature = json.loads((model_dir / "signature.json").read_text())
    assert signature["inputs"]["island"]["encoder"]["oov_buckets"] == 1
    eval_files = [str(p) for p in split_files(Examples(examples.uri), "eval")]
    proc = subprocess.run([sys.executable, "-c", SUBPROCESS, str(model_dir), json.dumps(eval_files),
                           str(tmp_path / "served.npz")], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    served = np.load(tmp_path / "served.npz")
    pipeline = read_split(out.uri, "eval")
    assert set(served.files) == set(pipeline)
    for name in pipeline:
        assert len(served[name]) == len(pipeline[name]) == examples.properties["row_counts"]["eval"]
        widened = served[name].astype(pipeline[name].dtype)  # float32 -> float64, int32 -> int64: exact
        assert widened.tobytes() == pipeline[name].tobytes(), name


def test_a_model_without_the_label_needs_no_raw_label(penguin_run):
    tmp_path, result = penguin_run
    [graph] = result.nodes["Transform"].outputs["transform_graph"]
    model_dir = tmp_path / "model-no-label"
    features = [*FEATURES, "island", "sex"]

    def model(params, feats):
        return {"score": sum(feats[f] * params["w"] for f in FEATURES) + feats["island"].astype("float32")}

    export_with_transform(graph, model, {"w": np.float32(2.0)}, model_dir, features=features)
    loaded = jfx.core.load(model_dir)
    assert set(loaded.inputs) == {*FEATURES, "island"}  # sex and species are not read by the model
    transform = load_transform(graph)
    row = {"bill_length_mm": 40.0, "bill_depth_mm": None, "flipper_length_mm": 190, "body_mass_g": 3900,
           "island": "Dream"}
    t = transform.apply({k: [v] for k, v in {**row, "sex": None, "species": None}.items()})
    expected = sum(t[f] * np.float32(2.0) for f in FEATURES) + t["island"].astype(np.float32)
    np.testing.assert_allclose(loaded([row])["score"], expected, rtol=1e-6)


def test_a_preprocessing_error_fails_the_node_naming_column_and_module(tmp_path):
    module_file = tmp_path / "bad_preprocessing.py"
    module_file.write_text("def preprocessing_fn(inputs):\n    return {'x': inputs['wingspan_mm']}\n")
    result = RUNNER.run(transform_pipeline(tmp_path, module_file))
    assert result.state == RunState.FAILED
    node = result.nodes["Transform"]
    assert node.state == "failed"
    assert "wingspan_mm" in node.error and str(module_file) in node.error and "KeyError" in node.error
    assert not node.outputs
    assert not list((tmp_path / "root" / "transform" / "Transform").glob("*/*/*.json"))


def test_editing_the_module_file_misses_the_cache(tmp_path):
    module_file = tmp_path / "prep.py"
    module_file.write_text(
        "from jfx.components import transform as jt\n"
        "def preprocessing_fn(inputs):\n    return {'x': jt.scale_to_0_1(inputs['body_mass_g'])}\n")
    first = RUNNER.run(transform_pipeline(tmp_path, module_file))
    assert first.state == RunState.COMPLETE, first.nodes["Transform"].error
    again = RUNNER.run(transform_pipeline(tmp_path, module_file))
    assert again.nodes["Transform"].state == "cached"
    module_file.write_text(module_file.read_text().replace("scale_to_0_1", "scale_to_z_score"))
    edited = RUNNER.run(transform_pipeline(tmp_path, module_file))
    assert edited.nodes["ExampleGen"].state == "cached"
    assert edited.nodes["Transform"].state == "complete", edited.nodes["Transform"].error
    [graph] = edited.nodes["Transform"].outputs["transform_graph"]
    assert load_transform(graph).analyzers[0]["kind"] == "scale_to_z_score"


def test_transform_on_beam_with_a_module_reference(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(PENGUIN_PREPROCESSING, package / "prep.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    examples = ExampleGen(input_base=str(penguins_dir(tmp_path)), input_pattern="penguins.csv")
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    transform = Transform(examples=examples.outputs["examples"], schema=schema.outputs["schema"],
                          preprocessing_fn="pkg.prep:preprocessing_fn", analyze_splits=["train", "eval"],
                          beam_pipeline_args=["--runner=DirectRunner"])
    pipeline = Pipeline("beam-transform", components=[examples, statistics, schema, transform],
                        pipeline_root=str(tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")
    result = RUNNER.run(pipeline)
    assert result.state == RunState.COMPLETE, result.nodes["Transform"].error
    [graph] = result.nodes["Transform"].outputs["transform_graph"]
    assert graph.properties["engine"] == "beam" and graph.properties["analyze_splits"] == ["train", "eval"]
    [out] = result.nodes["Transform"].outputs["transformed_examples"]
    both = np.concatenate([read_split(out.uri, s)["body_mass_g"] for s in ("train", "eval")])
    assert abs(both.mean()) < 1e-5  # analyzed over both splits


def test_a_boolean_column_is_served_as_true_or_false(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = ["weight,member"] + [f"{i * 1.5},{'true' if i % 3 else 'false'}" for i in range(60)]
    (data / "rows.csv").write_text("\n".join(rows) + "\n")
    module_file = tmp_path / "prep.py"
    module_file.write_text(
        "from jfx.components import transform as jt\n"
        "def preprocessing_fn(inputs):\n"
        "    return {'w': jt.scale_to_z_score(inputs['weight']), 'm': inputs['member']}\n")
    examples = ExampleGen(input_base=str(data), input_pattern="rows.csv", splits={"train": 2, "eval": 1})
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    transform = Transform(examples=examples.outputs["examples"], schema=schema.outputs["schema"],
                          module_file=str(module_file))
    result = RUNNER.run(Pipeline("booleans", components=[examples, statistics, schema, transform], pipeline_root=str(tmp_path / "root"),
                                 metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}"))
    assert result.state == RunState.COMPLETE, result.nodes["Transform"].error
    [graph] = result.nodes["Transform"].outputs["transform_graph"]
    model_dir = tmp_path / "model"
    export_with_transform(graph, lambda params, features: {"m": features["m"] * 1.0}, {}, model_dir, features=["m"])
    loaded = jfx.core.load(model_dir)
    assert loaded.inputs["member"].source_type == "bool"
    # what the model server takes (strict): the booleans clients send, and null for a missing one
    prepared = loaded.prepare([{"member": True}, {"member": False}, {"member": None}], strict=True)
    np.testing.assert_array_equal(loaded.run_prepared(prepared)["m"][:2], [1.0, 0.0])
    assert np.isnan(prepared["member"][2])
    with pytest.raises(jfx.errors.InvalidArgumentError, match=r"'member' of instance 1 is 1.*true or false"):
        loaded.prepare([{"member": True}, {"member": 1}], strict=True)
