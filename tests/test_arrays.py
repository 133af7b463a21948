"""Arrow ↔ NumPy through buffers, and the data components running without pyarrow's pandas shim."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from jfx._arrays import from_numpy, to_numpy
from jfx.examples.taxi.generate import generate


@pytest.mark.parametrize("values", [
    np.arange(10, dtype=np.int64), np.arange(10, dtype=np.uint8), np.linspace(-1.0, 1.0, 10),
    np.arange(10, dtype=np.float32), np.arange(10) % 3 == 0, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool),
])
def test_round_trips_match_pyarrows_own_conversions(values):
    arrow = from_numpy(values)
    assert arrow.equals(pa.array(values))
    for offset, length in [(0, len(values)), (3, 5), (9, 1), (2, 0)]:
        part = arrow.slice(offset, length)
        got = to_numpy(part)
        assert got.dtype == part.to_numpy(zero_copy_only=False).dtype
        np.testing.assert_array_equal(got, part.to_numpy(zero_copy_only=False))


def test_arrays_with_nulls_text_and_chunks_are_converted_as_pyarrow_does():
    for arr in [pa.array([1.0, None, 3.0]), pa.array(["a", None]), pa.chunked_array([[1, 2], [3]]),
                pa.array([True, None, False])]:
        np.testing.assert_array_equal(to_numpy(arr), arr.to_numpy(zero_copy_only=False))


_CHILD = """
import json, sys
from pathlib import Path
from jfx.components._example_gen import ExampleGen
from jfx.components._statistics_gen import StatisticsGen
from jfx.types import Examples, ExampleStatistics
data, work = sys.argv[1], Path(sys.argv[2])
(work / "ex").mkdir(parents=True); (work / "st").mkdir()
ex = Examples(work / "ex")
ExampleGen.fn(examples=ex, input_base=data)
StatisticsGen.fn(examples=ex, statistics=ExampleStatistics(work / "st"))
print(json.dumps({"pandas": "pandas" in sys.modules, "rows": ex.properties["row_counts"]}))
"""


def test_example_gen_and_statistics_gen_never_import_pandas(tmp_path):
    # pyarrow imports pandas at its first NumPy conversion: 0.15-0.25 CPU-seconds a run.
    data = tmp_path / "data"
    data.mkdir()
    pcsv.write_csv(generate(20_000, seed=3), data / "taxi.csv")
    env = {**os.environ, "JFX_ROW_GROUP_ROWS": "4096", "JFX_READ_BLOCK_BYTES": str(256 << 10)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert sum(got["rows"].values()) == 20_000
    assert got["pandas"] is False
