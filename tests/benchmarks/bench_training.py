"""Training-engine overhead and model-artifact costs.

1. jfx.core.fit (feeding from a Parquet file, prefetch, sharding, metrics) against a
   hand-written ``jax.jit`` + optax loop over in-memory NumPy batches, on the same MLP
   (20 → 256 → 256 → 3, batch 256, Adam) and the same synthetic data, in the same
   run. Prints steps/s for both and the ratio (target ≥ 0.95: a miss exits 1).
2. Export/load: artifact size, load time (one run each), predict latency for 1 and
   1,024 rows (medians).

Every figure names its statistic (median of N rounds unless it says otherwise).

    python tests/benchmarks/bench_training.py [--rows 65536] [--epochs 3] [--repeat 7]

Both loops run in alternating rounds (this machine is small and shared), each timed over
the same steps after the same warm-up steps (which hold the compile); the headline ratio
is the median of the rounds' ratios, each round's pair having run under similar load.
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
from _bench import Targets
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


WARMUP = 50  # steps excluded from timing in both loops (compile, first reads)


def hand_written(x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[float, float]:
    """A plain jit + optax loop with donated state over in-memory NumPy batches;
    returns steady-state (steps/s, CPU ms/step) over the steps after the first
    ``WARMUP``, as for jfx."""
    graphdef, params = nnx.split(MLP(rngs=nnx.Rngs(0)))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    def step(params, opt_state, xb, yb):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p, copy=True).forward(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(step, donate_argnums=(0, 1))
    n = len(x) // BATCH
    rng = np.random.default_rng(0)
    steps, t0, c0 = 0, None, None
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(n):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            params, opt_state = step(params, opt_state, x[idx], y[idx])
            steps += 1
            if steps == WARMUP:
                t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(params)
    return (steps - WARMUP) / (time.perf_counter() - t0), (time.process_time() - c0) * 1e3 / (steps - WARMUP)


class _Clock(Callback):
    """Records when step ``after`` ends, to time the steady state (compile excluded,
    as in the hand-written loop)."""

    def __init__(self, after: int):
        self.after, self.t, self.cpu = after, None, None

    def on_step_end(self, step: int) -> None:
        if step == self.after:
            self.t, self.cpu = time.perf_counter(), time.process_time()


def jfx_fit(path: Path, epochs: int) -> tuple[float, float, float, Dataset, nnx.Module]:
    """Returns (steady-state steps/s, steady-state CPU ms/step, steps/s including the
    compile, dataset, model).

    The clock stops when ``fit`` returns: after the last step, the epoch-end metric
    read-out and the write-back of the weights (so every step has finished)."""
    ds = Dataset.from_parquet([path], [f"f{i}" for i in range(FEATURES)], "y", batch_size=BATCH,
                              shuffle_buffer=10_000, seed=0)
    model = MLP(rngs=nnx.Rngs(0))
    clock = _Clock(after=WARMUP)
    start = time.perf_counter()
    hist = fit(model, optax.adam(1e-3), "sparse_categorical_crossentropy", ds, epochs=epochs, progress=False,
               callbacks=[clock])
    end, cpu = time.perf_counter(), time.process_time()
    steady = hist.step - clock.after
    return steady / (end - clock.t), (cpu - clock.cpu) * 1e3 / steady, hist.step / (end - start), ds, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=65_536)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds of both loops")
    args = parser.parse_args()
    x, y = synthetic(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        pq.write_table(pa.table({**{f"f{i}": x[:, i] for i in range(FEATURES)}, "y": y}), path)
        print(f"devices: {jax.devices()}  rows: {args.rows}  batch: {BATCH}  epochs: {args.epochs}  "
              f"rounds: {args.repeat}")
        hand_written(x[:BATCH * (WARMUP + 10)], y[:BATCH * (WARMUP + 10)], 1)  # warm both code paths once
        jfx_fit(path, 1)
        # Rounds alternate which loop goes first, so a load change on this shared machine
        # hits both; each round's pair also gives a paired ratio.
        hand, ours, hand_cpu, our_cpu, totals = [], [], [], [], []
        for r in range(args.repeat):
            for which in ((0, 1) if r % 2 == 0 else (1, 0)):
                if which == 0:
                    rate, cpu = hand_written(x, y, args.epochs)
                    hand.append(rate)
                    hand_cpu.append(cpu)
                else:
                    rate, cpu, total, ds, model = jfx_fit(path, args.epochs)
                    ours.append(rate)
                    our_cpu.append(cpu)
                    totals.append(total)
        paired = [o / h for o, h in zip(ours, hand, strict=True)]
        h, o = max(hand), max(ours)
        n = args.repeat
        print(f"hand-written jit+optax loop : median of {n} {np.median(hand):7.1f}  best of {n} {h:7.1f} steps/s  "
              f"(runs: {', '.join(f'{v:.0f}' for v in hand)})")
        print(f"jfx.core.fit from Parquet   : median of {n} {np.median(ours):7.1f}  best of {n} {o:7.1f} steps/s  "
              f"(runs: {', '.join(f'{v:.0f}' for v in ours)})")
        targets = Targets()
        met = targets.check("jfx / hand-written steps/s", float(np.median(paired)), 0.95, "x", at_least=True)
        print(f"ratio jfx / hand-written    : {np.median(paired):.3f} median of the {n} rounds' ratios "
              f"(runs: {', '.join(f'{v:.2f}' for v in paired)}); best/best {o / h:.3f}, median/median "
              f"{np.median(ours) / np.median(hand):.3f}  (target >= 0.95: {met}; both after {WARMUP} warm-up steps)")
        print(f"process CPU ms per step     : hand median of {n} {np.median(hand_cpu):.2f}  jfx median of {n} "
              f"{np.median(our_cpu):.2f}  (all threads; less sensitive to other load than wall time)")
        print(f"jfx.core.fit incl. compile  : {np.median(totals):8.1f} steps/s over the whole fit call "
              f"(median of {n})")

        out = Path(tmp) / "model"
        start = time.perf_counter()
        export_model(model, signature_from_dataset(ds), out, head="classifier")
        export_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in out.iterdir())
        fn_size = (out / "model.stablehlo").stat().st_size
        start = time.perf_counter()
        loaded = load(out)
        load_s = time.perf_counter() - start
        print(f"export: {export_s * 1e3:.0f} ms (1 run); artifact {size / 1e3:.1f} kB (function "
              f"{fn_size / 1e3:.1f} kB); load {load_s * 1e3:.0f} ms (1 run)")
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
            print(f"predict {n:5d} rows: first call {first * 1e3:7.1f} ms (1 run), then columnar median of "
                  f"{len(times)} {np.median(times) * 1e3:6.2f} ms, row dicts median of {len(rtimes)} "
                  f"{np.median(rtimes) * 1e3:6.2f} ms")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
