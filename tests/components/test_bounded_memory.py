"""Peak memory of the data components does not grow with the rows they read.

Each component runs in a subprocess (its own peak RSS measured there, VmHWM: ru_maxrss
would start from the parent's size) on the synthetic taxi table at two sizes, 4x apart,
with small read blocks and row groups forced, so that the multi-block paths run and the
smaller size already has many pieces (with few, the readers never fill their queues and
the small run's peak would understate the steady state). The bound is generous (measurement noise, allocator slack): it
catches a component that holds its whole input, which would double the peak here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jfx.examples.taxi.generate import generate, write

SMALL, LARGE = 200_000, 800_000
GROWTH = 1.35  # allowed peak(LARGE) / peak(SMALL); holding the input would give about 2-3x

_CHILD = r"""
import json, resource, sys
from pathlib import Path
from jfx.types import (Examples, ExampleStatistics, InferenceResult, Model, ModelBlessing, ModelEvaluation,
                       Schema, TransformGraph)
step, data, work, fmt = sys.argv[1:5]
work = Path(work)
examples = lambda name="ex": Examples(work / name, properties=json.loads((work / f"{name}.json").read_text()))
if step == "ExampleGen":
    from jfx.components._example_gen import ExampleGen
    (work / "ex").mkdir(parents=True)
    ex = Examples(work / "ex")
    ExampleGen.fn(examples=ex, input_base=data, format=fmt)
    (work / "ex.json").write_text(json.dumps(ex.properties))
elif step == "StatisticsGen":
    from jfx.components._statistics_gen import StatisticsGen
    (work / "st").mkdir(parents=True)
    st = ExampleStatistics(work / "st")
    StatisticsGen.fn(examples=examples(), statistics=st)
    (work / "st.json").write_text(json.dumps(st.properties))
elif step == "SchemaGen":
    from jfx.components._schema_gen import SchemaGen
    (work / "schema").mkdir()
    SchemaGen.fn(statistics=ExampleStatistics(work / "st", properties=json.loads((work / "st.json").read_text())),
                 schema=Schema(work / "schema"))
elif step == "Transform":  # analyze (z-score, quantiles, vocabulary) and apply
    from jfx.components._transform import Transform
    (work / "tx").mkdir(); (work / "tg").mkdir()
    tx = Examples(work / "tx")
    Transform.fn(examples=examples(), schema=Schema(work / "schema"), transformed_examples=tx,
                 transform_graph=TransformGraph(work / "tg"), module_file=data)
    (work / "tx.json").write_text(json.dumps(tx.properties))
elif step == "TrainerInput":  # one epoch of the Trainer's input, through its shuffle buffer
    from jfx.components._examples import split_files
    from jfx.core._data import Dataset
    ds = Dataset.from_parquet(split_files(examples("tx"), "train"), label="big_tipper", batch_size=256,
                              shuffle_buffer=10_000)
    assert sum(1 for _ in ds.host_batches(0)) == ds.num_batches()
elif step == "Evaluator":
    from jfx.components._evaluator import Evaluator
    (work / "ev").mkdir(); (work / "bl").mkdir()
    Evaluator.fn(examples=Examples(data, properties={"splits": ["eval"]}), model=Model(work / "model", id=1),
                 evaluation=ModelEvaluation(work / "ev"), blessing=ModelBlessing(work / "bl"),
                 eval_config={"label_key": "label", "slicing_specs": [[], ["island"]], "example_weight_key": "weight"})
else:
    from jfx.components._bulk_inferrer import BulkInferrer
    (work / "inf").mkdir()
    BulkInferrer.fn(examples=Examples(data, properties={"splits": ["eval"]}), model=Model(work / "model", id=1),
                    inference_result=InferenceResult(work / "inf"))
# This process's own peak: ru_maxrss would start from the parent's size (inherited over fork).
try:
    print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
except (OSError, StopIteration):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

