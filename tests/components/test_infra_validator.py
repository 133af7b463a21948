"""InfraValidator: the real model server in a subprocess blesses a good model, not a broken one."""

from __future__ import annotations

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jfx.components._infra_validator import (
    INFRA_BLESSING_FILE,
    InfraValidator,
    RequestSpec,
    ServerProcess,
    _answer_columns,
    _compare,
)
from jfx.core import TensorSpec, export, load
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.types import Examples, InfraBlessing, Model

SIGNATURE = {"x": TensorSpec("float32"), "v": TensorSpec("float32", (2,)),
             "c": TensorSpec("string", encoder={"vocabulary": ["a", "b"], "oov_buckets": 1})}


def serving_fn(params, f):
    score = f["x"] * params["w"] + f["v"].sum(axis=-1) + f["c"].astype(jnp.float32) + params["b"]
    return {"score": score, "probabilities": jnp.stack([1 / (1 + jnp.exp(score)), 1 / (1 + jnp.exp(-score))], -1),
            "class_ids": (score > 0).astype(jnp.int32)}


def export_tiny(path):
    return export(serving_fn, {"w": jnp.float32(2.0), "b": jnp.float32(-0.5)}, SIGNATURE, path)


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("models") / "good")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("eval", 12)):
        folder = root / f"Split-{split}"
        folder.mkdir()
        table = pa.table({
            "x": pa.array(rng.normal(size=n)),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=2 * n)), 2),
            "c": pa.array(rng.choice(["a", "b", "zz"], n).tolist()),
            "label": pa.array(rng.integers(0, 2, n)),  # not a model input: left out of the requests
        })
        pq.write_table(table.slice(0, n // 2), folder / "part-00000.parquet")
        pq.write_table(table.slice(n // 2), folder / "part-00001.parquet")
    return Examples(root, properties={"splits": ["train", "eval"]})


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def run(model_dir, tmp_path, examples=None, **spec):
    out = InfraBlessing(tmp_path / "blessing")
    InfraValidator.fn(model=Model(model_dir, id=7), infra_blessing=out, examples=examples, request_spec=spec or None)
    return out, json.loads((tmp_path / "blessing" / INFRA_BLESSING_FILE).read_text())


def test_blesses_a_good_model_served_in_a_subprocess(good_model, examples, tmp_path):
    out, doc = run(good_model, tmp_path, examples, num_examples=8, max_latency_ms=5000)
    assert out.properties["blessed"] is True, out.properties["reasons"]
    assert out.properties["reasons"] == [] and doc["blessed"] is True
    assert out.properties["model_id"] == 7 and doc["model_id"] == 7
    assert set(doc["checks"]) == {"loads_in_process", "loaded", "status", "outputs", "finite", "consistent", "latency"}
    assert all(c["passed"] for c in doc["checks"].values())
    assert doc["rows_from"] == "examples" and doc["requests"] == 9  # 8 one-row requests + one 8-row request
    lat = doc["latency_ms"]
    assert lat["count"] == 8 and 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert out.properties["latency_p50_ms"] == lat["p50"] and out.properties["latency_p99_ms"] == lat["p99"]
    assert doc["load_s"] > 0
    assert doc["server"]["command"][1:3] == ["-m", "jfx.core._serving"]
    assert "127.0.0.1" in doc["server"]["command"]
    assert gone(doc["server"]["pid"]), "the server subprocess must be stopped"


@pytest.mark.parametrize("damage, why", [
    ("model.stablehlo", "the model server could not load the model"),
    ("signature.json", "the model server found no version 1"),
])
def test_does_not_bless_a_corrupt_model_and_keeps_the_server_log(good_model, tmp_path, damage, why):
    bad = tmp_path / "bad"
    shutil.copytree(good_model, bad)
    if damage == "signature.json":
        (bad / damage).unlink()
    else:
        (bad / damage).write_bytes(b"not a serialized function")
    out, doc = run(bad, tmp_path, timeout_s=60)
    assert out.properties["blessed"] is False
    reasons = "\n".join(out.properties["reasons"])
    assert why in reasons and "server log (tail)" in reasons
    assert doc["checks"]["loaded"]["passed"] is False and doc["checks"]["loads_in_process"]["passed"] is False
    assert doc["load_s"] < 30, "a model that cannot load is reported at once, not after the timeout"
    assert doc["server"]["log_tail"].strip()
    if damage == "model.stablehlo":
        assert "could not load" in doc["server"]["log_tail"]
    assert doc["requests"] == 0 and doc["latency_ms"] is None
    assert gone(doc["server"]["pid"])


def test_without_examples_rows_come_from_the_signature_and_latency_is_checked(good_model, tmp_path):
    out, doc = run(good_model, tmp_path, num_examples=2, max_latency_ms=1e-6)
    assert doc["rows_from"] == "signature" and doc["requests"] == 3
    assert out.properties["blessed"] is False
    assert len(out.properties["reasons"]) == 1 and out.properties["reasons"][0].startswith("latency: p99")
    assert doc["checks"]["consistent"]["passed"] is True
    assert gone(doc["server"]["pid"])


def test_the_server_is_stopped_when_the_caller_fails(good_model):
    with pytest.raises(RuntimeError), ServerProcess(good_model) as server:
        pid = server.pid
        assert server.exited() is None
        raise RuntimeError("boom")
    assert gone(pid) and server.returncode is not None


def test_answers_are_checked_against_the_signature_and_the_in_process_model(good_model):
    model = load(good_model)
    rows = [{"x": 1.0, "v": [0.5, 0.5], "c": "b"}, {"x": -3.0, "v": [0.0, 0.0], "c": "a"}]
    local = model(rows)
    preds = [{k: np.asarray(v[i]).tolist() for k, v in local.items()} for i in range(2)]
    cols = _answer_columns({"predictions": preds}, model.outputs, 2)
    assert _compare(cols, local, model.outputs) == []
    preds[1]["score"] += 1.0
    assert "'score' differs" in _compare(_answer_columns({"predictions": preds}, model.outputs, 2), local,
                                          model.outputs)[0]
    from jfx.components._infra_validator import _NotServable

    with pytest.raises(_NotServable, match="outputs"):
        _answer_columns({"predictions": [{"score": 1.0}, {"score": 2.0}]}, model.outputs, 2)
    with pytest.raises(_NotServable, match="shape"):
        _answer_columns({"predictions": [{**preds[0], "probabilities": [1.0]}] * 2}, model.outputs, 2)
    with pytest.raises(_NotServable, match="predictions"):
        _answer_columns({"error": "x"}, model.outputs, 2)


@pytest.mark.parametrize("spec, match", [
    ({"splt": "eval"}, "unknown key"),
    ({"num_examples": 0}, "num_examples"),
    ({"num_examples": True}, "num_examples"),
    ({"max_latency_ms": -1}, "max_latency_ms"),
    ({"timeout_s": "60"}, "timeout_s"),
    ({"split": ""}, "split"),
])
def test_a_bad_request_spec_is_refused(spec, match):
    with pytest.raises(InvalidArgumentError, match=match):
        RequestSpec.from_dict(spec)


def test_defaults_and_a_missing_split_fail_before_any_server_starts(good_model, examples, tmp_path):
    assert RequestSpec.from_dict(None) == RequestSpec("eval", 10, 1000.0, 60.0)
    with pytest.raises(DataValidationError, match=r"splits \['train', 'eval'\]"):
        run(good_model, tmp_path, examples, split="test")
    assert not (tmp_path / "blessing" / INFRA_BLESSING_FILE).exists()


def test_the_server_dies_with_a_killed_caller(good_model, tmp_path):
    """A runner killed with SIGKILL cannot stop its server: the server must notice and stop itself."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = tmp_path / "caller.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from jfx.components._infra_validator import ServerProcess
        server = ServerProcess({str(good_model)!r}).start()
        print(server.pid, flush=True)
        time.sleep(600)
    """))
    caller = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(caller.stdout.readline())
        assert not gone(server_pid)
        caller.send_signal(signal.SIGKILL)
        caller.wait(10)
        deadline = time.monotonic() + 20
        while not gone(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(server_pid)
    finally:
        if caller.poll() is None:
            caller.kill()
