"""ONNX (onnxruntime) against StableHLO (``jfx.core.load``), and int8 against float.

Two models:

* ``penguin``: the penguin pipeline's pushed model (transform + DNNClassifier 16 → 8 → 3),
  made by ``jfx run examples/penguin/pipeline.py`` in a fresh ``JFX_HOME`` (or given with
  ``--penguin-model DIR``);
* ``wide``: bench_serving.py's wide serving model, DNNClassifier 8 numeric → 2048 → 2048 → 3
  (4.2 M weights).

Each is exported with ``jfx.core.export_onnx`` (float, and ``quantize="int8"``). Every
model is called in this process on the same raw rows (a list of dicts, the input path
of ``jfx serve``): 1 row and 1,024 rows, each figure the median (``--stat best``: the
best) of ``--repeat`` calls after warm-up calls. The ratios are ONNX / StableHLO and
int8 / float, measured in the same run. For the penguin model the int8 export is also
scored on the penguins CSV (accuracy, float vs int8).

Targets (a missed one exits 1): the wide model's int8 file is under 0.35 × its float
file; onnxruntime's outputs match StableHLO's within 1e-5 on the measured rows.

    python tests/benchmarks/bench_onnx.py [--models penguin,wide] [--repeat 50] [--penguin-model DIR]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import Targets, add_stat_argument, label, summarise
from bench_serving import MODELS, _row, describe, make_model

import jfx

PENGUIN = Path(jfx.__file__).parent / "examples" / "penguin" / "pipeline.py"


def penguins_csv() -> Path:
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def penguin_rows() -> list[dict[str, Any]]:
    numeric = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
    with open(penguins_csv(), newline="") as fh:
        return [{k: None if v == "NA" else float(v) if k in numeric else v for k, v in row.items()
                 if k not in ("species", "year")} for row in csv.DictReader(fh)]


def penguin_model(tmp: Path) -> Path:
    home = tmp / "home"
    env = {**os.environ, "JFX_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "jfx", "run", str(PENGUIN), "--progress", "none"], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the penguin pipeline failed:\n{proc.stdout}\n{proc.stderr}")
    return home / "serving" / "penguin" / "1"


def timed(fn: Any, repeat: int, stat: str) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return summarise(samples, stat)


def bench(name: str, model_dir: Path, rows: list[dict[str, Any]], args: argparse.Namespace, tmp: Path,
          targets: Targets) -> None:
    import numpy as np
    from jfx.core import export_onnx, load, load_onnx

    t0 = time.perf_counter()
    fp = export_onnx(model_dir, tmp / f"{name}-float")
    t_float = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = export_onnx(model_dir, tmp / f"{name}-int8", quantize="int8",
                    eval_examples=penguins_csv() if name == "penguin" else None)
    t_int8 = time.perf_counter() - t0
    print(f"  export: float {t_float:.1f} s (the first one in a process imports jax2onnx), int8 {t_int8:.1f} s")
    models = {"StableHLO": load(model_dir), "ONNX float": load_onnx(fp.path), "ONNX int8": load_onnx(q.path)}
    batch = [rows[i % len(rows)] for i in range(1024)]
    want = models["StableHLO"](batch)
    got = models["ONNX float"](batch)
    worst = max(float(np.max(np.abs(got[k].astype(np.float64) - want[k]))) for k in want)
    print(f"  parity on 1,024 rows: max |ONNX − StableHLO| = {worst:.2e}  → target ≤ 1e-5: "
          f"{targets.check(f'{name}: ONNX parity', worst, 1e-5 + 1e-12, '')}")
    results: dict[str, dict[int, float]] = {}
    for what, m in models.items():
        results[what] = {n: timed(lambda m=m, n=n: m(batch[:n]), args.repeat if n == 1 else max(5, args.repeat // 5),
                                  args.stat) for n in (1, 1024)}
    base = results["StableHLO"]
    for n in (1, 1024):
        reps = args.repeat if n == 1 else max(5, args.repeat // 5)
        line = ", ".join(f"{w} {r[n]:.3f} ms" for w, r in results.items())
        print(f"  {n:>5} row(s), {label(args.stat, reps)}: {line}")
        print(f"         ONNX float / StableHLO {results['ONNX float'][n] / base[n]:.2f}×, "
              f"int8 / float {results['ONNX int8'][n] / results['ONNX float'][n]:.2f}×")
    ratio = q.size_bytes / fp.size_bytes
    print(f"  size: StableHLO weights {sum(f.stat().st_size for f in model_dir.iterdir()) / 1024:.1f} KiB (folder), "
          f"ONNX float {fp.size_bytes / 1024:.1f} KiB, int8 {q.size_bytes / 1024:.1f} KiB (int8 / float {ratio:.2f}×)")
    if name == "wide":
        print(f"  int8 / float size, wide model: {ratio:.2f}×  → target < 0.35×: "
              f"{targets.check('wide: int8 / float size', ratio, 0.35, 'x')}")
    if q.check is not None:
        print(f"  {q.check.describe()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="penguin,wide", help="comma-separated, of penguin, wide")
    ap.add_argument("--repeat", type=int, default=50, help="calls per 1-row figure (1,024 rows: a fifth of it)")
    ap.add_argument("--penguin-model", type=Path, default=None, help="a pushed penguin model (skips the pipeline run)")
    add_stat_argument(ap)
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names or set(names) - {"penguin", "wide"}:
        ap.error(f"--models: choose from penguin, wide; got {names}")
    logging.disable(logging.WARNING)
    print(f"machine: {os.cpu_count()} CPUs")
    targets = Targets()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            if name == "penguin":
                folder = args.penguin_model or penguin_model(tmp)
                print(f"penguin: {folder}")
                bench("penguin", folder, penguin_rows(), args, tmp, targets)
            else:
                folder = make_model(tmp / "wide", MODELS["wide"]) / "1"
                print(f"wide: {describe(MODELS['wide'])}")
                bench("wide", folder, [_row(i) for i in range(1024)], args, tmp, targets)
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
