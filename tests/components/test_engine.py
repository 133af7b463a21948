"""One kernel, two engines: in-process vs Beam (DirectRunner, multi-process, Dask) agree."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from jfx_requires import importorskip

from jfx.components._engine import Piece, Source, plan_pieces, run_kernel
from jfx.components._statistics import StatisticsKernel
from jfx.errors import DataValidationError
from jfx.examples.taxi.generate import generate

RANKS = np.linspace(0.0, 1.0, 101)
DIRECT = ["--runner=DirectRunner"]
MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


class RowCounter:
    """The smallest kernel: rows and the sum of column ``x``."""

    def create(self):
        return (0, 0.0)

    def add_batch(self, acc, batch):
        return (acc[0] + batch.num_rows, acc[1] + float(np.nansum(batch.column("x").to_numpy(zero_copy_only=False))))

    def merge(self, accs):
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def finish(self, acc):
        return {"rows": acc[0], "sum": acc[1]}


class Exploding(RowCounter):
    def add_batch(self, acc, batch):
        raise ValueError("kernel bug")


@pytest.fixture(scope="module")
def stats_taxi_files(tmp_path_factory):
    """The taxi table (30k rows) in 3 Parquet files of several row groups, and as CSV."""
    folder = tmp_path_factory.mktemp("taxi")
    table = generate(30_000, seed=3)
    paths = []
    for i, start in enumerate((0, 12_000, 21_000)):
        part = table.slice(start, {0: 12_000, 1: 9_000, 2: 9_000}[i])
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(part, path, row_group_size=4_000)
        paths.append(str(path))
    csv = folder / "taxi.csv"
    pacsv.write_csv(table, csv)
    return table, paths, str(csv)


@pytest.fixture(scope="module")
def stats_reference(stats_taxi_files):
    _, paths, _ = stats_taxi_files
    return run_kernel(StatisticsKernel(), paths)


@pytest.fixture(scope="module")
def stats_dask_address():
    distributed = importorskip("dask.distributed", hint="pip install 'dask[distributed]'")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def assert_same_statistics(a: dict, b: dict, table: pa.Table) -> None:
    assert a["num_rows"] == b["num_rows"] == table.num_rows
    assert list(a["columns"]) == list(b["columns"]) == table.column_names
    for name, x in a["columns"].items():
        y = b["columns"][name]
        assert (x["type"], x["count"], x["missing"]) == (y["type"], y["count"], y["missing"]), name
        if "numeric" in x:
            p, q = x["numeric"], y["numeric"]
            assert (p["min"], p["max"], p["zeros"]) == (q["min"], q["max"], q["zeros"]), name
            assert q["mean"] == pytest.approx(p["mean"], rel=1e-9) and q["std"] == pytest.approx(p["std"], rel=1e-9)
            assert sum(q["histogram"]["counts"]) == x["count"]
            assert p["histogram"] == q["histogram"], name  # exact on every engine
            column = table.column(name).drop_null()
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            ordered = np.sort(np.asarray(column.to_numpy(), dtype=float))
            for quantiles in (p["quantiles"], q["quantiles"]):
                lo = np.searchsorted(ordered, quantiles, side="left") / len(ordered)
                hi = np.searchsorted(ordered, quantiles, side="right") / len(ordered)
                assert np.all(lo <= RANKS + 0.01) and np.all(hi >= RANKS - 0.01), name
        if "string" in x:
            # HyperLogLog registers merge by max, and <= 1,000 distinct values are counted exactly
            assert x["string"]["unique"] == y["string"]["unique"], name
            if x["string"]["unique"] <= 1000:
                assert x["string"]["top_values"] == y["string"]["top_values"], name
            else:  # Misra-Gries: under-counts by at most N / 1001, whatever the partitioning
                truth = dict(zip(*np.unique(table.column(name).drop_null().to_numpy(zero_copy_only=False),
                                            return_counts=True), strict=True))
                for top in (x["string"]["top_values"], y["string"]["top_values"]):
                    for item in top:
                        assert truth[item["value"]] - x["count"] / 1001 <= item["count"] <= truth[item["value"]]
            assert x["string"]["avg_length"] == pytest.approx(y["string"]["avg_length"], rel=1e-12)


@pytest.mark.parametrize("args", [DIRECT, MULTI], ids=["direct", "multi_processing"])
def test_beam_direct_runner_agrees_with_in_process(stats_taxi_files, stats_reference, args):
    table, paths, _ = stats_taxi_files
    assert_same_statistics(stats_reference, run_kernel(StatisticsKernel(), paths, beam_pipeline_args=args), table)


def test_beam_dask_runner_agrees_with_in_process(stats_taxi_files, stats_reference, stats_dask_address):
    table, paths, _ = stats_taxi_files
    args = ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner", f"--dask_client_address={stats_dask_address}"]
    assert_same_statistics(stats_reference, run_kernel(StatisticsKernel(), paths, beam_pipeline_args=args), table)


def test_csv_sources_agree_with_parquet(stats_taxi_files, stats_reference):
    table, _, csv = stats_taxi_files
    from_csv = run_kernel(StatisticsKernel(), [csv])
    assert_same_statistics(stats_reference, from_csv, table)
    assert from_csv["columns"]["trip_start_timestamp"]["type"] == "timestamp"


def test_in_process_reruns_are_identical(stats_taxi_files, stats_reference):
    _, paths, _ = stats_taxi_files
    assert run_kernel(StatisticsKernel(), paths) == stats_reference
    one = run_kernel(StatisticsKernel(), paths, num_workers=1, batch_size=1_000)
    assert one["columns"]["fare"]["numeric"]["mean"] == pytest.approx(
        stats_reference["columns"]["fare"]["numeric"]["mean"], rel=1e-12)


@pytest.mark.parametrize("args", [None, DIRECT], ids=["in-process", "beam"])
def test_grouped_sources_give_one_result_per_group(tmp_path, args):
    files = {}
    for name, rows in (("train", 700), ("eval", 300), ("empty", 0)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"x": np.arange(rows, dtype=float)}), path, row_group_size=256)
        files[name] = [path]
    files["nothing"] = []
    out = run_kernel(RowCounter(), files, beam_pipeline_args=args, batch_size=100)
    assert out == {"train": {"rows": 700, "sum": float(sum(range(700)))},
                   "eval": {"rows": 300, "sum": float(sum(range(300)))},
                   "empty": {"rows": 0, "sum": 0.0}, "nothing": {"rows": 0, "sum": 0.0}}


def numpy_histograms(stats: dict, table: pa.Table) -> dict[str, tuple[list, list]]:
    """Column → (expected counts by numpy.histogram on the statistics' own edges, got counts)."""
    out = {}
    for name, col in stats["columns"].items():
        if "numeric" not in col:
            continue
        column = table.column(name).drop_null()
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)
        values = values[~np.isnan(values)]
        hist = col["numeric"]["histogram"]
        np.testing.assert_array_equal(hist["boundaries"], np.linspace(values.min(), values.max(), 11))
        out[name] = (np.histogram(values, bins=np.asarray(hist["boundaries"]))[0].tolist(), hist["counts"])
    return out


