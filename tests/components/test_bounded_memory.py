"""Peak memory of the data components does not grow with the rows they read.

Each component runs in a subprocess (its peak RSS measured there) on the synthetic taxi
table at two sizes, 4x apart, with small read blocks and row groups forced so that the
multi-block paths run. The bound is generous (measurement noise, allocator slack): it
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
from jfx.types import Examples, ExampleStatistics
step, data, work, fmt = sys.argv[1:5]
work = Path(work)
if step == "ExampleGen":
    from jfx.components._example_gen import ExampleGen
    (work / "ex").mkdir(parents=True)
    ex = Examples(work / "ex")
    ExampleGen.fn(examples=ex, input_base=data, format=fmt)
    (work / "ex.json").write_text(json.dumps(ex.properties))
else:
    from jfx.components._statistics_gen import StatisticsGen
    (work / "st").mkdir(parents=True)
    ex = Examples(work / "ex", properties=json.loads((work / "ex.json").read_text()))
    StatisticsGen.fn(examples=ex, statistics=ExampleStatistics(work / "st"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kb(step: str, data: Path, work: Path, fmt: str) -> int:
    env = {**os.environ, "JFX_READ_BLOCK_BYTES": str(256 << 10), "PYTHONPATH": os.pathsep.join(sys.path)}
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
    for step, got in peaks.items():
        ratio = got[LARGE] / got[SMALL]
        assert ratio <= GROWTH, (
            f"{step} ({fmt}): peak {got[SMALL] >> 10} MB at {SMALL:,} rows, {got[LARGE] >> 10} MB at "
            f"{LARGE:,} rows ({ratio:.2f}x; at most {GROWTH}x expected)")
