"""Data parallelism on 2 fake CPU devices, in a subprocess (the device count is fixed at import)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
from flax import nnx

from jfx.core import Dataset, DNNClassifier, Numeric, fit

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np, optax
    from flax import nnx
    from jfx.core import Dataset, DNNClassifier, Numeric, fit
    assert jax.local_device_count() == 2, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    ds = Dataset.from_arrays({"x": x, "y": y}, label="y", batch_size=64, seed=0)
    batch = next(iter(ds))
    shards = [s.data.shape for s in batch.features["x"].addressable_shards]
    model = DNNClassifier({"x": Numeric(4)}, hidden_units=(8,), rngs=nnx.Rngs(0))
    hist = fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", ds, ds, epochs=2)
    params = [np.asarray(p).tolist() for p in jax.tree.leaves(nnx.state(model, nnx.Param))]
    devices = [len(p.sharding.device_set) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]
    print(json.dumps({"shards": shards, "params": params, "history": hist.history, "devices": devices}))
""")


def test_fit_on_two_devices_matches_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    assert two["shards"] == [[32, 4], [32, 4]]  # the batch is split over the 2 devices
    assert set(two["devices"]) == {2}  # parameters replicated on both devices

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    ds = Dataset.from_arrays({"x": x, "y": y}, label="y", batch_size=64, seed=0)
    model = DNNClassifier({"x": Numeric(4)}, hidden_units=(8,), rngs=nnx.Rngs(0))
    hist = fit(model, optax.adam(1e-2), "sparse_categorical_crossentropy", ds, ds, epochs=2)
    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), two["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    for k, v in hist.history.items():
        np.testing.assert_allclose(v, two["history"][k], rtol=1e-4, atol=1e-5)