@pytest.mark.parametrize("engine", ["in-process", "in-process-csv", "beam", "beam-multi"])
def test_histograms_are_exact_on_both_engines(stats_taxi_files, engine):
    table, paths, csv = stats_taxi_files
    sources = [csv] if engine == "in-process-csv" else paths
    args = {"beam": DIRECT, "beam-multi": MULTI}.get(engine)
    stats = run_kernel(StatisticsKernel(), sources, beam_pipeline_args=args)
    hists = numpy_histograms(stats, table)
    assert {"fare", "trip_miles", "trip_seconds", "trip_start_timestamp"} <= set(hists)
    for name, (expected, got) in hists.items():
        assert got == expected, name


@pytest.mark.parametrize("args", [None, DIRECT], ids=["in-process", "beam"])
def test_histogram_tail_is_exact_without_parquet_statistics(tmp_path, args):
    # A long tail: a few large values spread over the top bins, which a quantile sketch
    # of 60k values rounds away. Written without footer statistics and as two splits, so
    # the exact counts come from the engine's second pass, per split.
    rng = np.random.default_rng(5)
    body = rng.lognormal(2.0, 0.5, 60_000)
    tail = np.array([300.0, 320.0, 390.0, 410.0, 460.0, 470.0, 495.0, 500.0])
    files = {}
    for split, values in (("train", np.concatenate([body, tail])), ("eval", body[:5_000] * 2)):
        path = tmp_path / f"{split}.parquet"
        pq.write_table(pa.table({"fare": values, "n": np.arange(len(values))}), path,
                       row_group_size=8_192, write_statistics=False)
        files[split] = [path]
    stats = run_kernel(StatisticsKernel(), files, beam_pipeline_args=args)
    for split, path in files.items():
        table = pq.read_table(path)
        for name, (expected, got) in numpy_histograms(stats[split], table).items():
            assert got == expected, (split, name)
    assert stats["train"]["columns"]["fare"]["numeric"]["histogram"]["counts"][-5:] == [1, 1, 1, 1, 4]


