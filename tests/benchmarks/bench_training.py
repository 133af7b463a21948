"""Training-engine overhead and model-artifact costs.

1. jfx.core.fit (feeding from a Parquet file, prefetch, sharding, metrics) against a
   hand-written ``jax.jit`` + optax loop over in-memory NumPy batches, on the same MLP
   (20 → 256 → 256 → 3, batch 256, Adam) and the same synthetic data, in the same
   run. Prints steps/s for both and the ratio (target ≥ 0.95).
2. Export/load: artifact size, load time, predict latency for 1 and 1,024 rows.

    python tests/benchmarks/bench_training.py [--rows 65536] [--epochs 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pyarrow as pa
import pyarrow.parquet as pq
from flax import nnx

from jfx.core import Callback, Dataset, export_model, fit, load, signature_from_dataset

FEATURES = 20
BATCH = 256


class MLP(nnx.Module):
    """The same network for both loops: the input is the 20 features side by side."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(FEATURES, 256, rngs=rngs)
        self.l2 = nnx.Linear(256, 256, rngs=rngs)
        self.l3 = nnx.Linear(256, 3, rngs=rngs)

    def forward(self, x):
        return self.l3(jax.nn.relu(self.l2(jax.nn.relu(self.l1(x)))))

    def __call__(self, features):
        return self.forward(jnp.stack([features[f"f{i}"] for i in range(FEATURES)], axis=-1))


def synthetic(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = rng.normal(size=(FEATURES, 3)).astype(np.float32)
    return x, np.argmax(x @ w, axis=1).astype(np.int32)


def hand_written(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """A plain jit + optax loop with donated state; returns steps/s (after compile)."""
    graphdef, params = nnx.split(MLP(rngs=nnx.Rngs(0)))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p, copy=True).forward(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(step.__wrapped__, donate_argnums=(0, 1))
    n = len(x) // BATCH
    params, opt_state = step(params, opt_state, x[:BATCH], y[:BATCH])  # compile
    jax.block_until_ready(params)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    steps = 0
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(n):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            params, opt_state = step(params, opt_state, x[idx], y[idx])
            steps += 1
    jax.block_until_ready(params)
    return steps / (time.perf_counter() - start)


class _Clock(Callback):
    """Records when step ``after`` ends, to time the steady state (compile excluded,
    as in the hand-written loop)."""

    def __init__(self, after: int):
        self.after, self.t = after, None

    def on_step_end(self, step: int) -> None:
        if step == self.after:
            self.t = time.perf_counter()


def jfx_fit(path: Path, epochs: int) -> tuple[float, float, Dataset, nnx.Module]:
    """Returns (steady-state steps/s, steps/s including the compile, dataset, model)."""
    ds = Dataset.from_parquet([path], [f"f{i}" for i in range(FEATURES)], "y", batch_size=BATCH,
                              shuffle_buffer=10_000, seed=0)
    model = MLP(rngs=nnx.Rngs(0))
    clock = _Clock(after=50)
    start = time.perf_counter()
    hist = fit(model, optax.adam(1e-3), "sparse_categorical_crossentropy", ds, epochs=epochs, progress=False,
               callbacks=[clock])
    end = time.perf_counter()
    return (hist.step - clock.after) / (end - clock.t), hist.step / (end - start), ds, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=65_536)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    x, y = synthetic(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        pq.write_table(pa.table({**{f"f{i}": x[:, i] for i in range(FEATURES)}, "y": y}), path)
        print(f"devices: {jax.devices()}  rows: {args.rows}  batch: {BATCH}  epochs: {args.epochs}")
        hand, ours, totals = [], [], []
        for _ in range(args.repeat):
            hand.append(hand_written(x, y, args.epochs))
            rate, total, ds, model = jfx_fit(path, args.epochs)
            ours.append(rate)
            totals.append(total)
        h, o = max(hand), max(ours)
        print(f"hand-written jit+optax loop : {h:8.1f} steps/s  (runs: {', '.join(f'{v:.0f}' for v in hand)})")
        print(f"jfx.core.fit from Parquet   : {o:8.1f} steps/s  (runs: {', '.join(f'{v:.0f}' for v in ours)})")
        print(f"ratio jfx / hand-written    : {o / h:8.3f}  (target >= 0.95; both after compile)")
        print(f"jfx.core.fit incl. compile  : {max(totals):8.1f} steps/s over the whole fit call")

        out = Path(tmp) / "model"
        start = time.perf_counter()
        export_model(model, signature_from_dataset(ds), out, head="classifier")
        export_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in out.iterdir())
        fn_size = (out / "model.stablehlo").stat().st_size
        start = time.perf_counter()
        loaded = load(out)
        load_s = time.perf_counter() - start
        print(f"export: {export_s * 1e3:.0f} ms; artifact {size / 1e3:.1f} kB (function {fn_size / 1e3:.1f} kB); "
              f"load {load_s * 1e3:.0f} ms")
        for n in (1, 1024):
            cols = {f"f{i}": x[:n, i] for i in range(FEATURES)}
            rows = [{f"f{i}": float(x[r, i]) for i in range(FEATURES)} for r in range(n)]
            start = time.perf_counter()
            loaded(cols)
            first = time.perf_counter() - start
            times = []
            for _ in range(20):
                start = time.perf_counter()
                loaded(cols)
                times.append(time.perf_counter() - start)
            rtimes = []
            for _ in range(5):
                start = time.perf_counter()
                loaded(rows)
                rtimes.append(time.perf_counter() - start)
            print(f"predict {n:5d} rows: first call {first * 1e3:7.1f} ms, then columnar median "
                  f"{np.median(times) * 1e3:6.2f} ms, row dicts median {np.median(rtimes) * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
