"""Training over 2 processes (jax.distributed, CPU collectives) against 1 process on the same global batches."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from jfx.core import Dataset, Distributed, DNNClassifier, Numeric, fit
from jfx.core._launch import WorkerFailedError, run_processes
from jfx.errors import InvalidArgumentError

from .conftest import make_classification, write_parquet

ROWS, BATCH = 512, 64  # 2 shards of 256 rows: 8 global steps of 64 rows (32 from each shard) an epoch

WORKER = textwrap.dedent("""
    import json, sys
    from jfx.core import initialize_distributed
    spec = initialize_distributed()  # before JAX runs anything: the model's init does
    import jax, numpy as np, optax
    from flax import nnx
    from jfx.core import Dataset, DNNClassifier, Numeric, fit
    files, ckpt, epochs, out = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    assert jax.process_count() == 2 and len(jax.devices()) == 2, jax.devices()
    train = Dataset.from_parquet(files, ["x"], "y", batch_size=%(batch)d, shuffle_buffer=0)
    evals = Dataset.from_parquet(files, ["x"], "y", batch_size=48, shuffle_buffer=0, remainder="pad")
    model = DNNClassifier({"x": Numeric(3)}, hidden_units=(16,), rngs=nnx.Rngs(0))
    hist = fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", train, evals, epochs=epochs,
               checkpoint_dir=ckpt)
    params = [np.asarray(p).tolist() for p in jax.tree.leaves(nnx.state(model, nnx.Param))]
    if spec.process_id == 0:
        with open(out, "w") as f:
            json.dump({"params": params, "history": hist.history, "resumed_from": hist.resumed_from,
                       "step": hist.step}, f)
    print("process", spec.process_id, "done", hist.step)
""") % {"batch": BATCH}


def reference_order(n: int, shards: int, local: int) -> np.ndarray:
    """The row order whose consecutive ``local * shards`` rows are the global batches of the
    shards read in order: shard 0's next ``local`` rows, then shard 1's, ..."""
    bounds = [n * k // shards for k in range(shards + 1)]
    steps = min(b - a for a, b in itertools.pairwise(bounds)) // local
    return np.concatenate([np.arange(bounds[s] + k * local, bounds[s] + (k + 1) * local)
                           for k in range(steps) for s in range(shards)])


def _two_processes(tmp_path, files, ckpt, epochs):
    out = tmp_path / f"out-{epochs}.json"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    logs = run_processes(lambda i: [sys.executable, str(script), json.dumps([str(f) for f in files]), str(ckpt),
                                    str(epochs), str(out)], 2, timeout=240)
    assert all("done" in log for log in logs), logs
    return json.loads(out.read_text())


def test_two_processes_match_one_process_and_resume(tmp_path):
    data = make_classification(ROWS + 64)
    data = {k: v[:ROWS] for k, v in data.items()}
    # 3 files of unequal size: shards cut through files and row groups
    files = write_parquet(data, tmp_path / "examples", shards=3)
    ckpt = tmp_path / "ckpt"
    first = _two_processes(tmp_path, files, ckpt, epochs=1)
    assert first["step"] == ROWS // BATCH and first["resumed_from"] is None
    two = _two_processes(tmp_path, files, ckpt, epochs=2)  # resumes from process 0's checkpoint
    assert two["resumed_from"] == ROWS // BATCH and two["step"] == 2 * ROWS // BATCH

    # One process over the same global batches (each: 32 rows of shard 0, then 32 of shard 1).
    order = reference_order(ROWS, 2, BATCH // 2)
    assert len(order) == ROWS
    train = Dataset.from_arrays({k: v[order] for k, v in data.items()}, ["x"], "y", batch_size=BATCH,
                                shuffle_buffer=0)
    evals = Dataset.from_arrays(data, ["x"], "y", batch_size=48, shuffle_buffer=0, remainder="pad")
    model = DNNClassifier({"x": Numeric(3)}, hidden_units=(16,), rngs=nnx.Rngs(0))
    hist = fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", train, evals, epochs=2)
    # Tolerance: the all-reduce sums the two halves of each gradient in another order
    # than one process's reduction; float32 rounding differences stay under 1e-5 here.
    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), two["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    assert set(hist.history) == set(two["history"])
    for k, v in hist.history.items():
        np.testing.assert_allclose(v, two["history"][k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert hist.history["loss"][1] < hist.history["loss"][0]  # it trained


def test_a_crashed_process_stops_the_others(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        pid = int(os.environ["JFX_PROCESS_ID"])
        open(sys.argv[1] + f"/pid-{pid}", "w").write(str(os.getpid()))
        if pid == 1:
            time.sleep(0.5)
            raise SystemExit("worker 1: bad things happened")
        time.sleep(120)  # would wait for process 1 in a collective
    """))
    with pytest.raises(WorkerFailedError, match=r"(?s)process 1 of 2 failed.*bad things happened") as info:
        run_processes(lambda i: [sys.executable, str(script), str(tmp_path)], 2, timeout=60)
    assert info.value.process_id == 1
    survivor = int((tmp_path / "pid-0").read_text())
    with pytest.raises(ProcessLookupError):  # stopped (and reaped), not orphaned
        import os

        os.kill(survivor, 0)


