"""Transform analyzers against NumPy oracles; in-process vs Beam; the tracing rules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jfx.components import transform as jt
from jfx.components._analyzers import analyze
from jfx.components._transform import preprocessing_ref
from jfx.components._transform_graph import load_transform, save_transform
from jfx.components._user_code import FunctionRef
from jfx.core import encode_strings, stable_hash
from jfx.errors import ComponentError, InvalidArgumentError

TYPES = {"x": "float", "n": "int", "s": "string", "t": "string", "flag": "bool"}


def table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(40.0, 7.0, rows)
    x[rng.random(rows) < 0.1] = np.nan
    words = np.array(["red", "green", "blue", "cyan", "teal", "plum", "navy"])
    s = words[np.minimum(rng.geometric(0.35, rows) - 1, len(words) - 1)].astype(object)
    s[rng.random(rows) < 0.05] = None
    return pa.table({
        "x": pa.array(x, mask=np.isnan(x)),
        "n": pa.array(rng.integers(0, 1000, rows)),
        "s": pa.array(s.tolist(), pa.string()),
        "t": pa.array([f"user{i % 37}" for i in range(rows)]),
        "flag": pa.array(rng.random(rows) < 0.3),
    })


def write_parts(tmp_path: Path, t: pa.Table, parts: int = 3, row_group: int | None = None) -> list[str]:
    files = []
    bounds = np.linspace(0, t.num_rows, parts + 1).astype(int)
    for i in range(parts):
        path = tmp_path / f"part-{i:05d}.parquet"
        pq.write_table(t.slice(bounds[i], bounds[i + 1] - bounds[i]), path, row_group_size=row_group)
        files.append(str(path))
    return files


def module(tmp_path: Path, body: str, name: str = "prep.py") -> FunctionRef:
    path = tmp_path / name
    path.write_text("import jax.numpy as jnp\nfrom jfx.components import transform as jt\n\n"
                    + textwrap.dedent(body))
    return preprocessing_ref(str(path))


def floats(t: pa.Table, name: str) -> np.ndarray:
    """A column as the transform sees it: float32, NaN for missing; returned as float64."""
    return t.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float32).astype(np.float64)


ALL = """
def preprocessing_fn(inputs):
    return {
        "z": jt.scale_to_z_score(inputs["x"]),
        "u": jt.scale_to_0_1(inputs["n"]),
        "b": jt.bucketize(inputs["x"], 4),
        "s": jt.compute_and_apply_vocabulary(inputs["s"], top_k=4, num_oov_buckets=2),
        "t": jt.hash_strings(inputs["t"], 10),
        "f": jt.scale_to_z_score(inputs["flag"]),
    }
