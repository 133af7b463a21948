"""ONNX export: onnxruntime gives jfx.core.load's outputs on raw rows (strings included),
for every canned model and a model with a fitted transform; int8 quantization; errors."""

import json

import jfx_requires
import numpy as np
import optax
import pytest
from flax import nnx

jfx_requires.importorskip("jax2onnx", hint="pip install 'jfx[onnx]'", allow_module_level=True)
jfx_requires.importorskip("onnxruntime", hint="pip install 'jfx[onnx]'", allow_module_level=True)

from jfx.core import (
    Categorical,
    Dataset,
    DNNClassifier,
    DNNRegressor,
    Numeric,
    TensorSpec,
    WideAndDeep,
    export,
    export_model,
    export_onnx,
    fit,
    load,
    load_onnx,
    signature_from_dataset,
    vocab_size,
)
from jfx.core._stablehlo import UnsupportedOperationError
from jfx.errors import AlreadyExistsError, DataValidationError, InvalidArgumentError

CITY = {"vocabulary": ["paris", "oslo", "lima"], "oov_buckets": 2}
TAG = {"hash_buckets": 8}
TOL = 1e-5


def _columns(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    city = rng.choice(["paris", "oslo", "lima", "rome", "kyiv"], n).astype(object)
    return {
        "x": x,
        "n": rng.integers(0, 4, n).astype(np.int64),
        "city": city,
        "tag": rng.choice(["a", "b", "c", "d"], n).astype(object),
        "y": ((x[:, 0] + (city == "oslo")) > 0.3).astype(np.int64),
        "r": (2 * x[:, 0] - x[:, 1]).astype(np.float32),
    }


def _rows(cols, n):
    return [{"x": cols["x"][i].tolist(), "n": int(cols["n"][i]), "city": cols["city"][i], "tag": cols["tag"][i]}
            for i in range(n)]


SPEC = {"x": Numeric(3), "n": Categorical(4), "city": Categorical(vocab_size(CITY), 4),
        "tag": Categorical(vocab_size(TAG), 2)}


def _canned(kind):
    if kind == "DNNClassifier":
        return DNNClassifier(SPEC, hidden_units=(16, 8), n_classes=3, rngs=nnx.Rngs(0)), "y", \
            "sparse_categorical_crossentropy"
    if kind == "DNNRegressor":
        return DNNRegressor(SPEC, hidden_units=(16,), rngs=nnx.Rngs(0)), "r", "mse"
    return WideAndDeep({"n": Categorical(4), "city": Categorical(vocab_size(CITY))},
                       {"x": Numeric(3), "city": Categorical(vocab_size(CITY), 3), "tag": Categorical(8, 2)},
                       hidden_units=(8,), n_classes=2, rngs=nnx.Rngs(0)), "y", "sparse_categorical_crossentropy"


_BUILT: dict = {}


def _built(kind, tmp_path_factory):
    """A canned model trained briefly and exported (once per session)."""
    if kind not in _BUILT:
        model, label, loss = _canned(kind)
        cols = {k: v for k, v in _columns(256).items() if k in ("x", "n", "city", "tag", label)}
        ds = Dataset.from_arrays(cols, label=label, batch_size=64, encoders={"city": CITY, "tag": TAG})
        fit(model, optax.adam(1e-2), loss, ds, epochs=2, progress=False)
        root = tmp_path_factory.mktemp(kind)
        export_model(model, signature_from_dataset(ds), root / "model")
        _BUILT[kind] = root
    return _BUILT[kind]


@pytest.fixture(scope="module", params=["DNNClassifier", "DNNRegressor", "WideAndDeep"])
def canned(request, tmp_path_factory):
    return _built(request.param, tmp_path_factory), request.param


def test_every_canned_model_matches_in_onnxruntime_on_raw_rows(canned):
    root, kind = canned
    result = export_onnx(root / "model", root / "onnx")
    assert result.size_bytes == (root / "onnx" / "model.onnx").stat().st_size
    ref, onnx_model = load(root / "model"), load_onnx(root / "onnx")
    cols = _columns(300, seed=1)
    rows = _rows(cols, 300)  # unseen cities and tags: out-of-vocabulary and hash buckets
    want, got = ref(rows), onnx_model(rows)
    assert sorted(got) == sorted(want) == sorted(ref.outputs)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=TOL, atol=TOL, err_msg=f"{kind} {k}")
    one = onnx_model(rows[:1])  # the batch dimension is symbolic: any size runs
    for k in want:
        np.testing.assert_allclose(one[k], want[k][:1], rtol=TOL, atol=TOL)


def test_the_onnx_graph_takes_a_symbolic_batch_and_the_signature_names_vocabularies(canned):
    root, _ = canned
    if not (root / "onnx").exists():
        export_onnx(root / "model", root / "onnx")
    import onnx

    graph = onnx.load(str(root / "onnx" / "model.onnx")).graph
    inputs = {i.name: i.type.tensor_type for i in graph.input}
    assert sorted(inputs) == ["city", "n", "tag", "x"]
    assert all(t.shape.dim[0].dim_param == "batch" for t in inputs.values())
    assert inputs["city"].elem_type == onnx.TensorProto.INT32  # strings are ids in the graph
    sig = json.loads((root / "onnx" / "signature.json").read_text())
    assert sig["format"] == "jfx-onnx" and sig["batch_dimension"] == "batch"
    assert sig["inputs"]["city"] == {"dtype": "string", "shape": [], "encoder": CITY, "onnx_dtype": "int32"}
    assert sig["inputs"]["tag"]["encoder"] == TAG
    assert sig["inputs"]["x"]["shape"] == [3]
    assert set(sig["outputs"]) == {o.name for o in graph.output}


