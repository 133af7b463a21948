"""In-browser prediction: `jfx export --format web` pages in headless Chromium (onnxruntime-web,
WebAssembly, one thread), against onnxruntime in Python on the same ONNX file.

Two models, as bench_onnx.py:

* ``penguin``: the penguin pipeline's pushed model (transform + DNNClassifier 16 → 8 → 3),
  made by ``jfx run examples/penguin/pipeline.py`` in a fresh ``JFX_HOME`` (or given with
  ``--penguin-model DIR``);
* ``wide``: bench_serving.py's wide serving model, DNNClassifier 8 numeric → 2048 → 2048 → 3.

Each is exported with ``jfx.core.export_web``, served from 127.0.0.1 by a static
file server, and opened in Debian's /usr/bin/chromium. The page's own ``jfxPredict(rows)``
(raw rows → tensors → onnxruntime-web → outputs) is timed inside the page with
``performance.now()``: 1 row and 1,024 rows, each figure the median (``--stat best``: the best)
of ``--repeat`` calls after 3 warm-up calls. The Python figure is ``jfx.core.load_onnx`` called
on the same rows (list of dicts) in this process; the ratio is browser / Python, same run.

Targets (a missed one exits 1): the page's outputs match onnxruntime's in Python within 1e-5
on the 1,024 rows.

    python tests/benchmarks/bench_web.py [--models penguin,wide] [--repeat 20] [--penguin-model DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import Targets, add_stat_argument, label, summarise
from bench_onnx import penguin_model, penguin_rows, timed
from bench_serving import MODELS, _row, describe, make_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "resources"))
from jfx_browser import CHROMIUM, CHROMIUM_ARGS, static_server  # after the path it lives on

# Runs in the page: warm-up calls, then `repeat` timed calls of jfxPredict; returns the times (ms) and the
# last outputs.
IN_PAGE = """async ([rows, repeat]) => {
  for (let i = 0; i < 3; i++) await window.jfxPredict(rows);
  const times = [];
  let result = null;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    result = await window.jfxPredict(rows);
    times.push(performance.now() - t0);
  }
  return {times, outputs: result.outputs};
}"""


def bench(name: str, model_dir: Path, rows: list[dict[str, Any]], browser: Any, args: argparse.Namespace,
          tmp: Path, targets: Targets) -> None:
    import numpy as np
    from jfx.core import load_onnx
    from jfx.core import export_web

    t0 = time.perf_counter()
    web = export_web(model_dir, tmp / f"{name}-web")
    print(f"  export: {time.perf_counter() - t0:.1f} s, folder {web.size_bytes / 2 ** 20:.2f} MiB "
          f"(model.onnx {web.onnx.size_bytes / 1024:.1f} KiB)")
    batch = [rows[i % len(rows)] for i in range(1024)]
    python_model = load_onnx(web.path)
    with static_server(web.path) as url:
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(url)
        page.evaluate("window.jfxReady")
        print(f"  page load (fetch + compile the WebAssembly, create the session): {time.perf_counter() - t0:.2f} s")
        figures = {}
        for n in (1, 1024):
            reps = args.repeat if n == 1 else max(5, args.repeat // 2)
            got = page.evaluate(IN_PAGE, [batch[:n], reps])
            browser_ms = summarise(got["times"], args.stat)
            python_ms = timed(lambda n=n: python_model(batch[:n]), reps, args.stat)
            figures[n] = (browser_ms, python_ms, reps)
            if n == 1024:
                want = python_model(batch)
                worst = max(float(np.max(np.abs(np.asarray(got["outputs"][k], dtype=np.float64) - want[k])))
                            for k in want)
                print(f"  parity on 1,024 rows: max |browser − onnxruntime (Python)| = {worst:.2e}  → target ≤ 1e-5: "
                      f"{targets.check(f'{name}: browser parity', worst, 1e-5 + 1e-12, '')}")
        page.close()
    for n, (browser_ms, python_ms, reps) in figures.items():
        print(f"  {n:>5} row(s), {label(args.stat, reps)}: Chromium (onnxruntime-web) {browser_ms:.3f} ms, "
              f"Python (onnxruntime) {python_ms:.3f} ms, browser / Python {browser_ms / python_ms:.2f}×")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="penguin,wide", help="comma-separated, of penguin, wide")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per 1-row figure (1,024 rows: half of it)")
    ap.add_argument("--penguin-model", type=Path, default=None, help="a pushed penguin model (skips the pipeline run)")
    add_stat_argument(ap)
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names or set(names) - {"penguin", "wide"}:
        ap.error(f"--models: choose from penguin, wide; got {names}")
    if not Path(CHROMIUM).exists():
        print(f"(no {CHROMIUM}: in-browser timings skipped; `make browser` installs it)")
        return 0
    from playwright.sync_api import sync_playwright

    logging.disable(logging.WARNING)
    print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}; the page runs onnxruntime-web on 1 thread")
    targets = Targets()
    with tempfile.TemporaryDirectory() as tmp_name, sync_playwright() as p:
        tmp = Path(tmp_name)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print(f"browser: Chromium {browser.version} (headless)")
        try:
            for name in names:
                if name == "penguin":
                    folder = args.penguin_model or penguin_model(tmp)
                    print(f"penguin: {folder}")
                    bench("penguin", folder, penguin_rows(), browser, args, tmp, targets)
                else:
                    folder = make_model(tmp / "wide", MODELS["wide"]) / "1"
                    print(f"wide: {describe(MODELS['wide'])}")
                    bench("wide", folder, [_row(i) for i in range(1024)], browser, args, tmp, targets)
        finally:
            browser.close()
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
