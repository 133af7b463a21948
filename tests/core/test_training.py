import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jfx.core import Categorical, Dataset, DNNClassifier, DNNRegressor, EarlyStopping, Numeric, Trainer, evaluate, fit
from jfx.core._train import TrainState
from jfx.core._metrics import auc
from jfx.errors import InvalidArgumentError

CE = "sparse_categorical_crossentropy"
SPEC = {"x": Numeric(3), "c": Categorical(6, 3)}


def _split(cols, n_eval=256):
    train = {k: v[n_eval:] for k, v in cols.items()}
    ev = {k: v[:n_eval] for k, v in cols.items()}
    return train, ev


def _classifier(seed=0, **kw):
    return DNNClassifier(SPEC, hidden_units=(16,), rngs=nnx.Rngs(seed), **kw)


def _params(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_learns_a_separable_problem_from_parquet(classification, parquet_writer):
    train, ev = _split(classification)
    ds = Dataset.from_parquet(parquet_writer(train, shards=2), label="y", batch_size=32, seed=1)
    eval_ds = Dataset.from_parquet(parquet_writer(ev), label="y", batch_size=64, shuffle_buffer=0, remainder="pad")
    model = _classifier()
    hist = fit(model, optax.adam(1e-2), CE, ds, eval_ds, epochs=5, progress=False)
    assert hist.epochs == [0, 1, 2, 3, 4] and hist.step == 5 * len(ds)
    assert hist.history["val_accuracy"][-1] > 0.95
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    # the model was updated in place: a plain forward pass agrees with the metrics
    model.eval()
    pred = np.argmax(np.asarray(model({"x": ev["x"], "c": ev["c"]})), axis=-1)
    assert abs((pred == ev["y"]).mean() - hist.history["val_accuracy"][-1]) < 1e-6


def test_regression_mse_drops(regression):
    ds = Dataset.from_arrays(regression, ["a", "b"], "y", batch_size=64, seed=0)
    model = DNNRegressor({"a": Numeric(), "b": Numeric()}, hidden_units=(16,), rngs=nnx.Rngs(0))
    hist = fit(model, optax.adam(1e-2), "mse", ds, ds, epochs=4)
    assert set(hist.history) == {"loss", "mse", "mae", "val_loss", "val_mse", "val_mae"}
    assert hist.history["val_mse"][-1] < 0.1 * hist.history["val_mse"][0]
    assert hist.history["val_mse"][-1] == pytest.approx(hist.history["val_loss"][-1], rel=1e-5)


def _mann_whitney_auc(scores, labels, weights):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wp, wn = weights[labels == 1], weights[labels == 0]
    greater = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float((wp[:, None] * wn[None, :] * greater).sum() / (wp.sum() * wn.sum()))


def test_metrics_match_numpy_oracles(classification):
    train, ev = _split(classification, 300)
    model = _classifier(seed=3)
    fit(model, optax.adam(3e-3), CE, Dataset.from_arrays(train, label="y", batch_size=32), epochs=1)
    eval_ds = Dataset.from_arrays(ev, label="y", batch_size=64, shuffle_buffer=0, remainder="pad")
    got = evaluate(model, eval_ds, CE)
    model.eval()
    logits = np.asarray(model({"x": ev["x"], "c": ev["c"]}), np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    y = ev["y"]
    assert got["accuracy"] == pytest.approx((logits.argmax(-1) == y).mean(), abs=1e-6)
    assert got["loss"] == pytest.approx(-np.log(probs[np.arange(len(y)), y]).mean(), rel=1e-4)
    assert got["auc"] == pytest.approx(_mann_whitney_auc(probs[:, 1], y, np.ones(len(y))), abs=2e-3)


def test_streaming_auc_with_weights_against_mann_whitney():
    rng = np.random.default_rng(0)
    scores = rng.random(500)
    labels = (rng.random(500) < scores).astype(np.int32)
    weights = rng.integers(0, 3, 500).astype(np.float32)
    m = auc(bins=2000)
    logits = jnp.log(scores / (1 - scores))[:, None]
    state = m.init()
    for sl in (slice(0, 200), slice(200, 500)):
        state = m.update(state, logits[sl], jnp.asarray(labels[sl]), jnp.asarray(weights[sl]))
    assert m.finish(state) == pytest.approx(_mann_whitney_auc(scores, labels, weights), abs=1e-3)


def test_gradient_accumulation_matches_the_larger_batch(classification):
    cols = {k: v[:512] for k, v in classification.items()}
    runs = []
    for batch, accum in ((64, 1), (16, 4)):
        ds = Dataset.from_arrays(cols, label="y", batch_size=batch, shuffle_buffer=0)
        model = _classifier(seed=7)
        hist = fit(model, optax.sgd(0.1), CE, ds, epochs=2, grad_accum_steps=accum)
        runs.append((_params(model), hist))
    (p1, h1), (p2, h2) = runs
    assert h1.step == h2.step == 16
    for a, b in zip(p1, p2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert h1.history["loss"] == pytest.approx(h2.history["loss"], rel=1e-5)


def test_bf16_mixed_precision_stays_close_to_fp32(classification):
    ds = Dataset.from_arrays(classification, label="y", batch_size=64, seed=0)
    out = {}
    for precision in ("fp32", "bf16"):
        model = _classifier(seed=1)
        hist = fit(model, optax.adam(1e-2), CE, ds, ds, epochs=2, precision=precision)
        out[precision] = (hist, model)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(out["bf16"][1], nnx.Param)))
    h32, hbf = out["fp32"][0].history, out["bf16"][0].history
    assert hbf["val_accuracy"][-1] > 0.93
    assert abs(hbf["val_loss"][-1] - h32["val_loss"][-1]) < 0.05


def test_early_stopping_stops_and_restores_best(classification):
    train, ev = _split(classification)
    ds = Dataset.from_arrays(train, label="y", batch_size=64, seed=0)
    eval_ds = Dataset.from_arrays(ev, label="y", batch_size=64, shuffle_buffer=0, remainder="pad")
    model = _classifier(seed=2)
    # Accuracy on a separable problem plateaus within a few epochs, so patience runs out.
    hist = fit(model, optax.adam(1e-2), CE, ds, eval_ds, epochs=30,
               early_stopping=EarlyStopping("val_accuracy", patience=2))
    assert hist.stopped_early and len(hist.epochs) < 30
    assert len(hist.epochs) == hist.best_epoch + 3
    assert hist.best == max(hist.history["val_accuracy"])
    # the best epoch's weights are back: its eval loss, not the last epoch's
    best_loss = hist.history["val_loss"][hist.best_epoch]
    assert best_loss != hist.history["val_loss"][-1]
    assert evaluate(model, eval_ds, CE)["loss"] == pytest.approx(best_loss, rel=1e-5)


def test_history_names_the_epoch_and_metrics_of_the_weights_it_leaves(classification):
    train, ev = _split(classification)
    ds = Dataset.from_arrays(train, label="y", batch_size=64, seed=0)
    eval_ds = Dataset.from_arrays(ev, label="y", batch_size=64, shuffle_buffer=0, remainder="pad")
    model = _classifier(seed=2)
    hist = fit(model, optax.adam(1e-2), CE, ds, eval_ds, epochs=30,
               early_stopping=EarlyStopping("val_accuracy", patience=2))
    assert hist.weights_epoch == hist.best_epoch != hist.epochs[-1]
    final = hist.final_metrics()
    assert set(final) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc"}
    measured = evaluate(model, eval_ds, CE)
    for name in ("loss", "accuracy", "auc"):
        assert final[f"val_{name}"] == pytest.approx(measured[name], rel=1e-5), name
    assert final["train_loss"] == hist.history["loss"][hist.best_epoch]
    # without restoring, the model keeps the last epoch's weights, and says so
    last = fit(_classifier(seed=2), optax.adam(1e-2), CE, ds, eval_ds, epochs=2,
               early_stopping=EarlyStopping("val_accuracy", patience=2, restore_best=False))
    assert last.weights_epoch == 1 and last.final_metrics()["val_loss"] == last.history["val_loss"][-1]


def test_jitted_train_step_does_not_recompile(classification):
    ds = Dataset.from_arrays(classification, label="y", batch_size=32, seed=0, prefetch=0)
    trainer = Trainer(_classifier(), optax.adam(1e-3), CE, ds.layout)
    batches = ds.device_batches(0)
    # The metric accumulators exist before any batch: they are shaped from the layout.
    metrics = trainer.fresh_metrics()
    for _ in range(3):
        metrics = trainer.train_step(next(batches), metrics)
    assert trainer.trace_count == 1
    assert trainer._step._cache_size() == 1
    assert int(trainer.state.step) == 3
    assert trainer.finish_metrics(metrics)["loss"] > 0


def test_train_state_is_one_pytree_donated_whole(classification):
    ds = Dataset.from_arrays(classification, label="y", batch_size=32, seed=0, prefetch=0)
    trainer = Trainer(_classifier(dropout=0.5), optax.adam(1e-3), CE, ds.layout)
    before = trainer.state
    assert isinstance(before, TrainState)
    assert jax.tree.leaves(before.variables), "the dropout RNG stream travels in the state"
    trainer.step(next(ds.device_batches(0)))
    # Every buffer of the old state was donated to the step, metrics and RNG included.
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(before))
    after = trainer.state
    assert jax.tree.structure(after) == jax.tree.structure(before)
    assert int(after.step) == 1


