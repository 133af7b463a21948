"""Training-engine overhead and model-artifact costs.

1. jfx.core.fit (feeding from a Parquet file, prefetch, sharding, metrics) against a
   hand-written ``jax.jit`` + optax loop over in-memory NumPy batches, on the same MLP
   (20 → 256 → 256 → 3, batch 256, Adam) and the same synthetic data, in the same
   run. Prints steps/s for both and the ratio (target ≥ 1.0: zero overhead: a miss exits 1).
2. The three ratios of the tensor core against the hand-written loop, each loop in
   fresh processes (interleaved): steady steps/s, peak memory (the process's max RSS,
   the data read from the same Parquet file in both) and the first step (from the
   start of training to the first step's return: tracing and compiling included).
   The same against Keras 3 on JAX when ``keras`` is importable (it is not a jfx
   dependency; otherwise the comparison is skipped with a note).
3. Several processes: ``fit`` with ``distributed`` over 1 and 2 processes on this
   machine, the same global batch; steps/s of each (on one small CPU machine two
   processes share its cores: this shows the all-reduce's cost, not a speed-up).
4. Export/load: artifact size, load time (one run each), predict latency for 1 and
   1,024 rows (medians).

Every figure names its statistic (median of N rounds unless it says otherwise).

    python tests/benchmarks/bench_training.py [--rows 65536] [--epochs 3] [--repeat 7] [--fresh 3]
        [--precision fp32|bf16] [--device-check]

``--device-check`` (for tests/benchmarks/gpu_check.sh) runs part 1 only and names the
accelerator it ran on.

Both loops run in alternating rounds (this machine is small and shared), each timed over
the same steps after the same warm-up steps (which hold the compile); the headline ratio
is the median of the rounds' ratios, each round's pair having run under similar load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
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
from jfx.core._launch import run_processes

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


PRECISION = "fp32"


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
               callbacks=[clock], precision=PRECISION)
    end, cpu = time.perf_counter(), time.process_time()
    steady = hist.step - clock.after
    return steady / (end - clock.t), (cpu - clock.cpu) * 1e3 / steady, hist.step / (end - start), ds, model


# -- fresh processes: peak memory and the first step --------------------------------


def _peak_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` of its own address space: the
    ``ru_maxrss`` of a process started by ``subprocess`` also counts its parent's memory
    at the fork (Linux keeps the larger of the two across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; bytes on macOS


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(path)
    x = np.stack([table.column(f"f{i}").to_numpy() for i in range(FEATURES)], axis=1).astype(np.float32)
    return x, table.column("y").to_numpy().astype(np.int32)


def one_hand(path: Path, epochs: int) -> dict:
    """The hand-written loop in this (fresh) process: first step and steady rate."""
    x, y = _read_parquet(path)
    graphdef, params = nnx.split(MLP(rngs=nnx.Rngs(0)))
    start, cpu = time.perf_counter(), time.process_time()  # as for fit: from the built model to the first step's return
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
    rng = np.random.default_rng(0)
    n = len(x) // BATCH
    first = first_cpu = None
    steps, t0 = 0, 0.0
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(n):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            params, opt_state = step(params, opt_state, x[idx], y[idx])
            steps += 1
            if steps == 1:
                first, first_cpu = time.perf_counter() - start, time.process_time() - cpu
            if steps == WARMUP:
                t0 = time.perf_counter()
    jax.block_until_ready(params)
    return {"first_s": first, "first_cpu_s": first_cpu, "rate": (steps - WARMUP) / (time.perf_counter() - t0),
            "peak_mb": _peak_mb()}


class _FirstStep(Callback):
    def __init__(self, start: float, cpu: float):
        self.start, self.cpu, self.first, self.first_cpu = start, cpu, None, None

    def on_step_end(self, step: int) -> None:
        if step == 1:
            self.first, self.first_cpu = time.perf_counter() - self.start, time.process_time() - self.cpu


def one_jfx(path: Path, epochs: int) -> dict:
    """``fit`` from the Parquet file in this (fresh) process."""
    ds = Dataset.from_parquet([path], [f"f{i}" for i in range(FEATURES)], "y", batch_size=BATCH,
                              shuffle_buffer=10_000, seed=0)
    model = MLP(rngs=nnx.Rngs(0))
    start, cpu = time.perf_counter(), time.process_time()
    first, clock = _FirstStep(start, cpu), _Clock(after=WARMUP)
    hist = fit(model, optax.adam(1e-3), "sparse_categorical_crossentropy", ds, epochs=epochs, progress=False,
               callbacks=[first, clock], precision=PRECISION)
    rate = (hist.step - WARMUP) / (time.perf_counter() - clock.t)
    return {"first_s": first.first, "first_cpu_s": first.first_cpu, "rate": rate, "peak_mb": _peak_mb()}


def one_keras(path: Path, epochs: int) -> dict:  # pragma: no cover - needs keras, not a jfx dependency
    """Keras 3 on JAX, the same MLP, data and optimiser, in this (fresh) process."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    x, y = _read_parquet(path)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    marks: dict[str, float] = {}

    class Marks(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks["n"] = marks.get("n", 0) + 1
            if marks["n"] == 1:
                marks["first"] = time.perf_counter()
            if marks["n"] == WARMUP:
                marks["t0"] = time.perf_counter()

    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[Marks()])
    end = time.perf_counter()
    return {"first_s": marks["first"] - start, "rate": (marks["n"] - WARMUP) / (end - marks["t0"]),
            "peak_mb": _peak_mb()}