def test_parquet_footers_make_the_second_pass_unneeded(stats_taxi_files, monkeypatch):
    table, paths, _ = stats_taxi_files
    second_passes = []
    real = StatisticsKernel.follow_up
    monkeypatch.setattr(StatisticsKernel, "follow_up", lambda self, acc: second_passes.append(real(self, acc)))
    stats = run_kernel(StatisticsKernel(), paths)
    assert second_passes == [None]  # every numeric column was counted against footer edges
    for name, (expected, got) in numpy_histograms(stats, table).items():
        assert got == expected, name


def test_csv_is_parsed_once_and_its_copy_removed(stats_taxi_files, tmp_path, monkeypatch):
    import tempfile

    table, _, csv = stats_taxi_files
    opened = []
    real_open_csv = pacsv.open_csv
    monkeypatch.setattr(pacsv, "open_csv", lambda *a, **k: opened.append(a[0]) or real_open_csv(*a, **k))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stats = run_kernel(StatisticsKernel(), [csv])
    assert opened == [csv]  # the second pass read the engine's copy of the numeric columns
    assert list(tmp_path.iterdir()) == []
    for name, (expected, got) in numpy_histograms(stats, table).items():
        assert got == expected, name


def test_pieces_are_row_groups_and_csv_files(stats_taxi_files):
    _, paths, csv = stats_taxi_files
    pieces = plan_pieces([*paths, csv])
    assert len(pieces) == 3 + 3 + 3 + 1
    assert pieces[0] == Piece(Source(paths[0], "parquet"), 0) and pieces[-1] == Piece(Source(csv, "csv"), None)


@pytest.mark.parametrize("args", [None, DIRECT], ids=["in-process", "beam"])
def test_corrupt_or_missing_files_name_the_file(tmp_path, args):
    bad = tmp_path / "part-00001.parquet"
    bad.write_bytes(b"PAR1 not really parquet at all PAR1")
    with pytest.raises(DataValidationError, match=r"part-00001.parquet: not a readable Parquet file"):
        run_kernel(RowCounter(), [bad], beam_pipeline_args=args)
    with pytest.raises(DataValidationError, match=r"nope.parquet: no such file"):
        run_kernel(RowCounter(), [tmp_path / "nope.parquet"], beam_pipeline_args=args)
    broken_csv = tmp_path / "broken.csv"
    broken_csv.write_text("x,y\n1,2\n3\n")
    with pytest.raises(DataValidationError, match=r"broken.csv: cannot read csv data"):
        run_kernel(RowCounter(), [broken_csv], beam_pipeline_args=args)


def test_kernel_errors_propagate_from_the_workers(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"x": np.arange(10_000, dtype=float)}), path, row_group_size=1_000)
    with pytest.raises(ValueError, match="kernel bug"):
        run_kernel(Exploding(), [path], batch_size=500)


