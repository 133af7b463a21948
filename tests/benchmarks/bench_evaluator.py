"""Benchmark: what model analysis costs the Evaluator's pass — bootstrap intervals, fairness rates, bucketed slices.

    python tests/benchmarks/bench_evaluator.py [--rows 200000] [--replicates 20] [--repeat 3] [--stat median|best]

One in-process evaluation kernel over a synthetic binary problem (a Parquet file of
``--rows`` rows, 8 row groups; a model exported with ``jfx.core.export``), sliced overall and
by one categorical column. The baseline is that plain evaluation, measured in the same
run; then the same with fairness rates at 3 thresholds, with numeric quantile buckets (the
first pass included), and with ``--replicates`` bootstrap replicates. Each prints its time
and its ratio to the baseline (the median of ``--repeat`` runs after a warm-up, or
``--stat best``).

Targets: fairness under 2x the baseline; the bootstrap under (1 + replicates)x, i.e. a
replicate costs no more than the unsampled metrics plus the model call they share.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _bench import Targets, add_stat_argument, summarise

from jfx.components._engine import run_kernel
from jfx.components._evaluator import Bucketing, EvalConfig, EvalKernel, QuantileKernel, resolve_model

FAIRNESS_TARGET = 2.0


def write_data(folder: Path, n: int) -> tuple[str, str]:
    import jax.numpy as jnp

    from jfx.core import TensorSpec, export

    rng = np.random.default_rng(0)
    y = rng.random(n) < 0.4
    x = np.clip(0.3 * y + 0.7 * rng.random(n), 0.0, 1.0)
    table = pa.table({"x": x, "label": np.where(y, "yes", "no"),
                      "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n), "length": rng.normal(44, 5, n)})
    data = folder / "eval.parquet"
    pq.write_table(table, data, row_group_size=-(-n // 8))

    def serving_fn(params, features):
        p = jnp.clip(features["x"] + params["bias"], 0.0, 1.0)
        return {"probabilities": jnp.stack([1 - p, p], axis=-1)}

    model = folder / "model"
    export(serving_fn, {"bias": jnp.float32(0.0)}, {"x": TensorSpec("float32")}, str(model),
           metadata={"label_vocabulary": ["no", "yes"]})
    return str(data), str(model)


def evaluate(data: str, model: str, config: dict) -> dict:
    parsed = EvalConfig.parse(config)
    if parsed.quantile_columns:
        quantiles = {c.column: c.quantiles for spec in parsed.slicing_specs for c in spec
                     if isinstance(c, Bucketing) and c.quantiles is not None}
        parsed = parsed.with_boundaries(run_kernel(QuantileKernel(quantiles), [data]))
    kernel = EvalKernel({"candidate": resolve_model(model, parsed)}, parsed)
    return run_kernel(kernel, [data], columns=["x", "label", "island", "length"], batch_size=parsed.batch_size)


def timed(repeat: int, stat: str, fn) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return summarise(times, stat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    add_stat_argument(parser)
    args = parser.parse_args(argv)
    targets = Targets()
    with tempfile.TemporaryDirectory(prefix="jfx-bench-eval-") as tmp:
        data, model = write_data(Path(tmp), args.rows)
        base = {"label_key": "label", "slicing_specs": [[], ["island"]]}
        cases = {
            "fairness at 3 thresholds": {**base, "fairness": {"thresholds": [0.25, 0.5, 0.75]}},
            "+ quantile buckets (4)": {**base, "slicing_specs": [[], ["island"],
                                                                  [{"column": "length", "quantiles": 4}]]},
            f"bootstrap, {args.replicates} replicates": {
                **base, "confidence_intervals": {"num_bootstrap_samples": args.replicates}},
        }
        print(f"{args.rows:,} rows, 2 slicing specs (4 slices), in-process engine, {os.cpu_count()} CPUs; "
              f"{args.stat} of {args.repeat}")
        t_base = timed(args.repeat, args.stat, lambda: evaluate(data, model, base))
        print(f"  baseline (plain evaluation)        {t_base:8.3f} s")
        for name, config in cases.items():
            t = timed(args.repeat, args.stat, lambda c=config: evaluate(data, model, c))
            ratio = t / t_base
            verdict = ""
            if name.startswith("fairness"):
                verdict = targets.check(name, ratio, FAIRNESS_TARGET, "x baseline")
            elif name.startswith("bootstrap"):
                verdict = targets.check(name, ratio, 1 + args.replicates, "x baseline")
            print(f"  {name:34s} {t:8.3f} s  {ratio:6.2f}x baseline  {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