@pytest.mark.parametrize("optimizer", [
    optax.adam(1e-3),  # zeroed moments and a count: built on the host
    optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1e-2, momentum=0.9)),
    # A state computed from the parameters: built by a jitted init.
    optax.GradientTransformation(lambda p: jax.tree.map(lambda x: x * 2.0 + 1.0, p),
                                 lambda u, s, p=None: (u, jax.tree.map(lambda x: x + 1.0, s))),
], ids=["adam", "chain", "from-params"])
def test_optimizer_state_starts_as_optax_builds_it(classification, optimizer):
    ds = Dataset.from_arrays(classification, label="y", batch_size=32, seed=0, prefetch=0)
    model = _classifier()
    trainer = Trainer(model, optimizer, CE, ds.layout)
    expected = jax.jit(optimizer.init)(trainer.state.params)
    got = trainer.state.opt_state
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))
    trainer.step(next(ds.device_batches(0)))  # the state's buffers are its own: donating them leaves the model intact
    trainer.step(next(ds.device_batches(0)))
    assert trainer._step._cache_size() == 1
    assert all(np.isfinite(x).all() for x in _params(model))


@pytest.mark.parametrize("shape", [(7,), (4, 3)])
def test_sparse_crossentropy_and_its_gradient_match_optax(shape):
    from jfx.core._metrics import get_loss

    loss = get_loss(CE)[0]
    logits = jax.random.normal(jax.random.key(0), (*shape, 5)) * 20.0
    labels = jax.random.randint(jax.random.key(1), shape, 0, 5)
    weights = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)

    def ours(x):
        return jnp.sum(loss(x, labels) * weights)

    def reference(x):
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x, labels) * weights)

    np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.grad(ours))(logits), jax.grad(reference)(logits), atol=1e-5)