def fresh(which: str, path: Path, epochs: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", which, "--data", str(path), "--epochs", str(epochs),
                           "--precision", PRECISION], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{which} in a fresh process failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- several processes ----------------------------------------------------------------


def dist_worker(path: Path, steps: int) -> dict:
    """One process of a ``fit`` over several (or one); its steady steps/s."""
    from jfx.core import initialize_distributed

    initialize_distributed()
    ds = Dataset.from_parquet([path], [f"f{i}" for i in range(FEATURES)], "y", batch_size=BATCH,
                              shuffle_buffer=10_000, seed=0)
    clock = _Clock(after=WARMUP)
    model = MLP(rngs=nnx.Rngs(0))
    hist = fit(model, optax.adam(1e-3), "sparse_categorical_crossentropy", ds, steps=steps, progress=False,
               callbacks=[clock])
    rate = (hist.step - WARMUP) / (time.perf_counter() - clock.t)
    # The step's collective alone: one all-reduce of as many floats as the gradient has
    # (XLA combines the step's gradient and metric sums into one all-reduce).
    from jax.sharding import Mesh

    from jfx.core._data import batch_sharding, replicated_sharding

    mesh = Mesh(np.array(jax.devices()), ("data",))
    size = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    grads = jax.make_array_from_process_local_data(batch_sharding(mesh),
                                                   np.ones((jax.local_device_count(), size), np.float32))
    reduce = jax.jit(lambda g: g.sum(0), out_shardings=replicated_sharding(mesh))
    times = []
    for _ in range(60):
        start = time.perf_counter()
        jax.block_until_ready(reduce(grads))
        times.append(time.perf_counter() - start)
    return {"rate": rate, "process": jax.process_index(), "allreduce_ms": float(np.median(times[10:])) * 1e3,
            "floats": size}


