"""Synthetic tabular data for the tensor core tests (small: compile cost dominates)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def make_classification(n: int = 1024, seed: int = 0) -> dict[str, np.ndarray]:
    """Linearly separable with a margin: label = x0 + x1 - x2 + [c == 3] > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    c = rng.integers(0, 6, n)
    score = x[:, 0] + x[:, 1] - x[:, 2] + 1.5 * (c == 3) - 0.5
    keep = np.abs(score) > 0.25
    return {"x": x[keep], "c": c[keep].astype(np.int64), "y": (score[keep] > 0).astype(np.int64)}


def make_regression(n: int = 1024, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    return {"a": a, "b": b, "y": (2 * a - b + 0.5 + 0.05 * rng.normal(size=n)).astype(np.float32)}


def write_parquet(columns: dict[str, np.ndarray], folder, shards: int = 1) -> list:
    """Writes columns as ``shards`` Parquet files (2-D arrays as fixed-size lists)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, v in columns.items():
        v = np.asarray(v)
        arrays[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1]) if v.ndim == 2 \
            else pa.array(v)
    table = pa.table(arrays)
    bounds = np.linspace(0, table.num_rows, shards + 1).astype(int)
    files = []
    for i in range(shards):
        f = folder / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), f)
        files.append(f)
    return files


@pytest.fixture
def classification():
    return make_classification()


@pytest.fixture
def regression():
    return make_regression()


@pytest.fixture
def parquet_writer(tmp_path):
    counter = iter(range(1000))

    def write(columns, shards=1):
        return write_parquet(columns, tmp_path / f"data{next(counter)}", shards)

    return write
