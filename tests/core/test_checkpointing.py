import json

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from jfx.core import Callback, Categorical, Dataset, DNNClassifier, Numeric, fit, latest_checkpoint, list_checkpoints

CE = "sparse_categorical_crossentropy"


class Crash(Exception):  # noqa: N818
    pass


class CrashAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, step):
        if step == self.step:
            raise Crash(f"simulated crash after step {step}")


def _model(seed):
    # dropout makes the RNG state part of what must be restored
    return DNNClassifier({"x": Numeric(3), "c": Categorical(6, 3)}, hidden_units=(16,), dropout=0.2,
                         rngs=nnx.Rngs(seed))


def _params(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.fixture
def data(classification):
    cols = {k: v[:400] for k, v in classification.items()}
    train = Dataset.from_arrays(cols, label="y", batch_size=32, seed=5, shuffle_buffer=100)
    ev = Dataset.from_arrays(cols, label="y", batch_size=100, shuffle_buffer=0)
    return train, ev


@pytest.mark.parametrize("crash_step", [17, 12])  # mid epoch 2; exactly at the end of epoch 1
def test_resume_after_crash_gives_the_uninterrupted_result(data, tmp_path, crash_step):
    train, ev = data
    assert len(train) == 12
    reference = _model(0)
    ref_hist = fit(reference, optax.adam(1e-2), CE, train, ev, epochs=2)

    ckpt = tmp_path / "ckpt"
    with pytest.raises(Crash):
        fit(_model(0), optax.adam(1e-2), CE, train, ev, epochs=2, checkpoint_dir=ckpt, checkpoint_every=5,
            callbacks=[CrashAt(crash_step)])
    assert latest_checkpoint(ckpt) is not None
    resumed = _model(99)  # a different initialisation: everything comes from the checkpoint
    hist = fit(resumed, optax.adam(1e-2), CE, train, ev, epochs=2, checkpoint_dir=ckpt, checkpoint_every=5)
    assert hist.resumed_from is not None and hist.resumed_from < crash_step
    assert hist.step == ref_hist.step == 24
    for a, b in zip(_params(reference), _params(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert hist.history == ref_hist.history


def test_checkpoint_layout_is_npz_and_json_and_pruned(data, tmp_path):
    train, _ = data
    fit(_model(0), optax.adam(1e-2), CE, train, epochs=2, checkpoint_dir=tmp_path, checkpoint_every=4,
        keep_checkpoints=2)
    found = list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["ckpt-000000020", "ckpt-000000024"]
    assert sorted(f.name for f in found[-1].iterdir()) == ["arrays.npz", "meta.json"]
    meta = json.loads((found[-1] / "meta.json").read_text())
    assert meta["step"] == 24 and meta["epoch"] == 2 and meta["batch"] == 0
    with np.load(found[-1] / "arrays.npz", allow_pickle=False) as npz:
        assert len(npz.files) == len(meta["paths"])
    assert not list(tmp_path.glob(".tmp-*"))


def test_finished_run_resumes_to_a_no_op(data, tmp_path):
    train, _ = data
    m1 = _model(0)
    fit(m1, optax.adam(1e-2), CE, train, epochs=1, checkpoint_dir=tmp_path)
    m2 = _model(1)
    hist = fit(m2, optax.adam(1e-2), CE, train, epochs=1, checkpoint_dir=tmp_path)
    assert hist.step == 12 and hist.resumed_from == 12
    for a, b in zip(_params(m1), _params(m2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoints_name_leaves_by_their_nnx_paths(data, tmp_path):
    """Checkpoints written before the train state became one plain pytree named each leaf
    by its path in the NNX containers; they must keep matching, or they stop resuming."""
    train, _ = data
    model = _model(0)
    _, params, rest = nnx.split(model, nnx.Param, ...)
    opt = optax.adam(1e-2)
    expected = [jax.tree_util.keystr(p) for p, _ in
                jax.tree_util.tree_flatten_with_path((params, opt.init(params), rest))[0]]
    fit(model, opt, CE, train, steps=2, checkpoint_dir=tmp_path)
    meta = json.loads((latest_checkpoint(tmp_path) / "meta.json").read_text())
    assert meta["paths"] == expected
    assert any(p.endswith("['key'].value") for p in expected)  # the dropout RNG stream is kept
