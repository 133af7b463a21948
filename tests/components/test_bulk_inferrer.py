"""BulkInferrer: predictions equal the model's own, on both engines; blessing gate; bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import jfx_testlib as lib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jfx import Pipeline
from jfx.components._bulk_inferrer import SKIPPED_FILE, BulkInferrer
from jfx.components._evaluator import Evaluator
from jfx.core import load
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.orchestrators import LocalDagRunner
from jfx.types import Examples, InferenceResult, Model, ModelBlessing


def setup(tmp_path, rows=500):
    tables = {"train": lib.eval_table(rows, seed=1), "eval": lib.eval_table(rows // 2, seed=2)}
    lib.write_examples(str(tmp_path / "examples"), tables, row_group_size=120, shards=2)
    model = lib.export_binary_model(str(tmp_path / "model"), bias=0.1)
    return tables, Examples(tmp_path / "examples", properties={"splits": ["train", "eval"]}), Model(model, id=11)


def infer(tmp_path, name, examples, model, **kw):
    out = InferenceResult(tmp_path / name)
    Path(out.uri).mkdir()
    BulkInferrer.fn(examples=examples, model=model, inference_result=out, **kw)
    return out


def read_split(out, split):
    files = sorted(Path(out.uri, f"Split-{split}").glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_predictions_equal_the_models_and_both_engines_write_identical_files(tmp_path):
    tables, examples, model = setup(tmp_path)
    spec = {"splits": ["eval", "train"], "key_columns": ["id", "island"]}
    local = infer(tmp_path, "local", examples, model, data_spec=spec)
    beam = infer(tmp_path, "beam", examples, model, data_spec=spec, beam_pipeline_args=["--runner=DirectRunner"])
    loaded = load(model.uri)
    for split in ("eval", "train"):
        got = read_split(local, split)
        direct = loaded({"x": tables[split].column("x").to_numpy()})
        assert got.column_names == ["id", "island", *loaded.outputs]  # outputs in signature order
        assert got.column("id").to_pylist() == tables[split].column("id").to_pylist()
        assert got.schema.field("probabilities").type == pa.list_(pa.float32())
        np.testing.assert_array_equal(np.array(got.column("probabilities").to_pylist(), np.float32),
                                      direct["probabilities"])
        np.testing.assert_array_equal(got.column("class_ids").to_numpy(), direct["class_ids"])
        local_files = sorted(p.name for p in Path(local.uri, f"Split-{split}").iterdir())
        assert local_files == sorted(p.name for p in Path(beam.uri, f"Split-{split}").iterdir())
        assert len(local_files) > 2  # one shard per input row group
        for name in local_files:
            assert pq.read_table(Path(local.uri, f"Split-{split}", name)).equals(
                pq.read_table(Path(beam.uri, f"Split-{split}", name)))
    assert local.properties["row_counts"] == {"eval": 250, "train": 500}
    assert local.properties["skipped"] is False and local.properties["model_id"] == 11
    assert local.properties["engine"] == "in-process" and beam.properties["engine"] == "beam"
    only = infer(tmp_path, "only", examples, model, data_spec={"splits": ["eval"], "output_columns": ["class_ids"]})
    assert read_split(only, "eval").column_names == ["class_ids"] and only.properties["splits"] == ["eval"]


def test_an_unblessed_model_is_skipped(tmp_path):
    _, examples, model = setup(tmp_path, rows=50)
    blessing = ModelBlessing(tmp_path / "b", id=5, properties={"blessed": False, "reasons": ["accuracy too low"]})
    out = infer(tmp_path, "out", examples, model, model_blessing=blessing)
    assert out.properties["skipped"] is True and "accuracy too low" in out.properties["reason"]
    assert json.loads(Path(out.uri, SKIPPED_FILE).read_text())["skipped"] is True
    assert not list(Path(out.uri).glob("Split-*"))
    blessed = ModelBlessing(tmp_path / "b", id=6, properties={"blessed": True})
    assert infer(tmp_path, "out2", examples, model, model_blessing=blessed).properties["skipped"] is False


def test_bad_inputs_are_named(tmp_path):
    tables, examples, model = setup(tmp_path, rows=50)
    with pytest.raises(DataValidationError, match="key column 'row_id'"):
        infer(tmp_path, "a", examples, model, data_spec={"key_columns": ["row_id"]})
    lib.write_examples(str(tmp_path / "no_x"), {"eval": tables["eval"].drop_columns(["x"])})
    with pytest.raises(DataValidationError, match="model input column 'x'"):
        infer(tmp_path, "b", Examples(tmp_path / "no_x"), model)
    with pytest.raises(InvalidArgumentError, match="outputs are"):
        infer(tmp_path, "c", examples, model, data_spec={"output_columns": ["logits"]})
    with pytest.raises(InvalidArgumentError, match="names \\['test'\\]"):
        infer(tmp_path, "d", examples, model, data_spec={"splits": ["test"]})


def test_pipeline_infers_only_with_a_blessed_model(tmp_path):
    def build(lower_bound):
        data = lib.make_eval_examples(rows=200)
        model = lib.make_eval_model()
        evaluator = Evaluator(examples=data.outputs["examples"], model=model.outputs["model"],
                              eval_config={"label_key": "label",
                                           "thresholds": {"accuracy": {"lower_bound": lower_bound}}})
        inferrer = BulkInferrer(examples=data.outputs["examples"], model=model.outputs["model"],
                                model_blessing=evaluator.outputs["blessing"],
                                data_spec={"splits": ["eval"], "key_columns": ["id"]})
        return Pipeline("infer", components=[data, model, evaluator, inferrer], pipeline_root=str(tmp_path / "root"),
                        metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")

    result = LocalDagRunner(progress=False).run(build(0.5))
    assert result.state == "COMPLETE", result.nodes["BulkInferrer"].error
    out = result.nodes["BulkInferrer"].outputs["inference_result"][0]
    assert out.properties["skipped"] is False and out.properties["row_counts"] == {"eval": 200}
    result = LocalDagRunner(progress=False).run(build(0.99))
    assert result.nodes["BulkInferrer"].outputs["inference_result"][0].properties["skipped"] is True


def test_on_beam_the_workers_get_the_recorded_uris_of_a_model_and_examples_on_a_store(tmp_path, s3_root, monkeypatch):
    """Beam workers share no filesystem with the driver: what they are handed names the store, never a
    local copy of the driver's, and the shards they write come back to the driver."""
    import jfx.components._bulk_inferrer as bulk
    from jfx import _storage as storage

    _, examples, model = setup(tmp_path)
    remote_examples = storage.join(s3_root, "examples")
    remote_model = storage.join(s3_root, "model")
    storage.upload_dir(examples.uri, remote_examples)
    storage.upload_dir(model.uri, remote_model)
    on_store = Examples(remote_examples, properties=examples.properties)
    stored_model = Model(remote_model, id=11, fingerprint="f" * 40)
    handed: list = []
    real = bulk._run_on_beam
    monkeypatch.setattr(bulk, "_run_on_beam", lambda tasks, *a: (handed.extend(tasks), real(tasks, *a))[1])
    monkeypatch.setenv("JFX_CACHE_DIR", str(tmp_path / "cache"))
    beam = infer(tmp_path, "beam", on_store, stored_model, beam_pipeline_args=["--runner=DirectRunner"])
    assert handed and all(t.model_uri == remote_model and t.piece.source.path.startswith("s3://") for t in handed)
    local = infer(tmp_path, "local", examples, model)
    for split in ("eval", "train"):
        assert read_split(beam, split).equals(read_split(local, split))
