import json
import subprocess
import sys
import textwrap

import numpy as np
import optax
import pytest
from flax import nnx

from jfx.core import Categorical, Dataset, DNNClassifier, Numeric, TensorSpec, export, export_model, fit, load, \
    signature_from_dataset, vocab_size
from jfx.errors import AlreadyExistsError, InvalidArgumentError

CITY = {"vocabulary": ["paris", "oslo", "lima"], "oov_buckets": 2}
TAG = {"hash_buckets": 8}


def _columns(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(n, 3)).astype(np.float32),
        "n": rng.integers(0, 4, n).astype(np.int64),
        "city": rng.choice(["paris", "oslo", "lima", "rome", "kyiv"], n).astype(object),
        "tag": rng.choice(["a", "b", "c", "d"], n).astype(object),
        "y": rng.integers(0, 3, n),
    }


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    cols = _columns(256)
    ds = Dataset.from_arrays(cols, label="y", batch_size=64, encoders={"city": CITY, "tag": TAG})
    spec = {"x": Numeric(3), "n": Categorical(4), "city": Categorical(vocab_size(CITY), 4),
            "tag": Categorical(vocab_size(TAG), 2)}
    model = DNNClassifier(spec, hidden_units=(16,), n_classes=3, dropout=0.1, rngs=nnx.Rngs(0))
    fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", ds, epochs=1)
    path = tmp_path_factory.mktemp("export") / "model"
    export_model(model, signature_from_dataset(ds), path)
    return path, model


def _rows(cols, n):
    return [{"x": cols["x"][i].tolist(), "n": int(cols["n"][i]), "city": cols["city"][i], "tag": cols["tag"][i]}
            for i in range(n)]


def test_artifact_layout_and_signature(artifact):
    path, _ = artifact
    assert sorted(p.name for p in path.iterdir()) == ["model.stablehlo", "signature.json", "weights.npz"]
    sig = json.loads((path / "signature.json").read_text())
    assert sig["inputs"]["city"] == {"dtype": "string", "shape": [], "encoder": CITY}
    assert sig["inputs"]["x"] == {"dtype": "float32", "shape": [3], "encoder": None}
    assert sig["outputs"]["probabilities"] == {"dtype": "float32", "shape": [3]}
    assert (path / "model.stablehlo").stat().st_size < 64_000  # weights are not baked in