"""


def test_every_analyzer_matches_a_numpy_oracle(tmp_path):
    t = table(1500)
    fitted = analyze(module(tmp_path, ALL), TYPES, write_parts(tmp_path, t))
    x = floats(t, "x")
    x = x[~np.isnan(x)]
    c = fitted.constants
    assert c["scale_to_z_score_0"]["mean"] == pytest.approx(x.mean(), rel=1e-6)
    assert c["scale_to_z_score_0"]["std"] == pytest.approx(x.std(), rel=1e-6)
    n = floats(t, "n")
    assert (c["scale_to_0_1_1"]["min"], c["scale_to_0_1_1"]["max"]) == (n.min(), n.max())
    # 1,500 values: the KLL sketch is exact, so the boundaries are the exact quantiles.
    expected = np.quantile(x, [0.25, 0.5, 0.75], method="inverted_cdf").astype(np.float32)
    np.testing.assert_array_equal(c["bucketize_2"]["boundaries"], expected)
    flag = floats(t, "flag")
    assert c["scale_to_z_score_5"]["mean"] == pytest.approx(flag.mean(), rel=1e-6)
    # Vocabulary: by count descending, ties by value; top_k; nulls not counted.
    values, counts = np.unique([v for v in t.column("s").to_pylist() if v is not None], return_counts=True)
    order = sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda vc: (-vc[1], vc[0]))
    assert fitted.encoders["s"] == {"vocabulary": [v for v, _ in order[:4]], "oov_buckets": 2}
    assert fitted.encoders["t"] == {"hash_buckets": 10}
    assert fitted.passes == 1 and list(fitted.types) == ["x", "n", "s", "t", "flag"]

    save_transform(fitted, tmp_path / "graph")
    out = load_transform(tmp_path / "graph").apply({k: t.column(k) for k in TYPES})
    xs = floats(t, "x").astype(np.float32)
    z = (xs - c["scale_to_z_score_0"]["mean"]) / c["scale_to_z_score_0"]["std"]
    np.testing.assert_allclose(out["z"], z, rtol=1e-6, atol=1e-6)  # XLA may divide via a reciprocal
    assert np.isnan(out["z"]).sum() == np.isnan(xs).sum()
    np.testing.assert_allclose(out["u"], (floats(t, "n") - n.min()) / (n.max() - n.min()), rtol=1e-6)
    assert out["u"].min() == 0 and out["u"].max() == 1
    b = np.searchsorted(expected, xs, side="right")
    np.testing.assert_array_equal(out["b"], np.where(np.isnan(xs), 4, b))
    np.testing.assert_array_equal(out["s"], encode_strings(t.column("s"), fitted.encoders["s"]))
    assert out["s"].max() <= 5 and set(out["s"][np.equal(t.column("s").to_numpy(zero_copy_only=False), None)]) <= {4, 5}
    np.testing.assert_array_equal(out["t"], [stable_hash(v) % 10 for v in t.column("t").to_pylist()])
    assert {k: v.dtype.name for k, v in out.items()} == {
        "z": "float32", "u": "float32", "b": "int32", "s": "int32", "t": "int32", "f": "float32"}


def test_bucketize_on_many_values_is_within_the_sketch_rank_error(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 1, 60_000)
    files = write_parts(tmp_path, pa.table({"x": x}), parts=4)
    ref = module(tmp_path, 'def preprocessing_fn(inputs):\n    return {"b": jt.bucketize(inputs["x"], 10)}\n')
    boundaries = analyze(ref, {"x": "float"}, files).constants["bucketize_0"]["boundaries"]
    ranks = np.searchsorted(np.sort(x.astype(np.float32)), boundaries) / len(x)
    np.testing.assert_allclose(ranks, np.arange(1, 10) / 10, atol=0.01)


def test_vocabulary_frequency_threshold_ties_and_empty_oov(tmp_path):
    t = pa.table({"s": ["b", "a", "c", "a", "b", "d", None, "c", "e"]})
    files = write_parts(tmp_path, t, parts=2)
    ref = module(tmp_path, """
    def preprocessing_fn(inputs):
        return {"s": jt.compute_and_apply_vocabulary(inputs["s"], frequency_threshold=2)}
    """)
    fitted = analyze(ref, {"s": "string"}, files)
    assert fitted.encoders["s"] == {"vocabulary": ["a", "b", "c"], "oov_buckets": 0}
    save_transform(fitted, tmp_path / "g")
    ids = load_transform(tmp_path / "g").apply({"s": ["c", "a", "zzz", None, "b"]})["s"]
    np.testing.assert_array_equal(ids, [2, 0, 3, 3, 1])


def test_an_analyzer_of_an_analyzer_takes_a_second_pass(tmp_path):
    t = table(800, seed=1)
    ref = module(tmp_path, """
    def preprocessing_fn(inputs):
        ids = jt.compute_and_apply_vocabulary(inputs["s"])
        z = jnp.nan_to_num(jt.scale_to_z_score(inputs["x"]))
        return {"zz": jt.scale_to_0_1(z * 2.0), "ids": jt.scale_to_z_score(ids.astype(jnp.float32))}
    """)
    fitted = analyze(ref, TYPES, write_parts(tmp_path, t))
    assert fitted.passes == 2
    x = floats(t, "x")
    c = fitted.constants["scale_to_z_score_1"]
    z = np.nan_to_num((x.astype(np.float32) - c["mean"]) / c["std"]) * np.float32(2)
    mm = fitted.constants["scale_to_0_1_2"]
    np.testing.assert_allclose([mm["min"], mm["max"]], [z.min(), z.max()], rtol=1e-6)
    ids = encode_strings(t.column("s"), fitted.encoders["s"]).astype(np.float64)
    assert fitted.constants["scale_to_z_score_3"]["mean"] == pytest.approx(ids.mean(), rel=1e-6)


def test_in_process_and_beam_give_identical_analysis(tmp_path):
    t = table(2000, seed=2)
    files = write_parts(tmp_path, t, parts=4, row_group=200)
    ref = module(tmp_path, ALL)
    local = analyze(ref, TYPES, files)
    beam = analyze(ref, TYPES, files, beam_pipeline_args=["--runner=DirectRunner"])
    assert beam.encoders == local.encoders
    assert beam.constants.keys() == local.constants.keys()
    for name, fields in local.constants.items():
        for key, value in fields.items():
            np.testing.assert_array_equal(beam.constants[name][key], value, err_msg=f"{name}.{key}")


def test_hash_buckets_are_stable_across_processes(tmp_path):
    t = table(300)
    ref = module(tmp_path, 'def preprocessing_fn(inputs):\n    return {"t": jt.hash_strings(inputs["t"], 7)}\n')
    save_transform(analyze(ref, TYPES, write_parts(tmp_path, t, parts=1)), tmp_path / "g")
    here = load_transform(tmp_path / "g").apply({"t": t.column("t")})["t"]
    code = ("import json, sys; from jfx.components.transform import load_transform; "
            "print(json.dumps(load_transform(sys.argv[1]).apply({'t': json.loads(sys.argv[2])})['t'].tolist()))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g"), json.dumps(t.column("t").to_pylist())],
                          capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(proc.stdout) == here.tolist()
    assert here.tolist() == [stable_hash(v) % 7 for v in t.column("t").to_pylist()]


def test_analyzers_outside_a_transform_explain_themselves():
    with pytest.raises(InvalidArgumentError, match="outside a Transform"):
        jt.scale_to_z_score(np.ones(3))


@pytest.mark.parametrize("body, message", [
    ('return {"y": inputs["s"] + 1}', "can only be passed to compute_and_apply_vocabulary"),
    ('return {"y": inputs["s"]}', "raw string column 's'"),
    ('return {"y": jt.compute_and_apply_vocabulary(inputs["x"])}', "takes a string column"),
    ('return {"y": jt.scale_to_z_score(inputs["s"])}', "got the string column 's'"),
    ('return {"a": jt.hash_strings(inputs["s"], 3), "b": jt.compute_and_apply_vocabulary(inputs["s"])}',
     "a string column gets one encoding"),
    ('return {"y": inputs["nope"]}', "column 'nope' is not in the examples"),
    ('return [inputs["x"]]', "must return a non-empty dict"),
])
def test_misuse_fails_with_a_message_that_says_what_to_do(tmp_path, body, message):
    ref = module(tmp_path, f"def preprocessing_fn(inputs):\n    {body}\n")
    with pytest.raises((ComponentError, InvalidArgumentError), match=message) as info:
        analyze(ref, TYPES, write_parts(tmp_path, table(50), parts=1))
    if "nope" in body:
        assert str(ref.module) in str(info.value)
