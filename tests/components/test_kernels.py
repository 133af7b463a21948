"""The kernel contract, checked once for every kernel (see ``Kernel`` in components/_engine.py).

``merge`` must not mutate its inputs (Beam may merge one accumulator into several
results, or retry a merge), and merging the accumulators of any split of the batches,
empty ones and nested merges included, must equal one pass over all of them: that is
what lets both engines cut the data as they like and give the same answers.
"""

from __future__ import annotations

import itertools

import math
import pickle
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jfx_testlib as lib
import numpy as np
import pyarrow as pa
import pytest
from jfx.components._accumulators import finish as finish_analyzer
from jfx.components._analyzers import AnalysisKernel, _constant_structs, discover
from jfx.components._eval_metrics import ClassificationMetrics, MetricInputs, RegressionMetrics
from jfx.components._evaluator import EvalConfig, EvalKernel, resolve_model
from jfx.components._statistics import StatisticsKernel
from jfx.components._transform import preprocessing_ref


@dataclass
class Case:
    """A kernel, its batches, how a batch is added, and how to read its result."""

    kernel: Any
    batches: list[Any]
    add: Callable[[Any, Any, Any], Any]
    result: Callable[[Any, Any], Any] = lambda kernel, acc: kernel.finish(acc)


def _add_batch(kernel: Any, acc: Any, batch: Any) -> Any:
    return kernel.add_batch(acc, batch)


def _add_inputs(kernel: Any, acc: Any, inputs: Any) -> Any:
    return kernel.add(acc, inputs)


def _slices(table: pa.Table, sizes: list[int]) -> list[pa.RecordBatch]:
    out, start = [], 0
    for n in sizes:
        out.extend(table.slice(start, n).to_batches())
        start += n
    return out


def _table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(40.0, 7.0, rows)
    x[rng.random(rows) < 0.1] = np.nan
    words = np.array(["red", "green", "blue", "cyan"])
    return pa.table({
        "x": pa.array(x, mask=np.isnan(x)),
        "n": pa.array(rng.integers(0, 1000, rows)),
        "s": pa.array(words[rng.integers(0, 4, rows)].tolist(), pa.string()),
        "flag": pa.array(rng.random(rows) < 0.3),
    })


def statistics(tmp_path: Path) -> Case:
    return Case(StatisticsKernel(), _slices(_table(160), [40, 40, 0, 50, 30]), _add_batch)


def analysis(tmp_path: Path) -> Case:
    path = tmp_path / "prep.py"
    path.write_text("from jfx.components import transform as jt\n\n" + textwrap.dedent("""
        def preprocessing_fn(inputs):
            return {"z": jt.scale_to_z_score(inputs["x"]), "u": jt.scale_to_0_1(inputs["n"]),
                    "b": jt.bucketize(inputs["x"], 4), "s": jt.compute_and_apply_vocabulary(inputs["s"])}
    """))
    ref = preprocessing_ref(str(path))
    available = {"x": "float", "n": "int", "s": "string", "flag": "bool"}
    types, records = discover(ref, available)
    numeric = [r.name for r in records if r.constants]
    strings = [r.name for r in records if r.kind == "compute_and_apply_vocabulary"]
    kernel = AnalysisKernel(ref, available, types, records, _constant_structs(records), {}, numeric, strings)
    by_name = {r.name: r for r in records}
    columns = list(types)
    batches = [b.select(columns) for b in _slices(_table(160), [40, 40, 0, 50, 30])]
    return Case(kernel, batches, _add_batch,
                lambda k, acc: {n: finish_analyzer(by_name[n], a) for n, a in k.finish(acc).items()})


def evaluation(tmp_path: Path) -> Case:
    model = lib.export_binary_model(str(tmp_path / "model"), bias=0.05)
    config = EvalConfig.parse({"label_key": "label", "example_weight_key": "weight",
                               "slicing_specs": [[], ["island"]]})
    kernel = EvalKernel({"candidate": resolve_model(model, config)}, config)
    return Case(kernel, _slices(lib.eval_table(160, seed=1), [40, 40, 0, 50, 30]), _add_batch)