def processes_rate(path: Path, n: int, steps: int) -> dict:
    """The slowest process's steps/s (the processes step together; its clock is the
    training's) and the median time of one gradient-sized all-reduce alone."""
    logs = run_processes(lambda i: [sys.executable, __file__, "--dist-worker", "--data", str(path), "--steps",
                                    str(steps)], n, timeout=600)
    runs = [json.loads(log.strip().splitlines()[-1]) for log in logs]
    return {"rate": min(r["rate"] for r in runs), "allreduce_ms": max(r["allreduce_ms"] for r in runs),
            "floats": runs[0]["floats"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=65_536)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds of both loops")
    parser.add_argument("--fresh", type=int, default=3, help="interleaved rounds of fresh processes (memory, first step)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="fit's precision")
    parser.add_argument("--device-check", action="store_true", help="part 1 only, naming the device")
    parser.add_argument("--one", choices=("hand", "jfx", "keras"), help=argparse.SUPPRESS)
    parser.add_argument("--dist-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=400, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global PRECISION
    PRECISION = args.precision
    if args.one:
        print(json.dumps({"hand": one_hand, "jfx": one_jfx, "keras": one_keras}[args.one](Path(args.data),
                                                                                           args.epochs)))
        return 0
    if args.dist_worker:
        print(json.dumps(dist_worker(Path(args.data), args.steps)))
        return 0
    x, y = synthetic(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        pq.write_table(pa.table({**{f"f{i}": x[:, i] for i in range(FEATURES)}, "y": y}), path)
        print(f"devices: {jax.devices()}  rows: {args.rows}  batch: {BATCH}  epochs: {args.epochs}  "
              f"rounds: {args.repeat}  precision (fit): {PRECISION} (the hand-written loop: fp32)")
        if args.device_check:
            print(f"device kind: {jax.devices()[0].device_kind}")
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
        met = targets.check("jfx / hand-written steps/s", float(np.median(paired)), 1.0, "x", at_least=True)
        print(f"ratio jfx / hand-written    : {np.median(paired):.3f} median of the {n} rounds' ratios "
              f"(runs: {', '.join(f'{v:.2f}' for v in paired)}); best/best {o / h:.3f}, median/median "
              f"{np.median(ours) / np.median(hand):.3f}  (target >= 1.0: {met}; both after {WARMUP} warm-up steps)")
        print(f"process CPU ms per step     : hand median of {n} {np.median(hand_cpu):.2f}  jfx median of {n} "
              f"{np.median(our_cpu):.2f}  (all threads; less sensitive to other load than wall time)")
        print(f"jfx.core.fit incl. compile  : {np.median(totals):8.1f} steps/s over the whole fit call "
              f"(median of {n})")
        print(f"spread (max/min of rounds)  : hand {max(hand) / min(hand):.3f}  jfx {max(ours) / min(ours):.3f}")
        if args.device_check:
            return targets.exit_code()

        # Fresh processes, interleaved: the first step and the peak memory of each loop.
        keras_ok = importlib.util.find_spec("keras") is not None
        kinds = ["hand", "jfx", *(["keras"] if keras_ok else [])]
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for r in range(args.fresh):
            for k in (kinds if r % 2 == 0 else kinds[::-1]):
                runs[k].append(fresh(k, path, 1))
        med = {k: {m: float(np.median([v[m] for v in runs[k] if m in v] or [np.nan]))
                   for m in ("first_s", "first_cpu_s", "rate", "peak_mb")} for k in kinds}
        f = args.fresh
        for k in kinds:
            print(f"fresh process, {k:5s}       : first step {med[k]['first_s']:.3f} s ({med[k]['first_cpu_s']:.3f} s of "
                  f"process CPU), peak memory "
                  f"{med[k]['peak_mb']:.0f} MB, steady {med[k]['rate']:.0f} steps/s (medians of {f})")
        baselines = [("hand-written", "hand"), *([("Keras 3 on JAX", "keras")] if keras_ok else [])]
        for name, k in baselines:
            first = med["jfx"]["first_s"] / med[k]["first_s"]
            mem = med["jfx"]["peak_mb"] / med[k]["peak_mb"]
            rate = (float(np.median(paired)) if k == "hand"
                    else med["jfx"]["rate"] / med[k]["rate"])
            print(f"ratios jfx / {name:13s}: steps/s {rate:.3f} (higher is better), peak memory {mem:.3f}, "
                  f"first step {first:.3f} (lower is better)")
        met = targets.check("jfx / hand-written first step", med["jfx"]["first_s"] / med["hand"]["first_s"], 1.2, "x")
        print(f"first step within 1.2x the hand-written loop's: {met} (process CPU seconds to the first step: ratio "
              f"{med['jfx']['first_cpu_s'] / med['hand']['first_cpu_s']:.3f}, less sensitive to other load)")
        if keras_ok:
            met = targets.check("jfx / Keras peak memory", med["jfx"]["peak_mb"] / med["keras"]["peak_mb"], 1.0001,
                                "x")
            print(f"peak memory no more than Keras on JAX's: {met}")
        else:
            print("Keras 3 on JAX: keras is not importable here (not a jfx dependency); that comparison is skipped. "
                  "pip install keras (and set nothing else) to add it.")

        # Several processes: the same global batch over 1 and 2 processes.
        one = processes_rate(path, 1, 300)
        two = processes_rate(path, 2, 300)
        print(f"fit over processes (global batch {BATCH}, 1 run each): 1 process {one['rate']:.0f} steps/s, 2 processes "
              f"{two['rate']:.0f} steps/s (ratio {two['rate'] / one['rate']:.2f}; {os.cpu_count()} CPU cores shared by "
              f"both); a step over 2 processes {1e3 / two['rate']:.2f} ms, of which one all-reduce of "
              f"{two['floats']:,} floats (the gradient's size) alone takes {two['allreduce_ms']:.2f} ms (median of 50)")

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
