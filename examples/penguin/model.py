"""The penguin pipeline's Trainer (``run_fn``) and Tuner (``tuner_fn``) module.

Trains a :class:`jfx.core.DNNClassifier` on Transform's output (z-scored measurements,
vocabulary ids for island and sex; the label is the species' vocabulary id) with Adam,
and exports it composed with the fitted transform, so the model artifact takes RAW rows:

    >>> from jfx.core import load                                            # doctest: +SKIP
    >>> load(model_uri)([{"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,  # doctest: +SKIP
    ...                   "body_mass_g": 3750, "island": "Torgersen", "sex": "male"}])["class_ids"]
    array([0], dtype=int32)                   # the species vocabulary's first entry, Adelie

Hyperparameters (a Tuner's ``best_hyperparameters``, else :data:`DEFAULTS`):
``learning_rate``, ``hidden_units``, ``batch_size``, ``seed``.
"""

from __future__ import annotations

from typing import Any

import optax
from flax import nnx
from jfx.components import TunerSpec
from jfx.core import Categorical, DNNClassifier, EarlyStopping, Numeric, fit, vocab_size
from jfx.examples.penguin.preprocessing import (
    CATEGORICAL_FEATURES,
    LABEL,
    NUMERIC_FEATURES,
)

FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
DEFAULTS: dict[str, Any] = {"learning_rate": 0.01, "hidden_units": [16, 8], "batch_size": 16, "seed": 0}
EPOCHS = 30


def _build(ctx: Any, hp: dict[str, Any]) -> DNNClassifier:
    if ctx.transform is None:
        raise ValueError("the penguin model trains on Transform's output; wire transform_graph into the Trainer")
    spec: dict[str, Numeric | Categorical] = {name: Numeric() for name in NUMERIC_FEATURES}
    for name in CATEGORICAL_FEATURES:
        spec[name] = Categorical(vocab_size(ctx.transform.encoders[name]))
    # one class per species in the label vocabulary (no out-of-vocabulary class: every
    # training label is in it), so class ids line up with the vocabulary the Evaluator reads
    n_classes = len(ctx.transform.encoders[LABEL]["vocabulary"])
    # built inside one jit: the initialisers compile as one program instead of one per
    # layer shape (the same weights, ≈0.5 s sooner)
    return nnx.jit(lambda: DNNClassifier(spec, hidden_units=tuple(hp["hidden_units"]), n_classes=n_classes,
                                         rngs=nnx.Rngs(int(hp["seed"]))))()


def _train(ctx: Any, hp: dict[str, Any], epochs: int, steps: int | None = None) -> tuple[Any, Any, Any]:
    train = ctx.train_dataset(batch_size=int(hp["batch_size"]), features=FEATURES, label=LABEL, seed=int(hp["seed"]))
    evals = ctx.eval_dataset(features=FEATURES, label=LABEL)
    model = _build(ctx, hp)
    history = fit(model, optax.adam(float(hp["learning_rate"])), "sparse_categorical_crossentropy", train, evals,
                  epochs=epochs, steps=steps, progress=False,
                  early_stopping=EarlyStopping("val_loss", patience=5, restore_best=True))
    return model, train, history


def run_fn(ctx: Any) -> Any:
    """Trains, exports transform + model to ``ctx.model_dir``, returns the History."""
    hp = {**DEFAULTS, **ctx.hyperparameters}
    model, train, history = _train(ctx, hp, ctx.train_args.num_epochs or EPOCHS, ctx.train_args.num_steps)
    ctx.export_model(model, train)
    return history


def tuner_fn(ctx: Any) -> TunerSpec:
    """Searches learning rate and width; each trial scores its best ``val_accuracy``."""

    def search_space(trial: Any) -> dict[str, Any]:
        width = trial.suggest_categorical("width", [8, 16, 32])
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-3, 5e-2, log=True),
                "hidden_units": [width, max(4, width // 2)], "batch_size": 16, "seed": 0}

    def objective(hp: dict[str, Any], ctx: Any) -> Any:
        return _train(ctx, hp, epochs=10)[2]

    return TunerSpec(search_space, objective)