def test_beam_workers_read_pieces_on_a_store_and_a_lost_result_fails(s3_root, tmp_path, monkeypatch):
    """Row groups of a Parquet object are read on the workers through the storage layer; a group
    whose result never reaches the driver is an error, never a result from part of the data."""
    from jfx import _storage as storage
    from jfx.components import _engine_beam
    from jfx.components._engine import _Read

    table = pa.table({"x": list(range(1000)), "s": [str(i % 7) for i in range(1000)]})
    local = tmp_path / "part.parquet"
    pq.write_table(table, local, row_group_size=300)
    uri = storage.join(s3_root, "data", "part.parquet")
    storage.write_bytes(uri, local.read_bytes())
    pieces = {"": [Piece(Source(uri, "parquet"), i) for i in range(4)]}
    kernels = {"": RowCounter()}
    reads = {"": _Read(RowCounter(), None)}
    accs = _engine_beam.run_on_beam(kernels, pieces, ["--runner=DirectRunner"], reads)
    assert RowCounter().finish(accs[""]) == {"rows": 1000, "sum": float(sum(range(1000)))}

    monkeypatch.setattr(_engine_beam, "read_results", lambda folder: [])
    with pytest.raises(DataValidationError, match="did not reach"):
        _engine_beam.run_on_beam(kernels, pieces, ["--runner=DirectRunner"], reads)


class BatchOrder(RowCounter):
    """Records the first ``x`` of every batch, in the order the batches reached the kernel."""

    def create(self):
        return []

    def add_batch(self, acc, batch):
        return [*acc, (batch.num_rows, batch.column("x")[0].as_py())]

    def merge(self, accs):
        return [item for acc in accs for item in acc]

    def finish(self, acc):
        return acc


def test_row_groups_on_a_store_are_read_ahead_without_changing_results_or_order(s3_root, tmp_path, monkeypatch):
    """Remote row groups are fetched ahead of the workers; the statistics, and which batches
    each worker folds in which order, are those of the same files on local disk."""
    import threading

    from jfx import _storage as storage
    from jfx.components import _engine

    table = pa.table({"x": list(range(20_000)), "s": [f"v{i % 13}" for i in range(20_000)]})
    local, remote = [], []
    for i in range(3):
        path = tmp_path / f"part-{i}.parquet"
        pq.write_table(table.slice(i * 6_000, 6_000 + 2_000 * (i == 2)), path, row_group_size=1_000)
        local.append(str(path))
        remote.append(storage.join(s3_root, "ahead", path.name))
        storage.write_bytes(remote[-1], path.read_bytes())
    fetched: list[int] = []
    real = _engine._Prefetch._read_whole
    monkeypatch.setattr(_engine._Prefetch, "_read_whole",
                        lambda self, key, piece: (fetched.append(piece.row_group), real(self, key, piece))[1])
    for workers in (1, 2, 3):
        kw = {"batch_size": 400, "num_workers": workers}
        assert run_kernel(BatchOrder(), remote, **kw) == run_kernel(BatchOrder(), local, **kw)
        assert run_kernel(StatisticsKernel(), remote, **kw) == run_kernel(StatisticsKernel(), local, **kw)
    assert len(fetched) == 2 * 3 * 20  # every remote row group, each fetched once per run
    assert not [t for t in threading.enumerate() if t.name.startswith("jfx-engine-prefetch")]


def test_a_corrupt_row_group_on_a_store_fails_at_its_turn_naming_the_object(s3_root, tmp_path):
    import threading

    from jfx import _storage as storage

    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"x": list(range(5_000))}), path, row_group_size=1_000)
    data = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(3).column(0)
    start = chunk.data_page_offset
    data[start:start + 64] = b"\xff" * 64  # the fourth row group's first page
    uri = storage.join(s3_root, "bad", "part.parquet")
    storage.write_bytes(uri, bytes(data))
    with pytest.raises(DataValidationError, match=r"part\.parquet row group 3"):
        run_kernel(RowCounter(), [uri], batch_size=500, num_workers=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("jfx-engine-prefetch")]