_PREPROCESSING = """
import jax.numpy as jnp
from jfx.components import transform as jt

def preprocessing_fn(inputs):
    return {"miles": jnp.nan_to_num(jt.scale_to_z_score(inputs["trip_miles"])),
            "fare": jt.bucketize(inputs["fare"], 10),
            "company": jt.compute_and_apply_vocabulary(inputs["company"], top_k=100),
            "big_tipper": inputs["big_tipper"]}
"""


def _peak_kb(step: str, data: Path, work: Path, fmt: str) -> int:
    env = {**os.environ, "JFX_READ_BLOCK_BYTES": str(256 << 10), "JFX_ROW_GROUP_ROWS": "16384",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", _CHILD, step, str(data), str(work), fmt],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


def _write_jsonl(table, path: Path) -> None:
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as f:
        for batch in table.to_batches(50_000):
            f.write(batch.to_pandas().to_json(orient="records", lines=True, date_format="iso", date_unit="us"))
            f.write("\n")


@pytest.fixture(scope="module")
def taxi(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("taxi")
    out = {}
    for n in (SMALL, LARGE):
        write(generate(n, seed=1), root / str(n) / "csv", "csv")
        write(generate(n, seed=1), root / str(n) / "parquet", "parquet", row_group_size=16_384)
        _write_jsonl(generate(n, seed=1), root / str(n) / "jsonl" / "taxi.jsonl")
        out[n] = root / str(n)
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_example_gen_and_statistics_gen_peak_memory_does_not_grow_with_rows(taxi, tmp_path, fmt):
    peaks: dict[str, dict[int, int]] = {"ExampleGen": {}, "StatisticsGen": {}}
    for n in (SMALL, LARGE):
        work = tmp_path / f"{fmt}-{n}"
        for step in peaks:
            peaks[step][n] = _peak_kb(step, taxi[n] / fmt, work, fmt)
        props = json.loads((work / "ex.json").read_text())
        assert sum(props["row_counts"].values()) == n
    _check(peaks, fmt)


def _check(peaks: dict[str, dict[int, int]], what: str) -> None:
    for step, got in peaks.items():
        ratio = got[LARGE] / got[SMALL]
        assert ratio <= GROWTH, (
            f"{step} ({what}): peak {got[SMALL] >> 10} MB at {SMALL:,} rows, {got[LARGE] >> 10} MB at "
            f"{LARGE:,} rows ({ratio:.2f}x; at most {GROWTH}x expected)")


def test_transform_and_the_trainers_input_peak_memory_does_not_grow_with_rows(taxi, tmp_path):
    module = tmp_path / "preprocessing.py"
    module.write_text(_PREPROCESSING)
    peaks: dict[str, dict[int, int]] = {"Transform": {}, "TrainerInput": {}}
    for n in (SMALL, LARGE):
        work = tmp_path / str(n)
        for step in ("ExampleGen", "StatisticsGen", "SchemaGen"):
            _peak_kb(step, taxi[n] / "parquet", work, "parquet")
        for step in peaks:
            peaks[step][n] = _peak_kb(step, module, work, "parquet")
        assert sum(json.loads((work / "tx.json").read_text())["row_counts"].values()) == n
    _check(peaks, "taxi")


def test_evaluator_and_bulk_inferrer_peak_memory_does_not_grow_with_rows(tmp_path):
    # Scores of two decimals, as lib.eval_table gives: the exact score table of the AUC (up to
    # EXACT_MAX_SCORES distinct scores, by design) stays small, so what is measured is the data path.
    import jfx_testlib as lib

    peaks: dict[str, dict[int, int]] = {"Evaluator": {}, "BulkInferrer": {}}
    for n in (SMALL, LARGE):
        work = tmp_path / str(n)
        lib.write_examples(str(work / "examples"), {"eval": lib.eval_table(n, seed=1)}, row_group_size=16_384)
        lib.export_binary_model(str(work / "model"), bias=0.05)
        for step in peaks:
            peaks[step][n] = _peak_kb(step, work / "examples", work, "parquet")
        assert len(list((work / "inf").rglob("*.parquet"))) > 1
    _check(peaks, "eval table")