def test_a_cancelled_run_stops_every_process(tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        open(sys.argv[1] + f"/pid-{os.environ['JFX_PROCESS_ID']}", "w").write(str(os.getpid()))
        time.sleep(120)
    """))

    def cancelled() -> None:  # as a run's cancel check once Ctrl-C came: once both processes started
        pids = list(tmp_path.glob("pid-*"))
        if len(pids) == 2 and all(f.read_text() for f in pids):
            raise KeyboardInterrupt("run cancelled")

    with pytest.raises(KeyboardInterrupt, match="run cancelled"):
        run_processes(lambda i: [sys.executable, str(script), str(tmp_path)], 2, timeout=60, check=cancelled)
    import os

    for i in range(2):
        with pytest.raises(ProcessLookupError):  # stopped (and reaped), not orphaned
            os.kill(int((tmp_path / f"pid-{i}").read_text()), 0)


def test_shards_split_the_rows_once(parquet_writer):
    data = make_classification(700)
    files = parquet_writer(data, shards=3)
    ds = Dataset.from_parquet(files, ["x"], "y", batch_size=6, shuffle_buffer=0, remainder="pad")
    shards = [ds.shard(3, i) for i in range(3)]
    got = np.concatenate([np.concatenate([b[0] for b in s.host_batches()])[: s.num_rows] for s in shards])
    np.testing.assert_array_equal(got, np.asarray(data["x"], np.float32))
    assert [s.batch_size for s in shards] == [2, 2, 2] and sum(shards[0].shard_rows) == len(data["y"])
    with pytest.raises(InvalidArgumentError, match="not divisible by the 3 processes"):
        Dataset.from_parquet(files, ["x"], "y", batch_size=10).shard(3, 0)


def test_distributed_spec_from_the_environment():
    env = {"JFX_NUM_PROCESSES": "2", "JFX_PROCESS_ID": "1", "JFX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}
    assert Distributed.from_env(env) == Distributed(2, 1, "10.0.0.1:1234")
    jaxjob = {"NUM_PROCESSES": "4", "PROCESS_ID": "3", "COORDINATOR_ADDRESS": "job-worker-0", "COORDINATOR_PORT": "6666"}
    assert Distributed.from_env(jaxjob) == Distributed(4, 3, "job-worker-0:6666")
    assert Distributed.from_env({}) is None
    with pytest.raises(InvalidArgumentError, match=r"not.*JFX_COORDINATOR_ADDRESS"):
        Distributed.from_env({"JFX_NUM_PROCESSES": "2", "JFX_PROCESS_ID": "0"})
    with pytest.raises(InvalidArgumentError, match=r"process_id must be in 0\.\.1"):
        Distributed(2, 2, "h:1")


def test_late_join_is_explained():
    code = ("import jax.numpy as jnp; jnp.ones(1).block_until_ready()\n"
            "from jfx.core import Distributed, initialize_distributed\n"
            "initialize_distributed(Distributed(2, 0, '127.0.0.1:1'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "first thing, before building the model" in proc.stderr, proc.stderr[-2000:]