def test_metric_state_is_shaped_before_any_batch(classification):
    ds = Dataset.from_arrays(classification, label="y", batch_size=32, seed=0, prefetch=0)
    trainer = Trainer(_classifier(), optax.adam(1e-3), CE, ds.layout, metrics=["accuracy", auc(bins=50)])
    fresh = trainer.fresh_metrics(train=False)
    shapes = [x.shape for x in jax.tree.leaves(fresh)]
    assert shapes == [(), (), (), (), (1, 50), (1, 50)]  # loss, accuracy, auc: positive-class histograms
    measured = trainer.evaluate(ds)
    assert set(measured) == {"loss", "accuracy", "auc"} and 0.0 <= measured["auc"] <= 1.0


def test_steps_limit_and_argument_errors(classification):
    ds = Dataset.from_arrays(classification, label="y", batch_size=32)
    hist = fit(_classifier(), optax.adam(1e-3), CE, ds, steps=5)
    assert hist.step == 5 and hist.epochs == [0]
    with pytest.raises(InvalidArgumentError):
        fit(_classifier(), optax.adam(1e-3), CE, ds, precision="fp8")
    with pytest.raises(InvalidArgumentError, match="no eval_data"):
        fit(_classifier(), optax.adam(1e-3), CE, ds, early_stopping=EarlyStopping())
    with pytest.raises(InvalidArgumentError, match="no label"):
        fit(_classifier(), optax.adam(1e-3), CE, Dataset.from_arrays(classification, ["x", "c"], batch_size=8))
