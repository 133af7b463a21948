"""The statistics kernel against a plain NumPy oracle, its merge property, and StatisticsGen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jfx import Output, Parameter, Pipeline, component
from jfx.components._statistics import StatisticsKernel, StatsAccumulator, load_statistics, write_statistics
from jfx.components._statistics_gen import StatisticsGen
from jfx.errors import DataValidationError
from jfx.metadata import EventType, ExecutionState, MetadataStore
from jfx.orchestrators import LocalDagRunner, RunState
from jfx.types import Examples, Schema

RUNNER = LocalDagRunner(progress=False)
RANKS = np.linspace(0.0, 1.0, 101)


def stats_table(n: int, seed: int = 0) -> pa.Table:
    """Random columns of every type, with nulls (and NaNs, which count as missing)."""
    rng = np.random.default_rng(seed)
    null = lambda p=0.1: rng.random(n) < p  # noqa: E731
    floats = rng.lognormal(1.0, 1.0, n) * rng.choice([-1, 1], n)
    floats[rng.random(n) < 0.05] = 0.0
    ints = rng.integers(-50, 500, n)
    ints[rng.random(n) < 0.1] = 0
    words = np.array([f"w{i}" * (1 + i % 3) for i in range(40)] + ["héllo", ""])
    return pa.table({
        "f": pa.array(floats, mask=null()),
        "i": pa.array(ints, mask=null(0.2)),
        "s": pa.array(words[rng.integers(0, len(words), n)], mask=null()),
        "b": pa.array(rng.random(n) < 0.3, mask=null()),
        "t": pa.array(1_600_000_000_000_000 + rng.integers(0, 10**12, n), type=pa.timestamp("us"), mask=null()),
        "id": pa.array([f"id-{v}" for v in rng.integers(0, 10**9, n)]),
        "empty": pa.array([None] * n, type=pa.float64()),
    })


def run_batches(table: pa.Table, sizes: list[int], kernel: StatisticsKernel | None = None, accs: int = 1) -> dict:
    kernel = kernel or StatisticsKernel()
    parts = [kernel.create() for _ in range(accs)]
    start = 0
    for j, size in enumerate(sizes):
        for batch in table.slice(start, size).to_batches():
            parts[j % accs] = kernel.add_batch(parts[j % accs], batch)
        start += size
    assert start == table.num_rows
    return kernel.finish(kernel.merge(parts))


def random_sizes(n: int, pieces: int, rng: np.random.Generator) -> list[int]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=pieces - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [n]])).tolist()


def check_quantiles(present: np.ndarray, quantiles: list[float]) -> None:
    ordered = np.sort(present)
    n = len(ordered)
    q = np.asarray(quantiles)
    lo = np.searchsorted(ordered, q, side="left") / n
    hi = np.searchsorted(ordered, q, side="right") / n
    assert np.all(lo <= RANKS + 0.01) and np.all(hi >= RANKS - 0.01)
    assert np.all(np.diff(q) >= 0)


@pytest.mark.parametrize("n", [1_500, 60_000])
def test_statistics_match_a_numpy_oracle(n):
    table = stats_table(n, seed=n)
    rng = np.random.default_rng(7)
    stats = run_batches(table, random_sizes(n, 9, rng), accs=3)
    assert stats["num_rows"] == n
    cols = stats["columns"]
    for name, kind in [("f", "float"), ("i", "int"), ("t", "timestamp"), ("b", "bool")]:
        col = table.column(name).combine_chunks()
        valid = np.asarray(col.is_valid())
        values = col.cast(pa.int64() if kind == "timestamp" else col.type).to_numpy(zero_copy_only=False)
        present = np.asarray(values[valid], dtype=np.float64)
        got = cols[name]
        assert got["type"] == kind
        assert got["count"] == len(present) and got["missing"] == n - len(present)
        num = got["numeric"]
        assert num["min"] == present.min() and num["max"] == present.max()
        assert num["mean"] == pytest.approx(present.mean(), rel=1e-9)
        assert num["std"] == pytest.approx(present.std(), rel=1e-9)
        assert num["zeros"] == int((present == 0).sum())
        assert len(num["quantiles"]) == 101
        check_quantiles(present, num["quantiles"])
        hist = num["histogram"]
        assert len(hist["boundaries"]) == 11 and sum(hist["counts"]) == len(present)
        expected = np.histogram(present, bins=np.asarray(hist["boundaries"]))[0]
        np.testing.assert_allclose(hist["boundaries"], np.linspace(present.min(), present.max(), 11))
        if len(present) <= 2048:  # the sketch is exact: identical counts
            assert hist["counts"] == expected.tolist()
        else:
            assert np.max(np.abs(np.cumsum(hist["counts"]) - np.cumsum(expected))) <= 0.01 * len(present)
        qh = num["quantile_histogram"]
        assert qh["boundaries"] == num["quantiles"][::10] and sum(qh["counts"]) == len(present)
    # strings: exact top values and lengths (few distinct values)
    s = table.column("s").combine_chunks()
    present = [v for v in s.to_pylist() if v is not None]
    values, counts = np.unique(np.array(present, dtype=object), return_counts=True)
    expected_top = sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
    got = cols["s"]["string"]
    assert [(d["value"], d["count"]) for d in got["top_values"]] == expected_top
    assert got["unique"] == len(values)
    assert got["avg_length"] == pytest.approx(sum(len(v) for v in present) / len(present), rel=1e-12)
    assert "numeric" not in cols["s"]
    # bool: numeric 0/1 and a string block of "true"/"false"
    b = [v for v in table.column("b").to_pylist() if v is not None]
    bstr = cols["b"]["string"]
    assert {d["value"]: d["count"] for d in bstr["top_values"]} == {"true": sum(b), "false": len(b) - sum(b)}
    assert bstr["avg_length"] == pytest.approx((4 * sum(b) + 5 * (len(b) - sum(b))) / len(b))
    # a high-cardinality column: HyperLogLog
    ids = set(table.column("id").to_pylist())
    if len(ids) > 1000:
        assert abs(cols["id"]["string"]["unique"] / len(ids) - 1) < 0.03
        assert len(cols["id"]["string"]["top_values"]) <= 100
    # an all-null column has counts but no blocks
    assert cols["empty"] == {"type": "float", "count": 0, "missing": n}


def test_any_partitioning_gives_the_same_statistics():
    n = 40_000
    table = stats_table(n, seed=11)
    rng = np.random.default_rng(12)
    base = run_batches(table, [n])
    for pieces, accs in [(2, 1), (17, 4), (80, 7)]:
        other = run_batches(table, random_sizes(n, pieces, rng), accs=accs)
        for name, col in base["columns"].items():
            got = other["columns"][name]
            assert (got["count"], got["missing"]) == (col["count"], col["missing"])
            if "numeric" in col:
                a, b = col["numeric"], got["numeric"]
                assert (a["min"], a["max"], a["zeros"]) == (b["min"], b["max"], b["zeros"])
                assert b["mean"] == pytest.approx(a["mean"], rel=1e-9)
                assert b["std"] == pytest.approx(a["std"], rel=1e-9)
                assert a["histogram"]["boundaries"] == b["histogram"]["boundaries"]
                present = table.column(name).drop_null()
                present = present.cast(pa.int64()) if name == "t" else present
                check_quantiles(np.asarray(present.to_numpy(), dtype=float), b["quantiles"])
            if "string" in col:
                a, b = col["string"], got["string"]
                assert a["avg_length"] == pytest.approx(b["avg_length"], rel=1e-12)
                if name != "id":
                    assert a == b
                else:  # HyperLogLog registers merge by max: identical for any partitioning
                    assert a["unique"] == b["unique"]


def test_histogram_counted_against_footer_bounds_only_when_the_extremes_agree():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(10.0, 1.0, 50_000), [40.0, 45.0, 50.0]])
    table = pa.table({"x": values, "k": rng.integers(0, 7, len(values))})
    expected = np.histogram(values, bins=np.linspace(values.min(), values.max(), 11))[0].tolist()
    right = StatisticsKernel(bounds={"x": (float(values.min()), 50.0), "k": (0, 6)})
    acc = right.merge([right.add_batch(right.create(), b) for b in table.to_batches(max_chunksize=7_000)])
    stats = right.finish(acc)
    assert stats["columns"]["x"]["numeric"]["histogram"]["counts"] == expected  # the tail included
    assert right.follow_up(acc) is None  # nothing left for a second pass
    # Footers that disagree with the data (here: a max of 60) are not trusted: the
    # column goes to the second pass, whose counts are numpy's.
    wrong = StatisticsKernel(bounds={"x": (float(values.min()), 60.0)})
    acc = wrong.add_batch(wrong.create(), table.to_batches()[0])
    second = wrong.follow_up(acc)
    assert second is not None and second.read_columns == ["x", "k"]
    counts = second.finish(second.add_batch(second.create(), table.to_batches()[0]))
    assert counts["x"] == expected
    assert counts["k"] == np.histogram(table.column("k").to_numpy(), bins=np.linspace(0, 6, 11))[0].tolist()
    assert wrong.complete(wrong.finish(acc), counts)["columns"]["x"]["numeric"]["histogram"]["counts"] == expected


def test_nan_counts_as_missing_and_schema_types_override():
    batch = pa.record_batch({"x": [1.0, float("nan"), None, 3.0], "area": [7, 7, 8, None]})
    kernel = StatisticsKernel({"area": "string"})
    stats = kernel.finish(kernel.add_batch(kernel.create(), batch))
    assert stats["columns"]["x"]["count"] == 2 and stats["columns"]["x"]["missing"] == 2
    area = stats["columns"]["area"]
    assert area["type"] == "string" and "numeric" not in area
    assert area["string"]["top_values"] == [{"value": "7", "count": 2}, {"value": "8", "count": 1}]
    with pytest.raises(DataValidationError, match="not one of"):
        StatisticsKernel({"x": "decimal"})


def test_columns_that_repeat_their_values_get_the_statistics_a_full_sort_gives(monkeypatch):
    # Prices and wide-range ints that repeat are sorted through their distinct values;
    # mostly-distinct floats are sorted directly. Either way the statistics are those of
    # sorting every batch (here forced by a minimum batch size no batch reaches).
    from jfx.components import _statistics

    rng = np.random.default_rng(5)
    n = 50_000
    prices = np.round(rng.lognormal(2.0, 0.5, n), 1)
    prices[rng.random(n) < 0.1] = 0.0
    prices[rng.random(n) < 0.01] = -0.0
    table = pa.table({
        "price": pa.array(prices, mask=rng.random(n) < 0.05),
        "ids": rng.integers(0, 10**12, 500)[rng.integers(0, 500, n)],  # a range too wide to count, few values
        "noise": rng.normal(0.0, 1.0, n),
    })
    kernel = StatisticsKernel()

    def run() -> tuple[dict, StatsAccumulator]:
        accs = [kernel.create(), kernel.create()]
        for i, batch in enumerate(table.to_batches(max_chunksize=12_000)):
            accs[i % 2] = kernel.add_batch(accs[i % 2], batch)
        return kernel.finish(kernel.merge(accs)), accs[0]

    fast, acc = run()
    assert acc.columns["price"].numeric.repeats and acc.columns["ids"].numeric.repeats
    assert not acc.columns["noise"].numeric.repeats
    monkeypatch.setattr(_statistics, "_REPEATS_MIN_ROWS", n + 1)
    sorted_each_batch, _ = run()
    assert json.dumps(fast) == json.dumps(sorted_each_batch)


def test_dictionary_encoded_strings_match_plain_strings():
    rng = np.random.default_rng(3)
    plain = pa.array(np.array(["a", "bb", "ccc", None], dtype=object)[rng.integers(0, 4, 5000)])
    kernel = StatisticsKernel()
    a = kernel.finish(kernel.add_batch(kernel.create(), pa.record_batch({"s": plain})))
    b = kernel.finish(kernel.add_batch(kernel.create(), pa.record_batch({"s": plain.dictionary_encode()})))
    assert a == b


def test_write_and_load_statistics(tmp_path):
    stats = run_batches(stats_table(100), [100])
    path = write_statistics(tmp_path, "train", stats)
    assert path == tmp_path / "Split-train" / "statistics.json"
    loaded = load_statistics(tmp_path)
    assert loaded["train"]["split"] == "train" and loaded["train"]["columns"] == json.loads(json.dumps(stats["columns"]))
    with pytest.raises(DataValidationError, match="has no statistics"):
        load_statistics(tmp_path, ["eval"])
    with pytest.raises(DataValidationError, match="ExampleStatistics"):
        load_statistics(tmp_path / "nothing")


# -- StatisticsGen in a real pipeline -----------------------------------------------------------


@component
def stats_make_examples(examples: Output[Examples], rows: Parameter[int] = 300, corrupt: Parameter[str] = "",
                        splits: Parameter[list] = None):
    """A tiny Examples artifact: two splits of Parquet shards (optionally one corrupt or missing)."""
    names = list(splits or ["train", "eval"])
    table = stats_table(rows, seed=5)
    for k, split in enumerate(names):
        folder = Path(examples.uri) / f"Split-{split}"
        folder.mkdir(parents=True)
        part = table.slice(k * (rows // 2), rows // 2)
        pq.write_table(part.slice(0, 50), folder / "part-00000.parquet")
        pq.write_table(part.slice(50), folder / "part-00001.parquet")
    if corrupt:
        (Path(examples.uri) / corrupt).write_bytes(b"PAR1 this is not parquet")
    examples.properties["splits"] = ["train", "eval"]


@component
def stats_make_schema(schema: Output[Schema]):
    schema.write_json({"version": 1, "columns": {"i": {"type": "string"}, "f": {"type": "float"}}}, "schema.json")


def stats_pipeline(tmp_path, **kwargs) -> Pipeline:
    examples = stats_make_examples(**kwargs.pop("examples", {}))
    nodes = [examples]
    schema = None
    if kwargs.pop("with_schema", False):
        schema = stats_make_schema()
        nodes.append(schema)
        kwargs["schema"] = schema.outputs["schema"]
    nodes.append(StatisticsGen(examples=examples.outputs["examples"], **kwargs))
    return Pipeline("stats", components=nodes, pipeline_root=str(tmp_path / "root"),
                    metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


@pytest.mark.parametrize("beam", [False, True], ids=["in-process", "beam"])
def test_statistics_gen_in_a_pipeline(tmp_path, beam):
    args = ["--runner=DirectRunner"] if beam else None
    result = RUNNER.run(stats_pipeline(tmp_path, beam_pipeline_args=args, with_schema=True))
    assert result.state == RunState.COMPLETE, result.nodes["StatisticsGen"].error
    [art] = result.nodes["StatisticsGen"].outputs["statistics"]
    assert art.properties == {"splits": ["train", "eval"], "num_rows": {"train": 150, "eval": 150},
                              "engine": "beam" if beam else "in-process"}
    stats = load_statistics(art.uri)
    table = stats_table(300, seed=5)
    assert set(stats) == {"train", "eval"}
    train = stats["train"]
    assert train["split"] == "train" and train["num_rows"] == 150
    f = table.column("f").slice(0, 150).drop_null().to_numpy()
    assert train["columns"]["f"]["count"] == len(f)
    assert train["columns"]["f"]["numeric"]["mean"] == pytest.approx(f.mean(), rel=1e-9)
    assert train["columns"]["i"]["type"] == "string" and "numeric" not in train["columns"]["i"]  # the schema's type
    assert (Path(art.uri) / "Split-eval" / "statistics.json").is_file()


def test_statistics_gen_excludes_splits_and_takes_the_plain_function(tmp_path):
    result = RUNNER.run(stats_pipeline(tmp_path, exclude_splits=["eval"]))
    [art] = result.nodes["StatisticsGen"].outputs["statistics"]
    assert art.properties["splits"] == ["train"] and set(load_statistics(art.uri)) == {"train"}
    result = RUNNER.run(stats_pipeline(tmp_path / "b", exclude_splits=["test"]))
    assert result.state == RunState.FAILED
    assert "exclude_splits names ['test']" in result.nodes["StatisticsGen"].error


@pytest.mark.parametrize("case", ["corrupt", "missing_split"])
def test_bad_examples_fail_the_node_and_publish_nothing(tmp_path, case):
    if case == "corrupt":
        examples = {"corrupt": "Split-eval/part-00002.parquet"}
    else:
        examples = {"splits": ["train"]}  # the property still names "eval": its folder is missing
    result = RUNNER.run(stats_pipeline(tmp_path, examples=examples))
    assert result.state == RunState.FAILED
    node = result.nodes["StatisticsGen"]
    assert node.state == "failed" and node.error.startswith("DataValidationError")
    if case == "corrupt":
        assert "Split-eval/part-00002.parquet" in node.error and "not a readable Parquet file" in node.error
    else:
        assert "Split-eval" in node.error and "has no Parquet files" in node.error
    assert not (tmp_path / "root" / "stats" / "StatisticsGen" / "statistics").exists()
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        execution = store.get_execution(node.execution_id)
        assert execution.state == ExecutionState.FAILED
        events = store.get_events_by_execution_ids([node.execution_id])
        assert {e.type for e in events} == {EventType.INPUT}