def evaluation_with_analysis(tmp_path: Path) -> Case:
    """Bootstrap replicates, fairness rates and a bucketed slice: rows added at their positions."""
    model = lib.export_binary_model(str(tmp_path / "model"), bias=0.05)
    config = EvalConfig.parse({"label_key": "label", "slicing_specs": [[], ["island"],
                                                                        [{"column": "x", "boundaries": [0.3, 0.6]}]],
                               "confidence_intervals": {"num_bootstrap_samples": 5},
                               "fairness": {"thresholds": [0.3, 0.7]}})
    kernel = EvalKernel({"candidate": resolve_model(model, config)}, config)
    batches, first = [], 0
    for batch in _slices(lib.eval_table(160, seed=1), [40, 40, 0, 50, 30]):
        batches.append((batch, 0, first))
        first += batch.num_rows
    return Case(kernel, batches, lambda k, acc, item: k.add_batch_at(acc, *item))


def _inputs(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> MetricInputs:
    return MetricInputs(labels, predictions, weights)


def classification_metrics(tmp_path: Path) -> Case:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(3), 160)
    y = rng.integers(0, 3, 160)
    w = rng.uniform(0.5, 2.0, 160)
    cuts = [0, 40, 80, 80, 130, 160]
    batches = [_inputs(y[a:b], p[a:b], w[a:b]) for a, b in itertools.pairwise(cuts)]
    return Case(ClassificationMetrics(3), batches, _add_inputs)


def regression_metrics(tmp_path: Path) -> Case:
    rng = np.random.default_rng(3)
    y, p, w = rng.normal(size=160), rng.normal(size=160), rng.uniform(0.5, 2.0, 160)
    cuts = [0, 40, 80, 80, 130, 160]
    batches = [_inputs(y[a:b], p[a:b], w[a:b]) for a, b in itertools.pairwise(cuts)]
    return Case(RegressionMetrics(), batches, _add_inputs)


KERNELS = [statistics, analysis, evaluation, evaluation_with_analysis, classification_metrics, regression_metrics]


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats up to summation order."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=1e-9, err_msg=where)
    elif isinstance(a, float) and not (isinstance(a, float) and math.isnan(a)):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), where
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def _fold(case: Case, batches: list[Any]) -> Any:
    acc = case.kernel.create()
    for batch in batches:
        acc = case.add(case.kernel, acc, batch)
    return acc


@pytest.mark.parametrize("make", KERNELS, ids=lambda f: f.__name__)
def test_merge_keeps_its_inputs_and_split_states_merge_to_one_pass(make, tmp_path):
    case = make(tmp_path)
    kernel, batches = case.kernel, case.batches
    one_pass = case.result(kernel, _fold(case, batches))
    assert kernel.create() is not kernel.create()

    parts = [_fold(case, batches[:2]), kernel.create(), _fold(case, batches[2:4]), _fold(case, batches[4:])]
    before = [pickle.dumps(p) for p in parts]
    merged = kernel.merge(parts)
    assert [pickle.dumps(p) for p in parts] == before, "merge changed an input accumulator"
    _same(case.result(kernel, merged), one_pass)

    # Hierarchical merges (as Beam combines), whose results are merged again.
    left, right = kernel.merge(parts[:2]), kernel.merge(parts[2:])
    nested = kernel.merge([left, right])
    assert [pickle.dumps(p) for p in parts] == before, "merge changed an input accumulator"
    _same(case.result(kernel, nested), one_pass)
    # A merged accumulator is a fresh one: adding to it leaves the parts alone.
    case.add(kernel, merged, batches[0])
    assert [pickle.dumps(p) for p in parts] == before, "a merged accumulator shares state with an input"