def test_int8_quantization_is_smaller_and_measured_on_labelled_examples(tmp_path):
    # wide enough for the weights to dominate the file
    cols = _columns(256)
    ds = Dataset.from_arrays({k: cols[k] for k in ("x", "y")}, label="y", batch_size=64)
    model = DNNClassifier({"x": Numeric(3)}, hidden_units=(256, 256), n_classes=2, rngs=nnx.Rngs(0))
    fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", ds, epochs=2, progress=False)
    export_model(model, signature_from_dataset(ds), tmp_path / "model")
    examples = {"x": cols["x"].tolist(), "y": cols["y"].tolist()}
    result = export_onnx(tmp_path / "model", tmp_path / "int8", quantize="int8", eval_examples=examples,
                         label_key="y")
    assert result.size_bytes < 0.4 * result.float_size_bytes
    assert result.check is not None and result.check.metric == "accuracy" and result.check.rows == 256
    want = np.mean(np.asarray(load(tmp_path / "model")({"x": cols["x"]})["class_ids"]) == cols["y"])
    assert result.check.float_value == pytest.approx(want, abs=1 / 256)
    assert abs(result.check.degradation) < 0.05
    sig = json.loads((tmp_path / "int8" / "signature.json").read_text())
    assert sig["quantization"]["type"] == "int8" and sig["quantization"]["bytes"] == result.size_bytes
    q = load_onnx(tmp_path / "int8")({"x": cols["x"]})
    np.testing.assert_allclose(q["probabilities"].sum(-1), 1.0, atol=1e-5)
    # a threshold the change exceeds: nothing is written
    with pytest.raises(DataValidationError, match="beyond the allowed -1"):
        export_onnx(tmp_path / "model", tmp_path / "refused", quantize="int8", eval_examples=examples,
                    label_key="y", max_degradation=-1)
    assert not (tmp_path / "refused").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_a_regressor_is_measured_by_mean_absolute_error(tmp_path_factory, tmp_path):
    root = _built("DNNRegressor", tmp_path_factory)
    cols = _columns(128, seed=2)
    examples = {k: (v.tolist() if k == "x" else list(v)) for k, v in cols.items()}
    result = export_onnx(root / "model", tmp_path / "q", quantize="int8", eval_examples=examples, label_key="r")
    assert result.check.metric == "mae" and result.check.rows == 128
    pred = load(root / "model")(_rows(cols, 128))["predictions"].reshape(-1)
    assert result.check.float_value == pytest.approx(float(np.mean(np.abs(pred - cols["r"]))), rel=1e-4)


def test_bad_requests_fail_with_clear_messages(tmp_path_factory, tmp_path):
    root = _built("DNNClassifier", tmp_path_factory)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(AlreadyExistsError, match="not empty"):
        export_onnx(root / "model", tmp_path / "full")
    with pytest.raises(InvalidArgumentError, match="quantize must be one of"):
        export_onnx(root / "model", tmp_path / "o", quantize="int4")
    with pytest.raises(DataValidationError, match="not a jfx model artifact"):
        export_onnx(tmp_path, tmp_path / "o")
    with pytest.raises(DataValidationError, match="no label column 'nope'"):
        export_onnx(root / "model", tmp_path / "o", quantize="int8",
                    eval_examples={k: list(v) for k, v in _columns(8).items()}, label_key="nope")
    assert not (tmp_path / "o").exists()


def test_an_operation_outside_the_covered_set_is_named(tmp_path):
    import jax

    def sort_fn(params, features):
        return {"sorted": jax.numpy.sort(features["x"] * params["w"], axis=-1)}

    export(sort_fn, {"w": np.float32(2)}, {"x": TensorSpec("float32", (4,))}, tmp_path / "m")
    with pytest.raises(UnsupportedOperationError, match=r"stablehlo\.sort"):
        export_onnx(tmp_path / "m", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_model_lowered_for_several_platforms_converts_its_cpu_branch(tmp_path):
    import jax.numpy as jnp

    # a model exported on a GPU machine holds one branch per platform, chosen by an argument
    w = np.arange(6, dtype=np.float32).reshape(3, 2) / 6
    export(lambda p, f: {"y": jnp.tanh(f["x"] @ p["w"])}, {"w": w}, {"x": TensorSpec("float32", (3,))},
           tmp_path / "m", platforms=["cpu", "cuda"])
    assert load(tmp_path / "m")._exported.platforms == ("cpu", "cuda")
    export_onnx(tmp_path / "m", tmp_path / "o")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(load_onnx(tmp_path / "o")({"x": x})["y"], np.tanh(x @ w), rtol=1e-5, atol=1e-6)