def test_loaded_model_matches_in_process_model_in_a_fresh_process(artifact, tmp_path):
    path, model = artifact
    cols = _columns(1024, seed=1)
    model.eval()
    from jfx.core import encode_strings

    feats = {"x": cols["x"], "n": cols["n"], "city": encode_strings(cols["city"], CITY),
             "tag": encode_strings(cols["tag"], TAG)}
    want = np.asarray(model(feats))
    loaded = load(path)
    inputs = {k: cols[k] for k in ("x", "n", "city", "tag")}
    here = {n: loaded({k: v[:n] for k, v in inputs.items()}) for n in (1, 1024)}
    np.testing.assert_allclose(here[1024]["logits"], want, rtol=1e-5, atol=1e-6)
    (tmp_path / "rows.json").write_text(json.dumps(_rows(cols, 1024)))
    np.savez(tmp_path / "cols.npz", x=cols["x"], n=cols["n"], city=cols["city"].astype(str),
             tag=cols["tag"].astype(str))
    script = textwrap.dedent(f"""
        import json, numpy as np
        from jfx.core import load
        m = load({str(path)!r})
        rows = json.load(open({str(tmp_path / 'rows.json')!r}))
        c = dict(np.load({str(tmp_path / 'cols.npz')!r}))
        out = {{}}
        for n in (1, 1024):
            for k, v in m(rows[:n]).items():
                out[f"rows{{n}}_{{k}}"] = v
            for k, v in m({{k: v[:n] for k, v in c.items()}}).items():
                out[f"cols{{n}}_{{k}}"] = v
        np.savez({str(tmp_path / 'out.npz')!r}, **out)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    with np.load(tmp_path / "out.npz") as out:
        for n in (1, 1024):
            for kind in ("rows", "cols"):
                for key in ("logits", "probabilities", "class_ids"):
                    np.testing.assert_array_equal(out[f"{kind}{n}_{key}"], here[n][key], err_msg=f"{kind}{n} {key}")
        np.testing.assert_allclose(out["rows1_logits"], want[:1], rtol=1e-5, atol=1e-6)


def test_bad_inputs_name_the_feature(artifact):
    loaded = load(artifact[0])
    good = _rows(_columns(2), 2)
    cols = {k: np.asarray([r[k] for r in good], dtype=object if k in ("city", "tag") else None) for k in good[0]}
    assert loaded(good)["logits"].shape == (2, 3)
    cases = [
        ([{k: v for k, v in good[0].items() if k != "city"}], "'city' is missing"),
        ({k: v for k, v in cols.items() if k != "x"}, "'x' is missing"),
        ({**cols, "x": np.array([["a", "b", "c"]] * 2)}, "'x' cannot be read as float32"),
        ({**cols, "n": np.array([0.5, 1.0])}, "'n' cannot be read as int32"),
        ({**cols, "x": np.ones((2, 4), np.float32)}, r"'x' has shape \(2, 4\)"),
        ({**cols, "n": np.array([[1], [2]])}, r"'n' has shape \(2, 1\)"),
        ({**cols, "city": np.array([1, 2])}, "'city' must hold strings"),
        ({**cols, "x": np.ones((3, 3), np.float32)}, "different batch sizes"),
        ("not input", "expected a dict of columns"),
    ]
    for bad, match in cases:
        with pytest.raises(InvalidArgumentError, match=match):
            loaded(bad)
    # castable inputs are accepted: ints for floats, integral floats for ints
    out = loaded({**cols, "x": np.ones((2, 3), np.int64), "n": np.array([1.0, 2.0])})
    assert out["class_ids"].shape == (2,)


def test_export_of_a_plain_function_and_refusing_to_overwrite(tmp_path):
    import jax.numpy as jnp

    params = {"w": jnp.arange(3.0), "b": jnp.float32(1.0)}
    path = export(lambda p, f: f["v"] @ p["w"] + p["b"], params, {"v": TensorSpec("float32", (3,))}, tmp_path / "f")
    out = load(path)({"v": np.eye(3, dtype=np.float32)})
    assert out["output"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(AlreadyExistsError):
        export(lambda p, f: f["v"], params, {"v": TensorSpec("float32", (3,))}, tmp_path / "f")
    with pytest.raises(InvalidArgumentError):
        export(lambda p, f: f["v"], params, {"v": TensorSpec("string")}, tmp_path / "g")


def test_metadata_is_kept_with_the_model(tmp_path):
    import jax.numpy as jnp

    from jfx.core import TensorSpec, export, load
    from jfx.errors import InvalidArgumentError

    export(lambda p, f: {"y": f["x"] * p["w"]}, {"w": jnp.float32(2)}, {"x": TensorSpec("float32")},
           tmp_path / "m", metadata={"label_vocabulary": ["Adelie", "Gentoo"]})
    assert load(tmp_path / "m").metadata == {"label_vocabulary": ["Adelie", "Gentoo"]}
    with pytest.raises(InvalidArgumentError, match="metadata must be JSON-serialisable"):
        export(lambda p, f: {"y": f["x"]}, {"w": jnp.float32(2)}, {"x": TensorSpec("float32")},
               tmp_path / "m2", metadata={"bad": object()})


def test_rows_of_scalar_floats_read_as_one_matrix_give_the_same_arrays_and_errors(tmp_path):
    import jax.numpy as jnp

    spec = {"a": TensorSpec("float32"), "b": TensorSpec("float16"), "c": TensorSpec("string", encoder=CITY),
            "k": TensorSpec("int32")}
    export(lambda p, f: {"y": f["a"] * p["w"] + f["b"].astype(jnp.float32) + f["c"] + f["k"]},
           {"w": jnp.float32(2)}, spec, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded._float_scalars == ["a", "b"]
    numbers = [{"a": 1.5, "b": -2, "c": "oslo", "k": 3}, {"a": 2, "b": 0.1, "c": "rome", "k": 1.0},
               {"a": True, "b": 1e6, "c": "paris", "k": 0}, {"a": -1e4, "b": 7, "c": "lima", "k": 2}]
    mixed = [{"a": 1.5, "b": None, "c": "oslo", "k": 3}, {"a": "2.5", "b": 1.0, "c": "rome", "k": 1},
             {"a": 2 ** 60 + 1, "b": 1.0, "c": "rome", "k": 1}, {"a": 0.5, "b": 2 ** 60 + 1, "c": "rome", "k": 1}]
    assert loaded._float_rows(numbers) is not None
    for rows in (numbers, mixed[:2], mixed[2:]):
        got = loaded.prepare(rows)
        want = {n: loaded._column(n, s, [r[n] for r in rows]) for n, s in loaded.inputs.items()}
        for n in spec:
            assert got[n].dtype == want[n].dtype and got[n].shape == (len(rows),), n
            np.testing.assert_array_equal(got[n], want[n], err_msg=n)
    # anything unusual falls back to reading feature by feature, which names the culprit
    cases = [
        ([{**numbers[0], "a": "abc"}], "'a' cannot be read as float32"),
        ([{**numbers[0], "b": [1.0, 2.0]}], r"'b' has shape \(1, 2\)"),
        ([numbers[0], {k: v for k, v in numbers[1].items() if k != "a"}], "'a' is missing from instance 1"),
        ([numbers[0], ["not", "a", "dict"]], "instance 1 is a list"),
        ([{**numbers[0], "k": 0.5}], "'k' cannot be read as int32"),
    ]
    for bad, match in cases:
        with pytest.raises(InvalidArgumentError, match=match):
            loaded.prepare(bad)
    assert loaded(numbers)["y"].shape == (4,)
